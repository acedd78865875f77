//! The one concurrency facade of the crate.
//!
//! Everything that touches an atomic, a fence, a thread yield or a futex goes through this
//! module, so that `RUSTFLAGS="--cfg loom"` swaps the whole crate onto loom's model checker.
//! Outside this file and `atomic.rs`, raw atomics are banned by `.clippy.toml`.
//!
//! Under loom the futex is modelled by a mutex and a condition variable that follow the
//! kernel's contract: `wait(expected)` sleeps only while the word still equals `expected`
//! (checked under the lock), and `wake_all` takes the same lock, so a wake that races the
//! check is never lost. A lost wake-up in the ring's protocol shows up in loom as a deadlock.
#![allow(clippy::disallowed_types)]

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::Arc;
#[cfg(not(loom))]
pub(crate) use std::sync::Arc;

#[cfg(all(loom, test))]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(all(feature = "async", not(loom)))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// A hint that the caller is spinning. Under loom it yields, so spin loops stay finite.
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Gives the rest of the time slice to another thread.
#[inline]
pub(crate) fn yield_now() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}

#[cfg(not(loom))]
pub(crate) mod futex {
    //! `FUTEX_WAIT` / `FUTEX_WAKE` on a 32-bit word. No `FUTEX_PRIVATE_FLAG`: the word may live
    //! in a mapping shared by several processes, and the shared futex works there unchanged.
    use super::AtomicU32;
    use std::time::Duration;

    /// Sleeps while `*word == expected`, for at most `timeout`. Returns on a wake, a changed
    /// word, a timeout or a signal; the caller always re-checks its own condition.
    pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let ts = timeout.map(|d| libc::timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `word` is a live, 4-byte aligned u32 for the whole call; FUTEX_WAIT only reads
        // it. `ts_ptr` is null or points at `ts`, which outlives the call. The result is ignored
        // on purpose: every outcome (woken, EAGAIN, ETIMEDOUT, EINTR) means "re-check".
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                expected,
                ts_ptr,
                std::ptr::null::<u32>(),
                0u32,
            );
        }
    }

    /// Wakes every thread (in any process) sleeping on `word`.
    pub(crate) fn wake_all(word: &AtomicU32) {
        // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE does not access memory through it,
        // it only uses its address as the key of the wait queue.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE,
                i32::MAX,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                0u32,
            );
        }
    }
}
