//! The consumer table: reserving, describing, activating and freeing entries by name, at run
//! time, from any thread (and, with the shared-memory backends, from any process) without a
//! lock. `producers.rs` beside it is the producer table.
//!
//! An entry's state word holds its state (free, reserving, active), a generation that grows at
//! every reservation (so a stale reference to a reused entry is detected), and for a group the
//! number of its workers. What a group does with its entries is in `group.rs`; what happens to
//! the entries of processes that died, in `reaper.rs`.
//!
//! Names are unique among reserving and active entries (tag `[name]`): a reserver writes its
//! name, runs a SeqCst fence, then scans the other reserving or active entries. Of two racing
//! reservers of one name, at least one sees the other (store-buffering); whoever sees a
//! conflict backs off, so at most one wins.

pub(crate) mod producers;

use crate::error::AttachError;
use crate::layout::table::{
    decode_entry_ref, decode_state, entry_ref, state_word, E_DEAD_SINCE, E_DEPS, E_DEP_COUNT, E_GROUP,
    E_KIND, E_MEMBERS, E_NAME, E_NAME_LEN, E_OPTIONS, E_ORPHANS, E_STATE, IDLE, KIND_GROUP, KIND_SUBSCRIBER,
    KIND_WORKER, OPT_DURABLE, OPT_ORPHAN, STATE_ACTIVE, STATE_FREE, STATE_RESERVING,
};
use crate::limits::{MAX_DEPENDENCIES, MAX_NAME_LEN};
use crate::liveness::entry_lock;
use crate::shared::Shared;
use crate::sync::{fence, Ordering};

/// How often a reserver that lost a name race tries again before giving up.
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
    /// A durable subscriber (see [`crate::SubscriberBuilder::durable`]).
    pub durable: bool,
    /// Whether the process that attached it is alive (always true on a heap ring; a group is
    /// alive while it is attached). A dead durable subscriber waits here for its restart; a
    /// dead worker waits for its group to take its claim over.
    pub alive: bool,
}

/// Entry `index`'s (state, members, generation).
pub(crate) fn state(shared: &Shared, index: usize) -> (u64, u64, u32) {
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
    // Relaxed: names are immutable while the entry is reserved; the state Acquire that led
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

/// Entry `index`'s kind (`KIND_*`).
pub(crate) fn kind_of(shared: &Shared, index: usize) -> u64 {
    // Relaxed: immutable while reserved; see `read_name`.
    shared.entry_word(index, E_KIND).load_relaxed()
}

/// Entry `index`'s options word (`OPT_*`, and a durable subscriber's eviction delay).
pub(crate) fn options(shared: &Shared, index: usize) -> u64 {
    // Relaxed: immutable while reserved, except OPT_ORPHAN, which is set with the group's
    // orphan mask (AcqRel) that adopters read, and a group's OPT_DURABLE, which `leave`
    // reads with Acquire (`group::set_durable`).
    shared.entry_word(index, E_OPTIONS).load_relaxed()
}

/// Checks a consumer or group name.
pub(crate) fn validate_name(name: &str) -> Result<(), AttachError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(AttachError::InvalidName {
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
pub(crate) fn resolve(shared: &Shared, names: &[String]) -> Result<Vec<Dependency>, AttachError> {
    if names.len() > MAX_DEPENDENCIES {
        return Err(AttachError::TooManyDependencies { count: names.len() });
    }
    names
        .iter()
        .map(|name| match find(shared, name) {
            Some((entry, kind)) if kind != KIND_WORKER => Ok(Dependency {
                entry,
                is_group: kind == KIND_GROUP,
            }),
            _ => Err(AttachError::UnknownDependency { name: name.clone() }),
        })
        .collect()
}

/// Reads the dependencies recorded in an entry (used by workers, which inherit their group's).
pub(crate) fn recorded_dependencies(shared: &Shared, index: usize) -> Vec<Dependency> {
    // Relaxed: immutable while the entry is reserved.
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

/// Reserves a free entry under `name`, unique among reserving and active entries `[name]`.
/// `reap` cleans up after dead processes (`reaper::reap_dead`) and returns how many entries
/// it freed: a dead process's consumer may hold the name or the last free entry.
pub(crate) fn reserve(
    shared: &Shared,
    name: &str,
    kind: u64,
    reap: &mut dyn FnMut() -> usize,
) -> Result<EntryRef, AttachError> {
    validate_name(name)?;
    let max = shared.layout.params.max_consumers;
    let taken = || AttachError::NameTaken {
        name: name.to_owned(),
    };
    for _ in 0..NAME_RACE_ATTEMPTS {
        if find(shared, name).is_some() && (reap() == 0 || find(shared, name).is_some()) {
            return Err(taken());
        }
        let entry = match grab_free(shared) {
            Some(entry) => entry,
            None if reap() > 0 => continue,
            None => return Err(AttachError::TableFull { max_consumers: max }),
        };
        write_name(shared, entry.index, name);
        // Relaxed: published with the name.
        shared.entry_word(entry.index, E_KIND).store_relaxed(kind);
        // [name] SeqCst: pairs with this same fence in any racing reserver.
        fence(Ordering::SeqCst);
        let conflict = (0..max).filter(|&i| i != entry.index).find_map(|i| {
            let (st, _, _) = state(shared, i);
            let taken = (st == STATE_RESERVING || st == STATE_ACTIVE)
                && read_name(shared, i).as_deref() == Some(name);
            taken.then_some(st)
        });
        match conflict {
            None => return Ok(entry),
            Some(st) => {
                free(shared, entry);
                if st == STATE_ACTIVE {
                    return Err(taken());
                }
                crate::sync::yield_now();
            }
        }
    }
    Err(taken())
}

/// Takes a free entry: its liveness token first, then its state (see `liveness.rs`: the
/// token is held from before the reservation until the entry is free again).
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
                .compare_exchange_acqrel(current, state_word(STATE_RESERVING, 0, next_gen))
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

/// Makes a reserved entry gate producers from `position`, and marks it active.
pub(crate) fn activate(shared: &Shared, entry: EntryRef, position: u64, members: u64) {
    let bit = 1u64 << entry.index;
    // Release: [released] pairs with the Acquire in `gating::gating_minimum`.
    shared.entry_sequence(entry.index).store_release(position);
    if kind_of(shared, entry.index) == KIND_GROUP {
        // AcqRel: pairs with the Acquire of the masks in `gating::gating_minimum`.
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

/// Stops an entry gating producers and frees it.
pub(crate) fn free(shared: &Shared, entry: EntryRef) {
    let bit = 1u64 << entry.index;
    // AcqRel: pairs with the Acquire of the masks in `gating::gating_minimum`.
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
                    // Relaxed: immutable while reserved.
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
