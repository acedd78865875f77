//! A subscriber that starts in the journal's past and continues into the ring's live stream
//! with no gap and no duplicate: [`JournalSubscriber`].
//!
//! It replays the journal (through a [`JournalReader`], at memory speed) until it has read
//! everything written there, then attaches to the ring at the next sequence. The ring still
//! holds that sequence unless producers have lapped it since; then the journal has it
//! (the stage gates producers at the durable position, so what the ring gives up is in the
//! journal first), and the subscriber reads on from the journal and tries again. Once
//! attached it is an ordinary subscriber of the ring.
//!
//! Messages larger than a slot ([`crate::Producer::publish_large`]) are delivered whole, put
//! together from their fragments whether these come from the journal, the ring, or both: the
//! subscriber goes live at the first fragment of a message it has not finished, and releases
//! ring slots only up to the first fragment of a message under way, so a durable subscriber's
//! persisted position is never in the middle of one.

use super::progress::{self, Progress};
use super::{JournalReader, Seek, FLAG_SKIPPED};
use crate::consumer::{Consumer, Start};
use crate::error::{AttachError, JournalError};
use crate::fragment::{Assembler, Push};
use crate::ring::Ring;
use std::path::Path;
use std::time::{Duration, Instant};

/// See the module documentation.
#[derive(Debug)]
pub struct JournalSubscriber {
    ring: Ring,
    name: String,
    reader: JournalReader,
    /// The next sequence to deliver.
    next: u64,
    live: Option<Consumer>,
    /// Attach to the ring as a durable subscriber, and keep the replay's progress until then.
    durable: bool,
    /// The replay's progress file (durable subscribers, until live; `None` if it could not
    /// be had: the directory is not writable to this process).
    progress: Option<Progress>,
    /// Puts large messages together, in `whole`.
    assembler: Assembler,
    whole: Vec<u8>,
}

impl JournalSubscriber {
    /// A subscriber called `name` of `ring`, starting at `from` in the journal in directory
    /// `dir` (written by the ring's [`super::JournalStage`]).
    ///
    /// # Errors
    ///
    /// What [`JournalReader::open`] returns; [`JournalError::Retained`] or
    /// [`JournalError::NotYet`] for a `from` the journal does not hold.
    pub fn attach(ring: &Ring, dir: impl AsRef<Path>, name: &str, from: Seek) -> Result<Self, JournalError> {
        Self::with_reader(ring, JournalReader::open(dir)?, name, from)
    }

    /// [`JournalSubscriber::attach`] with a reader already open (on any disk).
    ///
    /// # Errors
    ///
    /// As [`JournalSubscriber::attach`].
    pub fn with_reader(
        ring: &Ring,
        reader: JournalReader,
        name: &str,
        from: Seek,
    ) -> Result<Self, JournalError> {
        crate::table::validate_name(name)?;
        let next = match from {
            Seek::Latest => ring.next_sequence().max(reader.next_sequence()),
            other => reader.replay(other)?.next_sequence(),
        };
        Ok(JournalSubscriber {
            ring: ring.clone(),
            name: name.to_owned(),
            reader,
            next,
            live: None,
            durable: false,
            progress: None,
            assembler: Assembler::default(),
            whole: Vec::new(),
        })
    }

    /// Makes it durable: the stage persists its position in the journal with every commit,
    /// so that after a restart of every process [`JournalReader::position`] says where to
    /// start again (at-least-once: what was delivered after the last commit comes again).
    /// While it replays the journal, its progress goes through a small file in the journal's
    /// directory (`<name in hex>.reader`, written through a mapping after each delivery, read
    /// by the stage); once live, the ring subscriber it becomes is a durable one
    /// ([`crate::SubscriberBuilder::durable`]) and the file goes. A process that may not
    /// write the directory keeps no progress until it is live. The progress holds retention
    /// "until consumed" back like any durable consumer's position; deleting the file (or the
    /// ring's entry) forgets it.
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// The next sequence this subscriber delivers.
    pub fn position(&self) -> u64 {
        self.live.as_ref().map_or(self.next, Consumer::position)
    }

    /// Whether it reads the ring now (it has caught up with the journal).
    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }

    /// Calls `f(sequence, payload)` for up to `max` messages in order, waiting at most
    /// `timeout` for the first; returns how many it delivered (0 at the timeout). Skipped
    /// slots are passed over, as a ring subscriber passes them. A message larger than a slot
    /// comes whole, under its last fragment's sequence; fragments of one whose start is not
    /// retained (or whose producer died publishing it) are passed over.
    ///
    /// # Errors
    ///
    /// [`JournalError::Corrupt`] for a record that does not check; [`JournalError::Attach`]
    /// if the ring refuses the attach; [`JournalError::RingMismatch`] if the ring has given
    /// up sequences the journal does not hold (no stage was running).
    pub fn poll_with(
        &mut self,
        max: usize,
        timeout: Duration,
        mut f: impl FnMut(u64, &[u8]),
    ) -> Result<usize, JournalError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.live.is_some() {
                match self.poll_live(max, deadline, &mut f) {
                    // Only fragments without their start: passed over, look again.
                    Some(0) if Instant::now() < deadline => continue,
                    Some(n) => return Ok(n),
                    None => return Ok(0),
                }
            }
            let n = self.replay_some(max, &mut f)?;
            if n > 0 {
                self.store_progress();
                return Ok(n);
            }
            if self.try_go_live()? {
                continue;
            }
            if Instant::now() >= deadline {
                return Ok(0);
            }
            // Not in the ring any more and not yet found in the journal: the stage is
            // writing it; look again shortly.
            std::thread::sleep(
                Duration::from_micros(200).min(deadline.saturating_duration_since(Instant::now())),
            );
            self.reader.refresh()?;
        }
    }

    /// Delivers up to `max` messages from one poll of the ring, waiting until `deadline`;
    /// how many (`Some(0)`: only fragments whose start was not seen, poll again), or `None` at
    /// the deadline. Slots are released up to the first fragment of a message not yet whole.
    fn poll_live(&mut self, max: usize, deadline: Instant, f: &mut impl FnMut(u64, &[u8])) -> Option<usize> {
        let JournalSubscriber {
            live,
            assembler,
            whole,
            ..
        } = self;
        let live = live.as_mut()?;
        let left = deadline.saturating_duration_since(Instant::now());
        // A large message's fragments may outnumber `max`: the poll takes all the ring has,
        // and the delivery stops at `max` messages.
        let batch = live.poll_timeout(usize::MAX, left).ok()?;
        let mut delivered = 0;
        // Every sequence below this is delivered or passed over.
        let mut done = batch.sequences().start;
        for m in &batch {
            let sequence = m.sequence();
            let push = deliver(assembler, whole, sequence, m.fragment(), &m, f);
            if push == Push::Dropped {
                done = sequence + 1;
            }
            if push == Push::Complete {
                delivered += 1;
                done = sequence + 1;
                if delivered == max {
                    break;
                }
            }
        }
        // Skipped slots past the last message are passed over with the rest.
        let under_way = assembler.under_way().is_some();
        assembler.reset();
        if delivered < max && !under_way {
            drop(batch);
            return Some(delivered);
        }
        batch.release_before(done);
        if delivered > 0 || !under_way {
            return Some(delivered);
        }
        // Only part of a large message is in view: wait for the rest as `recv_large` does
        // (its wait strategy, and dead producers' slots skipped meanwhile).
        let left = deadline.saturating_duration_since(Instant::now());
        match live.recv_large_timeout(whole, left) {
            Ok(received) => {
                f(received.sequence, whole);
                Some(1)
            }
            Err(_) => None,
        }
    }

    /// Delivers up to `max` messages from the journal; how many (skipped ones not counted).
    fn replay_some(&mut self, max: usize, f: &mut impl FnMut(u64, &[u8])) -> Result<usize, JournalError> {
        if self.next >= self.reader.next_sequence() {
            self.reader.refresh()?;
            if self.next >= self.reader.next_sequence() {
                return Ok(0);
            }
        }
        let JournalSubscriber {
            reader,
            next,
            assembler,
            whole,
            ..
        } = self;
        let mut delivered = 0;
        for record in reader.replay(Seek::Sequence(*next))? {
            let record = record?;
            *next = record.sequence + 1;
            if record.flags & FLAG_SKIPPED != 0 {
                assembler.reset();
                continue;
            }
            let push = deliver(
                assembler,
                whole,
                record.sequence,
                record.fragment(),
                record.payload,
                f,
            );
            if push == Push::Complete {
                delivered += 1;
                if delivered == max {
                    break;
                }
            }
        }
        Ok(delivered)
    }

    /// Attaches to the ring at `next` if the ring still holds it; true if it did.
    fn try_go_live(&mut self) -> Result<bool, JournalError> {
        // A large message the journal gave only the start of is read again from the ring,
        // whole.
        let from = self.assembler.under_way().unwrap_or(self.next);
        let attached = self
            .ring
            .subscriber(&self.name)
            .start(Start::Sequence(from))
            .durable(self.durable)
            .attach();
        match attached {
            Ok(consumer) => {
                self.assembler.reset();
                self.live = Some(consumer);
                // Live for good: the journal's segments are not read again.
                self.reader.let_go();
                if self.progress.take().is_some() {
                    // The ring's entry carries the position from here on.
                    let _ = progress::remove(&**self.reader.disk(), &self.name);
                }
                Ok(true)
            }
            Err(AttachError::SequenceUnavailable { earliest, .. }) => {
                self.reader.refresh()?;
                if self.reader.next_sequence() <= self.next && earliest > self.next && !self.stage_gates() {
                    return Err(JournalError::RingMismatch {
                        journal_end: self.reader.next_sequence(),
                        ring_position: earliest,
                        ring_next: self.ring.next_sequence(),
                    });
                }
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Records how far the replay has delivered, if durable: the start of a large message
    /// under way, else the next sequence (everything below it was delivered by calls that have
    /// returned). The file is opened at the first call.
    fn store_progress(&mut self) {
        if !self.durable {
            return;
        }
        if self.progress.is_none() {
            self.progress = Progress::open(&**self.reader.disk(), &self.name).ok();
        }
        if let Some(progress) = &self.progress {
            let _ = progress.store(self.assembler.under_way().unwrap_or(self.next));
        }
    }

    /// Whether a stage is attached to the ring (so what the ring gives up reaches the
    /// journal).
    fn stage_gates(&self) -> bool {
        self.ring
            .consumers()
            .iter()
            .any(|c| c.name == super::STAGE_CONSUMER)
    }
}

/// Takes one piece (or whole message) at `sequence` and calls `f` with each message it
/// completes: a whole message straight from `payload`, a large one from `whole`.
fn deliver(
    assembler: &mut Assembler,
    whole: &mut Vec<u8>,
    sequence: u64,
    fragment: Option<crate::Fragment>,
    payload: &[u8],
    f: &mut impl FnMut(u64, &[u8]),
) -> Push {
    if fragment.is_none() {
        assembler.reset();
        f(sequence, payload);
        return Push::Complete;
    }
    let push = assembler.push(whole, sequence, fragment, payload);
    if push == Push::Complete {
        f(sequence, whole);
    }
    push
}
