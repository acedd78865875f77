//! Request-reply: requesters send requests to a [`Service`], a pool of [`Responder`]s
//! answers them, and each reply comes back to the requester that asked.
//!
//! A service is a multi-producer ring (on the heap, or a topic in a [`TopicDir`] for other
//! processes) read by one durable group of workers, [`RESPONDERS`]: each request reaches one
//! responder, and a request whose responder died or detached holding it is redelivered to
//! another (flagged, [`Request::redelivered`]). Each [`Requester`] has a reply ring of its
//! own (a heap ring registered with the service, or a topic next to the service's); a
//! request carries the reply ring's name and a correlation id, and the responder publishes
//! its reply there.
//!
//! - **Pipelining.** A requester may have as many requests in flight as its reply ring has
//!   slots ([`Requester::send`], then [`Requester::recv`]); [`Requester::call`] is one send
//!   and the wait for its reply.
//! - **Deadlines.** Every request has one (or none, `Duration::MAX`). A requester reports a
//!   request whose deadline passed unanswered as [`crate::RequestError::Expired`], once; a reply
//!   that comes after that is dropped and counted ([`Requester::late_replies`]); a responder
//!   passes over a request whose deadline already passed without running its handler.
//! - **At least once.** A responder acknowledges a request after its reply is published, so
//!   a responder killed between the two makes another answer again: the requester keeps the
//!   first reply of each id and counts the others ([`Requester::duplicate_replies`]). A
//!   handler with side effects makes them idempotent by the request's [`Request::id`] and
//!   reply address, or looks at [`Request::redelivered`].
//! - **No responder.** A send to a service whose group has no worker fails at once with
//!   [`crate::RequestError::NoResponders`]. A responder that died is counted until a waiting peer
//!   (or the requester, when one of its requests expires) notices its death.
//! - **Requesters that die** leave a reply ring nobody reads: it holds no one up (its
//!   subscriber is detached when its death is noticed, so responders' replies never wait on
//!   it) and the next requester of the service removes its file.

mod requester;
mod responder;
mod wire;

pub use requester::{Reply, Requester, RequesterBuilder};
pub use responder::{Handled, Request, Responder, ResponderBuilder};

use crate::dir::TopicDir;
use crate::error::ServiceError;
use crate::ring::{Ring, RingBuilder};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

/// The name of the group of responders in a service's ring.
pub const RESPONDERS: &str = "responders";

/// The subscriber's name in a reply ring.
const REPLY_SUBSCRIBER: &str = "requester";

/// The longest service name: a reply ring's name is the service's and a suffix, and both
/// are topic names (at most [`crate::limits::MAX_TOPIC_NAME_LEN`] bytes).
pub const MAX_SERVICE_NAME_LEN: usize = 150;

/// A request-reply service: its ring, and where its requesters' reply rings are.
///
/// `Clone` shares the service. Make one with [`Service::new`] (threads of one process) or
/// [`Service::create`], [`Service::open`], [`Service::open_or_create`] (processes), then
/// attach [`Responder`]s ([`Service::responder`]) and make [`Requester`]s
/// ([`Service::requester`]).
///
/// ```
/// use ringmq::request::Service;
/// use ringmq::Ring;
/// use std::time::Duration;
///
/// let service = Service::new(Ring::builder().capacity(256).slot_size(256))?;
/// let mut responder = service.responder("echo-1").attach()?;
/// let mut requester = service.requester().build()?;
///
/// let id = requester.send(b"ping", Duration::from_secs(1))?;
/// responder.respond(|request| [request.payload(), b" pong"].concat())?;
/// let reply = requester.recv()?;
/// assert_eq!((reply.id(), reply.payload()), (id, &b"ping pong"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    ring: Ring,
    replies: Replies,
}

/// Where reply rings live.
enum Replies {
    /// Heap rings, found by name in this registry.
    Heap(Mutex<HeapReplies>),
    /// Topics of this directory.
    Dir(TopicDir),
}

#[derive(Default)]
struct HeapReplies {
    rings: HashMap<String, Ring>,
    next: u64,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let replies = match &self.inner.replies {
            Replies::Heap(_) => "heap".to_owned(),
            Replies::Dir(dir) => dir.dir().display().to_string(),
        };
        f.debug_struct("Service")
            .field("name", &self.inner.name)
            .field("replies", &replies)
            .finish()
    }
}

/// A service's ring takes requests from many requesters (a fixed-size ring cannot, and
/// fails to build).
fn service_builder(builder: RingBuilder) -> RingBuilder {
    builder.multi_producer()
}

fn check_name(name: &str) -> Result<(), ServiceError> {
    if name.len() > MAX_SERVICE_NAME_LEN {
        return Err(ServiceError::InvalidName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

impl Service {
    /// A service for the threads of this process: its ring on the heap, as `builder`
    /// describes it (made multi-producer), and its requesters' reply rings on the heap.
    ///
    /// # Errors
    ///
    /// [`ServiceError::Build`] for the ring's parameters (a fixed-size ring among them).
    pub fn new(builder: RingBuilder) -> Result<Service, ServiceError> {
        let ring = service_builder(builder).build()?;
        Ok(Service::with(
            "service",
            ring,
            Replies::Heap(Mutex::new(HeapReplies::default())),
        ))
    }

    /// Creates the service `name` as a topic of `topics` (its ring made multi-producer),
    /// for every process that opens it; its requesters' reply rings are topics beside it.
    ///
    /// # Errors
    ///
    /// [`ServiceError::InvalidName`] (longer than [`MAX_SERVICE_NAME_LEN`]),
    /// [`ServiceError::Open`] as [`TopicDir::create`] (a fixed-size ring among them).
    pub fn create(topics: &TopicDir, name: &str, builder: RingBuilder) -> Result<Service, ServiceError> {
        check_name(name)?;
        let ring = topics.create(name, service_builder(builder))?;
        Ok(Service::with(name, ring, Replies::Dir(topics.clone())))
    }

    /// Opens the service `name` in `topics`.
    ///
    /// # Errors
    ///
    /// [`ServiceError::InvalidName`], [`ServiceError::Open`] as [`TopicDir::open`],
    /// [`ServiceError::NotAServiceRing`] if the topic is a fixed-size or single-producer ring.
    pub fn open(topics: &TopicDir, name: &str) -> Result<Service, ServiceError> {
        check_name(name)?;
        let ring = topics.open(name)?;
        Service::checked(name, ring, topics)
    }

    /// Opens the service `name` in `topics` if it exists with `builder`'s parameters, or
    /// creates it.
    ///
    /// # Errors
    ///
    /// As [`Service::create`] and [`Service::open`] (a ring of other parameters:
    /// [`ServiceError::Open`] with [`crate::OpenError::ParamsMismatch`]).
    pub fn open_or_create(
        topics: &TopicDir,
        name: &str,
        builder: RingBuilder,
    ) -> Result<Service, ServiceError> {
        check_name(name)?;
        let ring = topics.open_or_create(name, service_builder(builder))?;
        Service::checked(name, ring, topics)
    }

    fn checked(name: &str, ring: Ring, topics: &TopicDir) -> Result<Service, ServiceError> {
        if ring.producer_mode() != crate::ProducerMode::Multi || ring.fixed_size().is_some() {
            return Err(ServiceError::NotAServiceRing);
        }
        Ok(Service::with(name, ring, Replies::Dir(topics.clone())))
    }

    fn with(name: &str, ring: Ring, replies: Replies) -> Service {
        Service {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                ring,
                replies,
            }),
        }
    }

    /// The service's name (its topic's, or `"service"` on the heap).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The service's ring, where requests wait for a responder (`ringmq stat` shows its
    /// group, [`RESPONDERS`]).
    pub fn ring(&self) -> &Ring {
        &self.inner.ring
    }

    /// Starts making a requester, with its own reply ring.
    pub fn requester(&self) -> RequesterBuilder {
        RequesterBuilder::new(self.clone())
    }

    /// Starts attaching responder `name` (a worker of the group [`RESPONDERS`]).
    pub fn responder(&self, name: &str) -> ResponderBuilder {
        ResponderBuilder::new(self.clone(), name)
    }

    /// How many responders are attached (dead ones included until their death is noticed).
    pub fn responders(&self) -> usize {
        let shared = &self.inner.ring.shared;
        match crate::table::find(shared, RESPONDERS) {
            Some((entry, crate::layout::table::KIND_GROUP)) => {
                let (_, members, _) = crate::table::state(shared, entry.index);
                members as usize
            }
            _ => 0,
        }
    }

    /// Makes a reply ring as `builder` says; returns its address (the name requests carry).
    fn create_reply_ring(&self, builder: RingBuilder) -> Result<(String, Ring), ServiceError> {
        match &self.inner.replies {
            Replies::Heap(registry) => {
                let ring = builder.build()?;
                let mut registry = lock(registry);
                registry.next += 1;
                let address = format!("reply.{}", registry.next);
                registry.rings.insert(address.clone(), ring.clone());
                Ok((address, ring))
            }
            Replies::Dir(topics) => {
                // Reply rings of requesters that died, which no process has open.
                let _ = topics.prune_prefix(&self.reply_prefix());
                let address = format!("{}{}", self.reply_prefix(), unique_suffix());
                let ring = topics.create(&address, builder)?;
                Ok((address, ring))
            }
        }
    }

    /// The reply ring at `address` (a [`Requester::address`]), if it is one of this
    /// service's: what a responder publishes a reply into. A topic that is not named as this
    /// service's reply rings are is never one, whatever a request says.
    pub fn reply_ring(&self, address: &str) -> Option<Ring> {
        match &self.inner.replies {
            Replies::Heap(registry) => lock(registry).rings.get(address).cloned(),
            Replies::Dir(topics) => {
                // Only a reply ring of this service: a request cannot name another topic.
                address.strip_prefix(&self.reply_prefix())?;
                topics.open(address).ok()
            }
        }
    }

    /// Removes the reply ring at `address` (its requester is done with it).
    fn remove_reply_ring(&self, address: &str) {
        match &self.inner.replies {
            Replies::Heap(registry) => {
                lock(registry).rings.remove(address);
            }
            Replies::Dir(topics) => {
                let _ = topics.remove(address);
            }
        }
    }

    fn reply_prefix(&self) -> String {
        format!("{}.reply.", self.inner.name)
    }
}

/// The registry's lock; a thread that panicked holding it left the map consistent (every
/// update is one insert or remove).
fn lock(registry: &Mutex<HeapReplies>) -> std::sync::MutexGuard<'_, HeapReplies> {
    registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A suffix no other reply ring has: this process's id, a counter, and the clock (a process
/// with the same id later, after this one died, has another clock).
fn unique_suffix() -> String {
    static NEXT: Mutex<u64> = Mutex::new(0);
    let n = {
        let mut next = NEXT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *next += 1;
        *next
    };
    format!("{}.{}.{:x}", std::process::id(), n, wire::monotonic_ns())
}

/// What the request module's unit tests share: a heap service and both sides on it,
/// busy-spinning (so one thread can play both with `try_` calls).
#[cfg(test)]
pub(crate) mod testing {
    use super::{Requester, Responder, Service};
    use crate::ring::Ring;
    use crate::wait::WaitStrategy;

    /// A heap service of `capacity` slots of 128 bytes, without wake-ups.
    pub(crate) fn service(capacity: u64) -> Service {
        Service::new(Ring::builder().capacity(capacity).slot_size(128).wakeups(false)).unwrap()
    }

    /// A busy-spinning responder of `service`.
    pub(crate) fn responder(service: &Service) -> Responder {
        let spin = WaitStrategy::BusySpin;
        service.responder("echo").wait_strategy(spin).attach().unwrap()
    }

    /// A busy-spinning requester of `service`, its reply ring `reply_capacity` slots.
    pub(crate) fn requester(service: &Service, reply_capacity: u64) -> Requester {
        service
            .requester()
            .reply_capacity(reply_capacity)
            .wait_strategy(WaitStrategy::BusySpin)
            .build()
            .unwrap()
    }
}
