//! Reading a journal back: [`Replay`] from a sequence, the oldest or newest record, or a
//! time, through the segments' mappings with every record's CRC checked. A seek jumps by the
//! sparse index (a sealed segment's, or the active one's in the writer's memory) and walks
//! from there.

use super::record::{self, Decoded, RECORD_HEADER};
use super::segment::{IndexEntry, SegmentHeader, INDEX_ENTRY, RECORDS_START};
use super::{corrupt, record_area, Active, DiskFile, Journal, Record, RecordsCrc, Sealed, Seek};
use crate::error::JournalError;
use std::collections::VecDeque;
use std::time::UNIX_EPOCH;

impl Journal {
    /// The records from `from` to the end of what is written now ([`Journal::written`]),
    /// read through the segments' mappings with every record's CRC checked.
    ///
    /// # Errors
    ///
    /// [`JournalError::Retained`], [`JournalError::NotYet`]; from the iterator,
    /// [`JournalError::Corrupt`] for a record that does not check.
    pub fn replay(&self, from: Seek) -> Result<Replay<'_>, JournalError> {
        self.view().replay(from)
    }

    fn view(&self) -> View<'_> {
        View {
            sealed: &self.sealed,
            active: Some(&self.active),
            next: self.written(),
            max_record: self.options.max_record,
        }
    }
}

/// What a replay reads: the sealed segments, then the active one up to its `offset` (the
/// writer's, or what a reader has found written).
#[derive(Clone, Copy, Debug)]
pub(super) struct View<'a> {
    pub sealed: &'a VecDeque<Sealed>,
    pub active: Option<&'a Active>,
    /// One past the last sequence readable.
    pub next: u64,
    pub max_record: usize,
}

impl<'a> View<'a> {
    /// The oldest sequence readable.
    pub(super) fn oldest(&self) -> u64 {
        match (self.sealed.front(), self.active) {
            (Some(s), _) => s.header.first,
            (None, Some(a)) => a.header.first,
            (None, None) => self.next,
        }
    }

    /// The records from `from` to `next`; see [`Journal::replay`].
    pub(super) fn replay(self, from: Seek) -> Result<Replay<'a>, JournalError> {
        let sequence = match from {
            Seek::Earliest => self.oldest(),
            Seek::Latest => self.next,
            Seek::Sequence(s) => s,
            Seek::Time(t) => {
                let t = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
                return self.replay_from_time(t);
            }
        };
        if sequence < self.oldest() {
            return Err(JournalError::Retained {
                requested: sequence,
                oldest: self.oldest(),
            });
        }
        if sequence > self.next {
            return Err(JournalError::NotYet {
                requested: sequence,
                next: self.next,
            });
        }
        let segment = self.sealed.partition_point(|s| s.footer.end <= sequence);
        let mut replay = self.replay_at_segment(segment);
        replay.skip_to(sequence)?;
        Ok(replay)
    }

    fn replay_at_segment(self, segment: usize) -> Replay<'a> {
        let first = match (self.sealed.get(segment), self.active) {
            (Some(s), _) => s.header.first,
            (None, Some(a)) => a.header.first,
            (None, None) => self.next,
        };
        Replay {
            view: self,
            segment,
            offset: RECORDS_START,
            next: first,
            end: self.next,
            crcs: Some(RecordsCrc::default()),
        }
    }

    fn replay_from_time(self, t: u64) -> Result<Replay<'a>, JournalError> {
        let segment = self.sealed.partition_point(|s| s.footer.last_timestamp < t);
        let mut replay = self.replay_at_segment(segment);
        // Jump by the index to the last entry before `t`, then walk.
        let index = replay.index();
        if let Some(entry) = index.iter().rev().find(|e| e.timestamp < t) {
            replay.jump(entry);
        }
        loop {
            let at = (replay.segment, replay.offset, replay.next);
            match replay.next() {
                Some(Ok(record)) if record.timestamp < t => continue,
                Some(Ok(_)) => {
                    // Stepped back over one record: this segment is no longer read whole.
                    (replay.segment, replay.offset, replay.next) = at;
                    replay.crcs = None;
                    return Ok(replay);
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(replay),
            }
        }
    }
}

/// Records of a journal, in order, from a starting sequence to the end it had when the
/// replay began; see [`Journal::replay`].
#[derive(Debug)]
pub struct Replay<'j> {
    view: View<'j>,
    /// Index into the sealed segments, then the active one.
    segment: usize,
    offset: u64,
    next: u64,
    end: u64,
    /// The CRCs of the current segment's records read so far, while it is read from its first
    /// record: at a sealed segment's end they are checked against its footer's.
    crcs: Option<RecordsCrc>,
}

impl<'j> Replay<'j> {
    /// The sequence of the next record this replay yields (its end when done).
    pub fn next_sequence(&self) -> u64 {
        self.next
    }

    /// The file, header and end of records of the current segment.
    fn current(&self) -> Option<(&'j dyn DiskFile, &'j str, SegmentHeader, u64)> {
        match (self.view.sealed.get(self.segment), self.view.active) {
            (Some(s), _) => Some((&*s.file, &s.name, s.header, s.footer.records_end)),
            (None, Some(a)) => Some((&*a.file, &a.name, a.header, a.offset)),
            (None, None) => None,
        }
    }

    /// The current segment's sparse index.
    fn index(&self) -> Vec<IndexEntry> {
        match (self.view.sealed.get(self.segment), self.view.active) {
            (Some(s), _) => {
                let count = s.footer.index_count;
                let start = s.header.index_start;
                let bytes = record_area(&*s.file, start, start + count * INDEX_ENTRY);
                bytes
                    .chunks_exact(INDEX_ENTRY as usize)
                    .map(IndexEntry::decode)
                    .collect()
            }
            (None, Some(a)) => a.index.clone(),
            (None, None) => Vec::new(),
        }
    }

    /// Moves to an index entry's record of the current segment.
    fn jump(&mut self, entry: &IndexEntry) {
        if entry.offset != self.offset {
            self.crcs = None;
        }
        self.offset = entry.offset;
        self.next = entry.sequence;
    }

    /// Moves to `sequence` in the current segment: by the index, then record by record.
    fn skip_to(&mut self, sequence: u64) -> Result<(), JournalError> {
        if let Some(entry) = self.index().iter().rev().find(|e| e.sequence <= sequence) {
            self.jump(entry);
        }
        while self.next < sequence {
            match self.next() {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        Ok(())
    }
}

impl<'j> Iterator for Replay<'j> {
    type Item = Result<Record<'j>, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let (file, name, header, records_end) = self.current()?;
        if self.offset >= records_end {
            if self.segment >= self.view.sealed.len() {
                return Some(Err(corrupt(
                    name,
                    self.offset,
                    "the records end before the journal does",
                )));
            }
            // This segment is done; the next one starts at `next`. Read whole, its records'
            // CRCs must be the ones its footer was sealed with.
            let footer = &self.view.sealed[self.segment].footer;
            if let Some(crcs) = &self.crcs {
                if crcs.value() != footer.records_crc {
                    return Some(Err(corrupt(
                        name,
                        file.len() - super::segment::FOOTER,
                        "the records are not the ones the footer was sealed with",
                    )));
                }
            }
            self.segment += 1;
            self.offset = RECORDS_START;
            self.crcs = Some(RecordsCrc::default());
            return self.next();
        }
        let bytes = record_area(file, self.offset, records_end);
        let max = self.view.max_record.max(header.max_record as usize);
        match record::decode(bytes, self.next, max, true) {
            Decoded::Record(h) => {
                let payload = &bytes[RECORD_HEADER..RECORD_HEADER + h.len as usize];
                if let Some(crcs) = &mut self.crcs {
                    crcs.push(h.crc);
                }
                self.offset += record::encoded_len(h.len as usize) as u64;
                self.next += 1;
                Some(Ok(Record {
                    sequence: h.sequence,
                    timestamp: h.timestamp,
                    flags: h.flags,
                    payload,
                }))
            }
            Decoded::End => Some(Err(corrupt(
                name,
                self.offset,
                "the records end before the journal does",
            ))),
            Decoded::Invalid(reason) => Some(Err(corrupt(name, self.offset, reason))),
        }
    }
}
