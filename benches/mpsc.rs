//! Two producers, one consumer on a multi-producer ring: the claim counter's `fetch_add`
//! and per-slot stamps under contention. Yielding waits, because three threads share two
//! cores here.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringmq::{Ring, WaitStrategy};
use std::time::{Duration, Instant};

fn transfer(per_producer: u64) -> Duration {
    let ring = Ring::builder()
        .capacity(1 << 14)
        .slot_size(16)
        .multi_producer()
        .wakeups(false)
        .build()
        .unwrap();
    let mut consumer = ring
        .subscriber("bench")
        .wait_strategy(WaitStrategy::Yield)
        .attach()
        .unwrap();
    let start = Instant::now();
    let producers: Vec<_> = (0..2u64)
        .map(|id| {
            let mut p = ring.producer_with(WaitStrategy::Yield).unwrap();
            std::thread::spawn(move || {
                for i in 0..per_producer {
                    p.publish(&(id << 62 | i).to_le_bytes()).unwrap();
                }
            })
        })
        .collect();
    let mut next = [0u64; 2];
    while next.iter().sum::<u64>() < 2 * per_producer {
        let batch = consumer.poll(4096).unwrap();
        for m in &batch {
            let v = u64::from_le_bytes(m.bytes().try_into().unwrap());
            let id = (v >> 62) as usize;
            assert_eq!(v & ((1 << 62) - 1), next[id], "producer {id} lost or reordered");
            next[id] += 1;
        }
    }
    for p in producers {
        p.join().unwrap();
    }
    start.elapsed()
}

fn mpsc(c: &mut Criterion) {
    let mut group = c.benchmark_group("mpsc_u64");
    group.throughput(Throughput::Elements(2));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("2p1c", |b| {
        b.iter_custom(|iters| {
            let n = iters.max(1024);
            transfer(n).mul_f64(iters as f64 / n as f64)
        });
    });
    group.finish();
}

criterion_group!(benches, mpsc);
criterion_main!(benches);
