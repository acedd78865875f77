//! The requester: sends requests into a service's ring and reads the replies from its own
//! reply ring, matching them to its requests by id.

use super::wire::{self, RequestHeader, REPLY_HEADER, REPLY_REDELIVERED, REQUEST_HEADER};
use super::{Service, REPLY_SUBSCRIBER, RESPONDERS};
use crate::consumer::{Consumer, Start};
use crate::error::{PublishError, RequestError, ServiceError};
use crate::layout::table::{E_MEMBERS, KIND_GROUP, STATE_ACTIVE};
use crate::limits::SLOT_HEADER;
use crate::producer::Producer;
use crate::ring::Ring;
use crate::table::{self, EntryRef};
use crate::wait::WaitStrategy;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::time::Duration;

/// Options for a new [`Requester`]; see [`Service::requester`].
#[derive(Debug)]
pub struct RequesterBuilder {
    service: Service,
    capacity: u64,
    window: Option<usize>,
    /// The longest reply the reply ring is sized for, if sized by `window_for_replies`.
    max_reply: Option<usize>,
    slot_size: Option<usize>,
    wait: WaitStrategy,
}

impl RequesterBuilder {
    pub(super) fn new(service: Service) -> Self {
        RequesterBuilder {
            service,
            capacity: 256,
            window: None,
            max_reply: None,
            slot_size: None,
            wait: WaitStrategy::Backoff,
        }
    }

    /// Slots of the reply ring (a power of two, default 256), and the window's default.
    pub fn reply_capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// The most requests in flight at once (default: the reply ring's capacity, which is
    /// also the most). The reply ring must hold the replies of every request in flight, or
    /// a responder waits for room in it, perhaps while this requester waits for room in the
    /// service's ring that the responder would make: for replies larger than a slot, of up
    /// to `k` slots each, make the window at most the capacity over `k`.
    pub fn window(mut self, window: usize) -> Self {
        self.window = Some(window);
        self.max_reply = None;
        self
    }

    /// A window of `window` requests whose replies carry up to `max_reply` bytes each, and
    /// a reply ring that holds all of them: its capacity the power of two at or above
    /// `window` times the slots such a reply takes (replacing
    /// [`RequesterBuilder::reply_capacity`]).
    pub fn window_for_replies(mut self, window: usize, max_reply: usize) -> Self {
        self.window = Some(window);
        self.max_reply = Some(max_reply);
        self
    }

    /// Bytes per slot of the reply ring (default: the service ring's): a reply's payload
    /// can be this less 24 bytes (the slot's and the reply's headers).
    pub fn reply_slot_size(mut self, slot_size: usize) -> Self {
        self.slot_size = Some(slot_size);
        self
    }

    /// How the requester waits for room in the service's ring and for replies (default
    /// [`WaitStrategy::Backoff`]; [`WaitStrategy::BusySpin`] for the lowest round trip).
    pub fn wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.wait = wait;
        self
    }

    /// Makes the requester: its reply ring (for a service in a directory, a topic beside
    /// the service's, `<service>.reply.<pid>.<n>.<clock>`), its subscriber, and its
    /// producer on the service's ring. Reply rings of requesters that died are removed
    /// first.
    ///
    /// # Errors
    ///
    /// [`ServiceError::Build`] or [`ServiceError::Open`] for the reply ring (a capacity that
    /// is not a power of two, a full disk), [`ServiceError::InvalidWindow`],
    /// [`ServiceError::Attach`] if the service's ring has [`crate::limits::MAX_PRODUCERS`]
    /// producers already.
    pub fn build(self) -> Result<Requester, ServiceError> {
        let service = self.service;
        let slot_size = self.slot_size.unwrap_or_else(|| service.ring().slot_size());
        let capacity = match (self.window, self.max_reply) {
            // Too many to be a capacity: the reply ring's build says so.
            (Some(window), Some(max_reply)) => (window as u64)
                .saturating_mul(reply_slots(max_reply, slot_size))
                .checked_next_power_of_two()
                .unwrap_or(u64::MAX),
            _ => self.capacity,
        };
        // A capacity that is not one is the reply ring's build error.
        let capacity_slots = usize::try_from(capacity).unwrap_or(usize::MAX);
        if let Some(window) = self.window.filter(|&w| w == 0 || w > capacity_slots) {
            return Err(ServiceError::InvalidWindow { window, capacity });
        }
        let window = self.window.unwrap_or(capacity_slots);
        let builder = Ring::builder()
            .capacity(capacity)
            .slot_size(slot_size)
            .multi_producer();
        let (address, reply_ring) = service.create_reply_ring(builder)?;
        // From here on, dropping `cleanup` removes the reply ring again.
        let cleanup = Cleanup {
            service: service.clone(),
            address,
        };
        let replies = reply_ring
            .subscriber(REPLY_SUBSCRIBER)
            .start(Start::Earliest)
            .wait_strategy(self.wait)
            .attach()?;
        let producer = service.ring().producer_with(self.wait)?;
        let overhead = REQUEST_HEADER + cleanup.address.len();
        let max_payload = producer.max_large_len().saturating_sub(overhead);
        let max_slot_payload = producer.max_message_len().saturating_sub(overhead);
        Ok(Requester {
            producer,
            replies,
            book: Book {
                window: vec![InFlight::default(); window],
                in_flight: 0,
                deadlines: BinaryHeap::new(),
                expired: vec![0; window],
                stash: VecDeque::new(),
                buf: Vec::new(),
                incoming: Vec::new(),
                late: 0,
                duplicates: 0,
                malformed: 0,
            },
            next_id: 1,
            max_payload,
            max_slot_payload,
            outgoing: Vec::new(),
            group: None,
            cleanup,
        })
    }
}

/// Removes a requester's reply ring when the requester goes (after its handles on the ring:
/// it is the requester's last field).
struct Cleanup {
    service: Service,
    address: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.service.remove_reply_ring(&self.address);
    }
}

/// Sends requests to a [`Service`] and receives their replies; see the [module
/// docs](super). Made by [`Service::requester`].
///
/// Every request gets an id (growing from 1; an id whose place in the window an older
/// request still holds is passed over) and ends exactly once: in a [`Reply`] from
/// [`Requester::recv`] (or [`Requester::call`]), or in [`RequestError::Expired`] when its
/// deadline passes unanswered.
pub struct Requester {
    producer: Producer,
    replies: Consumer,
    book: Book,
    next_id: u64,
    max_payload: usize,
    max_slot_payload: usize,
    /// A request larger than a slot, gathered before it is published.
    outgoing: Vec<u8>,
    /// The service's group of responders, once seen.
    group: Option<EntryRef>,
    cleanup: Cleanup,
}

impl fmt::Debug for Requester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Requester")
            .field("address", &self.cleanup.address)
            .field("in_flight", &self.book.in_flight)
            .field("next_id", &self.next_id)
            .finish()
    }
}

/// One request in flight: its id (0: none) and deadline (0: none).
#[derive(Clone, Copy, Debug, Default)]
struct InFlight {
    id: u64,
    deadline_ns: u64,
}

/// The window slot of request `id`.
fn slot_of(window: &[InFlight], id: u64) -> usize {
    (id % window.len() as u64) as usize
}

/// Whether `deadline` is that of request `id`, still in flight in `window`.
fn is_pending(window: &[InFlight], deadline: u64, id: u64) -> bool {
    let entry = window[slot_of(window, id)];
    entry.id == id && entry.deadline_ns == deadline
}

/// How one request ended, in the order the requester saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Reply { id: u64, flags: u8 },
    Expired { id: u64 },
}

/// A requester's bookkeeping: what is in flight, which deadlines come first, what ended.
struct Book {
    /// Request `id` in slot `id % len` (a new request takes the next id whose slot is free).
    window: Vec<InFlight>,
    in_flight: usize,
    /// Deadlines of requests that had one, earliest first; entries of requests that ended
    /// are passed over when they come up, or dropped when there are twice as many entries as
    /// window slots (replies that come before any receive reads a deadline leave theirs).
    deadlines: BinaryHeap<Reverse<(u64, u64)>>,
    /// The id that expired last in each window slot, to tell a late reply from a duplicate.
    expired: Vec<u64>,
    /// Outcomes a `call` read while waiting for its own, with their payloads.
    stash: VecDeque<(Outcome, Vec<u8>)>,
    /// The payload of the reply handed out last.
    buf: Vec<u8>,
    /// A reply larger than a slot, gathered from its slots.
    incoming: Vec<u8>,
    late: u64,
    duplicates: u64,
    malformed: u64,
}

impl Book {
    fn slot(&self, id: u64) -> usize {
        slot_of(&self.window, id)
    }

    /// Takes a message of the reply ring: the outcome of one of our requests (its payload
    /// copied to `buf`), or `None` for a late, duplicate or malformed reply (counted).
    fn accept(&mut self, message: &[u8]) -> Option<Outcome> {
        let Some((id, flags, payload)) = wire::parse_reply(message) else {
            self.malformed += 1;
            return None;
        };
        let slot = self.slot(id);
        if self.window[slot].id != id {
            if self.expired[slot] == id {
                self.late += 1;
            } else {
                self.duplicates += 1;
            }
            return None;
        }
        self.window[slot] = InFlight::default();
        self.in_flight -= 1;
        self.buf.clear();
        self.buf.extend_from_slice(payload);
        Some(Outcome::Reply { id, flags })
    }

    /// Notes the deadline of request `id`, just sent. Keeps the heap at most twice the window
    /// (plus one): a heap of only pending entries holds at most the window.
    fn add_deadline(&mut self, deadline: u64, id: u64) {
        if self.deadlines.len() >= 2 * self.window.len() {
            let window = &self.window;
            self.deadlines
                .retain(|&Reverse((deadline, id))| is_pending(window, deadline, id));
        }
        self.deadlines.push(Reverse((deadline, id)));
    }

    /// The earliest deadline of a request still in flight.
    fn next_deadline(&mut self) -> Option<u64> {
        while let Some(&Reverse((deadline, id))) = self.deadlines.peek() {
            if is_pending(&self.window, deadline, id) {
                return Some(deadline);
            }
            self.deadlines.pop();
        }
        None
    }

    /// Ends the request whose deadline came first, if that deadline is at or before `now`.
    fn expire(&mut self, now: u64) -> Option<Outcome> {
        let deadline = self.next_deadline()?;
        if deadline > now {
            return None;
        }
        let Reverse((_, id)) = self.deadlines.pop()?;
        let slot = self.slot(id);
        self.window[slot] = InFlight::default();
        self.expired[slot] = id;
        self.in_flight -= 1;
        Some(Outcome::Expired { id })
    }
}

/// A reply: the payload a responder sent for request [`Reply::id`]. Borrows the requester
/// until it drops.
#[derive(Debug)]
pub struct Reply<'a> {
    id: u64,
    redelivered: bool,
    payload: &'a [u8],
}

impl Reply<'_> {
    /// The id of the request it answers (what [`Requester::send`] returned).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the request had been redelivered before this responder answered it (the
    /// first responder to hold it stopped, perhaps after doing part of the work).
    pub fn redelivered(&self) -> bool {
        self.redelivered
    }

    /// The reply's payload.
    pub fn payload(&self) -> &[u8] {
        self.payload
    }
}

impl std::ops::Deref for Reply<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.payload
    }
}

/// How many times a receive looks for a reply before it reads the clock.
const QUICK_TRIES: u32 = 64;

/// How long a receive may wait.
#[derive(Clone, Copy)]
enum Until {
    Now,
    /// A CLOCK_MONOTONIC deadline in nanoseconds, or for ever.
    Deadline(Option<u64>),
}

impl Until {
    fn after(timeout: Duration) -> Until {
        Until::Deadline(deadline_ns(timeout))
    }
}

/// The `Instant` of a CLOCK_MONOTONIC deadline in nanoseconds.
#[cfg(feature = "async")]
fn instant_of(deadline_ns: u64) -> std::time::Instant {
    let left = wire::time_until(deadline_ns);
    let now = std::time::Instant::now();
    now.checked_add(left).unwrap_or(now)
}

/// The slots of a reply ring of `slot_size`-byte slots that a reply of `len` payload bytes
/// takes: its header and payload, cut into slots' payloads.
fn reply_slots(len: usize, slot_size: usize) -> u64 {
    let per_slot = slot_size.saturating_sub(SLOT_HEADER).max(1);
    (REPLY_HEADER.saturating_add(len)).div_ceil(per_slot) as u64
}

/// The request error of a failed publish into the service's ring.
fn request_error(e: PublishError) -> RequestError {
    match e {
        PublishError::Full => RequestError::Full,
        PublishError::Timeout => RequestError::Timeout,
        e => RequestError::Publish(e),
    }
}

/// The deadline `timeout` from now, or `None` for a timeout too long to be one.
fn deadline_ns(timeout: Duration) -> Option<u64> {
    let ns = u64::try_from(timeout.as_nanos()).ok()?;
    wire::monotonic_ns().checked_add(ns)
}

impl Requester {
    /// The reply ring's address: its topic name (or its name in a heap service's registry).
    pub fn address(&self) -> &str {
        &self.cleanup.address
    }

    /// The longest payload a request from this requester can carry: the service's whole
    /// ring of slots (as [`crate::Producer::max_large_len`]) less the request's header and
    /// the reply address. A request that does not fit one slot
    /// ([`Requester::max_slot_payload`]) is published as a message larger than a slot: it
    /// is copied once more on each side, and waits for room for all of its slots at once.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// The longest payload a request can carry in one slot of the service's ring, written
    /// in place: a slot less the request's header and the reply address.
    pub fn max_slot_payload(&self) -> usize {
        self.max_slot_payload
    }

    /// How many requests are in flight (sent, neither answered nor expired).
    pub fn in_flight(&self) -> usize {
        self.book.in_flight
    }

    /// Replies that came after their request had expired, dropped.
    pub fn late_replies(&self) -> u64 {
        self.book.late
    }

    /// Second and later replies to one request (a redelivered request answered again),
    /// dropped.
    pub fn duplicate_replies(&self) -> u64 {
        self.book.duplicates
    }

    /// Messages in the reply ring that were not replies, passed over.
    pub fn malformed_replies(&self) -> u64 {
        self.book.malformed
    }

    /// Sends `payload` as a request that expires `timeout` from now (`Duration::MAX`: never),
    /// waiting up to that deadline for room in the service's ring. Returns its id.
    ///
    /// # Errors
    ///
    /// [`RequestError::NoResponders`], [`RequestError::TooLarge`],
    /// [`RequestError::WindowFull`], [`RequestError::Timeout`] (the ring stayed full until
    /// the deadline), [`RequestError::Publish`] ([`PublishError::Exhausted`] or
    /// [`PublishError::Abandoned`]).
    pub fn send(&mut self, payload: &[u8], timeout: Duration) -> Result<u64, RequestError> {
        self.send_until(payload, timeout, false)
    }

    /// Sends `payload` as [`Requester::send`] does if the service's ring has room now.
    ///
    /// # Errors
    ///
    /// As [`Requester::send`], with [`RequestError::Full`] instead of waiting.
    pub fn try_send(&mut self, payload: &[u8], timeout: Duration) -> Result<u64, RequestError> {
        self.send_until(payload, timeout, true)
    }

    fn send_until(&mut self, payload: &[u8], timeout: Duration, now: bool) -> Result<u64, RequestError> {
        self.send_at(payload, deadline_ns(timeout), now)
    }

    /// Sends a request that expires at `deadline` (CLOCK_MONOTONIC ns), waiting for room
    /// until then unless `now`.
    fn send_at(&mut self, payload: &[u8], deadline: Option<u64>, now: bool) -> Result<u64, RequestError> {
        if self.book.in_flight == self.book.window.len() {
            return Err(RequestError::WindowFull {
                window: self.book.window.len(),
            });
        }
        // The next id whose window slot is free: ids grow, but skip those whose slot an
        // older request still holds (one that waits on a slow or dead responder).
        let mut id = self.next_id;
        while self.book.window[self.book.slot(id)].id != 0 {
            id += 1;
        }
        let slot = self.book.slot(id);
        if payload.len() > self.max_payload {
            return Err(RequestError::TooLarge {
                len: payload.len(),
                max: self.max_payload,
            });
        }
        if !self.responders_present() {
            return Err(RequestError::NoResponders);
        }
        let header = RequestHeader {
            id,
            deadline_ns: deadline.unwrap_or(0),
        };
        if payload.len() > self.max_slot_payload {
            self.send_large(header, payload, now)?;
        } else {
            self.send_in_place(header, payload, now)?;
        }
        self.book.window[slot] = InFlight {
            id,
            deadline_ns: header.deadline_ns,
        };
        self.book.in_flight += 1;
        if let Some(deadline) = deadline {
            self.book.add_deadline(deadline, id);
        }
        self.next_id = id + 1;
        Ok(id)
    }

    /// Publishes a request that fits a slot, written in place in its claim.
    #[inline(always)]
    fn send_in_place(
        &mut self,
        header: RequestHeader,
        payload: &[u8],
        now: bool,
    ) -> Result<(), RequestError> {
        // The clock is read only if the ring is full.
        let first = self.producer.try_claim_slot();
        let claim = if !now && matches!(first, Err(PublishError::Full)) {
            drop(first);
            match header.deadline() {
                Some(d) => self.producer.claim_slot_timeout(wire::time_until(d)),
                None => self.producer.claim_slot(),
            }
        } else {
            first
        };
        let mut claim = claim.map_err(request_error)?;
        let len = wire::write_request(claim.payload_mut(), header, &self.cleanup.address, payload);
        claim
            .set_len(len)
            .expect("a request no longer than max_slot_payload fits the slot");
        claim.publish();
        Ok(())
    }

    /// Publishes a request larger than a slot: gathered in `outgoing`, then published as
    /// one message of consecutive slots, once there is room for all of them.
    #[cold]
    fn send_large(&mut self, header: RequestHeader, payload: &[u8], now: bool) -> Result<(), RequestError> {
        let len = REQUEST_HEADER + self.cleanup.address.len() + payload.len();
        self.outgoing.clear();
        self.outgoing.resize(len, 0);
        wire::write_request(&mut self.outgoing, header, &self.cleanup.address, payload);
        let published = match (now, header.deadline()) {
            (true, _) => self.producer.try_publish_large(&self.outgoing),
            (false, None) => self.producer.publish_large(&self.outgoing),
            (false, Some(d)) => self
                .producer
                .publish_large_timeout(&self.outgoing, wire::time_until(d)),
        };
        published.map(drop).map_err(request_error)
    }

    /// Whether the service's group has a worker. Once the group is found, one load of its
    /// members mask, a word only joins and leaves write (its state word shares a line with
    /// the claim counter every request moves); the full check only when the mask is empty.
    fn responders_present(&mut self) -> bool {
        let shared = &self.cleanup.service.ring().shared;
        if let Some(group) = self.group {
            // Acquire: pairs with the AcqRel updates in `group::set_member`.
            if shared.entry_word(group.index, E_MEMBERS).load_acquire() & shared.layout.valid_mask() != 0 {
                return true;
            }
            let (state, members, generation) = table::state(shared, group.index);
            if state == STATE_ACTIVE && generation == group.generation {
                return members > 0;
            }
            self.group = None;
        }
        match table::find(shared, RESPONDERS) {
            Some((entry, KIND_GROUP)) => {
                self.group = Some(entry);
                table::state(shared, entry.index).1 > 0
            }
            _ => false,
        }
    }

    /// Waits for the next request to end: its reply, or [`RequestError::Expired`] when the
    /// earliest deadline of those in flight passes first.
    ///
    /// # Errors
    ///
    /// [`RequestError::Expired`] (once per request), [`RequestError::Timeout`] never (this
    /// waits as long as it takes; with nothing in flight and no deadline, for ever).
    pub fn recv(&mut self) -> Result<Reply<'_>, RequestError> {
        let outcome = self.next_outcome(Until::Deadline(None))?;
        self.hand_out(outcome)
    }

    /// [`Requester::recv`] waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RequestError::Expired`], [`RequestError::Timeout`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Reply<'_>, RequestError> {
        let outcome = self.next_outcome(Until::after(timeout))?;
        self.hand_out(outcome)
    }

    /// [`Requester::recv`] if a reply or an expiry is there now.
    ///
    /// # Errors
    ///
    /// [`RequestError::Expired`], [`RequestError::Empty`].
    pub fn try_recv(&mut self) -> Result<Reply<'_>, RequestError> {
        let outcome = self.next_outcome(Until::Now)?;
        self.hand_out(outcome)
    }

    /// Sends `payload` and waits for its reply, for at most `timeout` in all (the request's
    /// deadline). Replies to other requests in flight that come meanwhile are kept for
    /// [`Requester::recv`], in order.
    ///
    /// # Errors
    ///
    /// As [`Requester::send`]; [`RequestError::Expired`] with this request's id if no reply
    /// came in time.
    pub fn call(&mut self, payload: &[u8], timeout: Duration) -> Result<Reply<'_>, RequestError> {
        let id = self.send(payload, timeout)?;
        loop {
            match self.wait_outcome(Until::Deadline(None))? {
                outcome @ Outcome::Reply { id: got, .. } if got == id => return self.hand_out(outcome),
                Outcome::Expired { id: got } if got == id => return Err(RequestError::Expired { id }),
                other => self.stash(other),
            }
        }
    }

    /// Keeps an outcome that is not the one a `call` waits for, for `recv`.
    fn stash(&mut self, other: Outcome) {
        let payload = match other {
            Outcome::Reply { .. } => self.book.buf.clone(),
            Outcome::Expired { .. } => Vec::new(),
        };
        self.book.stash.push_back((other, payload));
    }

    /// [`Requester::send`], awaiting room in the service's ring instead of blocking the
    /// thread (feature `async`).
    ///
    /// # Errors
    ///
    /// As [`Requester::send`].
    #[cfg(feature = "async")]
    pub async fn send_async(&mut self, payload: &[u8], timeout: Duration) -> Result<u64, RequestError> {
        let deadline = deadline_ns(timeout);
        match self.send_at(payload, deadline, true) {
            Err(RequestError::Full) => {}
            done => return done,
        }
        let mut awaiting = crate::await_event::Awaiting::new(
            &self.cleanup.service.ring().shared,
            crate::await_event::Which::Released,
        );
        std::future::poll_fn(|cx| {
            awaiting.poll(cx, deadline.map(instant_of), || {
                match self.send_at(payload, deadline, true) {
                    Err(RequestError::Full) => None,
                    done => Some(done),
                }
            })
        })
        .await
        .unwrap_or(Err(RequestError::Timeout))
    }

    /// [`Requester::call`], awaited (feature `async`): the reply, or this request's
    /// deadline, wakes the task; no thread blocks and nothing polls meanwhile.
    ///
    /// # Errors
    ///
    /// As [`Requester::call`].
    #[cfg(feature = "async")]
    pub async fn call_async(&mut self, payload: &[u8], timeout: Duration) -> Result<Reply<'_>, RequestError> {
        let id = self.send_async(payload, timeout).await?;
        let outcome = loop {
            match self.wait_outcome(Until::Now) {
                Ok(outcome @ Outcome::Reply { id: got, .. }) if got == id => break outcome,
                Ok(Outcome::Expired { id: got }) if got == id => return Err(RequestError::Expired { id }),
                Ok(other) => self.stash(other),
                Err(RequestError::Empty) => {
                    let deadline = self.book.next_deadline().map(instant_of);
                    self.replies.ready_async(deadline).await;
                }
                Err(e) => return Err(e),
            }
        };
        self.hand_out(outcome)
    }

    /// The reply (or error) an outcome is, its payload in the book's buffer.
    fn hand_out(&mut self, outcome: Outcome) -> Result<Reply<'_>, RequestError> {
        match outcome {
            Outcome::Reply { id, flags } => Ok(Reply {
                id,
                redelivered: flags & REPLY_REDELIVERED != 0,
                payload: &self.book.buf,
            }),
            Outcome::Expired { id } => Err(RequestError::Expired { id }),
        }
    }

    /// The next outcome: a stashed one first.
    fn next_outcome(&mut self, until: Until) -> Result<Outcome, RequestError> {
        if let Some((outcome, payload)) = self.book.stash.pop_front() {
            self.book.buf = payload;
            return Ok(outcome);
        }
        self.wait_outcome(until)
    }

    /// Reads the reply ring until one of our requests ends, or `until` passes.
    fn wait_outcome(&mut self, until: Until) -> Result<Outcome, RequestError> {
        let mut tries = 0;
        loop {
            // A reply already there wins over a deadline that passed meanwhile.
            if let Some(taken) = self.take_reply() {
                if let Some(outcome) = taken {
                    return Ok(outcome);
                }
                continue;
            }
            // A reply within a round trip comes before the clock is read: the deadlines and
            // the timed wait below each read it.
            if tries < QUICK_TRIES && !matches!(until, Until::Now) {
                tries += 1;
                crate::sync::spin_loop();
                continue;
            }
            let now = if matches!(until, Until::Deadline(None)) && self.book.next_deadline().is_none() {
                0
            } else {
                wire::monotonic_ns()
            };
            if let Some(expired) = self.book.expire(now) {
                // A responder that died may be why: let the next send see it gone.
                self.cleanup.service.ring().reap_dead();
                return Ok(expired);
            }
            let limit = match until {
                Until::Now => return Err(RequestError::Empty),
                Until::Deadline(limit) => limit,
            };
            if limit.is_some_and(|l| l <= now) {
                return Err(RequestError::Timeout);
            }
            let wake = match (limit, self.book.next_deadline()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let received = match wake {
                Some(at) => self.replies.recv_timeout(Duration::from_nanos(at - now)),
                None => self.replies.recv(),
            };
            // On a timeout the loop looks at the deadlines again.
            if let Ok(message) = received {
                if message.fragment().is_some() {
                    // Read whole by the next look.
                    message.put_back();
                } else if let Some(outcome) = self.book.accept(&message) {
                    return Ok(outcome);
                }
            }
        }
    }

    /// Takes the next message of the reply ring if there is one now: `Some` of the outcome
    /// it is, or `Some(None)` for a message that was not one of ours (counted). A reply
    /// larger than a slot (its first fragment found) is gathered whole first. (A
    /// subscriber's receives fail only with `Empty`.)
    #[inline]
    fn take_reply(&mut self) -> Option<Option<Outcome>> {
        let message = self.replies.try_recv().ok()?;
        if message.fragment().is_none() {
            return Some(self.book.accept(&message));
        }
        message.put_back();
        Some(self.take_large_reply())
    }

    /// [`Requester::take_reply`] of a reply larger than a slot.
    #[cold]
    #[inline(never)]
    fn take_large_reply(&mut self) -> Option<Outcome> {
        let mut incoming = std::mem::take(&mut self.book.incoming);
        let outcome = match self.replies.try_recv_large(&mut incoming) {
            Ok(_) => self.book.accept(&incoming),
            Err(_) => {
                // Pieces of a message whose rest never came, passed over.
                self.book.malformed += 1;
                None
            }
        };
        self.book.incoming = incoming;
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::testing;

    /// Replies that come before any receive reads a deadline leave their requests' entries in
    /// the deadline heap; they must not pile up with every request sent.
    #[test]
    fn answered_deadlines_do_not_pile_up() {
        let service = testing::service(16);
        let mut responder = testing::responder(&service);
        let mut requester = testing::requester(&service, 16);
        for i in 0..1000u64 {
            let id = requester
                .try_send(&i.to_le_bytes(), Duration::from_secs(60))
                .unwrap();
            responder.try_respond(|r| r.payload().to_vec()).unwrap();
            let reply = requester.try_recv().unwrap();
            assert_eq!((reply.id(), reply.payload()), (id, &i.to_le_bytes()[..]));
        }
        assert!(
            requester.book.deadlines.len() <= 2 * 16 + 1,
            "{} deadline entries for a window of 16",
            requester.book.deadlines.len()
        );
    }
}
