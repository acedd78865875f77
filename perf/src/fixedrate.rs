//! Fixed-rate latency: the producer sends one u64 every `interval` on a fixed schedule, each
//! carrying the time it was *due*, not the time it went out, so a stall that delays later
//! sends shows in their latency (coordinated omission corrected, as wrk2 and HdrHistogram's
//! `recordValueWithExpectedInterval` intend). The receiver records `received - due`.

use crate::pin::{pair, Cores};
use hdrhistogram::Histogram;
use ringmq::{Ring, WaitStrategy};
use std::time::{Duration, Instant};

/// The systems this scenario runs, by name.
pub const SYSTEMS: &[&str] = &["ringmq", "rtrb", "crossbeam ArrayQueue"];

fn histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("valid bounds")
}

/// Sends `n` messages on schedule; each is the nanosecond (since `epoch`) it was due.
fn send_on_schedule(n: u64, interval: Duration, epoch: Instant, mut push: impl FnMut(u64) -> bool) {
    let step = interval.as_nanos() as u64;
    let first = epoch.elapsed().as_nanos() as u64 + 10_000;
    for i in 0..n {
        let due = first + i * step;
        while (epoch.elapsed().as_nanos() as u64) < due {
            std::hint::spin_loop();
        }
        while !push(due) {
            std::hint::spin_loop();
        }
    }
}

/// Receives `n` messages and records `received - due` for each, checking that the due times
/// arrive in order.
fn receive(n: u64, epoch: Instant, mut pop: impl FnMut() -> Option<u64>) -> Histogram<u64> {
    let mut h = histogram();
    let mut last = 0;
    for _ in 0..n {
        let due = loop {
            if let Some(v) = pop() {
                break v;
            }
            std::hint::spin_loop();
        };
        let now = epoch.elapsed().as_nanos() as u64;
        assert!(due > last, "a message was lost, repeated or reordered");
        last = due;
        h.saturating_record(now.saturating_sub(due));
    }
    h
}

/// Runs `system` for `n` messages at one per `interval`.
pub fn run(system: &str, cores: Cores, n: u64, interval: Duration) -> Histogram<u64> {
    let epoch = Instant::now();
    match system {
        "ringmq" => {
            let ring = Ring::builder()
                .capacity(4096)
                .slot_size(16)
                .wakeups(false)
                .build()
                .expect("valid ring");
            let wait = WaitStrategy::BusySpin;
            let mut consumer = ring
                .subscriber("fixed-rate")
                .wait_strategy(wait)
                .attach()
                .expect("attach");
            let mut producer = ring.producer_with(wait).expect("producer");
            pair(
                cores,
                move || {
                    receive(n, epoch, || {
                        consumer.try_recv().ok().and_then(|m| m.value::<u64>().ok())
                    })
                },
                || {
                    send_on_schedule(n, interval, epoch, |v| {
                        producer.try_publish(&v.to_le_bytes()).is_ok()
                    })
                },
            )
        }
        "rtrb" => {
            let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(4096);
            pair(
                cores,
                move || receive(n, epoch, || rx.pop().ok()),
                || send_on_schedule(n, interval, epoch, |v| tx.push(v).is_ok()),
            )
        }
        "crossbeam ArrayQueue" => {
            let q = std::sync::Arc::new(crossbeam_queue::ArrayQueue::<u64>::new(4096));
            let rq = q.clone();
            pair(
                cores,
                move || receive(n, epoch, || rq.pop()),
                || send_on_schedule(n, interval, epoch, |v| q.push(v).is_ok()),
            )
        }
        other => panic!("unknown system {other}"),
    }
}
