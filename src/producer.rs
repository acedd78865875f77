//! Producers: claim sequences, write slots, publish.
//!
//! Single-producer mode: the producer keeps its next sequence and a cached write limit in
//! its own memory; a publish is plain stores and one Release store of the cursor (tag
//! `[cursor]`), no read-modify-write. Multi-producer mode: a blocking claim is one
//! `fetch_add` of the shared claim counter, a `try_` claim a compare-exchange (so a full
//! ring claims nothing), and each slot is published by a Release store of its header word
//! carrying the sequence's stamp (tag `[stamp]`); on a ring shared between processes, by a
//! compare-exchange of that word instead, which a reaper's skip can beat (`commit_header`).
//!
//! A fixed-size ring is single-producer without slot headers: the cursor store is the only
//! publish, and a claim that panics publishes nothing.
//!
//! Both modes cache the write limit (the slowest gating consumer plus the capacity) and read
//! the consumers' positions only when the cache says the ring may be full.

use crate::consumer::Reaper;
use crate::error::{Error, PublishError};
use crate::layout::{self, IDLE, SLOT_PENDING_LEN, SLOT_SKIPPED};
use crate::liveness::PRODUCER_LOCK;
use crate::ring::{Geometry, Shared, Slots};
use crate::sequence::{Sequence, Word, MAX_SEQUENCE};
use crate::storage::WriteTrack;
use crate::sync::Arc;
use crate::wait::{self, WaitError, WaitStrategy};
use std::fmt;
use std::time::{Duration, Instant};

/// How many single publishes a single producer's cursor may lag behind its stamps (it is
/// stored when a publish ends on a multiple of this, or of half the capacity in a smaller
/// ring, `Layout::cursor_every`; batches and claims store it always).
///
/// A message's stamp publishes it; the cursor is for consumers far enough behind to take
/// many messages at once (`Shared::published_until`), and they read it on every poll. Stored
/// on every single publish, its line moved between the cores on nearly every one of those
/// polls: 16 times rarer, single publishes ran 1.2x (u64) to 3.6x (64-byte) faster (six
/// interleaved pairs of the `perf/` harness). `Shared::next_sequence` and a successor
/// producer find the exact end past it by the stamps; a producer dropped stores it exactly.
pub(crate) const CURSOR_EVERY: u64 = 16;

/// A handle that publishes messages into a ring; see [`crate::Ring::producer`].
///
/// In a single-producer ring there is one `Producer` at a time; in a multi-producer ring any
/// number, one per thread. A `Producer` is `Send` (move it to its thread) and its methods
/// take `&mut self`.
pub struct Producer {
    shared: Arc<Shared>,
    /// Single-producer: the next sequence to claim. Multi-producer: unused.
    next: u64,
    /// Sequences below this may be written (cached; refreshed when a claim reaches it).
    limit: u64,
    /// `Layout::cursor_every() - 1`: a single publish stores the cursor when the sequence
    /// after it has none of these bits.
    cursor_mask: u64,
    /// The ring's slot geometry and cursor address, and whether it runs wake-ups, kept here
    /// so a single publish reads none of `shared`'s fields: with them read through the `Arc`
    /// a 64-byte publish cost 3.5-4.6 ns on one core, with them here 2.8, and the producer
    /// fell behind its consumer less (a 64-byte fixed-size two-thread run 80-150 M msgs/s
    /// before, 200-250 after).
    geometry: Geometry,
    wakeups: bool,
    wait: WaitStrategy,
    multi: bool,
    /// Multi-producer on a ring shared between processes: each commit is a compare-exchange
    /// that a reaper's skip can beat (`commit_word`). On a heap ring nobody skips a slot a
    /// producer holds, and commits are plain Release stores.
    defended: bool,
    /// A fixed-size ring: no slot headers, the cursor alone publishes.
    fixed: bool,
    /// Multi-producer: this handle's entry in the producer table (see `producers.rs`).
    entry: usize,
    /// Commits that lost to a skip (see [`Producer::abandoned`]).
    abandoned: u64,
    /// Test hook: park between claim and commit (see `hooks.rs`).
    #[cfg(not(loom))]
    pause_before_commit: bool,
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("multi", &self.multi)
            .field("next", &self.next)
            .field("limit", &self.limit)
            .field("wait", &self.wait)
            .finish()
    }
}

impl Producer {
    pub(crate) fn new(shared: Arc<Shared>, wait: WaitStrategy) -> Result<Self, Error> {
        if wait.blocks() && !shared.wakeups {
            return Err(Error::WakeupsDisabled);
        }
        let multi = shared.multi_producer();
        let entry = if multi {
            crate::producers::register(&shared).ok_or(Error::TooManyProducers {
                max: crate::layout::MAX_PRODUCERS,
            })?
        } else {
            claim_single(&shared)?;
            0
        };
        // Acquire: pairs with the previous producer's [cursor] Release.
        let mut next = shared.cursor().load_acquire();
        let fixed = shared.layout.params.fixed;
        if !multi && !fixed {
            next = adopt_stamped(&shared, next);
        }
        if next > MAX_SEQUENCE {
            // Only a peer writing into the mapping can do this.
            if multi {
                crate::producers::unregister(&shared, entry);
            } else {
                shared.producer_owned().store_release(0);
                shared.liveness.release(PRODUCER_LOCK);
            }
            return Err(Error::Corrupt {
                path: shared
                    .path
                    .as_ref()
                    .map_or_else(String::new, |p| p.display().to_string()),
                reason: format!("cursor {next} is past the largest sequence"),
            });
        }
        let limit = if multi { 0 } else { shared.refresh_limit(next, 0) };
        let cursor_mask = shared.layout.cursor_every() - 1;
        let (geometry, wakeups) = (shared.geometry(), shared.wakeups);
        let shared_ring = shared.liveness.is_shared();
        Ok(Producer {
            geometry,
            wakeups,
            shared,
            next,
            limit,
            cursor_mask,
            wait,
            multi,
            defended: multi && shared_ring,
            fixed,
            entry,
            abandoned: 0,
            #[cfg(not(loom))]
            pause_before_commit: multi && crate::hooks::pause_requested("commit"),
        })
    }

    /// How many of this producer's messages were not published because their slots had been
    /// given up as a dead producer's (see `PublishError::Abandoned`). Only a multi-producer on
    /// a ring shared between processes whose liveness token was lost can see this; with the
    /// kernel's OFD locks that means never while the process lives.
    #[inline]
    pub fn abandoned(&self) -> u64 {
        self.abandoned
    }

    /// The largest message this producer can publish, in bytes.
    #[inline]
    pub fn max_message_len(&self) -> usize {
        self.geometry.payload_capacity()
    }

    /// Whether the ring is fixed-size ([`crate::RingBuilder::fixed_size`]): every message is
    /// [`Producer::max_message_len`] bytes.
    #[inline]
    pub fn is_fixed_size(&self) -> bool {
        self.fixed
    }

    #[inline]
    fn check_len(&self, len: usize) -> Result<(), PublishError> {
        let max = self.max_message_len();
        if self.fixed && len != max {
            return Err(PublishError::WrongSize { len, size: max });
        }
        if len > max {
            return Err(PublishError::TooLarge { len, max });
        }
        Ok(())
    }

    #[inline]
    fn check_batch(&self, n: usize) -> Result<u64, PublishError> {
        let capacity = self.shared.capacity();
        match u64::try_from(n) {
            Ok(n) if n <= capacity => Ok(n),
            _ => Err(PublishError::BatchTooLarge { n, capacity }),
        }
    }

    // ---- claiming ----------------------------------------------------------------------

    /// Claims `n` sequences without waiting, or says `Full`.
    #[inline]
    fn try_claim(&mut self, n: u64) -> Result<u64, PublishError> {
        if !self.multi && self.next + n <= self.limit {
            return Ok(self.next);
        }
        try_claim_in(
            &self.shared,
            self.multi,
            self.entry,
            self.next,
            &mut self.limit,
            n,
        )
    }

    /// Claims `n` sequences, waiting by the wait strategy until `deadline`.
    #[inline]
    fn claim_until(&mut self, n: u64, deadline: Option<Instant>) -> Result<u64, PublishError> {
        match self.try_claim(n) {
            Err(PublishError::Full) => self.claim_slow(n, deadline),
            other => other,
        }
    }

    #[cold]
    #[inline(never)]
    fn claim_slow(&mut self, n: u64, deadline: Option<Instant>) -> Result<u64, PublishError> {
        if self.multi && deadline.is_none() {
            return self.claim_multi_blocking(n);
        }
        // Borrow the fields apart rather than clone the `Arc`: a clone would write the
        // reference count, whose line every handle of the ring reads.
        let (shared, multi, entry, next, limit) =
            (&*self.shared, self.multi, self.entry, self.next, &mut self.limit);
        let mut outcome = Ok(0);
        let mut reaper = Reaper::new(shared);
        let waited = wait::wait_for(
            self.wait,
            shared.released_event(),
            deadline,
            None,
            || match try_claim_in(shared, multi, entry, next, limit, n) {
                Err(PublishError::Full) => None,
                other => {
                    outcome = other;
                    Some(())
                }
            },
            &mut || reaper.idle(shared),
        );
        match waited {
            Ok(()) => outcome,
            Err(WaitError::Timeout | WaitError::Stopped) => Err(PublishError::Timeout),
        }
    }

    /// Multi-producer blocking claim: one `fetch_add`, then wait for room.
    fn claim_multi_blocking(&mut self, n: u64) -> Result<u64, PublishError> {
        let shared = &*self.shared;
        announce_floor(shared, self.entry);
        // AcqRel: claims are totally ordered by this counter; its release half also
        // publishes the floor stored above `[floor]`.
        let start = shared.claim().fetch_add_acqrel(n);
        if start.saturating_add(n) > MAX_SEQUENCE {
            return Err(PublishError::Exhausted);
        }
        if start + n > self.limit {
            self.limit = shared.refresh_limit(start, self.limit);
            if start + n > self.limit {
                let limit = &mut self.limit;
                let mut reaper = Reaper::new(shared);
                let waited = wait::wait_for(
                    self.wait,
                    shared.released_event(),
                    None,
                    None,
                    || {
                        *limit = shared.refresh_limit(start, *limit);
                        (start + n <= *limit).then_some(())
                    },
                    &mut || reaper.idle(shared),
                );
                // Without a deadline or a stop flag the wait cannot fail.
                debug_assert!(waited.is_ok());
            }
        }
        Ok(start)
    }

    // ---- writing and publishing --------------------------------------------------------

    /// Test hook: commit by compare-exchange as on a shared ring (`defended`), so a test can
    /// model a mistaken reaper's skip racing this live producer on a heap ring.
    #[cfg(test)]
    pub(crate) fn defend_commits(&mut self) {
        self.defended = self.multi;
    }

    /// Multi-producer: waits for the previous lap of the slot; see [`await_previous_lap`].
    #[inline]
    fn await_slot(&self, sequence: u64) {
        if self.multi {
            await_previous_lap(&self.shared, self.entry, sequence);
        }
    }

    /// Writes a slot's header word; see [`commit_header`].
    #[inline]
    fn commit(&mut self, sequence: u64, len: usize, flags: u8) -> bool {
        #[cfg(not(loom))]
        if self.pause_before_commit {
            crate::hooks::pause_forever("commit");
        }
        let committed = commit_header(&self.shared, self.defended, sequence, len, flags);
        if !committed {
            self.abandoned += 1;
        }
        committed
    }

    /// After the slots below `end` are committed: advances the single-producer cursor and
    /// wakes sleeping consumers.
    #[inline(always)]
    fn publish_range(&mut self, end: u64) {
        if self.multi {
            // Release: holds nothing unpublished any more `[floor]`; pairs with the Acquire
            // in `producers::live_floor` (a reaper that sees this also sees the commits).
            crate::producers::floor(&self.shared, self.entry).store_release(IDLE);
        } else {
            self.next = end;
            // [cursor] Release: pairs with the Acquire in `Shared::published_until` (and in
            // `Shared::next_sequence` and a later producer's `new`).
            self.cursor().store_release(end);
        }
        self.notify();
    }

    /// The ring's cursor, through the kept geometry.
    #[inline]
    fn cursor(&self) -> &Sequence {
        // SAFETY: `geometry` came from `shared.geometry()` in `new`.
        unsafe { self.shared.cursor_with(&self.geometry) }
    }

    /// The slot geometry, kept (see the field).
    #[inline]
    fn slots(&self) -> Slots<'_> {
        // SAFETY: as in `cursor`.
        unsafe { self.shared.slots_with(self.geometry) }
    }

    /// After a publish: wakes sleeping consumers, if the ring runs wake-ups.
    #[inline]
    fn notify(&self) {
        if self.wakeups {
            self.shared.notify_published();
        }
    }

    #[inline]
    fn copy_in(&self, sequence: u64, data: &[u8]) {
        let _track = self.shared.region.track_write(self.slot_index(sequence));
        // SAFETY: the slot is claimed by this producer alone (claim counter or single
        // producer) and no gating consumer still reads it (write limit); `data.len()` is at
        // most the payload capacity (checked by the callers), which `payload()` is valid for;
        // the source is a separate Rust slice, so the ranges cannot overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.shared.payload(sequence), data.len());
        }
    }

    #[inline]
    fn slot_index(&self, sequence: u64) -> usize {
        crate::sequence::slot_index(sequence, self.shared.capacity())
    }

    // Always inlined: a caller's constant length (`publish_value`) then becomes a few
    // register moves instead of a `memcpy` call. A single producer's message is published by
    // its stamp alone; the cursor follows every `CURSOR_EVERY` messages (see there).
    #[inline(always)]
    fn write_one(&mut self, start: u64, data: &[u8]) -> Result<u64, PublishError> {
        if !self.multi {
            // `copy_in`, `commit` and `publish_range` for a single producer, with the slot's
            // address computed once: this is a message's whole publish.
            let slots = self.slots();
            let mut track = self.shared.region.track_write(self.slot_index(start));
            // SAFETY: as in `copy_in`.
            unsafe {
                std::ptr::copy_nonoverlapping(data.as_ptr(), slots.payload(start), data.len());
            }
            track.end();
            if self.fixed {
                // The cursor is a fixed-size ring's only publish.
                self.publish_range(start + 1);
                return Ok(start);
            }
            // [stamp] Release: as in `commit_header`. This publishes the message.
            slots
                .header(start)
                .store_release(layout::slot_header(start, data.len(), 0));
            self.next = start + 1;
            if self.next & self.cursor_mask == 0 {
                // [cursor] Release: as in `publish_range`.
                self.cursor().store_release(self.next);
            }
            self.notify();
            return Ok(start);
        }
        self.await_slot(start);
        self.copy_in(start, data);
        let committed = self.commit(start, data.len(), 0);
        self.publish_range(start + 1);
        if committed {
            Ok(start)
        } else {
            Err(PublishError::Abandoned { sequence: start })
        }
    }

    /// Publishes `data` as one message if there is room now.
    ///
    /// Returns the message's sequence.
    ///
    /// # Errors
    ///
    /// [`PublishError::Full`] if the slowest gating consumer is a whole ring behind,
    /// [`PublishError::TooLarge`] if `data` exceeds the slot payload,
    /// [`PublishError::Exhausted`] past [`crate::MAX_SEQUENCE`].
    // The single publishes are always inlined: in a large caller (the `perf/` harness) LLVM
    // stopped inlining `try_publish_value` at `#[inline]`, and the call made the producer
    // slower than its consumer, which then caught up and chased it line by line: half the
    // throughput (95 against 185 M u64s/s in an interleaved A/B).
    #[inline(always)]
    pub fn try_publish(&mut self, data: &[u8]) -> Result<u64, PublishError> {
        self.check_len(data.len())?;
        let start = self.try_claim(1)?;
        self.write_one(start, data)
    }

    /// Publishes `data`, waiting by the wait strategy while the ring is full.
    ///
    /// # Errors
    ///
    /// [`PublishError::TooLarge`], [`PublishError::Exhausted`].
    #[inline(always)]
    pub fn publish(&mut self, data: &[u8]) -> Result<u64, PublishError> {
        self.check_len(data.len())?;
        let start = self.claim_until(1, None)?;
        self.write_one(start, data)
    }

    /// Publishes `data`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`PublishError::Timeout`] if the ring stayed full; otherwise as [`Producer::publish`].
    #[inline]
    pub fn publish_timeout(&mut self, data: &[u8], timeout: Duration) -> Result<u64, PublishError> {
        self.check_len(data.len())?;
        let start = self.claim_until(1, crate::wait::deadline_after(timeout))?;
        self.write_one(start, data)
    }

    /// Claims one slot to write in place, if there is room now. The returned guard
    /// publishes when dropped (or on [`Claim::publish`]).
    ///
    /// # Errors
    ///
    /// [`PublishError::Full`], [`PublishError::Exhausted`].
    #[inline]
    pub fn try_claim_slot(&mut self) -> Result<Claim<'_>, PublishError> {
        let start = self.try_claim(1)?;
        Ok(Claim::new(self, start))
    }

    /// Claims one slot to write in place, waiting while the ring is full.
    ///
    /// # Errors
    ///
    /// [`PublishError::Exhausted`].
    #[inline]
    pub fn claim_slot(&mut self) -> Result<Claim<'_>, PublishError> {
        let start = self.claim_until(1, None)?;
        Ok(Claim::new(self, start))
    }

    /// Claims `n` consecutive slots to write in place, if there is room now; they are all
    /// published together (one cursor store) when the guard drops.
    ///
    /// # Errors
    ///
    /// [`PublishError::Full`], [`PublishError::BatchTooLarge`] if `n` exceeds the capacity,
    /// [`PublishError::Exhausted`].
    #[inline]
    pub fn try_claim_batch(&mut self, n: usize) -> Result<BatchClaim<'_>, PublishError> {
        let count = self.check_batch(n)?;
        let start = self.try_claim(count)?;
        Ok(BatchClaim::new(self, start, count))
    }

    /// Claims `n` consecutive slots, waiting while the ring is full.
    ///
    /// # Errors
    ///
    /// [`PublishError::BatchTooLarge`], [`PublishError::Exhausted`].
    #[inline]
    pub fn claim_batch(&mut self, n: usize) -> Result<BatchClaim<'_>, PublishError> {
        let count = self.check_batch(n)?;
        let start = self.claim_until(count, None)?;
        Ok(BatchClaim::new(self, start, count))
    }

    /// Publishes every message of `messages` with one publish, if there is room for all of
    /// them now. Returns the first sequence.
    ///
    /// # Errors
    ///
    /// [`PublishError::TooLarge`] if any message is too long (nothing is published),
    /// [`PublishError::Full`], [`PublishError::BatchTooLarge`], [`PublishError::Exhausted`].
    #[inline]
    pub fn try_publish_batch<M: AsRef<[u8]>>(&mut self, messages: &[M]) -> Result<u64, PublishError> {
        for m in messages {
            self.check_len(m.as_ref().len())?;
        }
        let batch = self.try_claim_batch(messages.len())?;
        Ok(batch.fill_from(messages))
    }

    /// Publishes every message of `messages` with one publish, waiting for room.
    ///
    /// # Errors
    ///
    /// [`PublishError::TooLarge`], [`PublishError::BatchTooLarge`], [`PublishError::Exhausted`].
    #[inline]
    pub fn publish_batch<M: AsRef<[u8]>>(&mut self, messages: &[M]) -> Result<u64, PublishError> {
        for m in messages {
            self.check_len(m.as_ref().len())?;
        }
        let batch = self.claim_batch(messages.len())?;
        Ok(batch.fill_from(messages))
    }

    /// Publishes each of `values` as one message of its bytes, with one publish, if there is
    /// room for all of them now. Returns the first sequence. In a fixed-size ring of
    /// `size_of::<T>()`-byte messages the slice is copied in whole (in two parts if it wraps
    /// around the ring's end): the fastest way to publish values that already sit in a slice;
    /// read them back with [`crate::Batch::as_slices`]. Values built only to be published go
    /// faster written in place by [`Producer::try_publish_batch_with`] (no staging stores).
    ///
    /// # Errors
    ///
    /// [`PublishError::WrongSize`] (fixed-size ring) or [`PublishError::TooLarge`] if a `T`
    /// is not a message of this ring (nothing is published), [`PublishError::Full`],
    /// [`PublishError::BatchTooLarge`], [`PublishError::Exhausted`].
    #[inline(always)]
    pub fn try_publish_values<T: bytemuck::NoUninit>(&mut self, values: &[T]) -> Result<u64, PublishError> {
        self.check_len(std::mem::size_of::<T>())?;
        let count = self.check_batch(values.len())?;
        let start = self.try_claim(count)?;
        self.write_values(start, values)
    }

    /// Like [`Producer::try_publish_values`], waiting while the ring is full.
    ///
    /// # Errors
    ///
    /// [`PublishError::WrongSize`], [`PublishError::TooLarge`], [`PublishError::BatchTooLarge`],
    /// [`PublishError::Exhausted`].
    #[inline(always)]
    pub fn publish_values<T: bytemuck::NoUninit>(&mut self, values: &[T]) -> Result<u64, PublishError> {
        self.check_len(std::mem::size_of::<T>())?;
        let count = self.check_batch(values.len())?;
        let start = self.claim_until(count, None)?;
        self.write_values(start, values)
    }

    /// Writes and publishes `values` into the claimed slots from `start`.
    #[inline(always)]
    fn write_values<T: bytemuck::NoUninit>(&mut self, start: u64, values: &[T]) -> Result<u64, PublishError> {
        let size = std::mem::size_of::<T>();
        // Under loom every slot's write is tracked on its own (the slot by slot path below).
        if self.fixed && !cfg!(loom) {
            // `check_len` made `size` the ring's fixed size, at least `MIN_FIXED_SIZE`: a
            // non-empty `T`, whose slice casts to bytes.
            let bytes: &[u8] = bytemuck::cast_slice(values);
            let count = values.len() as u64;
            let slots = self.slots();
            let first = slots.before_wrap(start, count);
            let (head, tail) = bytes.split_at(first as usize * size);
            // SAFETY: a fixed-size ring's slots are its payloads back to back, so the `first`
            // slots from `start` (not past the ring's end) and the rest from the first slot
            // are runs of `head.len()` and `tail.len()` bytes; this producer alone claimed
            // them and no gating consumer still reads them (write limit); the source is a
            // separate Rust slice.
            unsafe {
                std::ptr::copy_nonoverlapping(head.as_ptr(), slots.payload(start), head.len());
                if !tail.is_empty() {
                    std::ptr::copy_nonoverlapping(tail.as_ptr(), slots.payload(start + first), tail.len());
                }
            }
            // The cursor publishes the whole batch.
            self.publish_range(start + count);
            return Ok(start);
        }
        self.fill_batch(start, values.len() as u64, |i, slot| {
            slot[..size].copy_from_slice(bytemuck::bytes_of(&values[i]));
            size
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
    /// [`PublishError::BatchTooLarge`], [`PublishError::Exhausted`].
    #[inline]
    pub fn try_publish_batch_with<F>(&mut self, n: usize, fill: F) -> Result<u64, PublishError>
    where
        F: FnMut(usize, &mut [u8]) -> usize,
    {
        let count = self.check_batch(n)?;
        let start = self.try_claim(count)?;
        self.fill_batch(start, count, fill)
    }

    /// Like [`Producer::try_publish_batch_with`], waiting while the ring is full.
    ///
    /// # Errors
    ///
    /// [`PublishError::BatchTooLarge`], [`PublishError::Exhausted`].
    #[inline]
    pub fn publish_batch_with<F>(&mut self, n: usize, fill: F) -> Result<u64, PublishError>
    where
        F: FnMut(usize, &mut [u8]) -> usize,
    {
        let count = self.check_batch(n)?;
        let start = self.claim_until(count, None)?;
        self.fill_batch(start, count, fill)
    }

    /// Writes and publishes the claimed slots `start..start + count` through `fill`.
    #[inline]
    fn fill_batch<F>(&mut self, start: u64, count: u64, mut fill: F) -> Result<u64, PublishError>
    where
        F: FnMut(usize, &mut [u8]) -> usize,
    {
        /// Finishes the batch, also when `fill` panics: publishes what it left unwritten as
        /// skipped, then commits the first slot (`write_slots` leaves it for last) and
        /// publishes the whole range.
        struct Unwind<'p> {
            producer: &'p mut Producer,
            start: u64,
            end: u64,
            first_len: Option<usize>,
            complete: bool,
        }
        impl Drop for Unwind<'_> {
            fn drop(&mut self) {
                if !self.complete {
                    // `fill` panicked: the slots it finished are committed (stamped) in a run
                    // after the first slot, whose length is known if it finished that one.
                    let finished = self.start + u64::from(self.first_len.is_some());
                    let unwritten = self.producer.shared.first_unstamped(finished, self.end);
                    for sequence in unwritten..self.end {
                        self.producer.commit(sequence, 0, SLOT_SKIPPED);
                    }
                }
                if let Some(len) = self.first_len.take() {
                    self.producer.commit(self.start, len, 0);
                }
                self.producer.publish_range(self.end);
            }
        }
        let end = start + count;
        if self.fixed {
            return Ok(self.fill_fixed(start, end, fill));
        }
        let before = self.abandoned;
        let mut guard = Unwind {
            producer: self,
            start,
            end,
            first_len: None,
            complete: false,
        };
        let producer: &Producer = guard.producer;
        let lost = write_slots(
            &producer.shared,
            producer.multi,
            producer.defended,
            producer.entry,
            start,
            end,
            &mut guard.first_len,
            &mut fill,
        );
        guard.producer.abandoned += lost;
        guard.complete = true;
        drop(guard);
        if self.abandoned == before {
            Ok(start)
        } else {
            Err(PublishError::Abandoned { sequence: start })
        }
    }

    /// `fill_batch` for a fixed-size ring: writes the slots `start..end` through `fill` and
    /// moves the cursor past them. If `fill` panics nothing is published (there are no
    /// headers to mark; the next claim writes these slots again), so no unwind guard is
    /// needed. Kept apart from the general path, with the producer's own geometry: every
    /// store here is one more entry in the store buffer that the slot stores wait behind
    /// (a guard and an out-of-line publish cost a batch of u64s ~20% between two cores).
    #[inline(always)]
    fn fill_fixed<F>(&mut self, start: u64, end: u64, mut fill: F) -> u64
    where
        F: FnMut(usize, &mut [u8]) -> usize,
    {
        let slots = self.slots();
        let capacity = slots.payload_capacity();
        for sequence in start..end {
            let mut track = self.shared.region.track_write(self.slot_index(sequence));
            // SAFETY: the slot is claimed by this producer alone and no consumer reads it
            // before the cursor passes it (as in `Claim::payload_mut`); the payload is
            // `capacity` bytes.
            let payload = unsafe { std::slice::from_raw_parts_mut(slots.payload(sequence), capacity) };
            // A fixed-size message is the whole payload, whatever length `fill` returns.
            let _ = fill((sequence - start) as usize, payload);
            track.end();
        }
        self.publish_range(end);
        start
    }

    /// Publishes a plain-old-data value as the message bytes.
    ///
    /// # Errors
    ///
    /// As [`Producer::try_publish`].
    #[inline(always)]
    pub fn try_publish_value<T: bytemuck::NoUninit>(&mut self, value: &T) -> Result<u64, PublishError> {
        // `try_publish`'s body, here in the generic (caller-instantiated) function so the
        // copy has a constant length.
        let data = bytemuck::bytes_of(value);
        self.check_len(data.len())?;
        let start = self.try_claim(1)?;
        self.write_one(start, data)
    }

    /// Publishes a plain-old-data value, waiting for room.
    ///
    /// # Errors
    ///
    /// As [`Producer::publish`].
    #[inline(always)]
    pub fn publish_value<T: bytemuck::NoUninit>(&mut self, value: &T) -> Result<u64, PublishError> {
        // As in `try_publish_value`: a constant-length copy.
        let data = bytemuck::bytes_of(value);
        self.check_len(data.len())?;
        let start = self.claim_until(1, None)?;
        self.write_one(start, data)
    }
}

/// Writes a slot's header word, the word of the slot written last (`[stamp]`): a Release
/// store that publishes the slot to a consumer waiting on it (in single-producer mode the
/// cursor store in `publish_range` publishes whole batches too; in multi-producer mode the
/// stamps alone publish).
///
/// `defended` (a multi-producer on a ring shared between processes): a compare-exchange
/// instead, so a reaper's skip and a late commit cannot both succeed; returns false if the
/// slot was skipped first. Only there can a reaper skip a slot (`producers::reap_dead`: a
/// producer whose process died), and only a mistaken one could skip a slot whose producer
/// still runs. On a heap ring every producer is alive and no slot a producer holds is ever
/// skipped (`producers::skip_orphan` takes only sequences no producer's floor covers), so
/// the store suffices: a locked compare-exchange per slot, between two cores, waits for the
/// slot's line each time (one producer made ~50 M u64s/s in batches of 64 with it).
#[inline]
fn commit_header(shared: &Shared, defended: bool, sequence: u64, len: usize, flags: u8) -> bool {
    commit_word(shared.slot_header(sequence), defended, sequence, len, flags)
}

/// [`commit_header`] on the slot's header `word`.
#[inline]
fn commit_word(word: &Word, defended: bool, sequence: u64, len: usize, flags: u8) -> bool {
    let header = layout::slot_header(sequence, len, flags);
    if !defended {
        // [stamp] Release: publishes the slot on its own to a consumer waiting on it (see
        // `Shared::published_until`); in single-producer mode the [cursor] store publishes
        // whole batches too.
        word.store_release(header);
        return true;
    }
    // Relaxed: our own pending header, the previous lap's, or a skip (which the
    // compare-exchange then confirms).
    let current = word.load_relaxed();
    if layout::SlotHeader::decode(current).stamp == layout::stamp(sequence) {
        return false; // given up as a dead producer's (see `producers.rs`)
    }
    // [stamp] AcqRel: the Release half pairs with the Acquire in `Shared::published_until`;
    // a compare-exchange, not a store, so a skip and this commit cannot both happen.
    word.compare_exchange_acqrel(current, header).is_ok()
}

/// Multi-producer, before a claim: stores a claim counter value read now as this producer's
/// floor `[floor]` (see `producers.rs`). Relaxed: the claim RMW that follows publishes it.
#[inline]
fn announce_floor(shared: &Shared, entry: usize) {
    // Relaxed: any value of the counter is a lower bound of what the claim will return.
    let guess = shared.claim().load_relaxed();
    crate::producers::floor(shared, entry).store_relaxed(guess);
}

/// Multi-producer: waits until the previous lap of `sequence`'s slot is published, so two
/// producers a lap apart never write one slot at once (they are, only if one stalled a whole
/// lap while consumers detached).
///
/// Until then the slot carries the stamp of the lap before; any other stamp is not the
/// protocol's (a peer wrote into the mapping) and is not waited on. A producer of the
/// previous lap that died is skipped by the reaper this waits with (on a shared ring); a
/// previous-lap sequence that no live producer but this one (`entry`) can hold is skipped
/// here (`producers::skip_orphan`): a claim counter a peer moved forward leaves such
/// sequences claimed by nobody, and waiting on them hung the producer for good.
///
/// Always inlined, the wait itself out of line: this runs for every slot a multi-producer
/// writes, and a call per slot (its pushes and spills) cost a batch of u64s between two
/// cores about a third of its rate (the store-buffer rule in docs/architecture.md).
#[inline(always)]
fn await_previous_lap(shared: &Shared, entry: usize, sequence: u64) {
    let capacity = shared.capacity();
    let unpublished = layout::stamp(sequence.wrapping_sub(capacity.wrapping_mul(2)));
    // Acquire: pairs with the [stamp] Release of the previous lap's producer.
    if layout::SlotHeader::decode(shared.slot_header(sequence).load_acquire()).stamp != unpublished {
        return;
    }
    wait_previous_lap(shared, entry, sequence, unpublished);
}

/// [`await_previous_lap`]'s wait: the slot still carries the `unpublished` stamp.
#[cold]
#[inline(never)]
fn wait_previous_lap(shared: &Shared, entry: usize, sequence: u64, unpublished: u32) {
    let capacity = shared.capacity();
    let header = shared.slot_header(sequence);
    let mut reaper = Reaper::new(shared);
    let mut rounds = 0u32;
    // Acquire: as above.
    while layout::SlotHeader::decode(header.load_acquire()).stamp == unpublished {
        rounds = rounds.wrapping_add(1);
        if rounds % 64 == 0 {
            reaper.idle(shared);
            crate::producers::skip_orphan(shared, entry, sequence.wrapping_sub(capacity));
        }
        crate::sync::yield_now();
    }
}

/// The loop of `Producer::fill_batch` in a ring with slot headers (a fixed-size ring's is
/// `Producer::fill_fixed`): writes slots `start..end` through `fill` and commits each;
/// returns how many commits found their slot given up (`defended` commits only, see
/// [`commit_header`]). It keeps its progress in registers only: if `fill` panics, the caller
/// finds where it stopped by the stamps. A free function taking the ring's geometry as a
/// local value (`Slots`), so the compiler need not reload it around each payload write.
///
/// The first slot of a batch of several is not committed here: its length goes to
/// `*first_len` and the caller commits it after the others, so its stamp publishes the whole
/// batch at once. A caught-up consumer that looks at that stamp (`Shared::published_until`)
/// then takes the batch whole instead of chasing the producer slot by slot through it.
#[inline]
#[allow(clippy::too_many_arguments)]
fn write_slots<F>(
    shared: &Shared,
    multi: bool,
    defended: bool,
    entry: usize,
    start: u64,
    end: u64,
    first_len: &mut Option<usize>,
    fill: &mut F,
) -> u64
where
    F: FnMut(usize, &mut [u8]) -> usize,
{
    let slots = shared.slots();
    let capacity = slots.payload_capacity();
    let ring_capacity = shared.capacity();
    let mut lost = 0;
    for sequence in start..end {
        if multi {
            await_previous_lap(shared, entry, sequence);
        }
        let mut track = shared
            .region
            .track_write(crate::sequence::slot_index(sequence, ring_capacity));
        // SAFETY: the slot is claimed by this producer alone and no consumer reads it before
        // the publish (as in `Claim::payload_mut`); the payload is `capacity` bytes.
        let payload = unsafe { std::slice::from_raw_parts_mut(slots.payload(sequence), capacity) };
        let len = fill((sequence - start) as usize, payload).min(capacity);
        track.end();
        if sequence == start && end - start > 1 {
            *first_len = Some(len);
        } else if !commit_word(slots.header(sequence), defended, sequence, len, 0) {
            lost += 1;
        }
    }
    lost
}

/// The claim slow path: refreshes the cached `limit`, then claims `n` sequences at `next`
/// (single producer) or by compare-exchange of the claim counter (multi producer).
#[inline(never)]
fn try_claim_in(
    shared: &Shared,
    multi: bool,
    entry: usize,
    next: u64,
    limit: &mut u64,
    n: u64,
) -> Result<u64, PublishError> {
    if !multi {
        if next + n > MAX_SEQUENCE {
            return Err(PublishError::Exhausted);
        }
        *limit = shared.refresh_limit(next, *limit);
        return if next + n <= *limit {
            Ok(next)
        } else {
            Err(PublishError::Full)
        };
    }
    let claim = shared.claim();
    // Relaxed: only a guess for the CAS below, which re-checks.
    let mut start = claim.load_relaxed();
    // `[floor]`: `start` is at or below whatever the CAS below claims; the CAS (AcqRel)
    // publishes the floor.
    crate::producers::floor(shared, entry).store_relaxed(start);
    loop {
        // Saturating: the counter comes from shared memory.
        if start.saturating_add(n) > MAX_SEQUENCE {
            return Err(PublishError::Exhausted);
        }
        if start + n > *limit {
            *limit = shared.refresh_limit(start, *limit);
            if start + n > *limit {
                return Err(PublishError::Full);
            }
        }
        // AcqRel: claims are totally ordered by this counter; nothing else hangs on it.
        match claim.compare_exchange_acqrel(start, start + n) {
            Ok(_) => return Ok(start),
            Err(actual) => start = actual,
        }
    }
}

/// A single producer starting at `cursor` after another: slots its predecessor finished
/// (stamped) but did not cover with the cursor before it died may already have been read by
/// consumers (a stamp publishes), so they count as published, and the cursor moves past
/// them. Returns where this producer continues.
///
/// Right after the first unstamped slot, a run of slots stamped with their own sequences is
/// what is left of a batch the predecessor died writing (a batch stamps its slots in order
/// but its first slot last, see `write_slots` and `BatchClaim`'s drop): never published,
/// since no consumer passes the unstamped slot, but a caught-up consumer reads stamps, so the
/// run is unstamped (given the stamp of the lap before, as a fresh ring has) before this
/// producer publishes the slot in front of it.
///
/// Not for fixed-size rings, whose cursor is the only publish.
fn adopt_stamped(shared: &Shared, cursor: u64) -> u64 {
    let capacity = shared.capacity();
    let next = shared.stamped_past(cursor);
    if next != cursor {
        // [cursor] Release: as in `publish_range`.
        shared.cursor().store_release(next);
    }
    let end = next.saturating_add(capacity).min(MAX_SEQUENCE);
    let mut sequence = next.saturating_add(1);
    while sequence < end && shared.is_stamped(sequence) {
        let unpublished = layout::slot_header(sequence.wrapping_sub(capacity), 0, 0);
        // Relaxed: no consumer reads this slot before this producer publishes the one in
        // front of it (with Release, after this store).
        shared.slot_header(sequence).store_relaxed(unpublished);
        sequence += 1;
    }
    next
}

/// Takes a single-producer ring's producer role. The liveness token comes first (see
/// `liveness.rs`): holding it, a set ownership word can only be a dead producer's, and the role
/// passes on (the cursor it left is where this one continues; what it wrote past the cursor
/// was never published).
fn claim_single(shared: &Shared) -> Result<(), Error> {
    if !shared.liveness.acquire(PRODUCER_LOCK) {
        return Err(Error::ProducerTaken);
    }
    // AcqRel: pairs with the Release in `Drop`, so a new producer sees its predecessor's
    // cursor.
    if shared.producer_owned().compare_exchange_acqrel(0, 1).is_err() && !shared.liveness.is_shared() {
        shared.liveness.release(PRODUCER_LOCK);
        return Err(Error::ProducerTaken);
    }
    Ok(())
}

impl Drop for Producer {
    #[inline]
    fn drop(&mut self) {
        if self.multi {
            crate::producers::unregister(&self.shared, self.entry);
        } else {
            // [cursor] Release: exact at rest (single publishes let it lag, `CURSOR_EVERY`).
            self.cursor().store_release(self.next);
            // Release: pairs with the AcqRel claim of ownership in `Producer::new`.
            self.shared.producer_owned().store_release(0);
            self.shared.liveness.release(PRODUCER_LOCK);
        }
    }
}

/// One claimed slot, written in place; publishes when dropped.
///
/// The payload is [`Claim::payload_mut`]; the message length is the whole payload unless
/// [`Claim::set_len`] or [`Claim::write`] says otherwise. If the guard is dropped while the
/// thread panics, the slot is published as skipped, so consumers pass over it and are never
/// stalled by it.
pub struct Claim<'a> {
    producer: &'a mut Producer,
    sequence: u64,
    len: usize,
    /// Loom's write tracking; ended before the publish in `drop`.
    track: WriteTrack,
}

impl fmt::Debug for Claim<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claim")
            .field("sequence", &self.sequence)
            .field("len", &self.len)
            .finish()
    }
}

impl<'a> Claim<'a> {
    fn new(producer: &'a mut Producer, sequence: u64) -> Self {
        producer.await_slot(sequence);
        let len = producer.max_message_len();
        let track = producer.shared.region.track_write(producer.slot_index(sequence));
        Claim {
            producer,
            sequence,
            len,
            track,
        }
    }

    /// The sequence this slot will be published as.
    #[inline]
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The whole payload of the slot, to write in place.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let cap = self.producer.max_message_len();
        // SAFETY: this guard holds the only claim on the slot until it publishes (claim
        // protocol), no consumer reads it before the publish (gating), and the payload is
        // `cap` bytes long. The `&mut self` borrow ties the slice to the guard.
        unsafe { std::slice::from_raw_parts_mut(self.producer.shared.payload(self.sequence), cap) }
    }

    /// Sets the message length.
    ///
    /// # Errors
    ///
    /// [`PublishError::TooLarge`] if `len` exceeds the payload; in a fixed-size ring
    /// [`PublishError::WrongSize`] unless `len` is its message size.
    #[inline]
    pub fn set_len(&mut self, len: usize) -> Result<(), PublishError> {
        self.producer.check_len(len)?;
        self.len = len;
        Ok(())
    }

    /// Copies `data` into the payload and sets the length to match.
    ///
    /// # Errors
    ///
    /// As [`Claim::set_len`].
    #[inline]
    pub fn write(&mut self, data: &[u8]) -> Result<(), PublishError> {
        self.set_len(data.len())?;
        self.payload_mut()[..data.len()].copy_from_slice(data);
        Ok(())
    }

    /// Views the payload as a `T` to fill in place, and sets the length to `size_of::<T>()`.
    ///
    /// # Errors
    ///
    /// [`Error::TypeMismatch`] if `T` is larger than the payload or needs alignment above 8,
    /// or, in a fixed-size ring, is not the message size.
    #[inline]
    pub fn value_mut<T: bytemuck::Pod>(&mut self) -> Result<&mut T, Error> {
        let size = std::mem::size_of::<T>();
        let capacity = self.producer.max_message_len();
        if size > capacity || std::mem::align_of::<T>() > 8 || (self.producer.fixed && size != capacity) {
            return Err(Error::TypeMismatch {
                size,
                align: std::mem::align_of::<T>(),
                capacity,
            });
        }
        self.len = size;
        bytemuck::try_from_bytes_mut(&mut self.payload_mut()[..size]).map_err(|_| Error::TypeMismatch {
            size,
            align: std::mem::align_of::<T>(),
            capacity,
        })
    }

    /// Publishes the slot now (dropping the guard does the same).
    #[inline]
    pub fn publish(self) {}
}

impl Drop for Claim<'_> {
    #[inline]
    fn drop(&mut self) {
        // The write ends before the publish lets consumers read the slot.
        self.track.end();
        if self.producer.fixed {
            // No header to mark it skipped: a panic publishes nothing (the next claim
            // writes the slot again).
            if !std::thread::panicking() {
                self.producer.publish_range(self.sequence + 1);
            }
            return;
        }
        let (len, flags) = if std::thread::panicking() {
            (0, SLOT_SKIPPED)
        } else {
            (self.len, 0)
        };
        self.producer.commit(self.sequence, len, flags);
        self.producer.publish_range(self.sequence + 1);
    }
}

/// `n` consecutive claimed slots, written in place and published together when dropped.
///
/// Slot `i` holds sequence `first_sequence() + i`. A slot's length is its whole payload
/// unless [`BatchClaim::set_len`] says otherwise. Dropped during a panic, every slot is
/// published as skipped (in a fixed-size ring, nothing is published).
pub struct BatchClaim<'a> {
    producer: &'a mut Producer,
    start: u64,
    count: u64,
}

impl fmt::Debug for BatchClaim<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchClaim")
            .field("start", &self.start)
            .field("count", &self.count)
            .finish()
    }
}

impl<'a> BatchClaim<'a> {
    fn new(producer: &'a mut Producer, start: u64, count: u64) -> Self {
        for sequence in start..start + count {
            producer.await_slot(sequence);
        }
        BatchClaim {
            producer,
            start,
            count,
        }
    }

    /// The header that records slot `sequence`'s pending length until the publish: it keeps
    /// the previous lap's stamp (so it publishes nothing) and carries `SLOT_PENDING_LEN`.
    #[inline]
    fn pending_header(&self, sequence: u64, len: usize) -> u64 {
        let previous = sequence.wrapping_sub(self.producer.shared.capacity());
        layout::slot_header(previous, len, SLOT_PENDING_LEN)
    }

    /// The sequence of slot 0.
    #[inline]
    pub fn first_sequence(&self) -> u64 {
        self.start
    }

    /// Number of slots.
    #[inline]
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the batch has no slots.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The payload of slot `i`, or `None` if `i >= len()`.
    #[inline]
    pub fn slot_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        if i as u64 >= self.count {
            return None;
        }
        let sequence = self.start + i as u64;
        let cap = self.producer.max_message_len();
        // SAFETY: slot `i` is claimed by this guard alone until it publishes, no consumer
        // reads it before then, and the payload is `cap` bytes. `&mut self` ties the slice to
        // the guard, so two slots are never borrowed at once through it.
        Some(unsafe { std::slice::from_raw_parts_mut(self.producer.shared.payload(sequence), cap) })
    }

    /// Sets the length of slot `i`.
    ///
    /// # Errors
    ///
    /// [`PublishError::TooLarge`] if `len` exceeds the payload (in a fixed-size ring
    /// [`PublishError::WrongSize`] unless it is the message size), [`PublishError::NoSuchSlot`]
    /// if `i >= len()`.
    #[inline]
    pub fn set_len(&mut self, i: usize, len: usize) -> Result<(), PublishError> {
        self.producer.check_len(len)?;
        if i as u64 >= self.count {
            return Err(PublishError::NoSuchSlot {
                index: i,
                len: self.len(),
            });
        }
        if self.producer.fixed {
            return Ok(()); // every message is the whole slot
        }
        let sequence = self.start + i as u64;
        let pending = self.pending_header(sequence, len);
        // Relaxed: not a publish (the stamp is the old lap's); read back by this thread.
        self.producer.shared.slot_header(sequence).store_relaxed(pending);
        Ok(())
    }

    #[inline]
    fn fill_from<M: AsRef<[u8]>>(mut self, messages: &[M]) -> u64 {
        for (i, m) in messages.iter().enumerate() {
            let data = m.as_ref();
            let sequence = self.start + i as u64;
            self.producer.copy_in(sequence, data);
            // Lengths were checked by the caller; `set_len` cannot fail here.
            let _ = self.set_len(i, data.len());
        }
        self.start
    }

    /// Publishes every slot now (dropping the guard does the same).
    #[inline]
    pub fn publish(self) {}
}

impl Drop for BatchClaim<'_> {
    #[inline]
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        let end = self.start + self.count;
        if self.producer.fixed {
            // The cursor is the only publish; a panic publishes nothing (no skip flag).
            if !panicking && self.count > 0 {
                self.producer.publish_range(end);
            }
            return;
        }
        // The first slot last, so its stamp publishes the batch whole (see `write_slots`).
        let order = (self.start + 1..end).chain((self.count > 0).then_some(self.start));
        let whole = self.producer.max_message_len();
        for sequence in order {
            // Relaxed: our own pending header, written by this thread, or (no `set_len`) still
            // the previous lap's, whose length is not this message's.
            let pending =
                layout::SlotHeader::decode(self.producer.shared.slot_header(sequence).load_relaxed());
            if panicking {
                self.producer.commit(sequence, 0, SLOT_SKIPPED);
            } else if pending.flags & SLOT_PENDING_LEN != 0 {
                self.producer.commit(sequence, pending.len, 0);
            } else {
                self.producer.commit(sequence, whole, 0);
            }
        }
        if self.count > 0 {
            self.producer.publish_range(end);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::layout;
    use crate::Ring;

    /// A single producer that dies inside a batch leaves slots stamped past the unstamped first
    /// one; its successor must not let a caught-up consumer read them as published.
    #[test]
    fn a_successor_unstamps_what_a_producer_died_writing() {
        let ring = Ring::builder().capacity(8).slot_size(16).build().unwrap();
        let mut consumer = ring.subscriber("c").attach().unwrap();
        let mut first = ring.producer().unwrap();
        first.try_publish(b"0").unwrap();
        assert_eq!(consumer.try_poll(8).iter().count(), 1);
        // What `write_slots` leaves of a batch 1..4 when its producer dies before the end:
        // slots 2 and 3 stamped, slot 1 (stamped last) not, the cursor still at 1.
        let shared = &ring.shared;
        for sequence in 2..4 {
            shared
                .slot_header(sequence)
                .store_release(layout::slot_header(sequence, 1, 0));
        }
        drop(first);
        let mut second = ring.producer().unwrap();
        assert_eq!(second.try_publish(b"a").unwrap(), 1);
        let got: Vec<(u64, Vec<u8>)> = consumer
            .try_poll(8)
            .iter()
            .map(|m| (m.sequence(), m.to_vec()))
            .collect();
        assert_eq!(got, vec![(1, b"a".to_vec())]);
        assert!(consumer.try_poll(8).is_empty(), "a dead batch's slot was read");
        assert_eq!(second.try_publish(b"b").unwrap(), 2);
        let got: Vec<Vec<u8>> = consumer.try_poll(8).iter().map(|m| m.to_vec()).collect();
        assert_eq!(got, vec![b"b".to_vec()]);
    }

    /// Multi-producer commits are compare-exchanges (a reaper's skip can beat them) exactly
    /// where a reaper can skip: on a ring in a file, shared between processes.
    #[test]
    fn commits_are_defended_exactly_on_shared_multi_producer_rings() {
        let builder = || Ring::builder().capacity(8).slot_size(16);
        let heap = builder().multi_producer().build().unwrap();
        assert!(!heap.producer().unwrap().defended);
        let dir = tempfile::tempdir().unwrap();
        let shared = builder().multi_producer().create(dir.path().join("mp")).unwrap();
        assert!(shared.producer().unwrap().defended);
        let single = builder().create(dir.path().join("sp")).unwrap();
        assert!(!single.producer().unwrap().defended);
    }
}
