//! Single producer, slots with headers.
//!
//! The producer keeps its next sequence and a cached write limit in its own memory: a claim is
//! a compare with the cache, no read-modify-write. A message is published by its slot's stamp
//! (`[stamp]`, a Release store of the header word); the cursor (`[cursor]`) publishes whole
//! batches, and follows single publishes only every `Layout::cursor_every` messages, so that
//! consumers reading it do not pull its line away from the producer on nearly every message.
//!
//! A consumer first reads stamps, from the slot it wants next, up to [`STAMP_SCAN`] of them:
//! unpublished at once means nothing new (one line polled, the line the producer writes next,
//! so a message reaches a caught-up consumer in one line transfer); a consumer a few messages
//! behind a producer that publishes one at a time finds them by their stamps, on lines it
//! reads next anyway, and leaves the cursor alone. A full run of stamps means a batch: the
//! consumer reads the cursor once for its extent, as the Disruptor does, and then touches only
//! finished slots. The few single publishes past the cursor are found by their stamps (under
//! half a lap, so all of the current lap).
//!
//! A batch stamps its first slot last (`fill_headers`), so the stamp a caught-up consumer
//! waits on shows the batch whole: it never chases the producer slot by slot through a batch.
//!
//! A producer taking over from a dead one starts past any slot its predecessor stamped
//! ([`adopt_stamped`]), and unstamps what it left of a batch past an unstamped first slot.

use super::{copy_payload, first_unstamped, give_up_role, is_stamped, notify, take_role, Claims, LocalClaim};
use crate::error::{AttachError, PublishError};
use crate::layout::slot::slot_header;
use crate::limits::MAX_SEQUENCE;
use crate::shared::{Attached, Shared};
use crate::storage::Slots;
use crate::wait::WaitStrategy;
use std::time::Instant;

/// How many slot stamps a consumer reads before it asks the cursor how far a batch goes.
pub(crate) const STAMP_SCAN: u64 = 8;

/// The single producer's state.
#[derive(Debug)]
pub(crate) struct Single {
    claim: LocalClaim,
    /// `Layout::cursor_every() - 1`: a single publish stores the cursor when the sequence
    /// after it has none of these bits.
    cursor_mask: u64,
    /// Whether the ring runs wake-ups, kept so a publish reads nothing of `Shared`.
    wakeups: bool,
}

impl Single {
    /// Takes the producer role, continuing after the last published message.
    pub(crate) fn new(shared: &Shared) -> Result<Self, AttachError> {
        take_role(shared)?;
        let cursor = super::start_from_cursor(shared)?;
        let next = adopt_stamped(shared, cursor);
        Ok(Single {
            claim: LocalClaim::new(shared, next),
            cursor_mask: shared.layout.cursor_every() - 1,
            wakeups: shared.wakeups,
        })
    }
}

impl Claims for Single {
    const HEADERS: bool = true;

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

    // Always inlined, with the copy: this is a message's whole publish.
    #[inline(always)]
    fn write_one(&mut self, att: &Attached, start: u64, data: &[u8]) -> Result<u64, PublishError> {
        let slots = att.slots();
        // SAFETY: the slot of `start` is this single producer's claim, free to write (the
        // write limit), and the caller checked `data.len()` against the payload.
        unsafe { copy_payload(att, slots, start, data) };
        // [stamp] Release: pairs with the consumers' Acquire (`is_stamped`, the busy-spin wait);
        // this publishes the message.
        slots
            .header(start)
            .store_release(slot_header(start, data.len(), 0));
        let next = start + 1;
        self.claim.next = next;
        if next & self.cursor_mask == 0 {
            // [cursor] Release: as in `publish`.
            att.sequence().store_release(next);
        }
        notify(att, self.wakeups);
        Ok(start)
    }

    #[inline(always)]
    fn prepare(&self, _att: &Attached, _sequence: u64) {}

    #[inline(always)]
    fn commit(&mut self, slots: Slots<'_>, sequence: u64, len: usize, flags: u8) -> bool {
        // [stamp] Release: publishes the slot on its own to a consumer waiting on it; the
        // [cursor] store in `publish` publishes whole batches too.
        slots
            .header(sequence)
            .store_release(slot_header(sequence, len, flags));
        true
    }

    #[inline(always)]
    fn publish(&mut self, att: &Attached, end: u64) {
        self.claim.next = end;
        // [cursor] Release: pairs with the Acquire in `published_past` (and in
        // `next_sequence` and a later producer's `new`).
        att.sequence().store_release(end);
        notify(att, self.wakeups);
    }

    fn release(&mut self, att: &Attached) {
        // [cursor] Release: exact at rest (single publishes let it lag).
        att.sequence().store_release(self.claim.next);
        give_up_role(att.shared());
    }
}

// ---- the consumer half --------------------------------------------------------------------

/// `sequencer::published_until` for a single producer: the stamps of up to [`STAMP_SCAN`]
/// slots from `from`, then, if all are published, the cursor (`end` is at most a lap ahead).
#[inline(always)]
pub(super) fn published_until(att: &Attached, from: u64, end: u64) -> u64 {
    // Saturating: `from` may come from shared memory.
    let scan_end = from.saturating_add(STAMP_SCAN).min(end);
    let s = first_unstamped(att.slots(), from, scan_end);
    if s < scan_end || s == end {
        return s;
    }
    published_past(att.shared(), att.slots(), s, end)
}

/// `published_until` for a consumer that found `STAMP_SCAN` stamps up to `stamped`: the
/// cursor's extent. Out of line: a consumer that keeps up never gets here, and its polls
/// stay short.
#[inline(never)]
fn published_past(shared: &Shared, slots: Slots<'_>, stamped: u64, end: u64) -> u64 {
    // [cursor] Acquire: pairs with the producer's Release stores (`publish`, `write_one`,
    // `release`): every slot below the cursor is written. It may lag the stamps just seen,
    // and single publishes past it: those few are found by their stamps.
    let cursor = shared.cursor().load_acquire().max(stamped).min(end);
    let lag_end = cursor.saturating_add(shared.layout.cursor_every() - 1).min(end);
    first_unstamped(slots, cursor, lag_end)
}

/// The next sequence to be published: the cursor, and the stamped slots past it.
pub(super) fn next_sequence(shared: &Shared) -> u64 {
    // Acquire: pairs with the producer's [cursor] Release store.
    let cursor = shared.cursor().load_acquire();
    stamped_past(shared, cursor)
}

/// Where the run of stamped slots that starts at `cursor` ends: the first unpublished
/// sequence, since single publishes let the cursor lag their stamps and a producer may die
/// between its stamps and its cursor. At most a lap is looked at (the cursor may come from a
/// peer writing into the mapping).
fn stamped_past(shared: &Shared, cursor: u64) -> u64 {
    let end = cursor.saturating_add(shared.capacity()).min(MAX_SEQUENCE);
    first_unstamped(shared.slots(), cursor, end)
}

/// A single producer starting at `cursor` after another: slots its predecessor finished
/// (stamped) but did not cover with the cursor before it died may already have been read by
/// consumers (a stamp publishes), so they count as published, and the cursor moves past
/// them. Returns where this producer continues.
///
/// Right after the first unstamped slot, a run of slots stamped with their own sequences is
/// what is left of a batch the predecessor died writing (a batch stamps its slots in order
/// but its first slot last): never published, since no consumer passes the unstamped slot,
/// but a caught-up consumer reads stamps, so the run is unstamped (given the stamp of the lap
/// before, as a fresh ring has) before this producer publishes the slot in front of it.
fn adopt_stamped(shared: &Shared, cursor: u64) -> u64 {
    let capacity = shared.capacity();
    let next = stamped_past(shared, cursor);
    if next != cursor {
        // [cursor] Release: as in `publish`.
        shared.cursor().store_release(next);
    }
    let slots = shared.slots();
    let end = next.saturating_add(capacity).min(MAX_SEQUENCE);
    let mut sequence = next.saturating_add(1);
    while sequence < end && is_stamped(slots, sequence) {
        let unpublished = slot_header(sequence.wrapping_sub(capacity), 0, 0);
        // Relaxed: no consumer reads this slot before this producer publishes the one in
        // front of it (with Release, after this store).
        slots.header(sequence).store_relaxed(unpublished);
        sequence += 1;
    }
    next
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::layout::slot::slot_header;
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
        // What `fill_headers` leaves of a batch 1..4 when its producer dies before the end:
        // slots 2 and 3 stamped, slot 1 (stamped last) not, the cursor still at 1.
        let shared = &ring.shared;
        for sequence in 2..4 {
            shared
                .slot_header(sequence)
                .store_release(slot_header(sequence, 1, 0));
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
}
