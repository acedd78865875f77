//! Consumers: subscribers (each sees every message) and group workers (each message goes to
//! one worker of the group), pulled with `recv`/`poll` or pushed to a handler thread.
//!
//! A consumer's position is the first sequence it has not released; it publishes the
//! position with one Release store per message (`recv`) or per batch (`poll`), tag
//! `[released]`, which is what lets producers reuse the slots below it.

#[cfg(not(loom))]
mod handler;
pub(crate) mod table;

#[cfg(not(loom))]
pub use handler::{HandlerOptions, HandlerThread};
pub use table::{ConsumerInfo, ConsumerKind};

use crate::barrier::Barrier;
use crate::error::{Error, RecvError};
use crate::layout::{SlotHeader, IDLE, KIND_SUBSCRIBER, KIND_WORKER, OPT_DURABLE, SLOT_SKIPPED};
use crate::ring::{Geometry, Ring, SequenceRef, Shared, Slots};
use crate::storage::ReadTrack;
use crate::sync::Arc;
use crate::wait::{self, StopFlag, WaitStrategy};
use std::fmt;
use std::ops::{Deref, Range};
use std::time::{Duration, Instant};
use table::EntryRef;

/// The most sequences a subscriber takes into view in one look: slots whose stamps it reads
/// (multi producer), or the cap on a batch taken from the cursor (single producer).
const MAX_LOOK: u64 = 256;

/// Where a new consumer (or a new group) starts reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Start {
    /// At the next message published after attaching.
    #[default]
    Latest,
    /// At the oldest message still in the ring.
    Earliest,
    /// At this sequence: still in the ring, or in the future.
    Sequence(u64),
}

/// Options for attaching a consumer; from [`Ring::subscriber`] or [`Ring::worker`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `attach`"]
pub struct ConsumerBuilder<'r> {
    ring: &'r Ring,
    name: String,
    group: Option<String>,
    after: Vec<String>,
    explicit_after: bool,
    start: Start,
    wait: Option<WaitStrategy>,
    durable: bool,
    evict_after: Option<Duration>,
}

impl<'r> ConsumerBuilder<'r> {
    pub(crate) fn new(ring: &'r Ring, name: &str, group: Option<&str>) -> Self {
        ConsumerBuilder {
            ring,
            name: name.to_owned(),
            group: group.map(str::to_owned),
            after: Vec::new(),
            explicit_after: false,
            start: Start::Latest,
            wait: None,
            durable: false,
            evict_after: None,
        }
    }

    /// A durable subscriber (default: ephemeral). Matters for rings shared between
    /// processes:
    ///
    /// - an **ephemeral** subscriber whose process dies is detached by the next handle that
    ///   notices (a producer waiting on it, a consumer waiting, an attach, `ringmq stat`), so
    ///   it stops gating producers;
    /// - a **durable** subscriber whose process dies keeps its entry and its position, and
    ///   keeps gating producers (they wait, and `publish_timeout` returns
    ///   [`crate::PublishError::Timeout`]) until a subscriber of the same name attaches again
    ///   (durable too) and continues from that position, without loss or duplicates, or until
    ///   [`ConsumerBuilder::evict_after`] has passed.
    ///
    /// A durable subscriber also outlives a graceful detach: dropping it (or
    /// [`Consumer::detach`]) leaves the entry, gating, for a later attach of the same name;
    /// [`Consumer::unsubscribe`] removes it for good. Re-attaching keeps the recorded
    /// dependencies (`after`) and position; `start` is not used then.
    ///
    /// Workers ignore this: their group keeps what a dead worker held (see
    /// [`Message::redelivered`]).
    #[inline]
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// For a durable subscriber: once its process has been seen dead for `delay`, it is
    /// detached like an ephemeral one (default: never). Rounded to milliseconds.
    #[inline]
    pub fn evict_after(mut self, delay: Duration) -> Self {
        self.evict_after = Some(delay);
        self
    }

    /// Runs after the named consumers or groups: sequence `s` is delivered only once each of
    /// them has released `s` (pipelines, diamonds). At most 8. For a worker, these are its
    /// group's dependencies: the first worker sets them, and a later worker that names any
    /// must name the same.
    #[inline]
    pub fn after<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.after = names.into_iter().map(|s| s.as_ref().to_owned()).collect();
        self.explicit_after = true;
        self
    }

    /// Where to start (default [`Start::Latest`]). For a worker this is the group's start,
    /// used only by the worker that creates the group.
    #[inline]
    pub fn start(mut self, start: Start) -> Self {
        self.start = start;
        self
    }

    /// How `recv`/`poll` wait (default `Backoff`, or `Yield` on a ring without wake-ups).
    #[inline]
    pub fn wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.wait = Some(wait);
        self
    }

    /// Attaches the consumer. From now on it gates producers until it detaches or drops.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::NameTaken`], [`Error::UnknownDependency`],
    /// [`Error::TooManyDependencies`], [`Error::TableFull`], [`Error::SequenceUnavailable`]
    /// (a `Start::Sequence` already overwritten), [`Error::WakeupsDisabled`],
    /// [`Error::GroupMismatch`].
    pub fn attach(self) -> Result<Consumer, Error> {
        let shared = &self.ring.shared;
        let wait = self.wait.unwrap_or(if shared.wakeups {
            WaitStrategy::Backoff
        } else {
            WaitStrategy::Yield
        });
        if wait.blocks() && !shared.wakeups {
            return Err(Error::WakeupsDisabled);
        }
        table::validate_name(&self.name)?;
        let deps = table::resolve(shared, &self.after)?;
        match &self.group {
            None => self.attach_subscriber(deps, wait),
            Some(group) => {
                table::validate_name(group)?;
                self.attach_worker(group, deps, wait)
            }
        }
    }

    fn attach_subscriber(&self, deps: Vec<table::Dependency>, wait: WaitStrategy) -> Result<Consumer, Error> {
        let shared = &self.ring.shared;
        if self.durable {
            if let Some(entry) = table::adopt_durable(shared, &self.name) {
                // Acquire: pairs with the previous owner's [released] Release stores.
                let position = shared.entry_sequence(entry.index).load_acquire();
                let recorded = table::recorded_dependencies(shared, entry.index);
                let mut consumer = Consumer::new(
                    Arc::clone(shared),
                    entry,
                    &self.name,
                    None,
                    Barrier::new(recorded),
                    position,
                    wait,
                );
                consumer.durable = true;
                return Ok(consumer);
            }
        }
        let entry = table::claim(shared, &self.name, KIND_SUBSCRIBER)?;
        let options = if self.durable {
            let ms = self
                .evict_after
                .map_or(0, |d| (d.as_millis() as u64).clamp(1, u32::MAX as u64));
            OPT_DURABLE | (ms << 32)
        } else {
            0
        };
        table::describe(shared, entry, &deps, None, options);
        let start = match start_position(shared, entry, self.start, 0) {
            Ok(start) => start,
            Err(e) => {
                table::free(shared, entry);
                return Err(e);
            }
        };
        let mut consumer = Consumer::new(
            Arc::clone(shared),
            entry,
            &self.name,
            None,
            Barrier::new(deps),
            start,
            wait,
        );
        consumer.durable = self.durable;
        Ok(consumer)
    }

    fn attach_worker(
        &self,
        group: &str,
        deps: Vec<table::Dependency>,
        wait: WaitStrategy,
    ) -> Result<Consumer, Error> {
        let shared = &self.ring.shared;
        let (group_entry, created) = table::join_group(shared, group, &deps, self.explicit_after)?;
        if created {
            if let Err(e) = start_position(shared, group_entry, self.start, 1) {
                table::leave_group(shared, group_entry);
                return Err(e);
            }
            // A group lives as long as its workers, not its creator: its entry needs no
            // liveness token (it is freed when its last worker leaves or is reaped).
            shared
                .liveness
                .release(crate::liveness::entry_lock(group_entry.index));
        }
        let group_deps = table::recorded_dependencies(shared, group_entry.index);
        let entry = match table::claim(shared, &self.name, KIND_WORKER) {
            Ok(entry) => entry,
            Err(e) => {
                table::leave_group(shared, group_entry);
                return Err(e);
            }
        };
        table::describe(shared, entry, &[], Some(group_entry), 0);
        table::activate(shared, entry, IDLE, 0);
        table::set_member(shared, group_entry, entry.index, true);
        Ok(Consumer::new(
            Arc::clone(shared),
            entry,
            &self.name,
            Some(group_entry),
            Barrier::new(group_deps),
            0,
            wait,
        ))
    }
}

/// Activates a claimed subscriber or group entry at the position `start` asks for, by the
/// `[attach]` protocol; returns the position it settled on.
fn start_position(shared: &Shared, entry: EntryRef, start: Start, members: u64) -> Result<u64, Error> {
    let capacity = shared.capacity();
    let initial = shared.layout.params.initial_sequence;
    // A first guess that is usually right, so producers are not held back by a low one.
    let earliest_guess = || {
        shared
            .write_limit()
            .load_acquire()
            .saturating_sub(capacity)
            .max(initial)
    };
    let tentative = match start {
        Start::Latest => shared.next_sequence(),
        Start::Earliest => earliest_guess(),
        Start::Sequence(s) => s,
    };
    table::activate(shared, entry, tentative, members);
    let floor = table::settle_start(shared);
    if let Start::Sequence(requested) = start {
        if requested < floor {
            return Err(Error::SequenceUnavailable {
                requested,
                earliest: floor,
            });
        }
    }
    let settled = tentative.max(floor);
    if settled != tentative {
        // [released] Release: raising the position only ever frees slots.
        shared.entry_sequence(entry.index).store_release(settled);
    }
    Ok(settled)
}

/// Extends `[next, end)`: a subscriber by what its barrier makes available, a worker by a new
/// claim of up to `max` from its group. True if the range is non-empty. Always inlined, into
/// `fill` and into the wait loops' polls alike: a subscriber's case is a few loads, and a
/// call per poll lengthened every spin (the worker's claim, larger, stays a call:
/// `group::try_claim`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn fill_range(
    shared: &Shared,
    group: Option<EntryRef>,
    entry: usize,
    barrier: &mut Barrier,
    next: &mut u64,
    end: &mut u64,
    redelivered_until: &mut u64,
    max: u64,
) -> bool {
    match group {
        None => {
            // Only the slots past what is already known need looking at.
            let from = (*end).max(*next);
            *end = barrier.available(shared, from, max.min(MAX_LOOK));
            *next < *end
        }
        Some(group) => match crate::group::try_claim(shared, group.index, entry, max, barrier) {
            Some(claimed) => {
                *next = claimed.start;
                *end = claimed.end;
                *redelivered_until = if claimed.redelivered {
                    claimed.end
                } else {
                    claimed.start
                };
                true
            }
            None => false,
        },
    }
}

/// An attached consumer: a subscriber or a group worker; see [`ConsumerBuilder::attach`].
///
/// Pull messages with [`Consumer::try_recv`], [`Consumer::recv`], [`Consumer::recv_timeout`]
/// (one at a time, released when the returned [`Message`] drops) or [`Consumer::poll`] and
/// friends (a [`Batch`] of everything available, released with one store when it drops); or
/// hand the consumer to a thread with [`Consumer::spawn`]. Dropping the consumer detaches it.
pub struct Consumer {
    shared: Arc<Shared>,
    entry: EntryRef,
    name: String,
    group: Option<EntryRef>,
    barrier: Barrier,
    /// Subscriber: the next sequence to read. Worker: the next in its claimed range.
    next: u64,
    /// Subscriber: sequences below this are known readable. Worker: end of the claimed range.
    end: u64,
    wait: WaitStrategy,
    stop: Option<std::sync::Arc<StopFlag>>,
    skipped: u64,
    /// Worker: the sequences of the current claim below this are redeliveries.
    redelivered_until: u64,
    /// A durable subscriber keeps its entry when dropped (unless unsubscribing).
    durable: bool,
    unsubscribing: bool,
    /// The ring's slot geometry and this consumer's position word, kept here (from `shared`)
    /// so that nothing between a message's arrival and its release loads through `shared`:
    /// in a round trip those loads are a chain of dependent reads on the critical path.
    geometry: Geometry,
    position_word: SequenceRef,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("name", &self.name)
            .field("worker", &self.group.is_some())
            .field("next", &self.next)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

impl Consumer {
    #[allow(clippy::too_many_arguments)]
    fn new(
        shared: Arc<Shared>,
        entry: EntryRef,
        name: &str,
        group: Option<EntryRef>,
        barrier: Barrier,
        start: u64,
        wait: WaitStrategy,
    ) -> Self {
        let geometry = shared.geometry();
        let position_word = shared.entry_sequence_ref(entry.index);
        Consumer {
            shared,
            geometry,
            position_word,
            entry,
            name: name.to_owned(),
            group,
            barrier,
            next: start,
            end: start,
            wait,
            stop: None,
            skipped: 0,
            redelivered_until: 0,
            durable: false,
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
        self.next
    }

    /// How many skipped slots (given up by a producer) this consumer has passed over (in a
    /// batch, those its iterators went past).
    #[inline]
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    #[inline]
    pub(crate) fn shared_payload_capacity(&self) -> usize {
        self.shared.layout.payload_capacity()
    }

    /// Whether the ring is fixed-size (every message its payload capacity).
    pub(crate) fn shared_fixed(&self) -> bool {
        self.shared.layout.params.fixed
    }

    /// Whether this is a worker of a group.
    #[inline]
    pub fn is_worker(&self) -> bool {
        self.group.is_some()
    }

    // ---- finding messages ---------------------------------------------------------------

    /// Makes `[next, end)` non-empty if anything is available. A subscriber also looks for
    /// more when it knows of fewer than `max`; `max` bounds a worker's claim.
    // Always inlined: the common case is two compares, and a call would keep `next` and
    // `end` in memory.
    #[inline(always)]
    fn fill(&mut self, max: u64) -> bool {
        let known = self.end.saturating_sub(self.next);
        if known >= max || (known > 0 && self.group.is_some()) {
            return true;
        }
        self.fill_slow(max) || known > 0
    }

    #[inline]
    fn fill_slow(&mut self, max: u64) -> bool {
        let entry = self.entry.index;
        fill_range(
            &self.shared,
            self.group,
            entry,
            &mut self.barrier,
            &mut self.next,
            &mut self.end,
            &mut self.redelivered_until,
            max,
        )
    }

    /// Waits by the wait strategy until `fill` succeeds.
    #[inline]
    fn wait_fill(&mut self, max: u64, deadline: Option<Instant>) -> Result<(), RecvError> {
        if self.fill(max) {
            return Ok(());
        }
        if self.wait == WaitStrategy::BusySpin && self.group.is_none() && self.barrier.on_producers() {
            return self.spin_fill(max, deadline);
        }
        // Borrow the fields apart rather than clone the `Arc`: a clone would write the
        // reference count, whose line every handle of the ring reads.
        let Consumer {
            shared,
            entry,
            group,
            barrier,
            next,
            end,
            wait,
            stop,
            redelivered_until,
            ..
        } = self;
        let shared: &Shared = shared;
        let event = barrier.event(shared);
        let mut reaper = Reaper::new(shared);
        wait::wait_for(
            *wait,
            event,
            deadline,
            stop.as_deref(),
            || {
                fill_range(
                    shared,
                    *group,
                    entry.index,
                    barrier,
                    next,
                    end,
                    redelivered_until,
                    max,
                )
                .then_some(())
            },
            &mut || reaper.idle(shared),
        )
        .map_err(RecvError::from)
    }

    /// `wait_fill` for a busy-spinning subscriber that waits on the producers: between polls
    /// it spins on the one word a publish of its next message writes (`Shared::publish_word`),
    /// whose address it computes once, rather than running the whole poll each time. A poll
    /// runs at once when that word changes, so a message is seen as soon as its line arrives
    /// (in ping-pong this cut ~10 ns of the round trip), and every 64 spins as in
    /// `wait::wait_for` (dead peers, the stop flag, the deadline). When one message is wanted
    /// (`recv`) and the changed word itself shows it published (its stamp, or a cursor past
    /// it: what `Shared::published_until` would find), the poll is skipped.
    #[inline]
    fn spin_fill(&mut self, max: u64, deadline: Option<Instant>) -> Result<(), RecvError> {
        // Borrow the fields apart rather than clone the `Arc` (as in `wait_fill`).
        let Consumer {
            shared,
            entry,
            group,
            barrier,
            next,
            end,
            stop,
            redelivered_until,
            ..
        } = self;
        let shared: &Shared = shared;
        let from = (*end).max(*next);
        let word = shared.publish_word(from);
        let fixed = shared.layout.params.fixed;
        let stamp = crate::layout::stamp(from);
        let mut reaper = Reaper::new(shared);
        let mut rounds = 0u32;
        loop {
            // Relaxed: a hint to poll again, nothing is read on its strength; the poll
            // (`fill_range`) synchronises with the publish.
            let before = word.load_relaxed();
            if fill_range(
                shared,
                *group,
                entry.index,
                barrier,
                next,
                end,
                redelivered_until,
                max,
            ) {
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
                // word (`commit_word`, `Producer::write_one`, `publish_range`): when it shows
                // the message, the payload written before it is visible.
                let now = word.load_acquire();
                if now != before {
                    let published = if fixed {
                        now > from
                    } else {
                        SlotHeader::decode(now).stamp == stamp
                    };
                    if max == 1 && published {
                        *end = from + 1;
                        return Ok(());
                    }
                    break;
                }
            }
        }
    }

    /// The slots, through the kept geometry.
    #[inline]
    fn slots(&self) -> Slots<'_> {
        // SAFETY: `geometry` came from `shared.geometry()` in `new`.
        unsafe { self.shared.slots_with(self.geometry) }
    }

    /// Reads the header of the slot holding `sequence`, which this consumer may read.
    #[inline]
    fn header(&self, sequence: u64) -> SlotHeader {
        self.slots().read_header(sequence)
    }

    /// Publishes this consumer's position as `upto`. `[released]`
    #[inline]
    fn release_to(&mut self, upto: u64) {
        self.next = upto;
        let position = if self.group.is_some() && upto >= self.end {
            IDLE
        } else {
            upto
        };
        // SAFETY: `position_word` came from `shared.entry_sequence_ref` of this consumer's
        // entry in `new`.
        let word = unsafe { self.shared.sequence_with(&self.position_word) };
        // [released] Release: pairs with the Acquire loads of positions in
        // `Shared::gating_minimum`, the barrier and `table::group_position`: our reads of the
        // slots below `upto` happen before anyone reuses them.
        word.store_release(position);
        self.shared.notify_released();
    }

    /// Passes over skipped slots at the front; the header of the message at `next`, if one
    /// is there (read once, for the skip check and the message alike). Always inlined: it
    /// runs between a message's arrival and its delivery, and the common case is one load
    /// and a test (a call cost the ping-pong a few nanoseconds); skipped slots are passed
    /// out of line.
    #[inline(always)]
    fn skip_to_message(&mut self) -> Option<SlotHeader> {
        if self.next < self.end {
            let header = self.header(self.next);
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
        while self.next < self.end {
            let header = self.header(self.next);
            if header.flags & SLOT_SKIPPED == 0 {
                return Some(header);
            }
            self.skipped += 1;
            let upto = self.next + 1;
            self.release_to(upto);
        }
        None
    }

    /// The message at `next`, whose header `skip_to_message` returned.
    #[inline]
    fn message(&mut self, header: SlotHeader) -> Message<'_> {
        let sequence = self.next;
        let slots = self.slots();
        let track = self.shared.region.track_read(self.slot_index(sequence));
        Message {
            data: slots.payload(sequence),
            consumer: self,
            sequence,
            len: header.len,
            track,
        }
    }

    #[inline]
    fn slot_index(&self, sequence: u64) -> usize {
        crate::sequence::slot_index(sequence, self.shared.capacity())
    }

    // ---- pulling one message ------------------------------------------------------------

    /// The next message if one is available now.
    ///
    /// # Errors
    ///
    /// [`RecvError::Empty`] if nothing is available.
    #[inline(always)]
    pub fn try_recv(&mut self) -> Result<Message<'_>, RecvError> {
        loop {
            if !self.fill(1) {
                return Err(RecvError::Empty);
            }
            if let Some(header) = self.skip_to_message() {
                return Ok(self.message(header));
            }
        }
    }

    /// The next message, waiting by the wait strategy.
    ///
    /// # Errors
    ///
    /// [`RecvError::Stopped`] only inside a handler that is being stopped; otherwise none.
    #[inline(always)]
    pub fn recv(&mut self) -> Result<Message<'_>, RecvError> {
        self.recv_deadline(None)
    }

    /// The next message, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvError::Timeout`] if nothing arrived in time.
    #[inline]
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Message<'_>, RecvError> {
        self.recv_deadline(crate::wait::deadline_after(timeout))
    }

    #[inline(always)]
    fn recv_deadline(&mut self, deadline: Option<Instant>) -> Result<Message<'_>, RecvError> {
        loop {
            if self.fill(1) {
                if let Some(header) = self.skip_to_message() {
                    return Ok(self.message(header));
                }
            }
            self.wait_one(deadline)?;
        }
    }

    /// Waits until a message is known (`wait_fill` of one). Out of line, and returning only
    /// whether to go on: the caller builds the `Message` itself after the return, so the
    /// message does not pass through memory between the arrival and its delivery (returned
    /// from here, it was stored and reloaded: ~5 ns of a round trip).
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
        self.batch(max)
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
        Ok(self.batch(max))
    }

    /// Like [`Consumer::poll`], waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvError::Timeout`] if nothing arrived in time.
    #[inline]
    pub fn poll_timeout(&mut self, max: usize, timeout: Duration) -> Result<Batch<'_>, RecvError> {
        let max = (max as u64).max(1);
        self.wait_fill(max, crate::wait::deadline_after(timeout))?;
        Ok(self.batch(max))
    }

    #[inline]
    fn batch(&mut self, max: u64) -> Batch<'_> {
        let end = self.end.min(self.next.saturating_add(max));
        let start = self.next;
        Batch {
            consumer: self,
            range: start..end,
            skipped: std::cell::Cell::new(0),
        }
    }

    /// Detaches now: the consumer stops gating producers and its name is free again.
    /// (Dropping it does the same.) A durable subscriber's entry stays, with its position,
    /// for a later attach of the same name; see [`Consumer::unsubscribe`].
    #[inline]
    pub fn detach(self) {}

    /// Detaches and, for a durable subscriber, removes its entry and position for good (for
    /// any other consumer this is [`Consumer::detach`]).
    #[inline]
    pub fn unsubscribe(mut self) {
        self.unsubscribing = true;
    }

    /// Whether this is a durable subscriber.
    #[inline]
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn set_stop(&mut self, stop: std::sync::Arc<StopFlag>) {
        self.stop = Some(stop);
    }

    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Drop for Consumer {
    #[inline]
    fn drop(&mut self) {
        let shared = &self.shared;
        match self.group {
            // Kept, gating, for its next attach; its token goes, so to other processes it
            // looks like a dead durable subscriber (evicted after its delay, if it has one).
            None if self.durable && !self.unsubscribing => shared
                .liveness
                .release(crate::liveness::entry_lock(self.entry.index)),
            None => table::free(shared, self.entry),
            // A worker still holding part of a claim hands it back to the group.
            Some(_) => table::orphan_or_free(shared, self.entry),
        }
    }
}

/// Cleans up after dead processes from inside a wait, at most every
/// [`crate::wait::SHARED_SAFETY_NET`]: the one thing a waiter on a shared ring can do about a
/// peer that died without waking it. Called from a wait's idle moments only (see
/// `wait::wait_for`), so a wait that ends at once reads no clock.
pub(crate) struct Reaper {
    shared: bool,
    due: Option<Instant>,
}

impl Reaper {
    #[inline]
    pub(crate) fn new(shared: &Shared) -> Self {
        Reaper {
            shared: shared.liveness.is_shared(),
            due: None,
        }
    }

    /// One idle moment of a wait.
    pub(crate) fn idle(&mut self, shared: &Shared) {
        if !self.shared {
            return;
        }
        let now = Instant::now();
        match self.due {
            None => self.due = Some(now + crate::wait::SHARED_SAFETY_NET),
            Some(due) if now >= due => {
                shared.reap_dead();
                self.due = Some(now + crate::wait::SHARED_SAFETY_NET);
            }
            Some(_) => {}
        }
    }
}

/// One received message; the consumer releases it when this drops.
///
/// Derefs to the payload bytes.
pub struct Message<'a> {
    consumer: &'a mut Consumer,
    sequence: u64,
    data: *const u8,
    len: usize,
    /// Loom's read tracking; ended before the release in `drop`.
    track: ReadTrack,
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("sequence", &self.sequence)
            .field("len", &self.len)
            .finish()
    }
}

impl Message<'_> {
    /// The message's sequence.
    #[inline]
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Whether this message was delivered before, to a worker of the group that stopped
    /// (died, or detached) without acknowledging it: process it idempotently. Always false
    /// for subscribers.
    #[inline]
    pub fn redelivered(&self) -> bool {
        self.sequence < self.consumer.redelivered_until
    }

    /// Copies the payload out as a `T`.
    ///
    /// # Errors
    ///
    /// [`Error::TypeMismatch`] if the message is shorter than `T`.
    #[inline]
    pub fn value<T: bytemuck::AnyBitPattern>(&self) -> Result<T, Error> {
        read_value(self)
    }
}

impl Deref for Message<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: the slot holding `sequence` is published (the consumer's barrier said so)
        // and cannot be reused before this guard releases it on drop (the consumer's position
        // gates producers); `len` was clamped to the payload capacity.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

impl Drop for Message<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        // The read ends before the release lets a producer reuse the slot.
        self.track.end();
        let upto = self.sequence + 1;
        self.consumer.release_to(upto);
    }
}

#[inline]
fn read_value<T: bytemuck::AnyBitPattern>(bytes: &[u8]) -> Result<T, Error> {
    let size = std::mem::size_of::<T>();
    if bytes.len() < size {
        return Err(Error::TypeMismatch {
            size,
            align: std::mem::align_of::<T>(),
            capacity: bytes.len(),
        });
    }
    Ok(bytemuck::pod_read_unaligned(&bytes[..size]))
}

/// The messages of one poll; released together, with one store, when this drops.
pub struct Batch<'a> {
    consumer: &'a mut Consumer,
    range: Range<u64>,
    /// Skipped slots the iterators passed over (the highest count: iterating twice does not
    /// count twice).
    skipped: std::cell::Cell<u64>,
}

impl fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch").field("range", &self.range).finish()
    }
}

impl Batch<'_> {
    /// The sequences this batch covers (skipped slots included).
    #[inline]
    pub fn sequences(&self) -> Range<u64> {
        self.range.clone()
    }

    /// Whether the batch covers no sequence.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }

    /// A fixed-size ring's batch as values of `T`, in place: the messages in sequence order,
    /// in two slices because the batch may wrap around the ring's end (the second is empty
    /// when it does not). No copy and no per-message work: the fastest way to read a batch.
    ///
    /// A fixed-size ring has no skipped slots. For a group worker, the batch's first messages
    /// may be redeliveries: [`Msg::redelivered`] through [`Batch::iter`] tells which.
    ///
    /// ```
    /// use ringmq::{Ring, Start};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let ring = Ring::builder().capacity(8).fixed_size(8).build()?;
    /// let mut consumer = ring.subscriber("sum").start(Start::Earliest).attach()?;
    /// let mut producer = ring.producer()?;
    /// producer.try_publish_values(&[1u64, 2, 3])?;
    /// let batch = consumer.try_poll(64);
    /// let (a, b) = batch.as_slices::<u64>()?;
    /// assert_eq!(a.iter().chain(b).sum::<u64>(), 6);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::NotFixedSizeOf`] if the ring is not fixed-size, its messages are not
    /// `size_of::<T>()` bytes, or its slots are not aligned for `T` (only a `T` aligned to more
    /// than 128 bytes).
    #[inline]
    pub fn as_slices<T: bytemuck::AnyBitPattern>(&self) -> Result<(&[T], &[T]), Error> {
        let slots = self.consumer.slots();
        let size = std::mem::size_of::<T>();
        let mismatch = || Error::NotFixedSizeOf {
            size,
            align: std::mem::align_of::<T>(),
        };
        if !slots.fixed() || slots.payload_capacity() != size {
            return Err(mismatch());
        }
        let count = self.range.end - self.range.start;
        let first = slots.before_wrap(self.range.start, count);
        let view = |from: u64, n: u64| -> Result<&[T], Error> {
            if n == 0 {
                // Not a cast: an empty byte slice's dangling address need not be aligned for T.
                return Ok(&[]);
            }
            // SAFETY: a fixed-size ring's slots are its payloads, back to back from the first
            // slot, so the `n` slots from `from` (not past the ring's end: `first`) are one
            // run of `n * size` bytes; they are published (the batch came from the barrier)
            // and not released before this batch, which the returned slices borrow, drops.
            let bytes = unsafe { std::slice::from_raw_parts(slots.payload(from), n as usize * size) };
            bytemuck::try_cast_slice(bytes).map_err(|_| mismatch())
        };
        Ok((
            view(self.range.start, first)?,
            view(self.range.start + first, count - first)?,
        ))
    }

    /// The messages, in sequence order, skipped slots left out.
    #[inline]
    pub fn iter(&self) -> BatchIter<'_> {
        BatchIter {
            shared: &self.consumer.shared,
            slots: self.consumer.slots(),
            range: self.range.clone(),
            skipped: 0,
            total: &self.skipped,
            redelivered_until: self.consumer.redelivered_until,
        }
    }
}

impl<'b> IntoIterator for &'b Batch<'_> {
    type Item = Msg<'b>;
    type IntoIter = BatchIter<'b>;

    #[inline]
    fn into_iter(self) -> BatchIter<'b> {
        self.iter()
    }
}

impl Drop for Batch<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.range.is_empty() {
            return;
        }
        self.consumer.skipped += self.skipped.get();
        self.consumer.release_to(self.range.end);
    }
}

/// Iterator over the messages of a [`Batch`].
pub struct BatchIter<'b> {
    shared: &'b Shared,
    /// The geometry, held by value so the loop keeps it in registers.
    slots: Slots<'b>,
    range: Range<u64>,
    skipped: u64,
    total: &'b std::cell::Cell<u64>,
    redelivered_until: u64,
}

impl fmt::Debug for BatchIter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchIter").field("range", &self.range).finish()
    }
}

impl<'b> Iterator for BatchIter<'b> {
    type Item = Msg<'b>;

    #[inline]
    fn next(&mut self) -> Option<Msg<'b>> {
        let shared = self.shared;
        let slots = self.slots;
        if slots.fixed() {
            // A fixed-size ring has no headers to read and no skipped slots (one producer,
            // which never skips): every message is the whole payload. Kept apart so a loop
            // over it holds only the range and the geometry (through the general loop, its
            // skip counters spilled a caller's 64-byte check to the stack: 1.94 ns a message
            // against 1.66 this way and 1.38 for a hand loop, draining in one thread).
            let sequence = self.range.next()?;
            let track = shared
                .region
                .track_read(crate::sequence::slot_index(sequence, shared.capacity()));
            // SAFETY: published (the batch came from the barrier) and not released until the
            // batch that `'b` borrows drops; a fixed-size slot is its payload, all of it.
            let data =
                unsafe { std::slice::from_raw_parts(slots.payload(sequence), slots.payload_capacity()) };
            return Some(Msg {
                sequence,
                data,
                redelivered: sequence < self.redelivered_until,
                _track: track,
            });
        }
        for sequence in self.range.by_ref() {
            let header = slots.read_header(sequence);
            if header.flags & SLOT_SKIPPED != 0 {
                self.skipped += 1;
                self.total.set(self.total.get().max(self.skipped));
                continue;
            }
            let track = shared
                .region
                .track_read(crate::sequence::slot_index(sequence, shared.capacity()));
            // SAFETY: as in `Message::deref`: published, not released until the batch that
            // `'b` borrows drops, and `len` is clamped to the payload.
            let data = unsafe { std::slice::from_raw_parts(slots.payload(sequence), header.len) };
            return Some(Msg {
                sequence,
                data,
                redelivered: sequence < self.redelivered_until,
                _track: track,
            });
        }
        None
    }
}

/// One message of a [`Batch`], or handed to a handler. Derefs to the payload bytes.
pub struct Msg<'a> {
    sequence: u64,
    data: &'a [u8],
    redelivered: bool,
    _track: ReadTrack,
}

impl fmt::Debug for Msg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Msg")
            .field("sequence", &self.sequence)
            .field("len", &self.data.len())
            .finish()
    }
}

impl<'a> Msg<'a> {
    /// The message's sequence.
    #[inline]
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Whether this message was delivered before; see [`Message::redelivered`].
    #[inline]
    pub fn redelivered(&self) -> bool {
        self.redelivered
    }

    /// The payload bytes, for the batch's lifetime.
    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        self.data
    }

    /// Copies the payload out as a `T`.
    ///
    /// # Errors
    ///
    /// [`Error::TypeMismatch`] if the message is shorter than `T`.
    #[inline]
    pub fn value<T: bytemuck::AnyBitPattern>(&self) -> Result<T, Error> {
        read_value(self.data)
    }
}

impl Deref for Msg<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.data
    }
}
