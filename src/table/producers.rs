//! The producer table of multi-producer rings, and what happens to the slots of a producer
//! that died between claiming a sequence and publishing it (the consumer table is `mod.rs`
//! beside this file; the multi-producer's own side of `[floor]` is `sequencer/multi.rs`).
//!
//! Each multi-producer handle holds one entry (and its liveness token, see `liveness.rs`).
//! Its **floor** is a lower bound of every sequence it may have claimed and not yet
//! published, or `IDLE`: before each claim the producer stores, as its floor, a value of the
//! claim counter it read earlier (tag `[floor]`), so whatever its claim returns is at or above
//! the floor; after publishing it stores `IDLE`.
//!
//! A slot `s` below the claim counter that stays unpublished belongs to some producer. If
//! every live producer's floor is above `s` (or idle), that producer is dead: a floor store
//! comes before the claim RMW in the producer's program order, and whoever read the counter
//! past `s` read it from that RMW or a later one, so it also sees the floor. The slot is then
//! **skipped**: its header moves by compare-and-swap from the previous lap's header to a
//! published header carrying [`SLOT_SKIPPED`], which consumers pass over and count. On a ring
//! shared between processes a producer's own publish is the same kind of compare-and-swap
//! from the previous lap's header, so of a skip and a late publish exactly one wins, and a
//! publisher that lost is told (`PublishError::Abandoned`) instead of overwriting. With the
//! kernel confirming deaths (a live producer always holds its token), a live producer never
//! loses that race; the compare-and-swap is what keeps a mistake from becoming a corrupt slot.
//! On a heap ring no producer is ever found dead, [`skip_dead`] does nothing, and
//! [`skip_orphan`] takes only sequences no producer's floor covers, so nothing skips a slot a
//! producer holds: there a publish is a plain Release store (see `sequencer/multi.rs`).
//!
//! A slot is skipped only once the previous lap's message in it is published and released by
//! every gating consumer, exactly the conditions under which its producer could have written
//! it. A producer waiting on such a slot a lap later skips it by the same rule
//! ([`skip_orphan`]): a claim counter that a peer moved forward leaves sequences nobody
//! claimed, which no reaper would find (no producer died).

use crate::atomic::Word;
use crate::gating::gating_minimum;
use crate::layout::slot::{self, SLOT_SKIPPED};
use crate::layout::table::{IDLE, P_FLOOR, P_STATE};
use crate::limits::MAX_PRODUCERS;
use crate::liveness::producer_lock;
use crate::shared::Shared;

const FREE: u64 = 0;
const ACTIVE: u64 = 1;

fn entry(shared: &Shared, index: usize, field: usize) -> &Word {
    shared.producer_word(index, field)
}

/// The floor word of producer entry `index`.
#[inline]
pub(crate) fn floor(shared: &Shared, index: usize) -> &Word {
    entry(shared, index, P_FLOOR)
}

/// Registers a multi-producer: its token, then its entry. `None` if all are taken.
pub(crate) fn register(shared: &Shared) -> Option<usize> {
    for attempt in 0..2 {
        for index in 0..MAX_PRODUCERS {
            let state = entry(shared, index, P_STATE);
            // Acquire: pairs with the Release in `unregister`.
            let current = state.load_acquire();
            if current & 0xff != FREE || !shared.liveness.acquire(producer_lock(index)) {
                continue;
            }
            // Relaxed: published by the AcqRel compare-exchange below.
            floor(shared, index).store_relaxed(IDLE);
            let generation = (current >> 32).wrapping_add(1) << 32;
            // AcqRel: pairs with the Acquire state loads of other registrants and reapers.
            if state
                .compare_exchange_acqrel(current, ACTIVE | generation)
                .is_ok()
            {
                return Some(index);
            }
            shared.liveness.release(producer_lock(index));
        }
        if attempt == 0 && skip_dead(shared) == 0 {
            break;
        }
    }
    None
}

/// Frees a producer's entry (its floor is idle: it holds nothing).
pub(crate) fn unregister(shared: &Shared, index: usize) {
    let state = entry(shared, index, P_STATE);
    // Relaxed: only the owner (or a reaper holding the token) writes the state.
    let current = state.load_relaxed();
    // Release: pairs with the Acquire in `register`.
    state.store_release((current & !0xff) | FREE);
    shared.liveness.release(producer_lock(index));
}

/// Producers whose tokens nobody holds: dead (on a heap ring, never).
fn dead_producers(shared: &Shared) -> impl Iterator<Item = usize> + '_ {
    (0..MAX_PRODUCERS).filter(move |&index| {
        // Acquire: pairs with the AcqRel registration.
        entry(shared, index, P_STATE).load_acquire() & 0xff == ACTIVE
            && shared.liveness.is_shared()
            && !shared.liveness.is_held(producer_lock(index))
    })
}

/// The lowest floor of the live producers other than `except` (`IDLE` if none).
fn live_floor(shared: &Shared, except: usize) -> u64 {
    (0..MAX_PRODUCERS)
        .filter(|&index| {
            index != except
                // Acquire: as in `dead_producers`.
                && entry(shared, index, P_STATE).load_acquire() & 0xff == ACTIVE
                && shared.liveness.is_held(producer_lock(index))
        })
        // [floor] Acquire: pairs with the Relaxed floor store that precedes the producer's
        // AcqRel claim, through the counter the caller read with Acquire.
        .map(|index| floor(shared, index).load_acquire())
        .min()
        .unwrap_or(IDLE)
}

/// Skips the slots that dead producers claimed and never published, and frees their entries
/// once nothing of theirs is left. Returns how many slots it skipped.
pub(crate) fn skip_dead(shared: &Shared) -> u64 {
    if shared.layout.sequencer != crate::layout::SequencerKind::Multi || !shared.liveness.is_shared() {
        return 0;
    }
    let dead: Vec<usize> = dead_producers(shared).collect();
    let mut skipped = 0;
    for index in dead {
        if !shared.liveness.acquire(producer_lock(index)) {
            continue; // alive after all, or another reaper is on it
        }
        // Acquire: pairs with the Relaxed store's program order before the (dead) producer's
        // claims, as in `live_floor`.
        let start = floor(shared, index).load_acquire();
        let finished = start == IDLE || {
            let (count, done) = skip_from(shared, index, start);
            skipped += count;
            done
        };
        if finished {
            // Relaxed: the entry is ours (we hold its token) until `unregister` frees it.
            floor(shared, index).store_relaxed(IDLE);
            unregister(shared, index);
        } else {
            shared.liveness.release(producer_lock(index));
        }
    }
    if skipped > 0 {
        // Relaxed: a statistic.
        shared.skipped_total().fetch_add_relaxed(skipped);
        shared.notify_published();
    }
    skipped
}

/// Skips `sequence` if it is below the claim counter, unpublished, and no live producer but
/// `own` (which is waiting on it, a lap later) can hold it, by [`skip_step`] as [`skip_from`]
/// does for a dead producer's slots. A consistent ring has no such sequence that a waiting
/// producer would not see published or skipped anyway; one whose claim counter a peer moved
/// forward does (sequences nobody claimed), and a producer waiting on one would wait forever.
pub(crate) fn skip_orphan(shared: &Shared, own: usize, sequence: u64) {
    // [floor] Acquire: as in `skip_from`.
    let counter = shared.claim().load_acquire();
    if sequence >= counter {
        return;
    }
    let live = live_floor(shared, own);
    let gate = gating_minimum(shared, u64::MAX).saturating_add(shared.capacity());
    if skip_step(shared, sequence, live, gate) == Step::Skipped {
        // Relaxed: a statistic.
        shared.skipped_total().fetch_add_relaxed(1);
        shared.notify_published();
    }
}

/// Skips the unpublished slots from `start` up to the claim counter that no live producer can
/// own. Returns (slots skipped, whether every slot up to the counter is now published).
fn skip_from(shared: &Shared, dead: usize, start: u64) -> (u64, bool) {
    let capacity = shared.capacity();
    // [floor] Acquire: pairs with the producers' AcqRel claims (fetch_add or CAS), so the
    // floor each of them stored before claiming below this value is visible below.
    let counter = shared.claim().load_acquire();
    // Read once, after the counter: a live producer's later claims land at or above the
    // counter, and the gating minimum only grows, so both stay valid (if conservative).
    let live = live_floor(shared, dead);
    let gate = gating_minimum(shared, u64::MAX).saturating_add(capacity);
    let mut skipped = 0;
    let mut sequence = start;
    // One lap per call at most (the floor comes from shared memory); the caller records
    // how far this got.
    let end = counter.min(start.saturating_add(capacity));
    while sequence < end {
        match skip_step(shared, sequence, live, gate) {
            Step::Published => {}
            Step::Skipped => skipped += 1,
            Step::Blocked => break,
        }
        sequence += 1;
    }
    // Relaxed: the dead producer's entry is the caller's while it holds the token.
    floor(shared, dead).store_relaxed(sequence);
    (skipped, sequence >= counter)
}

/// What [`skip_step`] did with a slot.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Published by its producer (already, or by a late commit that won the race).
    Published,
    /// Published as skipped by this call.
    Skipped,
    /// Not skippable yet: its previous lap is unpublished or unreleased (`gate`), or a live
    /// producer may hold it (its floor, `live`, is at or below it).
    Blocked,
}

/// Skips the unpublished slot of `sequence` if its previous lap is published and released by
/// every gating consumer (`sequence < gate`) and no live producer's floor covers it
/// (`sequence < live`).
fn skip_step(shared: &Shared, sequence: u64, live: u64, gate: u64) -> Step {
    let header = shared.slot_header(sequence);
    // Acquire: pairs with the [stamp] Release of whoever published it.
    let current = header.load_acquire();
    let stamp = slot::SlotHeader::decode(current).stamp;
    if stamp == slot::stamp(sequence) {
        return Step::Published;
    }
    let previous_lap_done = stamp == slot::stamp(sequence.wrapping_sub(shared.capacity()));
    if !previous_lap_done || sequence >= gate || live <= sequence {
        return Step::Blocked;
    }
    let skip = slot::slot_header(sequence, 0, SLOT_SKIPPED);
    // [stamp] AcqRel: the skip publishes like a producer's commit (pairs with the
    // consumers' Acquire), and it races a late commit: exactly one of the two succeeds.
    if header.compare_exchange_acqrel(current, skip).is_ok() {
        Step::Skipped
    } else {
        Step::Published
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::Ring;

    /// Marks producer entry `index` as having claimed from `floor`, as a producer that died
    /// right after announcing it would have.
    fn fake_dead(shared: &Shared, floor_value: u64) -> usize {
        let index = register(shared).expect("a free entry");
        floor(shared, index).store_relaxed(floor_value);
        index
    }

    #[test]
    fn a_late_commit_after_a_skip_is_refused_and_counted() {
        let ring = Ring::builder().capacity(4).multi_producer().build().unwrap();
        let shared = &ring.shared;
        let mut consumer = ring
            .subscriber("c")
            .start(crate::Start::Earliest)
            .attach()
            .unwrap();
        let mut producer = ring.producer().unwrap();
        // As on a shared ring, where a reaper can skip (on a heap ring nobody skips a held
        // slot and commits are plain stores).
        producer.defend_commits();
        let mut claim = producer.try_claim_slot().unwrap();
        claim.write(b"late").unwrap();
        // A reaper that (wrongly) took this live producer for dead: nobody else is live, so
        // the claimed slot is skipped.
        let entry = 0;
        assert_eq!(skip_from(shared, entry, 0), (1, true));
        drop(claim);
        assert_eq!(producer.abandoned(), 1);
        assert!(matches!(producer.try_publish(b"next"), Ok(1)));
        // The consumer passes the skipped slot and never sees the late message.
        let message = consumer.try_recv().unwrap();
        assert_eq!((message.sequence(), &*message), (1, &b"next"[..]));
        drop(message);
        assert_eq!(consumer.skipped(), 1);
    }

    #[test]
    fn a_slot_a_live_producer_may_hold_is_never_skipped() {
        let ring = Ring::builder().capacity(4).multi_producer().build().unwrap();
        let shared = &ring.shared;
        let dead = fake_dead(shared, 0);
        let mut live = ring.producer().unwrap();
        let claim = live.try_claim_slot().unwrap();
        assert_eq!(claim.sequence(), 0);
        // The live producer's floor (0) covers slot 0: not skipped, not finished.
        assert_eq!(skip_from(shared, dead, 0), (0, false));
        drop(claim);
        assert_eq!(live.abandoned(), 0);
        // Once it published, the dead producer has nothing left.
        assert_eq!(skip_from(shared, dead, 0), (0, true));
    }

    #[test]
    fn a_slot_whose_previous_lap_is_unread_is_not_skipped() {
        let ring = Ring::builder().capacity(2).multi_producer().build().unwrap();
        let shared = &ring.shared;
        let mut consumer = ring
            .subscriber("slow")
            .start(crate::Start::Earliest)
            .attach()
            .unwrap();
        let mut producer = ring.producer().unwrap();
        producer.try_publish(b"a").unwrap();
        producer.try_publish(b"b").unwrap();
        drop(producer);
        // A producer claims sequence 2 (the slot of unread sequence 0) and dies.
        let dead = fake_dead(shared, 2);
        shared.claim().fetch_add_acqrel(1);
        assert_eq!(skip_from(shared, dead, 2), (0, false));
        drop(consumer.try_recv().unwrap());
        assert_eq!(skip_from(shared, dead, 2), (1, true));
    }
}

/// loom models of `[floor]` and of the skip racing a late commit. Run with
/// `RUSTFLAGS="--cfg loom" cargo test --release --lib loom_`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::{PublishError, Ring};
    use loom::thread;

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.max_branches = 100_000;
        if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
            builder.preemption_bound = Some(3);
        }
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = runs.clone();
        builder.check(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            f()
        });
        eprintln!(
            "explored {} executions",
            runs.load(std::sync::atomic::Ordering::Relaxed)
        );
    }

    fn ring() -> Ring {
        Ring::builder()
            .capacity(2)
            .slot_size(16)
            .max_consumers(2)
            .multi_producer()
            .wakeups(false)
            .build()
            .unwrap()
    }

    /// A producer presumed dead commits while a reaper skips its slot: exactly one wins, and
    /// the slot ends up published either way (as the message or as skipped).
    #[test]
    fn loom_skip_races_a_late_commit() {
        model(|| {
            let ring = ring();
            let shared = ring.shared.clone();
            let mut producer = ring.producer().unwrap();
            // Commits as on a shared ring, where a (mistaken) reaper can skip.
            producer.defend_commits();
            let entry = 0;
            let late = thread::spawn(move || producer.try_publish(b"late"));
            let reaper_shared = shared.clone();
            let reaper = thread::spawn(move || skip_from(&reaper_shared, entry, 0).0);
            let outcome = late.join().unwrap();
            let skipped = reaper.join().unwrap();
            let header = slot::SlotHeader::decode(shared.slot_header(0).load_acquire());
            // Whether or not the reaper got to look before the claim, the slot is decided.
            match outcome {
                Ok(0) => {
                    assert_eq!(skipped, 0);
                    assert_eq!(header.flags & SLOT_SKIPPED, 0);
                }
                Err(PublishError::Abandoned { sequence: 0 }) => {
                    assert_eq!(skipped, 1);
                    assert_ne!(header.flags & SLOT_SKIPPED, 0);
                }
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(header.stamp, slot::stamp(0));
        });
    }

    /// `[floor]`: a reaper cleaning up after a dead producer never skips a slot that a live
    /// producer claimed, whatever it reads of the claim counter.
    #[test]
    fn loom_live_producers_slots_are_never_skipped() {
        model(|| {
            let ring = ring();
            let shared = ring.shared.clone();
            // A producer that announced floor 0 and died before claiming anything.
            let dead = register(&shared).unwrap();
            floor(&shared, dead).store_relaxed(0);
            let mut live = ring.producer().unwrap();
            let publisher = thread::spawn(move || live.try_publish(b"live"));
            let reaper = thread::spawn(move || skip_from(&shared, dead, 0));
            assert_eq!(publisher.join().unwrap(), Ok(0));
            assert_eq!(reaper.join().unwrap().0, 0);
        });
    }
}
