//! Confirms: waiting until a named subscriber or group has released a sequence, from any
//! thread or process that has the ring open. The wait reads the consumer's position (a
//! group's: its claim counter and workers, `gating::group_position`) and sleeps on the
//! ring's "released" event, which every release notifies when the ring has wake-ups.

use crate::error::ConfirmError;
use crate::gating::group_position;
use crate::layout::table::{KIND_GROUP, KIND_WORKER};
use crate::reaper::Reaper;
use crate::shared::Shared;
use crate::table;
use crate::wait::{self, WaitStrategy};
#[cfg(not(loom))]
use std::time::Duration;
use std::time::Instant;

/// How long a confirm yields before it sleeps on the futex. A confirm usually comes within
/// one sync or one consumer's batch, and a thread woken from a futex sleep takes tens of
/// microseconds to run again on a VM; a waiter that yields meanwhile costs a core only
/// while another thread has nothing to run on it (the syncing thread waits on the disk).
#[cfg(not(loom))]
const YIELD_FIRST: Duration = Duration::from_micros(250);

/// Waits until consumer (or group) `name` has released every sequence below `upto`; returns
/// its position then.
pub(crate) fn wait_released(
    shared: &Shared,
    name: &str,
    upto: u64,
    deadline: Option<Instant>,
) -> Result<u64, ConfirmError> {
    let unknown = || ConfirmError::UnknownConsumer {
        name: name.to_owned(),
    };
    let (entry, kind) = table::find(shared, name).ok_or_else(unknown)?;
    if kind == KIND_WORKER {
        return Err(ConfirmError::Worker {
            name: name.to_owned(),
        });
    }
    let position = || {
        if kind == KIND_GROUP {
            group_position(shared, entry.index)
        } else {
            // [released] Acquire: pairs with the consumer's Release store of its position.
            shared.entry_sequence(entry.index).load_acquire()
        }
    };
    let strategy = if shared.wakeups {
        WaitStrategy::Backoff
    } else {
        WaitStrategy::Yield
    };
    let mut reaper = Reaper::new(shared);
    #[cfg_attr(loom, allow(unused_mut))]
    let mut poll = || {
        if !table::is_live(shared, entry) {
            return Some(Err(ConfirmError::Detached {
                name: name.to_owned(),
            }));
        }
        let p = position();
        (p >= upto).then_some(Ok(p))
    };
    // Loom cannot spin: its waits block at once.
    #[cfg(not(loom))]
    if strategy == WaitStrategy::Backoff {
        let first = Instant::now() + YIELD_FIRST;
        let yield_until = deadline.map_or(first, |d| d.min(first));
        if let Ok(result) = wait::wait_for(
            WaitStrategy::Yield,
            shared.released_event(),
            Some(yield_until),
            None,
            &mut poll,
            &mut || reaper.idle(shared),
        ) {
            return result;
        }
    }
    match wait::wait_for(
        strategy,
        shared.released_event(),
        deadline,
        None,
        poll,
        &mut || reaper.idle(shared),
    ) {
        Ok(result) => result,
        Err(_) => Err(ConfirmError::Timeout { position: position() }),
    }
}

/// The released positions worth keeping across a restart of every process: each durable
/// subscriber's and each group's (its workers' unacknowledged claims counted as not
/// released), by name, with whether it is a group's. The journal stage persists them with
/// its commits.
#[cfg(not(loom))]
pub(crate) fn durable_positions(shared: &Shared) -> Vec<(String, u64, bool)> {
    use crate::layout::table::{KIND_SUBSCRIBER, OPT_DURABLE, STATE_ACTIVE};
    (0..shared.layout.params.max_consumers)
        .filter_map(|index| {
            let (state, _, _) = table::state(shared, index);
            if state != STATE_ACTIVE {
                return None;
            }
            let (position, group) = match table::kind_of(shared, index) {
                KIND_GROUP => (group_position(shared, index), true),
                KIND_SUBSCRIBER if table::options(shared, index) & OPT_DURABLE != 0 => {
                    // [released] Acquire: pairs with the subscriber's Release store.
                    (shared.entry_sequence(index).load_acquire(), false)
                }
                _ => return None,
            };
            Some((table::read_name(shared, index)?, position, group))
        })
        .collect()
}
