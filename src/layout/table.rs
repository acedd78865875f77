//! The two tables' entries: field offsets and the encodings of their words.
//!
//! A consumer table entry is three lines:
//!
//! ```text
//! line 0  E_SEQUENCE   position (subscriber, worker) or claim counter (group)   hot
//!         E_STATE      state (bits 0..8), a group's member count (8..24), generation (32..64)
//!         E_CLAIM_END  worker: the end of its current claim
//!         E_ORPHANS    group: mask of its orphaned workers
//! line 1  E_KIND, E_GROUP (worker: its group's entry reference), E_MEMBERS (group: its
//!         workers' mask), E_DEP_COUNT, E_DEPS (8 entry references), E_OPTIONS, E_DEAD_SINCE
//! line 2  E_NAME_LEN, E_NAME (64 bytes)
//! ```
//!
//! A producer table entry is one line: the state word (free/active, generation) and the
//! multi-producer's claim floor (see `table/producers.rs`).

use super::LINE;
use crate::limits::{MAX_DEPENDENCIES, MAX_NAME_LEN};

/// Producer entry fields: the state word (state, generation) and the claim floor.
pub(crate) const P_STATE: usize = 0;
pub(crate) const P_FLOOR: usize = 8;

// Consumer entry fields, relative to the entry.
/// The consumer's position (subscriber, worker) or the group's claim counter (group).
pub(crate) const E_SEQUENCE: usize = 0;
/// State word: bits 0..8 state, 8..24 member count (groups), 32..64 generation.
pub(crate) const E_STATE: usize = 8;
/// Worker: the end of its current claim (written before the claim, for redelivery).
pub(crate) const E_CLAIM_END: usize = 16;
/// Group: mask of its orphaned workers (dead, or detached holding messages) whose claims
/// wait for another worker to take them over.
pub(crate) const E_ORPHANS: usize = 24;
pub(crate) const E_KIND: usize = LINE;
/// Worker: group entry index in bits 0..32, its generation in bits 32..64.
pub(crate) const E_GROUP: usize = LINE + 8;
/// Group: mask of the table entries of its workers.
pub(crate) const E_MEMBERS: usize = LINE + 16;
pub(crate) const E_DEP_COUNT: usize = LINE + 24;
/// Dependencies: `MAX_DEPENDENCIES` words, each index (bits 0..32) and generation (32..64).
pub(crate) const E_DEPS: usize = LINE + 32;
/// Options: [`OPT_DURABLE`], [`OPT_ORPHAN`], and in bits 32..64 a durable subscriber's
/// eviction delay in milliseconds (0: never evicted).
pub(crate) const E_OPTIONS: usize = LINE + 96;
/// When a durable subscriber was first seen dead: CLOCK_MONOTONIC milliseconds + 1 (0: not
/// seen dead).
pub(crate) const E_DEAD_SINCE: usize = LINE + 104;
pub(crate) const E_NAME_LEN: usize = 2 * LINE;
pub(crate) const E_NAME: usize = 2 * LINE + 8;

/// Option: a subscriber that keeps its entry (and position) when its process dies.
pub(crate) const OPT_DURABLE: u64 = 1;
/// Option: a worker whose claim waits in its group's orphan mask for another worker.
pub(crate) const OPT_ORPHAN: u64 = 2;

/// Entry states.
pub(crate) const STATE_FREE: u64 = 0;
pub(crate) const STATE_RESERVING: u64 = 1;
pub(crate) const STATE_ACTIVE: u64 = 2;

/// Entry kinds.
pub(crate) const KIND_SUBSCRIBER: u64 = 1;
pub(crate) const KIND_GROUP: u64 = 2;
pub(crate) const KIND_WORKER: u64 = 3;

/// A worker holding nothing publishes this position, so it never gates (see `group.rs`);
/// a multi-producer holding nothing, this floor.
pub(crate) const IDLE: u64 = u64::MAX;

/// Whether `within` (an offset inside a consumer entry) is one of its words (for loom).
#[cfg(loom)]
pub(crate) fn is_entry_word(within: usize) -> bool {
    within < 32
        || (E_KIND..E_DEAD_SINCE + 8).contains(&within)
        || (E_NAME_LEN..E_NAME + MAX_NAME_LEN).contains(&within)
}

/// Packs a table entry's state word.
#[inline]
pub(crate) const fn state_word(state: u64, members: u64, generation: u32) -> u64 {
    (state & 0xff) | ((members & 0xffff) << 8) | ((generation as u64) << 32)
}

/// The parts of a state word: (state, members, generation).
#[inline]
pub(crate) const fn decode_state(word: u64) -> (u64, u64, u32) {
    (word & 0xff, (word >> 8) & 0xffff, (word >> 32) as u32)
}

/// Packs an (index, generation) reference to a table entry.
#[inline]
pub(crate) const fn entry_ref(index: usize, generation: u32) -> u64 {
    (index as u64 & 0xffff_ffff) | ((generation as u64) << 32)
}

/// The parts of an entry reference: (index, generation).
#[inline]
pub(crate) const fn decode_entry_ref(word: u64) -> (usize, u32) {
    ((word & 0xffff_ffff) as usize, (word >> 32) as u32)
}

/// The set bits of `mask` (a table mask: entry `i` is bit `i`), lowest first.
pub(crate) fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let i = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        Some(i)
    })
}

// The fixed fields fit where the layout says they are.
const _: () = {
    assert!(E_NAME + MAX_NAME_LEN <= super::ENTRY_SIZE);
    assert!(E_DEPS + 8 * MAX_DEPENDENCIES <= E_OPTIONS);
    assert!(E_DEAD_SINCE + 8 <= E_NAME_LEN);
    assert!(E_STATE + 8 <= LINE);
    assert!(P_FLOOR + 8 <= LINE);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_and_refs_round_trip() {
        assert_eq!(
            decode_state(state_word(STATE_ACTIVE, 7, u32::MAX)),
            (STATE_ACTIVE, 7, u32::MAX)
        );
        assert_eq!(decode_entry_ref(entry_ref(63, 9)), (63, 9));
    }

    #[test]
    fn bits_lists_set_entries_lowest_first() {
        assert_eq!(bits(0).count(), 0);
        assert_eq!(bits(0b1010_0001).collect::<Vec<_>>(), [0, 5, 7]);
        assert_eq!(bits(u64::MAX).count(), 64);
        assert_eq!(bits(1 << 63).collect::<Vec<_>>(), [63]);
    }
}
