//! Awaiting one of a ring's events from a future: [`Awaiting`] (a future's place among the
//! event's waiters, given back when it drops) and the waker thread that sleeps on the event's
//! futex word for this process's futures (`[async-wakeup]`, `wake.rs`).

use crate::shared::Shared;
use crate::sync::Arc;
use crate::wait::Event;
use crate::wake::{Pass, Pending, Place, Words};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How long a waker thread with no futures to wake stays parked before it ends.
const IDLE_EXIT: Duration = Duration::from_secs(1);

/// Which of a ring's events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Which {
    /// Producers to consumers.
    Published,
    /// Consumers to producers and to dependent consumers.
    Released,
}

impl Which {
    fn event(self, shared: &Shared) -> Event<'_> {
        match self {
            Which::Published => shared.published_event(),
            Which::Released => shared.released_event(),
        }
    }
}

fn words(event: Event<'_>) -> Words<'_> {
    Words {
        word: event.word,
        waiters: event.waiters,
    }
}

/// A future's wait on one event of a ring: polled until a check holds; its place among the
/// waiters goes when it drops (a future dropped while pending leaves nothing behind).
pub(crate) struct Awaiting {
    shared: Arc<Shared>,
    which: Which,
    place: Place,
}

impl Awaiting {
    pub(crate) fn new(shared: &Arc<Shared>, which: Which) -> Self {
        Awaiting {
            shared: Arc::clone(shared),
            which,
            place: Place::default(),
        }
    }

    /// `Ready(Some(v))` once `check` gives `v`, `Ready(None)` once `deadline` passed,
    /// `Pending` with the context's waker registered.
    pub(crate) fn poll<T>(
        &mut self,
        cx: &mut Context<'_>,
        deadline: Option<Instant>,
        check: impl FnMut() -> Option<T>,
    ) -> Poll<Option<T>> {
        let event = self.which.event(&self.shared);
        match event
            .local
            .poll(&mut self.place, words(event), cx.waker(), deadline, check)
        {
            Ok(v) => Poll::Ready(v),
            Err(Pending::Nothing) => Poll::Pending,
            Err(Pending::SpawnThread) => {
                spawn_waker_thread(Arc::clone(&self.shared), self.which);
                Poll::Pending
            }
        }
    }
}

impl Drop for Awaiting {
    fn drop(&mut self) {
        let event = self.which.event(&self.shared);
        event.local.finish(&mut self.place, words(event));
    }
}

/// Starts the thread that sleeps on `which` for this process's futures, until none has
/// waited for [`IDLE_EXIT`]. If no thread can be made, the futures are woken at once and try
/// again when they are polled (they spin through their executor rather than hang).
fn spawn_waker_thread(shared: Arc<Shared>, which: Which) {
    let keep = Arc::clone(&shared);
    let spawned = std::thread::Builder::new()
        .name("ringmq-waker".into())
        .spawn(move || {
            // The dead peers a blocking waiter would clean up after, so that the futures'
            // conditions can come true (the safety net of the sleep is for them).
            let mut reaper = crate::reaper::Reaper::new(&keep);
            loop {
                let event = which.event(&keep);
                match event.local.pass(words(event), event.safety_net, IDLE_EXIT) {
                    Pass::Sleep(w, timeout) => {
                        reaper.idle(&keep);
                        event.word.wait(w, timeout);
                    }
                    Pass::Again => {}
                    Pass::Exit => return,
                }
            }
        });
    if spawned.is_err() {
        which.event(&shared).local.thread_failed();
    }
}
