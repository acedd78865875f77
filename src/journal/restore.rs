//! A ring made anew for a journal that outlived its ring (a ring in /dev/shm is gone after a
//! reboot): [`restore`].
//!
//! The durable groups are the reason a plain new ring is not enough. A subscriber can read
//! its past from the journal ([`super::JournalSubscriber`]), but a group's workers claim
//! slots of the ring, so whatever a group had not acknowledged must be in the ring again, in
//! the slots of its own sequences. So the new ring starts at the oldest committed position
//! of any group; the journal's records from there to its end are published into it before
//! anything else can see it (it is made under a name of its own and linked when done); and
//! each group is attached again at its position and left durable, gating. Producers then
//! continue at the journal's end, the stage finds every record below it journaled already,
//! and the groups' workers take up where they last acknowledged (at-least-once, like any
//! restart). The journal's subscribers' positions need nothing here: they resume through
//! the journal.

use super::{JournalError, JournalReader, Seek, FLAG_SKIPPED};
use crate::consumer::Start;
use crate::error::OpenError;
use crate::layout::slot::SLOT_SKIPPED;
use crate::ring::{Ring, RingBuilder};
use crate::storage::io_error;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How many records go into the ring per batch.
const BATCH: usize = 256;

/// The worker name a group is attached under while its place is given back.
const RESTORER: &str = "journal-restore";

/// Makes the ring `path` with `builder` for the journal in `dir`, which outlived the ring
/// that was there (see the module documentation): the ring holds the records from the
/// oldest position a durable group committed to the journal's end, each group is back at
/// its position, and the next sequence is the journal's end. With no group, the ring is
/// empty and starts at the journal's end.
///
/// A group whose position is older than what retention kept starts at the oldest retained
/// record. The journal does not keep a group's dependencies: a restored group has none, and
/// a worker that attaches to it with [`crate::WorkerBuilder::after`] is refused
/// ([`crate::AttachError::GroupMismatch`]).
///
/// # Errors
///
/// What [`JournalReader::open`] and [`JournalReader::replay`] return;
/// [`JournalError::Backlog`] if a group's backlog does not fit the ring (make it larger);
/// [`JournalError::Open`] if the ring cannot be made ([`OpenError::AlreadyExists`] if `path`
/// is taken) or opened; [`JournalError::Publish`] if a record does not fit its slot (a smaller slot, or a
/// fixed-size ring, than the journal's ring had); [`JournalError::Attach`].
pub fn restore(
    builder: RingBuilder,
    path: impl AsRef<Path>,
    dir: impl AsRef<Path>,
) -> Result<Ring, JournalError> {
    let path = path.as_ref();
    if std::fs::symlink_metadata(path).is_ok() {
        // Checked again by the link at the end, which never replaces a file.
        return Err(JournalError::Open(OpenError::AlreadyExists {
            path: path.display().to_string(),
        }));
    }
    let reader = JournalReader::open(dir)?;
    let end = reader.next_sequence();
    let oldest = reader.oldest();
    let groups: Vec<(String, u64)> = reader
        .groups()
        .map(|(name, position)| (name.to_owned(), position.clamp(oldest, end)))
        .collect();
    let start = groups.iter().map(|&(_, p)| p).min().unwrap_or(end);
    // Made under a name of its own, so nothing opens it before it holds the backlog.
    let staging = staging_path(path)?;
    let ring = builder.initial_sequence(start).create(&staging)?;
    let filled = fill(&ring, &reader, &groups, start, end);
    // A link never replaces a file: a ring made there meanwhile is `AlreadyExists`.
    let linked = filled.and_then(|()| {
        std::fs::hard_link(&staging, path).map_err(|e| JournalError::Open(io_error(path, "link", &e)))
    });
    let _ = std::fs::remove_file(&staging);
    linked?;
    drop(ring);
    Ok(Ring::open(path)?)
}

/// Publishes the journal's records `start..end` into `ring`, then attaches each group at
/// its position and detaches, leaving it durable.
fn fill(
    ring: &Ring,
    reader: &JournalReader,
    groups: &[(String, u64)],
    start: u64,
    end: u64,
) -> Result<(), JournalError> {
    if let Some((group, position)) = groups.iter().find(|&&(_, p)| end - p > ring.capacity()) {
        return Err(JournalError::Backlog {
            group: group.clone(),
            position: *position,
            end,
            capacity: ring.capacity(),
        });
    }
    let mut producer = ring.producer().map_err(JournalError::Attach)?;
    // Payloads borrowed from the reader's mapping, a batch at a time.
    let mut pieces: Vec<(&[u8], u8)> = Vec::with_capacity(BATCH);
    let mut publish = |pieces: &mut Vec<(&[u8], u8)>| -> Result<(), JournalError> {
        if !pieces.is_empty() {
            // Nothing gates a ring no consumer has attached to yet, and the backlog fits it.
            producer.publish_pieces_timeout(pieces, Duration::ZERO)?;
            pieces.clear();
        }
        Ok(())
    };
    if start < end {
        for record in reader.replay(Seek::Sequence(start))? {
            let record = record?;
            if record.sequence >= end {
                break;
            }
            let flags = if record.flags & FLAG_SKIPPED != 0 {
                SLOT_SKIPPED
            } else {
                record.fragment().map_or(0, crate::Fragment::slot_flags_of)
            };
            pieces.push((record.payload, flags));
            if pieces.len() == BATCH {
                publish(&mut pieces)?;
            }
        }
        publish(&mut pieces)?;
    }
    for (group, position) in groups {
        let worker = ring
            .worker(group, RESTORER)
            .durable(true)
            .group_start(Start::Sequence(*position))
            .attach()?;
        drop(worker);
    }
    Ok(())
}

/// A name beside `path` for the ring while it is filled: hidden (a topic name cannot start
/// with a `.`), and if this process dies before it is linked, an unused ring that `prune`
/// removes.
fn staging_path(path: &Path) -> Result<PathBuf, JournalError> {
    let name = path.file_name().ok_or_else(|| {
        JournalError::Open(OpenError::InvalidPath {
            path: path.display().to_string(),
        })
    })?;
    let mut staging = std::ffi::OsString::from(".");
    staging.push(name);
    staging.push(format!(".restore-{}", std::process::id()));
    Ok(path.with_file_name(staging))
}
