//! Multi producer: any number of producer handles, in any process.
//!
//! A blocking claim is one `fetch_add` of the shared claim counter, a `try_` claim a
//! compare-exchange (so a full ring claims nothing). Claims complete out of order, so each
//! slot is published by its own stamp (`[stamp]`): a Release store of its header word, or,
//! on a ring shared between processes, a compare-exchange that a reaper's skip can beat
//! (`commit_word`). A consumer finds published slots by their stamps alone.
//!
//! Before each claim a producer stores, as its floor in the producer table (`[floor]`, see
//! `table/producers.rs`), a claim counter value read earlier, so whatever it claims is at or
//! above its floor; after publishing it stores `IDLE`. That is how a reaper tells the slots of
//! a dead producer from those of a live one.
//!
//! Before writing a slot a producer waits until the slot's previous lap is published
//! ([`await_previous_lap`]), so two producers a lap apart never write one slot at once.

use super::{copy_payload, first_unstamped, notify, wait_for_room, Claims};
use crate::atomic::Word;
use crate::error::{AttachError, PublishError};
use crate::gating::refresh_limit;
use crate::layout::slot::{slot_header, stamp, SlotHeader};
use crate::layout::table::IDLE;
use crate::limits::{MAX_PRODUCERS, MAX_SEQUENCE};
use crate::reaper::Reaper;
use crate::shared::{Attached, Shared};
use crate::storage::Slots;
use crate::table::producers;
use crate::wait::{self, WaitStrategy};
use std::time::Instant;

/// A multi-producer's state.
#[derive(Debug)]
pub(crate) struct Multi {
    /// This handle's entry in the producer table.
    entry: usize,
    /// Sequences below this may be written (cached; refreshed when a claim reaches it).
    limit: u64,
    /// On a ring shared between processes: each commit is a compare-exchange that a reaper's
    /// skip can beat (`commit_word`). On a heap ring nobody skips a slot a producer holds,
    /// and commits are plain Release stores.
    defended: bool,
    /// Commits that lost to a skip (see `crate::Producer::abandoned`).
    abandoned: u64,
    /// Whether the ring runs wake-ups, kept so a publish reads nothing of `Shared`.
    wakeups: bool,
    /// Test hook: park between claim and commit (see `test_hooks.rs`).
    #[cfg(not(loom))]
    pause_before_commit: bool,
}

impl Multi {
    /// Registers a producer in the producer table.
    pub(crate) fn new(shared: &Shared) -> Result<Self, AttachError> {
        let entry =
            producers::register(shared).ok_or(AttachError::TooManyProducers { max: MAX_PRODUCERS })?;
        Ok(Multi {
            entry,
            limit: 0,
            defended: shared.liveness.is_shared(),
            abandoned: 0,
            wakeups: shared.wakeups,
            #[cfg(not(loom))]
            pause_before_commit: crate::test_hooks::pause_requested("commit"),
        })
    }

    /// Test hook: commit by compare-exchange as on a shared ring (`defended`), so a test can
    /// model a mistaken reaper's skip racing this live producer on a heap ring.
    #[cfg(test)]
    pub(crate) fn defend_commits(&mut self) {
        self.defended = true;
    }

    /// Whether commits are compare-exchanges (see the field).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn is_defended(&self) -> bool {
        self.defended
    }

    /// A blocking claim: one `fetch_add`, then a wait for room.
    fn claim_blocking(&mut self, shared: &Shared, n: u64, wait: WaitStrategy) -> Result<u64, PublishError> {
        announce_floor(shared, self.entry);
        // AcqRel: claims are totally ordered by this counter; its release half also
        // publishes the floor stored above `[floor]`.
        let start = shared.claim().fetch_add_acqrel(n);
        if start.saturating_add(n) > MAX_SEQUENCE {
            return Err(PublishError::Exhausted);
        }
        if start + n > self.limit {
            self.limit = refresh_limit(shared, start, self.limit);
            if start + n > self.limit {
                let limit = &mut self.limit;
                let mut reaper = Reaper::new(shared);
                let waited = wait::wait_for(
                    wait,
                    shared.released_event(),
                    None,
                    None,
                    || {
                        *limit = refresh_limit(shared, start, *limit);
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
}

/// The claim by compare-exchange of the claim counter: refreshes the cached `limit`, then
/// claims `n` sequences if they fit under it.
#[inline(never)]
fn try_claim_cas(shared: &Shared, entry: usize, limit: &mut u64, n: u64) -> Result<u64, PublishError> {
    let claim = shared.claim();
    // Relaxed: only a guess for the CAS below, which re-checks.
    let mut start = claim.load_relaxed();
    // `[floor]`: `start` is at or below whatever the CAS below claims; the CAS (AcqRel)
    // publishes the floor.
    producers::floor(shared, entry).store_relaxed(start);
    loop {
        // Saturating: the counter comes from shared memory.
        if start.saturating_add(n) > MAX_SEQUENCE {
            return Err(PublishError::Exhausted);
        }
        if start + n > *limit {
            *limit = refresh_limit(shared, start, *limit);
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

impl Claims for Multi {
    const HEADERS: bool = true;

    #[inline]
    fn try_claim(&mut self, att: &Attached, n: u64) -> Result<u64, PublishError> {
        try_claim_cas(att.shared(), self.entry, &mut self.limit, n)
    }

    #[cold]
    #[inline(never)]
    fn claim_slow(
        &mut self,
        att: &Attached,
        n: u64,
        deadline: Option<Instant>,
        wait: WaitStrategy,
    ) -> Result<u64, PublishError> {
        let shared = att.shared();
        if deadline.is_none() {
            return self.claim_blocking(shared, n, wait);
        }
        let (entry, limit) = (self.entry, &mut self.limit);
        wait_for_room(shared, wait, deadline, || try_claim_cas(shared, entry, limit, n))
    }

    #[inline(always)]
    fn write_one(&mut self, att: &Attached, start: u64, data: &[u8]) -> Result<u64, PublishError> {
        self.prepare(att, start);
        // Taken once, before the payload write: see `copy_payload`.
        let slots = att.slots();
        // SAFETY: the slot of `start` is this producer's claim (the claim counter), free to
        // write (`prepare` waited until its previous lap was published, and the write limit
        // until no gating consumer still reads it); the caller checked `data.len()`.
        unsafe { copy_payload(att, slots, start, data) };
        self.before_commit();
        let committed = self.commit(slots, start, data.len(), 0);
        self.publish(att, start + 1);
        if committed {
            Ok(start)
        } else {
            Err(PublishError::Abandoned { sequence: start })
        }
    }

    #[inline(always)]
    fn prepare(&self, att: &Attached, sequence: u64) {
        await_previous_lap(att.shared(), self.entry, sequence);
    }

    #[inline(always)]
    fn commit(&mut self, slots: Slots<'_>, sequence: u64, len: usize, flags: u8) -> bool {
        let committed = commit_word(slots.header(sequence), self.defended, sequence, len, flags);
        if !committed {
            self.abandoned += 1;
        }
        committed
    }

    #[inline(always)]
    fn publish(&mut self, att: &Attached, _end: u64) {
        // Release: holds nothing unpublished any more `[floor]`; pairs with the Acquire in
        // `producers::live_floor` (a reaper that sees this also sees the commits).
        producers::floor(att.shared(), self.entry).store_release(IDLE);
        notify(att, self.wakeups);
    }

    #[inline(always)]
    fn before_commit(&self) {
        #[cfg(not(loom))]
        if self.pause_before_commit {
            crate::test_hooks::pause_forever("commit");
        }
    }

    fn abandoned(&self) -> u64 {
        self.abandoned
    }

    fn release(&mut self, att: &Attached) {
        producers::unregister(att.shared(), self.entry);
    }
}

/// Writes a slot's header word, the word of the slot written last (`[stamp]`): the publish of
/// the slot.
///
/// `defended` (a ring shared between processes): a compare-exchange instead of a store, so a
/// reaper's skip and a late commit cannot both succeed; returns false if the slot was skipped
/// first. Only there can a reaper skip a slot (`producers::skip_dead`: a producer whose
/// process died), and only a mistaken one could skip a slot whose producer still runs. On a
/// heap ring every producer is alive and no slot a producer holds is ever skipped
/// (`producers::skip_orphan` takes only sequences no producer's floor covers), so the store
/// suffices: a locked compare-exchange per slot, between two cores, waits for the slot's line
/// each time (the `perf/` 3p1c scenario guards this).
#[inline(always)]
fn commit_word(word: &Word, defended: bool, sequence: u64, len: usize, flags: u8) -> bool {
    let header = slot_header(sequence, len, flags);
    if !defended {
        // [stamp] Release: pairs with the consumers' Acquire (`is_stamped`): publishes the
        // slot on its own.
        word.store_release(header);
        return true;
    }
    // Relaxed: our own pending header, the previous lap's, or a skip (which the
    // compare-exchange then confirms).
    let current = word.load_relaxed();
    if SlotHeader::decode(current).stamp == stamp(sequence) {
        return false; // given up as a dead producer's (see `table/producers.rs`)
    }
    // [stamp] AcqRel: the Release half pairs with the consumers' Acquire; a compare-exchange,
    // not a store, so a skip and this commit cannot both happen.
    word.compare_exchange_acqrel(current, header).is_ok()
}

/// Before a claim: stores a claim counter value read now as this producer's floor `[floor]`.
/// Relaxed: the claim RMW that follows publishes it.
#[inline]
fn announce_floor(shared: &Shared, entry: usize) {
    // Relaxed: any value of the counter is a lower bound of what the claim will return.
    let guess = shared.claim().load_relaxed();
    producers::floor(shared, entry).store_relaxed(guess);
}

/// Waits until the previous lap of `sequence`'s slot is published, so two producers a lap
/// apart never write one slot at once (they are, only if one stalled a whole lap while
/// consumers detached).
///
/// Until then the slot carries the stamp of the lap before; any other stamp is not the
/// protocol's (a peer wrote into the mapping) and is not waited on. A producer of the
/// previous lap that died is skipped by the reaper this waits with (on a shared ring); a
/// previous-lap sequence that no live producer but this one (`entry`) can hold is skipped
/// here (`producers::skip_orphan`): a claim counter a peer moved forward leaves such
/// sequences claimed by nobody, and waiting on them would hang the producer for good.
///
/// Always inlined, the wait itself out of line: this runs for every slot a multi-producer
/// writes, and a call per slot (its pushes and spills) would crowd the store buffer the slot
/// stores drain through.
#[inline(always)]
fn await_previous_lap(shared: &Shared, entry: usize, sequence: u64) {
    let capacity = shared.capacity();
    let unpublished = stamp(sequence.wrapping_sub(capacity.wrapping_mul(2)));
    // Acquire: pairs with the [stamp] Release of the previous lap's producer.
    if SlotHeader::decode(shared.slot_header(sequence).load_acquire()).stamp != unpublished {
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
    while SlotHeader::decode(header.load_acquire()).stamp == unpublished {
        rounds = rounds.wrapping_add(1);
        if rounds % 64 == 0 {
            reaper.idle(shared);
            producers::skip_orphan(shared, entry, sequence.wrapping_sub(capacity));
        }
        crate::sync::yield_now();
    }
}

// ---- the consumer half --------------------------------------------------------------------

/// `sequencer::published_until` for multi-producer rings: the stamps alone, all the way to
/// `end` (claimed slots are published out of order).
#[inline(always)]
pub(super) fn published_until(slots: Slots<'_>, from: u64, end: u64) -> u64 {
    first_unstamped(slots, from, end)
}

/// The next sequence to be claimed: every sequence below it is claimed, some may still be
/// being written.
pub(super) fn next_sequence(shared: &Shared) -> u64 {
    // Acquire: pairs with the producers' AcqRel claims.
    shared.claim().load_acquire()
}
