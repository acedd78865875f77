//! The responder: a worker of a service's group of responders that answers each request it
//! receives into the reply ring the request names.

use super::wire::{self, REPLY_HEADER, REPLY_REDELIVERED};
use super::{Service, RESPONDERS};
use crate::consumer::{Consumer, Received};
use crate::error::{RecvError, ServiceError};
use crate::producer::Producer;
use crate::ring::Ring;
use crate::wait::WaitStrategy;
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

/// How long a responder waits for room in a reply ring for a request without a deadline;
/// a request with one waits until its deadline (after which the requester drops the reply).
/// The wait ends sooner when the requester is found dead (its subscriber then no longer
/// holds the ring).
const REPLY_PATIENCE: Duration = Duration::from_secs(1);

/// How many reply rings a responder keeps open before it closes those whose requester went.
const ROUTES_KEPT: usize = 64;

/// How often an idle responder closes the reply rings whose requester went, so that their
/// files (which the requester's successors prune) are not held open by it.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Options for a new [`Responder`]; see [`Service::responder`].
#[derive(Debug)]
pub struct ResponderBuilder {
    service: Service,
    name: String,
    wait: WaitStrategy,
}

impl ResponderBuilder {
    pub(super) fn new(service: Service, name: &str) -> Self {
        ResponderBuilder {
            service,
            name: name.to_owned(),
            wait: WaitStrategy::Backoff,
        }
    }

    /// How the responder waits for requests and for room in reply rings (default
    /// [`WaitStrategy::Backoff`]; [`WaitStrategy::BusySpin`] for the lowest round trip).
    pub fn wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.wait = wait;
        self
    }

    /// Attaches the responder as worker `name` of the service's durable group
    /// [`RESPONDERS`] (made by the first responder). A responder attaching under the name of
    /// one that died takes its place and its unanswered requests, flagged redelivered.
    ///
    /// # Errors
    ///
    /// [`ServiceError::Attach`] as [`crate::WorkerBuilder::attach`] (a name taken by a live
    /// responder, a full consumer table, ...).
    pub fn attach(self) -> Result<Responder, ServiceError> {
        let worker = self
            .service
            .ring()
            .worker(RESPONDERS, &self.name)
            .durable(true)
            .wait_strategy(self.wait)
            .attach()?;
        Ok(Responder {
            worker,
            routes: Routes {
                service: self.service,
                last: None,
                open: HashMap::new(),
                swept: Instant::now(),
                wait: self.wait,
                counts: Counts::default(),
            },
            incoming: Vec::new(),
            outgoing: Vec::new(),
        })
    }
}

/// Answers requests of a [`Service`]: one worker of its group [`RESPONDERS`]. Made by
/// [`Service::responder`].
///
/// Each `respond` call takes one request, runs the handler on it and publishes what the
/// handler returns as the reply; the request is acknowledged after that, so a responder that
/// dies before it has replied has the request redelivered to another. When
/// [`Responder::respond_timeout`] or [`Responder::try_respond`] finds no request, the
/// responder closes the reply rings of requesters that went (at most once a second), so that
/// their files can be removed.
pub struct Responder {
    worker: Consumer,
    routes: Routes,
    /// A request larger than a slot, gathered from its slots.
    incoming: Vec<u8>,
    /// A reply larger than a slot, gathered before it is published.
    outgoing: Vec<u8>,
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("name", &self.worker.name())
            .field("reply_rings", &self.routes.len())
            .field("counts", &self.routes.counts)
            .finish()
    }
}

/// What a responder did with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Handled {
    /// The handler ran and its reply was published.
    Replied,
    /// The request's deadline had passed: the handler did not run.
    Expired,
    /// The message was not a request (a foreign producer, or garbage): passed over.
    Malformed,
    /// The handler ran, but its reply could not be delivered: the reply ring is gone (its
    /// requester went), stayed full until the request's deadline, or is too small for the
    /// reply.
    Undeliverable,
}

/// A request, as a responder's handler sees it.
#[derive(Debug)]
pub struct Request<'a> {
    id: u64,
    deadline_ns: u64,
    redelivered: bool,
    sequence: u64,
    reply_to: &'a str,
    payload: &'a [u8],
}

impl Request<'_> {
    /// The request's id: unique among its requester's requests (with [`Request::reply_to`],
    /// unique in the service), the key to make a handler idempotent.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The request's payload (gathered whole if it was larger than a slot).
    pub fn payload(&self) -> &[u8] {
        self.payload
    }

    /// Whether another responder held this request before (and stopped, perhaps after it
    /// did part of the work or even replied).
    pub fn redelivered(&self) -> bool {
        self.redelivered
    }

    /// The requester's reply address.
    pub fn reply_to(&self) -> &str {
        self.reply_to
    }

    /// The request's sequence in the service's ring (for a request larger than a slot, its
    /// last slot's, as [`crate::Whole::sequence`]).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The time left until the request's deadline (zero once it passed); `None` if it has
    /// none.
    pub fn time_left(&self) -> Option<Duration> {
        (self.deadline_ns != 0).then(|| wire::time_until(self.deadline_ns))
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    replied: u64,
    expired: u64,
    malformed: u64,
    undeliverable: u64,
}

/// A request's bytes as the responder received them: in their slot, or gathered from the
/// slots of a request larger than one.
#[derive(Clone, Copy)]
struct Incoming<'a> {
    bytes: &'a [u8],
    redelivered: bool,
    sequence: u64,
}

impl<'a> Incoming<'a> {
    fn of(message: &'a Received<'_>) -> Self {
        Incoming {
            bytes: message,
            redelivered: message.redelivered(),
            sequence: message.sequence(),
        }
    }
}

/// Publishes the reply to request `id` into a reply ring, waiting at most `patience` for
/// room: in place in one slot if it fits one, else gathered in `outgoing` and published as a
/// message larger than a slot (a copy more, and room for all of its slots at once).
#[inline]
fn publish_reply(
    producer: &mut Producer,
    outgoing: &mut Vec<u8>,
    id: u64,
    flags: u8,
    reply: &[u8],
    patience: Duration,
) -> Handled {
    let len = REPLY_HEADER + reply.len();
    let published = if len <= producer.max_message_len() {
        producer.claim_slot_timeout(patience).map(|mut claim| {
            let written = wire::write_reply(claim.payload_mut(), id, flags, reply);
            claim
                .set_len(written)
                .expect("a reply checked against the slot fits it");
            claim.publish();
        })
    } else if len <= producer.max_large_len() {
        outgoing.clear();
        outgoing.resize(len, 0);
        wire::write_reply(outgoing, id, flags, reply);
        producer.publish_large_timeout(outgoing, patience).map(drop)
    } else {
        return Handled::Undeliverable;
    };
    match published {
        Ok(()) => Handled::Replied,
        Err(_) => Handled::Undeliverable,
    }
}

/// A reply ring a responder has open, and its producer on it.
struct Route {
    address: String,
    ring: Ring,
    producer: Producer,
}

/// The reply rings a responder has open, by address.
struct Routes {
    service: Service,
    /// The route of the last reply, kept out of `open`: a run of requests from one requester
    /// finds it by one comparison of addresses, with no hashing.
    last: Option<Route>,
    /// The others.
    open: HashMap<String, (Ring, Producer)>,
    /// When the idle responder last closed the rings of requesters that went.
    swept: Instant,
    wait: WaitStrategy,
    counts: Counts,
}

impl Routes {
    /// Handles one received request: runs `handler` and delivers its reply (gathered in
    /// `outgoing` if it is larger than a slot).
    fn handle<F, R>(&mut self, message: Incoming<'_>, handler: F, outgoing: &mut Vec<u8>) -> Handled
    where
        F: FnOnce(&Request<'_>) -> R,
        R: AsRef<[u8]>,
    {
        let handled = self.run(message, handler, outgoing);
        let count = match handled {
            Handled::Replied => &mut self.counts.replied,
            Handled::Expired => &mut self.counts.expired,
            Handled::Malformed => &mut self.counts.malformed,
            Handled::Undeliverable => &mut self.counts.undeliverable,
        };
        *count += 1;
        handled
    }

    fn run<F, R>(&mut self, message: Incoming<'_>, handler: F, outgoing: &mut Vec<u8>) -> Handled
    where
        F: FnOnce(&Request<'_>) -> R,
        R: AsRef<[u8]>,
    {
        let Some((header, reply_to, payload)) = wire::parse_request(message.bytes) else {
            return Handled::Malformed;
        };
        let now = if header.deadline_ns != 0 {
            wire::monotonic_ns()
        } else {
            0
        };
        if header.deadline_ns != 0 && now >= header.deadline_ns {
            return Handled::Expired;
        }
        let request = Request {
            id: header.id,
            deadline_ns: header.deadline_ns,
            redelivered: message.redelivered,
            sequence: message.sequence,
            reply_to,
            payload,
        };
        let reply = handler(&request);
        let reply = reply.as_ref();
        let flags = if request.redelivered { REPLY_REDELIVERED } else { 0 };
        let Some(producer) = self.route(reply_to) else {
            return Handled::Undeliverable;
        };
        // A full reply ring is waited on until the request's deadline (as it was when the
        // handler started).
        let patience = match header.deadline_ns {
            0 => REPLY_PATIENCE,
            deadline => Duration::from_nanos(deadline.saturating_sub(now)),
        };
        publish_reply(producer, outgoing, header.id, flags, reply, patience)
    }

    /// The producer on the reply ring at `address`, opened on first use.
    fn route(&mut self, address: &str) -> Option<&mut Producer> {
        if self.last.as_ref().is_some_and(|route| route.address == address) {
            return self.last.as_mut().map(|route| &mut route.producer);
        }
        let route = match self.open.remove_entry(address) {
            Some((address, (ring, producer))) => Route {
                address,
                ring,
                producer,
            },
            None => {
                let ring = self.service.reply_ring(address)?;
                let producer = ring.producer_with(self.wait).ok()?;
                if self.len() >= ROUTES_KEPT {
                    self.close_gone();
                    if self.len() >= ROUTES_KEPT {
                        self.open.clear();
                    }
                }
                Route {
                    address: address.to_owned(),
                    ring,
                    producer,
                }
            }
        };
        if let Some(old) = self.last.replace(route) {
            self.open.insert(old.address, (old.ring, old.producer));
        }
        self.last.as_mut().map(|route| &mut route.producer)
    }

    /// How many reply rings are open.
    fn len(&self) -> usize {
        self.open.len() + usize::from(self.last.is_some())
    }

    /// Closes the reply rings whose requester is gone (no subscriber left once the dead are
    /// detached).
    fn close_gone(&mut self) {
        let gone = |ring: &Ring| {
            ring.reap_dead();
            ring.consumers().is_empty()
        };
        self.open.retain(|_, (ring, _)| !gone(ring));
        if self.last.as_ref().is_some_and(|route| gone(&route.ring)) {
            self.last = None;
        }
        self.swept = Instant::now();
    }

    /// While the responder is idle: [`Routes::close_gone`], at most every [`SWEEP_EVERY`].
    fn idle(&mut self) {
        if self.len() > 0 && self.swept.elapsed() >= SWEEP_EVERY {
            self.close_gone();
        }
    }
}

/// How a responder's receive waits for a request.
#[derive(Clone, Copy)]
enum Receive {
    Wait,
    Timeout(Duration),
    Now,
}

impl Receive {
    // Always inlined: an out-of-line call would return the message through memory, and
    // its first use would wait on that store.
    #[inline(always)]
    fn from(self, worker: &mut Consumer) -> Result<Received<'_>, RecvError> {
        match self {
            Receive::Wait => worker.recv(),
            Receive::Timeout(timeout) => worker.recv_timeout(timeout),
            Receive::Now => worker.try_recv(),
        }
    }
}

impl Responder {
    /// Takes one request (waiting by `how`) and answers it. A request that fits its slot is
    /// read in place; one larger than a slot (its first fragment found) is gathered into
    /// `incoming` and acknowledged, as the other is, only after its reply is published.
    #[inline]
    fn answer<F, R>(&mut self, how: Receive, handler: F) -> Result<Handled, RecvError>
    where
        F: FnOnce(&Request<'_>) -> R,
        R: AsRef<[u8]>,
    {
        match how.from(&mut self.worker) {
            Ok(message) if message.fragment().is_none() => {
                return Ok(self
                    .routes
                    .handle(Incoming::of(&message), handler, &mut self.outgoing));
            }
            Ok(first) => first.put_back(),
            Err(e) => {
                self.routes.idle();
                return Err(e);
            }
        }
        Ok(self.answer_large(handler))
    }

    /// [`Responder::answer`] of a request larger than a slot, put back at its first fragment.
    #[cold]
    #[inline(never)]
    fn answer_large<F, R>(&mut self, handler: F) -> Handled
    where
        F: FnOnce(&Request<'_>) -> R,
        R: AsRef<[u8]>,
    {
        let Ok(whole) = self.worker.try_recv_large_held(&mut self.incoming) else {
            // Pieces of a message whose rest never came (cut off by a claim taken over in
            // its middle, or garbage) were passed over, and nothing whole followed.
            self.routes.counts.malformed += 1;
            return Handled::Malformed;
        };
        let incoming = Incoming {
            bytes: &self.incoming,
            redelivered: whole.redelivered,
            sequence: whole.sequence,
        };
        let handled = self.routes.handle(incoming, handler, &mut self.outgoing);
        self.worker.release_through(whole.sequence);
        handled
    }

    /// The responder's name.
    pub fn name(&self) -> &str {
        self.worker.name()
    }

    /// Waits for a request, runs `handler` on it and publishes the bytes it returns as the
    /// reply (see [`Handled`] for what else can happen to one request).
    ///
    /// # Errors
    ///
    /// None in practice: a responder is never stopped; the type is the receive's.
    pub fn respond<F, R>(&mut self, handler: F) -> Result<Handled, RecvError>
    where
        F: FnOnce(&Request<'_>) -> R,
        R: AsRef<[u8]>,
    {
        self.answer(Receive::Wait, handler)
    }

    /// [`Responder::respond`], waiting at most `timeout` for a request.
    ///
    /// # Errors
    ///
    /// [`RecvError::Timeout`] if none came.
    pub fn respond_timeout<F, R>(&mut self, handler: F, timeout: Duration) -> Result<Handled, RecvError>
    where
        F: FnOnce(&Request<'_>) -> R,
        R: AsRef<[u8]>,
    {
        self.answer(Receive::Timeout(timeout), handler)
    }

    /// [`Responder::respond`] if a request is there now.
    ///
    /// # Errors
    ///
    /// [`RecvError::Empty`] if none is.
    pub fn try_respond<F, R>(&mut self, handler: F) -> Result<Handled, RecvError>
    where
        F: FnOnce(&Request<'_>) -> R,
        R: AsRef<[u8]>,
    {
        self.answer(Receive::Now, handler)
    }

    /// [`Responder::respond`], awaiting the request instead of blocking the thread (feature
    /// `async`). The reply is published as `respond` publishes it: a reply ring that is full
    /// (its requester has more replies unread than it sent requests, which only late and
    /// duplicate replies cause) is waited on in the thread, until the request's deadline.
    ///
    /// # Errors
    ///
    /// None in practice: a responder is never stopped; the type is the receive's.
    #[cfg(feature = "async")]
    pub async fn respond_async<F, R>(&mut self, handler: F) -> Result<Handled, RecvError>
    where
        F: FnOnce(&Request<'_>) -> R,
        R: AsRef<[u8]>,
    {
        self.worker.ready_async(None).await;
        self.try_respond(handler)
    }

    /// Requests answered ([`Handled::Replied`]).
    pub fn replied(&self) -> u64 {
        self.routes.counts.replied
    }

    /// Requests passed over because their deadline had passed ([`Handled::Expired`]).
    pub fn expired(&self) -> u64 {
        self.routes.counts.expired
    }

    /// Messages that were not requests ([`Handled::Malformed`]).
    pub fn malformed(&self) -> u64 {
        self.routes.counts.malformed
    }

    /// Replies that could not be delivered ([`Handled::Undeliverable`]).
    pub fn undeliverable(&self) -> u64 {
        self.routes.counts.undeliverable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{testing, Requester};

    /// A request from each of `requesters` in turn, each reply checked.
    fn round(responder: &mut Responder, requesters: &mut [Requester]) {
        for (i, requester) in requesters.iter_mut().enumerate() {
            let id = requester.try_send(&i.to_le_bytes(), Duration::MAX).unwrap();
            assert_eq!(
                responder.try_respond(|r| r.payload().to_vec()).unwrap(),
                Handled::Replied
            );
            let reply = requester.try_recv().unwrap();
            assert_eq!((reply.id(), reply.payload()), (id, &i.to_le_bytes()[..]));
        }
    }

    /// More requesters than a responder keeps routes for, in turn: every reply reaches its
    /// requester, the routes stay bounded, and those of requesters that went are closed.
    #[test]
    fn routes_follow_requesters_and_close_when_they_go() {
        let service = testing::service(16);
        let mut responder = testing::responder(&service);
        // More than a service ring's producer table holds at once would fail to build: the
        // requesters come and go in generations.
        for _ in 0..3 {
            let mut requesters: Vec<Requester> = (0..24).map(|_| testing::requester(&service, 4)).collect();
            round(&mut responder, &mut requesters);
            round(&mut responder, &mut requesters);
            assert!(responder.routes.len() <= ROUTES_KEPT);
        }
        assert!(
            responder.routes.len() > 1,
            "the routes of requesters that went are still open"
        );
        let mut last = vec![testing::requester(&service, 4)];
        round(&mut responder, &mut last);
        responder.routes.close_gone();
        assert_eq!(
            responder.routes.len(),
            1,
            "only the live requester's route is left"
        );
        round(&mut responder, &mut last);
    }
}
