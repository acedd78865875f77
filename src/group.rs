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

use crate::barrier::Barrier;
use crate::layout::IDLE;
use crate::ring::Shared;

/// Claims up to `max` sequences for `worker` of `group`; `None` if nothing is available.
pub(crate) fn try_claim(
    shared: &Shared,
    group: usize,
    worker: usize,
    max: u64,
    barrier: &mut Barrier,
) -> Option<(u64, u64)> {
    let counter = shared.entry_sequence(group);
    let own = shared.entry_sequence(worker);
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
        // [group] AcqRel: pairs with the Acquire of the counter in `gating_minimum` and
        // `group_position`, which then see the position stored above.
        match counter.compare_exchange_acqrel(claimed, end) {
            Ok(_) => return Some((claimed, end)),
            Err(actual) => claimed = actual,
        }
    }
}
