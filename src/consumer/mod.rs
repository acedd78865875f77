//! Consumers: subscribers (each sees every message) and group workers (each message goes to
//! one worker of the group), pulled with `recv`/`poll` or pushed to a handler thread.
//!
//! A consumer's position is the first sequence it has not released; it publishes the
//! position with one Release store per message (`recv`) or per batch (`poll`), tag
//! `[released]` (its readers are in `gating.rs` and `barrier.rs`), which is what lets
//! producers reuse the slots below it.
//!
//! Every receive comes in three forms: `try_` (never waits: [`RecvError::Empty`]), the plain
//! one (waits by the consumer's [`WaitStrategy`]) and `_timeout` ([`RecvError::Timeout`]).

#[cfg(all(feature = "async", not(loom)))]
mod asynch;
mod builder;
#[cfg(not(loom))]
mod handler;
mod large;
mod message;

#[cfg(all(feature = "async", not(loom)))]
pub use asynch::MessageStream;
pub use builder::{Start, SubscriberBuilder, WorkerBuilder};
#[cfg(not(loom))]
pub use handler::{HandlerOptions, HandlerThread};
pub use large::Whole;
pub use message::{Batch, BatchIter, Message, Received};

use crate::barrier::Barrier;
use crate::error::RecvError;
use crate::layout::slot::{SlotHeader, SLOT_SKIPPED};
use crate::layout::table::IDLE;
use crate::reaper::Reaper;
use crate::shared::Attached;
use crate::table::EntryRef;
use crate::wait::{self, StopFlag, WaitStrategy};
use std::fmt;
use std::time::{Duration, Instant};

/// The most sequences a subscriber takes into view in one look: slots whose stamps it reads
/// (multi producer), or the cap on a batch taken from the cursor (single producer).
const MAX_LOOK: u64 = 256;

/// Where a consumer is in the stream, and what it waits on: the state its reads and waits
/// change, kept apart from the ring so both can be borrowed at once.
#[derive(Debug)]
struct ReadState {
    /// The consumer's table entry.
    entry: EntryRef,
    /// A worker's group.
    group: Option<EntryRef>,
    barrier: Barrier,
    /// Subscriber: the next sequence to read. Worker: the next in its claimed range.
    next: u64,
    /// Subscriber: sequences below this are known readable. Worker: end of the claimed range.
    end: u64,
    /// Worker: the sequences of the current claim below this are redeliveries.
    redelivered_until: u64,
}

impl ReadState {
    fn new(entry: EntryRef, group: Option<EntryRef>, barrier: Barrier, start: u64) -> Self {
        ReadState {
            entry,
            group,
            barrier,
            next: start,
            end: start,
            redelivered_until: 0,
        }
    }

    /// Extends `[next, end)`: a subscriber by what its barrier makes available, a worker by a
    /// new claim of up to `max` from its group (more only to take all of a message larger
    /// than a slot: `large::message_end`). True if the range is non-empty. Always
    /// inlined, into `fill` and into the wait loops' polls alike: a subscriber's case is a
    /// few loads, and a call per poll lengthens every spin (the worker's claim, larger, stays
    /// a call: `group::try_claim`).
    #[inline(always)]
    fn fill_range(&mut self, att: &Attached, max: u64) -> bool {
        match self.group {
            None => {
                // Only the slots past what is already known need looking at.
                let from = self.end.max(self.next);
                self.end = self.barrier.available(att, from, max.min(MAX_LOOK));
                self.next < self.end
            }
            Some(group) => {
                let barrier = &mut self.barrier;
                let claim_end = &mut |from: u64, max: u64| {
                    let end = barrier.available(att, from, max).min(from.saturating_add(max));
                    large::message_end(att, barrier, from, end)
                };
                match crate::group::try_claim(att.shared(), group.index, self.entry.index, max, claim_end) {
                    Some(claimed) => {
                        self.next = claimed.start;
                        self.end = claimed.end;
                        self.redelivered_until = if claimed.redelivered {
                            claimed.end
                        } else {
                            claimed.start
                        };
                        true
                    }
                    None => false,
                }
            }
        }
    }
}

/// An attached consumer: a subscriber or a group worker; see [`SubscriberBuilder::attach`]
/// and [`WorkerBuilder::attach`].
///
/// Pull messages with [`Consumer::try_recv`], [`Consumer::recv`], [`Consumer::recv_timeout`]
/// (one at a time, released when the returned [`Received`] drops) or [`Consumer::poll`] and
/// friends (a [`Batch`] of everything available, released with one store when it drops); or
/// hand the consumer to a thread with [`Consumer::spawn`]. Dropping the consumer detaches it.
pub struct Consumer {
    /// The ring, with the slot array and this consumer's position word kept as addresses so
    /// that nothing between a message's arrival and its release loads through the `Arc`.
    att: Attached,
    read: ReadState,
    name: String,
    wait: WaitStrategy,
    stop: Option<std::sync::Arc<StopFlag>>,
    skipped: u64,
    /// A durable subscriber keeps its entry when dropped (unless unsubscribing).
    durable: bool,
    unsubscribing: bool,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("name", &self.name)
            .field("worker", &self.read.group.is_some())
            .field("next", &self.read.next)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

impl Consumer {
    fn new(att: Attached, read: ReadState, name: &str, wait: WaitStrategy, durable: bool) -> Self {
        Consumer {
            att,
            read,
            name: name.to_owned(),
            wait,
            stop: None,
            skipped: 0,
            durable,
            unsubscribing: false,
        }
    }

    /// The consumer's name.
    #[inline]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// For a subscriber, the next sequence it will read. For a worker, the next sequence of
    /// its current claim (meaningless between claims).
    #[inline]
    pub fn position(&self) -> u64 {
        self.read.next
    }

    /// How many skipped slots (given up by a producer) this consumer has passed over (in a
    /// batch, those its iterators went past).
    #[inline]
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The largest message of the ring, in bytes (a fixed-size ring's only message size).
    #[inline]
    pub fn max_message_len(&self) -> usize {
        self.att.slots().payload_capacity()
    }

    /// Whether the ring is fixed-size ([`crate::RingBuilder::fixed_size`]).
    #[inline]
    pub fn is_fixed_size(&self) -> bool {
        self.att.slots().fixed()
    }

    /// Whether this is a worker of a group.
    #[inline]
    pub fn is_worker(&self) -> bool {
        self.read.group.is_some()
    }

    /// Whether this is a durable subscriber.
    #[inline]
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    // ---- finding messages ---------------------------------------------------------------

    /// Makes `[next, end)` non-empty if anything is available. A subscriber also looks for
    /// more when it knows of fewer than `max`; `max` bounds a worker's claim.
    // Always inlined: the common case is two compares, and a call would keep `next` and
    // `end` in memory.
    #[inline(always)]
    fn fill(&mut self, max: u64) -> bool {
        let known = self.read.end.saturating_sub(self.read.next);
        if known >= max || (known > 0 && self.read.group.is_some()) {
            return true;
        }
        self.read.fill_range(&self.att, max) || known > 0
    }

    /// Whether a message is available now, without taking it (a worker claims it: the next
    /// receive delivers it). For a caller that waits its own way before a blocking receive.
    #[cfg(not(loom))]
    pub(crate) fn has_message(&mut self) -> bool {
        self.fill(1)
    }

    /// Waits by the wait strategy until `fill` succeeds.
    #[inline]
    fn wait_fill(&mut self, max: u64, deadline: Option<Instant>) -> Result<(), RecvError> {
        if self.fill(max) {
            return Ok(());
        }
        if self.wait == WaitStrategy::BusySpin
            && self.read.group.is_none()
            && self.read.barrier.on_producers()
        {
            return self.spin_fill(max, deadline);
        }
        self.wait_until(deadline, |read, att| read.fill_range(att, max))
    }

    /// Waits by the wait strategy until `ready` (a look at the ring) says so.
    fn wait_until(
        &mut self,
        deadline: Option<Instant>,
        mut ready: impl FnMut(&mut ReadState, &Attached) -> bool,
    ) -> Result<(), RecvError> {
        // Borrow the fields apart rather than clone the `Arc`: a clone would write the
        // reference count, whose line every handle of the ring reads.
        let Consumer {
            att,
            read,
            wait,
            stop,
            ..
        } = self;
        let att: &Attached = att;
        let shared = att.shared();
        let event = read.barrier.event(shared);
        let mut reaper = Reaper::new(shared);
        wait::wait_for(
            *wait,
            event,
            deadline,
            stop.as_deref(),
            || ready(read, att).then_some(()),
            &mut || reaper.idle(shared),
        )
        .map_err(RecvError::from)
    }

    /// `wait_fill` for a busy-spinning subscriber that waits on the producers: between polls
    /// it spins on the one word a publish of its next message writes
    /// (`sequencer::publish_word`), whose address it computes once, rather than running the
    /// whole poll each time. A poll runs at once when that word changes, so a message is seen
    /// as soon as its line arrives, and every 64 spins as in `wait::wait_for` (dead peers, the
    /// stop flag, the deadline). When one message is wanted (`recv`) and the changed word
    /// itself shows it published, the poll is skipped (the `perf/` pingpong scenario guards
    /// both).
    #[inline]
    fn spin_fill(&mut self, max: u64, deadline: Option<Instant>) -> Result<(), RecvError> {
        let Consumer { att, read, stop, .. } = self;
        let att: &Attached = att;
        let shared = att.shared();
        let from = read.end.max(read.next);
        let word = crate::sequencer::publish_word(shared, from);
        let kind = shared.layout.sequencer;
        let mut reaper = Reaper::new(shared);
        let mut rounds = 0u32;
        loop {
            // Relaxed: a hint to poll again, nothing is read on its strength; the poll
            // (`fill_range`) synchronises with the publish.
            let before = word.load_relaxed();
            if read.fill_range(att, max) {
                return Ok(());
            }
            loop {
                crate::sync::spin_loop();
                rounds = rounds.wrapping_add(1);
                if rounds % 64 == 0 {
                    reaper.idle(shared);
                    if stop.as_deref().is_some_and(StopFlag::is_stopped) {
                        return Err(RecvError::Stopped);
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(RecvError::Timeout);
                    }
                    break;
                }
                // [stamp] / [cursor] Acquire: pairs with the producer's Release store of this
                // word (its commit, or its cursor store): when it shows the message, the
                // payload written before it is visible.
                let now = word.load_acquire();
                if now != before {
                    if max == 1 && crate::sequencer::shows_published(kind, now, from) {
                        read.end = from + 1;
                        return Ok(());
                    }
                    break;
                }
            }
        }
    }

    /// Publishes this consumer's position as `upto`. `[released]`
    #[inline]
    fn release_to(&mut self, upto: u64) {
        self.read.next = upto;
        let position = if self.read.group.is_some() && upto >= self.read.end {
            IDLE
        } else {
            upto
        };
        // [released] Release: pairs with the Acquire loads of positions in
        // `gating::gating_minimum`, `gating::group_position` and the barrier: our reads of the
        // slots below `upto` happen before anyone reuses them.
        self.att.sequence().store_release(position);
        self.att.shared().notify_released();
    }

    /// Passes over skipped slots at the front; the header of the message at `next`, if one
    /// is there (read once, for the skip check and the message alike). Always inlined: it
    /// runs between a message's arrival and its delivery, and the common case is one load
    /// and a test; skipped slots are passed out of line.
    #[inline(always)]
    fn skip_to_message(&mut self) -> Option<SlotHeader> {
        if self.read.next < self.read.end {
            let header = self.att.slots().read_header(self.read.next);
            if header.flags & SLOT_SKIPPED == 0 {
                return Some(header);
            }
        }
        self.skip_skipped()
    }

    /// [`Consumer::skip_to_message`] past skipped slots.
    #[cold]
    #[inline(never)]
    fn skip_skipped(&mut self) -> Option<SlotHeader> {
        while self.read.next < self.read.end {
            let header = self.att.slots().read_header(self.read.next);
            if header.flags & SLOT_SKIPPED == 0 {
                return Some(header);
            }
            self.skipped += 1;
            let upto = self.read.next + 1;
            self.release_to(upto);
        }
        None
    }

    // ---- pulling one message ------------------------------------------------------------

    /// The next message if one is available now.
    ///
    /// # Errors
    ///
    /// [`RecvError::Empty`] if nothing is available.
    #[inline(always)]
    pub fn try_recv(&mut self) -> Result<Received<'_>, RecvError> {
        loop {
            if !self.fill(1) {
                return Err(RecvError::Empty);
            }
            if let Some(header) = self.skip_to_message() {
                return Ok(Received::new(self, header));
            }
        }
    }

    /// The next message, waiting by the wait strategy.
    ///
    /// # Errors
    ///
    /// [`RecvError::Stopped`] only inside a handler that is being stopped; otherwise none.
    #[inline(always)]
    pub fn recv(&mut self) -> Result<Received<'_>, RecvError> {
        self.recv_deadline(None)
    }

    /// The next message, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvError::Timeout`] if nothing arrived in time.
    #[inline]
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Received<'_>, RecvError> {
        self.recv_deadline(wait::deadline_after(timeout))
    }

    #[inline(always)]
    fn recv_deadline(&mut self, deadline: Option<Instant>) -> Result<Received<'_>, RecvError> {
        loop {
            if self.fill(1) {
                if let Some(header) = self.skip_to_message() {
                    return Ok(Received::new(self, header));
                }
            }
            self.wait_one(deadline)?;
        }
    }

    /// Waits until a message is known (`wait_fill` of one). Out of line, and returning only
    /// whether to go on: the caller builds the `Received` itself after the return, so the
    /// message does not pass through memory between its arrival and its delivery.
    #[inline(never)]
    fn wait_one(&mut self, deadline: Option<Instant>) -> Result<(), RecvError> {
        self.wait_fill(1, deadline)
    }

    // ---- pulling batches ----------------------------------------------------------------

    /// Every available message, up to `max`, without waiting (the batch may be empty). The
    /// whole batch is released with one store when it drops. A worker claims the batch's
    /// messages for itself: they are delivered to it whether or not it iterates them.
    #[inline(always)]
    pub fn try_poll(&mut self, max: usize) -> Batch<'_> {
        let max = (max as u64).max(1);
        self.fill(max);
        Batch::new(self, max)
    }

    /// Like [`Consumer::try_poll`], but waits for at least one message.
    ///
    /// # Errors
    ///
    /// [`RecvError::Stopped`] only inside a handler that is being stopped.
    #[inline(always)]
    pub fn poll(&mut self, max: usize) -> Result<Batch<'_>, RecvError> {
        let max = (max as u64).max(1);
        self.wait_fill(max, None)?;
        Ok(Batch::new(self, max))
    }

    /// Like [`Consumer::poll`], waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvError::Timeout`] if nothing arrived in time.
    #[inline]
    pub fn poll_timeout(&mut self, max: usize, timeout: Duration) -> Result<Batch<'_>, RecvError> {
        let max = (max as u64).max(1);
        self.wait_fill(max, wait::deadline_after(timeout))?;
        Ok(Batch::new(self, max))
    }

    /// Detaches now: the consumer stops gating producers and its name is free again.
    /// (Dropping it does the same.) A durable subscriber's entry stays, with its position,
    /// for a later attach of the same name; see [`Consumer::unsubscribe`]. A worker holding
    /// messages it has not acknowledged hands them back to its group (redelivered).
    #[inline]
    pub fn detach(self) {}

    /// Detaches and, for a durable subscriber, removes its entry and position for good; a
    /// worker of a durable group makes the group ephemeral, so that it goes with its last
    /// worker (for any other consumer this is [`Consumer::detach`]).
    #[inline]
    pub fn unsubscribe(mut self) {
        self.unsubscribing = true;
    }

    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn set_stop(&mut self, stop: std::sync::Arc<StopFlag>) {
        self.stop = Some(stop);
    }
}

/// A subscriber's position word, to publish from another thread than the consumer's:
/// [`Consumer::position_handle`].
#[cfg(not(loom))]
#[derive(Clone)]
pub(crate) struct PositionHandle {
    shared: std::sync::Arc<crate::shared::Shared>,
    index: usize,
}

#[cfg(not(loom))]
impl fmt::Debug for PositionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PositionHandle")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

#[cfg(not(loom))]
impl PositionHandle {
    /// Publishes `position`: the consumer has finished with every slot below it.
    /// `[released]`
    pub(crate) fn publish(&self, position: u64) {
        // [released] Release: as in `Consumer::release_to`; the reads of the slots below
        // `position` happened before this on the consumer's thread, and reached this one
        // through whatever handed the position over (the journal's syncer hand-off lock).
        self.shared.entry_sequence(self.index).store_release(position);
        self.shared.notify_released();
    }

    /// The position last published.
    pub(crate) fn get(&self) -> u64 {
        // [released] Acquire: pairs with the Release in `publish`.
        self.shared.entry_sequence(self.index).load_acquire()
    }
}

#[cfg(not(loom))]
impl Consumer {
    /// A handle that publishes this subscriber's position from any thread; used with
    /// [`Batch::keep`], which reads on without publishing.
    pub(crate) fn position_handle(&self) -> PositionHandle {
        debug_assert!(self.read.group.is_none());
        PositionHandle {
            shared: self.att.arc().clone(),
            index: self.read.entry.index,
        }
    }

    /// Moves a subscriber's reading on to `to` without delivering what lies before it (its
    /// caller has it already, and is about to publish a position at `to` or below). A reader
    /// must never be behind its own published position: producers overwrite the slots
    /// below that, and it would wait for ever on a slot that holds a later sequence.
    pub(crate) fn skip_to(&mut self, to: u64) {
        debug_assert!(self.read.group.is_none());
        if to > self.read.next {
            self.read.next = to;
            self.read.end = to;
        }
    }
}

impl Drop for Consumer {
    #[inline]
    fn drop(&mut self) {
        let shared = self.att.shared();
        let entry = self.read.entry;
        match self.read.group {
            // Kept, gating, for its next attach; its token goes, so to other processes it
            // looks like a dead durable subscriber (evicted after its delay, if it has one).
            None if self.durable && !self.unsubscribing => {
                shared.liveness.release(crate::liveness::entry_lock(entry.index))
            }
            None => crate::table::free(shared, entry),
            // A worker still holding part of a claim hands it back to the group; one
            // unsubscribing makes its group ephemeral first (it goes with its last worker).
            Some(group) => {
                if self.unsubscribing {
                    crate::group::set_durable(shared, group, false);
                }
                crate::group::orphan_or_free(shared, entry)
            }
        }
    }
}
