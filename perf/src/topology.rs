//! The Disruptor's own perf-test topologies: 1P3C (multicast), 3P1C, a three-stage pipeline,
//! a diamond (two consumers, then one after both), and a group of two workers (each message
//! to one of them).
//!
//! These need 4-5 threads on this machine's 2 cores, so every waiter yields (the ringmq
//! handles, and the disruptor through a yielding `WaitStrategy` written here: a busy-spinning
//! thread on a shared core would hold it for a whole time slice) and no thread is pinned. The
//! figures measure the protocols under oversubscription, not the hardware's limit. Every
//! consumer checks every message: order per producer, and for work shared between workers,
//! the count and the sum of everything delivered.

use disruptor::wait_strategies::WaitStrategy as DisruptorWait;
use ringmq::{Ring, Start, WaitStrategy};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The scenarios and their systems.
pub const SCENARIOS: &[(&str, &[&str])] = &[
    ("1p3c", &["ringmq", "disruptor"]),
    ("3p1c", &["ringmq", "disruptor", "crossbeam-channel"]),
    ("pipeline", &["ringmq", "disruptor"]),
    ("diamond", &["ringmq", "disruptor"]),
    ("group2", &["ringmq", "crossbeam-channel"]),
];

const CAPACITY: usize = 1 << 16;
const BATCH: usize = 64;

/// The disruptor's handlers yield while they wait, as the ringmq handles here do.
#[derive(Clone, Copy)]
struct Yield;

impl DisruptorWait for Yield {
    fn wait_for(&self, _sequence: i64) {
        std::thread::yield_now();
    }
}

/// Publishes the u64s 0..n in batches of 64 (one publish per batch), waiting for room.
pub fn publish_numbers(producer: &mut ringmq::Producer, n: u64) {
    let mut next = 0u64;
    while next < n {
        let k = BATCH.min((n - next) as usize);
        producer
            .publish_batch_with(k, |i, slot| {
                slot[..8].copy_from_slice(&(next + i as u64).to_le_bytes());
                8
            })
            .expect("room");
        next += k as u64;
    }
}

fn rate(n: u64, start: Instant) -> f64 {
    n as f64 / start.elapsed().as_secs_f64()
}

/// Runs `system` in `scenario` for `n` messages; messages per second.
pub fn run(scenario: &str, system: &str, n: u64) -> f64 {
    match (scenario, system) {
        ("1p3c", "ringmq") => ringmq_graph(n, &[("a", &[]), ("b", &[]), ("c", &[])]),
        ("pipeline", "ringmq") => ringmq_graph(n, &[("a", &[]), ("b", &["a"]), ("c", &["b"])]),
        ("diamond", "ringmq") => ringmq_graph(n, &[("a", &[]), ("b", &[]), ("c", &["a", "b"])]),
        ("1p3c", "disruptor") => disruptor_graph(n, Shape::Multicast),
        ("pipeline", "disruptor") => disruptor_graph(n, Shape::Pipeline),
        ("diamond", "disruptor") => disruptor_graph(n, Shape::Diamond),
        ("3p1c", "ringmq") => ringmq_3p1c(n),
        ("3p1c", "disruptor") => disruptor_3p1c(n),
        ("3p1c", "crossbeam-channel") => channel_3p1c(n),
        ("group2", "ringmq") => ringmq_group(n),
        ("group2", "crossbeam-channel") => channel_group(n),
        (s, other) => panic!("unknown system {other} in {s}"),
    }
}

/// One producer (batches of 64) and subscribers named with their dependencies; each checks
/// that it sees 0, 1, 2, ... in order.
fn ringmq_graph(n: u64, consumers: &[(&str, &[&str])]) -> f64 {
    let ring = Ring::builder()
        .capacity(CAPACITY as u64)
        .slot_size(16)
        .wakeups(false)
        .build()
        .expect("valid ring");
    let handles: Vec<_> = consumers
        .iter()
        .map(|(name, after)| {
            let mut builder = ring
                .subscriber(name)
                .start(Start::Earliest)
                .wait_strategy(WaitStrategy::Yield);
            if !after.is_empty() {
                builder = builder.after(after.iter().copied());
            }
            let mut consumer = builder.attach().expect("attach");
            std::thread::spawn(move || {
                let mut expected = 0u64;
                while expected < n {
                    let batch = consumer.poll(4096).expect("no stop flag");
                    for m in &batch {
                        let v: u64 = m.value().expect("u64");
                        assert_eq!(v, expected, "ringmq lost or reordered a message");
                        expected += 1;
                    }
                }
            })
        })
        .collect();
    let mut producer = ring.producer_with(WaitStrategy::Yield).expect("producer");
    let start = Instant::now();
    publish_numbers(&mut producer, n);
    for h in handles {
        h.join().expect("consumer");
    }
    rate(n, start)
}

#[derive(Clone, Copy)]
enum Shape {
    Multicast,
    Pipeline,
    Diamond,
}

/// A checking handler for the disruptor: counts messages out of order into `errors`.
fn checker(errors: &Arc<AtomicU64>) -> impl FnMut(&u64, i64, bool) + Send + 'static {
    let errors = errors.clone();
    let mut expected = 0u64;
    move |v: &u64, _sequence: i64, _end: bool| {
        if *v != expected {
            errors.fetch_add(1, Ordering::Relaxed);
        }
        expected += 1;
    }
}

fn disruptor_graph(n: u64, shape: Shape) -> f64 {
    let errors = Arc::new(AtomicU64::new(0));
    let base = disruptor::build_single_producer(CAPACITY, || 0u64, Yield);
    let r = match shape {
        Shape::Multicast => drive(
            base.handle_events_with(checker(&errors))
                .handle_events_with(checker(&errors))
                .handle_events_with(checker(&errors))
                .build(),
            n,
        ),
        Shape::Pipeline => drive(
            base.handle_events_with(checker(&errors))
                .and_then()
                .handle_events_with(checker(&errors))
                .and_then()
                .handle_events_with(checker(&errors))
                .build(),
            n,
        ),
        Shape::Diamond => drive(
            base.handle_events_with(checker(&errors))
                .handle_events_with(checker(&errors))
                .and_then()
                .handle_events_with(checker(&errors))
                .build(),
            n,
        ),
    };
    assert_eq!(
        errors.load(Ordering::Relaxed),
        0,
        "disruptor lost or reordered a message"
    );
    r
}

/// Publishes 0..n in batches of 64, then drops the producer (which joins the handlers once
/// they have every event); messages per second.
fn drive(mut producer: impl disruptor::Producer<u64>, n: u64) -> f64 {
    let start = Instant::now();
    disruptor_publish(&mut producer, n, |i| i);
    drop(producer);
    rate(n, start)
}

/// Publishes `make(0)..make(n)` through a disruptor producer in batches of 64.
pub fn disruptor_publish<E>(producer: &mut impl disruptor::Producer<E>, n: u64, make: impl Fn(u64) -> E) {
    let mut next = 0u64;
    while next < n {
        let k = BATCH.min((n - next) as usize);
        producer.batch_publish(k, |events| {
            for e in events {
                *e = make(next);
                next += 1;
            }
        });
    }
}

/// Three producers of n/3 messages each, tagged `producer << 40 | counter`.
fn tagged(producer: u64, i: u64) -> u64 {
    (producer << 40) | i
}

/// Checks per-producer order of tagged values; returns how many it saw.
#[derive(Default)]
struct PerProducer {
    next: [u64; 3],
}

impl PerProducer {
    fn check(&mut self, v: u64, system: &str) {
        let (p, i) = ((v >> 40) as usize, v & ((1 << 40) - 1));
        assert!(p < 3, "{system}: a corrupt message");
        assert_eq!(i, self.next[p], "{system} lost or reordered a producer's message");
        self.next[p] += 1;
    }
}

fn ringmq_3p1c(n: u64) -> f64 {
    let per = n / 3;
    let ring = Ring::builder()
        .capacity(CAPACITY as u64)
        .slot_size(16)
        .multi_producer()
        .wakeups(false)
        .build()
        .expect("valid ring");
    let mut consumer = ring
        .subscriber("c")
        .start(Start::Earliest)
        .wait_strategy(WaitStrategy::Yield)
        .attach()
        .expect("attach");
    let reader = std::thread::spawn(move || {
        let mut seen = PerProducer::default();
        let mut count = 0;
        while count < 3 * per {
            let batch = consumer.poll(4096).expect("no stop flag");
            for m in &batch {
                seen.check(m.value().expect("u64"), "ringmq");
                count += 1;
            }
        }
    });
    let start = Instant::now();
    let writers: Vec<_> = (0..3)
        .map(|p| {
            let mut producer = ring.producer_with(WaitStrategy::Yield).expect("producer");
            std::thread::spawn(move || {
                let mut next = 0u64;
                while next < per {
                    let k = BATCH.min((per - next) as usize);
                    producer
                        .publish_batch_with(k, |i, slot| {
                            slot[..8].copy_from_slice(&tagged(p, next + i as u64).to_le_bytes());
                            8
                        })
                        .expect("room");
                    next += k as u64;
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("producer");
    }
    reader.join().expect("consumer");
    rate(3 * per, start)
}

fn disruptor_3p1c(n: u64) -> f64 {
    let per = n / 3;
    let errors = Arc::new(AtomicU64::new(0));
    let seen_errors = errors.clone();
    let mut seen = PerProducer::default();
    let handler = move |v: &u64, _s: i64, _e: bool| {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| seen.check(*v, "disruptor"))).is_err() {
            seen_errors.fetch_add(1, Ordering::Relaxed);
        }
    };
    let producer = disruptor::build_multi_producer(CAPACITY, || 0u64, Yield)
        .handle_events_with(handler)
        .build();
    let start = Instant::now();
    let writers: Vec<_> = (0..3)
        .map(|p| {
            let mut producer = producer.clone();
            std::thread::spawn(move || disruptor_publish(&mut producer, per, |i| tagged(p, i)))
        })
        .collect();
    for w in writers {
        w.join().expect("producer");
    }
    drop(producer); // joins the handler once it has every event
    assert_eq!(
        errors.load(Ordering::Relaxed),
        0,
        "disruptor lost or reordered a message"
    );
    rate(3 * per, start)
}

fn channel_3p1c(n: u64) -> f64 {
    let per = n / 3;
    let (tx, rx) = crossbeam_channel::bounded::<u64>(CAPACITY);
    let reader = std::thread::spawn(move || {
        let mut seen = PerProducer::default();
        for _ in 0..3 * per {
            seen.check(rx.recv().expect("producers alive"), "crossbeam-channel");
        }
    });
    let start = Instant::now();
    let writers: Vec<_> = (0..3)
        .map(|p| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..per {
                    tx.send(tagged(p, i)).expect("consumer alive");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("producer");
    }
    reader.join().expect("consumer");
    rate(3 * per, start)
}

/// What a worker delivered: count, sum, and whether its values kept increasing.
fn settle(results: Vec<(u64, u64)>, n: u64, system: &str) {
    let count: u64 = results.iter().map(|r| r.0).sum();
    let sum: u64 = results.iter().map(|r| r.1).sum();
    assert_eq!(count, n, "{system}: workers got {count} of {n} messages");
    assert_eq!(sum, n * (n - 1) / 2, "{system}: a message was lost or duplicated");
}

fn ringmq_group(n: u64) -> f64 {
    let ring = Ring::builder()
        .capacity(CAPACITY as u64)
        .slot_size(16)
        .wakeups(false)
        .build()
        .expect("valid ring");
    let done = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let mut worker = ring
                .worker("g", &format!("w{w}"))
                .group_start(Start::Earliest)
                .wait_strategy(WaitStrategy::Yield)
                .attach()
                .expect("attach");
            let done = done.clone();
            std::thread::spawn(move || {
                let (mut count, mut sum, mut last) = (0u64, 0u64, None);
                while done.load(Ordering::Acquire) < n {
                    let batch = worker.try_poll(256);
                    let mut here = 0;
                    for m in &batch {
                        let v: u64 = m.value().expect("u64");
                        assert!(
                            last.is_none_or(|l| v > l),
                            "ringmq group: out of order in a worker"
                        );
                        last = Some(v);
                        count += 1;
                        sum += v;
                        here += 1;
                    }
                    drop(batch);
                    if here == 0 {
                        std::thread::yield_now();
                    } else {
                        done.fetch_add(here, Ordering::AcqRel);
                    }
                }
                (count, sum)
            })
        })
        .collect();
    let mut producer = ring.producer_with(WaitStrategy::Yield).expect("producer");
    let start = Instant::now();
    publish_numbers(&mut producer, n);
    let results = workers.into_iter().map(|w| w.join().expect("worker")).collect();
    let r = rate(n, start);
    settle(results, n, "ringmq group");
    r
}

fn channel_group(n: u64) -> f64 {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(CAPACITY);
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || {
                let (mut count, mut sum) = (0u64, 0u64);
                while let Ok(v) = rx.recv() {
                    count += 1;
                    sum += v;
                }
                (count, sum)
            })
        })
        .collect();
    drop(rx);
    let start = Instant::now();
    for i in 0..n {
        tx.send(i).expect("workers alive");
    }
    drop(tx);
    let results = workers.into_iter().map(|w| w.join().expect("worker")).collect();
    let r = rate(n, start);
    settle(results, n, "crossbeam-channel workers");
    r
}
