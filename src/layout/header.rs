//! The header, line 0 of every ring: the format's writer ([`fields`], then [`INIT_DONE`] last)
//! and its reader ([`decode`]), next to the struct that fixes the offsets.
//!
//! A creator writes every field with plain (Relaxed) stores while nobody can see the ring,
//! then the init word with Release. An opener reads the init word with Acquire first, then
//! the rest, and trusts none of it until [`decode`] has checked every field against the
//! others.

use super::{Layout, LINE};
#[cfg(not(loom))]
use super::{Params, ProducerMode};

/// The first eight bytes of every ring: "RINGMQ" then two zero bytes, little-endian.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"RINGMQ\0\0");
/// The layout version this build writes and accepts.
pub(crate) const VERSION: u64 = 1;
/// The init word's value once the creator has written everything else.
pub(crate) const INIT_DONE: u64 = u64::from_le_bytes(*b"ringINIT");

/// Header flag: producers and consumers notify futex waiters (blocking waits are allowed).
pub(crate) const FLAG_WAKEUPS: u64 = 1;
/// Header flag: a fixed-size ring, whose slots hold the payload alone (no slot header); single
/// producer, published by the cursor alone.
pub(crate) const FLAG_FIXED: u64 = 2;

/// The header. Never referenced in place (every field is read and written as an atomic word
/// through `Region`); it fixes the field offsets below, which `offset_of!` derives from it,
/// and documents the format. All fields are little-endian.
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
const H_VERSION: usize = std::mem::offset_of!(Header, version);
const H_CAPACITY: usize = std::mem::offset_of!(Header, capacity);
const H_SLOT_SIZE: usize = std::mem::offset_of!(Header, slot_size);
const H_MODE: usize = std::mem::offset_of!(Header, mode);
const H_MAX_CONSUMERS: usize = std::mem::offset_of!(Header, max_consumers);
const H_FLAGS: usize = std::mem::offset_of!(Header, flags);
const H_INITIAL_SEQUENCE: usize = std::mem::offset_of!(Header, initial_sequence);
const H_TOTAL_LEN: usize = std::mem::offset_of!(Header, total_len);
pub(crate) const H_INIT: usize = std::mem::offset_of!(Header, init);

/// The writer's half: every header field of a ring laid out by `layout`, as (offset, value),
/// for a creator to store before it stores [`INIT_DONE`] at [`H_INIT`] with Release.
pub(crate) fn fields(layout: &Layout) -> [(usize, u64); 9] {
    let params = &layout.params;
    let flags = if params.wakeups { FLAG_WAKEUPS } else { 0 } | if params.fixed { FLAG_FIXED } else { 0 };
    [
        (H_MAGIC, MAGIC),
        (H_VERSION, VERSION),
        (H_CAPACITY, params.capacity),
        (H_SLOT_SIZE, params.slot_size as u64),
        (H_MODE, params.mode.to_word()),
        (H_MAX_CONSUMERS, params.max_consumers as u64),
        (H_FLAGS, flags),
        (H_INITIAL_SEQUENCE, params.initial_sequence),
        (H_TOTAL_LEN, layout.total_len as u64),
    ]
}

/// Why [`decode`] refused a header.
#[cfg(not(loom))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// The magic is not [`MAGIC`].
    NotARing,
    /// The version is not [`VERSION`].
    Version(u64),
    /// Values no ring can have.
    Corrupt(String),
}

/// The reader's half: the layout a header describes, read through `word` (offset -> value),
/// after its init word was seen (with Acquire) to be [`INIT_DONE`]. Every field is checked,
/// against the others too; the caller checks the file's length against `total_len`.
#[cfg(not(loom))]
pub(crate) fn decode(word: impl Fn(usize) -> u64) -> Result<Layout, HeaderError> {
    if word(H_MAGIC) != MAGIC {
        return Err(HeaderError::NotARing);
    }
    let version = word(H_VERSION);
    if version != VERSION {
        return Err(HeaderError::Version(version));
    }
    let mode = match word(H_MODE) {
        1 => ProducerMode::Single,
        2 => ProducerMode::Multi,
        other => return Err(HeaderError::Corrupt(format!("producer mode {other}"))),
    };
    let flags = word(H_FLAGS);
    if flags & !(FLAG_WAKEUPS | FLAG_FIXED) != 0 {
        return Err(HeaderError::Corrupt(format!("unknown flags {flags:#x}")));
    }
    let params = Params {
        capacity: word(H_CAPACITY),
        slot_size: usize::try_from(word(H_SLOT_SIZE)).unwrap_or(usize::MAX),
        mode,
        max_consumers: usize::try_from(word(H_MAX_CONSUMERS)).unwrap_or(usize::MAX),
        initial_sequence: word(H_INITIAL_SEQUENCE),
        wakeups: flags & FLAG_WAKEUPS != 0,
        fixed: flags & FLAG_FIXED != 0,
    };
    let layout = params
        .validate()
        .map_err(|e| HeaderError::Corrupt(e.to_string()))?;
    let total = word(H_TOTAL_LEN);
    if total != layout.total_len as u64 {
        return Err(HeaderError::Corrupt(format!(
            "header says {total} bytes, its parameters make {}",
            layout.total_len
        )));
    }
    Ok(layout)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn layout(fixed: bool) -> Layout {
        Params {
            capacity: 64,
            slot_size: 32,
            mode: ProducerMode::Single,
            max_consumers: 5,
            initial_sequence: 1 << 40,
            wakeups: false,
            fixed,
        }
        .validate()
        .unwrap()
    }

    /// A header image: the writer's fields and the init word.
    fn image(layout: &Layout) -> [u64; 16] {
        let mut words = [0u64; 16];
        for (offset, value) in fields(layout) {
            words[offset / 8] = value;
        }
        words[H_INIT / 8] = INIT_DONE;
        words
    }

    #[test]
    fn header_fields_keep_their_offsets() {
        // The on-disk and shared-memory format: changing one is a new layout VERSION.
        let offsets = [
            H_MAGIC,
            H_VERSION,
            H_CAPACITY,
            H_SLOT_SIZE,
            H_MODE,
            H_MAX_CONSUMERS,
            H_FLAGS,
            H_INITIAL_SEQUENCE,
            H_TOTAL_LEN,
            H_INIT,
        ];
        assert_eq!(offsets, [0, 8, 16, 24, 32, 40, 48, 56, 64, 120]);
    }

    #[test]
    fn what_the_writer_writes_the_reader_reads() {
        for fixed in [false, true] {
            let written = layout(fixed);
            let words = image(&written);
            assert_eq!(decode(|offset| words[offset / 8]), Ok(written));
        }
    }

    #[test]
    fn every_bad_field_is_refused() {
        let words = image(&layout(false));
        let with = |offset: usize, value: u64| {
            let mut w = words;
            w[offset / 8] = value;
            decode(move |o| w[o / 8])
        };
        assert_eq!(with(H_MAGIC, 7), Err(HeaderError::NotARing));
        assert_eq!(with(H_VERSION, 9), Err(HeaderError::Version(9)));
        let corrupt = [
            (H_MODE, 3),
            (H_FLAGS, 4),
            (H_CAPACITY, 3),
            (H_SLOT_SIZE, 12),
            (H_MAX_CONSUMERS, 0),
            (H_INITIAL_SEQUENCE, u64::MAX),
            (H_TOTAL_LEN, 1),
        ];
        for (offset, value) in corrupt {
            assert!(
                matches!(with(offset, value), Err(HeaderError::Corrupt(_))),
                "offset {offset} = {value}"
            );
        }
    }
}
