//! The slot header: one 64-bit word in front of each slot's payload (none in a fixed-size
//! ring, whose slots are the payload alone).
//!
//! ```text
//!  63      56 55                   32 31                               0
//! +----------+-----------------------+----------------------------------+
//! |  flags   |   length (24 bits)    |  stamp: low 32 bits of seq + 1   |
//! +----------+-----------------------+----------------------------------+
//! ```
//!
//! The word is written last, with Release: in a multi-producer ring it is the publish, and
//! consumers find published slots by their stamps; in a single-producer ring it publishes its
//! slot to a consumer waiting on it, and the cursor publishes whole batches. Either way the
//! stamp tells a reader or a recovery scan which lap a slot holds: a fresh ring stamps each
//! slot with the sequence one lap before the first that lands there, so "published" is never
//! true of an unwritten slot.

use crate::error::TypeError;

/// Checks that a `T` can be a message of slots whose payload holds `capacity` bytes (in a
/// `fixed`-size ring: is exactly its message size). Payloads start 8 bytes into a 128-aligned
/// slot area, or at a multiple of 8 in a fixed-size ring, so `T` may need no more than 8-byte
/// alignment.
pub(crate) fn check_type<T>(capacity: usize, fixed: bool) -> Result<(), TypeError> {
    let size = std::mem::size_of::<T>();
    let align = std::mem::align_of::<T>();
    if size > capacity || align > 8 || (fixed && size != capacity) {
        return Err(TypeError::Mismatch {
            size,
            align,
            capacity,
        });
    }
    Ok(())
}

/// Slot flag: the slot holds no message (a producer gave it up); consumers pass it.
pub(crate) const SLOT_SKIPPED: u8 = 1;
/// Slot flag: the slot holds one fragment of a message larger than a slot
/// ([`crate::Producer::publish_large`]); with [`SLOT_FIRST`] and [`SLOT_LAST`] it tells which.
/// A message's fragments fill consecutive slots of one batch claim, so they are published
/// together and never interleave with another producer's.
pub(crate) const SLOT_FRAGMENT: u8 = 2;
/// With [`SLOT_FRAGMENT`]: the message's first fragment.
pub(crate) const SLOT_FIRST: u8 = 4;
/// With [`SLOT_FRAGMENT`]: the message's last fragment.
pub(crate) const SLOT_LAST: u8 = 8;
/// The flags that say which part of a message a slot holds.
pub(crate) const SLOT_FRAGMENT_MASK: u8 = SLOT_FRAGMENT | SLOT_FIRST | SLOT_LAST;
/// Slot flag, only on a header that is not yet published: the length a batch claim set.
pub(crate) const SLOT_PENDING_LEN: u8 = 0x80;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{MAX_CAPACITY, MAX_SEQUENCE};

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
}
