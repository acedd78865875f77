//! Wait strategies, and the futex wake-up protocol every blocking waiter uses.
//!
//! Three kinds of party wait: a consumer for producers (the "published" event), a consumer
//! for the consumers it depends on, and a producer for space on a full ring (both on the
//! "released" event). Each event is a futex word and a waiter count on their own line.
//!
//! The protocol (tag `[wakeup]`), a store-buffering pair of SeqCst fences:
//!
//! ```text
//! waiter                                   notifier
//! waiters += 1                             store the position (Release)
//! fence(SeqCst)                            fence(SeqCst)
//! loop {                                   if waiters > 0 {
//!     v = word (Acquire)                       word += 1 (Release)
//!     if condition holds { break }             FUTEX_WAKE(word, all)
//!     FUTEX_WAIT(word, v, timeout)         }
//! }
//! waiters -= 1
//! ```
//!
//! Either the notifier's load sees the waiter registered (and then bumps the word, which the
//! waiter either already saw, with the data, or will see as a changed word in FUTEX_WAIT), or
//! the waiter's condition check, after its fence, sees the store. No wake-up is lost, and a
//! publish with no sleeper costs a fence and one load of a line nobody writes: no syscall.
//! The futex timeout is only a safety net.

use crate::atomic::{Flag, Word, Word32};
use crate::error::RecvError;
use crate::sync::{fence, Ordering};
use std::time::{Duration, Instant};

/// How a waiting party waits.
///
/// | strategy | latency | CPU while idle |
/// |---|---|---|
/// | `BusySpin` | lowest: a cache-line round trip | a whole core |
/// | `Yield` | low; gives the core to runnable threads | a whole core if nothing else runs |
/// | `Backoff` | spin, then yield, then block: low under load, a futex wake when idle | ~0 |
/// | `Block` | a futex wake-up (microseconds) | ~0 |
///
/// `Backoff` and `Block` need a ring created with wake-ups (the default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WaitStrategy {
    /// Spin on the condition with a CPU pause hint.
    BusySpin,
    /// Yield the thread between checks.
    Yield,
    /// Spin briefly, then yield, then block on the futex.
    #[default]
    Backoff,
    /// Block on the futex at once.
    Block,
}

impl WaitStrategy {
    /// Whether this strategy ever sleeps on a futex.
    pub(crate) fn blocks(self) -> bool {
        matches!(self, WaitStrategy::Backoff | WaitStrategy::Block)
    }
}

/// Now, in CLOCK_MONOTONIC nanoseconds: one clock for every process of the machine, so a
/// time written into a ring (a request's deadline, a dead consumer's first sighting) means
/// the same instant to a process elsewhere.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec, and CLOCK_MONOTONIC exists on every Linux
    // (the call cannot fail with these arguments).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// The deadline `timeout` from now, or `None` (no deadline) if that is beyond what an
/// `Instant` can hold, as `Duration::MAX` is.
#[inline]
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// The longest single futex sleep: a safety net, never needed for correctness of the wake-up
/// protocol. For rings shared with other processes, [`SHARED_SAFETY_NET`] instead: a process
/// that dies wakes nobody, so waiters look again this often (and clean up after it).
pub(crate) const SAFETY_NET: Duration = Duration::from_secs(1);
pub(crate) const SHARED_SAFETY_NET: Duration = Duration::from_millis(50);

/// One wake-up event in the ring's memory: a futex word and a waiter count.
#[derive(Clone, Copy)]
pub(crate) struct Event<'a> {
    pub(crate) word: &'a Word32,
    pub(crate) waiters: &'a Word,
    /// The longest single sleep.
    pub(crate) safety_net: Duration,
    /// This process's futures waiting on the event, woken by a notifier of this process
    /// directly (the waker thread wakes them for notifiers elsewhere).
    #[cfg(all(feature = "async", not(loom)))]
    pub(crate) local: &'a crate::wake::AsyncWaiters,
}

impl Event<'_> {
    /// Called right after a Release store that may satisfy a waiter. `[wakeup]`
    #[inline]
    pub(crate) fn notify(&self) {
        // [wakeup] SeqCst: pairs with the waiter's fence in `block`; orders the caller's
        // store before the waiter-count load below.
        fence(Ordering::SeqCst);
        // Relaxed: the fence above provides the ordering this load needs.
        if self.waiters.load_relaxed() != 0 {
            self.wake();
        }
    }

    /// Wakes every sleeper unconditionally (used by `notify` and by `stop`).
    #[cold]
    #[inline(never)]
    pub(crate) fn wake(&self) {
        // Release: pairs with the Acquire load of the word in `block`.
        self.word.fetch_add_release(1);
        // This process's futures are woken directly; the futex only if others wait too
        // (`[async-local]`).
        #[cfg(all(feature = "async", not(loom)))]
        let others = self.local.wake_local(crate::wake::Words {
            word: self.word,
            waiters: self.waiters,
        });
        #[cfg(not(all(feature = "async", not(loom))))]
        let others = true;
        if others {
            self.word.wake_all();
        }
    }
}

/// Set to ask a handler loop to stop; waiters check it and the stopper wakes them.
#[derive(Debug, Default)]
pub(crate) struct StopFlag(Flag);

impl StopFlag {
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn stop(&self) {
        // Release: pairs with the Acquire in `is_stopped`; the stopper then bumps the event
        // words (Release), so a sleeper that sees the bump sees the flag.
        self.0.raise_release();
    }

    pub(crate) fn is_stopped(&self) -> bool {
        // Acquire: pairs with the Release in `stop`.
        self.0.is_raised_acquire()
    }
}

/// Why a wait ended without its condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitError {
    Timeout,
    Stopped,
}

impl From<WaitError> for RecvError {
    fn from(e: WaitError) -> Self {
        match e {
            WaitError::Timeout => RecvError::Timeout,
            WaitError::Stopped => RecvError::Stopped,
        }
    }
}

/// Waits until `poll` returns `Some`, by `strategy`, until `deadline` or `stop`. `idle` is
/// called now and then while nothing happens (every 64 spins, every backoff step, before
/// every futex sleep), for work that must not slow each poll (looking for dead peers).
#[cold]
#[inline(never)]
pub(crate) fn wait_for<T>(
    strategy: WaitStrategy,
    event: Event<'_>,
    deadline: Option<Instant>,
    stop: Option<&StopFlag>,
    mut poll: impl FnMut() -> Option<T>,
    idle: &mut dyn FnMut(),
) -> Result<T, WaitError> {
    let stopped = || stop.is_some_and(StopFlag::is_stopped);
    let expired = || deadline.is_some_and(|d| Instant::now() >= d);
    match strategy {
        WaitStrategy::BusySpin | WaitStrategy::Yield => {
            let mut rounds = 0u32;
            loop {
                if let Some(v) = poll() {
                    return Ok(v);
                }
                rounds = rounds.wrapping_add(1);
                if rounds % 64 == 0 {
                    idle();
                    if stopped() {
                        return Err(WaitError::Stopped);
                    }
                    if expired() {
                        return Err(WaitError::Timeout);
                    }
                }
                if strategy == WaitStrategy::BusySpin {
                    crate::sync::spin_loop();
                } else {
                    crate::sync::yield_now();
                }
            }
        }
        #[cfg(not(loom))]
        WaitStrategy::Backoff => {
            let backoff = crossbeam_utils::Backoff::new();
            while !backoff.is_completed() {
                if let Some(v) = poll() {
                    return Ok(v);
                }
                if stopped() {
                    return Err(WaitError::Stopped);
                }
                if expired() {
                    return Err(WaitError::Timeout);
                }
                idle();
                backoff.snooze();
            }
            block(event, deadline, stop, poll, idle)
        }
        // Loom cannot spin; Backoff is its final phase there.
        #[cfg(loom)]
        WaitStrategy::Backoff => block(event, deadline, stop, poll, idle),
        WaitStrategy::Block => block(event, deadline, stop, poll, idle),
    }
}

/// The waiter's side of `[wakeup]`.
fn block<T>(
    event: Event<'_>,
    deadline: Option<Instant>,
    stop: Option<&StopFlag>,
    mut poll: impl FnMut() -> Option<T>,
    idle: &mut dyn FnMut(),
) -> Result<T, WaitError> {
    struct Registered<'a>(&'a Word);
    impl Drop for Registered<'_> {
        fn drop(&mut self) {
            // Relaxed: a notifier that still sees us only makes a spare wake.
            self.0.fetch_sub_relaxed(1);
        }
    }
    // Relaxed: the fence below orders it before the condition checks.
    event.waiters.fetch_add_relaxed(1);
    let _registered = Registered(event.waiters);
    // [wakeup] SeqCst: pairs with the fence in `Event::notify`.
    fence(Ordering::SeqCst);
    loop {
        // Acquire: pairs with the Release bump in `Event::wake`.
        let observed = event.word.load_acquire();
        if let Some(v) = poll() {
            return Ok(v);
        }
        if stop.is_some_and(StopFlag::is_stopped) {
            return Err(WaitError::Stopped);
        }
        idle();
        let timeout = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Err(WaitError::Timeout);
                }
                (d - now).min(event.safety_net)
            }
            None => event.safety_net,
        };
        event.word.wait(observed, Some(timeout));
    }
}
