//! Cleaning up after processes that died while attached, over both tables, and the throttle
//! that lets a waiting handle do it now and then.
//!
//! Death is confirmed, never guessed: an entry whose liveness token nobody holds belongs to a
//! dead process (`liveness.rs`). The reaper takes the token first, which makes it the only one
//! cleaning that entry, and then applies the entry's policy:
//!
//! | entry | what happens |
//! |---|---|
//! | reserving (its owner died attaching) | freed |
//! | ephemeral subscriber | freed: it stops gating |
//! | durable subscriber | kept, gating, for its restart; freed once its eviction delay has passed since it was first seen dead |
//! | worker | its claim goes to its group as an orphan (`group::orphan_or_free`), or it leaves its group if it held nothing |
//! | multi-producer | the slots it claimed and never published are skipped (`table::producers::skip_dead`) |
//!
//! A group's entry has no token of its own: it lives while it has workers.

use crate::layout::table::{
    E_DEAD_SINCE, KIND_GROUP, KIND_SUBSCRIBER, KIND_WORKER, OPT_DURABLE, OPT_ORPHAN, STATE_ACTIVE,
    STATE_RESERVING,
};
use crate::liveness::entry_lock;
use crate::shared::Shared;
use crate::table::{self, EntryRef};
use std::time::Instant;

/// Cleans up after dead processes: their consumers' entries and the slots their
/// multi-producers claimed and never published. Returns how many consumer entries and slots
/// it dealt with. On a heap ring only detached durable subscribers past their delay are found.
pub(crate) fn reap_dead(shared: &Shared) -> usize {
    reap_consumers(shared) + table::producers::skip_dead(shared) as usize
}

/// The consumer table's part of [`reap_dead`].
fn reap_consumers(shared: &Shared) -> usize {
    (0..shared.layout.params.max_consumers)
        .filter(|&index| {
            let (st, _, _) = table::state(shared, index);
            let candidate = st == STATE_RESERVING
                || (st == STATE_ACTIVE
                    && table::kind_of(shared, index) != KIND_GROUP
                    && table::options(shared, index) & OPT_ORPHAN == 0);
            candidate && !shared.liveness.is_held(entry_lock(index)) && reap(shared, index)
        })
        .count()
}

/// Milliseconds of CLOCK_MONOTONIC, which every process of the machine shares.
fn monotonic_ms() -> u64 {
    crate::wait::monotonic_ns() / 1_000_000
}

/// Cleans up after the dead owner of entry `index` by the entry's policy, holding its token
/// meanwhile. True if the entry was freed or its claim orphaned.
fn reap(shared: &Shared, index: usize) -> bool {
    let byte = entry_lock(index);
    if !shared.liveness.acquire(byte) {
        return false; // alive after all, or somebody else is cleaning up
    }
    let (st, _, generation) = table::state(shared, index);
    let entry = EntryRef { index, generation };
    let kind = table::kind_of(shared, index);
    let opts = table::options(shared, index);
    let done = match st {
        // The reserver died while attaching (a group's creator included).
        STATE_RESERVING => {
            table::free(shared, entry);
            true
        }
        STATE_ACTIVE if kind == KIND_SUBSCRIBER && opts & OPT_DURABLE != 0 => {
            let evict_after = opts >> 32;
            let since = shared.entry_word(index, E_DEAD_SINCE);
            // Relaxed: a plain timestamp; nothing is published with it.
            let mut first = since.load_relaxed();
            if first == 0 {
                first = monotonic_ms() + 1;
                since.store_relaxed(first);
            }
            let evict = evict_after != 0 && monotonic_ms() + 1 >= first.saturating_add(evict_after);
            if evict {
                table::free(shared, entry);
            }
            evict
        }
        STATE_ACTIVE if kind == KIND_SUBSCRIBER => {
            table::free(shared, entry);
            true
        }
        STATE_ACTIVE if kind == KIND_WORKER && opts & OPT_ORPHAN == 0 => {
            crate::group::orphan_or_free(shared, entry);
            true
        }
        _ => false,
    };
    if !done {
        shared.liveness.release(byte);
    }
    done
}

/// Cleans up after dead processes from inside a wait, at most every
/// [`crate::wait::SHARED_SAFETY_NET`]: the one thing a waiter on a shared ring can do about a
/// peer that died without waking it. Called from a wait's idle moments only (see
/// `wait::wait_for`), so a wait that ends at once reads no clock.
pub(crate) struct Reaper {
    shared: bool,
    due: Option<Instant>,
}

impl Reaper {
    #[inline]
    pub(crate) fn new(shared: &Shared) -> Self {
        Reaper {
            shared: shared.liveness.is_shared(),
            due: None,
        }
    }

    /// One idle moment of a wait.
    pub(crate) fn idle(&mut self, shared: &Shared) {
        if !self.shared {
            return;
        }
        let now = Instant::now();
        match self.due {
            None => self.due = Some(now + crate::wait::SHARED_SAFETY_NET),
            Some(due) if now >= due => {
                reap_dead(shared);
                self.due = Some(now + crate::wait::SHARED_SAFETY_NET);
            }
            Some(_) => {}
        }
    }
}
