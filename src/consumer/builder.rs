//! Attaching consumers: [`SubscriberBuilder`] (from `Ring::subscriber`) and [`WorkerBuilder`]
//! (from `Ring::worker`), each with only the options that apply to its kind.

use super::{Consumer, ReadState};
use crate::barrier::Barrier;
use crate::error::AttachError;
use crate::layout::table::{IDLE, KIND_GROUP, KIND_SUBSCRIBER, KIND_WORKER, OPT_DURABLE};
use crate::shared::{Attached, Shared};
use crate::sync::Arc;
use crate::table::{self, Dependency, EntryRef};
use crate::wait::WaitStrategy;
use crate::{gating, group, reaper, sequencer};
use std::time::Duration;

/// Where a new subscriber (or a new group) starts reading.
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

/// The wait strategy a consumer asked for, or the ring's default (`Backoff`, or `Yield` on
/// a ring without wake-ups); refused if it blocks on a ring without wake-ups.
fn resolve_wait(shared: &Shared, wait: Option<WaitStrategy>) -> Result<WaitStrategy, AttachError> {
    let wait = wait.unwrap_or(if shared.wakeups {
        WaitStrategy::Backoff
    } else {
        WaitStrategy::Yield
    });
    if wait.blocks() && !shared.wakeups {
        return Err(AttachError::WakeupsDisabled);
    }
    Ok(wait)
}

/// Options for attaching a subscriber, which sees every message; from
/// [`crate::Ring::subscriber`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `attach`"]
pub struct SubscriberBuilder {
    shared: Arc<Shared>,
    name: String,
    after: Vec<String>,
    start: Start,
    wait: Option<WaitStrategy>,
    durable: bool,
    evict_after: Option<Duration>,
}

impl SubscriberBuilder {
    pub(crate) fn new(shared: Arc<Shared>, name: &str) -> Self {
        SubscriberBuilder {
            shared,
            name: name.to_owned(),
            after: Vec::new(),
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
    ///   [`SubscriberBuilder::evict_after`] has passed.
    ///
    /// A durable subscriber also outlives a graceful detach: dropping it (or
    /// [`Consumer::detach`]) leaves the entry, gating, for a later attach of the same name;
    /// [`Consumer::unsubscribe`] removes it for good. Re-attaching keeps the recorded
    /// dependencies (`after`) and position; `start` is not used then.
    #[inline]
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Makes the subscriber durable ([`SubscriberBuilder::durable`]), and detached like an
    /// ephemeral one once its process has been seen dead for `delay` (default: never).
    /// Rounded to milliseconds.
    #[inline]
    pub fn evict_after(mut self, delay: Duration) -> Self {
        self.durable = true;
        self.evict_after = Some(delay);
        self
    }

    /// Runs after the named consumers or groups: sequence `s` is delivered only once each of
    /// them has released `s` (pipelines, diamonds). At most 8.
    #[inline]
    pub fn after<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.after = names.into_iter().map(|s| s.as_ref().to_owned()).collect();
        self
    }

    /// Where to start (default [`Start::Latest`]).
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

    /// Attaches the subscriber. From now on it gates producers until it detaches or drops.
    ///
    /// # Errors
    ///
    /// [`AttachError::InvalidName`], [`AttachError::NameTaken`],
    /// [`AttachError::UnknownDependency`], [`AttachError::TooManyDependencies`],
    /// [`AttachError::TableFull`], [`AttachError::SequenceUnavailable`] (a
    /// `Start::Sequence` already overwritten), [`AttachError::WakeupsDisabled`].
    pub fn attach(self) -> Result<Consumer, AttachError> {
        let shared = &self.shared;
        let wait = resolve_wait(shared, self.wait)?;
        table::validate_name(&self.name)?;
        let deps = table::resolve(shared, &self.after)?;
        if self.durable {
            if let Some(entry) = table::adopt_durable(shared, &self.name) {
                // Acquire: pairs with the previous owner's [released] Release stores.
                let position = shared.entry_sequence(entry.index).load_acquire();
                let recorded = table::recorded_dependencies(shared, entry.index);
                let read = ReadState::new(entry, None, Barrier::new(recorded), position);
                return Ok(Consumer::new(self.attached(entry), read, &self.name, wait, true));
            }
        }
        let entry = table::reserve(shared, &self.name, KIND_SUBSCRIBER, &mut || {
            reaper::reap_dead(shared)
        })?;
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
        let read = ReadState::new(entry, None, Barrier::new(deps), start);
        Ok(Consumer::new(
            self.attached(entry),
            read,
            &self.name,
            wait,
            self.durable,
        ))
    }

    fn attached(&self, entry: EntryRef) -> Attached {
        Attached::entry(Arc::clone(&self.shared), entry.index)
    }
}

/// Options for attaching a worker of a group, which shares the messages with the group's
/// other workers (each message reaches one of them); from [`crate::Ring::worker`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `attach`"]
pub struct WorkerBuilder {
    shared: Arc<Shared>,
    group: String,
    name: String,
    after: Option<Vec<String>>,
    group_start: Start,
    wait: Option<WaitStrategy>,
    durable: bool,
}

impl WorkerBuilder {
    pub(crate) fn new(shared: Arc<Shared>, group: &str, name: &str) -> Self {
        WorkerBuilder {
            shared,
            group: group.to_owned(),
            name: name.to_owned(),
            after: None,
            group_start: Start::Latest,
            wait: None,
            durable: false,
        }
    }

    /// Makes the group durable (default: it goes with its last worker). A durable group
    /// outlives its workers: when the last one leaves (or dies) the group keeps its entry and
    /// its position, gating producers, and a worker that joins later claims on from there,
    /// as a durable subscriber resumes. A worker asking for it makes an existing group
    /// durable; [`Consumer::unsubscribe`] on a worker makes it ephemeral again, so that it
    /// goes when its last worker leaves.
    #[inline]
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// The group's dependencies: it receives sequence `s` only once each named consumer or
    /// group has released `s`. The worker that creates the group records them; a worker that
    /// joins an existing group and names any must name the same
    /// ([`AttachError::GroupMismatch`] otherwise), and one that names none takes the group's.
    #[inline]
    pub fn after<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.after = Some(names.into_iter().map(|s| s.as_ref().to_owned()).collect());
        self
    }

    /// Where the group starts if this worker creates it (default [`Start::Latest`]). A worker
    /// that joins an existing group continues where the group is.
    #[inline]
    pub fn group_start(mut self, start: Start) -> Self {
        self.group_start = start;
        self
    }

    /// How `recv`/`poll` wait (default `Backoff`, or `Yield` on a ring without wake-ups).
    #[inline]
    pub fn wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.wait = Some(wait);
        self
    }

    /// Attaches the worker, creating its group if it is the first. A worker attaching under
    /// the name of a worker of the same group that died (or detached) holding messages takes
    /// its place: those messages come to it first, flagged redelivered.
    ///
    /// # Errors
    ///
    /// [`AttachError::InvalidName`] (the worker's or the group's), [`AttachError::NameTaken`]
    /// (by a live consumer, or the group's name by a subscriber),
    /// [`AttachError::GroupMismatch`], [`AttachError::UnknownDependency`],
    /// [`AttachError::TooManyDependencies`], [`AttachError::TableFull`],
    /// [`AttachError::SequenceUnavailable`] (a `group_start` already overwritten),
    /// [`AttachError::WakeupsDisabled`].
    pub fn attach(self) -> Result<Consumer, AttachError> {
        let shared = &self.shared;
        let wait = resolve_wait(shared, self.wait)?;
        table::validate_name(&self.name)?;
        table::validate_name(&self.group)?;
        let explicit = self.after.is_some();
        let deps = table::resolve(shared, self.after.as_deref().unwrap_or_default())?;
        if let Some(consumer) = self.take_over(&deps, explicit, wait)? {
            if let (true, Some(group)) = (self.durable, consumer.read.group) {
                group::set_durable(shared, group, true);
            }
            return Ok(consumer);
        }
        let reap = &mut || reaper::reap_dead(shared);
        let (group_entry, created) = group::join(shared, &self.group, &deps, explicit, reap)?;
        if created {
            if let Err(e) = start_position(shared, group_entry, self.group_start, 1) {
                group::leave(shared, group_entry);
                return Err(e);
            }
            // A group lives as long as its workers, not its creator: its entry needs no
            // liveness token (it is freed when its last worker leaves or is reaped).
            shared
                .liveness
                .release(crate::liveness::entry_lock(group_entry.index));
        }
        let group_deps = table::recorded_dependencies(shared, group_entry.index);
        let entry = match table::reserve(shared, &self.name, KIND_WORKER, reap) {
            Ok(entry) => entry,
            Err(e) => {
                group::leave(shared, group_entry);
                return Err(e);
            }
        };
        table::describe(shared, entry, &[], Some(group_entry), 0);
        table::activate(shared, entry, IDLE, 0);
        group::set_member(shared, group_entry, entry.index, true);
        if self.durable {
            group::set_durable(shared, group_entry, true);
        }
        let read = ReadState::new(entry, Some(group_entry), Barrier::new(group_deps), 0);
        let att = Attached::entry(Arc::clone(shared), entry.index);
        Ok(Consumer::new(att, read, &self.name, wait, false))
    }

    /// The worker's name held by an orphan of its group (a worker that died, or detached,
    /// holding messages): this worker takes its entry and its messages over.
    fn take_over(
        &self,
        deps: &[Dependency],
        explicit: bool,
        wait: WaitStrategy,
    ) -> Result<Option<Consumer>, AttachError> {
        let shared = &self.shared;
        let Some((group_entry, KIND_GROUP)) = table::find(shared, &self.group) else {
            return Ok(None);
        };
        if explicit && table::recorded_dependencies(shared, group_entry.index) != deps {
            return Err(AttachError::GroupMismatch {
                group: self.group.clone(),
            });
        }
        if table::find(shared, &self.name).is_none_or(|(_, kind)| kind != KIND_WORKER) {
            return Ok(None);
        }
        // A dead holder of the name becomes an orphan (or leaves, if it held nothing).
        reaper::reap_dead(shared);
        let Some(taken) = group::take_over(shared, group_entry, &self.name) else {
            return Ok(None);
        };
        let group_deps = table::recorded_dependencies(shared, group_entry.index);
        let mut read = ReadState::new(
            taken.worker,
            Some(taken.group),
            Barrier::new(group_deps),
            taken.start,
        );
        read.end = taken.end;
        read.redelivered_until = taken.end;
        let att = Attached::entry(Arc::clone(shared), taken.worker.index);
        Ok(Some(Consumer::new(att, read, &self.name, wait, false)))
    }
}

/// Activates a reserved subscriber or group entry at the position `start` asks for, by the
/// `[attach]` protocol (`gating.rs`); returns the position it settled on.
fn start_position(shared: &Shared, entry: EntryRef, start: Start, members: u64) -> Result<u64, AttachError> {
    let capacity = shared.capacity();
    let initial = shared.layout.params.initial_sequence;
    // A first guess that is usually right, so producers are not held back by a low one.
    let earliest_guess = || {
        // Acquire: pairs with the producers' AcqRel `fetch_max` of the write limit.
        shared
            .write_limit()
            .load_acquire()
            .saturating_sub(capacity)
            .max(initial)
    };
    let tentative = match start {
        Start::Latest => sequencer::next_sequence(shared),
        Start::Earliest => earliest_guess(),
        Start::Sequence(s) => s,
    };
    table::activate(shared, entry, tentative, members);
    let floor = gating::settle_start(shared);
    if let Start::Sequence(requested) = start {
        if requested < floor {
            return Err(AttachError::SequenceUnavailable {
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
