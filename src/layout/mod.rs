//! The one memory layout every backend holds: header, hot lines, producer and consumer tables,
//! slots. This module is the line map and the parameters; [`header`] is the header's format
//! (its writer and its reader), [`slot`] the slot header word, [`table`] the table entries.
//!
//! ```text
//! offset 0      header          one 128-byte line of fixed fields (header.rs)
//! offset 128    hot lines       one 128-byte line each: claim, cursor, gating, the two
//!                               wake-up events, the consumer masks
//! offset 896    producer table  MAX_PRODUCERS lines: each multi-producer's state and floor
//! TABLE_OFFSET  consumer table  max_consumers entries of ENTRY_SIZE bytes (3 lines each)
//! slots_offset  slots           capacity slots of slot_size bytes, 128-byte aligned
//! ```
//!
//! Every field is a little-endian 64-bit word read and written atomically, so the same code
//! works whether the bytes sit on the heap, in /dev/shm or in a file, and a peer process that
//! writes into the mapping can produce wrong values but never a torn read. Offsets, never
//! pointers, are stored; every value read from the mapping is checked before use.

pub(crate) mod header;
pub(crate) mod slot;
pub(crate) mod table;

use crate::error::BuildError;
use crate::limits::{
    MAX_CAPACITY, MAX_CONSUMERS, MAX_PRODUCERS, MAX_SEQUENCE, MAX_SLOT_SIZE, MIN_FIXED_SIZE, MIN_SLOT_SIZE,
    SLOT_HEADER,
};

/// Bytes between two independently written hot words: two 64-byte lines, because adjacent
/// line prefetch pairs lines on x86 (the reason crossbeam's `CachePadded` is 128 on x86_64).
pub(crate) const LINE: usize = 128;

// Hot lines, each written by one kind of party.
/// Multi-producer claim counter: the next sequence to be claimed (producers, fetch_add).
pub(crate) const CLAIM: usize = LINE;
/// Single-producer cursor: every sequence below it is published (the producer, Release).
pub(crate) const CURSOR: usize = 2 * LINE;
/// Gating line (slow path only): the highest write limit any producer has acted on, the
/// attach epoch, and the single-producer ownership word.
pub(crate) const WRITE_LIMIT: usize = 3 * LINE;
pub(crate) const ATTACH_EPOCH: usize = 3 * LINE + 8;
pub(crate) const PRODUCER_OWNED: usize = 3 * LINE + 16;
/// Statistics: slots skipped after a producer died holding them, and messages redelivered
/// after a worker stopped holding them.
pub(crate) const SKIPPED_COUNT: usize = 3 * LINE + 24;
pub(crate) const REDELIVERED_COUNT: usize = 3 * LINE + 32;
/// "Published" event: futex word and waiter count, for consumers waiting on producers.
pub(crate) const PUBLISHED_EVENT: usize = 4 * LINE;
/// "Released" event, for producers on a full ring and consumers waiting on dependencies.
pub(crate) const RELEASED_EVENT: usize = 5 * LINE;
/// Offset of the waiter count inside an event line (the futex word is at +0).
pub(crate) const EVENT_WAITERS: usize = 8;
/// Consumer masks: bit i set while table entry i gates producers / is a group.
pub(crate) const ACTIVE_MASK: usize = 6 * LINE;
pub(crate) const GROUP_MASK: usize = 6 * LINE + 8;

/// Where the producer table starts: one line per multi-producer handle (`table/producers.rs`).
pub(crate) const PRODUCER_TABLE: usize = 7 * LINE;
/// Where the consumer table starts.
pub(crate) const TABLE_OFFSET: usize = PRODUCER_TABLE + MAX_PRODUCERS * LINE;
/// One consumer table entry: line 0 is the hot position and state; lines 1-2 the cold
/// description (field offsets in [`table`]).
pub(crate) const ENTRY_SIZE: usize = 3 * LINE;

/// How many single publishes a single producer's cursor may lag behind its stamps (at most:
/// see [`Layout::cursor_every`]). A stamp publishes its message on its own; the cursor is for
/// consumers far enough behind to take many messages at once, and they read it on every
/// poll, so a producer that stored it on every publish would pull its line back from them
/// on nearly every message (guarded by the `perf/` spsc scenario's single publishes).
pub(crate) const CURSOR_EVERY: u64 = 16;

/// How producers claim sequences; fixed when the ring is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProducerMode {
    /// One producer handle at a time; publishing is plain stores, no read-modify-write.
    Single,
    /// Any number of producer handles; claims are a `fetch_add`, publishes per-slot stamps.
    Multi,
}

impl ProducerMode {
    #[inline]
    pub(crate) fn to_word(self) -> u64 {
        match self {
            ProducerMode::Single => 1,
            ProducerMode::Multi => 2,
        }
    }
}

/// Which protocol publishes a ring's slots: the sequencer its producers and consumers run
/// (`sequencer/`). Derived from the parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SequencerKind {
    /// One producer; stamps publish single messages, the cursor publishes batches.
    Single,
    /// Any number of producers; each slot's stamp publishes it.
    Multi,
    /// One producer, header-less slots; the cursor alone publishes.
    Fixed,
}

/// The creation parameters of a ring, validated by [`Params::validate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Params {
    pub capacity: u64,
    pub slot_size: usize,
    pub mode: ProducerMode,
    pub max_consumers: usize,
    pub initial_sequence: u64,
    pub wakeups: bool,
    /// Fixed-size messages in header-less slots ([`header::FLAG_FIXED`]).
    pub fixed: bool,
}

/// Offsets derived from [`Params`]; the only place that does layout arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub params: Params,
    pub sequencer: SequencerKind,
    pub slots_offset: usize,
    pub total_len: usize,
    pub index_mask: u64,
}

impl Params {
    /// Checks every parameter, returning the first violation as a typed error.
    pub(crate) fn validate(self) -> Result<Layout, BuildError> {
        if self.capacity == 0 || !self.capacity.is_power_of_two() || self.capacity > MAX_CAPACITY {
            return Err(BuildError::InvalidCapacity {
                capacity: self.capacity,
            });
        }
        let min_slot = if self.fixed { MIN_FIXED_SIZE } else { MIN_SLOT_SIZE };
        if self.slot_size % 8 != 0 || !(min_slot..=MAX_SLOT_SIZE).contains(&self.slot_size) {
            return Err(BuildError::InvalidSlotSize {
                slot_size: self.slot_size,
            });
        }
        if self.fixed && self.mode != ProducerMode::Single {
            return Err(BuildError::FixedSizeMultiProducer);
        }
        if self.max_consumers == 0 || self.max_consumers > MAX_CONSUMERS {
            return Err(BuildError::InvalidMaxConsumers {
                max_consumers: self.max_consumers,
            });
        }
        if self.initial_sequence > MAX_SEQUENCE {
            return Err(BuildError::InvalidInitialSequence {
                initial_sequence: self.initial_sequence,
            });
        }
        let table_end = TABLE_OFFSET + self.max_consumers * ENTRY_SIZE;
        let slots_offset = table_end.next_multiple_of(LINE);
        let total_len = usize::try_from(self.capacity)
            .ok()
            .and_then(|c| c.checked_mul(self.slot_size))
            .and_then(|s| s.checked_add(slots_offset))
            .filter(|&t| t <= isize::MAX as usize)
            .ok_or(BuildError::TooLarge {
                capacity: self.capacity,
                slot_size: self.slot_size,
            })?;
        let sequencer = match (self.fixed, self.mode) {
            (true, _) => SequencerKind::Fixed,
            (false, ProducerMode::Single) => SequencerKind::Single,
            (false, ProducerMode::Multi) => SequencerKind::Multi,
        };
        Ok(Layout {
            params: self,
            sequencer,
            slots_offset,
            total_len,
            index_mask: self.capacity - 1,
        })
    }

    /// The first parameter in which an existing ring's (`self`) differ from `expected`:
    /// (name, expected, found).
    #[cfg(not(loom))]
    pub(crate) fn difference(&self, expected: &Params) -> Option<(&'static str, u64, u64)> {
        let fields = [
            ("capacity", expected.capacity, self.capacity),
            ("slot_size", expected.slot_size as u64, self.slot_size as u64),
            ("producer_mode", expected.mode.to_word(), self.mode.to_word()),
            (
                "max_consumers",
                expected.max_consumers as u64,
                self.max_consumers as u64,
            ),
            (
                "initial_sequence",
                expected.initial_sequence,
                self.initial_sequence,
            ),
            ("wakeups", expected.wakeups as u64, self.wakeups as u64),
            ("fixed_size", expected.fixed as u64, self.fixed as u64),
        ];
        fields.into_iter().find(|(_, want, have)| want != have)
    }
}

impl Layout {
    /// Byte offset of consumer table entry `index`.
    #[inline]
    pub(crate) const fn entry(&self, index: usize) -> usize {
        TABLE_OFFSET + index * ENTRY_SIZE
    }

    /// Byte offset of producer table entry `index`.
    #[inline]
    pub(crate) const fn producer_entry(&self, index: usize) -> usize {
        PRODUCER_TABLE + index * LINE
    }

    /// Byte offset of the slot that holds `sequence`.
    #[inline]
    pub(crate) const fn slot(&self, sequence: u64) -> usize {
        self.slots_offset + ((sequence & self.index_mask) as usize) * self.params.slot_size
    }

    /// The mask of consumer table entries that exist (masks read from the mapping are cut
    /// to it).
    #[inline]
    pub(crate) const fn valid_mask(&self) -> u64 {
        if self.params.max_consumers >= 64 {
            u64::MAX
        } else {
            (1u64 << self.params.max_consumers) - 1
        }
    }

    /// Whether `offset` is one of the layout's 64-bit atomic words (loom builds one loom
    /// atomic per such word and no others).
    #[cfg(loom)]
    #[inline]
    pub(crate) fn is_word(&self, offset: usize) -> bool {
        if offset < LINE {
            return true;
        }
        if offset < PRODUCER_TABLE {
            return offset % LINE < 40;
        }
        if offset < TABLE_OFFSET {
            return offset % LINE < 16;
        }
        let table_end = self.entry(self.params.max_consumers);
        if offset < table_end {
            let within = (offset - TABLE_OFFSET) % ENTRY_SIZE;
            return table::is_entry_word(within);
        }
        // A fixed-size ring's slots hold no word, only payload.
        !self.params.fixed
            && offset >= self.slots_offset
            && (offset - self.slots_offset) % self.params.slot_size == 0
    }

    /// Whether `offset` is one of the layout's futex words.
    #[cfg(loom)]
    #[inline]
    pub(crate) fn is_futex_word(&self, offset: usize) -> bool {
        offset == PUBLISHED_EVENT || offset == RELEASED_EVENT
    }

    /// How many single publishes a single producer's cursor may lag behind their stamps:
    /// [`CURSOR_EVERY`], or under half a lap in a ring of fewer than 32 slots, so the stamps
    /// past the cursor are all of the current lap and show the exact end.
    #[inline]
    pub(crate) const fn cursor_every(&self) -> u64 {
        let half = self.params.capacity / 2;
        let every = if half < CURSOR_EVERY { half } else { CURSOR_EVERY };
        if every == 0 {
            1
        } else {
            every
        }
    }

    /// Bytes of a slot before its payload: the slot header, or none in a fixed-size ring.
    #[inline]
    pub(crate) const fn header_len(&self) -> usize {
        if self.params.fixed {
            0
        } else {
            SLOT_HEADER
        }
    }

    /// Bytes of payload a slot can hold (a fixed-size ring's message size).
    #[inline]
    pub(crate) const fn payload_capacity(&self) -> usize {
        self.params.slot_size - self.header_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline]
    fn params(capacity: u64, slot_size: usize) -> Params {
        Params {
            capacity,
            slot_size,
            mode: ProducerMode::Single,
            max_consumers: 4,
            initial_sequence: 0,
            wakeups: true,
            fixed: false,
        }
    }

    #[test]
    fn hot_words_do_not_share_lines() {
        let lines = [
            CLAIM,
            CURSOR,
            WRITE_LIMIT,
            PUBLISHED_EVENT,
            RELEASED_EVENT,
            ACTIVE_MASK,
        ];
        for (i, a) in lines.iter().enumerate() {
            assert_eq!(a % LINE, 0);
            for b in &lines[i + 1..] {
                assert_ne!(a / LINE, b / LINE);
            }
        }
    }

    #[test]
    fn bad_parameters_are_typed_errors() {
        type Change = fn(&mut Params);
        let cases: [(Change, BuildError); 9] = [
            (|p| p.capacity = 0, BuildError::InvalidCapacity { capacity: 0 }),
            (|p| p.capacity = 3, BuildError::InvalidCapacity { capacity: 3 }),
            (
                |p| p.capacity = 1 << 31,
                BuildError::InvalidCapacity { capacity: 1 << 31 },
            ),
            (|p| p.slot_size = 8, BuildError::InvalidSlotSize { slot_size: 8 }),
            (
                |p| p.slot_size = 20,
                BuildError::InvalidSlotSize { slot_size: 20 },
            ),
            (
                |p| p.slot_size = MAX_SLOT_SIZE + 8,
                BuildError::InvalidSlotSize {
                    slot_size: MAX_SLOT_SIZE + 8,
                },
            ),
            (
                |p| p.max_consumers = 65,
                BuildError::InvalidMaxConsumers { max_consumers: 65 },
            ),
            (
                |p| p.max_consumers = 0,
                BuildError::InvalidMaxConsumers { max_consumers: 0 },
            ),
            (
                |p| p.initial_sequence = MAX_SEQUENCE + 1,
                BuildError::InvalidInitialSequence {
                    initial_sequence: MAX_SEQUENCE + 1,
                },
            ),
        ];
        for (change, expected) in cases {
            let mut p = params(8, 64);
            change(&mut p);
            assert_eq!(p.validate(), Err(expected));
        }
        assert!(params(1, 16).validate().is_ok());
    }

    #[test]
    fn the_cursor_lags_less_than_a_lap() {
        for (capacity, every) in [(1, 1), (2, 1), (4, 2), (8, 4), (32, 16), (1 << 20, 16)] {
            let layout = params(capacity, 64).validate().unwrap();
            assert_eq!(layout.cursor_every(), every, "capacity {capacity}");
            assert!(every.is_power_of_two() && (every < capacity || capacity == 1));
        }
    }

    #[test]
    fn fixed_size_slots_are_the_payload_alone() {
        let mut p = params(8, 8);
        p.fixed = true;
        let layout = p.validate().unwrap();
        assert_eq!((layout.header_len(), layout.payload_capacity()), (0, 8));
        assert_eq!(layout.total_len, layout.slots_offset + 8 * 8);
        assert_eq!(layout.sequencer, SequencerKind::Fixed);
        p.slot_size = 12;
        assert!(matches!(p.validate(), Err(BuildError::InvalidSlotSize { .. })));
        p.slot_size = 64;
        p.mode = ProducerMode::Multi;
        assert!(matches!(p.validate(), Err(BuildError::FixedSizeMultiProducer)));
    }

    #[test]
    fn the_sequencer_follows_the_parameters() {
        let mut p = params(8, 64);
        assert_eq!(p.validate().unwrap().sequencer, SequencerKind::Single);
        p.mode = ProducerMode::Multi;
        assert_eq!(p.validate().unwrap().sequencer, SequencerKind::Multi);
    }

    #[test]
    fn slot_offsets_wrap_by_capacity() {
        let layout = params(8, 32).validate().unwrap();
        assert_eq!(layout.slots_offset % LINE, 0);
        assert_eq!(layout.slot(0), layout.slots_offset);
        assert_eq!(layout.slot(9), layout.slots_offset + 32);
        assert_eq!(layout.slot(MAX_SEQUENCE + 7), layout.slots_offset + 7 * 32);
        assert_eq!(layout.total_len, layout.slots_offset + 8 * 32);
    }

    #[test]
    fn the_valid_mask_covers_exactly_the_table() {
        for (max_consumers, mask) in [(1, 1), (6, 0b11_1111), (63, u64::MAX >> 1), (64, u64::MAX)] {
            let mut p = params(8, 32);
            p.max_consumers = max_consumers;
            assert_eq!(p.validate().unwrap().valid_mask(), mask, "{max_consumers}");
        }
    }
}
