//! A segment file: a header, two state slots, records, and once sealed a sparse index and a
//! footer.
//!
//! ```text
//! 0              header      magic, version, first sequence, length, creation time, the
//!                            record limit and index interval, where the index starts; CRC
//! 4096, 8192     state A, B  written in turn by group commits (generation, durable
//!                            position, consumer positions; CRC): the newest valid one counts.
//!                            A position is a name's length (its top bit set for a group's),
//!                            the name, the sequence
//! 12288          records     from the first sequence on, back to back (record.rs)
//! index_start    index       sealed: one entry (sequence, offset, time) per index_interval
//!                            bytes of records
//! len - 64       footer      sealed: first and end sequence, where the records end, the index
//!                            count, the last time, a CRC over the records' CRCs; CRC
//! ```
//!
//! A segment is named by its first sequence (`00000000000000000042.seg`), so the directory's
//! listing orders them. The state slots alternate so that a torn slot write (the commit in
//! flight when the power went) leaves the other, older slot whole.

use crate::error::JournalError;

/// The page: the unit of the layout (state slots are pages, so no slot shares a page with
/// records being written).
pub(crate) const PAGE: u64 = 4096;
/// Where the records start.
pub(crate) const RECORDS_START: u64 = 3 * PAGE;
/// The footer's size, at the very end of the file.
pub(crate) const FOOTER: u64 = 64;
/// One index entry: sequence, offset, timestamp.
pub(crate) const INDEX_ENTRY: u64 = 24;
/// The most bytes of consumer positions a state slot holds.
pub(crate) const MAX_POSITIONS_BYTES: usize = PAGE as usize - STATE_POSITIONS;

const MAGIC: &[u8; 8] = b"RMQJSEG\0";
const STATE_MAGIC: &[u8; 8] = b"RMQJSTAT";
const FOOTER_MAGIC: &[u8; 8] = b"RMQJFOOT";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 64;
const STATE_POSITIONS: usize = 48;
/// State flag: written by a clean close; the durable position is the end of the records.
pub(crate) const STATE_CLEAN: u32 = 1;

/// The file name of the segment starting at `first`.
pub(crate) fn name_of(first: u64) -> String {
    format!("{first:020}.seg")
}

/// The first sequence of the segment file called `name`, if it is one.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Where a segment of `len` bytes with index interval `interval` starts its index: room for
/// one entry per `interval` bytes of records, and one more, then the footer.
pub(crate) fn index_start(len: u64, interval: u64) -> u64 {
    let entries = len / interval + 1;
    let bytes = (entries * INDEX_ENTRY + FOOTER).div_ceil(PAGE) * PAGE;
    len.saturating_sub(bytes)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// A segment's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub first: u64,
    pub len: u64,
    pub created_ns: u64,
    pub max_record: u32,
    pub index_interval: u32,
    pub index_start: u64,
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[16..24].copy_from_slice(&self.first.to_le_bytes());
        b[24..32].copy_from_slice(&self.len.to_le_bytes());
        b[32..40].copy_from_slice(&self.created_ns.to_le_bytes());
        b[40..44].copy_from_slice(&self.max_record.to_le_bytes());
        b[44..48].copy_from_slice(&self.index_interval.to_le_bytes());
        b[48..56].copy_from_slice(&self.index_start.to_le_bytes());
        let crc = crc32c::crc32c(&b[..56]);
        b[56..60].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Reads and checks a header: `Ok(None)` for an all-zero one (a segment whose creation
    /// never reached the disk), an error naming `name` for anything else that is not ours
    /// or does not agree with the file (its `file_len`, its name's `first`).
    pub(crate) fn decode(
        b: &[u8],
        name: &str,
        first: u64,
        file_len: u64,
    ) -> Result<Option<Self>, JournalError> {
        let corrupt = |reason: &str| JournalError::Corrupt {
            segment: name.to_owned(),
            offset: 0,
            reason: reason.to_owned(),
        };
        if b[..HEADER_LEN].iter().all(|&x| x == 0) {
            return Ok(None);
        }
        if &b[0..8] != MAGIC {
            return Err(JournalError::Foreign {
                name: name.to_owned(),
                reason: "not a ringmq journal segment (bad magic)".into(),
            });
        }
        if u32_at(b, 8) != VERSION {
            return Err(JournalError::Foreign {
                name: name.to_owned(),
                reason: format!(
                    "segment format version {} (this build reads {VERSION})",
                    u32_at(b, 8)
                ),
            });
        }
        if crc32c::crc32c(&b[..56]) != u32_at(b, 56) {
            return Err(corrupt("the segment header's CRC does not match"));
        }
        let header = SegmentHeader {
            first: u64_at(b, 16),
            len: u64_at(b, 24),
            created_ns: u64_at(b, 32),
            max_record: u32_at(b, 40),
            index_interval: u32_at(b, 44),
            index_start: u64_at(b, 48),
        };
        if header.first != first || header.len != file_len {
            return Err(corrupt("the header disagrees with the file's name or length"));
        }
        if header.index_interval == 0
            || header.index_start != index_start(header.len, header.index_interval as u64)
            || header.index_start < RECORDS_START
        {
            return Err(corrupt("the header's index geometry is impossible"));
        }
        Ok(Some(header))
    }
}

/// A state slot: what a group commit persisted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct State {
    pub generation: u64,
    /// Every sequence below this is durable ...
    pub durable: u64,
    /// ... and its record starts here in this segment.
    pub durable_offset: u64,
    pub flags: u32,
    /// Durable consumers' positions, by name.
    pub positions: Vec<Persisted>,
}

/// One consumer's persisted position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Persisted {
    pub name: String,
    pub position: u64,
    /// A group's (its workers share the stream), not a subscriber's.
    pub group: bool,
}

/// The top bit of a position's name length: the position is a group's.
const GROUP_BIT: u8 = 0x80;

/// The offset of state slot `generation % 2`.
pub(crate) fn state_offset(generation: u64) -> u64 {
    PAGE * (1 + generation % 2)
}

impl State {
    /// The slot's bytes, `None` if the positions do not fit.
    pub(crate) fn encode(&self) -> Option<Vec<u8>> {
        let mut positions = Vec::new();
        for p in &self.positions {
            let len = u8::try_from(p.name.len()).ok().filter(|&n| n < GROUP_BIT)?;
            positions.push(if p.group { len | GROUP_BIT } else { len });
            positions.extend_from_slice(p.name.as_bytes());
            positions.extend_from_slice(&p.position.to_le_bytes());
        }
        if positions.len() > MAX_POSITIONS_BYTES {
            return None;
        }
        let mut b = vec![0u8; STATE_POSITIONS + positions.len()];
        b[0..8].copy_from_slice(STATE_MAGIC);
        b[8..16].copy_from_slice(&self.generation.to_le_bytes());
        b[16..24].copy_from_slice(&self.durable.to_le_bytes());
        b[24..32].copy_from_slice(&self.durable_offset.to_le_bytes());
        b[32..36].copy_from_slice(&self.flags.to_le_bytes());
        b[36..40].copy_from_slice(&(positions.len() as u32).to_le_bytes());
        b[STATE_POSITIONS..].copy_from_slice(&positions);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&b[..40]), &b[STATE_POSITIONS..]);
        b[40..44].copy_from_slice(&crc.to_le_bytes());
        Some(b)
    }

    /// Reads a slot (`PAGE` bytes): `None` if it is all zero (never written) or does not
    /// check (`Err(())`, torn or rotted).
    pub(crate) fn decode(b: &[u8]) -> Result<Option<State>, ()> {
        if b.iter().all(|&x| x == 0) {
            return Ok(None);
        }
        if &b[0..8] != STATE_MAGIC {
            return Err(());
        }
        let len = u32_at(b, 36) as usize;
        if len > MAX_POSITIONS_BYTES {
            return Err(());
        }
        let crc = crc32c::crc32c_append(
            crc32c::crc32c(&b[..40]),
            &b[STATE_POSITIONS..STATE_POSITIONS + len],
        );
        if crc != u32_at(b, 40) {
            return Err(());
        }
        let mut positions = Vec::new();
        let mut rest = &b[STATE_POSITIONS..STATE_POSITIONS + len];
        while let Some((&len, tail)) = rest.split_first() {
            let n = (len & !GROUP_BIT) as usize;
            if tail.len() < n + 8 {
                return Err(());
            }
            let name = std::str::from_utf8(&tail[..n]).map_err(|_| ())?.to_owned();
            positions.push(Persisted {
                name,
                position: u64_at(tail, n),
                group: len & GROUP_BIT != 0,
            });
            rest = &tail[n + 8..];
        }
        Ok(Some(State {
            generation: u64_at(b, 8),
            durable: u64_at(b, 16),
            durable_offset: u64_at(b, 24),
            flags: u32_at(b, 32),
            positions,
        }))
    }
}

/// A sealed segment's footer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Footer {
    pub first: u64,
    /// One past the last sequence.
    pub end: u64,
    pub records_end: u64,
    pub index_count: u64,
    pub last_timestamp: u64,
    /// CRC32C over the records' CRCs in order.
    pub records_crc: u32,
}

impl Footer {
    pub(crate) fn encode(&self) -> [u8; FOOTER as usize] {
        let mut b = [0u8; FOOTER as usize];
        b[0..8].copy_from_slice(FOOTER_MAGIC);
        b[8..16].copy_from_slice(&self.first.to_le_bytes());
        b[16..24].copy_from_slice(&self.end.to_le_bytes());
        b[24..32].copy_from_slice(&self.records_end.to_le_bytes());
        b[32..40].copy_from_slice(&self.index_count.to_le_bytes());
        b[40..48].copy_from_slice(&self.last_timestamp.to_le_bytes());
        b[48..52].copy_from_slice(&self.records_crc.to_le_bytes());
        let crc = crc32c::crc32c(&b[..56]);
        b[56..60].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Reads a footer: `Ok(None)` if all zero (not sealed), `Err(())` if it does not check.
    pub(crate) fn decode(b: &[u8]) -> Result<Option<Footer>, ()> {
        if b.iter().all(|&x| x == 0) {
            return Ok(None);
        }
        if &b[0..8] != FOOTER_MAGIC || crc32c::crc32c(&b[..56]) != u32_at(b, 56) {
            return Err(());
        }
        Ok(Some(Footer {
            first: u64_at(b, 8),
            end: u64_at(b, 16),
            records_end: u64_at(b, 24),
            index_count: u64_at(b, 32),
            last_timestamp: u64_at(b, 40),
            records_crc: u32_at(b, 48),
        }))
    }
}

/// One sparse index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub sequence: u64,
    pub offset: u64,
    pub timestamp: u64,
}

impl IndexEntry {
    pub(crate) fn encode_all(entries: &[IndexEntry]) -> Vec<u8> {
        let mut b = Vec::with_capacity(entries.len() * INDEX_ENTRY as usize);
        for e in entries {
            b.extend_from_slice(&e.sequence.to_le_bytes());
            b.extend_from_slice(&e.offset.to_le_bytes());
            b.extend_from_slice(&e.timestamp.to_le_bytes());
        }
        b
    }

    pub(crate) fn decode(b: &[u8]) -> IndexEntry {
        IndexEntry {
            sequence: u64_at(b, 0),
            offset: u64_at(b, 8),
            timestamp: u64_at(b, 16),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strangers_are_not_segments() {
        assert_eq!(parse_name(&name_of(42)), Some(42));
        assert_eq!(parse_name(&name_of(u64::MAX)), Some(u64::MAX));
        for name in [
            "42.seg",
            "0000000000000000004x.seg",
            "00000000000000000042.log",
            "writer.lock",
        ] {
            assert_eq!(parse_name(name), None, "{name}");
        }
    }

    #[test]
    fn a_state_slot_round_trips_and_a_torn_one_is_refused() {
        let state = State {
            generation: 5,
            durable: 100,
            durable_offset: 20480,
            flags: STATE_CLEAN,
            positions: vec![
                Persisted {
                    name: "audit".into(),
                    position: 90,
                    group: false,
                },
                Persisted {
                    name: "billing".into(),
                    position: 77,
                    group: true,
                },
            ],
        };
        let mut page = vec![0u8; PAGE as usize];
        let bytes = state.encode().unwrap();
        page[..bytes.len()].copy_from_slice(&bytes);
        assert_eq!(State::decode(&page), Ok(Some(state)));
        assert_eq!(State::decode(&[0u8; PAGE as usize]), Ok(None));
        page[20] ^= 1;
        assert_eq!(State::decode(&page), Err(()));
    }

    #[test]
    fn the_index_and_footer_fit_before_the_end() {
        for (len, interval) in [
            (64 << 10, 4096),
            (64 << 20, 4096),
            (1 << 30, 1 << 16),
            (256 << 10, 64),
        ] {
            let start = index_start(len, interval);
            let room = (len - FOOTER - start) / INDEX_ENTRY;
            assert!(room > (start - RECORDS_START) / interval, "{len} {interval}");
            assert_eq!(start % PAGE, 0);
        }
    }
}
