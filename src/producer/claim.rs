//! Claimed slots written in place: [`Claim`] (one slot) and [`BatchClaim`] (several), guards
//! that publish when they drop.

use super::{check_message_len, dispatch, Producer};
use crate::error::{PublishError, TypeError};
use crate::layout::slot::{
    check_type, slot_header, SlotHeader, SLOT_FRAGMENT_MASK, SLOT_PENDING_LEN, SLOT_SKIPPED,
};
use crate::sequencer::{Claims, Sequencer};
use crate::shared::Attached;
use crate::storage::WriteTrack;
use std::fmt;

/// One claimed slot, written in place; publishes when dropped.
///
/// The payload is [`Claim::payload_mut`]; the message length is the whole payload unless
/// [`Claim::set_len`] or [`Claim::write`] says otherwise. If the guard is dropped while the
/// thread panics, the slot is published as skipped, so consumers pass over it and are never
/// stalled by it (in a fixed-size ring, nothing is published and the next claim writes the
/// slot again).
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
    #[inline(always)]
    pub(super) fn new(producer: &'a mut Producer, sequence: u64) -> Self {
        dispatch!(producer, m => m.prepare(&producer.att, sequence));
        let len = producer.max_len;
        let shared = producer.att.shared();
        let track = shared
            .region
            .track_write(crate::atomic::slot_index(sequence, shared.capacity()));
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
        let cap = self.producer.max_len;
        let payload = self.producer.att.slots().payload(self.sequence);
        // SAFETY: this guard holds the only claim on the slot until it publishes (the
        // sequencer's claim, and `prepare` in `new`), no consumer reads it before the publish
        // (gating), and the payload is `cap` bytes long. The `&mut self` borrow ties the slice
        // to the guard.
        unsafe { std::slice::from_raw_parts_mut(payload, cap) }
    }

    /// Sets the message length.
    ///
    /// # Errors
    ///
    /// [`PublishError::TooLarge`] if `len` exceeds the payload; in a fixed-size ring
    /// [`PublishError::WrongSize`] unless `len` is its message size.
    #[inline]
    pub fn set_len(&mut self, len: usize) -> Result<(), PublishError> {
        check_message_len(!self.producer.is_fixed_size(), len, self.producer.max_len)?;
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
    /// [`TypeError::Mismatch`] if `T` is larger than the payload or needs alignment above 8,
    /// or, in a fixed-size ring, is not the message size.
    #[inline]
    pub fn value_mut<T: bytemuck::Pod>(&mut self) -> Result<&mut T, TypeError> {
        let capacity = self.producer.max_len;
        check_type::<T>(capacity, self.producer.is_fixed_size())?;
        let size = std::mem::size_of::<T>();
        self.len = size;
        bytemuck::try_from_bytes_mut(&mut self.payload_mut()[..size]).map_err(|_| TypeError::Mismatch {
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
        let (sequence, len, panicking) = (self.sequence, self.len, std::thread::panicking());
        let producer = &mut *self.producer;
        dispatch!(producer, m => finish_one(m, &producer.att, sequence, len, panicking));
    }
}

/// Publishes the claimed slot of `sequence` with `len` bytes, or as skipped if the writer
/// `panicking` (in a fixed-size ring, which has no skipped flag: nothing).
#[inline(always)]
fn finish_one<M: Claims>(m: &mut M, att: &Attached, sequence: u64, len: usize, panicking: bool) {
    if !M::HEADERS {
        if !panicking {
            m.publish(att, sequence + 1);
        }
        return;
    }
    let (len, flags) = if panicking { (0, SLOT_SKIPPED) } else { (len, 0) };
    m.before_commit();
    m.commit(att.slots(), sequence, len, flags);
    m.publish(att, sequence + 1);
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
    pub(super) fn new(producer: &'a mut Producer, start: u64, count: u64) -> Self {
        for sequence in start..start + count {
            dispatch!(producer, m => m.prepare(&producer.att, sequence));
        }
        BatchClaim {
            producer,
            start,
            count,
        }
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
        let payload = self.producer.att.slots().payload(self.start + i as u64);
        // SAFETY: slot `i` is claimed by this guard alone until it publishes, no consumer
        // reads it before then, and the payload is `max_len` bytes. `&mut self` ties the slice
        // to the guard, so two slots are never borrowed at once through it.
        Some(unsafe { std::slice::from_raw_parts_mut(payload, self.producer.max_len) })
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
        let fixed = self.producer.is_fixed_size();
        check_message_len(!fixed, len, self.producer.max_len)?;
        if i as u64 >= self.count {
            return Err(PublishError::NoSuchSlot {
                index: i,
                len: self.len(),
            });
        }
        if fixed {
            return Ok(()); // every message is the whole slot
        }
        self.set_pending(self.start + i as u64, len, 0);
        Ok(())
    }

    /// Copies `data` (at most a slot's payload, checked by the caller) into slot `i`, to be
    /// published with its length and the fragment `flags` (none in a fixed-size ring, whose
    /// slots have no header and whose messages are their whole slot).
    pub(super) fn fill_slot(&mut self, i: usize, data: &[u8], flags: u8) {
        debug_assert!(data.len() <= self.producer.max_len && (i as u64) < self.count);
        let sequence = self.start + i as u64;
        let shared = self.producer.att.shared();
        let _track = shared
            .region
            .track_write(crate::atomic::slot_index(sequence, shared.capacity()));
        let payload = self.producer.att.slots().payload(sequence);
        // SAFETY: the slot is claimed by this guard alone (as in `slot_mut`); `data.len()` is
        // at most the payload capacity; the source is a separate Rust slice.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), payload, data.len()) };
        if !self.producer.is_fixed_size() {
            self.set_pending(sequence, data.len(), flags);
        }
    }

    /// Records slot `sequence`'s length and fragment flags until the publish: the header
    /// keeps the previous lap's stamp (so it publishes nothing) and carries
    /// `SLOT_PENDING_LEN`.
    #[inline]
    fn set_pending(&mut self, sequence: u64, len: usize, flags: u8) {
        let previous = sequence.wrapping_sub(self.producer.att.shared().capacity());
        let pending = slot_header(previous, len, SLOT_PENDING_LEN | flags);
        // Relaxed: not a publish (the stamp is the old lap's); read back by this thread.
        self.producer.att.slots().header(sequence).store_relaxed(pending);
    }

    /// Copies `messages` (lengths checked by the caller) into the slots, and publishes.
    #[inline]
    pub(super) fn fill_from<M: AsRef<[u8]>>(mut self, messages: &[M]) -> u64 {
        for (i, m) in messages.iter().enumerate() {
            self.fill_slot(i, m.as_ref(), 0);
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
        let (start, count, panicking) = (self.start, self.count, std::thread::panicking());
        let producer = &mut *self.producer;
        dispatch!(producer, m => finish_batch(m, &producer.att, start, count, panicking));
    }
}

/// Publishes the claimed slots `start..start + count`, each with the length `set_len`
/// recorded (or its whole payload), or as skipped if the writer is `panicking` (in a
/// fixed-size ring: nothing).
fn finish_batch<M: Claims>(m: &mut M, att: &Attached, start: u64, count: u64, panicking: bool) {
    let end = start + count;
    if !M::HEADERS {
        if !panicking && count > 0 {
            m.publish(att, end);
        }
        return;
    }
    m.before_commit();
    let slots = att.slots();
    let whole = slots.payload_capacity();
    // The first slot last, so its stamp publishes the batch whole (see `fill_headers`).
    let order = (start + 1..end).chain((count > 0).then_some(start));
    for sequence in order {
        // Relaxed: our own pending header, written by this thread, or (no `set_len`) still
        // the previous lap's, whose length is not this message's.
        let pending = SlotHeader::decode(slots.header(sequence).load_relaxed());
        if panicking {
            m.commit(slots, sequence, 0, SLOT_SKIPPED);
        } else if pending.flags & SLOT_PENDING_LEN != 0 {
            let flags = pending.flags & (SLOT_FRAGMENT_MASK | SLOT_SKIPPED);
            m.commit(slots, sequence, pending.len, flags);
        } else {
            m.commit(slots, sequence, whole, 0);
        }
    }
    if count > 0 {
        m.publish(att, end);
    }
}
