//! The journal's writer as a stage of a ring (the LMAX journaller): a thread that reads the
//! ring as a durable subscriber called [`STAGE_CONSUMER`], appends every message to the
//! journal, and publishes its position only when a sync has made the messages below it
//! durable. So the stage's position *is* the durable position, in the ring's shared memory:
//!
//! - producers never overwrite a slot that is not yet durable (the stage gates them), so a
//!   stage that dies loses nothing: the next one re-attaches under the same name, starts at
//!   its position, and skips what the journal already holds. It also means producers wait
//!   for a sync once the ring is full of messages not yet durable: a ring for a syncing
//!   journal holds what its producers publish during a sync, twice over;
//! - a consumer that must see only durable messages runs after it:
//!   `ring.subscriber("audit").after([STAGE_CONSUMER])`;
//! - a publisher confirm for durability is a wait on its position
//!   ([`JournalStage::wait_durable`], or [`crate::Ring::wait_released`] from any process).
//!
//! "Durable" is what the journal's [`Durability`] promises: synced for group commit and
//! every-record syncs; for [`Durability::PageCache`], written to the page cache (it survives a
//! crash of a process, not of the machine), so there the position moves with every batch.
//!
//! Slots given up by dead producers become skipped records ([`super::FLAG_SKIPPED`]), so the
//! journal's sequences are the ring's.

use super::{Disk, Durability, FsDisk, Journal, JournalOptions};
use crate::consumer::{Consumer, PositionHandle, Start};
use crate::error::{ConfirmError, JournalError, RecvError};
use crate::ring::Ring;
use crate::wait::StopFlag;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The name the stage attaches to its ring under.
pub const STAGE_CONSUMER: &str = crate::confirm::STAGE_NAME;

/// How long an idle stage with nothing uncommitted sleeps between looks at its stop flag
/// when the ring has no wake-ups (with wake-ups, a stop wakes it at once).
const IDLE_TICK: Duration = Duration::from_millis(50);

/// How long the stage yields, after a batch, before it sleeps on the ring's futex word: a
/// producer that waits for its message to be durable publishes its next one about a sync
/// after the last, and a stage asleep by then would add a thread wake-up to every such
/// confirm. A stage that yields costs a core only while another thread has nothing to run on
/// it.
const YIELD_AFTER_BATCH: Duration = Duration::from_micros(250);

/// The least time between two scans of the ring's table for consumer positions: a scan
/// reads every entry and copies out names, which the stage's loop must not do per batch.
const POSITIONS_EVERY: Duration = Duration::from_millis(1);

/// The least time between two looks for replaying subscribers' progress files: each look
/// lists the journal's directory.
const PROGRESS_EVERY: Duration = Duration::from_millis(10);

/// A running journal stage; see the module documentation. Dropping it stops the stage
/// (closing the journal cleanly) and waits for its thread.
#[derive(Debug)]
pub struct JournalStage {
    ring: Ring,
    position: PositionHandle,
    stop: Arc<StopFlag>,
    failure: Arc<Mutex<Option<JournalError>>>,
    thread: Option<JoinHandle<Result<(), JournalError>>>,
}

impl JournalStage {
    /// Starts the stage for `ring` with the journal in directory `dir` (created if missing,
    /// as [`Journal::open`] does).
    ///
    /// # Errors
    ///
    /// What [`JournalStage::spawn_on`] returns.
    pub fn spawn(
        ring: &Ring,
        dir: impl AsRef<Path>,
        options: JournalOptions,
    ) -> Result<JournalStage, JournalError> {
        let dir = dir.as_ref();
        super::make_dir(dir)?;
        let disk = FsDisk::open(dir).map_err(|e| super::io_error(&dir.display().to_string(), "open", &e))?;
        Self::spawn_on(ring, Arc::new(disk), options)
    }

    /// Starts the stage for `ring` with the journal on `disk`. A new journal starts at the
    /// stage's first position in the ring.
    ///
    /// # Errors
    ///
    /// [`JournalError::InvalidOptions`] if `options.max_record` is below the ring's largest
    /// message; [`JournalError::Attach`] if the stage cannot attach (another live stage
    /// has the name); [`JournalError::RingMismatch`]; what [`Journal::open_on`] returns.
    pub fn spawn_on(
        ring: &Ring,
        disk: Arc<dyn Disk>,
        options: JournalOptions,
    ) -> Result<JournalStage, JournalError> {
        if options.max_record < ring.max_message_len() {
            return Err(JournalError::InvalidOptions {
                reason: format!(
                    "max_record {} is below the ring's largest message, {} bytes",
                    options.max_record,
                    ring.max_message_len()
                ),
            });
        }
        let mut consumer = ring
            .subscriber(STAGE_CONSUMER)
            .durable(true)
            .start(Start::Earliest)
            .attach()?;
        let start = consumer.position();
        let mut journal = Journal::open_on(
            disk,
            JournalOptions {
                initial_sequence: start,
                ..options
            },
        )?;
        let journal_end = journal.next_sequence();
        let ring_next = ring.next_sequence();
        if journal_end < start || journal_end > ring_next {
            return Err(JournalError::RingMismatch {
                journal_end,
                ring_position: start,
                ring_next,
            });
        }
        // What the journal holds is not read again: the position published below may be
        // past the ring entry's (a stage that died after its sync, before publishing it).
        consumer.skip_to(journal_end);
        let position = consumer.position_handle();
        // The stage's position starts at what is durable and moves with every sync; at
        // page-cache durability, everything the journal holds counts. It must never be below
        // `start`, which a stage before this one published. An open leaves the records past
        // the state slot's durable position uncommitted, so if `start` is past it, they are
        // committed here: `start` is not trusted as durable, for the stage that published it
        // may have had another durability.
        let durable = if options.durability == Durability::PageCache {
            journal_end
        } else {
            if journal.durable() < start {
                journal.commit()?;
            }
            journal.durable()
        };
        position.publish(durable);
        // A page-cache journal's syncs (its write-back) are behind what it has written, which
        // the stage publishes after every batch.
        if options.durability != Durability::PageCache {
            let publisher = position.clone();
            journal.on_durable(move |durable| publisher.publish(durable))?;
        }
        let stop = Arc::new(StopFlag::default());
        consumer.set_stop(stop.clone());
        let failure = Arc::new(Mutex::new(None));
        let theirs = failure.clone();
        let theirs_stop = stop.clone();
        let ring_for_thread = ring.clone();
        let position_for_thread = position.clone();
        let thread = std::thread::Builder::new()
            .name("ringmq-journal".into())
            .spawn(move || {
                let result = run(
                    &ring_for_thread,
                    &mut consumer,
                    &position_for_thread,
                    journal,
                    &theirs_stop,
                );
                if let Err(e) = &result {
                    *theirs.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
                }
                result
            })
            .map_err(|e| super::io_error("the journal stage thread", "spawn", &e))?;
        Ok(JournalStage {
            ring: ring.clone(),
            position,
            stop,
            failure,
            thread: Some(thread),
        })
    }

    /// The durable position: every sequence below it is in the journal, and synced unless the
    /// journal's durability is [`Durability::PageCache`].
    pub fn durable(&self) -> u64 {
        self.position.get()
    }

    /// Why the stage stopped on its own, if it did (a failed sync, a full disk, ...): the ring
    /// keeps every message from the durable position on, for the next stage.
    pub fn failure(&self) -> Option<JournalError> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until `sequence` is durable, at most `timeout` (`None`: for ever); returns the
    /// durable position. A confirm is cumulative: it covers every earlier sequence.
    ///
    /// # Errors
    ///
    /// The stage's failure ([`JournalError::Failed`], ...) if it stops first;
    /// [`JournalError::Timeout`].
    pub fn wait_durable(&self, sequence: u64, timeout: Option<Duration>) -> Result<u64, JournalError> {
        let deadline = timeout.and_then(crate::wait::deadline_after);
        loop {
            if let Some(failure) = self.failure() {
                return Err(failure);
            }
            // Short waits, so that a failure is seen while waiting.
            let slice = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(IDLE_TICK),
                None => IDLE_TICK,
            };
            match self.ring.wait_released(STAGE_CONSUMER, sequence + 1, Some(slice)) {
                Ok(durable) => return Ok(durable),
                Err(ConfirmError::Timeout { position }) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(JournalError::Timeout { durable: position });
                    }
                }
                Err(other) => {
                    return Err(JournalError::InvalidOptions {
                        reason: format!("the stage's consumer is gone: {other}"),
                    })
                }
            }
        }
    }

    /// Stops the stage: it writes what it has read, closes the journal cleanly (everything
    /// appended durable) and detaches, its position kept in the ring for the next stage.
    ///
    /// # Errors
    ///
    /// The error that stopped the stage, if one did.
    pub fn stop(mut self) -> Result<(), JournalError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), JournalError> {
        self.stop.stop();
        let shared = &self.ring.shared;
        shared.published_event().wake();
        shared.released_event().wake();
        match self.thread.take() {
            Some(thread) => thread.join().unwrap_or_else(|_| {
                Err(JournalError::InvalidOptions {
                    reason: "the journal stage thread panicked".into(),
                })
            }),
            None => Ok(()),
        }
    }
}

impl Drop for JournalStage {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// The stage's loop: read, append, let the group commit run; close the journal at the end.
fn run(
    ring: &Ring,
    consumer: &mut Consumer,
    position: &PositionHandle,
    mut journal: Journal,
    stop: &StopFlag,
) -> Result<(), JournalError> {
    // Without syncs, what the page cache holds survives all a page-cache journal promises
    // (a crash of the process): its appended end is the stage's position.
    let page_cache = journal.options().durability == Durability::PageCache;
    // A group commit starts after each batch, not at its first record.
    journal.set_batching(true);
    let delay = match journal.options().durability {
        Durability::GroupCommit { delay, .. } => delay.max(Duration::from_micros(50)),
        _ => IDLE_TICK,
    };
    let mut positions_taken = Instant::now();
    let mut progress_taken = Instant::now();
    let mut departures = Departures::default();
    let mut last_batch: Option<Instant> = None;
    while !stop.is_stopped() {
        // Replaying subscribers' progress first: the ring's entry of one that has gone live
        // is newer, and is taken after it. With both looked at, the consumers that have left
        // are forgotten.
        if progress_taken.elapsed() >= PROGRESS_EVERY {
            if let Some(files) = journal.take_reader_progress() {
                let in_ring = persist_positions(ring, &mut journal);
                departures.look(&mut journal, files.into_iter().chain(in_ring).collect());
            }
            progress_taken = Instant::now();
        }
        // The durable consumers' positions ride along with the commits, looked up at most
        // once per group commit delay or `POSITIONS_EVERY`, whichever is longer; a position
        // that moved makes a commit due, so acknowledgements made while no message comes are
        // persisted within that plus an idle tick.
        if positions_taken.elapsed() >= delay.max(POSITIONS_EVERY) {
            departures.seen.extend(persist_positions(ring, &mut journal));
            positions_taken = Instant::now();
        }
        journal.poll_commit()?;
        // Something to commit: come back within the group commit's delay. Nothing: sleep
        // until a message (or the stop) comes, after yielding for a while past a batch.
        // (A stage that finds the next message there reads no clock for it.)
        let mut timeout = if journal.uncommitted() { delay } else { IDLE_TICK };
        if let Some(last) = last_batch.filter(|_| !consumer.has_message()) {
            let start = Instant::now();
            let yield_until = (last + YIELD_AFTER_BATCH).min(start + timeout);
            while Instant::now() < yield_until && !consumer.has_message() && !stop.is_stopped() {
                std::thread::yield_now();
            }
            timeout = timeout.saturating_sub(start.elapsed());
        }
        let batch = match consumer.poll_timeout(4096, timeout) {
            Ok(batch) => batch,
            Err(RecvError::Timeout) => continue,
            Err(_) => break,
        };
        let end = batch.sequences().end;
        for message in &batch {
            let sequence = message.sequence();
            if sequence < journal.next_sequence() {
                // Already in the journal: a stage before this one wrote it.
                continue;
            }
            while journal.next_sequence() < sequence {
                journal.append_skipped()?;
            }
            match message.fragment() {
                None => journal.append(&message[..])?,
                Some(fragment) => journal.append_fragment(&message[..], fragment)?,
            };
        }
        while journal.next_sequence() < end {
            journal.append_skipped()?;
        }
        batch.keep();
        if page_cache {
            journal.flush()?;
            position.publish(journal.written());
        }
        // A group commit with nothing more published in the ring is synced at once, on this
        // thread; a page-cache journal's write-back starts, if due.
        journal.end_batch(ring.next_sequence() > journal.next_sequence())?;
        last_batch = Some(Instant::now());
    }
    journal.take_reader_progress();
    persist_positions(ring, &mut journal);
    journal.close()
}

/// The consumers whose positions the stage forgets: those it saw (in the ring's table as
/// durable consumers, or as progress files) that are in neither any more, so they
/// unsubscribed, were evicted, or had their progress file deleted. A position the stage
/// never saw (a consumer of a ring made anew that has not come back yet) is kept. A
/// consumer must be missing from two looks in a row (`PROGRESS_EVERY` apart) to be
/// forgotten, so that no entry caught between two states is taken for gone.
#[derive(Default)]
struct Departures {
    /// Seen by the last look (or since it).
    seen: BTreeSet<String>,
    /// Seen before, missing from the last look.
    missing: BTreeSet<String>,
}

impl Departures {
    /// A look at who is `present` now.
    fn look(&mut self, journal: &mut Journal, present: BTreeSet<String>) {
        for name in self.missing.difference(&present) {
            journal.remove_position(name);
        }
        self.missing = self.seen.difference(&present).cloned().collect();
        self.seen = present;
    }
}

/// Hands the ring's durable subscribers' and groups' positions to the journal, for its next
/// commit, and returns their names. A position that does not fit the state slot (names of
/// about 4 KiB in all) is not persisted; the stage's own is the journal's end and needs no
/// entry.
fn persist_positions(ring: &Ring, journal: &mut Journal) -> Vec<String> {
    let mut names = Vec::new();
    for (name, position, group) in crate::confirm::durable_positions(&ring.shared) {
        if name == STAGE_CONSUMER {
            continue;
        }
        if journal.positions.get(&name) != Some(&(position, group)) {
            let _ = if group {
                journal.set_group_position(&name, position)
            } else {
                journal.set_position(&name, position)
            };
        }
        names.push(name);
    }
    names
}
