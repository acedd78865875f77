//! The group commit's syncer: a thread that runs one `fdatasync` at a time while the writer
//! goes on appending.
//!
//! The writer hands over a [`Ticket`] (the file and the end it covers) after writing the state
//! slot for it, and takes the result back later ([`Syncer::finished`]); at most one ticket is
//! in flight, so a state slot is written only once the previous one's sync has returned (the
//! two slots' rule in `docs/architecture.md`). A durable callback runs on the syncer thread
//! as soon as a sync returns, so a durable position can be published without waiting for the
//! writer to look.

use super::DiskFile;
use crate::atomic::Word;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Called with the new durable position after every successful sync.
pub(crate) type OnDurable = Arc<dyn Fn(u64) + Send + Sync>;

/// One sync: `file`'s records up to sequence `end`, ending at byte `offset`.
pub(super) struct Ticket {
    pub file: Arc<dyn DiskFile>,
    pub name: String,
    pub end: u64,
    pub offset: u64,
}

#[derive(Default)]
struct Slot {
    ticket: Option<Ticket>,
    done: Option<Result<Ticket, String>>,
    stop: bool,
}

struct Handoff {
    slot: Mutex<Slot>,
    changed: Condvar,
    /// 1 while `slot.done` holds a result (set and cleared under the lock): a writer that
    /// only looks, once per append while a sync is in flight, reads this and leaves the lock,
    /// which the syncer thread takes, alone. A stale 0 only makes it look again later.
    done: Word,
}

impl Default for Handoff {
    fn default() -> Self {
        Handoff {
            slot: Mutex::default(),
            changed: Condvar::new(),
            done: Word::new(0),
        }
    }
}

impl Handoff {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The syncer thread's handle; dropping it lets an in-flight sync finish and joins the thread.
pub(super) struct Syncer {
    handoff: Arc<Handoff>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer").finish_non_exhaustive()
    }
}

impl Syncer {
    /// Starts the thread.
    pub(super) fn spawn(on_durable: Option<OnDurable>) -> std::io::Result<Syncer> {
        let handoff = Arc::new(Handoff::default());
        let theirs = handoff.clone();
        let thread = std::thread::Builder::new()
            .name("ringmq-journal-sync".into())
            .spawn(move || run(&theirs, on_durable.as_deref()))?;
        Ok(Syncer {
            handoff,
            thread: Some(thread),
        })
    }

    /// Hands `ticket` over; the caller has none in flight.
    pub(super) fn start(&self, ticket: Ticket) {
        let mut slot = self.handoff.lock();
        debug_assert!(slot.ticket.is_none() && slot.done.is_none());
        slot.ticket = Some(ticket);
        self.handoff.changed.notify_all();
    }

    /// The in-flight sync's result if it has one (waiting for it if `wait`): the ticket back,
    /// or the failure's description.
    pub(super) fn finished(&self, wait: bool) -> Option<Result<Ticket, String>> {
        // Acquire: pairs with the syncer's Release store after it filled `done` (the lock
        // taken next orders the result itself).
        if !wait && self.handoff.done.load_acquire() == 0 {
            return None;
        }
        let mut slot = self.handoff.lock();
        while wait && slot.done.is_none() {
            slot = self.handoff.changed.wait(slot).unwrap_or_else(|e| e.into_inner());
        }
        // Relaxed: under the lock, which orders it with the syncer's store.
        self.handoff.done.store_relaxed(0);
        slot.done.take()
    }
}

fn run(handoff: &Handoff, on_durable: Option<&(dyn Fn(u64) + Send + Sync)>) {
    loop {
        let ticket = {
            let mut slot = handoff.lock();
            loop {
                if let Some(ticket) = slot.ticket.take() {
                    break ticket;
                }
                if slot.stop {
                    return;
                }
                slot = handoff.changed.wait(slot).unwrap_or_else(|e| e.into_inner());
            }
        };
        let result = match ticket.file.sync_data() {
            Ok(()) => {
                if let Some(on_durable) = on_durable {
                    on_durable(ticket.end);
                }
                Ok(ticket)
            }
            Err(e) => Err(format!("fdatasync of {} failed: {e}", ticket.name)),
        };
        let mut slot = handoff.lock();
        slot.done = Some(result);
        // Release: pairs with the writer's Acquire look in `finished`.
        handoff.done.store_release(1);
        drop(slot);
        handoff.changed.notify_all();
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.handoff.lock().stop = true;
        self.handoff.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
