//! Confirms: waiting until a named subscriber or group, every gating consumer, or the
//! journal's stage has released a sequence, from any thread or process that has the ring
//! open ([`Confirmer`]). The wait reads the consumer's position (a
//! group's: its claim counter and workers, `gating::group_position`) and sleeps on the
//! ring's "released" event, which every release notifies when the ring has wake-ups.

use crate::error::ConfirmError;
use crate::gating::{gating_minimum, group_position};
use crate::layout::table::{KIND_GROUP, KIND_WORKER};
use crate::reaper::Reaper;
use crate::shared::Shared;
use crate::sync::Arc;
use crate::table::{self, EntryRef};
use crate::wait::{self, WaitStrategy};
use std::time::{Duration, Instant};

/// How long a confirm yields before it sleeps on the futex. A confirm usually comes within
/// one sync or one consumer's batch, and a thread woken from a futex sleep takes tens of
/// microseconds to run again on a VM; a waiter that yields meanwhile costs a core only
/// while another thread has nothing to run on it (the syncing thread waits on the disk).
#[cfg(not(loom))]
const YIELD_FIRST: Duration = Duration::from_micros(250);

/// The name the journal's stage attaches to a ring under (`journal::STAGE_CONSUMER`): its
/// position is the durable position, so a durable confirm waits on it.
pub(crate) const STAGE_NAME: &str = "journal";

/// What a publisher confirm waits for: who must have released (acknowledged) a sequence.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ConfirmBy {
    /// The subscriber or group of this name (a group has released a sequence when every
    /// worker that claimed it acknowledged it). Not a worker: a worker's position covers its
    /// own claims only.
    Consumer(String),
    /// Every consumer that gates producers: every subscriber and group attached at the time
    /// of each look. One that detaches stops counting; one that attaches counts from where it
    /// starts. With none attached, everything published is confirmed.
    Gating,
    /// The journal: the sequence is durable (its stage,
    /// [`crate::journal::STAGE_CONSUMER`], released it).
    Durable,
}

/// The consumer a confirm reads.
#[derive(Clone, Copy, Debug)]
enum Target {
    Named { entry: EntryRef, group: bool },
    Gating,
}

/// Waits for publisher confirms: until a [`ConfirmBy`] has released a sequence. Made by
/// [`crate::Ring::confirmer`]; any thread or process that has the ring open can have one.
///
/// Confirms are cumulative: a sequence confirmed means every earlier one is too, so a
/// producer with a window of messages in flight waits for the window's last (or, to keep the
/// window open, for the sequence one window back) and pays one wait for the lot. The last
/// position seen is kept: a confirm of a sequence below it costs no load at all.
///
/// ```
/// use ringmq::{ConfirmBy, Ring, Start};
/// use std::time::Duration;
///
/// let ring = Ring::builder().capacity(64).slot_size(64).build()?;
/// let mut audit = ring.subscriber("audit").start(Start::Earliest).attach()?;
/// let mut producer = ring.producer()?;
/// let mut confirmer = ring.confirmer(ConfirmBy::Consumer("audit".into()))?;
///
/// let sequence = producer.publish(b"order 1")?;
/// assert!(confirmer.try_confirm(sequence).is_err()); // not yet received
/// drop(audit.recv()?); // received and acknowledged
/// confirmer.confirm_timeout(sequence, Duration::from_secs(1))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Confirmer {
    shared: Arc<Shared>,
    seen: Seen,
    wait: WaitStrategy,
}

/// What a confirmer reads, and the highest position it has seen. Apart from the `Arc`, so a
/// wait borrows the ring through it instead of cloning it: a clone writes the reference
/// count, on a line every handle of the ring (the consumer being waited for among them) reads.
#[derive(Debug)]
struct Seen {
    by: ConfirmBy,
    target: Target,
    /// Every sequence below it is confirmed.
    known: u64,
}

impl std::fmt::Debug for Confirmer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Confirmer")
            .field("by", &self.seen.by)
            .field("known", &self.seen.known)
            .field("wait", &self.wait)
            .finish()
    }
}

/// Finds the subscriber or group `name`.
fn resolve(shared: &Shared, name: &str) -> Result<Target, ConfirmError> {
    let (entry, kind) = table::find(shared, name).ok_or_else(|| ConfirmError::UnknownConsumer {
        name: name.to_owned(),
    })?;
    if kind == KIND_WORKER {
        return Err(ConfirmError::Worker {
            name: name.to_owned(),
        });
    }
    Ok(Target::Named {
        entry,
        group: kind == KIND_GROUP,
    })
}

impl Confirmer {
    /// A confirmer for `by`, waiting by `wait` (`Backoff` on a ring without wake-ups yields
    /// instead of sleeping).
    pub(crate) fn new(shared: Arc<Shared>, by: ConfirmBy, wait: WaitStrategy) -> Result<Self, ConfirmError> {
        let target = match &by {
            ConfirmBy::Consumer(name) => resolve(&shared, name)?,
            ConfirmBy::Durable => resolve(&shared, STAGE_NAME)?,
            ConfirmBy::Gating => Target::Gating,
        };
        let wait = if wait.blocks() && !shared.wakeups {
            WaitStrategy::Yield
        } else {
            wait
        };
        Ok(Confirmer {
            shared,
            seen: Seen { by, target, known: 0 },
            wait,
        })
    }

    /// What this confirmer waits for.
    pub fn by(&self) -> &ConfirmBy {
        &self.seen.by
    }

    /// Reads the position now: every sequence below it is confirmed.
    fn read(&mut self) -> Result<u64, ConfirmError> {
        self.seen.read(&self.shared)
    }

    /// The position now: every sequence below it is confirmed.
    ///
    /// # Errors
    ///
    /// [`ConfirmError::Detached`] if the consumer is gone (and no consumer of its name came
    /// back).
    pub fn position(&mut self) -> Result<u64, ConfirmError> {
        self.read()
    }

    /// Whether `sequence` (and so every earlier one) is confirmed now; returns the position.
    ///
    /// # Errors
    ///
    /// [`ConfirmError::NotYet`] with the position if it is not; [`ConfirmError::Detached`].
    pub fn try_confirm(&mut self, sequence: u64) -> Result<u64, ConfirmError> {
        let upto = sequence.saturating_add(1);
        if self.seen.known >= upto {
            return Ok(self.seen.known);
        }
        self.seen
            .look(&self.shared, upto)
            .unwrap_or(Err(ConfirmError::NotYet {
                position: self.seen.known,
            }))
    }

    /// Waits until `sequence` (and so every earlier one) is confirmed; returns the position.
    ///
    /// # Errors
    ///
    /// [`ConfirmError::Detached`] if the consumer goes before it released the sequence.
    pub fn confirm(&mut self, sequence: u64) -> Result<u64, ConfirmError> {
        self.confirm_until(sequence.saturating_add(1), None)
    }

    /// [`Confirmer::confirm`], waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`ConfirmError::Timeout`] with the position then; [`ConfirmError::Detached`].
    pub fn confirm_timeout(&mut self, sequence: u64, timeout: Duration) -> Result<u64, ConfirmError> {
        self.confirm_until(sequence.saturating_add(1), crate::wait::deadline_after(timeout))
    }

    /// Awaits the confirm of `sequence` (and so of every earlier one): [`Confirmer::confirm`]
    /// without blocking the thread (feature `async`); returns the position.
    ///
    /// # Errors
    ///
    /// [`ConfirmError::Detached`] if the consumer goes before it released the sequence.
    #[cfg(all(feature = "async", not(loom)))]
    pub async fn confirm_async(&mut self, sequence: u64) -> Result<u64, ConfirmError> {
        match self.try_confirm(sequence) {
            Err(ConfirmError::NotYet { .. }) => {}
            done => return done,
        }
        let mut awaiting =
            crate::await_event::Awaiting::new(&self.shared, crate::await_event::Which::Released);
        std::future::poll_fn(|cx| {
            awaiting.poll(cx, None, || match self.try_confirm(sequence) {
                Err(ConfirmError::NotYet { .. }) => None,
                done => Some(done),
            })
        })
        .await
        .unwrap_or(Err(ConfirmError::Timeout {
            position: self.seen.known,
        }))
    }

    /// Waits until every sequence below `upto` is confirmed.
    pub(crate) fn confirm_until(
        &mut self,
        upto: u64,
        deadline: Option<Instant>,
    ) -> Result<u64, ConfirmError> {
        if self.seen.known >= upto {
            return Ok(self.seen.known);
        }
        let Confirmer { shared, seen, wait } = self;
        let (shared, wait): (&Shared, WaitStrategy) = (shared, *wait);
        let mut reaper = Reaper::new(shared);
        #[cfg_attr(loom, allow(unused_mut))]
        let mut poll = || seen.look(shared, upto);
        // Loom cannot spin: its waits block at once.
        #[cfg(not(loom))]
        if wait == WaitStrategy::Backoff {
            let first = Instant::now() + YIELD_FIRST;
            let yield_until = deadline.map_or(first, |d| d.min(first));
            if let Ok(result) = wait::wait_for(
                WaitStrategy::Yield,
                shared.released_event(),
                Some(yield_until),
                None,
                &mut poll,
                &mut || reaper.idle(shared),
            ) {
                return result;
            }
        }
        match wait::wait_for(wait, shared.released_event(), deadline, None, poll, &mut || {
            reaper.idle(shared)
        }) {
            Ok(result) => result,
            Err(_) => Err(ConfirmError::Timeout {
                position: self.seen.known,
            }),
        }
    }
}

impl Seen {
    fn name(&self) -> &str {
        match &self.by {
            ConfirmBy::Consumer(name) => name,
            ConfirmBy::Durable => STAGE_NAME,
            ConfirmBy::Gating => "",
        }
    }

    /// Whether every sequence below `upto` is confirmed now: `Some(Ok(position))` if so,
    /// `None` if not yet, `Some(Err)` if the consumer went before it released them.
    fn look(&mut self, shared: &Shared, upto: u64) -> Option<Result<u64, ConfirmError>> {
        match self.read(shared) {
            Ok(position) if position >= upto => Some(Ok(position)),
            Ok(_) => None,
            // Detached after releasing the sequences: confirmed all the same.
            Err(_) if self.known >= upto => Some(Ok(self.known)),
            Err(e) => Some(Err(e)),
        }
    }

    /// Reads the position now: every sequence below it is confirmed.
    fn read(&mut self, shared: &Shared) -> Result<u64, ConfirmError> {
        let position = loop {
            match self.target {
                Target::Gating => break gating_minimum(shared, crate::sequencer::next_sequence(shared)),
                Target::Named { entry, group } => {
                    if !table::is_live(shared, entry) {
                        // What a subscriber released before it went still counts.
                        if !group {
                            if let Some(last) = last_position(shared, entry) {
                                self.known = self.known.max(last);
                            }
                        }
                        // Gone, or replaced (a durable consumer re-attached, a new stage): the
                        // name's new entry, if it has one.
                        let name = self.name().to_owned();
                        self.target = resolve(shared, &name).map_err(|_| ConfirmError::Detached { name })?;
                        continue;
                    }
                    break if group {
                        group_position(shared, entry.index)
                    } else {
                        // [released] Acquire: pairs with the consumer's Release store of its
                        // position.
                        shared.entry_sequence(entry.index).load_acquire()
                    };
                }
            }
        };
        // Positions only grow, and a confirm reported stays reported (a consumer that
        // attached later starts no lower than what producers may overwrite).
        self.known = self.known.max(position);
        Ok(self.known)
    }
}

/// The position a subscriber's entry held when it was freed, if the entry is still free
/// (not reserved again since): its final release. Read between two looks at the state word,
/// which a new tenant changes before it writes a position.
fn last_position(shared: &Shared, entry: EntryRef) -> Option<u64> {
    use crate::layout::table::STATE_FREE;
    let freed =
        |(state, _, generation): (u64, u64, u32)| state == STATE_FREE && generation == entry.generation;
    if !freed(table::state(shared, entry.index)) {
        return None;
    }
    // [released] Acquire: pairs with the subscriber's Release store of its position; and it
    // keeps the second look at the state below after it.
    let position = shared.entry_sequence(entry.index).load_acquire();
    freed(table::state(shared, entry.index)).then_some(position)
}

/// Waits until consumer (or group) `name` has released every sequence below `upto`; returns
/// its position then.
pub(crate) fn wait_released(
    shared: &Arc<Shared>,
    name: &str,
    upto: u64,
    deadline: Option<Instant>,
) -> Result<u64, ConfirmError> {
    Confirmer::new(
        Arc::clone(shared),
        ConfirmBy::Consumer(name.to_owned()),
        WaitStrategy::Backoff,
    )?
    .confirm_until(upto, deadline)
}

/// The released positions worth keeping across a restart of every process: each durable
/// subscriber's and each group's (its workers' unacknowledged claims counted as not
/// released), by name, with whether it is a group's. The journal stage persists them with
/// its commits.
#[cfg(not(loom))]
pub(crate) fn durable_positions(shared: &Shared) -> Vec<(String, u64, bool)> {
    use crate::layout::table::{KIND_SUBSCRIBER, OPT_DURABLE, STATE_ACTIVE};
    (0..shared.layout.params.max_consumers)
        .filter_map(|index| {
            let (state, _, _) = table::state(shared, index);
            if state != STATE_ACTIVE {
                return None;
            }
            let (position, group) = match table::kind_of(shared, index) {
                KIND_GROUP => (group_position(shared, index), true),
                KIND_SUBSCRIBER if table::options(shared, index) & OPT_DURABLE != 0 => {
                    // [released] Acquire: pairs with the subscriber's Release store.
                    (shared.entry_sequence(index).load_acquire(), false)
                }
                _ => return None,
            };
            Some((table::read_name(shared, index)?, position, group))
        })
        .collect()
}
