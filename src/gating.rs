//! Gating: who still reads what. A producer may write sequence `s` only once every gating
//! consumer has released `s - capacity`; this module computes that bound from the consumer
//! table, and holds both sides of the handshake that lets consumers attach while producers
//! run.
//!
//! Positions `[released]`: a consumer's position is the first sequence it has not released,
//! stored with Release once per message or batch (`consumer/`); every reader here loads it
//! with Acquire, so the consumer's reads of the slots below it happen before a producer
//! reuses them.
//!
//! Groups `[group]`: a group's entry holds its claim counter; a worker publishes its position
//! before it moves the counter past it (`group.rs`). Readers load the counter first and the
//! workers' positions after, so they always get a lower bound of what the group has not
//! released.
//!
//! Attaching `[attach]`, a store-buffering pair of SeqCst fences:
//!
//! ```text
//! attacher (settle_start)                  producer (refresh_limit)
//! position = tentative, mask bit set       epoch = attach epoch
//! fence(SeqCst)                            limit = gating minimum + capacity
//! attach epoch += 1                        write limit = max(write limit, limit)
//! fence(SeqCst)                            fence(SeqCst)
//! read write limit                         epoch changed? recompute
//! start no lower than limit - capacity
//! ```
//!
//! Either the producer sees the new epoch and recomputes (now seeing the newcomer), or the
//! newcomer sees the raised limit and starts no lower than `limit - capacity`, which the
//! producer will not overwrite.

use crate::layout::table::{bits, E_MEMBERS};
use crate::limits::MAX_SEQUENCE;
use crate::shared::Shared;
use crate::sync::{fence, Ordering};

/// The lowest position of every gating consumer, or `fallback` if none is lower.
///
/// Group claim counters are read before any worker's position `[group]`, so a claim the
/// reader did not see in a counter lies at or above the counter value it read.
pub(crate) fn gating_minimum(shared: &Shared, fallback: u64) -> u64 {
    // Acquire on the masks: pairs with the AcqRel mask updates in `table::activate` and
    // `table::free`, so the positions of entries whose bits we see are initialised. The masks
    // come from shared memory: keep to the entries the table has.
    let valid = shared.layout.valid_mask();
    let groups = shared.group_mask().load_acquire() & valid;
    let mut min = fallback;
    for index in bits(groups) {
        // [group] Acquire: pairs with the workers' AcqRel CAS of the counter.
        min = min.min(shared.entry_sequence(index).load_acquire());
    }
    let others = shared.active_mask().load_acquire() & valid & !groups;
    for index in bits(others) {
        // [released] Acquire: pairs with the consumer's Release store of its position; the
        // consumer's reads of the slots below it happened before.
        min = min.min(shared.entry_sequence(index).load_acquire());
    }
    min
}

/// The lowest position of a group: its claim counter, then its workers' positions `[group]`.
pub(crate) fn group_position(shared: &Shared, group: usize) -> u64 {
    // [group] Acquire: pairs with the workers' AcqRel CAS of the counter.
    let counter = shared.entry_sequence(group).load_acquire();
    // Acquire: pairs with the AcqRel updates in `group::set_member`.
    let members = shared.entry_word(group, E_MEMBERS).load_acquire() & shared.layout.valid_mask();
    bits(members)
        // [released] Acquire: pairs with the worker's Release store of its position.
        .map(|w| shared.entry_sequence(w).load_acquire())
        .fold(counter, u64::min)
}

/// The producer's side of `[attach]`: recomputes the limit below which a producer at `own`
/// may write, and records it in the shared write limit.
///
/// `known` is the limit this producer acted on last (returned by an earlier call, so already
/// in the shared write limit and checked against the epoch). A limit no higher returns
/// `known` at once, without the read-modify-write and the fence: every consumer that attached
/// since started no lower than `known - capacity`, which slots below `known` do not
/// overwrite. A producer on a full ring so spins on loads alone, instead of a fence and a
/// locked instruction per try (which would also slow the consumer it waits for).
#[cold]
#[inline(never)]
pub(crate) fn refresh_limit(shared: &Shared, own: u64, known: u64) -> u64 {
    loop {
        // Acquire: pairs with the attacher's AcqRel epoch bump, which follows its position
        // store and mask update.
        let epoch = shared.attach_epoch().load_acquire();
        let limit = gating_minimum(shared, own)
            .saturating_add(shared.capacity())
            .min(MAX_SEQUENCE);
        if limit <= known {
            return known;
        }
        shared.write_limit().fetch_max_acqrel(limit);
        // [attach] SeqCst: pairs with the second fence in `settle_start`.
        fence(Ordering::SeqCst);
        // Acquire: as above.
        if shared.attach_epoch().load_acquire() == epoch {
            return limit;
        }
    }
}

/// The attacher's side of `[attach]`, after it stored its tentative position and set its
/// mask bit: announces them to producers and returns the lowest start no producer may
/// already be overwriting.
pub(crate) fn settle_start(shared: &Shared) -> u64 {
    // [attach] SeqCst: the position and mask stores come first...
    fence(Ordering::SeqCst);
    // AcqRel: pairs with the producers' Acquire epoch loads in `refresh_limit`.
    shared.attach_epoch().fetch_add_acqrel(1);
    // [attach] SeqCst: ...then this pairs with the producers' fence in `refresh_limit`.
    fence(Ordering::SeqCst);
    // Acquire: pairs with the producers' AcqRel `fetch_max`.
    let limit = shared.write_limit().load_acquire();
    limit
        .saturating_sub(shared.capacity())
        .max(shared.layout.params.initial_sequence)
}
