//! Groups: workers that share one stream, each message going to exactly one of them.
//!
//! A group's table entry holds its claim counter: every sequence below it has been claimed
//! by some worker. A worker claims a range `[c, end)` with a compare-exchange of the counter
//! from `c` to `end`, bounded by what its barrier says is available, so ranges never overlap
//! (exactly once) and the counter never passes the published cursor.
//!
//! Each worker also has a position: the first sequence it still holds, or [`IDLE`] when it
//! holds nothing. Before claiming, it publishes `c` as its position; only then does it move
//! the counter (tag `[group]`). Whoever reads the counter first and the positions after
//! (producers in `Shared::gating_minimum`, dependents in `table::group_position`) therefore
//! gets a lower bound of every unreleased sequence: a claim they did not see in the counter
//! lies at or above the counter value they read; a claim they did see comes with its
//! position. A worker that is not being polled holds nothing and gates nothing.
//!
//! A worker that stops while holding a claim (its process died, or it detached mid-claim)
//! does not lose it: its entry stays, gating, with the claim recorded (position and
//! `E_CLAIM_END`), and its bit is set in the group's orphan mask. The next worker to claim
//! takes the orphaned range over first, announcing it as its own position before the orphan
//! stops gating, and delivers it flagged as redelivered (at-least-once).

use crate::barrier::Barrier;
use crate::consumer::table;
use crate::layout::{E_CLAIM_END, E_ORPHANS, IDLE};
use crate::ring::Shared;

/// A claim: `[start, end)`, and whether it was taken over from a worker that stopped
/// holding it (so its messages may have been delivered before: redelivered).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Claimed {
    pub start: u64,
    pub end: u64,
    pub redelivered: bool,
}

/// Claims up to `max` sequences for `worker` of `group`; `None` if nothing is available.
/// Orphaned claims (of workers that died or detached holding messages) come first. Never
/// inlined: it is the worker's branch of `consumer::fill_range`, which is inlined into every
/// poll.
#[inline(never)]
pub(crate) fn try_claim(
    shared: &Shared,
    group: usize,
    worker: usize,
    max: u64,
    barrier: &mut Barrier,
) -> Option<Claimed> {
    // Relaxed: a hint on the line the counter CAS below touches anyway; `adopt_orphan`
    // decides with an AcqRel RMW.
    if shared.entry_word(group, E_ORPHANS).load_relaxed() != 0 {
        if let Some((start, end)) = table::adopt_orphan(shared, group, worker) {
            return Some(Claimed {
                start,
                end,
                redelivered: true,
            });
        }
    }
    let counter = shared.entry_sequence(group);
    let own = shared.entry_sequence(worker);
    let own_end = shared.entry_word(worker, E_CLAIM_END);
    // Relaxed: only a guess for the compare-exchange below, which re-validates it.
    let mut claimed = counter.load_relaxed();
    let mut announced = false;
    loop {
        let available = barrier.available(shared, claimed, max);
        if available <= claimed {
            if announced {
                // [released] Release: pairs with the Acquire of positions in
                // `gating_minimum` and `group_position`. A producer or dependent may have
                // seen the announced position and gone to sleep on it: wake it (loom found
                // this one).
                own.store_release(IDLE);
                shared.notify_released();
            }
            return None;
        }
        if !announced {
            // [group] Release, and the AcqRel CAS below keeps it before the counter moves.
            own.store_release(claimed);
            announced = true;
        }
        let end = available.min(claimed.saturating_add(max));
        // Relaxed: read only by whoever takes the claim over after this worker stops, which
        // is ordered after it by the orphan mask (or the kernel, for a dead worker). Written
        // before the claim, so a worker that dies right after the CAS has it recorded (if the
        // CAS fails, a stale end can only cause a duplicate, never a loss).
        own_end.store_relaxed(end);
        // [group] AcqRel: pairs with the Acquire of the counter in `gating_minimum` and
        // `group_position`, which then see the position stored above.
        match counter.compare_exchange_acqrel(claimed, end) {
            Ok(_) => {
                return Some(Claimed {
                    start: claimed,
                    end,
                    redelivered: false,
                })
            }
            Err(actual) => claimed = actual,
        }
    }
}
