//! The active segment's pages mapped in ahead of the writer, by a thread of their own: the
//! first touch of a page of a preallocated segment is a fault that reads (zero-fills) it, which
//! the writer's thread would otherwise take once per page.
//!
//! The pages are only read in: that does not dirty them, so a sync never writes back pages
//! ahead of the records, and the writer's `pwrite`s find them in the page cache
//! (`Journal::flush`: the journal writes by `pwrite`, all but a page-cache journal's flushes
//! of a record or two).
//!
//! A second thread prepares the next segment's file ahead of the roll (a spare: a new file,
//! [`Prefaulter::spare`], or a retired segment written over with zeros,
//! [`Prefaulter::recycle`]), so that a roll renames a file instead of allocating one. It is
//! a thread apart because a spare ends with a sync (a recycled one's, of a whole segment),
//! which would hold up the pages the writer needs next.
//!
//! A hint throughout: a thread that cannot be spawned, or a kernel that refuses the populate,
//! leaves every page to fault in as before, and every segment to be allocated at its roll.

use super::io::{write_zeros, Disk, SPARE};
use super::segment::RECORDS_START;
use super::DiskFile;
use std::io;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// How far ahead of the writer pages are mapped in; a new request goes out when the writer is
/// within half of it.
const WINDOW: u64 = 2 << 20;

enum Request {
    /// Map `len` bytes at `offset` of `file` in.
    Pages {
        file: Arc<dyn DiskFile>,
        offset: u64,
        len: u64,
    },
    /// Make `file`, a retired segment renamed to the spare's name under its claim, a spare
    /// (see [`Prefaulter::recycle`]), and send it (or the error) on `done`.
    Recycle {
        disk: Arc<dyn Disk>,
        file: Arc<dyn DiskFile>,
        done: Sender<io::Result<Arc<dyn DiskFile>>>,
    },
    /// Allocate a spare of `len` bytes in `disk` and send it (or the error) on `done`.
    Spare {
        disk: Arc<dyn Disk>,
        len: u64,
        done: Sender<io::Result<Arc<dyn DiskFile>>>,
    },
}

/// A spare being allocated: its file, once the helper has made it.
pub(super) type SpareFile = Receiver<io::Result<Arc<dyn DiskFile>>>;

pub(super) struct Prefaulter {
    /// Pages ahead of the writer.
    pages: Helper,
    /// Spares: apart from the pages, so that a spare's sync (a recycled one's is of a whole
    /// segment of zeros) never holds up the writer's next pages.
    spares: Helper,
    /// The active segment is requested up to here.
    requested: u64,
}

/// A thread carrying out requests in order (none if it could not be spawned).
struct Helper {
    requests: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Helper {
    fn spawn(name: &str) -> Helper {
        let (requests, incoming) = channel::<Request>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for request in incoming {
                    request.carry_out();
                }
            })
            .ok();
        Helper {
            requests: thread.is_some().then_some(requests),
            thread,
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has done what it was asked.
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Prefaulter {
    /// The threads (or, where one cannot be spawned, a prefaulter that asks for no pages and
    /// makes spares inline).
    pub(super) fn spawn() -> Prefaulter {
        Prefaulter {
            pages: Helper::spawn("ringmq-prefault"),
            spares: Helper::spawn("ringmq-spare"),
            requested: 0,
        }
    }

    /// The writer is at `offset` of `file`, whose records may reach `end`: asks for the next
    /// window once the writer is within half a window of what was asked for.
    #[inline]
    pub(super) fn ahead(&mut self, file: &Arc<dyn DiskFile>, offset: u64, end: u64) {
        if offset + WINDOW / 2 < self.requested || self.pages.requests.is_none() {
            return;
        }
        let from = self.requested.max(offset);
        let len = WINDOW.min(end.saturating_sub(from));
        if len == 0 {
            return;
        }
        if let Some(requests) = &self.pages.requests {
            let _ = requests.send(Request::Pages {
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

    /// Starts allocating a spare segment file of `len` bytes ([`SPARE`] in `disk`): on the
    /// spare thread, or inline if there is none or `disk` is [`Disk::single_threaded`]. The result
    /// arrives on the returned receiver; a roll waits for it there.
    pub(super) fn spare(&self, disk: &Arc<dyn Disk>, len: u64) -> SpareFile {
        let (done, file) = channel();
        self.ask(
            disk,
            Request::Spare {
                disk: disk.clone(),
                len,
                done,
            },
        );
        file
    }

    /// Starts making `file` the spare: a retired segment the writer has renamed to
    /// [`SPARE`] (and synced the directory) while holding its claim against readers
    /// ([`DiskFile::try_claim`]). On the spare thread, or inline as for
    /// [`Prefaulter::spare`].
    pub(super) fn recycle(&self, disk: &Arc<dyn Disk>, file: Arc<dyn DiskFile>) -> SpareFile {
        let (done, spare) = channel();
        self.ask(
            disk,
            Request::Recycle {
                disk: disk.clone(),
                file,
                done,
            },
        );
        spare
    }

    /// Sends a spare's `request` on `disk` to its thread, or carries it out here if there is
    /// none or `disk` is [`Disk::single_threaded`].
    fn ask(&self, disk: &Arc<dyn Disk>, request: Request) {
        let unsent = match &self.spares.requests {
            Some(requests) if !disk.single_threaded() => requests.send(request).err().map(|e| e.0),
            _ => Some(request),
        };
        if let Some(request) = unsent {
            request.carry_out();
        }
    }
}

impl Request {
    fn carry_out(self) {
        match self {
            Request::Pages { file, offset, len } => file.prefetch(offset, len),
            Request::Spare { disk, len, done } => {
                let _ = done.send(make_spare(&*disk, len));
            }
            Request::Recycle { disk, file, done } => {
                let _ = done.send(recycled_spare(&*disk, file));
            }
        }
    }
}

/// Writes zeros over every byte of a retired segment and syncs them, then lets readers at
/// it again: it is then what [`make_spare`] makes, a file of zeros, with its pages in the
/// page cache and its blocks allocated and written (no fault reads a page in, no sync
/// converts a block from unwritten). Its old records would be harmless (their sequences
/// are below any the new segment expects, and the CRC covers the sequence), but recovery
/// takes bytes past the last record for a torn tail to be zeroed, and readers take a zero
/// header for a segment being created.
fn recycled_spare(disk: &dyn Disk, file: Arc<dyn DiskFile>) -> io::Result<Arc<dyn DiskFile>> {
    let made = write_zeros(&*file, 0, file.len()).and_then(|()| file.sync_data());
    // Released once the header is zero: a reader that opened the file by its old name
    // before the rename finds no segment in it.
    file.release();
    if let Err(e) = made {
        let _ = disk.remove(SPARE);
        return Err(e);
    }
    file.prefetch(RECORDS_START, WINDOW);
    Ok(file)
}

/// Allocates the spare, writes its header and state pages (zeros: the roll writes them
/// again) and syncs it, then maps in the first window of its records. A new file's first
/// write faults and converts its blocks from unwritten, and its first sync commits the
/// allocation: all of that happens here, so the roll's sync of the new segment writes two
/// pages and nothing else.
fn make_spare(disk: &dyn Disk, len: u64) -> io::Result<Arc<dyn DiskFile>> {
    let file = disk.create(SPARE, len)?;
    if let Err(e) = write_zeros(&*file, 0, RECORDS_START.min(len)).and_then(|()| file.sync_data()) {
        // Not left under the spare's name, where it would block the next one.
        let _ = disk.remove(SPARE);
        return Err(e);
    }
    file.prefetch(RECORDS_START, WINDOW);
    Ok(file)
}
