//! Blocking waits: how long a sleeping consumer takes to wake for a message, and how much CPU
//! it burns while nothing arrives.
//!
//! The producer sends a message every ~200 us (each carrying its send time), so the consumer
//! is asleep when each arrives; then it goes quiet for `idle` and sends one last message. The
//! consumer's own thread CPU time over that quiet stretch, divided by its length, is the idle
//! CPU share.
//!
//! `bare futex` is the machine's limit for the scenario: a thread asleep in `FUTEX_WAIT` on a
//! word that the producer bumps and `FUTEX_WAKE`s, nothing else. What a queue adds to a
//! wake-up is its figure less this one; the rest is the kernel and, on a VM, the hypervisor
//! delivering the wake-up to an idle vCPU.

use crate::pin::{pair, Cores};
use hdrhistogram::Histogram;
use ringmq::{Ring, WaitStrategy};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The systems this scenario runs, by name.
pub const SYSTEMS: &[&str] = &[
    "bare futex",
    "ringmq Block",
    "ringmq Backoff",
    "ringmq async (tokio)",
    crate::ipc::WAKE_BLOCK,
    crate::ipc::WAKE_ASYNC,
    "tokio mpsc (tokio)",
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

/// `FUTEX_WAIT` on `word` while it holds `expected` (returns at once if it does not, or on a
/// signal; the caller re-checks).
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: `word` is a live, aligned 32-bit atomic for the duration of the call; a null
    // timeout waits without limit; the kernel only reads the word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            std::ptr::null::<libc::timespec>(),
        )
    };
}

/// `FUTEX_WAKE` one waiter on `word`.
pub(crate) fn futex_wake(word: &AtomicU32) {
    // SAFETY: as in `futex_wait`; FUTEX_WAKE does not touch the word's memory.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        )
    };
}

/// The bare wake-up: a one-message mailbox whose consumer sleeps in `FUTEX_WAIT` whenever it
/// is empty. `sent` counts messages put in, `taken` messages read; the producer, 200 us apart,
/// waits for `taken` to catch up before it overwrites `value`, so none is lost.
struct Mailbox {
    value: AtomicU64,
    sent: AtomicU32,
    taken: AtomicU32,
}

impl Mailbox {
    fn send(&self, v: u64) {
        let next = self.sent.load(Ordering::Relaxed).wrapping_add(1);
        // Acquire pairs with `recv`'s Release store of `taken`: its read of the previous
        // value is done before this one overwrites it.
        while self.taken.load(Ordering::Acquire) != next.wrapping_sub(1) {
            std::hint::spin_loop();
        }
        self.value.store(v, Ordering::Relaxed);
        // Release pairs with `recv`'s Acquire load: the value is visible once `sent` moves.
        self.sent.store(next, Ordering::Release);
        futex_wake(&self.sent);
    }

    fn recv(&self) -> u64 {
        let taken = self.taken.load(Ordering::Relaxed);
        // Acquire pairs with `send`'s Release store of `sent`.
        while self.sent.load(Ordering::Acquire) == taken {
            futex_wait(&self.sent, taken);
        }
        let v = self.value.load(Ordering::Relaxed);
        // Release pairs with `send`'s Acquire load: `v` is read before the slot is reused.
        self.taken.store(taken.wrapping_add(1), Ordering::Release);
        v
    }
}

/// The consumer's side, whatever the queue: `recv` blocks for the next value.
pub(crate) fn consume(n: u64, epoch: Instant, mut recv: impl FnMut() -> u64) -> Outcome {
    let mut wake = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("valid bounds");
    let mut previous = 0;
    for _ in 0..n {
        let sent = recv();
        // Send times are 200 us apart: one out of order or twice is a lost or duplicated message.
        assert!(
            sent > previous,
            "wake-up messages out of order: {sent} after {previous}"
        );
        previous = sent;
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
pub(crate) fn produce(n: u64, idle: Duration, epoch: Instant, mut send: impl FnMut(u64)) {
    for _ in 0..n {
        std::thread::sleep(Duration::from_micros(200));
        send(epoch.elapsed().as_nanos() as u64);
    }
    std::thread::sleep(idle);
    send(epoch.elapsed().as_nanos() as u64);
}

/// A ring of u64s, its subscriber waiting by `wait`, and its producer.
fn sleeper_pair(wait: WaitStrategy) -> (ringmq::Consumer, ringmq::Producer) {
    let ring = Ring::builder()
        .capacity(1024)
        .slot_size(16)
        .build()
        .expect("valid ring");
    let consumer = ring
        .subscriber("sleeper")
        .wait_strategy(wait)
        .attach()
        .expect("attach");
    let producer = ring.producer_with(wait).expect("producer");
    (consumer, producer)
}

/// A tokio runtime on this thread alone.
pub(crate) fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime")
}

/// Runs `system` for `n` wake-ups and one `idle` stretch.
pub fn run(system: &str, cores: Cores, n: u64, idle: Duration) -> Outcome {
    let epoch = Instant::now();
    match system {
        "bare futex" => {
            let mailbox = std::sync::Arc::new(Mailbox {
                value: AtomicU64::new(0),
                sent: AtomicU32::new(0),
                taken: AtomicU32::new(0),
            });
            let reader = std::sync::Arc::clone(&mailbox);
            pair(
                cores,
                move || consume(n, epoch, || reader.recv()),
                || produce(n, idle, epoch, |v| mailbox.send(v)),
            )
        }
        "ringmq Block" | "ringmq Backoff" => {
            let wait = if system == "ringmq Block" {
                WaitStrategy::Block
            } else {
                WaitStrategy::Backoff
            };
            let (mut consumer, mut producer) = sleeper_pair(wait);
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
                        producer.publish(&v.to_le_bytes()).expect("room");
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
        "ringmq async (tokio)" => {
            let (mut consumer, mut producer) = sleeper_pair(WaitStrategy::Backoff);
            pair(
                cores,
                move || {
                    // The consumer is a task of a current-thread runtime on this core: the
                    // publish wakes the task (the ring's waker thread would, for a producer
                    // in another process), which unparks the runtime's thread.
                    let runtime = current_thread();
                    consume(n, epoch, || {
                        runtime.block_on(async {
                            consumer
                                .recv_async()
                                .await
                                .expect("no stop flag")
                                .value::<u64>()
                                .expect("u64")
                        })
                    })
                },
                || {
                    produce(n, idle, epoch, |v| {
                        producer.publish(&v.to_le_bytes()).expect("room");
                    })
                },
            )
        }
        "tokio mpsc (tokio)" => {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(1024);
            pair(
                cores,
                move || {
                    let runtime = current_thread();
                    consume(n, epoch, || {
                        runtime.block_on(async { rx.recv().await.expect("sender alive") })
                    })
                },
                || produce(n, idle, epoch, |v| tx.blocking_send(v).expect("receiver alive")),
            )
        }
        crate::ipc::WAKE_BLOCK | crate::ipc::WAKE_ASYNC => crate::ipc::wake(system, cores, n, idle),
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
