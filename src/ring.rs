//! The facade: [`Ring`], the handle users hold, and [`RingBuilder`], which makes one on the
//! heap or in a file. Everything here delegates to the layers below; nothing below imports it.

use crate::confirm::{ConfirmBy, Confirmer};
use crate::consumer::{SubscriberBuilder, WorkerBuilder};
#[cfg(not(loom))]
use crate::error::OpenError;
use crate::error::{AttachError, BuildError, ConfirmError};
use crate::layout::{Params, ProducerMode};
use crate::liveness::Liveness;
use crate::producer::Producer;
use crate::shared::Shared;
use crate::storage::HeapStorage;
#[cfg(not(loom))]
use crate::storage::Trust;
use crate::sync::Arc;
use crate::table::ConsumerInfo;
use crate::wait::WaitStrategy;
use std::path::Path;
use std::time::Duration;

/// How long an opener waits for a ring's creator to finish initialising it, by default.
const INIT_TIMEOUT: Duration = Duration::from_secs(2);

/// A ring of sequence-numbered slots shared by producers and consumers.
///
/// `Ring` is a cheap handle (`Clone` shares the same ring). Create one with
/// [`Ring::builder`], then take [`Producer`]s from [`Ring::producer`] and consumers from
/// [`Ring::subscriber`] (every subscriber sees every message) or [`Ring::worker`] (the workers
/// of a group share the messages, each delivered to one of them).
///
/// ```
/// use ringmq::{Ring, Start};
///
/// let ring = Ring::builder().capacity(64).slot_size(64).build()?;
/// let mut consumer = ring.subscriber("reader").start(Start::Earliest).attach()?;
/// let mut producer = ring.producer()?;
/// producer.try_publish(b"hello")?;
/// let message = consumer.try_recv()?;
/// assert_eq!(&*message, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Ring {
    pub(crate) shared: Arc<Shared>,
}

/// Options for a new ring; see [`Ring::builder`].
#[derive(Clone, Debug)]
pub struct RingBuilder {
    params: Params,
    file_mode: u32,
    init_timeout: Duration,
    #[cfg(not(loom))]
    trust: Trust,
}

impl Default for RingBuilder {
    fn default() -> Self {
        RingBuilder {
            params: Params {
                capacity: 1024,
                slot_size: 64,
                mode: ProducerMode::Single,
                max_consumers: 32,
                initial_sequence: 0,
                wakeups: true,
                fixed: false,
            },
            file_mode: 0o600,
            init_timeout: INIT_TIMEOUT,
            #[cfg(not(loom))]
            trust: Trust::default(),
        }
    }
}

impl RingBuilder {
    /// Number of slots, a power of two up to 2^30 (default 1024).
    pub fn capacity(mut self, capacity: u64) -> Self {
        self.params.capacity = capacity;
        self
    }

    /// Bytes per slot including the 8-byte slot header: a multiple of 8, at least 16
    /// (default 64, so 56 bytes of payload). In a fixed-size ring
    /// ([`RingBuilder::fixed_size`]), the message size.
    pub fn slot_size(mut self, slot_size: usize) -> Self {
        self.params.slot_size = slot_size;
        self
    }

    /// Makes every message exactly `message_len` bytes, in slots without the 8-byte slot
    /// header: a slot is the payload alone (`slot_size` becomes `message_len`), so a stream
    /// of small values moves half the bytes (an 8-byte message takes 8 bytes, not 16).
    /// `message_len` is a multiple of 8, from 8.
    ///
    /// What it costs: one producer only (the producer's cursor is the only publish; a
    /// multi-producer ring needs its per-slot stamps, and [`RingBuilder::build`] says
    /// [`BuildError::FixedSizeMultiProducer`]); a publish of any other length is
    /// [`crate::PublishError::WrongSize`]; a producer that panics in a claim or a batch
    /// publishes none of that claim (there is no skip flag). Consumers learn of new messages
    /// from the cursor alone, as the Disruptor's do: a producer publishing one message at a
    /// time writes the cursor's line on every publish, and a caught-up consumer reads it
    /// (pausing one spin-loop hint after a look that found nothing, so as not to take the line
    /// back between two publishes), so single publishes cost a line transfer more than in a
    /// ring with slot headers (which publishes them by their stamps). Batches and slices are
    /// what a fixed-size ring is for. Everything else (subscribers, groups, dependencies, wait
    /// strategies, /dev/shm and files, a producer taking over from a dead one at the cursor)
    /// is the same.
    pub fn fixed_size(mut self, message_len: usize) -> Self {
        self.params.fixed = true;
        self.params.slot_size = message_len;
        self
    }

    /// Single producer (default) or any number of producers.
    pub fn producer_mode(mut self, mode: ProducerMode) -> Self {
        self.params.mode = mode;
        self
    }

    /// Shorthand for `producer_mode(ProducerMode::Multi)`.
    pub fn multi_producer(self) -> Self {
        self.producer_mode(ProducerMode::Multi)
    }

    /// Size of the consumer table: how many consumers, groups and workers can be attached at
    /// once, 1 to 64 (default 32). A group takes one entry plus one per worker.
    pub fn max_consumers(mut self, max_consumers: usize) -> Self {
        self.params.max_consumers = max_consumers;
        self
    }

    /// The sequence of the first message (default 0), at most
    /// [`crate::limits::MAX_SEQUENCE`]. Starting high lets tests exercise the arithmetic far
    /// from zero.
    pub fn initial_sequence(mut self, initial_sequence: u64) -> Self {
        self.params.initial_sequence = initial_sequence;
        self
    }

    /// Whether publishers and consumers run the futex wake-up protocol (default true).
    ///
    /// With wake-ups, every publish and every release costs one full fence (and a futex
    /// wake only when somebody sleeps), and handles may use [`WaitStrategy::Backoff`] and
    /// [`WaitStrategy::Block`]. Without, those strategies are refused with
    /// [`AttachError::WakeupsDisabled`] and the fence is gone: the fastest setting for
    /// busy-spinning or yielding handles.
    pub fn wakeups(mut self, wakeups: bool) -> Self {
        self.params.wakeups = wakeups;
        self
    }

    /// The permission bits of a new ring file (default `0o600`: only the creating user).
    /// Applied exactly, whatever the umask.
    pub fn file_mode(mut self, mode: u32) -> Self {
        self.file_mode = mode & 0o7777;
        self
    }

    /// How long [`RingBuilder::open_or_create`] waits for another creator to finish
    /// initialising the ring (default 2 s).
    pub fn init_timeout(mut self, timeout: Duration) -> Self {
        self.init_timeout = timeout;
        self
    }

    /// The users, besides this process's own and root, whose ring files and directories
    /// [`RingBuilder::create`] and [`RingBuilder::open_or_create`] accept (default: none;
    /// see [`Trust`]).
    #[cfg(not(loom))]
    pub fn trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    /// Creates the ring on the heap, for the threads of this process.
    ///
    /// # Errors
    ///
    /// [`BuildError::InvalidCapacity`], [`BuildError::InvalidSlotSize`],
    /// [`BuildError::FixedSizeMultiProducer`], [`BuildError::InvalidMaxConsumers`],
    /// [`BuildError::InvalidInitialSequence`] or [`BuildError::TooLarge`] for bad parameters;
    /// [`BuildError::OutOfMemory`] if the allocation fails.
    pub fn build(self) -> Result<Ring, BuildError> {
        let layout = self.params.validate()?;
        let storage = HeapStorage::new(layout.total_len)?;
        let shared = Shared::create(layout, Box::new(storage), Liveness::process(), None);
        Ok(Ring {
            shared: Arc::new(shared),
        })
    }

    /// Creates the ring in a new file at `path` and maps it shared: every process that opens
    /// the file ([`Ring::open`]) uses the same ring. For a ring in /dev/shm by name, see
    /// [`crate::TopicDir`].
    ///
    /// The file is fully allocated (a full disk or tmpfs is [`OpenError::NoSpace`] now,
    /// never a `SIGBUS` later) and initialised under a temporary name, then linked to `path`:
    /// no process can open a half-made ring. The directories that hold it must be ones no
    /// untrusted user can change (see [`Trust`]).
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidParams`] for bad parameters (as [`RingBuilder::build`]);
    /// [`OpenError::AlreadyExists`] if `path` exists; [`OpenError::NoSuchDirectory`],
    /// [`OpenError::Untrusted`], [`OpenError::PermissionDenied`], [`OpenError::NoSpace`],
    /// [`OpenError::InvalidPath`], [`OpenError::Io`].
    #[cfg(not(loom))]
    pub fn create(self, path: impl AsRef<Path>) -> Result<Ring, OpenError> {
        use crate::storage::io_error;
        let path = path.as_ref();
        let layout = self.params.validate()?;
        let (storage, temp) =
            crate::storage::create_temp(path, layout.total_len, self.file_mode, &self.trust)?;
        let owner = storage
            .file()
            .try_clone()
            .map_err(|e| io_error(path, "dup", &e))?;
        let tokens = owner.try_clone().map_err(|e| io_error(path, "dup", &e))?;
        let liveness = Liveness::file(tokens).map_err(|e| io_error(path, "reopen", &e))?;
        crate::test_hooks::pause_at("create");
        let shared = Shared::create(layout, Box::new(storage), liveness, Some(path.to_owned()));
        temp.publish(&owner, path)?;
        Ok(Ring {
            shared: Arc::new(shared),
        })
    }

    /// Opens the ring at `path` if it exists (checking that its parameters are this
    /// builder's), or creates it. Safe when several processes race to do this for the same
    /// path: exactly one creates, the others open its ring.
    ///
    /// # Errors
    ///
    /// Those of [`RingBuilder::create`] and [`Ring::open`], and [`OpenError::ParamsMismatch`]
    /// if the existing ring differs from this builder's parameters.
    #[cfg(not(loom))]
    pub fn open_or_create(self, path: impl AsRef<Path>) -> Result<Ring, OpenError> {
        let path = path.as_ref();
        for _ in 0..100 {
            match Ring::open_inner(path, Some(&self.params), self.init_timeout, &self.trust) {
                // Not there yet (this user's /dev/shm directory included, which `create` makes).
                Err(OpenError::NotFound { .. } | OpenError::NoSuchDirectory { .. }) => {}
                other => return other,
            }
            match self.clone().create(path) {
                Err(OpenError::AlreadyExists { .. }) => {}
                other => return other,
            }
            // Created and removed again between our two attempts: try once more.
        }
        Err(OpenError::NotFound {
            path: path.display().to_string(),
        })
    }
}

impl Ring {
    /// Options for a new ring, with defaults: 1024 slots of 64 bytes, single producer, 32
    /// consumer entries, wake-ups on.
    pub fn builder() -> RingBuilder {
        RingBuilder::default()
    }

    /// A producer that waits with [`WaitStrategy::Backoff`] (or `Yield` on a ring without
    /// wake-ups).
    ///
    /// # Errors
    ///
    /// [`AttachError::ProducerTaken`] if this is a single-producer ring whose producer is
    /// alive, [`AttachError::TooManyProducers`] if a multi-producer ring has
    /// [`crate::limits::MAX_PRODUCERS`] live ones, [`AttachError::Corrupt`] if a peer wrote a
    /// cursor past the largest sequence.
    pub fn producer(&self) -> Result<Producer, AttachError> {
        let wait = if self.shared.wakeups {
            WaitStrategy::Backoff
        } else {
            WaitStrategy::Yield
        };
        self.producer_with(wait)
    }

    /// A producer that waits on a full ring by `wait`.
    ///
    /// # Errors
    ///
    /// As [`Ring::producer`], and [`AttachError::WakeupsDisabled`] for a blocking strategy on
    /// a ring created without wake-ups.
    pub fn producer_with(&self, wait: WaitStrategy) -> Result<Producer, AttachError> {
        Producer::new(Arc::clone(&self.shared), wait)
    }

    /// Starts attaching a subscriber named `name`: it will see every message, in order.
    pub fn subscriber(&self, name: &str) -> SubscriberBuilder {
        SubscriberBuilder::new(Arc::clone(&self.shared), name)
    }

    /// Starts attaching worker `name` to the group `group` (created by its first worker):
    /// each message reaches exactly one worker of the group.
    pub fn worker(&self, group: &str, name: &str) -> WorkerBuilder {
        WorkerBuilder::new(Arc::clone(&self.shared), group, name)
    }

    /// Number of slots.
    pub fn capacity(&self) -> u64 {
        self.shared.capacity()
    }

    /// Bytes per slot, header included.
    pub fn slot_size(&self) -> usize {
        self.shared.layout.params.slot_size
    }

    /// The largest message, in bytes.
    pub fn max_message_len(&self) -> usize {
        self.shared.layout.payload_capacity()
    }

    /// Single or multi producer.
    pub fn producer_mode(&self) -> ProducerMode {
        self.shared.layout.params.mode
    }

    /// The sequence of the first message.
    pub fn initial_sequence(&self) -> u64 {
        self.shared.layout.params.initial_sequence
    }

    /// Whether the ring runs the futex wake-up protocol.
    pub fn wakeups(&self) -> bool {
        self.shared.wakeups
    }

    /// A fixed-size ring's message size ([`RingBuilder::fixed_size`]); `None` for a ring
    /// with slot headers, whose messages are 0 to [`Ring::max_message_len`] bytes.
    pub fn fixed_size(&self) -> Option<usize> {
        let params = &self.shared.layout.params;
        params.fixed.then_some(params.slot_size)
    }

    /// The sequence the next message will get: in a single-producer ring, every sequence
    /// below it is published; in a multi-producer ring, every sequence below it is claimed
    /// (some may still be being written). A consumer attaching at [`crate::Start::Latest`]
    /// starts here.
    pub fn next_sequence(&self) -> u64 {
        crate::sequencer::next_sequence(&self.shared)
    }

    /// Opens the ring in the file at `path`, waiting up to 2 s for its creator to finish
    /// initialising it. The file must be this process's user's (or root's), in directories
    /// no other user can change; see [`Ring::open_trusting`] to share rings between users.
    ///
    /// Everything in the header is validated before use, and nothing read from the mapping
    /// later is trusted: a peer writing garbage into it can make operations fail or stall
    /// (until their timeouts), never read or write outside the ring or panic.
    ///
    /// # Errors
    ///
    /// [`OpenError::NotFound`], [`OpenError::NoSuchDirectory`],
    /// [`OpenError::PermissionDenied`], [`OpenError::Untrusted`], [`OpenError::NotARing`],
    /// [`OpenError::IncompatibleVersion`], [`OpenError::Truncated`], [`OpenError::Corrupt`],
    /// [`OpenError::NotInitialised`], [`OpenError::Io`].
    #[cfg(not(loom))]
    pub fn open(path: impl AsRef<Path>) -> Result<Ring, OpenError> {
        Ring::open_trusting(path, &Trust::default())
    }

    /// [`Ring::open`], accepting also the users `trust` names.
    ///
    /// # Errors
    ///
    /// As [`Ring::open`].
    #[cfg(not(loom))]
    pub fn open_trusting(path: impl AsRef<Path>, trust: &Trust) -> Result<Ring, OpenError> {
        Ring::open_inner(path.as_ref(), None, INIT_TIMEOUT, trust)
    }

    #[cfg(not(loom))]
    fn open_inner(
        path: &Path,
        expected: Option<&Params>,
        timeout: Duration,
        trust: &Trust,
    ) -> Result<Ring, OpenError> {
        let storage = crate::storage::open_file(path, trust)?;
        Ok(Ring {
            shared: Arc::new(Shared::open(storage, path, expected, timeout)?),
        })
    }

    /// Removes the ring file at `path` (or a creator's abandoned temporary file), and nothing
    /// else: any other file is refused. Processes that have the ring open keep using it; new
    /// opens fail with [`OpenError::NotFound`] (or find a new ring of that name).
    ///
    /// # Errors
    ///
    /// [`OpenError::NotARing`] for a file that is not a ring (a symbolic link included),
    /// [`OpenError::NotFound`], [`OpenError::PermissionDenied`], [`OpenError::Io`].
    #[cfg(not(loom))]
    pub fn remove(path: impl AsRef<Path>) -> Result<(), OpenError> {
        crate::storage::remove_ring(path.as_ref())
    }

    /// The ring's file, or `None` for a heap ring.
    pub fn path(&self) -> Option<&Path> {
        self.shared.path.as_deref()
    }

    /// How many messages groups have redelivered since the ring was created (claims taken
    /// over from workers that died or detached holding them).
    pub fn redelivered_count(&self) -> u64 {
        // Relaxed: a statistic.
        self.shared.redelivered().load_relaxed()
    }

    /// How many slots were skipped since the ring was created because the producer that
    /// claimed them died before publishing.
    pub fn skipped_count(&self) -> u64 {
        // Relaxed: a statistic.
        self.shared.skipped_total().load_relaxed()
    }

    /// Cleans up after processes that died while attached: detaches their ephemeral
    /// subscribers, hands their workers' claims to their groups, evicts dead durable
    /// subscribers past their delay, skips the slots their producers claimed and never
    /// published. Returns how many entries and slots it cleaned up. Handles of a shared ring
    /// do this on their own while they wait, every 50 ms; this is for tools (`ringmq stat`)
    /// and for heap rings, where it evicts detached durable subscribers past their delay.
    pub fn reap_dead(&self) -> usize {
        crate::reaper::reap_dead(&self.shared)
    }

    /// A snapshot of the attached consumers, groups and workers.
    pub fn consumers(&self) -> Vec<ConsumerInfo> {
        crate::table::snapshot(&self.shared)
    }

    /// Waits until the subscriber or group called `name` has released (acknowledged) every
    /// sequence below `upto`, at most `timeout` (`None`: for ever), and returns its position
    /// then: a publisher confirm, cumulative (one wait covers every earlier sequence). On a
    /// ring with wake-ups the wait yields for up to 250 µs (a confirm usually comes within a
    /// sync), then sleeps on the ring's futex word; without wake-ups, it yields. The
    /// journal's durable position is its stage's ([`crate::journal::JournalStage`]).
    ///
    /// # Errors
    ///
    /// [`ConfirmError::UnknownConsumer`], [`ConfirmError::Worker`] (wait on the group),
    /// [`ConfirmError::Detached`] if it detaches first, [`ConfirmError::Timeout`].
    pub fn wait_released(
        &self,
        name: &str,
        upto: u64,
        timeout: Option<Duration>,
    ) -> Result<u64, ConfirmError> {
        let deadline = timeout.and_then(crate::wait::deadline_after);
        crate::confirm::wait_released(&self.shared, name, upto, deadline)
    }

    /// A [`Confirmer`]: publisher confirms by `by` (a named subscriber or group, every gating
    /// consumer, or the journal's durable position), waiting by `Backoff` (yield for up to
    /// 250 µs, then sleep on the ring's futex word; yield only, on a ring without wake-ups).
    ///
    /// # Errors
    ///
    /// [`ConfirmError::UnknownConsumer`] if no subscriber or group of the name is attached
    /// (for [`ConfirmBy::Durable`]: no journal stage), [`ConfirmError::Worker`].
    pub fn confirmer(&self, by: ConfirmBy) -> Result<Confirmer, ConfirmError> {
        self.confirmer_with(by, WaitStrategy::Backoff)
    }

    /// [`Ring::confirmer`] waiting by `wait` (`BusySpin` for the lowest latency).
    ///
    /// # Errors
    ///
    /// As [`Ring::confirmer`].
    pub fn confirmer_with(&self, by: ConfirmBy, wait: WaitStrategy) -> Result<Confirmer, ConfirmError> {
        Confirmer::new(Arc::clone(&self.shared), by, wait)
    }
}
