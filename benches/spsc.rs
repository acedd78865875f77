//! One producer, one consumer: u64 messages moved between two threads, publishing one at a
//! time, in batches of 16 and of 256. Criterion means are for spotting regressions; the
//! pinned, histogrammed, side-by-side numbers come from the `perf/` harness.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringmq::{Ring, WaitStrategy};
use std::time::{Duration, Instant};

/// Moves `n` u64s from a producer (in batches of `batch`) to a consumer thread; returns the
/// time from the first publish to the last receive.
fn transfer(n: u64, batch: usize) -> Duration {
    let ring = Ring::builder()
        .capacity(1 << 16)
        .slot_size(16)
        .wakeups(false)
        .build()
        .unwrap();
    let mut consumer = ring
        .subscriber("bench")
        .wait_strategy(WaitStrategy::BusySpin)
        .attach()
        .unwrap();
    let mut producer = ring.producer_with(WaitStrategy::BusySpin).unwrap();
    let reader = std::thread::spawn(move || {
        let mut expected = 0u64;
        while expected < n {
            let batch = consumer.poll(4096).unwrap();
            for m in &batch {
                let v = u64::from_le_bytes(m.bytes().try_into().unwrap());
                assert_eq!(v, expected, "lost or reordered message");
                expected += 1;
            }
        }
    });
    let start = Instant::now();
    let mut next = 0u64;
    while next < n {
        if batch == 1 {
            producer.publish(&next.to_le_bytes()).unwrap();
            next += 1;
        } else {
            let k = batch.min((n - next) as usize);
            let mut claim = producer.claim_batch(k).unwrap();
            for i in 0..k {
                claim.slot_mut(i).unwrap()[..8].copy_from_slice(&(next + i as u64).to_le_bytes());
                claim.set_len(i, 8).unwrap();
            }
            claim.publish();
            next += k as u64;
        }
    }
    reader.join().unwrap();
    start.elapsed()
}

fn spsc(c: &mut Criterion) {
    let mut group = c.benchmark_group("spsc_u64");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(3));
    for batch in [1usize, 16, 256] {
        group.bench_with_input(BenchmarkId::new("batch", batch), &batch, |b, &batch| {
            b.iter_custom(|iters| {
                transfer(iters.max(1024), batch).mul_f64(iters as f64 / iters.max(1024) as f64)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, spsc);
criterion_main!(benches);
