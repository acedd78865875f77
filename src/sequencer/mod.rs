//! The sequencer: how sequences are claimed and published, one type per producer mode, each
//! holding both halves of publication (as LMAX's `Sequencer` does): the producer's claim,
//! write and commit, and the consumer's "published up to where".
//!
//! | mode | file | claim | publish | a consumer finds published slots by |
//! |---|---|---|---|---|
//! | single producer | `single.rs` | local `next`, cached limit, no RMW | the slot's stamp; the cursor for batches (and every [`crate::layout::CURSOR_EVERY`] single publishes) | up to 8 stamps, then the cursor |
//! | multi producer | `multi.rs` | `fetch_add` (blocking) or CAS (`try_`) of the claim counter | the slot's stamp alone (a CAS on a shared ring) | stamps, all the way |
//! | fixed size | `fixed.rs` | as single | the cursor alone (no slot headers) | the cursor |
//!
//! The two tags of publication:
//!
//! - `[stamp]`: a producer writes the payload, then the slot header word carrying the
//!   sequence's stamp with Release (`layout/slot.rs`); a consumer loads it with Acquire and,
//!   seeing the stamp, reads the payload.
//! - `[cursor]`: a single (or fixed-size) producer stores the cursor with Release after the
//!   slots below it are written; a consumer loads it with Acquire.
//!
//! [`Sequencer`] is what a `Producer` holds: an enum of the three, dispatched by one `match`
//! per operation into code generic over [`Claims`], so each mode's publish is compiled on
//! its own, with no `dyn` and no mode test inside it. The consumer half is a set of free
//! functions that dispatch on the ring's [`SequencerKind`].

pub(crate) mod fixed;
pub(crate) mod multi;
pub(crate) mod single;

use crate::atomic::Word;
use crate::error::{AttachError, PublishError};
use crate::layout::slot::{stamp, SlotHeader, SLOT_SKIPPED};
use crate::layout::SequencerKind;
use crate::liveness::PRODUCER_LOCK;
use crate::reaper::Reaper;
use crate::shared::{Attached, Shared};
use crate::storage::Slots;
use crate::wait::WaitStrategy;
use std::time::Instant;

pub(crate) use fixed::Fixed;
pub(crate) use multi::Multi;
pub(crate) use single::Single;

/// A producer's sequencer, one variant per mode.
#[derive(Debug)]
pub(crate) enum Sequencer {
    Single(Single),
    Multi(Multi),
    Fixed(Fixed),
}

impl Sequencer {
    /// Takes the producer role of the ring: the single producer's role (continuing where the
    /// last one stopped), or an entry of the multi-producer table.
    pub(crate) fn new(shared: &Shared) -> Result<Self, AttachError> {
        Ok(match shared.layout.sequencer {
            SequencerKind::Single => Sequencer::Single(Single::new(shared)?),
            SequencerKind::Multi => Sequencer::Multi(Multi::new(shared)?),
            SequencerKind::Fixed => Sequencer::Fixed(Fixed::new(shared)?),
        })
    }
}

/// A producer mode's half of publication: claiming, writing and publishing. One
/// implementation per mode; the `Producer`'s operations are generic over it.
pub(crate) trait Claims {
    /// Whether the slots carry headers (a stamp, a length, the skipped flag).
    const HEADERS: bool;

    /// Claims `n` sequences without waiting; [`PublishError::Full`] if there is no room.
    fn try_claim(&mut self, att: &Attached, n: u64) -> Result<u64, PublishError>;

    /// Claims `n` sequences, waiting by `wait` until `deadline` (after a `try_claim` said
    /// `Full`).
    fn claim_slow(
        &mut self,
        att: &Attached,
        n: u64,
        deadline: Option<Instant>,
        wait: WaitStrategy,
    ) -> Result<u64, PublishError>;

    /// Writes `data` into the claimed slot of `start` and publishes it.
    fn write_one(&mut self, att: &Attached, start: u64, data: &[u8]) -> Result<u64, PublishError>;

    /// Writes the claimed slots `start..start + count` through `fill` and publishes them
    /// together; see `Producer::try_publish_batch_with` for what a panicking `fill` leaves.
    /// By default the header rings' loop ([`fill_headers`]).
    #[inline]
    fn fill<F>(&mut self, att: &Attached, start: u64, count: u64, fill: F) -> Result<u64, PublishError>
    where
        F: FnMut(usize, &mut [u8]) -> usize,
        Self: Sized,
    {
        fill_headers(self, att, start, count, fill)
    }

    /// Writes `values`, one message each, into the claimed slots from `start` and publishes
    /// them together. By default slot by slot, through [`Claims::fill`].
    #[inline(always)]
    fn write_values<T: bytemuck::NoUninit>(
        &mut self,
        att: &Attached,
        start: u64,
        values: &[T],
    ) -> Result<u64, PublishError>
    where
        Self: Sized,
    {
        let size = std::mem::size_of::<T>();
        self.fill(att, start, values.len() as u64, |i, slot| {
            slot[..size].copy_from_slice(bytemuck::bytes_of(&values[i]));
            size
        })
    }

    /// Before writing the claimed slot of `sequence`: waits until it is free to write (a
    /// multi-producer waits for the previous lap's publish).
    fn prepare(&self, att: &Attached, sequence: u64);

    /// Writes the header of the claimed slot of `sequence` (`[stamp]`); false if the slot was
    /// given up as a dead producer's first (see `table/producers.rs`). Not for fixed-size
    /// rings.
    fn commit(&mut self, slots: Slots<'_>, sequence: u64, len: usize, flags: u8) -> bool;

    /// After the slots below `end` are committed: publishes them (`[cursor]`, or the
    /// multi-producer's `[floor]` going idle) and wakes sleeping consumers.
    fn publish(&mut self, att: &Attached, end: u64);

    /// Where a test can stop a producer between its claim and its commit (`test_hooks.rs`).
    fn before_commit(&self) {}

    /// How many commits lost to a skip (see `crate::Producer::abandoned`).
    fn abandoned(&self) -> u64 {
        0
    }

    /// Gives the producer role back (the handle drops).
    fn release(&mut self, att: &Attached);
}

/// Claims `n` sequences: at once if there is room, else waiting by `wait` until `deadline`.
#[inline(always)]
pub(crate) fn claim<M: Claims>(
    m: &mut M,
    att: &Attached,
    n: u64,
    deadline: Option<Instant>,
    wait: WaitStrategy,
) -> Result<u64, PublishError> {
    match m.try_claim(att, n) {
        Err(PublishError::Full) => m.claim_slow(att, n, deadline, wait),
        other => other,
    }
}

// ---- the consumer half -------------------------------------------------------------------

/// The first sequence at or after `from` that is not yet published, looking at most `max`
/// slots ahead (and never more than a lap), for the consumer whose view of the ring is `att`.
#[inline(always)]
pub(crate) fn published_until(att: &Attached, from: u64, max: u64) -> u64 {
    let shared = att.shared();
    let end = from.saturating_add(max.min(shared.capacity()));
    match shared.layout.sequencer {
        SequencerKind::Single => single::published_until(att, from, end),
        SequencerKind::Multi => multi::published_until(att.slots(), from, end),
        SequencerKind::Fixed => fixed::published_until(shared, from, end),
    }
}

/// The next sequence to be published (single producer, fixed size) or claimed (multi
/// producer: the sequences below it may still be being written).
pub(crate) fn next_sequence(shared: &Shared) -> u64 {
    match shared.layout.sequencer {
        SequencerKind::Single => single::next_sequence(shared),
        SequencerKind::Multi => multi::next_sequence(shared),
        SequencerKind::Fixed => fixed::next_sequence(shared),
    }
}

/// The word that every publish of `sequence` writes: its slot's header (or, in a fixed-size
/// ring, the cursor). A busy-spinning consumer waits for it to change, a load whose address it
/// computed once, and then asks [`published_until`].
#[inline]
pub(crate) fn publish_word(shared: &Shared, sequence: u64) -> &Word {
    match shared.layout.sequencer {
        SequencerKind::Fixed => shared.region.word(crate::layout::CURSOR),
        _ => shared.slot_header(sequence),
    }
}

/// Whether `value`, just loaded (with Acquire) from `publish_word(sequence)`, shows
/// `sequence` published: its stamp, or a fixed-size ring's cursor past it. What
/// [`published_until`] would find, from the one word.
#[inline]
pub(crate) fn shows_published(kind: SequencerKind, value: u64, sequence: u64) -> bool {
    match kind {
        SequencerKind::Fixed => value > sequence,
        _ => SlotHeader::decode(value).stamp == stamp(sequence),
    }
}

/// Whether the slot of `sequence` holds `sequence`, published (`[stamp]`).
#[inline]
pub(crate) fn is_stamped(slots: Slots<'_>, sequence: u64) -> bool {
    // [stamp] Acquire: pairs with the producer's Release header store (`Claims::commit`):
    // the payload written before it is visible.
    let header = slots.header(sequence).load_acquire();
    SlotHeader::decode(header).stamp == stamp(sequence)
}

/// The first sequence in `from..end` whose slot does not hold it, published (`end` if every
/// one does).
#[inline(always)]
pub(crate) fn first_unstamped(slots: Slots<'_>, from: u64, end: u64) -> u64 {
    let mut s = from;
    while s < end && is_stamped(slots, s) {
        s += 1;
    }
    s
}

// ---- what the single-producer modes share --------------------------------------------------

/// Takes a single-producer ring's producer role (single and fixed-size modes). The liveness
/// token comes first (see `liveness.rs`): holding it, a set ownership word can only be a dead
/// producer's, and the role passes on (the cursor it left is where this one continues).
pub(crate) fn take_role(shared: &Shared) -> Result<(), AttachError> {
    if !shared.liveness.acquire(PRODUCER_LOCK) {
        return Err(AttachError::ProducerTaken);
    }
    // AcqRel: pairs with the Release in `give_up_role`, so a new producer sees its
    // predecessor's cursor.
    if shared.producer_owned().compare_exchange_acqrel(0, 1).is_err() && !shared.liveness.is_shared() {
        shared.liveness.release(PRODUCER_LOCK);
        return Err(AttachError::ProducerTaken);
    }
    Ok(())
}

/// Gives a single-producer ring's producer role back.
pub(crate) fn give_up_role(shared: &Shared) {
    // Release: pairs with the AcqRel claim of ownership in `take_role`.
    shared.producer_owned().store_release(0);
    shared.liveness.release(PRODUCER_LOCK);
}

/// The first sequence a single (or fixed-size) producer taking the role continues from: the
/// cursor, refused if it is past the largest sequence (only a peer writing into the mapping
/// can do that).
pub(crate) fn start_from_cursor(shared: &Shared) -> Result<u64, AttachError> {
    // Acquire: pairs with the previous producer's [cursor] Release.
    let cursor = shared.cursor().load_acquire();
    if cursor > crate::limits::MAX_SEQUENCE {
        give_up_role(shared);
        return Err(AttachError::Corrupt {
            reason: format!(
                "{}: cursor {cursor} is past the largest sequence",
                shared.shown_path()
            ),
        });
    }
    Ok(cursor)
}

/// A single (or fixed-size) producer's claims: its next sequence and a cached write limit in
/// its own memory, so a claim is a compare with the cache and no read-modify-write.
#[derive(Debug)]
pub(crate) struct LocalClaim {
    /// The next sequence to claim.
    pub next: u64,
    /// Sequences below this may be written (cached; refreshed when a claim reaches it).
    limit: u64,
}

impl LocalClaim {
    /// Claims from `next`, with the write limit as the consumers' positions set it now.
    pub(crate) fn new(shared: &Shared, next: u64) -> Self {
        LocalClaim {
            next,
            limit: crate::gating::refresh_limit(shared, next, 0),
        }
    }

    /// `Claims::try_claim`: the cached limit, then (out of line) the consumers' positions.
    #[inline(always)]
    pub(crate) fn try_claim(&mut self, att: &Attached, n: u64) -> Result<u64, PublishError> {
        if self.next + n <= self.limit {
            return Ok(self.next);
        }
        self.try_claim_slow(att.shared(), n)
    }

    /// `Claims::claim_slow`.
    pub(crate) fn claim_slow(
        &mut self,
        att: &Attached,
        n: u64,
        deadline: Option<Instant>,
        wait: WaitStrategy,
    ) -> Result<u64, PublishError> {
        let shared = att.shared();
        wait_for_room(shared, wait, deadline, || self.try_claim_slow(shared, n))
    }

    /// Refreshes the cached limit from the consumers' positions (`gating.rs`) and claims `n`
    /// if they fit under it.
    #[inline(never)]
    fn try_claim_slow(&mut self, shared: &Shared, n: u64) -> Result<u64, PublishError> {
        if self.next + n > crate::limits::MAX_SEQUENCE {
            return Err(PublishError::Exhausted);
        }
        self.limit = crate::gating::refresh_limit(shared, self.next, self.limit);
        if self.next + n <= self.limit {
            Ok(self.next)
        } else {
            Err(PublishError::Full)
        }
    }
}

/// Copies `data` into the payload of the claimed slot of `sequence`, through `slots` (the
/// caller's local copy of the slot array, which it goes on using for the slot's header: taken
/// once, it stays in registers across the payload write, which the compiler cannot prove
/// leaves the handle's fields alone). Always inlined: a caller's constant length (a typed
/// publish) then becomes a few register moves, not a `memcpy` call.
///
/// # Safety
///
/// - This producer holds the claim on `sequence`'s slot, and the slot is free to write
///   (`Claims::prepare` returned for it, and the write limit covers it).
/// - `data.len()` is at most the payload capacity.
#[inline(always)]
pub(crate) unsafe fn copy_payload(att: &Attached, slots: Slots<'_>, sequence: u64, data: &[u8]) {
    let shared = att.shared();
    let mut track = shared
        .region
        .track_write(crate::atomic::slot_index(sequence, shared.capacity()));
    debug_assert!(data.len() <= slots.payload_capacity());
    // SAFETY: the caller holds the slot alone and it is free (no gating consumer still reads
    // it); `data.len()` fits the payload, which `payload()` is valid for; the source is a
    // separate Rust slice, so the ranges cannot overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(data.as_ptr(), slots.payload(sequence), data.len());
    }
    track.end();
}

/// Waits by `wait` until `deadline` for `try_claim` to stop saying [`PublishError::Full`],
/// looking for dead peers meanwhile (`reaper.rs`); [`PublishError::Timeout`] at the deadline.
#[cold]
#[inline(never)]
pub(crate) fn wait_for_room(
    shared: &Shared,
    wait: WaitStrategy,
    deadline: Option<Instant>,
    mut try_claim: impl FnMut() -> Result<u64, PublishError>,
) -> Result<u64, PublishError> {
    let mut reaper = Reaper::new(shared);
    let waited = crate::wait::wait_for(
        wait,
        shared.released_event(),
        deadline,
        None,
        || match try_claim() {
            Err(PublishError::Full) => None,
            other => Some(other),
        },
        &mut || reaper.idle(shared),
    );
    waited.unwrap_or(Err(PublishError::Timeout))
}

/// Wakes sleeping consumers after a publish, if the ring runs wake-ups (`wakeups`, kept by the
/// producer so a publish reads nothing of `Shared` when it does not).
#[inline(always)]
pub(crate) fn notify(att: &Attached, wakeups: bool) {
    if wakeups {
        att.shared().published_event().notify();
    }
}

// ---- what the header modes share --------------------------------------------------------------

/// `Claims::fill` for rings with slot headers: writes slots `start..start + count` through
/// `fill`, commits each, and publishes them; if `fill` panics, the slots it did not finish
/// are committed as skipped and the whole range is still published.
#[inline]
pub(crate) fn fill_headers<M, F>(
    m: &mut M,
    att: &Attached,
    start: u64,
    count: u64,
    mut fill: F,
) -> Result<u64, PublishError>
where
    M: Claims,
    F: FnMut(usize, &mut [u8]) -> usize,
{
    /// Finishes the batch, also when `fill` panics: commits what it left unwritten as
    /// skipped, then the first slot (`write_slots` leaves it for last), and publishes the
    /// whole range.
    struct Unwind<'a, M: Claims> {
        m: &'a mut M,
        att: &'a Attached,
        start: u64,
        end: u64,
        first_len: Option<usize>,
        complete: bool,
    }
    impl<M: Claims> Drop for Unwind<'_, M> {
        fn drop(&mut self) {
            let slots = self.att.slots();
            if !self.complete {
                // `fill` panicked: the slots it finished are committed (stamped) in a run
                // after the first slot, whose length is known if it finished that one.
                let finished = self.start + u64::from(self.first_len.is_some());
                let unwritten = first_unstamped(slots, finished, self.end);
                for sequence in unwritten..self.end {
                    self.m.commit(slots, sequence, 0, SLOT_SKIPPED);
                }
            }
            if let Some(len) = self.first_len.take() {
                self.m.commit(slots, self.start, len, 0);
            }
            self.m.publish(self.att, self.end);
        }
    }
    let before = m.abandoned();
    let mut guard = Unwind {
        m: &mut *m,
        att,
        start,
        end: start + count,
        first_len: None,
        complete: false,
    };
    write_slots(
        guard.m,
        att,
        start,
        start + count,
        &mut guard.first_len,
        &mut fill,
    );
    guard.complete = true;
    drop(guard);
    if m.abandoned() == before {
        Ok(start)
    } else {
        Err(PublishError::Abandoned { sequence: start })
    }
}

/// The loop of [`fill_headers`]: writes slots `start..end` through `fill` and commits each.
/// It keeps its progress in registers only: if `fill` panics, the caller finds where it
/// stopped by the stamps. The slot array is a local value (`Slots`), so the compiler need
/// not reload it around each payload write; every store in this loop other than the slots'
/// is one slot store fewer in the store buffer between two cores (the `perf/` spsc batch
/// scenarios guard this).
///
/// The first slot of a batch of several is not committed here: its length goes to
/// `*first_len` and the caller commits it after the others, so its stamp publishes the whole
/// batch at once. A caught-up consumer that looks at that stamp then takes the batch whole
/// instead of chasing the producer slot by slot through it.
#[inline]
fn write_slots<M, F>(
    m: &mut M,
    att: &Attached,
    start: u64,
    end: u64,
    first_len: &mut Option<usize>,
    fill: &mut F,
) where
    M: Claims,
    F: FnMut(usize, &mut [u8]) -> usize,
{
    let shared = att.shared();
    let slots = att.slots();
    let capacity = slots.payload_capacity();
    for sequence in start..end {
        m.prepare(att, sequence);
        let mut track = shared
            .region
            .track_write(crate::atomic::slot_index(sequence, shared.capacity()));
        // SAFETY: the slot is claimed by this producer alone (`prepare` waited for its
        // previous lap) and no consumer reads it before the publish; the payload is
        // `capacity` bytes.
        let payload = unsafe { std::slice::from_raw_parts_mut(slots.payload(sequence), capacity) };
        let len = fill((sequence - start) as usize, payload).min(capacity);
        track.end();
        if sequence == start && end - start > 1 {
            *first_len = Some(len);
        } else {
            m.commit(slots, sequence, len, 0);
        }
    }
}
