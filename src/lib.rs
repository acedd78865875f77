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
//! - any consumer or group can run **after** others ([`ConsumerBuilder::after`]): pipelines
//!   and diamonds.
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
//! The memory layout (header, hot lines, consumer table, stamped slots) is the same on every
//! backend; `docs/architecture.md` in the repository describes it and the protocols.
#![deny(unsafe_op_in_unsafe_fn, missing_docs, missing_debug_implementations)]
#![warn(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

mod barrier;
mod consumer;
mod error;
mod group;
#[cfg(not(loom))]
mod hooks;
mod layout;
mod liveness;
mod producer;
mod producers;
mod ring;
mod sequence;
mod storage;
mod sync;
#[cfg(not(loom))]
mod topic;
mod typed;
mod wait;

pub use consumer::{
    Batch, BatchIter, Consumer, ConsumerBuilder, ConsumerInfo, ConsumerKind, Message, Msg, Start,
};
#[cfg(not(loom))]
pub use consumer::{HandlerOptions, HandlerThread};
pub use error::{Error, PublishError, RecvError};
pub use layout::{
    ProducerMode, MAX_CAPACITY, MAX_CONSUMERS, MAX_DEPENDENCIES, MAX_NAME_LEN, MAX_PRODUCERS, MAX_SLOT_SIZE,
    MIN_FIXED_SIZE, MIN_SLOT_SIZE, SLOT_HEADER,
};
pub use producer::{BatchClaim, Claim, Producer};
pub use ring::{Ring, RingBuilder};
pub use sequence::MAX_SEQUENCE;
#[cfg(not(loom))]
pub use storage::{shm_path, MAX_RING_NAME_LEN, SHM_DIR};
#[cfg(not(loom))]
pub use topic::{list_rings, prune_rings, RingFile, RingFileKind};
pub use typed::{TypedConsumer, TypedProducer};
pub use wait::WaitStrategy;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
