//! Push consumption: a thread that runs a handler on every message, batch by batch.

use super::{Consumer, Message};
use crate::error::{RecvError, SpawnError};
use crate::wait::StopFlag;
use std::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Options for [`Consumer::spawn`].
#[derive(Clone, Debug)]
pub struct HandlerOptions {
    core: Option<usize>,
    max_batch: usize,
    thread_name: Option<String>,
}

impl Default for HandlerOptions {
    fn default() -> Self {
        HandlerOptions {
            core: None,
            max_batch: 1024,
            thread_name: None,
        }
    }
}

impl HandlerOptions {
    /// Default options: unpinned, batches of up to 1024, thread named after the consumer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pins the handler thread to this core (an id from `core_affinity::get_core_ids`).
    pub fn pin_to_core(mut self, core: usize) -> Self {
        self.core = Some(core);
        self
    }

    /// The most messages handed over per batch (default 1024); the position is released
    /// once per batch.
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// The thread's name (default `ringmq-` and the consumer's name).
    pub fn thread_name(mut self, name: &str) -> Self {
        self.thread_name = Some(name.to_owned());
        self
    }
}

/// A handler thread started by [`Consumer::spawn`]. Stop it with [`HandlerThread::stop`];
/// dropping it stops it too.
pub struct HandlerThread {
    stop: Arc<StopFlag>,
    wake: crate::sync::Arc<crate::shared::Shared>,
    thread: Option<JoinHandle<Consumer>>,
}

impl fmt::Debug for HandlerThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerThread").finish_non_exhaustive()
    }
}

impl Consumer {
    /// Moves the consumer to a new thread that calls `handler(message, end_of_batch)` for
    /// every message, in order, until stopped. `end_of_batch` is true on the last message of
    /// each batch, where a handler would flush buffered work. The batch is released after
    /// the handler returns from its last message.
    ///
    /// # Errors
    ///
    /// [`SpawnError::InvalidCore`] if the core to pin to does not exist,
    /// [`SpawnError::Thread`] if the thread cannot be started.
    pub fn spawn<F>(mut self, options: HandlerOptions, mut handler: F) -> Result<HandlerThread, SpawnError>
    where
        F: FnMut(Message<'_>, bool) + Send + 'static,
    {
        let core = match options.core {
            None => None,
            Some(id) => Some(
                core_affinity::get_core_ids()
                    .unwrap_or_default()
                    .into_iter()
                    .find(|c| c.id == id)
                    .ok_or(SpawnError::InvalidCore { core: id })?,
            ),
        };
        let stop = Arc::new(StopFlag::default());
        self.set_stop(Arc::clone(&stop));
        let wake = crate::sync::Arc::clone(self.att.arc());
        let name = options
            .thread_name
            .clone()
            .unwrap_or_else(|| format!("ringmq-{}", self.name()));
        let max_batch = options.max_batch;
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                if let Some(core) = core {
                    // Best effort: a refused pin leaves the thread running unpinned.
                    core_affinity::set_for_current(core);
                }
                loop {
                    let batch = match self.poll(max_batch) {
                        Ok(batch) => batch,
                        Err(RecvError::Stopped) => break,
                        // Without a deadline, `poll` fails only when stopped.
                        Err(_) => break,
                    };
                    let mut pending: Option<Message<'_>> = None;
                    for msg in batch.iter() {
                        if let Some(previous) = pending.replace(msg) {
                            handler(previous, false);
                        }
                    }
                    if let Some(last) = pending {
                        handler(last, true);
                    }
                }
                self
            })
            .map_err(|e| SpawnError::Thread(e.to_string()))?;
        Ok(HandlerThread {
            stop,
            wake,
            thread: Some(thread),
        })
    }
}

impl HandlerThread {
    /// Stops the loop after the batch in hand, joins the thread and gives the consumer back
    /// (still attached, at the position after the last handled message).
    ///
    /// # Errors
    ///
    /// The handler's panic payload, if it panicked (the consumer is then detached).
    pub fn stop(mut self) -> std::thread::Result<Consumer> {
        self.signal();
        match self.thread.take() {
            Some(thread) => thread.join(),
            // `stop` takes `self`, and only `stop` and `drop` take the thread.
            None => Err(Box::new("the handler thread was already joined")),
        }
    }

    /// Whether the thread has finished (it only does when stopped or when the handler
    /// panicked).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    fn signal(&self) {
        self.stop.stop();
        // Unconditional wakes: the handler may sleep on either event. Its sleep re-checks the
        // stop flag after the bumped word (see `wait::block`).
        self.wake.published_event().wake();
        self.wake.released_event().wake();
    }
}

impl Drop for HandlerThread {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.signal();
            let _ = thread.join();
        }
    }
}
