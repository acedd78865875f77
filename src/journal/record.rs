//! A journal record: a 32-byte header and the payload, padded to 8 bytes.
//!
//! ```text
//! 0   u32 payload length
//! 4   u32 CRC32C of bytes 0..4, then 8..32, then the payload
//! 8   u64 the record's sequence (absolute, as in the ring)
//! 16  u64 append time, nanoseconds since the Unix epoch (the writer's clock)
//! 24  u32 flags (FLAG_*)
//! 28  u32 reserved, zero
//! 32  payload, then zero bytes to the next multiple of 8
//! ```
//!
//! The CRC covers every header field and the payload, so neither a torn write (part of a
//! record on disk), nor zero bytes past the end, nor a record of an earlier use of the same
//! bytes passes: the reader checks that the sequence is the one it expects next. A header of
//! 32 zero bytes is the end of the records (a real record's CRC is never zero over all-zero
//! fields: CRC32C's inversions make it nonzero).

/// Bytes before a record's payload.
pub(crate) const RECORD_HEADER: usize = 32;

/// The record stands for a ring slot given up by a dead producer: no payload.
pub const FLAG_SKIPPED: u32 = 1;

/// The record holds one fragment of a message larger than a ring slot
/// ([`crate::Fragment`]); with [`FLAG_FIRST`] or [`FLAG_LAST`], its first or last. The
/// fragment bits are the ring slot header's, so the stage copies them across unchanged.
pub const FLAG_FRAGMENT: u32 = crate::layout::slot::SLOT_FRAGMENT as u32;
/// With [`FLAG_FRAGMENT`]: the message's first fragment.
pub const FLAG_FIRST: u32 = crate::layout::slot::SLOT_FIRST as u32;
/// With [`FLAG_FRAGMENT`]: the message's last fragment.
pub const FLAG_LAST: u32 = crate::layout::slot::SLOT_LAST as u32;

/// Every flag this version writes; a record with another bit set is not one of ours.
const KNOWN_FLAGS: u32 = FLAG_SKIPPED | FLAG_FRAGMENT | FLAG_FIRST | FLAG_LAST;

/// The record flags of a piece of a message.
#[inline]
pub(crate) fn fragment_flags(fragment: Option<crate::Fragment>) -> u32 {
    match fragment {
        None => 0,
        Some(crate::Fragment::First) => FLAG_FRAGMENT | FLAG_FIRST,
        Some(crate::Fragment::Middle) => FLAG_FRAGMENT,
        Some(crate::Fragment::Last) => FLAG_FRAGMENT | FLAG_LAST,
    }
}

/// The bytes a record of `len` payload bytes takes.
#[inline]
pub(crate) const fn encoded_len(len: usize) -> usize {
    (RECORD_HEADER + len + 7) & !7
}

/// A decoded record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub len: u32,
    pub crc: u32,
    pub sequence: u64,
    pub timestamp: u64,
    pub flags: u32,
}

/// The CRC of the record at the start of `record`, whose payload is `len` bytes: bytes 0..4,
/// then 8 to the payload's end (two calls, around the CRC's own field).
fn crc_of(record: &[u8], len: usize) -> u32 {
    let crc = crc32c::crc32c(&record[0..4]);
    crc32c::crc32c_append(crc, &record[8..RECORD_HEADER + len])
}

/// Writes the record into `out` (exactly `encoded_len(payload.len())` bytes) and returns its
/// CRC.
pub(crate) fn encode(out: &mut [u8], sequence: u64, timestamp: u64, flags: u32, payload: &[u8]) -> u32 {
    debug_assert_eq!(out.len(), encoded_len(payload.len()));
    let len = payload.len();
    let len_bytes = (len as u32).to_le_bytes();
    // The CRC covers bytes 0..4 and then 8 onwards: with the length placed at 4..8 for the
    // moment, that is the one contiguous run 4.. (one call instead of two), after which the
    // length and the CRC go to their places.
    out[4..8].copy_from_slice(&len_bytes);
    out[8..16].copy_from_slice(&sequence.to_le_bytes());
    out[16..24].copy_from_slice(&timestamp.to_le_bytes());
    out[24..28].copy_from_slice(&flags.to_le_bytes());
    out[28..32].fill(0);
    out[RECORD_HEADER..RECORD_HEADER + len].copy_from_slice(payload);
    out[RECORD_HEADER + len..].fill(0);
    let crc = crc32c::crc32c(&out[4..RECORD_HEADER + len]);
    out[0..4].copy_from_slice(&len_bytes);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(crc, crc_of(out, len));
    crc
}

/// What lies at a record position.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// A whole record: its header; the payload is `bytes[32..32 + len]`.
    Record(RecordHeader),
    /// 32 zero bytes: no record was written here.
    End,
    /// Something else: a torn or corrupt record, or one of another sequence.
    Invalid(&'static str),
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads the header at the start of `bytes` (everything to the end of the record area) and
/// checks it: the sequence `expected`, a length within `max_len` and `bytes`, known flags,
/// and, if `check_crc`, the CRC (a trusted region is walked by headers alone).
pub(crate) fn decode(bytes: &[u8], expected: u64, max_len: usize, check_crc: bool) -> Decoded {
    if bytes.len() < RECORD_HEADER {
        return Decoded::End;
    }
    let head: &[u8; RECORD_HEADER] = bytes[..RECORD_HEADER].try_into().expect("32 bytes");
    if head.iter().all(|&b| b == 0) {
        return Decoded::End;
    }
    let header = RecordHeader {
        len: u32_at(head, 0),
        crc: u32_at(head, 4),
        sequence: u64_at(head, 8),
        timestamp: u64_at(head, 16),
        flags: u32_at(head, 24),
    };
    let len = header.len as usize;
    if len > max_len || encoded_len(len) > bytes.len() {
        return Decoded::Invalid("a length past the maximum or the segment");
    }
    if header.sequence != expected {
        return Decoded::Invalid("a record of another sequence");
    }
    if header.flags & !KNOWN_FLAGS != 0 || u32_at(head, 28) != 0 {
        return Decoded::Invalid("unknown flags");
    }
    if check_crc && crc_of(bytes, len) != header.crc {
        return Decoded::Invalid("a CRC mismatch");
    }
    Decoded::Record(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(sequence: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0; encoded_len(payload.len())];
        encode(&mut out, sequence, 7, 0, payload);
        out
    }

    #[test]
    fn a_record_decodes_to_what_was_encoded() {
        let bytes = record(42, b"hello");
        assert_eq!(bytes.len(), 40);
        match decode(&bytes, 42, 1 << 20, true) {
            Decoded::Record(h) => {
                assert_eq!((h.len, h.sequence, h.timestamp, h.flags), (5, 42, 7, 0));
                assert_eq!(&bytes[32..37], b"hello");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_crc_covers_the_length_then_everything_after_the_crc_as_the_format_says() {
        for len in [0usize, 1, 7, 8, 100, 1000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5a).collect();
            let bytes = record(u64::MAX - 3, &payload);
            let mut covered = (len as u32).to_le_bytes().to_vec();
            covered.extend_from_slice(&bytes[8..RECORD_HEADER + len]);
            let stored = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
            assert_eq!(stored, crc32c::crc32c(&covered), "payload of {len} bytes");
            assert_eq!(&bytes[0..4], &(len as u32).to_le_bytes(), "the length in place");
        }
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let bytes = record(9, b"payload!");
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            // Bits in the padding are not covered, and there is none here (8 + 32 bytes).
            assert!(
                !matches!(decode(&bad, 9, 1 << 20, true), Decoded::Record(_)),
                "bit {bit} flipped and still a record"
            );
        }
    }

    #[test]
    fn zeros_are_the_end_and_another_sequence_is_not_a_record() {
        assert_eq!(decode(&[0; 64], 3, 1 << 20, true), Decoded::End);
        let bytes = record(3, b"x");
        assert!(matches!(decode(&bytes, 4, 1 << 20, true), Decoded::Invalid(_)));
        assert!(matches!(decode(&bytes[..20], 3, 1 << 20, true), Decoded::End));
        assert!(matches!(decode(&bytes, 3, 0, true), Decoded::Invalid(_)));
    }

    #[test]
    fn an_empty_record_of_sequence_zero_is_not_all_zero() {
        let mut bytes = vec![0; encoded_len(0)];
        encode(&mut bytes, 0, 0, 0, b"");
        assert_ne!(&bytes[..32], &[0u8; 32][..]);
        assert!(matches!(decode(&bytes, 0, 16, true), Decoded::Record(_)));
    }
}
