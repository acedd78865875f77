//! Fixed size: one producer, slots without headers (a slot is the payload alone, every
//! message `slot_size` bytes). With no stamps, the cursor (`[cursor]`) is the only publish,
//! as in the Disruptor: a consumer reads it (clamped to a lap ahead of itself, since a peer
//! may have written it) and the producer stores it once per publish or batch.
//!
//! A claim that panics publishes nothing (there is no skipped flag to mark its slots): the
//! next claim writes the same slots again. The slots being the payloads back to back, a run
//! of messages is one run of bytes (two where it wraps), which `write_values` copies in
//! whole.

use super::{copy_payload, give_up_role, notify, take_role, Claims, LocalClaim};
use crate::error::{AttachError, PublishError};
use crate::shared::{Attached, Shared};
use crate::storage::Slots;
use crate::wait::WaitStrategy;
use std::time::Instant;

/// The fixed-size ring's producer state.
#[derive(Debug)]
pub(crate) struct Fixed {
    /// The claims; the cursor is always at their `next` at rest.
    claim: LocalClaim,
    /// Whether the ring runs wake-ups, kept so a publish reads nothing of `Shared`.
    wakeups: bool,
}

impl Fixed {
    /// Takes the producer role, continuing at the cursor (exact: it is the only publish).
    pub(crate) fn new(shared: &Shared) -> Result<Self, AttachError> {
        take_role(shared)?;
        let next = super::start_from_cursor(shared)?;
        Ok(Fixed {
            claim: LocalClaim::new(shared, next),
            wakeups: shared.wakeups,
        })
    }
}

impl Claims for Fixed {
    const HEADERS: bool = false;

    #[inline(always)]
    fn try_claim(&mut self, att: &Attached, n: u64) -> Result<u64, PublishError> {
        self.claim.try_claim(att, n)
    }

    fn claim_slow(
        &mut self,
        att: &Attached,
        n: u64,
        deadline: Option<Instant>,
        wait: WaitStrategy,
    ) -> Result<u64, PublishError> {
        self.claim.claim_slow(att, n, deadline, wait)
    }

    #[inline(always)]
    fn write_one(&mut self, att: &Attached, start: u64, data: &[u8]) -> Result<u64, PublishError> {
        // SAFETY: the slot of `start` is this single producer's claim, free to write (the
        // write limit), and the caller checked that `data` is the message size.
        unsafe { copy_payload(att, att.slots(), start, data) };
        self.publish(att, start + 1);
        Ok(start)
    }

    /// Kept apart from the header rings' loop, with the kept slot array and no unwind guard
    /// (a panicking `fill` publishes nothing, so none is needed): every store here is one
    /// more entry in the store buffer that the slot stores wait behind between two cores (the
    /// `perf/` spsc "fixed-size (batch 64)" scenario guards this).
    #[inline(always)]
    fn fill<F>(&mut self, att: &Attached, start: u64, count: u64, mut fill: F) -> Result<u64, PublishError>
    where
        F: FnMut(usize, &mut [u8]) -> usize,
    {
        let slots = att.slots();
        let shared = att.shared();
        let capacity = slots.payload_capacity();
        let end = start + count;
        for sequence in start..end {
            let mut track = shared
                .region
                .track_write(crate::atomic::slot_index(sequence, shared.capacity()));
            // SAFETY: the slot is claimed by this producer alone and no consumer reads it
            // before the cursor passes it; the payload is `capacity` bytes.
            let payload = unsafe { std::slice::from_raw_parts_mut(slots.payload(sequence), capacity) };
            // A fixed-size message is the whole payload, whatever length `fill` returns.
            let _ = fill((sequence - start) as usize, payload);
            track.end();
        }
        self.publish(att, end);
        Ok(start)
    }

    #[inline(always)]
    fn write_values<T: bytemuck::NoUninit>(
        &mut self,
        att: &Attached,
        start: u64,
        values: &[T],
    ) -> Result<u64, PublishError> {
        let size = std::mem::size_of::<T>();
        // Under loom every slot's write is tracked on its own (the slot by slot path).
        if cfg!(loom) {
            return self.fill(att, start, values.len() as u64, |i, slot| {
                slot.copy_from_slice(bytemuck::bytes_of(&values[i]));
                size
            });
        }
        // The caller checked that `size` is the ring's message size, at least
        // `MIN_FIXED_SIZE`: a non-empty `T`, whose slice casts to bytes.
        let bytes: &[u8] = bytemuck::cast_slice(values);
        let count = values.len() as u64;
        let slots = att.slots();
        let first = slots.before_wrap(start, count);
        let (head, tail) = bytes.split_at(first as usize * size);
        // SAFETY: a fixed-size ring's slots are its payloads back to back, so the `first`
        // slots from `start` (not past the ring's end) and the rest from the first slot are
        // runs of `head.len()` and `tail.len()` bytes; this producer alone claimed them and no
        // gating consumer still reads them (write limit); the source is a separate Rust slice.
        unsafe {
            std::ptr::copy_nonoverlapping(head.as_ptr(), slots.payload(start), head.len());
            if !tail.is_empty() {
                std::ptr::copy_nonoverlapping(tail.as_ptr(), slots.payload(start + first), tail.len());
            }
        }
        // The cursor publishes the whole batch.
        self.publish(att, start + count);
        Ok(start)
    }

    #[inline(always)]
    fn prepare(&self, _att: &Attached, _sequence: u64) {}

    /// A fixed-size ring has no headers: nothing to commit (the cursor publishes).
    #[inline(always)]
    fn commit(&mut self, _slots: Slots<'_>, _sequence: u64, _len: usize, _flags: u8) -> bool {
        true
    }

    #[inline(always)]
    fn publish(&mut self, att: &Attached, end: u64) {
        self.claim.next = end;
        // [cursor] Release: pairs with the Acquire in `published_until` (and in
        // `next_sequence` and a later producer's `new`): the slots below `end` are written.
        att.sequence().store_release(end);
        notify(att, self.wakeups);
    }

    fn release(&mut self, att: &Attached) {
        // [cursor] Release: as in `publish` (already exact: every publish stores it).
        att.sequence().store_release(self.claim.next);
        give_up_role(att.shared());
    }
}

// ---- the consumer half --------------------------------------------------------------------

/// `sequencer::published_until` for a fixed-size ring: the cursor, clamped to `from..=end`
/// (a cursor written by a peer into the mapping may be anything).
///
/// A look that finds nothing new pauses (one spin-loop hint) before it returns. The cursor
/// line is written by every publish and read by every look: a caught-up consumer that looks
/// again at once takes the line back from the producer between two of its publishes, and the
/// producer's next cursor store waits for it, with every slot store behind it. A header ring
/// does not need this, its consumer looks at the slot the producer writes next anyway. (The
/// `perf/` spsc scenario "ringmq fixed-size (single)" in far placement guards this.)
#[inline(always)]
pub(super) fn published_until(shared: &Shared, from: u64, end: u64) -> u64 {
    // [cursor] Acquire: pairs with the producer's Release in `publish`.
    let cursor = shared.cursor().load_acquire();
    if cursor <= from {
        caught_up();
    }
    cursor.clamp(from, end)
}

/// The pause of a look that found nothing new, out of line: it is the caught-up path.
#[cold]
#[inline(never)]
fn caught_up() {
    crate::sync::spin_loop();
}

/// The next sequence to be published: the cursor (exact: it is the only publish).
pub(super) fn next_sequence(shared: &Shared) -> u64 {
    // [cursor] Acquire: as in `published_until`.
    shared.cursor().load_acquire()
}
