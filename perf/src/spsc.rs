//! One producer, one consumer, u64 messages: throughput, every value checked.

use crate::pin::{pin, Cores};
use ringmq::{Ring, WaitStrategy};
use std::time::Instant;

/// Capacity of every queue in this scenario (a power of two all peers accept).
const CAPACITY: usize = 1 << 16;
/// Batch size where a system publishes in batches.
pub const BATCH: usize = 64;

/// The systems this scenario runs, by name.
pub const SYSTEMS: &[&str] = &[
    "ringmq (batch 64)",
    "ringmq (single)",
    "rtrb",
    "disruptor (batch 64)",
    "crossbeam ArrayQueue",
    "crossbeam-channel",
    "std sync_channel",
];

/// Runs `system` for `n` messages; messages per second.
pub fn run(system: &str, cores: Cores, n: u64) -> f64 {
    match system {
        "ringmq (batch 64)" => ringmq(cores, n, BATCH),
        "ringmq (single)" => ringmq(cores, n, 1),
        "rtrb" => rtrb(cores, n),
        "disruptor (batch 64)" => disruptor(cores, n),
        "crossbeam ArrayQueue" => array_queue(cores, n),
        "crossbeam-channel" => channel(cores, n),
        "std sync_channel" => sync_channel(cores, n),
        other => panic!("unknown system {other}"),
    }
}

fn rate(n: u64, start: Instant) -> f64 {
    n as f64 / start.elapsed().as_secs_f64()
}

fn ringmq(cores: Cores, n: u64, batch: usize) -> f64 {
    let ring = Ring::builder()
        .capacity(CAPACITY as u64)
        .slot_size(16)
        .wakeups(false)
        .build()
        .expect("valid ring");
    let mut consumer = ring
        .subscriber("perf")
        .wait_strategy(WaitStrategy::BusySpin)
        .attach()
        .expect("attach");
    let mut producer = ring.producer_with(WaitStrategy::BusySpin).expect("producer");
    let reader = std::thread::spawn(move || {
        pin(cores.b);
        let mut expected = 0u64;
        while expected < n {
            let batch = consumer.try_poll(4096);
            for m in &batch {
                let v = u64::from_le_bytes(m.bytes().try_into().expect("8-byte message"));
                assert_eq!(v, expected, "ringmq lost or reordered a message");
                expected += 1;
            }
        }
    });
    pin(cores.a);
    let start = Instant::now();
    let mut next = 0u64;
    if batch == 1 {
        while next < n {
            if producer.try_publish(&next.to_le_bytes()).is_ok() {
                next += 1;
            }
        }
    } else {
        while next < n {
            let k = batch.min((n - next) as usize);
            let written = producer.try_publish_batch_with(k, |i, slot| {
                slot[..8].copy_from_slice(&(next + i as u64).to_le_bytes());
                8
            });
            if written.is_ok() {
                next += k as u64;
            }
        }
    }
    reader.join().expect("ringmq reader");
    rate(n, start)
}

/// A spinning queue between the two cores: `push` until it takes each value, `pop` until
/// it yields one, every value checked in order.
fn spin_queue(
    cores: Cores,
    n: u64,
    name: &'static str,
    mut push: impl FnMut(u64) -> bool,
    mut pop: impl FnMut() -> Option<u64> + Send + 'static,
) -> f64 {
    let reader = std::thread::spawn(move || {
        pin(cores.b);
        let mut expected = 0;
        while expected < n {
            if let Some(v) = pop() {
                assert_eq!(v, expected, "{name} lost or reordered a message");
                expected += 1;
            }
        }
    });
    pin(cores.a);
    let start = Instant::now();
    let mut next = 0;
    while next < n {
        if push(next) {
            next += 1;
        }
    }
    reader.join().expect("reader thread");
    rate(n, start)
}

fn rtrb(cores: Cores, n: u64) -> f64 {
    let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(CAPACITY);
    spin_queue(
        cores,
        n,
        "rtrb",
        move |v| tx.push(v).is_ok(),
        move || rx.pop().ok(),
    )
}

fn disruptor(cores: Cores, n: u64) -> f64 {
    use disruptor::{BusySpin, ProcessorSettings, Producer};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let errors = Arc::new(AtomicU64::new(0));
    let seen = errors.clone();
    let mut expected = 0u64;
    let handler = move |e: &u64, _sequence: i64, _end_of_batch: bool| {
        if *e != expected {
            seen.fetch_add(1, Ordering::Relaxed);
        }
        expected += 1;
    };
    // The disruptor checks the handler's core against the building thread's affinity: build
    // before pinning.
    let mut producer = disruptor::build_single_producer(CAPACITY, || 0u64, BusySpin)
        .pin_at_core(cores.b.id)
        .handle_events_with(handler)
        .build();
    pin(cores.a);
    let start = Instant::now();
    let mut next = 0u64;
    while next < n {
        let k = BATCH.min((n - next) as usize);
        producer.batch_publish(k, |events| {
            for e in events {
                *e = next;
                next += 1;
            }
        });
    }
    drop(producer); // joins the handler thread once it has every event
    assert_eq!(
        errors.load(Ordering::Relaxed),
        0,
        "disruptor lost or reordered a message"
    );
    rate(n, start)
}

fn array_queue(cores: Cores, n: u64) -> f64 {
    let q = std::sync::Arc::new(crossbeam_queue::ArrayQueue::<u64>::new(CAPACITY));
    let rq = q.clone();
    spin_queue(
        cores,
        n,
        "ArrayQueue",
        move |v| q.push(v).is_ok(),
        move || rq.pop(),
    )
}

fn channel(cores: Cores, n: u64) -> f64 {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(CAPACITY);
    let reader = std::thread::spawn(move || {
        pin(cores.b);
        for expected in 0..n {
            assert_eq!(
                rx.recv().expect("sender alive"),
                expected,
                "crossbeam-channel lost a message"
            );
        }
    });
    pin(cores.a);
    let start = Instant::now();
    for i in 0..n {
        tx.send(i).expect("receiver alive");
    }
    reader.join().expect("channel reader");
    rate(n, start)
}

fn sync_channel(cores: Cores, n: u64) -> f64 {
    let (tx, rx) = std::sync::mpsc::sync_channel::<u64>(CAPACITY);
    let reader = std::thread::spawn(move || {
        pin(cores.b);
        for expected in 0..n {
            assert_eq!(
                rx.recv().expect("sender alive"),
                expected,
                "sync_channel lost a message"
            );
        }
    });
    pin(cores.a);
    let start = Instant::now();
    for i in 0..n {
        tx.send(i).expect("receiver alive");
    }
    reader.join().expect("sync_channel reader");
    rate(n, start)
}
