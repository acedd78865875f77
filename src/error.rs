//! Typed errors, one type per kind of operation, each with only the ways that operation can
//! fail. Library code never panics on bad input; it returns one of these.
//!
//! | operation | error |
//! |---|---|
//! | [`crate::RingBuilder::build`] (a ring on the heap) | [`BuildError`] |
//! | creating, opening, removing, listing ring files and topics | [`OpenError`] |
//! | taking a producer, attaching a subscriber or a worker | [`AttachError`] |
//! | publishing and claiming | [`PublishError`] |
//! | receiving and polling | [`RecvError`] |
//! | viewing a payload as a type | [`TypeError`] |
//! | starting a handler thread | [`SpawnError`] |
//! | waiting for a consumer to release a sequence (a confirm) | [`ConfirmError`] |
//! | opening, writing, syncing and reading a journal | [`JournalError`] |
//! | making or opening a request-reply service, a requester or a responder | [`ServiceError`] |
//! | sending a request, receiving its reply | [`RequestError`] |

use thiserror::Error;

/// Why ring parameters were refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The capacity is zero, not a power of two, or above [`crate::limits::MAX_CAPACITY`].
    #[error("capacity {capacity} is not a power of two between 1 and 2^30")]
    InvalidCapacity {
        /// The capacity asked for.
        capacity: u64,
    },
    /// The slot size is not a multiple of 8 in `MIN_SLOT_SIZE..=MAX_SLOT_SIZE` (from
    /// `MIN_FIXED_SIZE` for a fixed-size ring; see [`crate::limits`]).
    #[error("slot size {slot_size} is not a multiple of 8 between 16 (8 for a fixed-size ring) and 16 MiB")]
    InvalidSlotSize {
        /// The slot size asked for.
        slot_size: usize,
    },
    /// A fixed-size ring ([`crate::RingBuilder::fixed_size`]) was asked for with several
    /// producers: its slots have no header to publish them one by one, so only a single
    /// producer's cursor can.
    #[error("a fixed-size ring has a single producer (multi-producer slots need their headers)")]
    FixedSizeMultiProducer,
    /// The consumer table size is zero or above [`crate::limits::MAX_CONSUMERS`].
    #[error("max_consumers {max_consumers} is not between 1 and 64")]
    InvalidMaxConsumers {
        /// The table size asked for.
        max_consumers: usize,
    },
    /// The initial sequence is above [`crate::limits::MAX_SEQUENCE`].
    #[error("initial sequence {initial_sequence} is above 2^63")]
    InvalidInitialSequence {
        /// The initial sequence asked for.
        initial_sequence: u64,
    },
    /// `capacity * slot_size` does not fit in memory.
    #[error("a ring of {capacity} slots of {slot_size} bytes does not fit in the address space")]
    TooLarge {
        /// The capacity asked for.
        capacity: u64,
        /// The slot size asked for.
        slot_size: usize,
    },
    /// The heap region could not be allocated.
    #[error("could not allocate {len} bytes for the ring")]
    OutOfMemory {
        /// Bytes asked for.
        len: usize,
    },
}

/// Why a ring file (or a topic directory) could not be created, opened, removed or listed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenError {
    /// The parameters of a ring to create are not valid.
    #[error(transparent)]
    InvalidParams(#[from] BuildError),
    /// A topic name that [`crate::TopicDir::path`] does not accept.
    #[error("{name:?} is not a topic name (1-200 of A-Z a-z 0-9 - _ ., not starting with '.')")]
    InvalidTopicName {
        /// The name.
        name: String,
    },
    /// A path that cannot name a ring file.
    #[error("{path}: not a path to a ring file")]
    InvalidPath {
        /// The path.
        path: String,
    },
    /// The ring file does not exist.
    #[error("{path}: no such ring")]
    NotFound {
        /// The path.
        path: String,
    },
    /// The directory meant to hold the ring (or to be listed) does not exist.
    #[error("{path}: no such directory")]
    NoSuchDirectory {
        /// The directory.
        path: String,
    },
    /// A ring (or another file) already has that name.
    #[error("{path}: already exists")]
    AlreadyExists {
        /// The path.
        path: String,
    },
    /// The process may not open or create the file (its mode or its directory's).
    #[error("{path}: permission denied")]
    PermissionDenied {
        /// The path.
        path: String,
    },
    /// The ring file, or the directory that holds it, could have been put there or replaced
    /// by a user this process does not trust (see [`crate::Trust`]); it was not opened.
    #[error("{path}: refused: {reason}")]
    Untrusted {
        /// The file or directory.
        path: String,
        /// What makes it untrusted (its owner, its mode, a symbolic link).
        reason: String,
    },
    /// The device is full: the file could not be allocated.
    #[error("{path}: no space left for {len} bytes")]
    NoSpace {
        /// The path.
        path: String,
        /// Bytes asked for (0 if unknown).
        len: usize,
    },
    /// Another I/O error.
    #[error("{path}: {op} failed: {message}")]
    Io {
        /// The path.
        path: String,
        /// The operation (`open`, `mmap`, ...).
        op: &'static str,
        /// The operating system's message.
        message: String,
    },
    /// The file does not start with the ring magic: it is not a ring.
    #[error("{path}: not a ringmq ring")]
    NotARing {
        /// The path.
        path: String,
    },
    /// The ring was written by an incompatible version of ringmq.
    #[error("{path}: ring layout version {found}, this build reads version {supported}")]
    IncompatibleVersion {
        /// The path.
        path: String,
        /// The version in the file.
        found: u64,
        /// The version this build reads and writes.
        supported: u64,
    },
    /// The file is shorter than its header says the ring is.
    #[error("{path}: truncated, {len} bytes where the ring needs {expected}")]
    Truncated {
        /// The path.
        path: String,
        /// The file's length.
        len: u64,
        /// The length the ring needs.
        expected: u64,
    },
    /// The header holds values no ring can have.
    #[error("{path}: corrupt ring: {reason}")]
    Corrupt {
        /// The path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The ring exists with other parameters than those asked for.
    #[error("{path}: the ring exists with {field} {found}, not {expected}")]
    ParamsMismatch {
        /// The path.
        path: String,
        /// The parameter that differs (`capacity`, `slot_size`, ...).
        field: &'static str,
        /// The value asked for.
        expected: u64,
        /// The value in the file.
        found: u64,
    },
    /// The ring's creator had not finished initialising it before the timeout.
    #[error("{path}: not initialised after {waited:?} (its creator may have died)")]
    NotInitialised {
        /// The path.
        path: String,
        /// How long the opener waited.
        waited: std::time::Duration,
    },
}

/// Why a producer, a subscriber or a worker could not attach to a ring.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttachError {
    /// A live consumer or group already has the name.
    #[error("the name {name:?} is taken by a live consumer or group")]
    NameTaken {
        /// The name.
        name: String,
    },
    /// The name is empty or longer than [`crate::limits::MAX_NAME_LEN`] bytes.
    #[error("the name {name:?} is empty or longer than 64 bytes")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// A dependency names no attached consumer or group.
    #[error("no consumer or group named {name:?} is attached")]
    UnknownDependency {
        /// The name of the missing dependency.
        name: String,
    },
    /// More than [`crate::limits::MAX_DEPENDENCIES`] dependencies were declared.
    #[error("{count} dependencies declared; at most 8 are allowed")]
    TooManyDependencies {
        /// How many were declared.
        count: usize,
    },
    /// Every entry of the consumer table is in use.
    #[error("the consumer table is full ({max_consumers} entries)")]
    TableFull {
        /// The table's size.
        max_consumers: usize,
    },
    /// Every entry of the producer table is taken by a live multi-producer handle.
    #[error("the ring already has {max} producer handles")]
    TooManyProducers {
        /// The producer table's size.
        max: usize,
    },
    /// A single-producer ring already has its producer.
    #[error("this single-producer ring already has a live producer")]
    ProducerTaken,
    /// The requested start sequence has been overwritten.
    #[error("sequence {requested} is no longer in the ring; the earliest is {earliest}")]
    SequenceUnavailable {
        /// The start asked for.
        requested: u64,
        /// The earliest sequence that is still readable.
        earliest: u64,
    },
    /// A blocking wait strategy was asked of a ring created without wake-ups.
    #[error("the ring was created without wake-ups; use BusySpin or Yield, or create it with wakeups(true)")]
    WakeupsDisabled,
    /// A worker's dependencies differ from those of the group it joins, or a worker's name
    /// is held by a worker of another group.
    #[error("the group {group:?} exists with other dependencies than this worker's")]
    GroupMismatch {
        /// The group's name.
        group: String,
    },
    /// The ring's shared state is inconsistent (only a peer writing into the mapping can
    /// cause this).
    #[error("corrupt ring: {reason}")]
    Corrupt {
        /// What is wrong.
        reason: String,
    },
}

/// Why a payload could not be viewed as a type.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TypeError {
    /// A type does not fit a message (or a fixed-size ring's message is not its size), or
    /// needs more than the slots' 8-byte alignment.
    #[error("type of {size} bytes, align {align}, does not fit a payload of {capacity} bytes aligned to 8")]
    Mismatch {
        /// `size_of::<T>()`.
        size: usize,
        /// `align_of::<T>()`.
        align: usize,
        /// The payload's length (or capacity).
        capacity: usize,
    },
    /// Typed slices of a batch ([`crate::Batch::as_slices`]) need a fixed-size ring whose
    /// messages are `size_of::<T>()` bytes, in slots aligned for `T`.
    #[error("slices of {size}-byte values (align {align}) need a fixed-size ring of {size}-byte messages")]
    NotFixedSizeOf {
        /// `size_of::<T>()`.
        size: usize,
        /// `align_of::<T>()`.
        align: usize,
    },
}

/// Why a handler thread was not started.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpawnError {
    /// The core to pin the thread to does not exist.
    #[error("core {core} is not one of this process's cores")]
    InvalidCore {
        /// The core id asked for.
        core: usize,
    },
    /// The operating system refused the thread.
    #[error("could not spawn the handler thread: {0}")]
    Thread(String),
}

/// Why a publish or a claim did not happen.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishError {
    /// The slowest gating consumer is a whole ring behind (only from `try_` variants).
    #[error("the ring is full")]
    Full,
    /// The ring stayed full until the deadline (only from `_timeout` variants).
    #[error("the ring stayed full until the timeout")]
    Timeout,
    /// The message is longer than a slot's payload.
    #[error("message of {len} bytes exceeds the slot payload of {max} bytes")]
    TooLarge {
        /// The message's length.
        len: usize,
        /// The slot's payload capacity.
        max: usize,
    },
    /// A fixed-size ring's messages are all its message size ([`crate::Ring::fixed_size`]).
    #[error("message of {len} bytes in a ring of fixed {size}-byte messages")]
    WrongSize {
        /// The message's length.
        len: usize,
        /// The ring's message size.
        size: usize,
    },
    /// A batch of more messages than the ring has slots can never fit.
    #[error("a batch of {n} messages exceeds the ring's {capacity} slots")]
    BatchTooLarge {
        /// The batch size asked for.
        n: usize,
        /// The ring's capacity.
        capacity: u64,
    },
    /// A slot index past the end of a batch claim.
    #[error("slot {index} is outside a batch of {len}")]
    NoSuchSlot {
        /// The index asked for.
        index: usize,
        /// The batch's length.
        len: usize,
    },
    /// The claim would pass [`crate::limits::MAX_SEQUENCE`].
    #[error("the ring's sequence space is exhausted")]
    Exhausted,
    /// The slot was given up (skipped) before this publish, as if its producer had died; the
    /// message was not published. See [`crate::Producer::abandoned`].
    #[error("slot {sequence} was given up as a dead producer's before this publish")]
    Abandoned {
        /// The message's sequence.
        sequence: u64,
    },
}

/// Why no message was received.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecvError {
    /// Nothing is available now (only from `try_` variants).
    #[error("no message is available")]
    Empty,
    /// Nothing became available before the deadline.
    #[error("no message arrived before the timeout")]
    Timeout,
    /// The handler loop running this consumer was asked to stop.
    #[error("the consumer was asked to stop")]
    Stopped,
}

/// Why a journal operation failed. Whatever the error, no record that was reported durable
/// is lost by it.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JournalError {
    /// The options are not valid (sizes, intervals).
    #[error("invalid journal options: {reason}")]
    InvalidOptions {
        /// What is wrong.
        reason: String,
    },
    /// Another live process (or handle) is the journal's writer.
    #[error("{path}: the journal has a live writer already")]
    Locked {
        /// The journal's directory.
        path: String,
    },
    /// The device is full: a segment could not be allocated. Nothing was lost; appending
    /// again once space is freed (retention, or by hand) continues.
    #[error("{name}: no space left to allocate {len} bytes")]
    NoSpace {
        /// The segment that could not be created.
        name: String,
        /// Its size.
        len: u64,
    },
    /// An I/O error other than a failed sync.
    #[error("{name}: {op} failed: {message}")]
    Io {
        /// The file or directory.
        name: String,
        /// The operation (`create`, `open`, `list`, ...).
        op: &'static str,
        /// The operating system's message.
        message: String,
    },
    /// A sync failed earlier (now or before): the kernel may have dropped writes and marked
    /// them clean, so nothing appended since the last durable position can be trusted to
    /// reach the disk. The journal accepts no more appends and reports nothing more durable;
    /// reopening it recovers what is on the disk.
    #[error("the journal failed: {reason}; nothing past sequence {durable} is durable")]
    Failed {
        /// The failed operation and the operating system's message.
        reason: String,
        /// The durable position when it failed (every sequence below it is durable).
        durable: u64,
    },
    /// Bytes that must hold committed data do not check (a media error, or a hostile
    /// writer): a record below the durable position, a sealed segment's footer, a state
    /// slot. The journal never truncates committed data to get past this.
    #[error("{segment} at {offset}: corrupt: {reason}")]
    Corrupt {
        /// The segment file.
        segment: String,
        /// The byte offset in it.
        offset: u64,
        /// What does not check.
        reason: String,
    },
    /// A file in the journal's directory that is not one of its own (not a segment, or a
    /// segment of another format or version).
    #[error("{name}: not part of a ringmq journal: {reason}")]
    Foreign {
        /// The file's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A record larger than the journal's maximum.
    #[error("a record of {len} bytes exceeds the journal's maximum of {max}")]
    TooLarge {
        /// The record's payload length.
        len: usize,
        /// The maximum ([`crate::journal::JournalOptions::max_record`]).
        max: usize,
    },
    /// The sequence asked for was deleted by retention.
    #[error("sequence {requested} is no longer retained; the oldest retained is {oldest}")]
    Retained {
        /// The sequence asked for.
        requested: u64,
        /// The oldest sequence the journal still holds.
        oldest: u64,
    },
    /// The sequence asked for has not been written yet.
    #[error("sequence {requested} is past the journal's end ({next} is next)")]
    NotYet {
        /// The sequence asked for.
        requested: u64,
        /// The next sequence to be appended.
        next: u64,
    },
    /// The journal stage could not attach to its ring as the consumer
    /// [`crate::journal::STAGE_CONSUMER`].
    #[error("the journal stage could not attach to the ring: {0}")]
    Attach(#[from] AttachError),
    /// The journal and the ring disagree about the stream: the ring's stage consumer is past
    /// the journal's end (the journal directory is not this ring's, or lost records), or the
    /// ring's next sequence is behind the journal's end (a ring made anew after a machine
    /// crash must start at the journal's end: `RingBuilder::initial_sequence`).
    #[error("the journal ends at {journal_end}, but the ring's journal consumer is at {ring_position} and its next sequence is {ring_next}")]
    RingMismatch {
        /// The journal's next sequence.
        journal_end: u64,
        /// The ring's stage consumer's position.
        ring_position: u64,
        /// The ring's next sequence.
        ring_next: u64,
    },
    /// The deadline of a wait for durability passed first.
    #[error("timed out with the durable position at {durable}")]
    Timeout {
        /// The durable position when the wait gave up.
        durable: u64,
    },
    /// Durable positions under too many or too long names to fit a state slot.
    #[error(
        "consumer positions do not fit the journal's state slot (names up to 127 bytes, about 4 KiB in all)"
    )]
    TooManyPositions,
    /// A ring made anew for the journal ([`crate::journal::restore`]) cannot hold what a
    /// durable group has not acknowledged: it needs `end - position` slots.
    #[error("group {group:?} is at {position} and the journal ends at {end}: its backlog does not fit a ring of {capacity} slots")]
    Backlog {
        /// The group furthest behind.
        group: String,
        /// Its committed position.
        position: u64,
        /// The journal's end.
        end: u64,
        /// The ring's capacity.
        capacity: u64,
    },
    /// Making or opening a ring failed.
    #[error("the ring: {0}")]
    Open(#[from] OpenError),
    /// Publishing into a ring failed.
    #[error("publishing into the ring: {0}")]
    Publish(#[from] PublishError),
}

/// Why a wait for a consumer's release ([`crate::Ring::wait_released`]) ended without it.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfirmError {
    /// No subscriber or group of that name is attached.
    #[error("no subscriber or group named {name:?} is attached")]
    UnknownConsumer {
        /// The name.
        name: String,
    },
    /// The name is a group's worker: a worker's position covers its own claims only; wait
    /// on its group instead.
    #[error("{name:?} is a worker: wait on its group")]
    Worker {
        /// The name.
        name: String,
    },
    /// The consumer detached (or was detached after its process died) before it released
    /// the sequence.
    #[error("{name:?} detached before releasing the sequence")]
    Detached {
        /// The name.
        name: String,
    },
    /// The deadline passed first.
    #[error("timed out with the consumer at position {position}")]
    Timeout {
        /// The consumer's position when the wait gave up.
        position: u64,
    },
    /// Not confirmed yet (only from `try_` forms).
    #[error("not confirmed yet: the consumer is at position {position}")]
    NotYet {
        /// The consumer's position: every sequence below it is confirmed.
        position: u64,
    },
}

/// Why a request-reply service ([`crate::request::Service`]), a requester or a responder
/// could not be set up.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceError {
    /// The service's ring or a reply ring could not be made on the heap.
    #[error("{0}")]
    Build(#[from] BuildError),
    /// The service's ring or a reply ring could not be created or opened.
    #[error("{0}")]
    Open(#[from] OpenError),
    /// A producer, the responder or the requester's reply subscriber could not attach.
    #[error("{0}")]
    Attach(#[from] AttachError),
    /// The ring has fixed-size slots or one producer: a service's ring takes messages of any
    /// length from many requesters.
    #[error("the service's ring must be a multi-producer ring with slot headers")]
    NotAServiceRing,
    /// The service's name, with a reply ring's suffix, is not a valid topic name.
    #[error("{name:?} cannot name a service: a topic name of at most 150 bytes")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// A requester's window is zero or larger than its reply ring.
    #[error("a window of {window} requests is not between 1 and the reply ring's {capacity} slots")]
    InvalidWindow {
        /// The window asked for.
        window: usize,
        /// The reply ring's capacity.
        capacity: u64,
    },
}

/// Why a request was not sent, or why no reply was received.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// The service has no responder attached: nobody would answer.
    #[error("the service has no responder")]
    NoResponders,
    /// The request does not fit the service's ring, all of its slots together (with its
    /// header and reply address): see [`crate::request::Requester::max_payload`].
    #[error("a request of {len} bytes exceeds the {max} bytes a request can carry")]
    TooLarge {
        /// The payload's length.
        len: usize,
        /// The longest payload this requester can send.
        max: usize,
    },
    /// As many requests are in flight as the requester's window allows: receive replies
    /// first.
    #[error("{window} requests are in flight, as many as the requester's window allows")]
    WindowFull {
        /// The window ([`crate::request::RequesterBuilder::window`]).
        window: usize,
    },
    /// The service's ring is full (only from `try_` forms).
    #[error("the service's ring is full")]
    Full,
    /// Nothing happened before the timeout: the service's ring stayed full, or no reply and
    /// no deadline came.
    #[error("timed out")]
    Timeout,
    /// Nothing is available now (only from `try_` forms).
    #[error("no reply is available")]
    Empty,
    /// The request's deadline passed without a reply; a reply that comes later is dropped
    /// and counted ([`crate::request::Requester::late_replies`]).
    #[error("request {id} got no reply before its deadline")]
    Expired {
        /// The request's id.
        id: u64,
    },
    /// Publishing the request failed otherwise.
    #[error("publishing the request: {0}")]
    Publish(PublishError),
}
