//! What a consumer waits on: the published cursor, or the consumers it runs after.
//!
//! A consumer with no dependencies may read every published sequence. A consumer with
//! dependencies may read sequence `s` only once every dependency has released `s`: for a
//! subscriber, its position is past `s`; for a group, its claim counter and every one of its
//! workers' positions are past `s` (see `group.rs`). A dependency is always behind the
//! published cursor, so the cursor need not be read then.
//!
//! A dependency that detaches stops constraining: its entry's generation changes, and the
//! barrier drops it. With no dependency left the barrier falls back to the cursor.

use crate::gating::group_position;
use crate::shared::{Attached, Shared};
use crate::table::{self, Dependency};
use crate::wait::Event;

/// A consumer's barrier.
#[derive(Debug, Clone)]
pub(crate) struct Barrier {
    deps: Vec<Dependency>,
}

impl Barrier {
    pub(crate) fn new(deps: Vec<Dependency>) -> Self {
        Barrier { deps }
    }

    /// Whether this barrier waits on the producers alone (no dependencies).
    #[inline]
    pub(crate) fn on_producers(&self) -> bool {
        self.deps.is_empty()
    }

    /// The event a waiter on this barrier sleeps on.
    pub(crate) fn event<'s>(&self, shared: &'s Shared) -> Event<'s> {
        if self.deps.is_empty() {
            shared.published_event()
        } else {
            shared.released_event()
        }
    }

    /// The first sequence at or after `from` that may not be read yet, looking at most
    /// `max` ahead, for the consumer whose view of the ring is `att`.
    // Always inlined: without dependencies this is the sequencer's published bound, on every
    // poll.
    #[inline(always)]
    pub(crate) fn available(&mut self, att: &Attached, from: u64, max: u64) -> u64 {
        if self.deps.is_empty() {
            return crate::sequencer::published_until(att, from, max);
        }
        self.after_dependencies(att, from, max)
    }

    /// [`Barrier::available`] for a consumer with dependencies.
    #[inline(never)]
    fn after_dependencies(&mut self, att: &Attached, from: u64, max: u64) -> u64 {
        let shared = att.shared();
        let mut min = from.saturating_add(max);
        let mut lost = false;
        for dep in &self.deps {
            match position(shared, dep) {
                Some(p) => min = min.min(p),
                None => lost = true,
            }
        }
        if lost {
            return self.drop_lost(att, from, max);
        }
        min.max(from)
    }

    #[cold]
    #[inline(never)]
    fn drop_lost(&mut self, att: &Attached, from: u64, max: u64) -> u64 {
        self.deps.retain(|d| table::is_live(att.shared(), d.entry));
        self.available(att, from, max)
    }
}

/// A dependency's released position, or `None` if it has detached.
#[inline]
fn position(shared: &Shared, dep: &Dependency) -> Option<u64> {
    if !table::is_live(shared, dep.entry) {
        return None;
    }
    Some(if dep.is_group {
        group_position(shared, dep.entry.index)
    } else {
        // [released] Acquire: pairs with the dependency's Release store of its position, so
        // it has finished with every slot below it.
        shared.entry_sequence(dep.entry.index).load_acquire()
    })
}
