//! Blocking waits: how long a sleeping consumer takes to wake for a message, and how much CPU
//! it burns while nothing arrives.
//!
//! The producer sends a message every ~200 us (each carrying its send time), so the consumer
//! is asleep when each arrives; then it goes quiet for `idle` and sends one last message. The
//! consumer's own thread CPU time over that quiet stretch, divided by its length, is the idle
//! CPU share.

use crate::pin::{pair, Cores};
use hdrhistogram::Histogram;
use ringmq::{Ring, WaitStrategy};
use std::time::{Duration, Instant};

/// The systems this scenario runs, by name.
pub const SYSTEMS: &[&str] = &[
    "ringmq Block",
    "ringmq Backoff",
    "crossbeam-channel",
    "std sync_channel",
];

/// What one run measured.
pub struct Outcome {
    pub wake: Histogram<u64>,
    pub idle_cpu: f64,
}

/// This thread's CPU time.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The consumer's side, whatever the queue: `recv` blocks for the next value.
fn consume(n: u64, epoch: Instant, mut recv: impl FnMut() -> u64) -> Outcome {
    let mut wake = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("valid bounds");
    for _ in 0..n {
        let sent = recv();
        let now = epoch.elapsed().as_nanos() as u64;
        wake.saturating_record(now.saturating_sub(sent));
    }
    let (cpu0, wall0) = (thread_cpu(), Instant::now());
    let _last = recv();
    let (cpu, wall) = (thread_cpu() - cpu0, wall0.elapsed());
    Outcome {
        wake,
        idle_cpu: cpu.as_secs_f64() / wall.as_secs_f64(),
    }
}

/// The producer's side: `n` paced messages, a quiet `idle`, one last message.
fn produce(n: u64, idle: Duration, epoch: Instant, mut send: impl FnMut(u64)) {
    for _ in 0..n {
        std::thread::sleep(Duration::from_micros(200));
        send(epoch.elapsed().as_nanos() as u64);
    }
    std::thread::sleep(idle);
    send(epoch.elapsed().as_nanos() as u64);
}

/// Runs `system` for `n` wake-ups and one `idle` stretch.
pub fn run(system: &str, cores: Cores, n: u64, idle: Duration) -> Outcome {
    let epoch = Instant::now();
    match system {
        "ringmq Block" | "ringmq Backoff" => {
            let wait = if system == "ringmq Block" {
                WaitStrategy::Block
            } else {
                WaitStrategy::Backoff
            };
            let ring = Ring::builder()
                .capacity(1024)
                .slot_size(16)
                .build()
                .expect("valid ring");
            let mut consumer = ring
                .subscriber("sleeper")
                .wait_strategy(wait)
                .attach()
                .expect("attach");
            let mut producer = ring.producer_with(wait).expect("producer");
            pair(
                cores,
                move || {
                    consume(n, epoch, || {
                        consumer
                            .recv()
                            .expect("no stop flag")
                            .value::<u64>()
                            .expect("u64")
                    })
                },
                || {
                    produce(n, idle, epoch, |v| {
                        producer.publish_value(&v).expect("room");
                    })
                },
            )
        }
        "crossbeam-channel" => {
            let (tx, rx) = crossbeam_channel::bounded::<u64>(1024);
            pair(
                cores,
                move || consume(n, epoch, || rx.recv().expect("sender alive")),
                || produce(n, idle, epoch, |v| tx.send(v).expect("receiver alive")),
            )
        }
        "std sync_channel" => {
            let (tx, rx) = std::sync::mpsc::sync_channel::<u64>(1024);
            pair(
                cores,
                move || consume(n, epoch, || rx.recv().expect("sender alive")),
                || produce(n, idle, epoch, |v| tx.send(v).expect("receiver alive")),
            )
        }
        other => panic!("unknown system {other}"),
    }
}
