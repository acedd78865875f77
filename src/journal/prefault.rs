//! The active segment's pages mapped in ahead of the writer, by a thread of their own: the
//! first touch of a page of a preallocated segment is a fault that reads (zero-fills) it, which
//! the writer's thread would otherwise take once per page.
//!
//! How far it goes depends on the syncs. A journal that syncs as it goes (group commit, every
//! record) has its pages only read in: that does not dirty them, so a sync never writes back
//! pages ahead of the records, and the writer's first store to each is a cheaper
//! write-permission fault. A page-cache journal syncs a segment only when it seals it, so its
//! pages are made writable too, and the writer takes no fault at all; the zeros the kernel may
//! write back early are overwritten before that seal.
//!
//! A hint throughout: a thread that cannot be spawned, or a kernel that refuses the populate,
//! leaves every page to fault in as before.

use super::DiskFile;
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// How far ahead of the writer pages are mapped in; a new request goes out when the writer is
/// within half of it.
const WINDOW: u64 = 2 << 20;

struct Request {
    file: Arc<dyn DiskFile>,
    offset: u64,
    len: u64,
}

pub(super) struct Prefaulter {
    requests: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    /// The active segment is requested up to here.
    requested: u64,
}

impl Prefaulter {
    /// The thread (or, if it cannot be spawned, a prefaulter that asks for nothing);
    /// `for_write` makes pages writable, not only read in (see the module documentation).
    pub(super) fn spawn(for_write: bool) -> Prefaulter {
        let (requests, incoming) = channel::<Request>();
        let thread = std::thread::Builder::new()
            .name("ringmq-prefault".into())
            .spawn(move || {
                for r in incoming {
                    r.file.prefetch(r.offset, r.len, for_write);
                }
            })
            .ok();
        Prefaulter {
            requests: thread.is_some().then_some(requests),
            thread,
            requested: 0,
        }
    }

    /// The writer is at `offset` of `file`, whose records may reach `end`: asks for the next
    /// window once the writer is within half a window of what was asked for.
    #[inline]
    pub(super) fn ahead(&mut self, file: &Arc<dyn DiskFile>, offset: u64, end: u64) {
        if offset + WINDOW / 2 < self.requested || self.requests.is_none() {
            return;
        }
        let from = self.requested.max(offset);
        let len = WINDOW.min(end.saturating_sub(from));
        if len == 0 {
            return;
        }
        if let Some(requests) = &self.requests {
            let _ = requests.send(Request {
                file: file.clone(),
                offset: from,
                len,
            });
        }
        self.requested = from + len;
    }

    /// A new active segment: nothing of it requested yet.
    pub(super) fn new_segment(&mut self) {
        self.requested = 0;
    }
}

impl Drop for Prefaulter {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has done what it was asked.
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
