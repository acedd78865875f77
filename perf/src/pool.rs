//! A pool of responders under load: one requester keeps a window of requests in flight to a
//! service answered by one or two responders, whose handler does a fixed amount of work per
//! request. The limit for `k` responders is the same work done by `k` bare threads with no
//! queue at all: what `k` cores of this machine can do. Requests per second against it say
//! how the pool scales with the cores it is given.
//!
//! The requester needs some of a core too, and this machine has two: the threads are not
//! pinned and every side waits by `Backoff` (spin, yield, then sleep), so a waiting side gives
//! its core to a working one.

use ringmq::request::Service;
use ringmq::{Ring, WaitStrategy};
use std::time::{Duration, Instant};

/// The systems, each pool beside its limit.
pub const SYSTEMS: &[&str] = &[
    "bare handler, 1 thread",
    "ringmq pool, 1 responder",
    "bare handler, 2 threads",
    "ringmq pool, 2 responders",
];

/// The limit a system is read against.
pub fn limit_of(system: &str) -> &'static str {
    if system.contains('2') {
        "bare handler, 2 threads"
    } else {
        "bare handler, 1 thread"
    }
}

/// Rounds of the handler's work: a chain of dependent multiply-adds, long beside what a
/// request costs around it. That cost is CPU too (the requester's wake-up when it waits for
/// a reply, the responder's `FUTEX_WAKE` of it, both sides' receive and publish), and on two
/// cores it is taken from the responders: the shorter the work, the more of the limit goes
/// to it (the log has the figures for a shorter one).
const WORK: u32 = 8_000;

/// Requests in flight.
const WINDOW: usize = 64;

/// The handler's work on `seed`.
#[inline(never)]
fn work(seed: u64) -> u64 {
    let mut x = seed;
    for _ in 0..WORK {
        x = std::hint::black_box(
            x.wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407),
        );
    }
    x
}

/// Runs `n` requests of `system`; requests (or handler calls) per second.
pub fn run(system: &str, n: u64) -> f64 {
    match system {
        // Limits: the fastest of a few tries (the VM's pauses only ever slow one).
        "bare handler, 1 thread" => crate::calibrate::best_of(|| bare(1, n)),
        "bare handler, 2 threads" => crate::calibrate::best_of(|| bare(2, n)),
        "ringmq pool, 1 responder" => pool(1, n),
        "ringmq pool, 2 responders" => pool(2, n),
        other => panic!("unknown system {other}"),
    }
}

/// `threads` threads sharing `n` calls of the handler's work.
fn bare(threads: u64, n: u64) -> f64 {
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let mut sum = 0u64;
                for i in (t..n).step_by(threads as usize) {
                    sum = sum.wrapping_add(work(i));
                }
                sum
            })
        })
        .collect();
    for worker in workers {
        std::hint::black_box(worker.join().expect("a bare worker"));
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// One requester, `WINDOW` requests in flight, `responders` responders doing the handler's
/// work on each request. Every request must be answered once, by a reply that names it.
fn pool(responders: usize, n: u64) -> f64 {
    let service = Service::new(Ring::builder().capacity(1024).slot_size(128)).expect("valid ring");
    let mut requester = service
        .requester()
        .reply_capacity(WINDOW as u64)
        .wait_strategy(WaitStrategy::Backoff)
        .build()
        .expect("requester");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let threads: Vec<_> = (0..responders)
        .map(|k| {
            let mut responder = service
                .responder(&format!("worker-{k}"))
                .wait_strategy(WaitStrategy::Backoff)
                .attach()
                .expect("attach");
            let done = done.clone();
            std::thread::spawn(move || {
                // Relaxed: only ends the loop; every request was answered before it is set.
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let answered = responder.respond_timeout(
                        |r| {
                            let i = u64::from_le_bytes(r.payload().try_into().expect("a u64"));
                            let mut reply = [0u8; 16];
                            reply[..8].copy_from_slice(&i.to_le_bytes());
                            reply[8..].copy_from_slice(&work(i).to_le_bytes());
                            reply
                        },
                        Duration::from_millis(10),
                    );
                    if let Err(e) = answered {
                        assert_eq!(e, ringmq::RecvError::Timeout, "a responder's receive");
                    }
                }
                responder.replied()
            })
        })
        .collect();
    let start = Instant::now();
    let (mut sent, mut received) = (0u64, 0u64);
    let mut answered = vec![false; n as usize];
    while received < n {
        while sent < n && requester.in_flight() < WINDOW {
            requester
                .send(&sent.to_le_bytes(), Duration::MAX)
                .expect("a request");
            sent += 1;
        }
        let reply = requester.recv().expect("a reply");
        let payload = reply.payload();
        let i = u64::from_le_bytes(payload[..8].try_into().expect("a number"));
        assert!(
            i < n && !answered[i as usize],
            "request {i} answered twice, or never sent"
        );
        answered[i as usize] = true;
        // One reply in 64 has its work checked: checking them all would put the handler's
        // work on the requester's core too.
        if i % 64 == 0 {
            assert_eq!(payload[8..], work(i).to_le_bytes()[..], "the work of request {i}");
        }
        received += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    // Relaxed: see the responders' loop.
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let replied: u64 = threads.into_iter().map(|t| t.join().expect("a responder")).sum();
    assert_eq!(replied, n, "every request answered once");
    rate
}
