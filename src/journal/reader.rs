//! Reading a journal beside its writer, from any process: [`JournalReader`] maps the
//! segments read-only, takes sealed ones by their footers, and finds how far the active one
//! is written by checking its records; [`JournalReader::refresh`] picks up what the writer
//! has added since (new records, new segments) and lets go of segments retention deleted.
//!
//! The active segment is shared with a writer that may be writing past its last whole
//! record: the reader copies each record out ([`DiskFile::read_at`]) before checking it, so
//! it never forms a slice of bytes being written, and counts a record as written only once
//! its CRC and sequence check. Replays slice only below that point, where records do not
//! change.

use super::record::{self, Decoded, RECORD_HEADER};
use super::recover::{
    check_footer, holds_records, list_segments, read_footer, read_header, read_page, Found,
};
use super::replay::{Replay, View};
use super::segment::{state_offset, Persisted, SegmentHeader, State, PAGE, RECORDS_START};
use super::{corrupt, io_error, Active, Disk, FsDisk, Sealed, Seek};
use crate::error::JournalError;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

/// A read-only view of a journal that follows its writer; see the module documentation.
#[derive(Debug)]
pub struct JournalReader {
    disk: Arc<dyn Disk>,
    sealed: VecDeque<Sealed>,
    active: Option<Active>,
    /// One past the last record found.
    next: u64,
    /// A copy of the record being checked.
    scratch: Vec<u8>,
    /// The consumer positions of the newest state slot found.
    positions: Vec<Persisted>,
}

impl JournalReader {
    /// Opens the journal in directory `dir` for reading.
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] (no such directory, no permission), and what
    /// [`JournalReader::refresh`] returns.
    pub fn open(dir: impl AsRef<Path>) -> Result<JournalReader, JournalError> {
        let dir = dir.as_ref();
        let disk = FsDisk::open(dir).map_err(|e| io_error(&dir.display().to_string(), "open", &e))?;
        Self::open_on(Arc::new(disk))
    }

    /// [`JournalReader::open`] on any [`Disk`].
    ///
    /// # Errors
    ///
    /// As [`JournalReader::refresh`].
    pub fn open_on(disk: Arc<dyn Disk>) -> Result<JournalReader, JournalError> {
        let mut reader = JournalReader {
            disk,
            sealed: VecDeque::new(),
            active: None,
            next: 0,
            scratch: Vec::new(),
            positions: Vec::new(),
        };
        reader.refresh()?;
        Ok(reader)
    }

    /// The disk it reads.
    pub(super) fn disk(&self) -> &Arc<dyn Disk> {
        &self.disk
    }

    /// One past the last record found.
    pub fn next_sequence(&self) -> u64 {
        self.next
    }

    /// The oldest sequence retained.
    pub fn oldest(&self) -> u64 {
        self.view().oldest()
    }

    /// Consumer `name`'s position as the writer last committed it
    /// ([`super::Journal::set_position`]; the stage persists its ring's durable subscribers
    /// and groups), clamped to what is written.
    pub fn position(&self, name: &str) -> Option<u64> {
        self.positions
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.position.min(self.next))
    }

    /// Every committed consumer position, by name (clamped as in [`JournalReader::position`]).
    pub fn positions(&self) -> impl Iterator<Item = (&str, u64)> {
        self.positions
            .iter()
            .map(|p| (p.name.as_str(), p.position.min(self.next)))
    }

    /// The committed positions that are groups' (clamped as in [`JournalReader::position`]).
    pub fn groups(&self) -> impl Iterator<Item = (&str, u64)> {
        self.positions
            .iter()
            .filter(|p| p.group)
            .map(|p| (p.name.as_str(), p.position.min(self.next)))
    }

    /// The number of segment files.
    pub fn segments(&self) -> usize {
        self.sealed.len() + usize::from(self.active.is_some())
    }

    /// The records from `from` to what was found written at the last refresh.
    ///
    /// # Errors
    ///
    /// As [`super::Journal::replay`].
    pub fn replay(&self, from: Seek) -> Result<Replay<'_>, JournalError> {
        self.view().replay(from)
    }

    fn view(&self) -> View<'_> {
        View {
            sealed: &self.sealed,
            active: self.active.as_ref(),
            next: self.next,
            max_record: 0,
        }
    }

    /// Looks again: segments retention deleted go, segments sealed since are taken by their
    /// footers, and the active segment's records written since are checked and added.
    /// Returns one past the last record found.
    ///
    /// # Errors
    ///
    /// [`JournalError::Foreign`] and [`JournalError::Corrupt`] as for the writer's open (a
    /// sealed segment that does not check, a gap); [`JournalError::Io`].
    pub fn refresh(&mut self) -> Result<u64, JournalError> {
        let disk = self.disk.clone();
        let found = list_segments(&*disk, |name| disk.open_read(name))?;
        // Deleted from the front by retention.
        let oldest_found = found.first().map(|f| f.first);
        while self
            .sealed
            .front()
            .is_some_and(|s| oldest_found.is_none_or(|first| s.header.first < first))
        {
            self.sealed.pop_front();
        }
        let known_end = self.sealed.back().map(|s| s.footer.end);
        // Where the next segment taken must start: the segments follow each other with no gap.
        let mut expected = known_end;
        // Whether the active segment was followed, which reads its state slots.
        let mut followed = false;
        let mut found = found.into_iter().peekable();
        while let Some(f) = found.next() {
            if known_end.is_some_and(|end| f.first < end) {
                continue;
            }
            let is_last = found.peek().is_none();
            let Some(header) = self.header_unless_recycled(&f, is_last)? else {
                // Being created (its header not written yet), or recycled: nothing to read.
                continue;
            };
            if expected.is_some_and(|end| f.first != end) {
                return Err(corrupt(
                    &f.name,
                    0,
                    "the segment does not start where the one before it ends",
                ));
            }
            match read_footer(&*f.file, &f.name)? {
                Ok(Some(footer)) => {
                    expected = Some(footer.end);
                    let next_first = found.peek().map_or(footer.end, |n| n.first);
                    check_footer(&f, &header, &footer, next_first)?;
                    if self.active.as_ref().is_some_and(|a| a.name == f.name) {
                        self.active = None;
                    }
                    self.next = footer.end;
                    self.sealed.push_back(Sealed {
                        name: f.name,
                        file: f.file,
                        header,
                        footer,
                    });
                }
                _ => {
                    // The active segment: the last one, or the one before a last one that a
                    // roll is creating (no header yet, or no record yet).
                    let is_last = found.peek().is_none();
                    let rolling = match found.peek() {
                        Some(n) => match read_header(n)? {
                            None => true,
                            Some(_) => !holds_records(n)?,
                        },
                        None => false,
                    };
                    if !is_last && !rolling {
                        return Err(corrupt(
                            &f.name,
                            f.file.len(),
                            "a segment before the last is not sealed",
                        ));
                    }
                    self.follow_active(f, header)?;
                    followed = true;
                    break;
                }
            }
        }
        if !followed {
            self.read_positions()?;
        }
        Ok(self.next)
    }

    /// Lets go of every segment it holds (their mappings, and the shared locks that keep the
    /// writer from recycling them), for a reader that will read no more: a subscriber gone
    /// live. Otherwise a segment retention removes stays allocated while the handle lives.
    /// [`JournalReader::refresh`] takes them up again.
    pub(crate) fn let_go(&mut self) {
        self.sealed.clear();
        self.active = None;
    }

    /// `f`'s header, or `None` if it has none yet (the last segment, which a roll is
    /// creating) or if the writer recycled the file ([`super::JournalOptions::recycle`])
    /// between the listing and the open: the file then holds zeros or another segment's
    /// header, and its name is gone from the directory (the writer renames a segment before it
    /// changes a byte of it), which tells that from a corrupt header. A segment before the
    /// last with no header, or a last one with records but no header (a roll writes the
    /// header before any record), is `Corrupt`.
    fn header_unless_recycled(
        &self,
        f: &Found,
        is_last: bool,
    ) -> Result<Option<SegmentHeader>, JournalError> {
        let error = match read_header(f) {
            Ok(Some(header)) => return Ok(Some(header)),
            Ok(None) if is_last => {
                if !holds_records(f)? {
                    return Ok(None);
                }
                // A record is written after its segment's header: looked at again, the
                // header is there unless it was damaged.
                match read_header(f)? {
                    Some(header) => return Ok(Some(header)),
                    None => corrupt(&f.name, 0, "the last segment has no header but holds records"),
                }
            }
            Ok(None) => corrupt(&f.name, 0, "a segment before the last has no header"),
            Err(e) => e,
        };
        let listed = self
            .disk
            .list()
            .map_err(|e| io_error("the journal directory", "list", &e))?;
        if listed.contains(&f.name) {
            Err(error)
        } else {
            Ok(None)
        }
    }

    /// The positions in the newest valid state slot of the newest segment.
    fn read_positions(&mut self) -> Result<(), JournalError> {
        let newest = match (&self.active, self.sealed.back()) {
            (Some(a), _) => (&*a.file, a.name.as_str()),
            (None, Some(s)) => (&*s.file, s.name.as_str()),
            (None, None) => return Ok(()),
        };
        if let Some(state) = newest_state(newest.0, newest.1)? {
            self.positions = state.positions;
        }
        Ok(())
    }

    /// Takes `f` as the active segment (keeping what was found of it before) and checks the
    /// records written since; the consumer positions come from its newest state slot.
    fn follow_active(&mut self, f: Found, header: SegmentHeader) -> Result<(), JournalError> {
        if self.active.as_ref().is_none_or(|a| a.name != f.name) {
            self.next = header.first;
            self.active = Some(Active {
                name: f.name,
                file: f.file,
                header,
                offset: RECORDS_START,
                index: Vec::new(),
                records_crc: Default::default(),
                last_timestamp: 0,
            });
        }
        let active = self.active.as_mut().expect("just set");
        // Read before the records: every record below the durable position it names was
        // written before it, so the walk below must find them all.
        let durable = newest_state(&*active.file, &active.name)?.map(|state| {
            self.positions = state.positions;
            state.durable
        });
        let end = active.header.index_start;
        let max = active.header.max_record as usize;
        loop {
            let offset = active.offset;
            if end - offset < RECORD_HEADER as u64 {
                break;
            }
            self.scratch.resize(RECORD_HEADER, 0);
            active
                .file
                .read_at(offset, &mut self.scratch)
                .map_err(|e| io_error(&active.name, "read", &e))?;
            let len = u32::from_le_bytes(self.scratch[0..4].try_into().expect("4 bytes")) as usize;
            let whole = record::encoded_len(len.min(max)) as u64;
            if len > max || whole > end - offset {
                break;
            }
            self.scratch.resize(whole as usize, 0);
            active
                .file
                .read_at(offset, &mut self.scratch)
                .map_err(|e| io_error(&active.name, "read", &e))?;
            let Decoded::Record(h) = record::decode(&self.scratch, self.next, max, true) else {
                break;
            };
            active.note(self.next, offset, h.timestamp, h.crc);
            active.offset += whole;
            self.next += 1;
        }
        if durable.is_some_and(|d| d > self.next) {
            let reason = "below the durable position: the records end";
            return Err(corrupt(&active.name, active.offset, reason));
        }
        Ok(())
    }
}

/// The newest valid state slot of a segment.
fn newest_state(file: &dyn super::DiskFile, name: &str) -> Result<Option<State>, JournalError> {
    let mut best: Option<State> = None;
    for slot in 0..2 {
        let bytes = read_page(file, name, state_offset(slot), PAGE)?;
        if let Ok(Some(state)) = State::decode(&bytes) {
            if best.as_ref().is_none_or(|b| state.generation > b.generation) {
                best = Some(state);
            }
        }
    }
    Ok(best)
}
