//! Groups: workers that share one stream, each message going to exactly one of them. This
//! file holds every group mechanism: joining and leaving, claiming `[group]`, and the claims of
//! workers that stop (orphans, and a restarted worker taking its own place back).
//!
//! A group's table entry holds its claim counter: every sequence below it has been claimed
//! by some worker. A worker claims a range `[c, end)` with a compare-exchange of the counter
//! from `c` to `end`, bounded by what its barrier says is available, so ranges never overlap
//! (exactly once) and the counter never passes the published cursor.
//!
//! Each worker also has a position: the first sequence it still holds, or [`IDLE`] when it
//! holds nothing. Before claiming, it publishes `c` as its position; only then does it move
//! the counter (tag `[group]`). Whoever reads the counter first and the positions after
//! (producers and dependents, in `gating.rs`) therefore gets a lower bound of every
//! unreleased sequence: a claim they did not see in the counter lies at or above the counter
//! value they read; a claim they did see comes with its position. A worker that is not being
//! polled holds nothing and gates nothing.
//!
//! A worker that stops while holding a claim (its process died, or it detached mid-claim)
//! does not lose it: its entry stays, gating, with the claim recorded (position and
//! `E_CLAIM_END`), and its bit is set in the group's orphan mask. Whoever takes the orphan
//! over first gets the range, flagged redelivered (at-least-once): the next worker of the
//! group to claim ([`adopt_orphan`], announcing the range as its own position before the
//! orphan stops gating), or a worker attaching under the orphan's own name ([`take_over`],
//! which keeps the entry and so its position).

use crate::error::AttachError;
use crate::layout::table::{
    bits, decode_entry_ref, decode_state, state_word, E_CLAIM_END, E_GROUP, E_MEMBERS, E_OPTIONS, E_ORPHANS,
    E_STATE, IDLE, KIND_GROUP, KIND_WORKER, OPT_DURABLE, OPT_ORPHAN, STATE_ACTIVE, STATE_RESERVING,
};
use crate::liveness::entry_lock;
use crate::shared::Shared;
use crate::table::{self, Dependency, EntryRef};

/// How often a joiner that lost a race for the group's name tries again.
const JOIN_ATTEMPTS: usize = 1000;

/// How many times a worker taking its own name back yields to an adopter retiring that name's
/// entry (a few stores) before it lets the caller find the name taken.
const RETIRE_WAIT: usize = 1000;

/// A claim: `[start, end)`, and whether it was taken over from a worker that stopped
/// holding it (so its messages may have been delivered before: redelivered).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Claimed {
    pub start: u64,
    pub end: u64,
    pub redelivered: bool,
}

/// Claims up to `max` sequences for `worker` of `group`; `None` if nothing is available.
/// `claim_end(from, max)` is where a claim from `from` ends: at most `max` past it, within
/// what the worker's barrier lets it read, and moved by the worker to a message boundary
/// (past `max` only to take the rest of a message larger than a slot). Orphaned claims (of
/// workers that died or detached holding messages) come first. Never inlined: it is the worker's branch of the consumer's poll,
/// which is inlined into every caller.
#[inline(never)]
pub(crate) fn try_claim(
    shared: &Shared,
    group: usize,
    worker: usize,
    max: u64,
    claim_end: &mut dyn FnMut(u64, u64) -> u64,
) -> Option<Claimed> {
    // Relaxed: a hint on the line the counter CAS below touches anyway; `adopt_orphan`
    // decides with an AcqRel RMW.
    if shared.entry_word(group, E_ORPHANS).load_relaxed() != 0 {
        if let Some((start, end)) = adopt_orphan(shared, group, worker) {
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
        let end = claim_end(claimed, max);
        if end <= claimed {
            if announced {
                // [released] Release: pairs with the Acquire of positions in `gating.rs`. A
                // producer or dependent may have seen the announced position and gone to sleep
                // on it: wake it (loom found this one).
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
        // Relaxed: read only by whoever takes the claim over after this worker stops, which
        // is ordered after it by the orphan mask (or the kernel, for a dead worker). Written
        // before the claim, so a worker that dies right after the CAS has it recorded (if the
        // CAS fails, a stale end can only cause a duplicate, never a loss).
        own_end.store_relaxed(end);
        // [group] AcqRel: pairs with the Acquire of the counter in `gating::gating_minimum`
        // and `gating::group_position`, which then see the position stored above.
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

/// Joins (or creates, as its first worker) the group `name`; returns the group entry and
/// whether this call created it (the creator then sets the group's start and activates it).
/// `reap` is `reaper::reap_dead`, for `table::reserve`.
pub(crate) fn join(
    shared: &Shared,
    name: &str,
    deps: &[Dependency],
    explicit_deps: bool,
    reap: &mut dyn FnMut() -> usize,
) -> Result<(EntryRef, bool), AttachError> {
    for _ in 0..JOIN_ATTEMPTS {
        if let Some(group) = find_group(shared, name, deps, explicit_deps)? {
            let word = shared.entry_word(group.index, E_STATE);
            // Acquire: pairs with the Release/AcqRel state updates of the table.
            let current = word.load_acquire();
            let (st, members, generation) = decode_state(current);
            if st == STATE_ACTIVE && generation == group.generation {
                let joined = state_word(STATE_ACTIVE, members + 1, generation);
                if word.compare_exchange_acqrel(current, joined).is_ok() {
                    return Ok((group, false));
                }
            }
            continue;
        }
        match table::reserve(shared, name, KIND_GROUP, reap) {
            Ok(group) => {
                table::describe(shared, group, deps, None, 0);
                return Ok((group, true));
            }
            Err(AttachError::NameTaken { .. }) => crate::sync::yield_now(),
            Err(e) => return Err(e),
        }
    }
    Err(AttachError::NameTaken {
        name: name.to_owned(),
    })
}

/// The active group called `name`, if there is one; an error if the name is something else's,
/// or (`explicit_deps`) the group has other dependencies than `deps`.
fn find_group(
    shared: &Shared,
    name: &str,
    deps: &[Dependency],
    explicit_deps: bool,
) -> Result<Option<EntryRef>, AttachError> {
    let Some((group, kind)) = table::find(shared, name) else {
        return Ok(None);
    };
    if kind != KIND_GROUP {
        return Err(AttachError::NameTaken {
            name: name.to_owned(),
        });
    }
    if explicit_deps && table::recorded_dependencies(shared, group.index) != deps {
        return Err(AttachError::GroupMismatch {
            group: name.to_owned(),
        });
    }
    Ok(Some(group))
}

/// Makes `group` durable, or not: a durable group outlives its last worker
/// ([`leave`]). Set and cleared only by a member (a worker attaching, or one unsubscribing
/// before it leaves), so the group cannot be freed meanwhile.
pub(crate) fn set_durable(shared: &Shared, group: EntryRef, durable: bool) {
    let options = shared.entry_word(group.index, E_OPTIONS);
    // AcqRel: pairs with the Acquire load of the options in `leave`.
    if durable {
        options.fetch_or_acqrel(OPT_DURABLE);
    } else {
        options.fetch_and_acqrel(!OPT_DURABLE);
    }
}

/// Adds or removes a worker's bit in its group's member mask.
pub(crate) fn set_member(shared: &Shared, group: EntryRef, worker: usize, present: bool) {
    let members = shared.entry_word(group.index, E_MEMBERS);
    let bit = 1u64 << worker;
    // AcqRel: pairs with the Acquire of the member mask in `gating::group_position`.
    if present {
        members.fetch_or_acqrel(bit);
    } else {
        members.fetch_and_acqrel(!bit);
    }
}

/// Leaves a group; the last worker out frees the group entry, unless the group is durable:
/// then the entry stays, with no member, gating producers at its claim counter until a
/// worker joins again and claims on from there.
pub(crate) fn leave(shared: &Shared, group: EntryRef) {
    let word = shared.entry_word(group.index, E_STATE);
    loop {
        // Acquire: as in `join`.
        let current = word.load_acquire();
        let (st, members, generation) = decode_state(current);
        if st != STATE_ACTIVE || generation != group.generation {
            return;
        }
        if members > 1 {
            let left = state_word(STATE_ACTIVE, members - 1, generation);
            if word.compare_exchange_acqrel(current, left).is_ok() {
                return;
            }
        } else if shared.entry_word(group.index, E_OPTIONS).load_acquire() & OPT_DURABLE != 0 {
            // Acquire: pairs with the AcqRel of `set_durable`.
            if word
                .compare_exchange_acqrel(current, state_word(STATE_ACTIVE, 0, generation))
                .is_ok()
            {
                return;
            }
        } else if word
            .compare_exchange_acqrel(current, state_word(STATE_RESERVING, 0, generation))
            .is_ok()
        {
            // Nobody can join a reserving group; free it.
            table::free(shared, group);
            return;
        }
    }
}

/// The group a worker's entry records, if it is a valid entry index.
fn group_of(shared: &Shared, worker: usize) -> Option<EntryRef> {
    // Relaxed: immutable while the entry is reserved. Checked: it comes from shared memory.
    let (index, generation) = decode_entry_ref(shared.entry_word(worker, E_GROUP).load_relaxed());
    (index < shared.layout.params.max_consumers).then_some(EntryRef { index, generation })
}

/// A worker that stops (dead, or detaching): if it holds a claim, the claim goes to its group
/// as an orphan for another worker to take over (flagged redelivered); if not, it leaves.
/// The caller holds the worker's token; it is released here.
pub(crate) fn orphan_or_free(shared: &Shared, worker: EntryRef) {
    // Relaxed (in `group_of`): the worker's own words; the caller either is the worker or
    // confirmed its death (the kernel released its lock after all its stores).
    let group = group_of(shared, worker.index).filter(|&g| table::is_live(shared, g));
    // Acquire: pairs with the worker's own Release stores of its position.
    let held = shared.entry_sequence(worker.index).load_acquire();
    let Some(group) = group.filter(|_| held != IDLE) else {
        retire(shared, worker, group);
        return;
    };
    let opts = shared.entry_word(worker.index, E_OPTIONS);
    // Relaxed: published by the AcqRel of the orphan mask below.
    opts.store_relaxed(table::options(shared, worker.index) | OPT_ORPHAN);
    // AcqRel: pairs with the adopter's AcqRel `fetch_and` in `adopt_orphan` or `take_over`.
    shared
        .entry_word(group.index, E_ORPHANS)
        .fetch_or_acqrel(1u64 << worker.index);
    shared.liveness.release(entry_lock(worker.index));
    // Workers waiting for messages (on either event) should come and take it.
    shared.notify_published();
    shared.notify_released();
}

/// Removes a worker that holds nothing from its group and frees its entry.
pub(crate) fn retire(shared: &Shared, worker: EntryRef, group: Option<EntryRef>) {
    // [released] Release: the worker holds nothing any more.
    shared.entry_sequence(worker.index).store_release(IDLE);
    if let Some(group) = group {
        set_member(shared, group, worker.index, false);
    }
    table::free(shared, worker);
    if let Some(group) = group {
        leave(shared, group);
    }
}

/// Takes over one orphaned claim of `group` for `worker`: returns its range. The caller
/// delivers it flagged as redelivered.
pub(crate) fn adopt_orphan(shared: &Shared, group: usize, worker: usize) -> Option<(u64, u64)> {
    let orphans = shared.entry_word(group, E_ORPHANS);
    loop {
        // Relaxed: a hint; the fetch_and below decides.
        let mask = orphans.load_relaxed() & shared.layout.valid_mask();
        let orphan = bits(mask).next()?;
        let bit = 1u64 << orphan;
        // AcqRel: pairs with the fetch_or in `orphan_or_free`; exactly one adopter clears
        // the bit.
        if orphans.fetch_and_acqrel(!bit) & bit == 0 {
            continue;
        }
        // Acquire: the orphan's position, as the orphaning side left it.
        let start = shared.entry_sequence(orphan).load_acquire();
        // Relaxed: written before the orphan's claim, which the AcqRel above ordered.
        let end = shared.entry_word(orphan, E_CLAIM_END).load_relaxed();
        // [group] Release: announce before the orphan stops gating, so the range stays
        // protected throughout.
        shared.entry_sequence(worker).store_release(start);
        shared.entry_word(worker, E_CLAIM_END).store_relaxed(end);
        let (_, _, generation) = table::state(shared, orphan);
        let orphan_entry = EntryRef {
            index: orphan,
            generation,
        };
        retire(shared, orphan_entry, group_of(shared, orphan));
        if start == IDLE || end <= start {
            // Nothing valid was held after all (a peer wrote nonsense, or the claim was
            // empty): announce nothing and look again.
            shared.entry_sequence(worker).store_release(IDLE);
            continue;
        }
        // Relaxed: a statistic.
        shared.redelivered().fetch_add_relaxed(end - start);
        return Some((start, end));
    }
}

/// What a worker attaching under the name of an orphan of its group takes over: the entry
/// (with its position and group membership) and the claim it held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TakenOver {
    pub worker: EntryRef,
    pub group: EntryRef,
    /// The orphan's claim, `[start, end)`, to deliver flagged redelivered (empty if it held
    /// nothing valid).
    pub start: u64,
    pub end: u64,
}

/// A worker attaching as `name` to `group`, where `name` is an orphan of that group (a worker
/// that died or detached holding messages, whose claim no other worker took yet): takes its
/// entry, and the claim in it, over. `None` if `name` is not such an orphan, or another
/// worker is adopting it right now (its entry is then being freed).
///
/// The entry's token is taken first, then the orphan bit cleared: of this and an
/// `adopt_orphan` of the same bit, exactly one wins. The entry keeps gating throughout, at
/// the orphan's position, which becomes this worker's.
pub(crate) fn take_over(shared: &Shared, group: EntryRef, name: &str) -> Option<TakenOver> {
    let (worker, kind) = table::find(shared, name)?;
    if kind != KIND_WORKER || group_of(shared, worker.index) != Some(group) {
        return None;
    }
    if table::options(shared, worker.index) & OPT_ORPHAN == 0 {
        return None;
    }
    let token = entry_lock(worker.index);
    if !shared.liveness.acquire(token) {
        return None;
    }
    let bit = 1u64 << worker.index;
    // AcqRel: pairs with the fetch_or in `orphan_or_free`; exactly one of this and an
    // adopter clears the bit. Checked after the token and the generation: the entry is still
    // the orphan found above.
    let live = table::is_live(shared, worker);
    let won = live && shared.entry_word(group.index, E_ORPHANS).fetch_and_acqrel(!bit) & bit != 0;
    if !won {
        shared.liveness.release(token);
        if live {
            // Another worker cleared the bit first and is retiring the entry (`adopt_orphan`):
            // give it the moment that takes, so the caller's reservation finds the name free.
            for _ in 0..RETIRE_WAIT {
                if !table::is_live(shared, worker) {
                    break;
                }
                crate::sync::yield_now();
            }
        }
        return None;
    }
    // Acquire: the orphan's position, as the orphaning side left it.
    let start = shared.entry_sequence(worker.index).load_acquire();
    // Relaxed: written before the orphan's claim, which the AcqRel above ordered.
    let end = shared.entry_word(worker.index, E_CLAIM_END).load_relaxed();
    // Relaxed: the entry is ours (we hold its token); a reaper reads the flag only for an
    // entry whose token nobody holds.
    let opts = shared.entry_word(worker.index, E_OPTIONS);
    opts.store_relaxed(table::options(shared, worker.index) & !OPT_ORPHAN);
    let (start, end) = if start == IDLE || end <= start {
        // [released] Release: nothing valid was held; hold nothing.
        shared.entry_sequence(worker.index).store_release(IDLE);
        (0, 0)
    } else {
        // Relaxed: a statistic.
        shared.redelivered().fetch_add_relaxed(end - start);
        (start, end)
    };
    Some(TakenOver {
        worker,
        group,
        start,
        end,
    })
}
