//! The journal: a topic's records in a directory of segment files, with CRC32C records, a
//! durable position published apart from the end of the records, group commit, consumer
//! positions persisted in the same commit, retention by whole segments, replay from any
//! retained sequence or time, and recovery that never truncates committed data.
//!
//! [`Journal`] is the writer's handle (one live writer per directory, by a lock the kernel
//! drops when its process dies). Its durability contract:
//!
//! - [`Journal::append`] writes a record into the active segment's page cache, where it
//!   survives the writer's process dying, not the machine: the records of a batch are kept in
//!   memory and written together when the next commit starts, by [`Journal::flush`], or when
//!   the handle drops, so that no page a sync writes back was dirtied through a mapping.
//! - [`Journal::commit`] (or the group commit [`Durability`] runs from `append` and
//!   [`Journal::poll_commit`]) makes every record appended so far durable with one
//!   `fdatasync` and moves [`Journal::durable`] past them.
//! - A failed sync fails the journal ([`JournalError::Failed`]): the kernel may have dropped
//!   the writes and marked them clean, so no later sync can vouch for them.
//!
//! Recovery ([`Journal::open`]) trusts what the last state slot calls durable, walking it by
//! record headers alone, and verifies every record past it by CRC and sequence, cutting the
//! tail at the first that fails. A record *below* the durable position that fails is a media
//! error ([`JournalError::Corrupt`]), never cut away. The records it finds past the durable
//! position stay appended and uncommitted, as the writer that died left them, until the next
//! commit; only a cut tail is synced at once (its zeros, before new records go over them).
//!
//! `docs/architecture.md` has the file format; `segment.rs` and `record.rs` define it.

mod io;
mod options;
mod prefault;
mod progress;
mod reader;
mod record;
mod recover;
mod replay;
mod restore;
mod segment;
mod stage;
mod subscriber;
mod syncer;

#[cfg(feature = "sim-disk")]
pub use io::{CrashOptions, SimDisk};
pub use io::{Disk, DiskFile, DiskLock, FsDisk};
pub use options::{Durability, JournalOptions, Retention};
pub use reader::JournalReader;
pub use record::{FLAG_FIRST, FLAG_FRAGMENT, FLAG_LAST, FLAG_SKIPPED};
pub use replay::Replay;
pub use restore::restore;
pub use stage::{JournalStage, STAGE_CONSUMER};
pub use subscriber::JournalSubscriber;

use crate::error::JournalError;
use segment::{Footer, IndexEntry, Persisted, SegmentHeader, State, FOOTER, RECORDS_START};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How often a [`Durability::PageCache`] journal writes its consumer positions to a state
/// slot (no sync), while records or positions change.
const PAGE_CACHE_STATE_DELAY: Duration = Duration::from_millis(10);

/// A [`Durability::PageCache`] journal starts a sync on its syncer thread, which the writer
/// never waits for, once this many records or [`WRITE_BACK_BYTES`] are unsynced: the pages go
/// back to the disk behind the writer, a megabyte at a time, instead of all at the seal, on
/// the writer's thread (see [`Journal::flush`]).
const WRITE_BACK_RECORDS: u64 = 4096;
/// See [`WRITE_BACK_RECORDS`].
const WRITE_BACK_BYTES: u64 = 1 << 20;

/// The most bytes a page-cache journal's flush copies through the segment's mapping rather
/// than writes by a system call (see [`Journal::flush`]).
const SMALL_FLUSH: usize = 1024;

/// A record read back: its sequence, append time, flags and payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The record's sequence.
    pub sequence: u64,
    /// When the writer appended it, in nanoseconds since the Unix epoch.
    pub timestamp: u64,
    /// Its flags ([`FLAG_SKIPPED`], [`FLAG_FRAGMENT`] ...).
    pub flags: u32,
    /// Its payload.
    pub payload: &'a [u8],
}

impl Record<'_> {
    /// Which piece of a message larger than a ring slot the record holds; `None` for a whole
    /// message (or a skipped slot). [`JournalSubscriber`] puts the pieces together.
    pub fn fragment(&self) -> Option<crate::Fragment> {
        crate::Fragment::from_slot_flags(self.flags as u8)
    }
}

/// Where a replay starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seek {
    /// The oldest retained record.
    Earliest,
    /// The next record to be appended (nothing of the past).
    Latest,
    /// This sequence ([`JournalError::Retained`] if deleted, [`JournalError::NotYet`] if
    /// past the end).
    Sequence(u64),
    /// The first record appended at or after this time.
    Time(SystemTime),
}

/// A segment that is done: sealed, with its footer.
#[derive(Debug)]
struct Sealed {
    name: String,
    file: Arc<dyn DiskFile>,
    header: SegmentHeader,
    footer: Footer,
}

/// The segment being appended to.
#[derive(Debug)]
struct Active {
    name: String,
    file: Arc<dyn DiskFile>,
    header: SegmentHeader,
    /// Where the next record goes.
    offset: u64,
    /// The sparse index so far (written into the segment when it is sealed).
    index: Vec<IndexEntry>,
    /// CRC32C over the records' CRCs so far.
    records_crc: RecordsCrc,
    last_timestamp: u64,
}

/// The running CRC32C of the records' CRCs (the footer's), fed a batch at a time: one call
/// over 64 CRCs costs about what one call over one does, and the CRC of bytes fed in pieces is
/// the CRC of them all.
#[derive(Debug)]
struct RecordsCrc {
    /// Over every CRC before `batch`.
    crc: u32,
    batch: [u8; 256],
    /// Bytes of `batch` in use.
    len: usize,
}

impl Default for RecordsCrc {
    fn default() -> Self {
        RecordsCrc {
            crc: 0,
            batch: [0; 256],
            len: 0,
        }
    }
}

impl RecordsCrc {
    #[inline]
    fn push(&mut self, crc: u32) {
        self.batch[self.len..self.len + 4].copy_from_slice(&crc.to_le_bytes());
        self.len += 4;
        if self.len == self.batch.len() {
            self.crc = crc32c::crc32c_append(self.crc, &self.batch);
            self.len = 0;
        }
    }

    /// Over every CRC pushed.
    fn value(&self) -> u32 {
        crc32c::crc32c_append(self.crc, &self.batch[..self.len])
    }
}

impl Active {
    /// Notes a record appended at `offset`, for the index and the footer.
    fn note(&mut self, sequence: u64, offset: u64, timestamp: u64, crc: u32) {
        let indexed = self.index.last().map(|e| e.offset);
        if indexed.is_none_or(|at| offset - at >= self.header.index_interval as u64) {
            self.index.push(IndexEntry {
                sequence,
                offset,
                timestamp,
            });
        }
        self.records_crc.push(crc);
        self.last_timestamp = timestamp;
    }
}

/// What has been appended since the last commit.
#[derive(Debug, Default)]
struct Pending {
    records: u64,
    bytes: u64,
    since: Option<Instant>,
}

/// Records appended and not yet written to the active segment: written with one
/// [`DiskFile::write_through`] when a commit starts, at a roll, or when they reach
/// [`UNWRITTEN_MAX`] bytes (see [`Journal::flush`]).
#[derive(Debug, Default)]
struct Unwritten {
    bytes: Vec<u8>,
    /// Where `bytes` go in the active segment.
    at: u64,
    records: u64,
}

/// The most record bytes appends keep unwritten: a write of this much is mostly its copy,
/// not its system call, and the buffer stays small beside a segment.
const UNWRITTEN_MAX: usize = 256 << 10;

/// The writer's handle of a journal; see the module documentation.
pub struct Journal {
    disk: Arc<dyn Disk>,
    options: JournalOptions,
    _lock: DiskLock,
    sealed: VecDeque<Sealed>,
    active: Active,
    /// The next sequence to append.
    next: u64,
    /// Every sequence below this is durable.
    durable: u64,
    /// Where the record of `durable` starts in the active segment.
    durable_offset: u64,
    /// The generation of the next state slot to write.
    generation: u64,
    /// Consumer positions by name, each with whether it is a group's.
    positions: BTreeMap<String, (u64, bool)>,
    pending: Pending,
    failed: Option<String>,
    /// Appends not yet written: see [`Journal::flush`].
    unwritten: Unwritten,
    /// The syncer thread of a group commit, or of a page-cache journal's write-back (none
    /// for `Durability::EveryRecord`) ...
    syncer: Option<syncer::Syncer>,
    /// Maps the active segment in ahead of the appends, and allocates the next one.
    prefaulter: prefault::Prefaulter,
    /// The next segment's file, asked of the prefaulter once the active segment is half
    /// full; the roll renames it.
    spare: Option<prefault::SpareFile>,
    /// ... and whether it has a sync of ours in flight.
    in_flight: bool,
    /// Called with the durable position after every sync that moves it.
    on_durable: Option<syncer::OnDurable>,
    /// Appends leave starting a group commit to [`Journal::end_batch`].
    batching: bool,
}

impl Drop for Journal {
    /// Writes what is appended and not yet written (as [`Journal::flush`]; an error fails
    /// nothing more, the handle is going): it then survives the handle, as it would a
    /// page-cache journal's. Nothing is synced.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("oldest", &self.oldest())
            .field("next", &self.next)
            .field("durable", &self.durable)
            .field("segments", &self.segments())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

fn now_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec for the call; CLOCK_REALTIME always exists.
    // (`SystemTime::now` is this call and a checked subtraction and conversion, on every
    // append.)
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut t) };
    u64::try_from(t.tv_sec).map_or(0, |s| s.saturating_mul(1_000_000_000) + t.tv_nsec as u64)
}

fn io_error(name: &str, op: &'static str, e: &std::io::Error) -> JournalError {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        return JournalError::NoSpace {
            name: name.to_owned(),
            len: 0,
        };
    }
    JournalError::Io {
        name: name.to_owned(),
        op,
        message: e.to_string(),
    }
}

/// Creates the journal directory `path` (mode 0700) if it does not exist.
fn make_dir(path: &Path) -> Result<(), JournalError> {
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_error(&path.display().to_string(), "mkdir", &e)),
    }
}

/// A slice of `len` bytes at `offset` of `file`.
///
/// # Safety
///
/// `offset + len <= file.len()`, and no write to the range may happen while the slice lives
/// (a record's bytes are written once, before anything reads them).
unsafe fn bytes_of(file: &dyn DiskFile, offset: u64, len: usize) -> &[u8] {
    debug_assert!(offset + len as u64 <= file.len());
    // SAFETY: in the file's mapping (the caller's bound), which lives as long as `file`; not
    // written meanwhile (the caller's contract).
    unsafe { std::slice::from_raw_parts(file.as_ptr().add(offset as usize), len) }
}

/// The bytes of `file`'s record area from `offset` to `end`.
fn record_area(file: &dyn DiskFile, offset: u64, end: u64) -> &[u8] {
    // SAFETY: `offset..end` is inside the file (callers pass offsets within the record
    // area); records there were written before this read (recovery reads what is on disk
    // with no writer running; a replay reads below the writer's published offset).
    unsafe { bytes_of(file, offset, end.saturating_sub(offset) as usize) }
}

impl Journal {
    /// Opens the journal in directory `path` (created, mode 0700, if missing), recovering
    /// it, or creates an empty one there starting at `options.initial_sequence`.
    ///
    /// After a crash, the records found past the durable position are verified and kept,
    /// but not synced: [`Journal::durable`] stays where the last commit put it until the
    /// next one (with group commit, the writer's first [`Journal::poll_commit`]). If a torn
    /// tail had to be cut, the open syncs before it returns.
    ///
    /// # Errors
    ///
    /// [`JournalError::InvalidOptions`]; [`JournalError::Locked`] if a live writer has it;
    /// what [`Journal::open_on`] returns.
    pub fn open(path: impl AsRef<Path>, options: JournalOptions) -> Result<Journal, JournalError> {
        let path = path.as_ref();
        options.validate()?;
        make_dir(path)?;
        let disk = FsDisk::open(path).map_err(|e| io_error(&path.display().to_string(), "open", &e))?;
        Self::open_on(Arc::new(disk), options).map_err(|e| match e {
            JournalError::Locked { .. } => JournalError::Locked {
                path: path.display().to_string(),
            },
            other => other,
        })
    }

    /// [`Journal::open`] on any [`Disk`] (the simulated `SimDisk` in tests, feature `sim-disk`).
    ///
    /// # Errors
    ///
    /// [`JournalError::Locked`], [`JournalError::Foreign`] (a file that is not a segment,
    /// or a segment of another format), [`JournalError::Corrupt`] (committed data that does
    /// not check), [`JournalError::NoSpace`], [`JournalError::Io`], [`JournalError::Failed`]
    /// (a sync during recovery failed).
    pub fn open_on(disk: Arc<dyn Disk>, options: JournalOptions) -> Result<Journal, JournalError> {
        options.validate()?;
        let lock = disk
            .try_lock_writer()
            .map_err(|e| io_error("writer.lock", "lock", &e))?
            .ok_or_else(|| JournalError::Locked {
                path: format!("{disk:?}"),
            })?;
        recover::recover(disk, options, lock)
    }

    /// The next sequence [`Journal::append`] gives.
    pub fn next_sequence(&self) -> u64 {
        self.next
    }

    /// The durable position: every sequence below it is on the disk (as far as `fdatasync`
    /// can tell).
    pub fn durable(&self) -> u64 {
        self.durable
    }

    /// The oldest retained sequence.
    pub fn oldest(&self) -> u64 {
        self.sealed
            .front()
            .map_or(self.active.header.first, |s| s.header.first)
    }

    /// The number of segment files, the active one included.
    pub fn segments(&self) -> usize {
        self.sealed.len() + 1
    }

    /// The bytes of segment files retained, the active one included.
    pub fn retained_bytes(&self) -> u64 {
        self.sealed.iter().map(|s| s.header.len).sum::<u64>() + self.active.header.len
    }

    /// The journal's options.
    pub fn options(&self) -> &JournalOptions {
        &self.options
    }

    /// Why the journal failed, if it did ([`JournalError::Failed`]).
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    fn check_failed(&self) -> Result<(), JournalError> {
        match &self.failed {
            Some(reason) => Err(JournalError::Failed {
                reason: reason.clone(),
                durable: self.durable,
            }),
            None => Ok(()),
        }
    }

    /// Fails the journal for good: `op` on `name` returned `e`.
    fn fail(&mut self, name: &str, op: &str, e: &std::io::Error) -> JournalError {
        let reason = format!("{op} of {name} failed: {e}");
        self.failed = Some(reason.clone());
        JournalError::Failed {
            reason,
            durable: self.durable,
        }
    }

    /// Appends `payload` as the next record and returns its sequence; by the journal's
    /// [`Durability`], this may commit (every record; a group commit's size limits, or its
    /// zero delay). A non-zero delay is the writer's to check, with [`Journal::poll_commit`].
    ///
    /// # Errors
    ///
    /// [`JournalError::TooLarge`]; [`JournalError::Failed`]; [`JournalError::NoSpace`] if a
    /// new segment was needed and could not be allocated (nothing is lost: append again
    /// once there is room); [`JournalError::Io`].
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, JournalError> {
        self.append_record(payload, 0)
    }

    /// Appends a record that stands for a ring slot given up by a dead producer
    /// ([`FLAG_SKIPPED`], no payload), so the journal's sequences stay the ring's.
    ///
    /// # Errors
    ///
    /// As [`Journal::append`].
    pub fn append_skipped(&mut self) -> Result<u64, JournalError> {
        self.append_record(&[], FLAG_SKIPPED)
    }

    /// Appends one fragment of a ring message larger than a slot (what the stage copies from
    /// a slot that [`crate::Producer::publish_large`] wrote); readers put the fragments
    /// together again.
    ///
    /// # Errors
    ///
    /// As [`Journal::append`].
    pub fn append_fragment(
        &mut self,
        payload: &[u8],
        fragment: crate::Fragment,
    ) -> Result<u64, JournalError> {
        self.append_record(payload, record::fragment_flags(Some(fragment)))
    }

    fn append_record(&mut self, payload: &[u8], flags: u32) -> Result<u64, JournalError> {
        self.check_failed()?;
        if payload.len() > self.options.max_record {
            return Err(JournalError::TooLarge {
                len: payload.len(),
                max: self.options.max_record,
            });
        }
        let len = record::encoded_len(payload.len());
        if self.active.offset + len as u64 > self.active.header.index_start {
            self.roll()?;
        }
        let sequence = self.next;
        let timestamp = now_ns().max(self.active.last_timestamp);
        let offset = self.active.offset;
        if self.unwritten.bytes.len() + len > UNWRITTEN_MAX {
            self.flush()?;
        }
        let unwritten = &mut self.unwritten;
        if unwritten.bytes.is_empty() {
            unwritten.at = offset;
        }
        let start = unwritten.bytes.len();
        unwritten.bytes.resize(start + len, 0);
        unwritten.records += 1;
        // `encode` writes every byte of the record, padding included.
        let crc = record::encode(&mut unwritten.bytes[start..], sequence, timestamp, flags, payload);
        self.active.note(sequence, offset, timestamp, crc);
        self.active.offset += len as u64;
        self.prefaulter.ahead(
            &self.active.file,
            self.active.offset,
            self.active.header.index_start,
        );
        if self.spare.is_none() && self.active.offset > self.active.header.index_start / 2 {
            self.spare = Some(self.prefaulter.spare(&self.disk, self.options.segment_size));
        }
        self.next += 1;
        self.pending.records += 1;
        self.pending.bytes += len as u64;
        self.pending.since.get_or_insert_with(Instant::now);
        if self.options.durability == Durability::EveryRecord {
            self.commit()?;
        } else if !self.batching {
            self.commit_if_due(false)?;
        }
        Ok(sequence)
    }

    /// Writes the records appended and not yet written into the active segment's page
    /// cache (one [`DiskFile::write_through`]), where they survive the writer's process and
    /// readers find them. Appends are kept in memory until a commit starts (a page-cache
    /// journal's write-back too), the segment rolls, they reach 256 KiB, or this is called;
    /// dropping the journal flushes too. Not through the segment's mapping: a page dirtied
    /// through a writable mapping costs its sync a change of the mapping, and a TLB shootdown
    /// of every other thread of the process, which a lone confirm waits for and every
    /// write-back pays.
    ///
    /// # Errors
    ///
    /// [`JournalError::Failed`]: a failed write fails the journal (its records had their
    /// sequences).
    pub fn flush(&mut self) -> Result<(), JournalError> {
        self.check_failed()?;
        if self.unwritten.bytes.is_empty() {
            return Ok(());
        }
        // A few records of a page-cache journal go through the mapping: a copy instead of a
        // system call, for a writer that flushes every record or two (a stage at a low rate,
        // whose confirms wait for the flush); no sync waits on those pages.
        let (at, bytes) = (self.unwritten.at, &self.unwritten.bytes);
        let file = &self.active.file;
        let written = if self.options.durability == Durability::PageCache && bytes.len() <= SMALL_FLUSH {
            file.write_at(at, bytes)
        } else {
            file.write_through(at, bytes)
        };
        if let Err(e) = written {
            let name = self.active.name.clone();
            return Err(self.fail(&name, "write", &e));
        }
        self.unwritten.bytes.clear();
        self.unwritten.records = 0;
        Ok(())
    }

    /// One past the last record in the page cache (see [`Journal::flush`]): what survives
    /// the writer's process dying, and what readers and [`Journal::replay`] see.
    pub fn written(&self) -> u64 {
        self.next - self.unwritten.records
    }

    /// Runs the group commit: takes the result of a sync that has finished, and starts the
    /// next if one is due (`records` or `bytes` reached, or `delay` passed since the oldest
    /// record not yet in a sync). A writer calls this when idle, at least every `delay`, so
    /// that a quiet journal's last records become durable. Returns the durable position.
    /// At [`Durability::PageCache`], the write-back behind the writer (a sync once 4096
    /// records or 1 MiB are unsynced, which nothing waits for) and the consumer positions'
    /// unsynced state slot.
    ///
    /// # Errors
    ///
    /// [`JournalError::Failed`] if a sync failed.
    pub fn poll_commit(&mut self) -> Result<u64, JournalError> {
        self.commit_if_due(true)
    }

    /// [`Journal::poll_commit`]; `by_clock`: also commits what is due by its age (a clock
    /// read, which `append` leaves to the writer's calls between batches: a zero delay and the
    /// size limits need none).
    fn commit_if_due(&mut self, by_clock: bool) -> Result<u64, JournalError> {
        self.collect(false)?;
        let Durability::GroupCommit {
            records,
            bytes,
            delay,
        } = self.options.durability
        else {
            // While a sync is in flight, the slot the state would go to is the last synced
            // one (see `write_page_cache_state`): the positions wait for its end.
            if self.options.durability != Durability::PageCache || self.in_flight {
                return Ok(self.durable);
            }
            if self.pending.records >= WRITE_BACK_RECORDS || self.pending.bytes >= WRITE_BACK_BYTES {
                self.start_commit()?;
            } else if by_clock
                && self
                    .pending
                    .since
                    .is_some_and(|since| since.elapsed() >= PAGE_CACHE_STATE_DELAY)
            {
                self.write_page_cache_state()?;
            }
            return Ok(self.durable);
        };
        if self.in_flight {
            return Ok(self.durable);
        }
        let aged = match self.pending.since {
            None => false,
            Some(_) if delay.is_zero() => true,
            Some(since) => by_clock && since.elapsed() >= delay,
        };
        let due = aged || self.pending.records >= records || self.pending.bytes >= bytes;
        if due {
            self.start_commit()?;
        }
        Ok(self.durable)
    }

    /// Whether anything appended (or any position set) is not durable yet.
    pub fn uncommitted(&self) -> bool {
        self.in_flight || self.pending.since.is_some()
    }

    /// Waits for the sync in flight, if any, and returns the durable position (starting
    /// nothing).
    ///
    /// # Errors
    ///
    /// [`JournalError::Failed`] if a sync failed.
    pub fn finish_sync(&mut self) -> Result<u64, JournalError> {
        self.collect(true)?;
        Ok(self.durable)
    }

    /// Sets a function the journal calls with the durable position each time a sync moves it
    /// (from the syncer thread, for a group commit: as soon as `fdatasync` returns).
    pub fn on_durable(&mut self, f: impl Fn(u64) + Send + Sync + 'static) -> Result<(), JournalError> {
        self.collect(true)?;
        let f: syncer::OnDurable = Arc::new(f);
        self.on_durable = Some(f.clone());
        if self.syncer.is_some() {
            self.syncer =
                Some(syncer::Syncer::spawn(Some(f)).map_err(|e| io_error("the syncer thread", "spawn", &e))?);
        }
        Ok(())
    }

    /// Takes the in-flight sync's result, if there is one (waiting for it if `wait`).
    fn collect(&mut self, wait: bool) -> Result<(), JournalError> {
        self.check_failed()?;
        if !self.in_flight {
            return Ok(());
        }
        let Some(syncer) = &self.syncer else {
            return Ok(());
        };
        match syncer.finished(wait) {
            None => Ok(()),
            Some(Ok(ticket)) => {
                self.in_flight = false;
                self.durable = ticket.end;
                self.durable_offset = ticket.offset;
                Ok(())
            }
            Some(Err(reason)) => {
                self.in_flight = false;
                self.failed = Some(reason);
                self.check_failed()
            }
        }
    }

    /// Starts a group commit on the syncer: the state slot now (naming the durable position
    /// before this sync, as in `commit`), the sync on the syncer thread.
    fn start_commit(&mut self) -> Result<(), JournalError> {
        self.flush()?;
        let state = self.state(0);
        self.write_state(&state)?;
        self.generation += 1;
        self.pending = Pending::default();
        let syncer = self.syncer.as_ref().expect("a group commit has a syncer");
        syncer.start(syncer::Ticket {
            file: self.active.file.clone(),
            name: self.active.name.clone(),
            end: self.next,
            offset: self.active.offset,
        });
        self.in_flight = true;
        Ok(())
    }

    /// A state slot with the consumer positions as they stand, not synced: with
    /// [`Durability::PageCache`] they survive a crash of the process as the records do. The
    /// slot still names the last *synced* position as durable, so a machine crash is
    /// recovered by a scan of everything after it; the records stay counted as pending, so
    /// that `commit` and `close` still sync them.
    fn write_page_cache_state(&mut self) -> Result<(), JournalError> {
        // Always the slot the next commit writes, never the other: that one holds the last
        // synced state, which a power cut must find whole if this one is torn.
        let state = self.state(0);
        self.write_state(&state)?;
        self.pending.since = None;
        Ok(())
    }

    /// Tells the durable callback, after a sync on this thread.
    fn notify_durable(&self) {
        if let Some(f) = &self.on_durable {
            f(self.durable);
        }
    }

    /// Makes every record appended so far, and the consumer positions set so far, durable:
    /// one state slot write and one `fdatasync`. Returns the durable position.
    ///
    /// # Errors
    ///
    /// [`JournalError::Failed`] if this sync (or an earlier one) failed.
    pub fn commit(&mut self) -> Result<u64, JournalError> {
        self.collect(true)?;
        if self.pending.since.is_none() && self.pending.records == 0 {
            return Ok(self.durable);
        }
        if self.syncer.is_some() {
            self.start_commit()?;
            self.collect(true)?;
            return Ok(self.durable);
        }
        self.sync_here()
    }

    /// Makes [`Journal::append`] leave the start of a group commit to
    /// [`Journal::end_batch`], for a writer that appends in batches (a ring's stage): a commit
    /// then covers the whole batch, and the writer can say whether more is on its way.
    pub fn set_batching(&mut self, batching: bool) {
        self.batching = batching;
    }

    /// Ends a batch of appends (see [`Journal::set_batching`]): starts the group commit it
    /// made due. If nothing more is on its way (`more_coming` false), the group commit's delay
    /// is zero and no sync is in flight, the sync runs on this thread instead: a lone
    /// record's confirm then waits for no hand-off to the syncer thread and back (appends
    /// wait for it, but none is coming). Returns the durable position.
    ///
    /// # Errors
    ///
    /// [`JournalError::Failed`] if this sync (or an earlier one) failed.
    pub fn end_batch(&mut self, more_coming: bool) -> Result<u64, JournalError> {
        self.collect(false)?;
        let zero_delay = matches!(
            self.options.durability,
            Durability::GroupCommit { delay, .. } if delay.is_zero()
        );
        if more_coming || !zero_delay || self.in_flight || self.pending.since.is_none() {
            return self.commit_if_due(true);
        }
        self.sync_here()
    }

    /// Writes a state slot and syncs the active segment on this thread; nothing may be in
    /// flight on the syncer.
    fn sync_here(&mut self) -> Result<u64, JournalError> {
        debug_assert!(!self.in_flight);
        self.flush()?;
        // The slot names the durable position *before* this sync: a slot written in the same
        // sync as the records it would vouch for could land without them.
        let state = self.state(0);
        self.write_state(&state)?;
        if let Err(e) = self.active.file.sync_data() {
            let name = self.active.name.clone();
            return Err(self.fail(&name, "fdatasync", &e));
        }
        self.generation += 1;
        self.durable = self.next;
        self.durable_offset = self.active.offset;
        self.pending = Pending::default();
        self.notify_durable();
        Ok(self.durable)
    }

    /// The state slot for the durable position as it stands.
    fn state(&self, flags: u32) -> State {
        State {
            generation: self.generation,
            durable: self.durable,
            durable_offset: self.durable_offset,
            flags,
            positions: self.persisted(),
        }
    }

    /// The consumer positions as a state slot holds them.
    fn persisted(&self) -> Vec<Persisted> {
        self.positions
            .iter()
            .map(|(name, &(position, group))| Persisted {
                name: name.clone(),
                position,
                group,
            })
            .collect()
    }

    fn write_state(&mut self, state: &State) -> Result<(), JournalError> {
        let bytes = state.encode().ok_or(JournalError::TooManyPositions)?;
        let offset = segment::state_offset(state.generation);
        self.active
            .file
            .write_through(offset, &bytes)
            .map_err(|e| io_error(&self.active.name, "write", &e))
    }

    /// Records that consumer `name` has processed everything below `position`; durable with
    /// the next commit, and read back by [`Journal::position`] after a restart (clamped to
    /// the journal's end, which a crash may have moved back).
    ///
    /// # Errors
    ///
    /// [`JournalError::TooManyPositions`] if the names would not fit a state slot (or one is
    /// longer than 127 bytes).
    pub fn set_position(&mut self, name: &str, position: u64) -> Result<(), JournalError> {
        self.set(name, position, false)
    }

    /// [`Journal::set_position`] for a group: the position of everything its workers have
    /// acknowledged. [`Journal::groups`] lists these, for a ring made anew to give each group
    /// its place back (`restore`).
    ///
    /// # Errors
    ///
    /// As [`Journal::set_position`].
    pub fn set_group_position(&mut self, name: &str, position: u64) -> Result<(), JournalError> {
        self.set(name, position, true)
    }

    fn set(&mut self, name: &str, position: u64, group: bool) -> Result<(), JournalError> {
        let previous = self.positions.insert(name.to_owned(), (position, group));
        let probe = self.state(0);
        if probe.encode().is_none() {
            match previous {
                Some(p) => self.positions.insert(name.to_owned(), p),
                None => self.positions.remove(name),
            };
            return Err(JournalError::TooManyPositions);
        }
        self.pending.since.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Takes the replay progress of durable [`JournalSubscriber`]s not yet in the ring
    /// (their progress files in the directory) into the positions the next commit persists,
    /// and returns those subscribers' names (`None` if the directory could not be listed). A
    /// file that does not read whole now keeps its position until the next call.
    pub(crate) fn take_reader_progress(&mut self) -> Option<BTreeSet<String>> {
        let names = self.disk.list().ok()?;
        let mut found = BTreeSet::new();
        for (name, position) in progress::read_all(&*self.disk, &names) {
            if let Some(position) = position.filter(|&p| self.position(&name) != Some(p)) {
                let _ = self.set_position(&name, position);
            }
            found.insert(name);
        }
        Some(found)
    }

    /// Forgets consumer `name`'s position (durable with the next commit).
    pub fn remove_position(&mut self, name: &str) {
        if self.positions.remove(name).is_some() {
            self.pending.since.get_or_insert_with(Instant::now);
        }
    }

    /// Consumer `name`'s persisted position.
    pub fn position(&self, name: &str) -> Option<u64> {
        self.positions.get(name).map(|&(position, _)| position)
    }

    /// Every persisted consumer position, by name.
    pub fn positions(&self) -> impl Iterator<Item = (&str, u64)> {
        self.positions.iter().map(|(k, &(p, _))| (k.as_str(), p))
    }

    /// The persisted positions that are groups' ([`Journal::set_group_position`]).
    pub fn groups(&self) -> impl Iterator<Item = (&str, u64)> {
        self.positions
            .iter()
            .filter(|(_, &(_, group))| group)
            .map(|(k, &(p, _))| (k.as_str(), p))
    }

    /// Closes the journal cleanly: commits, then writes a state slot marked clean whose
    /// durable position is the end of the records, so the next open scans nothing.
    ///
    /// # Errors
    ///
    /// [`JournalError::Failed`] if a sync failed.
    pub fn close(mut self) -> Result<(), JournalError> {
        self.commit()?;
        self.write_clean_state()?;
        // A spare would only be allocated again by the next writer's open: it goes.
        if let Some(Ok(_)) = self.spare.take().and_then(|spare| spare.recv().ok()) {
            let _ = self.disk.remove(io::SPARE);
        }
        Ok(())
    }

    /// A state slot calling everything durable, marked clean, and its sync (every record is
    /// already durable when this runs).
    fn write_clean_state(&mut self) -> Result<(), JournalError> {
        debug_assert!(self.unwritten.bytes.is_empty(), "a clean state after a commit");
        let state = State {
            durable: self.next,
            durable_offset: self.active.offset,
            ..self.state(segment::STATE_CLEAN)
        };
        self.write_state(&state)?;
        if let Err(e) = self.active.file.sync_data() {
            let name = self.active.name.clone();
            return Err(self.fail(&name, "fdatasync", &e));
        }
        self.generation += 1;
        Ok(())
    }

    /// Starts a new segment at `next`: creates and syncs it first (so a full disk fails
    /// here with nothing changed), then seals the active one, then syncs the directory.
    fn roll(&mut self) -> Result<(), JournalError> {
        self.flush()?;
        self.collect(true)?;
        let fresh = match self.take_spare() {
            Some((name, file)) => init_segment(name, file, &self.options, self.next)?,
            None => create_segment(&*self.disk, &self.options, self.next)?,
        };
        let name = fresh.name.clone();
        // Its first state: everything before it durable once the seal below is.
        let state = State {
            generation: self.generation,
            durable: self.next,
            durable_offset: RECORDS_START,
            flags: 0,
            positions: self.persisted(),
        };
        let bytes = state.encode().ok_or(JournalError::TooManyPositions)?;
        let written = fresh
            .file
            .write_through(segment::state_offset(state.generation), &bytes)
            .and_then(|()| fresh.file.sync_data());
        if let Err(e) = written {
            // Nothing refers to the new file yet: remove it, and fail (a sync failed).
            let _ = self.disk.remove(&name);
            return Err(self.fail(&name, "sync of a new segment", &e));
        }
        self.seal()?;
        let mut fresh = fresh;
        fresh.last_timestamp = self.active.last_timestamp;
        let old = std::mem::replace(&mut self.active, fresh);
        self.prefaulter.new_segment();
        self.sealed.push_back(Sealed {
            footer: footer_of(&old, self.next),
            name: old.name,
            file: old.file,
            header: old.header,
        });
        if let Err(e) = self.disk.sync_dir() {
            return Err(self.fail("the journal directory", "fsync", &e));
        }
        self.generation += 1;
        self.durable = self.next;
        self.durable_offset = RECORDS_START;
        self.pending = Pending::default();
        self.notify_durable();
        self.apply_retention()
    }

    /// The spare file renamed to the next segment's name (waiting for the prefaulter if it is
    /// still allocating it), or `None` if there is none or it cannot be had: the roll then
    /// allocates the segment itself, and reports what goes wrong there.
    fn take_spare(&mut self) -> Option<(String, Arc<dyn DiskFile>)> {
        let file = self.spare.take()?.recv().ok()?.ok()?;
        let name = segment::name_of(self.next);
        if file.len() != self.options.segment_size || self.disk.rename(io::SPARE, &name).is_err() {
            let _ = self.disk.remove(io::SPARE);
            return None;
        }
        Some((name, file))
    }

    /// Writes the active segment's index and syncs it with the records, then writes the
    /// footer and syncs that: a footer is trusted without a scan, so it must never reach the
    /// disk before the records and the index it vouches for (one sync for all would let a
    /// power cut keep it alone).
    fn seal(&mut self) -> Result<(), JournalError> {
        let footer = footer_of(&self.active, self.next);
        let index = IndexEntry::encode_all(&self.active.index);
        let file = &self.active.file;
        let written = file
            .write_through(self.active.header.index_start, &index)
            .and_then(|()| file.sync_data())
            .and_then(|()| file.write_through(file.len() - FOOTER, &footer.encode()))
            .and_then(|()| file.sync_data());
        if let Err(e) = written {
            let name = self.active.name.clone();
            return Err(self.fail(&name, "seal", &e));
        }
        Ok(())
    }

    /// Deletes the sealed segments the retention policy no longer keeps, oldest first, and
    /// syncs the directory if any went. Called after every roll; call it when a policy
    /// might have changed its mind (time passing, consumers moving).
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] if a removal failed; [`JournalError::Failed`] if the directory
    /// sync did.
    pub fn apply_retention(&mut self) -> Result<(), JournalError> {
        let policy = self.options.retention;
        let now = now_ns();
        let mut removed = false;
        while let Some(oldest) = self.sealed.front() {
            let bytes = self.retained_bytes();
            let count = self.segments();
            let by_bytes = policy.max_bytes.is_some_and(|max| bytes > max);
            let by_count = policy.max_segments.is_some_and(|max| count > max);
            let by_age = policy
                .max_age
                .is_some_and(|age| now.saturating_sub(oldest.footer.last_timestamp) > age.as_nanos() as u64);
            let consumed = policy.until_consumed
                && !self.positions.is_empty()
                && self.positions.values().all(|&(p, _)| p >= oldest.footer.end);
            if !(by_bytes || by_count || by_age || consumed) {
                break;
            }
            let oldest = self.sealed.pop_front().expect("looked at above");
            if self.recycle(&oldest)? {
                continue;
            }
            if let Err(e) = self.disk.remove(&oldest.name) {
                let error = io_error(&oldest.name, "remove", &e);
                self.sealed.push_front(oldest);
                return Err(error);
            }
            removed = true;
        }
        if removed {
            if let Err(e) = self.disk.sync_dir() {
                return Err(self.fail("the journal directory", "fsync", &e));
            }
        }
        Ok(())
    }

    /// Makes `old`, a sealed segment retention has just taken out of the journal, the next
    /// roll's spare instead of removing it, if it can ([`JournalOptions::recycle`]): no spare
    /// is waiting, the file is a segment of today's size, and no reader has it open (its
    /// claim, [`DiskFile::try_claim`], held until the spare thread has zeroed it). Returns
    /// whether it did; `false` leaves the removal to the caller.
    fn recycle(&mut self, old: &Sealed) -> Result<bool, JournalError> {
        if !self.options.recycle || self.spare.is_some() || old.file.len() != self.options.segment_size {
            return Ok(false);
        }
        if !old.file.try_claim().unwrap_or(false) {
            return Ok(false);
        }
        if self.disk.rename(&old.name, io::SPARE).is_err() {
            old.file.release();
            return Ok(false);
        }
        // The rename durable before a byte of the file changes: a crash finds the segment
        // whole under its name, or under the spare's (which an open removes).
        if let Err(e) = self.disk.sync_dir() {
            old.file.release();
            return Err(self.fail("the journal directory", "fsync", &e));
        }
        self.spare = Some(self.prefaulter.recycle(&self.disk, old.file.clone()));
        Ok(true)
    }
}

/// Creates segment file `first` with its header, unsynced.
fn create_segment(disk: &dyn Disk, options: &JournalOptions, first: u64) -> Result<Active, JournalError> {
    let name = segment::name_of(first);
    let len = options.segment_size;
    let file = disk
        .create(&name, len)
        .map_err(|e| match io_error(&name, "create", &e) {
            JournalError::NoSpace { name, .. } => JournalError::NoSpace { name, len },
            other => other,
        })?;
    init_segment(name, file, options, first)
}

/// The active segment `name` starting at `first`, in a new file of `options.segment_size`
/// zero bytes: its header written (not yet synced).
fn init_segment(
    name: String,
    file: Arc<dyn DiskFile>,
    options: &JournalOptions,
    first: u64,
) -> Result<Active, JournalError> {
    let len = file.len();
    let header = SegmentHeader {
        first,
        len,
        created_ns: now_ns(),
        max_record: options.max_record as u32,
        index_interval: options.index_interval as u32,
        index_start: segment::index_start(len, options.index_interval),
    };
    file.write_through(0, &header.encode())
        .map_err(|e| io_error(&name, "write", &e))?;
    Ok(Active {
        name,
        file,
        header,
        offset: RECORDS_START,
        index: Vec::new(),
        records_crc: RecordsCrc::default(),
        last_timestamp: 0,
    })
}

fn footer_of(active: &Active, end: u64) -> Footer {
    Footer {
        first: active.header.first,
        end,
        records_end: active.offset,
        index_count: active.index.len() as u64,
        last_timestamp: active.last_timestamp,
        records_crc: active.records_crc.value(),
    }
}

fn corrupt(name: &str, offset: u64, reason: &str) -> JournalError {
    JournalError::Corrupt {
        segment: name.to_owned(),
        offset,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::RecordsCrc;

    #[test]
    fn the_records_crc_fed_in_batches_is_the_crc_of_them_all() {
        let crcs: Vec<u32> = (0..300u32).map(|i| i.wrapping_mul(0x9e37_79b9)).collect();
        for n in [0, 1, 63, 64, 65, 128, 200, 300] {
            let mut batched = RecordsCrc::default();
            let mut bytes = Vec::new();
            for &crc in &crcs[..n] {
                batched.push(crc);
                bytes.extend_from_slice(&crc.to_le_bytes());
            }
            assert_eq!(batched.value(), crc32c::crc32c(&bytes), "{n} CRCs");
        }
    }
}
