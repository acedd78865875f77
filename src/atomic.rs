//! The atomic words of the ring, with the memory ordering of every access in its name.
//!
//! [`AtomicSequence`] holds a sequence number (a cursor, a consumer's position, a claim counter);
//! [`Word`] holds anything else 64 bits wide (masks, state words, slot headers, header
//! fields); [`Word32`] is a futex word. All three are `#[repr(transparent)]` over the atomic
//! (outside loom), so the ring views them in place in its memory, whatever backend holds it.
//!
//! Raw `load(Ordering::X)` calls appear only here and in `sync.rs` (`.clippy.toml` bans the raw
//! atomic types everywhere else); callers say
//! `load_acquire`, `store_release` and so on, and the comment at the call names the partner.
#![allow(clippy::disallowed_types)]

use crate::sync::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// The slot that holds `sequence` in a ring of `capacity` (a power of two) slots.
#[inline]
pub(crate) const fn slot_index(sequence: u64, capacity: u64) -> usize {
    (sequence & (capacity - 1)) as usize
}

macro_rules! atomic_u64_word {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[repr(transparent)]
        pub(crate) struct $name(AtomicU64);

        #[allow(dead_code)]
        impl $name {
            pub(crate) fn new(value: u64) -> Self {
                Self(AtomicU64::new(value))
            }
            #[inline]
            pub(crate) fn load_acquire(&self) -> u64 {
                self.0.load(Ordering::Acquire)
            }
            #[inline]
            pub(crate) fn load_relaxed(&self) -> u64 {
                self.0.load(Ordering::Relaxed)
            }
            #[inline]
            pub(crate) fn store_release(&self, value: u64) {
                self.0.store(value, Ordering::Release)
            }
            #[inline]
            pub(crate) fn store_relaxed(&self, value: u64) {
                self.0.store(value, Ordering::Relaxed)
            }
            #[inline]
            pub(crate) fn fetch_add_acqrel(&self, value: u64) -> u64 {
                self.0.fetch_add(value, Ordering::AcqRel)
            }
            #[inline]
            pub(crate) fn fetch_add_relaxed(&self, value: u64) -> u64 {
                self.0.fetch_add(value, Ordering::Relaxed)
            }
            #[inline]
            pub(crate) fn fetch_sub_relaxed(&self, value: u64) -> u64 {
                self.0.fetch_sub(value, Ordering::Relaxed)
            }
            #[inline]
            pub(crate) fn fetch_max_acqrel(&self, value: u64) -> u64 {
                self.0.fetch_max(value, Ordering::AcqRel)
            }
            #[inline]
            pub(crate) fn fetch_or_acqrel(&self, value: u64) -> u64 {
                self.0.fetch_or(value, Ordering::AcqRel)
            }
            #[inline]
            pub(crate) fn fetch_and_acqrel(&self, value: u64) -> u64 {
                self.0.fetch_and(value, Ordering::AcqRel)
            }
            /// Strong compare-exchange, AcqRel on success, Acquire on failure.
            #[inline]
            pub(crate) fn compare_exchange_acqrel(&self, current: u64, new: u64) -> Result<u64, u64> {
                self.0.compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
            }
        }
    };
}

atomic_u64_word!(
    /// An atomic sequence number: a cursor, a claim counter or a consumer's position.
    AtomicSequence
);
atomic_u64_word!(
    /// A 64-bit atomic word that is not a sequence: a mask, a state word, a slot header.
    Word
);

/// A flag raised once (a stop request), with the ordering of each access in its name.
#[derive(Debug, Default)]
pub(crate) struct Flag(AtomicBool);

impl Flag {
    /// Raises the flag (Release: whoever sees it raised sees what came before).
    #[inline]
    pub(crate) fn raise_release(&self) {
        self.0.store(true, Ordering::Release)
    }

    /// Whether the flag is raised (Acquire: pairs with `raise_release`).
    #[inline]
    pub(crate) fn is_raised_acquire(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A 32-bit futex word, and the waits and wakes on it.
#[cfg(not(loom))]
#[repr(transparent)]
pub(crate) struct Word32(AtomicU32);

/// A 32-bit futex word; under loom a mutex and condvar model the kernel's wait queue.
#[cfg(loom)]
pub(crate) struct Word32 {
    word: AtomicU32,
    lock: loom::sync::Mutex<()>,
    cond: loom::sync::Condvar,
}

impl Word32 {
    #[cfg(loom)]
    pub(crate) fn new(value: u32) -> Self {
        Self {
            word: AtomicU32::new(value),
            lock: loom::sync::Mutex::new(()),
            cond: loom::sync::Condvar::new(),
        }
    }

    #[inline]
    fn atomic(&self) -> &AtomicU32 {
        #[cfg(loom)]
        return &self.word;
        #[cfg(not(loom))]
        return &self.0;
    }

    #[inline]
    pub(crate) fn load_acquire(&self) -> u32 {
        self.atomic().load(Ordering::Acquire)
    }

    /// Release: pairs with the Acquire of [`Word32::load_acquire`] in a waiter, so a waiter
    /// that sees the bump also sees what the waker published before it.
    #[inline]
    pub(crate) fn fetch_add_release(&self, value: u32) -> u32 {
        self.atomic().fetch_add(value, Ordering::Release)
    }

    /// Sleeps while the word equals `expected`, at most `timeout`; may return spuriously.
    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn wait(&self, expected: u32, timeout: Option<std::time::Duration>) {
        crate::sync::futex::wait(&self.0, expected, timeout);
    }

    /// Sleeps while the word equals `expected`. Loom has no time: the timeout is not modelled,
    /// so a lost wake-up shows as a deadlock instead of being papered over.
    #[cfg(loom)]
    #[inline]
    pub(crate) fn wait(&self, expected: u32, _timeout: Option<std::time::Duration>) {
        let guard = self.lock.lock().unwrap();
        if self.word.load(Ordering::Acquire) == expected {
            drop(self.cond.wait(guard).unwrap());
        }
    }

    /// Wakes every sleeper on this word.
    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn wake_all(&self) {
        crate::sync::futex::wake_all(&self.0);
    }

    /// Wakes every sleeper on this word.
    #[cfg(loom)]
    #[inline]
    pub(crate) fn wake_all(&self) {
        let _guard = self.lock.lock().unwrap();
        self.cond.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_SEQUENCE;

    #[test]
    fn slot_index_masks_far_from_zero() {
        let cases: &[(u64, u64, usize)] = &[
            (0, 8, 0),
            (7, 8, 7),
            (8, 8, 0),
            (9, 1, 0),
            (MAX_SEQUENCE - 1, 1024, 1023),
            (MAX_SEQUENCE, 1024, 0),
            ((1 << 40) + 5, 16, 5),
            (u64::MAX, 4, 3),
        ];
        for &(seq, cap, want) in cases {
            assert_eq!(slot_index(seq, cap), want, "slot_index({seq}, {cap})");
        }
    }
}
