//! ringmq: a Disruptor-style message queue for threads (and, with the shared-memory
//! backends, processes) on one Linux machine.
//!
//! A [`Ring`] is a bounded ring of sequence-numbered slots. [`Producer`]s claim sequences,
//! write slots in place and publish; consumers attach by name at run time and read:
//!
//! - **subscribers** ([`Ring::subscriber`]) each see every message, in sequence order
//!   (pub/sub, multicast);
//! - **groups** of **workers** ([`Ring::worker`]) share the stream: each message reaches
//!   exactly one worker of the group (a work queue);
//! - any consumer or group can run **after** others ([`SubscriberBuilder::after`],
//!   [`WorkerBuilder::after`]): pipelines and diamonds.
//!
//! Producers never overwrite a slot a gating consumer has not released: a full ring makes
//! [`Producer::try_publish`] return [`PublishError::Full`] and [`Producer::publish`] wait.
//! Waiting is by a [`WaitStrategy`], from busy-spinning to blocking on a futex word inside the
//! ring's memory.
//!
//! ```
//! use ringmq::{Ring, Start};
//!
//! let ring = Ring::builder().capacity(1024).slot_size(64).build()?;
//! let mut audit = ring.subscriber("audit").start(Start::Earliest).attach()?;
//! let mut worker = ring.worker("billing", "billing-1").attach()?;
//! let mut producer = ring.producer()?;
//!
//! producer.publish(b"order 1")?;
//! assert_eq!(&*audit.recv()?, b"order 1");
//! assert_eq!(&*worker.recv()?, b"order 1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Rings live on the heap ([`RingBuilder::build`]), or in files that other processes map: by
//! name in this user's /dev/shm directory ([`TopicDir::shm`]) or at any path
//! ([`RingBuilder::create`], [`Ring::open`]).
//!
//! The memory layout (header, hot lines, consumer table, stamped slots) is the same on every
//! backend; `docs/architecture.md` in the repository describes it, the protocols, and which
//! file holds each concept.
//!
//! # The API in one table
//!
//! | you want | call |
//! |---|---|
//! | a ring | `Ring::builder().capacity(n).slot_size(b)[.multi_producer()][.fixed_size(n)][.wakeups(false)]`, then `.build()` (heap), `.create(path)`, `.open_or_create(path)`, or through `TopicDir` |
//! | to publish | `producer.try_publish(&b)` (never waits: `Full`), `publish(&b)` (waits), `publish_timeout(&b, d)` |
//! | to write in place | `try_claim_slot()` / `claim_slot()` / `claim_slot_timeout(d)`: a `Claim` (`payload_mut`, `set_len`, `write`, `value_mut::<T>`), published on drop |
//! | many messages, one publish | `try_publish_batch_with(n, \|i, slot\| len)` (the fastest), `try_publish_batch(&[..])`, `try_claim_batch(n)`: each with its blocking and `_timeout` forms |
//! | messages larger than a slot | `publish_large(&b)` (and `try_`, `_timeout`), `recv_large(&mut buf)` (subscribers and workers: a `Whole`); `message.fragment()` names a piece |
//! | typed values | `TypedProducer<T>` (`publish`, `publish_slice`, `publish_with`, each in three forms), `TypedConsumer<T>`, `message.value::<T>()` |
//! | pub/sub; a work queue | `ring.subscriber(name)` (sees every message); `ring.worker(group, name)` (each message to one worker) |
//! | pipelines, diamonds | `.after(["a", "b"])` on a subscriber or a group's worker |
//! | where to start | `.start(Start::Latest / Earliest / Sequence(s))`; a group's: `.group_start(..)` |
//! | to receive | `try_recv()`, `recv()`, `recv_timeout(d)`: a `Received`, acknowledged on drop; `try_poll(max)`, `poll(max)`, `poll_timeout(max, d)`: a `Batch`, acknowledged with one store |
//! | push | `consumer.spawn(HandlerOptions::new().pin_to_core(1), \|msg, end_of_batch\| ..)` |
//! | how to wait | `.wait_strategy(WaitStrategy::BusySpin / Yield / Backoff / Block)`; `ring.producer_with(..)` |
//! | a subscriber that survives its process | `.durable(true)`, `.evict_after(d)` |
//! | who is attached; cleanup now | `ring.consumers()`; `ring.reap_dead()` (waiting handles do it on their own) |
//! | publisher confirms | `ring.confirmer(ConfirmBy::Consumer(name) / Gating / Durable)`: `try_confirm(seq)`, `confirm(seq)`, `confirm_timeout(seq, d)`, cumulative |
//! | request-reply | `request::Service::new(builder)` (or `create`/`open` in a `TopicDir`); `service.responder(name).attach()` then `respond(\|req\| reply)`; `service.requester().build()` then `call(&b, d)`, or `send` and `recv` pipelined; requests and replies larger than a slot arrive whole (`window_for_replies(w, len)` sizes the reply ring) |
//! | async/await (feature `async`) | `recv_async()`, `poll_async(max)`, `stream()`, `publish_async(&b)`, `confirm_async(seq)`, `call_async(&b, d)`, `respond_async(handler)` |
//! | topics | `TopicDir::shm()` or `TopicDir::new(dir)`: `create`, `open`, `open_or_create`, `remove`, `list`, `prune`, `path` |
//!
//! Each kind of call has its own error type with only the ways it can fail ([`BuildError`],
//! [`OpenError`], [`AttachError`], [`PublishError`], [`RecvError`], [`TypeError`],
//! [`SpawnError`], [`ConfirmError`], [`ServiceError`], [`RequestError`]); nothing panics on
//! bad input. Limits are in [`limits`]. The journal's
//! calls are in [`journal`] (and `docs/journal.md` in the repository).
#![deny(unsafe_op_in_unsafe_fn, missing_docs, missing_debug_implementations)]
#![warn(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

// The layers, bottom to top; a module uses only modules declared before it (`tests/layering.rs`
// checks this), so the crate has no import cycle. (rustfmt sorts each block: a module that
// uses another of its layer starts a block of its own.)
pub mod limits;
mod sync;
#[cfg(not(loom))]
mod test_hooks;

mod atomic;
mod error;

mod layout;

#[cfg(any(all(feature = "async", not(loom)), all(loom, test)))]
mod wake;

mod fragment;
mod liveness;
mod storage;
mod wait;

mod shared;

mod gating;
mod table;

mod group;
mod reaper;

#[cfg(all(feature = "async", not(loom)))]
mod await_event;

mod sequencer;

mod barrier;
mod confirm;

mod consumer;
mod producer;

mod typed;

mod ring;

#[cfg(not(loom))]
mod dir;

#[cfg(not(loom))]
pub mod journal;
#[cfg(not(loom))]
pub mod request;

pub use confirm::{ConfirmBy, Confirmer};
#[cfg(all(feature = "async", not(loom)))]
pub use consumer::MessageStream;
pub use consumer::{
    Batch, BatchIter, Consumer, Message, Received, Start, SubscriberBuilder, Whole, WorkerBuilder,
};
#[cfg(not(loom))]
pub use consumer::{HandlerOptions, HandlerThread};
#[cfg(not(loom))]
pub use dir::{TopicDir, TopicFile};
pub use error::{
    AttachError, BuildError, ConfirmError, JournalError, OpenError, PublishError, RecvError, RequestError,
    ServiceError, SpawnError, TypeError,
};
pub use fragment::Fragment;
#[cfg(not(loom))]
pub use journal::{Durability, Journal, JournalOptions, JournalStage, Retention, Seek};
pub use layout::ProducerMode;
pub use producer::{BatchClaim, Claim, Producer};
pub use ring::{Ring, RingBuilder};
#[cfg(not(loom))]
pub use storage::{FileKind, Trust};
pub use table::{ConsumerInfo, ConsumerKind};
pub use typed::{TypedConsumer, TypedProducer};
pub use wait::WaitStrategy;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The examples of `docs/messaging.md`, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/messaging.md")]
pub struct MessagingDoctests;
