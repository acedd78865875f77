//! Opening a journal: the segments found, checked (headers, footers, continuity), the last
//! one recovered from its newest valid state slot, and what a crash left cut off; see
//! `docs/architecture.md`'s journal section for the rules.

use super::io::{self, Disk, DiskFile, DiskLock};
use super::record::{self, Decoded, RECORD_HEADER};
use super::segment::{
    self, Footer, Persisted, SegmentHeader, State, FOOTER, INDEX_ENTRY, PAGE, RECORDS_START,
};
use super::{
    corrupt, create_segment, io_error, record_area, Active, Journal, JournalOptions, Pending, Sealed,
};
use crate::error::JournalError;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// One segment file found at open.
pub(super) struct Found {
    pub name: String,
    pub first: u64,
    pub file: Arc<dyn DiskFile>,
}

pub(super) fn read_page(
    file: &dyn DiskFile,
    name: &str,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>, JournalError> {
    let mut buf = vec![0; len as usize];
    file.read_at(offset, &mut buf)
        .map_err(|e| io_error(name, "read", &e))?;
    Ok(buf)
}

pub(super) fn read_header(found: &Found) -> Result<Option<SegmentHeader>, JournalError> {
    if found.file.len() < 4 * PAGE {
        return Err(corrupt(&found.name, 0, "shorter than a segment can be"));
    }
    let bytes = read_page(&*found.file, &found.name, 0, 64)?;
    SegmentHeader::decode(&bytes, &found.name, found.first, found.file.len())
}

pub(super) fn read_footer(
    file: &dyn DiskFile,
    name: &str,
) -> Result<Result<Option<Footer>, ()>, JournalError> {
    let bytes = read_page(file, name, file.len() - FOOTER, FOOTER)?;
    Ok(Footer::decode(&bytes))
}

/// The segment files in `disk`, opened by `open`, oldest first; any other name (but the
/// reserved ones) is [`JournalError::Foreign`].
pub(super) fn list_segments(
    disk: &dyn Disk,
    open: impl Fn(&str) -> std::io::Result<Arc<dyn DiskFile>>,
) -> Result<Vec<Found>, JournalError> {
    let mut found = Vec::new();
    for name in disk
        .list()
        .map_err(|e| io_error("the journal directory", "list", &e))?
    {
        if io::RESERVED_NAMES.contains(&name.as_str())
            || name.ends_with(io::PART_SUFFIX)
            || name.ends_with(super::progress::SUFFIX)
        {
            continue;
        }
        let Some(first) = segment::parse_name(&name) else {
            return Err(JournalError::Foreign {
                name,
                reason: "not a segment file name (20 digits and .seg)".into(),
            });
        };
        let file = match open(&name) {
            Ok(file) => file,
            // Deleted since the listing (retention, or a writer dropping an unborn segment).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(&name, "open", &e)),
        };
        found.push(Found { name, first, file });
    }
    found.sort_by_key(|f| f.first);
    Ok(found)
}

/// Opens what `disk` holds, or creates the first segment; see the module documentation.
pub(super) fn recover(
    disk: Arc<dyn Disk>,
    options: JournalOptions,
    lock: DiskLock,
) -> Result<Journal, JournalError> {
    // A segment whose allocation a dead writer left half-way (never renamed, never used), or
    // a spare it allocated ahead of a roll.
    for name in disk
        .list()
        .map_err(|e| io_error("the journal directory", "list", &e))?
    {
        if let Some(segment) = name.strip_suffix(io::PART_SUFFIX) {
            if segment::parse_name(segment).is_some() || segment == io::SPARE {
                disk.remove(&name).map_err(|e| io_error(&name, "remove", &e))?;
            }
        }
        // A dead writer's spare: allocated, never a segment.
        if name == io::SPARE {
            disk.remove(&name).map_err(|e| io_error(&name, "remove", &e))?;
        }
    }
    let found = list_segments(&*disk, |name| disk.open(name))?;

    // The last segment, and whether it holds anything: an unborn one (its header never
    // reached the disk) or an empty one past an unsealed one (a roll cut short) goes.
    let mut sealed = VecDeque::new();
    let mut last: Option<(Found, SegmentHeader)> = None;
    let count = found.len();
    for (i, f) in found.into_iter().enumerate() {
        let header = read_header(&f)?;
        let is_last = i + 1 == count;
        match header {
            None if is_last => {
                // A roll syncs a segment's header before it writes a record there: records
                // under no header are damage, not a roll cut short.
                if holds_records(&f)? {
                    return Err(corrupt(
                        &f.name,
                        0,
                        "the last segment has no header but holds records",
                    ));
                }
                drop_segment(&*disk, &f.name)?;
            }
            None => return Err(corrupt(&f.name, 0, "a segment before the last has no header")),
            Some(header) => {
                if let Some((prev, prev_header)) = last.take() {
                    let footer = match read_footer(&*prev.file, &prev.name)? {
                        Ok(Some(footer)) => footer,
                        _ if is_last && !holds_records(&f)? => {
                            // A roll cut short before the seal: the new segment is empty.
                            drop_segment(&*disk, &f.name)?;
                            last = Some((prev, prev_header));
                            continue;
                        }
                        _ => {
                            return Err(corrupt(
                                &prev.name,
                                prev.file.len() - FOOTER,
                                "a segment before the last is not sealed",
                            ))
                        }
                    };
                    check_footer(&prev, &prev_header, &footer, header.first)?;
                    sealed.push_back(Sealed {
                        name: prev.name,
                        file: prev.file,
                        header: prev_header,
                        footer,
                    });
                }
                last = Some((f, header));
            }
        }
    }

    let (active, state) = match last {
        None => {
            let first = sealed
                .back()
                .map_or(options.initial_sequence, |s: &Sealed| s.footer.end);
            (create_segment(&*disk, &options, first)?, None)
        }
        Some((f, header)) => match read_footer(&*f.file, &f.name)? {
            Ok(Some(footer)) => {
                check_footer(&f, &header, &footer, footer.end)?;
                let end = footer.end;
                sealed.push_back(Sealed {
                    name: f.name,
                    file: f.file,
                    header,
                    footer,
                });
                (create_segment(&*disk, &options, end)?, None)
            }
            // A torn footer is a seal cut short: the records are whole (synced before it).
            _ => {
                let (active, state) = recover_active(f, header)?;
                (active, Some(state))
            }
        },
    };

    let mut journal = Journal {
        disk,
        options,
        _lock: lock,
        sealed,
        next: active.header.first,
        durable: active.header.first,
        durable_offset: RECORDS_START,
        generation: 0,
        positions: BTreeMap::new(),
        pending: Pending::default(),
        failed: None,
        unwritten: Default::default(),
        syncer: None,
        prefaulter: super::prefault::Prefaulter::spawn(),
        spare: None,
        in_flight: false,
        on_durable: None,
        batching: false,
        active,
    };
    // A tail past the durable position with nothing cut after it: see `continue_tail`.
    let mut tail = None;
    if let Some(state) = state {
        journal.next = state.end;
        journal.generation = state.generation;
        journal.positions = state
            .positions
            .into_iter()
            .map(|p| (p.name, (p.position.min(state.end), p.group)))
            .collect();
        if let Some(p) = journal.sealed.back().map(|s| s.footer.end) {
            debug_assert_eq!(p, journal.active.header.first);
        }
        if !state.zeroed && state.end > state.durable {
            tail = Some((state.durable, state.durable_offset));
        }
    }
    if let Some((durable, durable_offset)) = tail {
        continue_tail(&mut journal, durable, durable_offset);
    } else {
        make_all_durable(&mut journal)?;
    }
    if let Err(e) = journal.disk.sync_dir() {
        return Err(journal.fail("the journal directory", "fsync", &e));
    }
    journal.apply_retention()?;
    if journal.options.durability != super::Durability::EveryRecord {
        let syncer =
            super::syncer::Syncer::spawn(None).map_err(|e| io_error("the syncer thread", "spawn", &e))?;
        journal.syncer = Some(syncer);
    }
    Ok(journal)
}

/// Takes the records found past the durable position as appended and not yet committed, as
/// the writer that died left them: the journal stays at the state slot's durable position,
/// and its next commit makes them durable with whatever is appended after them. Nothing is
/// written, so the disk holds what it held at the crash plus later appends past its end:
/// every crash image of it is one the dead writer could have left. (Syncing them here would
/// make the open wait for the write-back of the whole tail.) Only when nothing was cut:
/// zeros written over a cut tail must reach the disk before a record is written over the
/// place, see `make_all_durable`.
fn continue_tail(journal: &mut Journal, durable: u64, durable_offset: u64) {
    journal.durable = durable;
    journal.durable_offset = durable_offset;
    journal.pending = Pending {
        records: journal.next - durable,
        bytes: journal.active.offset - durable_offset,
        since: Some(std::time::Instant::now()),
    };
}

/// Makes what the open found durable: the records past the durable position, the zeros
/// written over a cut tail (so that no later crash can splice the cut bytes onto records
/// written there next) and a new segment's header; then a clean state says so, the records
/// first, then the slot that vouches for them.
fn make_all_durable(journal: &mut Journal) -> Result<(), JournalError> {
    let name = journal.active.name.clone();
    if let Err(e) = journal.active.file.sync_data() {
        return Err(journal.fail(&name, "fdatasync", &e));
    }
    journal.durable = journal.next;
    journal.durable_offset = journal.active.offset;
    journal.write_clean_state()
}

fn drop_segment(disk: &dyn Disk, name: &str) -> Result<(), JournalError> {
    disk.remove(name).map_err(|e| io_error(name, "remove", &e))?;
    disk.sync_dir()
        .map_err(|e| io_error("the journal directory", "fsync", &e))
}

/// Whether anything was written where a segment's first record goes: a record, or what
/// is left of one (32 zero bytes are where the records end).
pub(super) fn holds_records(f: &Found) -> Result<bool, JournalError> {
    let bytes = read_page(&*f.file, &f.name, RECORDS_START, RECORD_HEADER as u64)?;
    Ok(bytes.iter().any(|&b| b != 0))
}

pub(super) fn check_footer(
    f: &Found,
    header: &SegmentHeader,
    footer: &Footer,
    next_first: u64,
) -> Result<(), JournalError> {
    let at = f.file.len() - FOOTER;
    if footer.first != header.first || footer.end < footer.first {
        return Err(corrupt(&f.name, at, "the footer disagrees with the header"));
    }
    if footer.end != next_first {
        return Err(corrupt(
            &f.name,
            at,
            "the next segment does not start where this one ends",
        ));
    }
    if footer.records_end < RECORDS_START
        || footer.records_end > header.index_start
        || header.index_start + footer.index_count * INDEX_ENTRY > at
    {
        return Err(corrupt(
            &f.name,
            at,
            "the footer's offsets are outside the segment",
        ));
    }
    Ok(())
}

/// What recovery of the active segment found.
struct Recovered {
    generation: u64,
    /// The newest valid state slot's durable position and its offset.
    durable: u64,
    durable_offset: u64,
    end: u64,
    positions: Vec<Persisted>,
    /// Bytes past the last valid record were zeroed: a write over what the disk may hold.
    zeroed: bool,
}

/// Recovers the last, unsealed segment: the newest valid state slot says what is durable;
/// the records below it are walked by their headers (for the index and the footer's CRC),
/// those past it checked in full, and the tail cut at the first that fails.
fn recover_active(f: Found, header: SegmentHeader) -> Result<(Active, Recovered), JournalError> {
    let file = &*f.file;
    let mut best: Option<State> = None;
    let mut torn = 0;
    for slot in 0..2 {
        let bytes = read_page(file, &f.name, segment::state_offset(slot), PAGE)?;
        match State::decode(&bytes) {
            Ok(Some(state)) => {
                if best.as_ref().is_none_or(|b| state.generation > b.generation) {
                    best = Some(state);
                }
            }
            Ok(None) => {}
            Err(()) => torn += 1,
        }
    }
    if torn == 2 {
        // Commits write the slots in turn, each after the other was synced: both bad is
        // not a crash.
        return Err(corrupt(&f.name, PAGE, "both state slots are corrupt"));
    }
    let (durable, durable_offset, generation, positions) = match best {
        Some(s) => (s.durable, s.durable_offset, s.generation + 1, s.positions),
        // Neither slot reached the disk: the segment's creation was cut short, and nothing
        // in it was ever durable.
        None => (header.first, RECORDS_START, 0, Vec::new()),
    };
    if durable < header.first || durable_offset < RECORDS_START || durable_offset > header.index_start {
        return Err(corrupt(
            &f.name,
            PAGE,
            "the state slot's durable position is outside the segment",
        ));
    }
    let mut active = Active {
        name: f.name.clone(),
        file: f.file.clone(),
        header,
        offset: RECORDS_START,
        index: Vec::new(),
        records_crc: Default::default(),
        last_timestamp: 0,
    };
    let area_end = header.index_start;
    let max = header.max_record as usize;
    let mut sequence = header.first;
    // The record at `active.offset`, taken into `active` if it is one.
    let advance = |active: &mut Active, sequence: &mut u64, check_crc: bool| {
        let bytes = record_area(file, active.offset, area_end);
        let decoded = record::decode(bytes, *sequence, max, check_crc);
        if let Decoded::Record(h) = decoded {
            active.note(*sequence, active.offset, h.timestamp, h.crc);
            active.offset += record::encoded_len(h.len as usize) as u64;
            *sequence += 1;
        }
        decoded
    };
    // Below the durable position: trusted, walked by headers.
    while sequence < durable {
        let reason = match advance(&mut active, &mut sequence, false) {
            Decoded::Record(_) => continue,
            Decoded::End => "the records end",
            Decoded::Invalid(reason) => reason,
        };
        let reason = format!("below the durable position: {reason}");
        return Err(corrupt(&f.name, active.offset, &reason));
    }
    if active.offset != durable_offset {
        let reason = "the durable position's record is not where the state slot says";
        return Err(corrupt(&f.name, active.offset, reason));
    }
    // Past it: verified in full, up to the first record that fails.
    while let Decoded::Record(_) = advance(&mut active, &mut sequence, true) {}
    // Whatever lies past the end (a torn record, records after it) is zeroed, so that no
    // later crash can splice it onto records written here next.
    let tail = record_area(file, active.offset, area_end);
    let junk = last_nonzero(tail);
    if let Some(last) = junk {
        io::write_zeros(file, active.offset, active.offset + last as u64 + 1)
            .map_err(|e| io_error(&f.name, "write", &e))?;
    }
    Ok((
        active,
        Recovered {
            generation,
            durable,
            durable_offset,
            end: sequence,
            positions,
            zeroed: junk.is_some(),
        },
    ))
}

/// The index of the last byte of `bytes` that is not zero. The tail it is asked about is
/// most of a segment and mostly zero, so it is checked a page at a time by OR-ing the page
/// together (a loop the compiler makes wide), and only the last page that is not all zero
/// is searched byte by byte.
fn last_nonzero(bytes: &[u8]) -> Option<usize> {
    const CHUNK: usize = PAGE as usize;
    let mut end = bytes.len();
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let chunk = &bytes[start..end];
        if chunk.iter().fold(0u8, |acc, &b| acc | b) != 0 {
            return chunk.iter().rposition(|&b| b != 0).map(|i| start + i);
        }
        end = start;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::last_nonzero;

    #[test]
    fn last_nonzero_finds_the_last_set_byte_anywhere() {
        let mut bytes = vec![0u8; 3 * 4096 + 17];
        assert_eq!(last_nonzero(&bytes), None);
        assert_eq!(last_nonzero(&[]), None);
        for at in [0, 1, 4095, 4096, 8191, 2 * 4096 + 5, bytes.len() - 1] {
            bytes[at] = 0x80;
            assert_eq!(last_nonzero(&bytes), Some(at), "a byte set at {at}");
            // A set byte before the last one changes nothing.
            bytes[0] |= 1;
            assert_eq!(last_nonzero(&bytes), Some(at), "with byte 0 set too, at {at}");
            bytes[0] = 0;
            bytes[at] = 0;
        }
    }
}
