//! The one memory layout every backend holds: header, hot lines, consumer table, slots.
//!
//! ```text
//! offset 0      header          one 128-byte line, #[repr(C)]-style fixed fields (below)
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
//!
//! A slot is an 8-byte header word followed by the payload. The header packs, in one word
//! written last: the stamp (the low 32 bits of `sequence + 1`), the payload length (24
//! bits) and flags (8 bits). In multi-producer mode that one word, written last, is the
//! publish and consumers find published slots by their stamps; in single-producer mode it
//! publishes its slot to a consumer waiting on it, and the cursor publishes whole batches.
//! Either way the stamp tells a reader or a recovery scan which lap a slot holds.
//!
//! A fixed-size ring ([`FLAG_FIXED`]) has no slot header: a slot is the payload alone, every
//! message is `slot_size` bytes, there is one producer and its cursor alone publishes.

use crate::error::Error;
use crate::sequence::MAX_SEQUENCE;

/// Bytes between two independently written hot words: two 64-byte lines, because adjacent
/// line prefetch pairs lines on x86 (the reason crossbeam's `CachePadded` is 128 on x86_64).
pub(crate) const LINE: usize = 128;

/// The first eight bytes of every ring: "RINGMQ" then two zero bytes, little-endian.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"RINGMQ\0\0");
/// The layout version this build writes and accepts.
pub(crate) const VERSION: u64 = 1;
/// The init word's value once the creator has written everything else.
pub(crate) const INIT_DONE: u64 = u64::from_le_bytes(*b"ringINIT");

/// The header, line 0 of every ring. Never referenced in place (every field is read and
/// written as an atomic word through `Region`); it fixes the field offsets below, which
/// `offset_of!` derives from it, and documents the format. All fields are little-endian.
#[repr(C)]
#[allow(dead_code)]
pub(crate) struct Header {
    /// [`MAGIC`].
    magic: u64,
    /// [`VERSION`].
    version: u64,
    /// Number of slots, a power of two.
    capacity: u64,
    /// Bytes per slot, header included (fixed-size rings: the message size).
    slot_size: u64,
    /// 1 single producer, 2 multi producer.
    mode: u64,
    /// Entries in the consumer table.
    max_consumers: u64,
    /// [`FLAG_WAKEUPS`], [`FLAG_FIXED`].
    flags: u64,
    /// Sequence of the first message.
    initial_sequence: u64,
    /// Bytes of the whole ring.
    total_len: u64,
    reserved: [u64; 6],
    /// [`INIT_DONE`] once the creator has written everything else (Release).
    init: u64,
}

const _: () = assert!(std::mem::size_of::<Header>() == LINE);

pub(crate) const H_MAGIC: usize = std::mem::offset_of!(Header, magic);
pub(crate) const H_VERSION: usize = std::mem::offset_of!(Header, version);
pub(crate) const H_CAPACITY: usize = std::mem::offset_of!(Header, capacity);
pub(crate) const H_SLOT_SIZE: usize = std::mem::offset_of!(Header, slot_size);
pub(crate) const H_MODE: usize = std::mem::offset_of!(Header, mode);
pub(crate) const H_MAX_CONSUMERS: usize = std::mem::offset_of!(Header, max_consumers);
pub(crate) const H_FLAGS: usize = std::mem::offset_of!(Header, flags);
pub(crate) const H_INITIAL_SEQUENCE: usize = std::mem::offset_of!(Header, initial_sequence);
pub(crate) const H_TOTAL_LEN: usize = std::mem::offset_of!(Header, total_len);
pub(crate) const H_INIT: usize = std::mem::offset_of!(Header, init);

/// Header flag: producers and consumers notify futex waiters (blocking waits are allowed).
pub(crate) const FLAG_WAKEUPS: u64 = 1;
/// Header flag: a fixed-size ring, whose slots hold the payload alone (no slot header); single
/// producer, published by the cursor alone.
pub(crate) const FLAG_FIXED: u64 = 2;

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

/// Where the producer table starts: one line per multi-producer handle (see `producers.rs`).
pub(crate) const PRODUCER_TABLE: usize = 7 * LINE;
/// Most multi-producer handles a ring can have at once.
pub const MAX_PRODUCERS: usize = 32;
/// Producer entry fields: the state word (state, generation) and the claim floor.
pub(crate) const P_STATE: usize = 0;
pub(crate) const P_FLOOR: usize = 8;

/// Where the consumer table starts.
pub(crate) const TABLE_OFFSET: usize = PRODUCER_TABLE + MAX_PRODUCERS * LINE;
/// One table entry: line 0 is the hot position and state; lines 1-2 the cold description.
pub(crate) const ENTRY_SIZE: usize = 3 * LINE;

// Entry fields, relative to the entry.
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

/// Most consumers a ring can have (the masks are one word).
pub const MAX_CONSUMERS: usize = 64;
/// Most dependencies one consumer or group may declare.
pub const MAX_DEPENDENCIES: usize = 8;
/// Longest consumer or group name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 64;
/// Largest capacity (slots). Keeps a lap far inside the 32-bit stamp.
pub const MAX_CAPACITY: u64 = 1 << 30;
/// Bytes of slot header before the payload.
pub const SLOT_HEADER: usize = 8;
/// Smallest slot: the header and one u64 of payload.
pub const MIN_SLOT_SIZE: usize = SLOT_HEADER + 8;
/// Largest slot: the payload length field is 24 bits.
pub const MAX_SLOT_SIZE: usize = SLOT_HEADER + (1 << 24) - 8;
/// Smallest slot of a fixed-size ring (no header): one u64.
pub const MIN_FIXED_SIZE: usize = 8;

/// Slot flag: the slot holds no message (a producer gave it up); consumers pass it.
pub(crate) const SLOT_SKIPPED: u8 = 1;
/// Slot flag, only on a header that is not yet published: the length a batch claim set.
pub(crate) const SLOT_PENDING_LEN: u8 = 0x80;

/// Option: a subscriber that keeps its entry (and position) when its process dies.
pub(crate) const OPT_DURABLE: u64 = 1;
/// Option: a worker whose claim waits in its group's orphan mask for another worker.
pub(crate) const OPT_ORPHAN: u64 = 2;

/// Entry states.
pub(crate) const STATE_FREE: u64 = 0;
pub(crate) const STATE_CLAIMING: u64 = 1;
pub(crate) const STATE_ACTIVE: u64 = 2;

/// Entry kinds.
pub(crate) const KIND_SUBSCRIBER: u64 = 1;
pub(crate) const KIND_GROUP: u64 = 2;
pub(crate) const KIND_WORKER: u64 = 3;

/// A worker holding nothing publishes this position, so it never gates (see `group.rs`).
pub(crate) const IDLE: u64 = u64::MAX;

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

/// The creation parameters of a ring, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Params {
    pub capacity: u64,
    pub slot_size: usize,
    pub mode: ProducerMode,
    pub max_consumers: usize,
    pub initial_sequence: u64,
    pub wakeups: bool,
    /// Fixed-size messages in header-less slots ([`FLAG_FIXED`]).
    pub fixed: bool,
}

/// Offsets derived from [`Params`]; the only place that does layout arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub params: Params,
    pub slots_offset: usize,
    pub total_len: usize,
    pub index_mask: u64,
}

impl Params {
    /// Checks every parameter, returning the first violation as a typed error.
    pub(crate) fn validate(self) -> Result<Layout, Error> {
        if self.capacity == 0 || !self.capacity.is_power_of_two() || self.capacity > MAX_CAPACITY {
            return Err(Error::InvalidCapacity {
                capacity: self.capacity,
            });
        }
        let min_slot = if self.fixed { MIN_FIXED_SIZE } else { MIN_SLOT_SIZE };
        if self.slot_size % 8 != 0 || !(min_slot..=MAX_SLOT_SIZE).contains(&self.slot_size) {
            return Err(Error::InvalidSlotSize {
                slot_size: self.slot_size,
            });
        }
        if self.fixed && self.mode != ProducerMode::Single {
            return Err(Error::FixedSizeMultiProducer);
        }
        if self.max_consumers == 0 || self.max_consumers > MAX_CONSUMERS {
            return Err(Error::InvalidMaxConsumers {
                max_consumers: self.max_consumers,
            });
        }
        if self.initial_sequence > MAX_SEQUENCE {
            return Err(Error::InvalidInitialSequence {
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
            .ok_or(Error::TooLarge {
                capacity: self.capacity,
                slot_size: self.slot_size,
            })?;
        Ok(Layout {
            params: self,
            slots_offset,
            total_len,
            index_mask: self.capacity - 1,
        })
    }
}

impl Params {
    /// Checks that an existing ring's parameters (`self`) are the `expected` ones.
    #[cfg(not(loom))]
    pub(crate) fn check_same(&self, expected: &Params, path: &std::path::Path) -> Result<(), Error> {
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
        match fields.into_iter().find(|(_, want, have)| want != have) {
            None => Ok(()),
            Some((field, expected, found)) => Err(Error::ParamsMismatch {
                path: path.display().to_string(),
                field,
                expected,
                found,
            }),
        }
    }
}

impl Layout {
    /// Byte offset of table entry `index`.
    #[inline]
    pub(crate) const fn entry(&self, index: usize) -> usize {
        TABLE_OFFSET + index * ENTRY_SIZE
    }

    /// Byte offset of the slot that holds `sequence`.
    #[inline]
    pub(crate) const fn slot(&self, sequence: u64) -> usize {
        self.slots_offset + ((sequence & self.index_mask) as usize) * self.params.slot_size
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
            return within < 32
                || (E_KIND..E_DEAD_SINCE + 8).contains(&within)
                || (E_NAME_LEN..E_NAME + MAX_NAME_LEN).contains(&within);
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

    /// How many single publishes a single producer's cursor may lag behind their stamps
    /// (`producer::CURSOR_EVERY`, fewer in a ring of under 32 slots): under half a lap, so
    /// the stamps past the cursor are all of the current lap and show the exact end.
    #[inline]
    pub(crate) const fn cursor_every(&self) -> u64 {
        let half = self.params.capacity / 2;
        let every = if half < crate::producer::CURSOR_EVERY {
            half
        } else {
            crate::producer::CURSOR_EVERY
        };
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

/// The stamp a slot carries once `sequence` is published in it.
#[inline]
pub(crate) const fn stamp(sequence: u64) -> u32 {
    sequence.wrapping_add(1) as u32
}

/// Packs a slot header word: stamp, 24-bit length, flags.
#[inline]
pub(crate) const fn slot_header(sequence: u64, len: usize, flags: u8) -> u64 {
    stamp(sequence) as u64 | ((len as u64 & 0xff_ffff) << 32) | ((flags as u64) << 56)
}

/// The parts of a slot header word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlotHeader {
    pub stamp: u32,
    pub len: usize,
    pub flags: u8,
}

impl SlotHeader {
    #[inline]
    pub(crate) const fn decode(word: u64) -> Self {
        SlotHeader {
            stamp: word as u32,
            len: ((word >> 32) & 0xff_ffff) as usize,
            flags: (word >> 56) as u8,
        }
    }
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

// The fixed fields fit where the layout says they are.
const _: () = {
    assert!(H_INIT + 8 <= LINE);
    assert!(E_NAME + MAX_NAME_LEN <= ENTRY_SIZE);
    assert!(E_DEPS + 8 * MAX_DEPENDENCIES <= E_OPTIONS);
    assert!(E_DEAD_SINCE + 8 <= E_NAME_LEN);
    assert!(E_STATE + 8 <= LINE);
};

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
        assert!(matches!(
            params(0, 64).validate(),
            Err(Error::InvalidCapacity { .. })
        ));
        assert!(matches!(
            params(3, 64).validate(),
            Err(Error::InvalidCapacity { .. })
        ));
        assert!(matches!(
            params(1 << 31, 64).validate(),
            Err(Error::InvalidCapacity { .. })
        ));
        assert!(matches!(
            params(8, 8).validate(),
            Err(Error::InvalidSlotSize { .. })
        ));
        assert!(matches!(
            params(8, 20).validate(),
            Err(Error::InvalidSlotSize { .. })
        ));
        assert!(matches!(
            params(8, MAX_SLOT_SIZE + 8).validate(),
            Err(Error::InvalidSlotSize { .. })
        ));
        let mut p = params(8, 64);
        p.max_consumers = 65;
        assert!(matches!(p.validate(), Err(Error::InvalidMaxConsumers { .. })));
        p.max_consumers = 1;
        p.initial_sequence = MAX_SEQUENCE + 1;
        assert!(matches!(p.validate(), Err(Error::InvalidInitialSequence { .. })));
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
        p.slot_size = 12;
        assert!(matches!(p.validate(), Err(Error::InvalidSlotSize { .. })));
        p.slot_size = 64;
        p.mode = ProducerMode::Multi;
        assert!(matches!(p.validate(), Err(Error::FixedSizeMultiProducer)));
    }

    #[test]
    fn header_fields_keep_their_offsets() {
        // The on-disk and shared-memory format: changing one is a new layout VERSION.
        let fields = [
            H_MAGIC,
            H_VERSION,
            H_CAPACITY,
            H_SLOT_SIZE,
            H_MODE,
            H_MAX_CONSUMERS,
            H_FLAGS,
        ];
        assert_eq!(fields, [0, 8, 16, 24, 32, 40, 48]);
        assert_eq!((H_INITIAL_SEQUENCE, H_TOTAL_LEN, H_INIT), (56, 64, 120));
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
    fn slot_header_round_trips() {
        for &(seq, len, flags) in &[
            (0u64, 0usize, 0u8),
            (41, 7, 1),
            (u32::MAX as u64, 0xff_ffff, 0xff),
            (MAX_SEQUENCE, 3, 2),
        ] {
            let h = SlotHeader::decode(slot_header(seq, len, flags));
            assert_eq!(
                h,
                SlotHeader {
                    stamp: stamp(seq),
                    len,
                    flags
                }
            );
        }
        // Two sequences a lap apart never share a stamp.
        assert_ne!(stamp(5), stamp(5 + MAX_CAPACITY));
    }

    #[test]
    fn state_and_refs_round_trip() {
        assert_eq!(
            decode_state(state_word(STATE_ACTIVE, 7, u32::MAX)),
            (STATE_ACTIVE, 7, u32::MAX)
        );
        assert_eq!(decode_entry_ref(entry_ref(63, 9)), (63, 9));
    }
}
