//! A journal's parameters: sizes, when records become durable, what retention deletes.

use super::record::{self, RECORD_HEADER};
use super::segment::{self, PAGE, RECORDS_START};
use crate::error::JournalError;
use std::time::Duration;

/// When appended records become durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Nothing is promised beyond the page cache: records survive the writer's process dying
    /// once written there ([`Journal::flush`](super::Journal::flush), which the stage calls
    /// after every batch), not the machine. The journal still syncs behind the writer, which
    /// never waits for it (once 4096 records or 1 MiB are unsynced), at a roll, at a clean
    /// close, and by an explicit [`Journal::commit`](super::Journal::commit).
    PageCache,
    /// One `fdatasync` for many records: when `records` records or `bytes` bytes have been
    /// appended since the last commit, or `delay` has passed since the first of them
    /// (checked by `append` and by [`Journal::poll_commit`](super::Journal::poll_commit)), whichever comes first.
    GroupCommit {
        /// Records per commit at most.
        records: u64,
        /// Record bytes per commit at most.
        bytes: u64,
        /// The longest a record waits before its sync starts, beyond the sync in flight
        /// (one at a time). Zero: a sync starts as soon as the previous one has returned, so
        /// a group is what arrived during the previous sync.
        delay: Duration,
    },
    /// A sync after every append.
    EveryRecord,
}

impl Default for Durability {
    /// Group commit: 4096 records or 1 MiB, and no delay: with one sync in flight a group
    /// forms from what arrives during it, so a delay would only make a lone record wait (the
    /// `journal` and `journal-sync` perf scenarios compare the two).
    fn default() -> Self {
        Durability::GroupCommit {
            records: 4096,
            bytes: 1 << 20,
            delay: Duration::ZERO,
        }
    }
}

/// Which sealed segments retention deletes (never the active one); any combination. The
/// default keeps everything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many bytes of segments (the active one included).
    pub max_bytes: Option<u64>,
    /// Delete a segment once its newest record is older than this.
    pub max_age: Option<Duration>,
    /// Keep at most this many segments (the active one included).
    pub max_segments: Option<usize>,
    /// Queue semantics: delete a segment once every persisted consumer position
    /// ([`Journal::set_position`](super::Journal::set_position)) has passed it (with no position, nothing is deleted on
    /// this account). A stage forgets the position of a consumer that left its ring
    /// (unsubscribed or evicted), so that it does not hold the journal back.
    pub until_consumed: bool,
}

/// A journal's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalOptions {
    /// Bytes per segment file, a multiple of 4096 (default 64 MiB).
    pub segment_size: u64,
    /// The largest record payload (default 1 MiB); a segment must hold at least one.
    pub max_record: usize,
    /// Record bytes between two sparse index entries (default 4096).
    pub index_interval: u64,
    /// When records become durable (default: group commit).
    pub durability: Durability,
    /// What is deleted, and when.
    pub retention: Retention,
    /// The first sequence of a journal created empty (default 0).
    pub initial_sequence: u64,
    /// Whether a segment retention deletes becomes the next segment instead (default
    /// `true`), when no reader has it open: its pages stay in the page cache and its blocks
    /// stay allocated, so a journal whose retention keeps it at a steady size writes into
    /// memory the kernel already holds. The writer's spare thread writes zeros over it
    /// first and syncs them.
    pub recycle: bool,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            segment_size: 64 << 20,
            max_record: 1 << 20,
            index_interval: 4096,
            durability: Durability::default(),
            retention: Retention::default(),
            initial_sequence: 0,
            recycle: true,
        }
    }
}

impl JournalOptions {
    pub(super) fn validate(&self) -> Result<(), JournalError> {
        let bad = |reason: String| Err(JournalError::InvalidOptions { reason });
        if self.segment_size % PAGE != 0 || self.segment_size < 4 * PAGE {
            return bad(format!(
                "segment_size {} is not a multiple of 4096 of at least 16384",
                self.segment_size
            ));
        }
        if self.index_interval < 64 {
            return bad(format!("index_interval {} is below 64", self.index_interval));
        }
        if self.max_record > u32::MAX as usize / 2 {
            return bad(format!("max_record {} is above 2 GiB", self.max_record));
        }
        let room = segment::index_start(self.segment_size, self.index_interval).saturating_sub(RECORDS_START);
        if (record::encoded_len(self.max_record) as u64) > room {
            return bad(format!(
                "a segment of {} bytes holds records of at most {} bytes, not max_record {}",
                self.segment_size,
                room.saturating_sub(RECORD_HEADER as u64),
                self.max_record
            ));
        }
        if self.initial_sequence >= crate::limits::MAX_SEQUENCE {
            return bad(format!(
                "initial_sequence {} is above 2^63",
                self.initial_sequence
            ));
        }
        Ok(())
    }
}
