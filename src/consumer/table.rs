//! The consumer table: attaching and detaching entries by name, at run time, from any thread
//! (and, with the shared-memory backends, from any process) without a lock.
//!
//! An entry's state word holds its state (free, claiming, active), a generation that grows at
//! every claim (so a stale reference to a reused entry is detected), and for a group the
//! number of its workers.
//!
//! Names are unique among claiming and active entries (tag `[name]`): a claimer writes its
//! name, runs a SeqCst fence, then scans the other claiming or active entries. Of two racing
//! claimers of one name, at least one sees the other (store-buffering); whoever sees a
//! conflict backs off, so at most one wins.

use crate::error::Error;
use crate::layout::{
    decode_entry_ref, decode_state, entry_ref, state_word, E_CLAIM_END, E_DEAD_SINCE, E_DEPS, E_DEP_COUNT,
    E_GROUP, E_KIND, E_MEMBERS, E_NAME, E_NAME_LEN, E_OPTIONS, E_ORPHANS, E_STATE, IDLE, KIND_GROUP,
    KIND_SUBSCRIBER, KIND_WORKER, MAX_DEPENDENCIES, MAX_NAME_LEN, OPT_DURABLE, OPT_ORPHAN, STATE_ACTIVE,
    STATE_CLAIMING, STATE_FREE,
};
use crate::liveness::entry_lock;
use crate::ring::{bits, Shared};
use crate::sync::{fence, Ordering};

/// How often a claimer that lost a name race tries again before giving up.
const NAME_RACE_ATTEMPTS: usize = 1000;

/// A reference to a table entry that detects reuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EntryRef {
    pub index: usize,
    pub generation: u32,
}

/// A dependency as the barrier reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dependency {
    pub entry: EntryRef,
    pub is_group: bool,
}

/// What kind of consumer an entry is, for snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConsumerKind {
    /// Sees every message.
    Subscriber,
    /// A group: its workers share the messages.
    Group,
    /// A worker of a group.
    Worker,
}

/// A snapshot of one attached consumer, group or worker; see [`crate::Ring::consumers`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerInfo {
    /// Its name.
    pub name: String,
    /// Subscriber, group or worker.
    pub kind: ConsumerKind,
    /// For a worker, its group's name.
    pub group: Option<String>,
    /// Subscriber: the next sequence it will read. Group: the next sequence a worker will
    /// claim. Worker: the first sequence it holds, or `None` when it holds nothing.
    pub sequence: Option<u64>,
    /// The names of the consumers and groups it runs after.
    pub after: Vec<String>,
    /// A durable subscriber (see [`crate::ConsumerBuilder::durable`]).
    pub durable: bool,
    /// Whether the process that attached it is alive (always true on a heap ring; a group is
    /// alive while it is attached). A dead durable subscriber waits here for its restart; a
    /// dead worker waits for its group to take its claim over.
    pub alive: bool,
}

fn state(shared: &Shared, index: usize) -> (u64, u64, u32) {
    // Acquire: pairs with the Release/AcqRel state updates below.
    decode_state(shared.entry_word(index, E_STATE).load_acquire())
}

/// Whether `entry` still names the same active consumer.
pub(crate) fn is_live(shared: &Shared, entry: EntryRef) -> bool {
    let (st, _, generation) = state(shared, entry.index);
    st == STATE_ACTIVE && generation == entry.generation
}

fn write_name(shared: &Shared, index: usize, name: &str) {
    let bytes = name.as_bytes();
    // Relaxed: published by the `[name]` fence and by the Release of the ACTIVE state.
    shared
        .entry_word(index, E_NAME_LEN)
        .store_relaxed(bytes.len() as u64);
    for (i, chunk) in bytes.chunks(8).enumerate() {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        shared
            .entry_word(index, E_NAME + 8 * i)
            .store_relaxed(u64::from_le_bytes(word));
    }
}

/// Reads an entry's name; `None` if the stored length is out of range or not UTF-8 (the
/// table may be shared with other processes and is never trusted).
pub(crate) fn read_name(shared: &Shared, index: usize) -> Option<String> {
    // Relaxed: names are immutable while the entry is claimed; the state Acquire that led
    // here made them visible.
    let len = usize::try_from(shared.entry_word(index, E_NAME_LEN).load_relaxed()).ok()?;
    if len == 0 || len > MAX_NAME_LEN {
        return None;
    }
    let mut bytes = Vec::with_capacity(len.next_multiple_of(8));
    for i in 0..len.div_ceil(8) {
        bytes.extend_from_slice(
            &shared
                .entry_word(index, E_NAME + 8 * i)
                .load_relaxed()
                .to_le_bytes(),
        );
    }
    bytes.truncate(len);
    String::from_utf8(bytes).ok()
}

fn kind_of(shared: &Shared, index: usize) -> u64 {
    // Relaxed: immutable while claimed; see `read_name`.
    shared.entry_word(index, E_KIND).load_relaxed()
}

/// Checks a consumer or group name.
pub(crate) fn validate_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(Error::InvalidName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Finds the active entry called `name`: (reference, kind).
pub(crate) fn find(shared: &Shared, name: &str) -> Option<(EntryRef, u64)> {
    (0..shared.layout.params.max_consumers).find_map(|index| {
        let (st, _, generation) = state(shared, index);
        if st != STATE_ACTIVE || read_name(shared, index).as_deref() != Some(name) {
            return None;
        }
        Some((EntryRef { index, generation }, kind_of(shared, index)))
    })
}

/// Resolves dependency names to entries.
pub(crate) fn resolve(shared: &Shared, names: &[String]) -> Result<Vec<Dependency>, Error> {
    if names.len() > MAX_DEPENDENCIES {
        return Err(Error::TooManyDependencies { count: names.len() });
    }
    names
        .iter()
        .map(|name| match find(shared, name) {
            Some((entry, kind)) if kind != KIND_WORKER => Ok(Dependency {
                entry,
                is_group: kind == KIND_GROUP,
            }),
            _ => Err(Error::UnknownDependency { name: name.clone() }),
        })
        .collect()
}

/// Reads the dependencies recorded in an entry (used by workers, which inherit their group's).
pub(crate) fn recorded_dependencies(shared: &Shared, index: usize) -> Vec<Dependency> {
    // Relaxed: immutable while the entry is claimed.
    let count = (shared.entry_word(index, E_DEP_COUNT).load_relaxed() as usize).min(MAX_DEPENDENCIES);
    (0..count)
        .filter_map(|i| {
            let (dep, generation) = decode_entry_ref(shared.entry_word(index, E_DEPS + 8 * i).load_relaxed());
            (dep < shared.layout.params.max_consumers).then(|| Dependency {
                entry: EntryRef {
                    index: dep,
                    generation,
                },
                is_group: kind_of(shared, dep) == KIND_GROUP,
            })
        })
        .collect()
}

/// Claims a free entry under `name`, unique among claiming and active entries `[name]`.
pub(crate) fn claim(shared: &Shared, name: &str, kind: u64) -> Result<EntryRef, Error> {
    validate_name(name)?;
    let max = shared.layout.params.max_consumers;
    for _ in 0..NAME_RACE_ATTEMPTS {
        // A dead process's consumer may hold the name or the last free entry.
        if find(shared, name).is_some() && (reap_dead(shared) == 0 || find(shared, name).is_some()) {
            return Err(Error::NameTaken {
                name: name.to_owned(),
            });
        }
        let entry = match grab_free(shared) {
            Some(entry) => entry,
            None if reap_dead(shared) > 0 => continue,
            None => return Err(Error::TableFull { max_consumers: max }),
        };
        write_name(shared, entry.index, name);
        // Relaxed: published with the name.
        shared.entry_word(entry.index, E_KIND).store_relaxed(kind);
        // [name] SeqCst: pairs with this same fence in any racing claimer.
        fence(Ordering::SeqCst);
        let conflict = (0..max).filter(|&i| i != entry.index).find_map(|i| {
            let (st, _, _) = state(shared, i);
            let taken =
                (st == STATE_CLAIMING || st == STATE_ACTIVE) && read_name(shared, i).as_deref() == Some(name);
            taken.then_some(st)
        });
        match conflict {
            None => return Ok(entry),
            Some(st) => {
                free(shared, entry);
                if st == STATE_ACTIVE {
                    return Err(Error::NameTaken {
                        name: name.to_owned(),
                    });
                }
                crate::sync::yield_now();
            }
        }
    }
    Err(Error::NameTaken {
        name: name.to_owned(),
    })
}

/// Claims a free entry: its liveness token first, then its state (see `liveness.rs`: the
/// token is held from before the claim until the entry is free again).
fn grab_free(shared: &Shared) -> Option<EntryRef> {
    for index in 0..shared.layout.params.max_consumers {
        let word = shared.entry_word(index, E_STATE);
        // Acquire: pairs with the Release in `free`, so the old tenant is done with it.
        if decode_state(word.load_acquire()).0 != STATE_FREE {
            continue;
        }
        if !shared.liveness.acquire(entry_lock(index)) {
            continue;
        }
        // Acquire: as above, now that nobody else can be cleaning the entry up.
        let current = word.load_acquire();
        let (st, _, generation) = decode_state(current);
        let next_gen = generation.wrapping_add(1);
        if st == STATE_FREE
            && word
                .compare_exchange_acqrel(current, state_word(STATE_CLAIMING, 0, next_gen))
                .is_ok()
        {
            return Some(EntryRef {
                index,
                generation: next_gen,
            });
        }
        shared.liveness.release(entry_lock(index));
    }
    None
}

/// Records an entry's dependencies, (for a worker) its group, and its options word.
pub(crate) fn describe(
    shared: &Shared,
    entry: EntryRef,
    deps: &[Dependency],
    group: Option<EntryRef>,
    options: u64,
) {
    let index = entry.index;
    // Relaxed: published by the Release of the ACTIVE state in `activate`.
    shared.entry_word(index, E_OPTIONS).store_relaxed(options);
    shared.entry_word(index, E_DEAD_SINCE).store_relaxed(0);
    shared.entry_word(index, E_ORPHANS).store_relaxed(0);
    // Relaxed: all published by the Release of the ACTIVE state in `activate`.
    shared
        .entry_word(index, E_DEP_COUNT)
        .store_relaxed(deps.len() as u64);
    for (i, dep) in deps.iter().enumerate() {
        shared
            .entry_word(index, E_DEPS + 8 * i)
            .store_relaxed(entry_ref(dep.entry.index, dep.entry.generation));
    }
    let group = group.map_or(0, |g| entry_ref(g.index, g.generation));
    shared.entry_word(index, E_GROUP).store_relaxed(group);
    shared.entry_word(index, E_MEMBERS).store_relaxed(0);
}

/// Makes a claimed entry gate producers from `position`, and marks it active.
pub(crate) fn activate(shared: &Shared, entry: EntryRef, position: u64, members: u64) {
    let bit = 1u64 << entry.index;
    // Release: [released] pairs with the Acquire in `Shared::gating_minimum`.
    shared.entry_sequence(entry.index).store_release(position);
    if kind_of(shared, entry.index) == KIND_GROUP {
        // AcqRel: pairs with the Acquire of the masks in `gating_minimum`.
        shared.group_mask().fetch_or_acqrel(bit);
    }
    // AcqRel: as above; the position store is before it.
    shared.active_mask().fetch_or_acqrel(bit);
    // Release: pairs with the Acquire state loads in `find`, `is_live` and `snapshot`.
    shared.entry_word(entry.index, E_STATE).store_release(state_word(
        STATE_ACTIVE,
        members,
        entry.generation,
    ));
}

/// The attacher's side of `[attach]`: announces the new position to producers and returns
/// the lowest start that no producer may already be overwriting.
pub(crate) fn settle_start(shared: &Shared) -> u64 {
    // [attach] SeqCst: the position and mask stores above come first...
    fence(Ordering::SeqCst);
    // AcqRel: pairs with the producers' Acquire epoch loads in `Shared::refresh_limit`.
    shared.attach_epoch().fetch_add_acqrel(1);
    // [attach] SeqCst: ...then this pairs with the producers' fence in `refresh_limit`.
    fence(Ordering::SeqCst);
    // Acquire: pairs with the producers' AcqRel `fetch_max`.
    let limit = shared.write_limit().load_acquire();
    limit
        .saturating_sub(shared.capacity())
        .max(shared.layout.params.initial_sequence)
}

/// Stops an entry gating producers and frees it.
pub(crate) fn free(shared: &Shared, entry: EntryRef) {
    let bit = 1u64 << entry.index;
    // AcqRel: pairs with the Acquire of the masks in `gating_minimum`.
    shared.active_mask().fetch_and_acqrel(!bit);
    shared.group_mask().fetch_and_acqrel(!bit);
    // Release: pairs with the Acquire in `grab_free`; the entry's generation is kept so the
    // next tenant's is new.
    shared
        .entry_word(entry.index, E_STATE)
        .store_release(state_word(STATE_FREE, 0, entry.generation));
    shared.liveness.release(entry_lock(entry.index));
    // A dependent consumer or a producer may be waiting on this entry's position.
    shared.notify_released();
}

/// Joins (or creates, as its first worker) the group `name`; returns the group entry and
/// whether this call created it (the creator then sets the group's start and activates it).
pub(crate) fn join_group(
    shared: &Shared,
    name: &str,
    deps: &[Dependency],
    explicit_deps: bool,
) -> Result<(EntryRef, bool), Error> {
    for _ in 0..NAME_RACE_ATTEMPTS {
        if let Some((group, kind)) = find(shared, name) {
            if kind != KIND_GROUP {
                return Err(Error::NameTaken {
                    name: name.to_owned(),
                });
            }
            if explicit_deps && recorded_dependencies(shared, group.index) != deps {
                return Err(Error::GroupMismatch {
                    group: name.to_owned(),
                });
            }
            let word = shared.entry_word(group.index, E_STATE);
            // Acquire: as in `state`.
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
        match claim(shared, name, KIND_GROUP) {
            Ok(group) => {
                describe(shared, group, deps, None, 0);
                return Ok((group, true));
            }
            Err(Error::NameTaken { .. }) => crate::sync::yield_now(),
            Err(e) => return Err(e),
        }
    }
    Err(Error::NameTaken {
        name: name.to_owned(),
    })
}

/// Adds or removes a worker's bit in its group's member mask.
pub(crate) fn set_member(shared: &Shared, group: EntryRef, worker: usize, present: bool) {
    let members = shared.entry_word(group.index, E_MEMBERS);
    let bit = 1u64 << worker;
    // AcqRel: pairs with the Acquire of the member mask in the barrier's group reads.
    if present {
        members.fetch_or_acqrel(bit);
    } else {
        members.fetch_and_acqrel(!bit);
    }
}

/// Leaves a group; the last worker out frees the group entry.
pub(crate) fn leave_group(shared: &Shared, group: EntryRef) {
    let word = shared.entry_word(group.index, E_STATE);
    loop {
        // Acquire: as in `state`.
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
        } else if word
            .compare_exchange_acqrel(current, state_word(STATE_CLAIMING, 0, generation))
            .is_ok()
        {
            // Nobody can join a claiming group; free it.
            free(shared, group);
            return;
        }
    }
}

/// The lowest position of a group: its claim counter, then its workers' positions `[group]`.
pub(crate) fn group_position(shared: &Shared, group: usize) -> u64 {
    // [group] Acquire: pairs with the workers' AcqRel CAS of the counter.
    let counter = shared.entry_sequence(group).load_acquire();
    // Acquire: pairs with the AcqRel updates in `set_member`.
    let members = shared.entry_word(group, E_MEMBERS).load_acquire();
    bits(members)
        .filter(|&w| w < shared.layout.params.max_consumers)
        // [released] Acquire: pairs with the worker's Release store of its position.
        .map(|w| shared.entry_sequence(w).load_acquire())
        .fold(counter, u64::min)
}

/// Frees the entries of consumers whose processes died (see `liveness.rs`), orphans the
/// claims of dead workers for their groups, and evicts dead (or detached) durable
/// subscribers whose delay has passed. Returns how many entries it freed or orphaned. On a
/// heap ring only detached durable subscribers can be found here.
pub(crate) fn reap_dead(shared: &Shared) -> usize {
    (0..shared.layout.params.max_consumers)
        .filter(|&index| {
            let (st, _, _) = state(shared, index);
            let candidate = st == STATE_CLAIMING
                || (st == STATE_ACTIVE
                    && kind_of(shared, index) != KIND_GROUP
                    && options(shared, index) & OPT_ORPHAN == 0);
            candidate && !shared.liveness.is_held(entry_lock(index)) && reap(shared, index)
        })
        .count()
}

fn options(shared: &Shared, index: usize) -> u64 {
    // Relaxed: immutable while claimed, except OPT_ORPHAN, which is set with the group's
    // orphan mask (AcqRel) that adopters read.
    shared.entry_word(index, E_OPTIONS).load_relaxed()
}

/// Milliseconds of CLOCK_MONOTONIC, which every process of the machine shares.
fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, exclusively borrowed timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1000) + ts.tv_nsec as u64 / 1_000_000
}

/// Cleans up after the dead owner of entry `index`, holding its token meanwhile.
fn reap(shared: &Shared, index: usize) -> bool {
    let byte = entry_lock(index);
    if !shared.liveness.acquire(byte) {
        return false; // alive after all, or somebody else is cleaning up
    }
    let (st, _, generation) = state(shared, index);
    let entry = EntryRef { index, generation };
    let kind = kind_of(shared, index);
    let opts = options(shared, index);
    let done = match st {
        // The claimer died while attaching (a group's creator included).
        STATE_CLAIMING => {
            free(shared, entry);
            true
        }
        STATE_ACTIVE if kind == KIND_SUBSCRIBER && opts & OPT_DURABLE != 0 => {
            let evict_after = opts >> 32;
            let since = shared.entry_word(index, E_DEAD_SINCE);
            // Relaxed: a plain timestamp; nothing is published with it.
            let mut first = since.load_relaxed();
            if first == 0 {
                first = monotonic_ms() + 1;
                since.store_relaxed(first);
            }
            let evict = evict_after != 0 && monotonic_ms() + 1 >= first.saturating_add(evict_after);
            if evict {
                free(shared, entry);
            }
            evict
        }
        STATE_ACTIVE if kind == KIND_SUBSCRIBER => {
            free(shared, entry);
            true
        }
        STATE_ACTIVE if kind == KIND_WORKER && opts & OPT_ORPHAN == 0 => {
            orphan_or_free(shared, entry);
            true
        }
        _ => false,
    };
    if !done {
        shared.liveness.release(byte);
    }
    done
}

/// A worker that stops (dead, or detaching): if it holds a claim, the claim goes to its group
/// as an orphan for another worker to take over (flagged redelivered); if not, it leaves.
/// The caller holds the worker's token; it is released here.
pub(crate) fn orphan_or_free(shared: &Shared, worker: EntryRef) {
    // Relaxed: the worker's own words; the caller either is the worker or confirmed its
    // death (the kernel released its lock after all its stores).
    let (group_index, group_generation) =
        decode_entry_ref(shared.entry_word(worker.index, E_GROUP).load_relaxed());
    let group = EntryRef {
        index: group_index,
        generation: group_generation,
    };
    // Acquire: pairs with the worker's own Release stores of its position.
    let held = shared.entry_sequence(worker.index).load_acquire();
    let group_ok = group_index < shared.layout.params.max_consumers && is_live(shared, group);
    if held == IDLE || !group_ok {
        retire_worker(shared, worker, group_ok.then_some(group));
        return;
    }
    let opts = shared.entry_word(worker.index, E_OPTIONS);
    // Relaxed: published by the AcqRel of the orphan mask below.
    opts.store_relaxed(options(shared, worker.index) | OPT_ORPHAN);
    // AcqRel: pairs with the adopter's AcqRel `fetch_and` in `adopt_orphan`.
    shared
        .entry_word(group_index, E_ORPHANS)
        .fetch_or_acqrel(1u64 << worker.index);
    shared.liveness.release(entry_lock(worker.index));
    // Workers waiting for messages (on either event) should come and take it.
    shared.notify_published();
    shared.notify_released();
}

/// Removes a worker that holds nothing from its group and frees its entry.
pub(crate) fn retire_worker(shared: &Shared, worker: EntryRef, group: Option<EntryRef>) {
    // [released] Release: the worker holds nothing any more.
    shared.entry_sequence(worker.index).store_release(IDLE);
    if let Some(group) = group {
        set_member(shared, group, worker.index, false);
    }
    free(shared, worker);
    if let Some(group) = group {
        leave_group(shared, group);
    }
}

/// Takes over one orphaned claim of `group` for `worker`: returns its range. The caller
/// delivers it flagged as redelivered.
pub(crate) fn adopt_orphan(shared: &Shared, group: usize, worker: usize) -> Option<(u64, u64)> {
    let orphans = shared.entry_word(group, E_ORPHANS);
    loop {
        // Relaxed: a hint; the fetch_and below decides.
        let mask = orphans.load_relaxed() & valid_mask(shared);
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
        let (_, _, generation) = state(shared, orphan);
        // Relaxed: immutable while claimed. Checked: it comes from shared memory.
        let (g, gen) = decode_entry_ref(shared.entry_word(orphan, E_GROUP).load_relaxed());
        let orphan_group = (g < shared.layout.params.max_consumers).then_some(EntryRef {
            index: g,
            generation: gen,
        });
        retire_worker(
            shared,
            EntryRef {
                index: orphan,
                generation,
            },
            orphan_group,
        );
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

/// The mask of table entries that exist.
pub(crate) fn valid_mask(shared: &Shared) -> u64 {
    let max = shared.layout.params.max_consumers;
    if max >= 64 {
        u64::MAX
    } else {
        (1u64 << max) - 1
    }
}

/// Re-attaches a restarted durable subscriber to the entry it left behind: same entry, same
/// generation (dependents keep depending on it), same position. `None` if there is no such
/// entry or its owner is still alive.
pub(crate) fn adopt_durable(shared: &Shared, name: &str) -> Option<EntryRef> {
    let (entry, kind) = find(shared, name)?;
    if kind != KIND_SUBSCRIBER || options(shared, entry.index) & OPT_DURABLE == 0 {
        return None;
    }
    if !shared.liveness.acquire(entry_lock(entry.index)) {
        return None;
    }
    if !is_live(shared, entry) {
        shared.liveness.release(entry_lock(entry.index));
        return None;
    }
    // Relaxed: a timestamp only reapers read.
    shared.entry_word(entry.index, E_DEAD_SINCE).store_relaxed(0);
    Some(entry)
}

/// Every active entry, for `Ring::consumers`.
pub(crate) fn snapshot(shared: &Shared) -> Vec<ConsumerInfo> {
    let max = shared.layout.params.max_consumers;
    let names: Vec<Option<String>> = (0..max)
        .map(|i| {
            (state(shared, i).0 == STATE_ACTIVE)
                .then(|| read_name(shared, i))
                .flatten()
        })
        .collect();
    (0..max)
        .filter_map(|index| {
            let name = names[index].clone()?;
            let kind = match kind_of(shared, index) {
                KIND_SUBSCRIBER => ConsumerKind::Subscriber,
                KIND_GROUP => ConsumerKind::Group,
                KIND_WORKER => ConsumerKind::Worker,
                _ => return None,
            };
            // Acquire: [released].
            let position = shared.entry_sequence(index).load_acquire();
            let group = (kind == ConsumerKind::Worker)
                .then(|| {
                    // Relaxed: immutable while claimed.
                    let (g, _) = decode_entry_ref(shared.entry_word(index, E_GROUP).load_relaxed());
                    names.get(g).cloned().flatten()
                })
                .flatten();
            let after = recorded_dependencies(shared, index)
                .iter()
                .filter_map(|d| names.get(d.entry.index).cloned().flatten())
                .collect();
            let opts = options(shared, index);
            let alive = kind == ConsumerKind::Group
                || (opts & OPT_ORPHAN == 0 && shared.liveness.is_held(entry_lock(index)));
            Some(ConsumerInfo {
                name,
                kind,
                group,
                sequence: (position != IDLE).then_some(position),
                after,
                durable: opts & OPT_DURABLE != 0,
                alive,
            })
        })
        .collect()
}
