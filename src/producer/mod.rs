//! Producers: the publish API, a thin handle over the ring's sequencer (`sequencer/`).
//!
//! Every operation comes in three forms, as crossbeam-channel's do: `try_` (never waits:
//! [`PublishError::Full`] when there is no room), the plain one (waits by the producer's
//! [`WaitStrategy`] while the ring is full) and `_timeout` ([`PublishError::Timeout`] when
//! the ring stays full). Each dispatches once, by a `match` on the producer's mode, into code
//! compiled for that mode.

mod claim;

pub use claim::{BatchClaim, Claim};

use crate::error::{AttachError, PublishError};
use crate::sequencer::{self, Claims, Sequencer};
use crate::shared::{Attached, Shared};
use crate::sync::Arc;
use crate::wait::{deadline_after, WaitStrategy};
use std::fmt;
use std::time::{Duration, Instant};

/// Runs `$body` with `$m` bound to the producer's mode (`&mut` of its sequencer type): one
/// `match` per operation, and the body compiled for each mode.
macro_rules! dispatch {
    ($self:ident, $m:ident => $body:expr) => {
        match &mut $self.sequencer {
            Sequencer::Single($m) => $body,
            Sequencer::Multi($m) => $body,
            Sequencer::Fixed($m) => $body,
        }
    };
}
pub(crate) use dispatch;

/// When a claim gives up: at once, or at a deadline (`None`: never).
#[derive(Clone, Copy, Debug)]
pub(crate) enum When {
    Now,
    Until(Option<Instant>),
    /// A timeout from the first try: the clock is read only if the ring is full then.
    After(Duration),
}

impl When {
    fn after(timeout: Duration) -> Self {
        When::After(timeout)
    }
}

/// A handle that publishes messages into a ring; see [`crate::Ring::producer`].
///
/// In a single-producer ring there is one `Producer` at a time; in a multi-producer ring any
/// number, one per thread. A `Producer` is `Send` (move it to its thread) and its methods
/// take `&mut self`. Dropping it gives the producer role back (a single-producer ring's next
/// producer continues after its last message).
pub struct Producer {
    pub(crate) att: Attached,
    pub(crate) sequencer: Sequencer,
    wait: WaitStrategy,
    /// The payload capacity, kept so a length check reads nothing of `Shared`.
    max_len: usize,
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("sequencer", &self.sequencer)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

/// Checks a message length: at most `max`, and exactly `max` in a fixed-size ring (one
/// without slot `headers`).
#[inline(always)]
pub(crate) fn check_message_len(headers: bool, len: usize, max: usize) -> Result<(), PublishError> {
    if !headers && len != max {
        return Err(PublishError::WrongSize { len, size: max });
    }
    if len > max {
        return Err(PublishError::TooLarge { len, max });
    }
    Ok(())
}

/// [`check_message_len`] for mode `M`.
#[inline(always)]
fn check_len<M: Claims>(_: &M, len: usize, max: usize) -> Result<(), PublishError> {
    check_message_len(M::HEADERS, len, max)
}

/// Claims `n` sequences by `when`.
#[inline(always)]
fn claim_when<M: Claims>(
    m: &mut M,
    att: &Attached,
    n: u64,
    when: When,
    wait: WaitStrategy,
) -> Result<u64, PublishError> {
    match when {
        When::Now => m.try_claim(att, n),
        When::Until(deadline) => sequencer::claim(m, att, n, deadline, wait),
        When::After(timeout) => match m.try_claim(att, n) {
            Err(PublishError::Full) => sequencer::claim(m, att, n, deadline_after(timeout), wait),
            claimed => claimed,
        },
    }
}

impl Producer {
    pub(crate) fn new(shared: Arc<Shared>, wait: WaitStrategy) -> Result<Self, AttachError> {
        if wait.blocks() && !shared.wakeups {
            return Err(AttachError::WakeupsDisabled);
        }
        let sequencer = Sequencer::new(&shared)?;
        let att = Attached::producer(shared);
        let max_len = att.slots().payload_capacity();
        Ok(Producer {
            att,
            sequencer,
            wait,
            max_len,
        })
    }

    /// How many of this producer's messages were not published because their slots had been
    /// given up as a dead producer's (see [`PublishError::Abandoned`]). Only a multi-producer
    /// on a ring shared between processes whose liveness token was lost can see this; with
    /// the kernel's OFD locks that means never while the process lives.
    #[inline]
    pub fn abandoned(&self) -> u64 {
        match &self.sequencer {
            Sequencer::Multi(m) => m.abandoned(),
            _ => 0,
        }
    }

    /// The largest message this producer can publish, in bytes (a fixed-size ring's only
    /// message size).
    #[inline]
    pub fn max_message_len(&self) -> usize {
        self.max_len
    }

    /// Whether the ring is fixed-size ([`crate::RingBuilder::fixed_size`]): every message is
    /// [`Producer::max_message_len`] bytes.
    #[inline]
    pub fn is_fixed_size(&self) -> bool {
        matches!(self.sequencer, Sequencer::Fixed(_))
    }

    /// The number of slots, as a `u64` for claims.
    #[inline]
    fn batch_len(&self, n: usize) -> Result<u64, PublishError> {
        let capacity = self.att.shared().capacity();
        match u64::try_from(n) {
            Ok(n) if n <= capacity => Ok(n),
            _ => Err(PublishError::BatchTooLarge { n, capacity }),
        }
    }

    // ---- one message, copied in -----------------------------------------------------------

    #[inline(always)]
    fn publish_when(&mut self, data: &[u8], when: When) -> Result<u64, PublishError> {
        let (wait, max) = (self.wait, self.max_len);
        dispatch!(self, m => {
            check_len(m, data.len(), max)?;
            let start = claim_when(m, &self.att, 1, when, wait)?;
            m.write_one(&self.att, start, data)
        })
    }

    /// Publishes `data` as one message if there is room now. Returns the message's sequence.
    ///
    /// # Errors
    ///
    /// [`PublishError::Full`] if the slowest gating consumer is a whole ring behind,
    /// [`PublishError::TooLarge`] if `data` exceeds the slot payload (in a fixed-size ring
    /// [`PublishError::WrongSize`] unless it is the message size),
    /// [`PublishError::Exhausted`] past [`crate::limits::MAX_SEQUENCE`],
    /// [`PublishError::Abandoned`] (see [`Producer::abandoned`]).
    // The single publishes are always inlined: a large caller stopped inlining them at
    // `#[inline]`, and a producer slowed by the call fell behind its consumer, which then
    // caught up and chased it line by line (the `perf/` spsc "single" scenarios guard this).
    #[inline(always)]
    pub fn try_publish(&mut self, data: &[u8]) -> Result<u64, PublishError> {
        self.publish_when(data, When::Now)
    }

    /// Publishes `data`, waiting by the wait strategy while the ring is full.
    ///
    /// # Errors
    ///
    /// As [`Producer::try_publish`], but never [`PublishError::Full`].
    #[inline(always)]
    pub fn publish(&mut self, data: &[u8]) -> Result<u64, PublishError> {
        self.publish_when(data, When::Until(None))
    }

    /// Publishes `data`, awaiting room on a full ring: [`Producer::publish`] without blocking
    /// the thread (feature `async`). Dropping the future before it completes publishes
    /// nothing.
    ///
    /// # Errors
    ///
    /// As [`Producer::try_publish`], but never [`PublishError::Full`].
    #[cfg(all(feature = "async", not(loom)))]
    pub async fn publish_async(&mut self, data: &[u8]) -> Result<u64, PublishError> {
        match self.try_publish(data) {
            Err(PublishError::Full) => {}
            done => return done,
        }
        let mut awaiting =
            crate::await_event::Awaiting::new(self.att.arc(), crate::await_event::Which::Released);
        std::future::poll_fn(|cx| {
            awaiting.poll(cx, None, || match self.try_publish(data) {
                Err(PublishError::Full) => None,
                done => Some(done),
            })
        })
        .await
        .unwrap_or(Err(PublishError::Timeout))
    }

    /// Publishes `data`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`PublishError::Timeout`] if the ring stayed full; otherwise as [`Producer::publish`].
    #[inline]
    pub fn publish_timeout(&mut self, data: &[u8], timeout: Duration) -> Result<u64, PublishError> {
        self.publish_when(data, When::after(timeout))
    }

    // ---- one message, written in place ------------------------------------------------------

    // Always inlined, with `Claim::new`: out of line, the guard came back through memory
    // and its first use waited on that store (the request-reply bench, `benches/request.rs`,
    // guards this).
    #[inline(always)]
    fn claim_slot_when(&mut self, when: When) -> Result<Claim<'_>, PublishError> {
        let wait = self.wait;
        let start = dispatch!(self, m => claim_when(m, &self.att, 1, when, wait))?;
        Ok(Claim::new(self, start))
    }

    /// Claims one slot to write in place, if there is room now. The returned guard
    /// publishes when dropped (or on [`Claim::publish`]).
    ///
    /// # Errors
    ///
    /// [`PublishError::Full`], [`PublishError::Exhausted`].
    #[inline]
    pub fn try_claim_slot(&mut self) -> Result<Claim<'_>, PublishError> {
        self.claim_slot_when(When::Now)
    }

    /// Claims one slot to write in place, waiting while the ring is full.
    ///
    /// # Errors
    ///
    /// [`PublishError::Exhausted`].
    #[inline]
    pub fn claim_slot(&mut self) -> Result<Claim<'_>, PublishError> {
        self.claim_slot_when(When::Until(None))
    }

    /// Claims one slot to write in place, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`PublishError::Timeout`], [`PublishError::Exhausted`].
    #[inline]
    pub fn claim_slot_timeout(&mut self, timeout: Duration) -> Result<Claim<'_>, PublishError> {
        self.claim_slot_when(When::after(timeout))
    }

    // ---- many messages, written in place --------------------------------------------------

    #[inline]
    fn claim_batch_when(&mut self, n: usize, when: When) -> Result<BatchClaim<'_>, PublishError> {
        let count = self.batch_len(n)?;
        let wait = self.wait;
        let start = dispatch!(self, m => claim_when(m, &self.att, count, when, wait))?;
        Ok(BatchClaim::new(self, start, count))
    }

    /// Claims `n` consecutive slots to write in place, if there is room now; they are all
    /// published together (one publish) when the guard drops.
    ///
    /// # Errors
    ///
    /// [`PublishError::Full`], [`PublishError::BatchTooLarge`] if `n` exceeds the capacity,
    /// [`PublishError::Exhausted`].
    #[inline]
    pub fn try_claim_batch(&mut self, n: usize) -> Result<BatchClaim<'_>, PublishError> {
        self.claim_batch_when(n, When::Now)
    }

    /// Claims `n` consecutive slots, waiting while the ring is full.
    ///
    /// # Errors
    ///
    /// [`PublishError::BatchTooLarge`], [`PublishError::Exhausted`].
    #[inline]
    pub fn claim_batch(&mut self, n: usize) -> Result<BatchClaim<'_>, PublishError> {
        self.claim_batch_when(n, When::Until(None))
    }

    /// Claims `n` consecutive slots, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`PublishError::Timeout`], [`PublishError::BatchTooLarge`], [`PublishError::Exhausted`].
    #[inline]
    pub fn claim_batch_timeout(
        &mut self,
        n: usize,
        timeout: Duration,
    ) -> Result<BatchClaim<'_>, PublishError> {
        self.claim_batch_when(n, When::after(timeout))
    }

    #[inline]
    fn publish_batch_with_when<F>(&mut self, n: usize, fill: F, when: When) -> Result<u64, PublishError>
    where
        F: FnMut(usize, &mut [u8]) -> usize,
    {
        let count = self.batch_len(n)?;
        let wait = self.wait;
        dispatch!(self, m => {
            let start = claim_when(m, &self.att, count, when, wait)?;
            m.fill(&self.att, start, count, fill)
        })
    }

    /// Claims `n` consecutive slots if there is room now, lets `fill(i, payload)` write slot
    /// `i` in place and return its message length, and publishes all `n` with one publish.
    /// Returns the first sequence. The fastest way to publish many small messages.
    ///
    /// `payload` is the whole slot payload; a returned length above it is clamped to it (in a
    /// fixed-size ring the message is the whole payload, whatever `fill` returns). If `fill`
    /// panics, the slots it did not finish are published as skipped (in a fixed-size ring,
    /// none of the batch is published).
    ///
    /// # Errors
    ///
    /// [`PublishError::Full`] (nothing is claimed and `fill` is not called),
    /// [`PublishError::BatchTooLarge`], [`PublishError::Exhausted`],
    /// [`PublishError::Abandoned`].
    #[inline]
    pub fn try_publish_batch_with<F>(&mut self, n: usize, fill: F) -> Result<u64, PublishError>
    where
        F: FnMut(usize, &mut [u8]) -> usize,
    {
        self.publish_batch_with_when(n, fill, When::Now)
    }

    /// Like [`Producer::try_publish_batch_with`], waiting while the ring is full.
    ///
    /// # Errors
    ///
    /// [`PublishError::BatchTooLarge`], [`PublishError::Exhausted`], [`PublishError::Abandoned`].
    #[inline]
    pub fn publish_batch_with<F>(&mut self, n: usize, fill: F) -> Result<u64, PublishError>
    where
        F: FnMut(usize, &mut [u8]) -> usize,
    {
        self.publish_batch_with_when(n, fill, When::Until(None))
    }

    /// Like [`Producer::try_publish_batch_with`], waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`PublishError::Timeout`] (`fill` is not called), otherwise as
    /// [`Producer::publish_batch_with`].
    #[inline]
    pub fn publish_batch_with_timeout<F>(
        &mut self,
        n: usize,
        fill: F,
        timeout: Duration,
    ) -> Result<u64, PublishError>
    where
        F: FnMut(usize, &mut [u8]) -> usize,
    {
        self.publish_batch_with_when(n, fill, When::after(timeout))
    }

    // ---- many messages, copied in ----------------------------------------------------------

    #[inline]
    fn publish_batch_when<M: AsRef<[u8]>>(
        &mut self,
        messages: &[M],
        when: When,
    ) -> Result<u64, PublishError> {
        let (headers, max) = (!self.is_fixed_size(), self.max_len);
        for m in messages {
            check_message_len(headers, m.as_ref().len(), max)?;
        }
        let batch = self.claim_batch_when(messages.len(), when)?;
        Ok(batch.fill_from(messages))
    }

    /// Publishes every message of `messages` with one publish, if there is room for all of
    /// them now. Returns the first sequence.
    ///
    /// # Errors
    ///
    /// [`PublishError::TooLarge`] or [`PublishError::WrongSize`] if any message is not one of
    /// this ring's (nothing is published), [`PublishError::Full`],
    /// [`PublishError::BatchTooLarge`], [`PublishError::Exhausted`].
    #[inline]
    pub fn try_publish_batch<M: AsRef<[u8]>>(&mut self, messages: &[M]) -> Result<u64, PublishError> {
        self.publish_batch_when(messages, When::Now)
    }

    /// Publishes every message of `messages` with one publish, waiting for room.
    ///
    /// # Errors
    ///
    /// As [`Producer::try_publish_batch`], but never [`PublishError::Full`].
    #[inline]
    pub fn publish_batch<M: AsRef<[u8]>>(&mut self, messages: &[M]) -> Result<u64, PublishError> {
        self.publish_batch_when(messages, When::Until(None))
    }

    /// Publishes every message of `messages` with one publish, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`PublishError::Timeout`], otherwise as [`Producer::publish_batch`].
    #[inline]
    pub fn publish_batch_timeout<M: AsRef<[u8]>>(
        &mut self,
        messages: &[M],
        timeout: Duration,
    ) -> Result<u64, PublishError> {
        self.publish_batch_when(messages, When::after(timeout))
    }

    // ---- one message larger than a slot -------------------------------------------------

    #[inline]
    fn publish_large_when(&mut self, data: &[u8], when: When) -> Result<u64, PublishError> {
        let max = self.max_len;
        if self.is_fixed_size() || data.len() <= max {
            return self.publish_when(data, when);
        }
        let n = data.len().div_ceil(max);
        let capacity = self.att.shared().capacity();
        if n as u64 > capacity {
            return Err(PublishError::TooLarge {
                len: data.len(),
                max: self.max_large_len(),
            });
        }
        let mut batch = self.claim_batch_when(n, when)?;
        let first = batch.first_sequence();
        for (i, piece) in data.chunks(max).enumerate() {
            batch.fill_slot(i, piece, crate::fragment::Fragment::slot_flags(i, n));
        }
        batch.publish();
        Ok(first + n as u64 - 1)
    }

    /// Publishes `pieces` into consecutive slots as one batch, each with its slot flags (a
    /// fragment's, or `SLOT_SKIPPED`), waiting up to `timeout` for room: a journal's records
    /// put back into a ring made anew, each in the slot of its own sequence. Returns the
    /// first sequence. A fixed-size ring has no flags to carry: only whole messages of its
    /// size go in.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn publish_pieces_timeout(
        &mut self,
        pieces: &[(&[u8], u8)],
        timeout: Duration,
    ) -> Result<u64, PublishError> {
        for &(data, flags) in pieces {
            if data.len() > self.max_len {
                return Err(PublishError::TooLarge {
                    len: data.len(),
                    max: self.max_len,
                });
            }
            if self.is_fixed_size() && (flags != 0 || data.len() != self.max_len) {
                return Err(PublishError::WrongSize {
                    len: data.len(),
                    size: self.max_len,
                });
            }
        }
        let mut batch = self.claim_batch_when(pieces.len(), When::after(timeout))?;
        let first = batch.first_sequence();
        for (i, &(data, flags)) in pieces.iter().enumerate() {
            batch.fill_slot(i, data, flags);
        }
        batch.publish();
        Ok(first)
    }

    /// The largest message [`Producer::publish_large`] takes: a whole ring of slots.
    #[inline]
    pub fn max_large_len(&self) -> usize {
        if self.is_fixed_size() {
            return self.max_len;
        }
        let capacity = self.att.shared().capacity();
        usize::try_from(capacity)
            .ok()
            .and_then(|c| c.checked_mul(self.max_len))
            .unwrap_or(usize::MAX)
    }

    /// Publishes `data`, which may be larger than a slot, if there is room for all of it now.
    /// A message that fits a slot is published as [`Producer::try_publish`] does; a larger one
    /// is cut into slot-sized fragments ([`crate::Fragment`]) written into consecutive slots
    /// of one batch claim and published together, up to a whole ring of them
    /// ([`Producer::max_large_len`]). Returns the sequence of the last fragment, which is the
    /// message's: a publisher confirm waits for it.
    ///
    /// Subscribers and group workers read such a message whole with
    /// [`crate::Consumer::recv_large`] (a group gives it to one worker whole); the other
    /// receives deliver its fragments one by one ([`crate::Message::fragment`]). A large
    /// message costs a copy in and a copy out, and holds its slots until its last fragment is
    /// read.
    ///
    /// # Errors
    ///
    /// [`PublishError::TooLarge`] past [`Producer::max_large_len`] (in a fixed-size ring,
    /// [`PublishError::WrongSize`] unless `data` is the message size); [`PublishError::Full`]
    /// if the ring lacks room for every fragment now; [`PublishError::Exhausted`];
    /// [`PublishError::Abandoned`].
    #[inline]
    pub fn try_publish_large(&mut self, data: &[u8]) -> Result<u64, PublishError> {
        self.publish_large_when(data, When::Now)
    }

    /// Like [`Producer::try_publish_large`], waiting by the wait strategy for room.
    ///
    /// # Errors
    ///
    /// As [`Producer::try_publish_large`], but never [`PublishError::Full`].
    #[inline]
    pub fn publish_large(&mut self, data: &[u8]) -> Result<u64, PublishError> {
        self.publish_large_when(data, When::Until(None))
    }

    /// Like [`Producer::try_publish_large`], waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`PublishError::Timeout`] if the room for every fragment did not come in time (nothing
    /// is published); otherwise as [`Producer::publish_large`].
    #[inline]
    pub fn publish_large_timeout(&mut self, data: &[u8], timeout: Duration) -> Result<u64, PublishError> {
        self.publish_large_when(data, When::after(timeout))
    }

    /// Publishes each of `values` as one message of its bytes (see
    /// `TypedProducer::try_publish_slice`, which checks the type once, up front).
    #[inline(always)]
    pub(crate) fn publish_values_when<T: bytemuck::NoUninit>(
        &mut self,
        values: &[T],
        when: When,
    ) -> Result<u64, PublishError> {
        let count = self.batch_len(values.len())?;
        let (wait, max) = (self.wait, self.max_len);
        dispatch!(self, m => {
            check_len(m, std::mem::size_of::<T>(), max)?;
            let start = claim_when(m, &self.att, count, when, wait)?;
            m.write_values(&self.att, start, values)
        })
    }

    // ---- for the guards ------------------------------------------------------------------------

    /// Test hook: commit by compare-exchange as on a shared ring, so a test can model a
    /// mistaken reaper's skip racing this live producer on a heap ring.
    #[cfg(test)]
    pub(crate) fn defend_commits(&mut self) {
        if let Sequencer::Multi(m) = &mut self.sequencer {
            m.defend_commits();
        }
    }
}

impl Drop for Producer {
    #[inline]
    fn drop(&mut self) {
        dispatch!(self, m => m.release(&self.att));
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::sequencer::Sequencer;
    use crate::Ring;

    fn defended(producer: &crate::Producer) -> bool {
        matches!(&producer.sequencer, Sequencer::Multi(m) if m.is_defended())
    }

    /// Multi-producer commits are compare-exchanges (a reaper's skip can beat them) exactly
    /// where a reaper can skip: on a ring in a file, shared between processes.
    #[test]
    fn commits_are_defended_exactly_on_shared_multi_producer_rings() {
        let builder = || Ring::builder().capacity(8).slot_size(16);
        let heap = builder().multi_producer().build().unwrap();
        assert!(!defended(&heap.producer().unwrap()));
        let dir = tempfile::tempdir().unwrap();
        let shared = builder().multi_producer().create(dir.path().join("mp")).unwrap();
        assert!(defended(&shared.producer().unwrap()));
        let single = builder().create(dir.path().join("sp")).unwrap();
        assert!(!defended(&single.producer().unwrap()));
    }
}
