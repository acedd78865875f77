//! The journal's one way to the disk: a directory of fixed-length files that are created
//! allocated, written at offsets, synced, listed and removed. Everything the journal does to
//! storage goes through [`Disk`] and [`DiskFile`], so that tests run it on a simulated disk
//! (`SimDisk`, feature `sim-disk`) that makes crash images, and the perf harness can add
//! latency to every sync.
//!
//! [`FsDisk`] is the real one: files are allocated in full when created (a full disk is
//! `ENOSPC` then, never a `SIGBUS` on a later write), mapped shared, written by copying into
//! the mapping and made durable by `fdatasync`, which writes back a shared mapping's dirty
//! pages; the directory is fsynced on its own ([`Disk::sync_dir`]).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A directory of files, as the journal uses one.
pub trait Disk: Send + Sync + fmt::Debug {
    /// Creates file `name` of `len` bytes, every byte allocated and zero. Fails with
    /// `AlreadyExists` if the name is taken, and with `ENOSPC` (as `io::Error`'s raw OS error)
    /// if the space is not there. The name is durable only after [`Disk::sync_dir`].
    fn create(&self, name: &str, len: u64) -> io::Result<Arc<dyn DiskFile>>;
    /// Opens existing file `name` for reading and writing (a symbolic link is refused).
    fn open(&self, name: &str) -> io::Result<Arc<dyn DiskFile>>;
    /// Opens existing file `name` for reading only (its `write_at` fails).
    fn open_read(&self, name: &str) -> io::Result<Arc<dyn DiskFile>> {
        self.open(name)
    }
    /// The names in the directory, in no particular order.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Removes file `name` (durable after [`Disk::sync_dir`]). Open handles keep their bytes.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Gives file `from` the name `to` (durable after [`Disk::sync_dir`]; `AlreadyExists` if
    /// `to` is taken: nothing is ever replaced). Open handles stay valid.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Whether every call must come from the writer's own thread, in its order. A simulated
    /// disk that makes a crash image from a seed says so, so that a seed replays the same
    /// crash; the journal then prepares its next segment inline instead of on its helper
    /// thread.
    fn single_threaded(&self) -> bool {
        false
    }
    /// Makes every create and remove so far durable (fsync of the directory).
    fn sync_dir(&self) -> io::Result<()>;
    /// Takes the directory's writer lock if no live holder has it: `None` if one has. The
    /// lock is released when the returned guard drops or its process dies.
    fn try_lock_writer(&self) -> io::Result<Option<DiskLock>>;
}

/// One file of a [`Disk`]: fixed length, written at offsets.
pub trait DiskFile: Send + Sync + fmt::Debug {
    /// The file's length in bytes (fixed at creation).
    fn len(&self) -> u64;
    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Writes `data` at `offset` (`InvalidInput` past the end). Visible to every reader of
    /// the file at once; durable only after a successful [`DiskFile::sync_data`].
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// [`DiskFile::write_at`] through the file rather than through a writable mapping
    /// (`pwrite` for [`FsDisk`]'s files): no page table maps the pages writable, so writing
    /// them back for a sync changes no mapping, and costs no TLB shootdown of the other
    /// threads of the process. One call per batch of records: a call costs a system call.
    fn write_through(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.write_at(offset, data)
    }
    /// Reads `buf.len()` bytes at `offset` (`InvalidInput` past the end).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Makes every write so far durable (`fdatasync`). An error means some of them may never
    /// be: the kernel may have dropped them and marked the pages clean, so a later success
    /// proves nothing about them. Never retry and trust it.
    fn sync_data(&self) -> io::Result<()>;
    /// The address of the file's `len()` bytes as every reader sees them (a shared mapping),
    /// valid as long as this handle lives, even after the file is removed. Bytes change only
    /// through `write_at` and `write_through`: a caller forms a slice of a range only once it
    /// knows no write to that range is under way (a record is written once, before it is
    /// published).
    fn as_ptr(&self) -> *const u8;
    /// Asks for `len` bytes at `offset` to be read into the page cache and mapped ahead of
    /// use (a hint: nothing changes if it cannot be done). The pages are not dirtied: a sync
    /// of the file writes back none of them.
    fn prefetch(&self, _offset: u64, _len: u64) {}
    /// Claims the file against readers: `true` if no handle that [`Disk::open_read`] gave
    /// out has it open (in any process), and until [`DiskFile::release`] no such handle
    /// can be had (`open_read` reports `NotFound`, as for a removed file). A reader's slices
    /// of a file stay valid only while nothing writes over them, so the writer writes over a
    /// retired segment (recycles it) only under this claim. `false`, the default, keeps a
    /// disk's files from being recycled.
    fn try_claim(&self) -> io::Result<bool> {
        Ok(false)
    }
    /// Ends this handle's [`DiskFile::try_claim`].
    fn release(&self) {}
}

/// Writes zeros over `from..to` of `file` ([`DiskFile::write_through`], a MiB at a time at
/// most).
pub(crate) fn write_zeros(file: &dyn DiskFile, from: u64, to: u64) -> io::Result<()> {
    let zeros = vec![0u8; to.saturating_sub(from).min(1 << 20) as usize];
    let mut at = from;
    while at < to {
        let n = zeros.len().min((to - at) as usize);
        file.write_through(at, &zeros[..n])?;
        at += n as u64;
    }
    Ok(())
}

/// A held writer lock ([`Disk::try_lock_writer`]); dropping it releases the lock.
pub struct DiskLock(#[allow(dead_code)] Box<dyn Send + Sync>);

impl DiskLock {
    /// Wraps whatever keeps a disk's lock held until it drops.
    pub fn new(holder: Box<dyn Send + Sync>) -> Self {
        DiskLock(holder)
    }
}

impl fmt::Debug for DiskLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DiskLock")
    }
}

/// The name of the lock file [`FsDisk::try_lock_writer`] locks.
const LOCK_FILE: &str = "writer.lock";

/// The file the writer's helper allocates ahead of a segment roll, renamed to the new
/// segment's name when the roll comes. A spare a dead writer left is removed by the next
/// writer's open.
pub(crate) const SPARE: &str = "next.spare";

/// The names a journal directory may hold besides its segments.
pub(crate) const RESERVED_NAMES: &[&str] = &[LOCK_FILE, SPARE];

/// The suffix of a segment file being allocated ([`FsDisk`] renames it when it is whole):
/// readers pass such files over, and a writer's open removes them.
pub(crate) const PART_SUFFIX: &str = ".part";

/// A real directory.
#[derive(Debug)]
pub struct FsDisk {
    path: PathBuf,
    dir: File,
}

impl FsDisk {
    /// The directory at `path`, which must exist.
    ///
    /// # Errors
    ///
    /// The `open` of the directory's.
    pub fn open(path: &Path) -> io::Result<Self> {
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        Ok(FsDisk {
            path: path.to_owned(),
            dir,
        })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open_file(&self, name: &str, create: bool) -> io::Result<File> {
        self.open_with(name, create, true)
    }

    fn open_with(&self, name: &str, create: bool, write: bool) -> io::Result<File> {
        check_name(name)?;
        let mut options = OpenOptions::new();
        options
            .read(true)
            .write(write)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
        if create {
            options.create_new(true).mode(0o600);
        }
        options.open(self.path.join(name))
    }
}

/// A name is one path component: no separator, not `.` or `..`.
fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad file name {name:?}"),
        ));
    }
    Ok(())
}

impl Disk for FsDisk {
    fn create(&self, name: &str, len: u64) -> io::Result<Arc<dyn DiskFile>> {
        // Allocated under a name of its own and renamed whole, so that no reader ever maps a
        // file shorter than a segment under a segment's name. A `.part` left by a writer that
        // died here is removed by the next writer's open ([`PART_SUFFIX`]).
        check_name(name)?;
        let part = format!("{name}{PART_SUFFIX}");
        let _ = std::fs::remove_file(self.path.join(&part));
        let file = self.open_file(&part, true)?;
        let made = allocate(&file, len)
            .and_then(|()| std::fs::rename(self.path.join(&part), self.path.join(name)))
            .and_then(|()| FsFile::map(file, len, true));
        if made.is_err() {
            // Best effort: a half-made file is left under neither name.
            let _ = std::fs::remove_file(self.path.join(&part));
            let _ = std::fs::remove_file(self.path.join(name));
        }
        Ok(Arc::new(made?))
    }

    fn open(&self, name: &str) -> io::Result<Arc<dyn DiskFile>> {
        let file = self.open_file(name, false)?;
        let len = file.metadata()?.len();
        Ok(Arc::new(FsFile::map(file, len, true)?))
    }

    fn open_read(&self, name: &str) -> io::Result<Arc<dyn DiskFile>> {
        let file = self.open_with(name, false, false)?;
        // A shared `flock`, held as long as the handle: the writer's claim
        // ([`DiskFile::try_claim`], an exclusive one) fails while it is held, and it cannot
        // be taken while the writer holds the claim (the file is being recycled: gone, for a
        // reader). On a file system without `flock` the writer's claim fails too: nothing is
        // recycled there, and the reader goes on without the lock.
        if let Ok(false) = flock(&file, libc::LOCK_SH) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        let len = file.metadata()?.len();
        Ok(Arc::new(FsFile::map(file, len, false)?))
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.path)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        std::fs::remove_file(self.path.join(name))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        let c = |name: &str| {
            std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
        };
        let (from_c, to_c) = (c(from)?, c(to)?);
        let dir = self.dir.as_raw_fd();
        // SAFETY: both names are NUL-terminated strings that outlive the call; `dir` is this
        // handle's open directory.
        let r = unsafe { libc::renameat2(dir, from_c.as_ptr(), dir, to_c.as_ptr(), libc::RENAME_NOREPLACE) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(e);
        }
        // A file system without RENAME_NOREPLACE: the writer's lock keeps other writers out,
        // so a check before a plain rename is enough.
        match std::fs::symlink_metadata(self.path.join(to)) {
            Ok(_) => Err(io::Error::from(io::ErrorKind::AlreadyExists)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::rename(self.path.join(from), self.path.join(to))
            }
            Err(e) => Err(e),
        }
    }

    fn sync_dir(&self) -> io::Result<()> {
        self.dir.sync_all()
    }

    fn try_lock_writer(&self) -> io::Result<Option<DiskLock>> {
        let file = match self.open_file(LOCK_FILE, true) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => self.open_file(LOCK_FILE, false)?,
            other => other?,
        };
        if crate::liveness::try_lock_byte(&file, 0, true)? {
            Ok(Some(DiskLock::new(Box::new(file))))
        } else {
            Ok(None)
        }
    }
}

/// Allocates every byte of `file` (`len` bytes): `ENOSPC` now rather than a `SIGBUS` later.
fn allocate(file: &File, len: u64) -> io::Result<()> {
    let size = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: a plain syscall on a file descriptor we own; no memory is passed.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, size) } {
        0 => Ok(()),
        // A file system without fallocate (the journal's README section says what is lost).
        libc::EOPNOTSUPP | libc::EINVAL => file.set_len(len),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// `flock(file, operation | LOCK_NB)`: `false` if a conflicting lock is held.
fn flock(file: &File, operation: libc::c_int) -> io::Result<bool> {
    // SAFETY: a plain syscall on a file descriptor the caller owns; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), operation | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(false),
        _ => Err(e),
    }
}

/// A mapped file of an [`FsDisk`].
struct FsFile {
    file: File,
    map: memmap2::MmapRaw,
    len: u64,
    /// Mapped writable (else `write_at` is refused: the mapping is read-only).
    writable: bool,
}

impl fmt::Debug for FsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsFile")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl FsFile {
    fn map(file: File, len: u64, writable: bool) -> io::Result<Self> {
        let map_len = usize::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
        if map_len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "an empty file"));
        }
        let mut options = memmap2::MmapOptions::new();
        options.len(map_len);
        let map = if writable {
            options.map_raw(&file)?
        } else {
            options.map_raw_read_only(&file)?
        };
        Ok(FsFile {
            file,
            map,
            len,
            writable,
        })
    }
}

/// Checks that `offset..offset + n` lies in a file of `len` bytes.
fn check_range(offset: u64, n: usize, len: u64) -> io::Result<usize> {
    match offset.checked_add(n as u64) {
        Some(end) if end <= len => Ok(offset as usize),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{n} bytes at {offset} pass the end of a {len}-byte file"),
        )),
    }
}

impl FsFile {
    /// [`check_range`] for a write: `PermissionDenied` on a read-only handle.
    fn writable_range(&self, offset: u64, n: usize) -> io::Result<usize> {
        if !self.writable {
            return Err(io::Error::from(io::ErrorKind::PermissionDenied));
        }
        check_range(offset, n, self.len)
    }
}

impl DiskFile for FsFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let at = self.writable_range(offset, data.len())?;
        // SAFETY: `at..at + data.len()` is inside the mapping (checked), which is writable;
        // the journal writes a range before publishing it and readers read only published
        // ranges, so no reference to these bytes exists; the source is a separate Rust slice.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.map.as_mut_ptr().add(at), data.len()) };
        Ok(())
    }

    fn write_through(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.writable_range(offset, data.len())?;
        self.file.write_all_at(data, offset)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let at = check_range(offset, buf.len(), self.len)?;
        // SAFETY: inside the mapping (checked); the destination is a separate Rust slice.
        unsafe { std::ptr::copy_nonoverlapping(self.map.as_ptr().add(at), buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn as_ptr(&self) -> *const u8 {
        self.map.as_ptr()
    }

    fn prefetch(&self, offset: u64, len: u64) {
        // Whole pages of the mapping: populating them now costs one call instead of a fault
        // per page. Older kernels (before 5.14) refuse it, which changes nothing.
        let page = 4096u64;
        let start = offset / page * page;
        let end = offset.saturating_add(len).min(self.len);
        if start >= end {
            return;
        }
        // SAFETY: `start..end` lies inside this handle's live mapping (bounded by `len`
        // above, `start` page-aligned as madvise requires); populating faults pages in
        // without changing their contents.
        unsafe {
            libc::madvise(
                self.map.as_ptr().add(start as usize) as *mut libc::c_void,
                (end - start) as usize,
                libc::MADV_POPULATE_READ,
            );
        }
    }

    fn try_claim(&self) -> io::Result<bool> {
        // An exclusive `flock` on this handle's own open file: it conflicts with every
        // reader's shared one (`FsDisk::open_read`), in this process or another.
        flock(&self.file, libc::LOCK_EX)
    }

    fn release(&self) {
        // Unlocking a lock held cannot fail but for a bad descriptor, which this is not.
        let _ = flock(&self.file, libc::LOCK_UN);
    }
}

#[cfg(feature = "sim-disk")]
pub use sim::{CrashOptions, SimDisk};

/// The simulated disk: the page cache and the durable image of every file, and what a crash
/// can leave of the difference.
#[cfg(feature = "sim-disk")]
mod sim {
    use super::{check_name, check_range, Disk, DiskFile, DiskLock};
    use std::cell::UnsafeCell;
    use std::collections::BTreeMap;
    use std::fmt;
    use std::io;
    use std::sync::{Arc, Mutex, MutexGuard};

    /// Write-back granularity: a crash keeps each dirty page as of some moment.
    const PAGE: usize = 4096;
    /// Tear granularity: a page written back may be part old, part new, by sectors.
    const SECTOR: usize = 512;

    /// A disk in memory that keeps, for every file, what the page cache holds and what is
    /// durable, and for the directory which names are durable; [`SimDisk::crash`] makes the
    /// disk a power cut could leave. Faults: a capacity (`ENOSPC` at create), failing syncs
    /// (`EIO`, with the failed writes dropped and their pages marked clean, as Linux does).
    #[derive(Clone)]
    pub struct SimDisk {
        inner: Arc<Mutex<Dir>>,
        faults: Arc<Faults>,
    }

    impl fmt::Debug for SimDisk {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("SimDisk").finish_non_exhaustive()
        }
    }

    /// The faults a test set (a lock, not atomics: nothing here is on a hot path).
    #[derive(Debug, Default)]
    struct Faults(Mutex<FaultState>);

    #[derive(Debug, Default)]
    struct FaultState {
        /// Syncs (of files and of the directory) that succeed before every later one fails;
        /// `None`: none fails.
        syncs_left: Option<u64>,
        /// Syncs that succeed before the power is cut: that sync and every later one fail,
        /// their writes left pending (for [`SimDisk::crash`] to keep any part of), not dropped.
        power_left: Option<u64>,
        /// How long every sync sleeps first (for latency experiments).
        sync_delay: std::time::Duration,
        /// `write_through` calls that succeed before every later one fails, writing nothing;
        /// `None`: none fails.
        writes_left: Option<u64>,
    }

    /// What a sync does, by the faults set.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum SyncFault {
        None,
        /// `EIO`, the writes dropped.
        Fail,
        /// The power is off: `EIO`, the writes left as they are.
        Cut,
    }

    #[derive(Default)]
    struct Dir {
        names: BTreeMap<String, Arc<SimFile>>,
        durable_names: BTreeMap<String, Arc<SimFile>>,
        capacity: Option<u64>,
        writer_locked: Arc<Mutex<bool>>,
    }

    /// What a crash keeps; see [`SimDisk::crash`].
    #[derive(Clone, Copy, Debug)]
    pub struct CrashOptions {
        /// Whether a page written back may be torn by sectors.
        pub tear: bool,
        /// Whether creates and removes not yet synced in the directory may be lost.
        pub lose_names: bool,
    }

    impl Default for CrashOptions {
        fn default() -> Self {
            CrashOptions {
                tear: true,
                lose_names: true,
            }
        }
    }

    struct SimFile {
        /// The page cache: `len` bytes, never reallocated (`as_ptr` hands out its address).
        cache: Box<[UnsafeCell<u8>]>,
        state: Mutex<FileState>,
    }

    // SAFETY: the cache is written only through `write_at` (under `state`'s lock) and read
    // through `read_at` (the same lock) or through `as_ptr` by callers that form slices only
    // of ranges no write touches (the `DiskFile::as_ptr` contract).
    unsafe impl Sync for SimFile {}

    struct FileState {
        durable: Vec<u8>,
        /// Writes since the last sync, in order.
        pending: Vec<(u64, Vec<u8>)>,
        /// Handles from `open_read` alive, and whether a handle holds the claim
        /// ([`DiskFile::try_claim`]): `FsDisk`'s shared and exclusive `flock`s.
        readers: usize,
        claimed: bool,
    }

    impl fmt::Debug for SimFile {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("SimFile")
                .field("len", &self.cache.len())
                .finish_non_exhaustive()
        }
    }

    impl SimFile {
        fn new(bytes: Vec<u8>) -> Self {
            SimFile {
                cache: bytes.iter().map(|&b| UnsafeCell::new(b)).collect(),
                state: Mutex::new(FileState {
                    durable: bytes,
                    pending: Vec::new(),
                    readers: 0,
                    claimed: false,
                }),
            }
        }

        fn state(&self) -> MutexGuard<'_, FileState> {
            self.state.lock().unwrap_or_else(|e| e.into_inner())
        }

        fn cache_ptr(&self) -> *mut u8 {
            UnsafeCell::raw_get(self.cache.as_ptr())
        }
    }

    /// A [`SimFile`] with the disk's faults, as handed out.
    #[derive(Debug)]
    struct Handle {
        file: Arc<SimFile>,
        faults: Arc<Faults>,
        /// From `open_read`: counted in the file's readers while it lives.
        reader: bool,
    }

    impl Drop for Handle {
        fn drop(&mut self) {
            if self.reader {
                self.file.state().readers -= 1;
            }
        }
    }

    impl Faults {
        /// What this sync does (counting it), after the configured delay.
        fn sync_fault(&self) -> SyncFault {
            let delay = self.state().sync_delay;
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            let mut state = self.state();
            // Counts a sync down; true once none is left.
            let spent = |left: &mut Option<u64>| match *left {
                None => false,
                Some(0) => true,
                Some(n) => {
                    *left = Some(n - 1);
                    false
                }
            };
            if spent(&mut state.power_left) {
                SyncFault::Cut
            } else if spent(&mut state.syncs_left) {
                SyncFault::Fail
            } else {
                SyncFault::None
            }
        }

        fn state(&self) -> MutexGuard<'_, FaultState> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    impl DiskFile for Handle {
        fn len(&self) -> u64 {
            self.file.cache.len() as u64
        }

        fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
            let at = check_range(offset, data.len(), self.len())?;
            let mut state = self.file.state();
            // SAFETY: inside the cache (checked), under the lock every write takes; readers
            // of `as_ptr` do not read ranges being written (the trait's contract).
            unsafe {
                std::ptr::copy_nonoverlapping(data.as_ptr(), self.file.cache_ptr().add(at), data.len())
            };
            state.pending.push((offset, data.to_vec()));
            Ok(())
        }

        fn write_through(&self, offset: u64, data: &[u8]) -> io::Result<()> {
            {
                let mut faults = self.faults.state();
                match faults.writes_left {
                    Some(0) => return Err(io::Error::from_raw_os_error(libc::EIO)),
                    Some(n) => faults.writes_left = Some(n - 1),
                    None => {}
                }
            }
            self.write_at(offset, data)
        }

        fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            let at = check_range(offset, buf.len(), self.len())?;
            let _state = self.file.state();
            // SAFETY: inside the cache (checked), under the lock writes take.
            unsafe {
                std::ptr::copy_nonoverlapping(self.file.cache_ptr().add(at), buf.as_mut_ptr(), buf.len())
            };
            Ok(())
        }

        fn sync_data(&self) -> io::Result<()> {
            let fault = self.faults.sync_fault();
            if fault == SyncFault::Cut {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            let mut state = self.file.state();
            let pending = std::mem::take(&mut state.pending);
            if fault == SyncFault::Fail {
                // Linux's behaviour the journal must survive: the writes are dropped and their
                // pages marked clean, so the next sync reports success without them.
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            for (offset, data) in pending {
                let at = offset as usize;
                state.durable[at..at + data.len()].copy_from_slice(&data);
            }
            Ok(())
        }

        fn as_ptr(&self) -> *const u8 {
            self.file.cache_ptr()
        }

        fn try_claim(&self) -> io::Result<bool> {
            let mut state = self.file.state();
            if state.readers > 0 || state.claimed {
                return Ok(false);
            }
            state.claimed = true;
            Ok(true)
        }

        fn release(&self) {
            self.file.state().claimed = false;
        }
    }

    impl Default for SimDisk {
        fn default() -> Self {
            Self::new()
        }
    }

    impl SimDisk {
        /// An empty disk of unlimited capacity with no faults.
        pub fn new() -> Self {
            SimDisk {
                inner: Arc::new(Mutex::new(Dir::default())),
                faults: Arc::new(Faults::default()),
            }
        }

        fn dir(&self) -> MutexGuard<'_, Dir> {
            self.inner.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// Limits the bytes all files may take: a create past it fails with `ENOSPC`.
        pub fn set_capacity(&self, bytes: Option<u64>) {
            self.dir().capacity = bytes;
        }

        /// After `n` more successful syncs, every sync fails with `EIO` (`None`: none fails).
        pub fn fail_syncs_after(&self, n: Option<u64>) {
            self.faults.state().syncs_left = n;
        }

        /// After `n` more successful syncs, the power is cut: that sync and every later one
        /// fail with `EIO`, their writes left pending, so that [`SimDisk::crash`] then makes
        /// the disk a power cut *during* that sync could leave (`None`: the power stays on).
        pub fn cut_power_after_syncs(&self, n: Option<u64>) {
            self.faults.state().power_left = n;
        }

        /// After `n` more successful [`DiskFile::write_through`] calls, every one fails with
        /// `EIO` and writes nothing (`None`: none fails).
        pub fn fail_writes_through_after(&self, n: Option<u64>) {
            self.faults.state().writes_left = n;
        }

        /// Makes every sync take `delay` first.
        pub fn set_sync_delay(&self, delay: std::time::Duration) {
            self.faults.state().sync_delay = delay;
        }

        /// The file `name`'s bytes as the page cache holds them.
        pub fn contents(&self, name: &str) -> Option<Vec<u8>> {
            let file = self.dir().names.get(name)?.clone();
            let _state = file.state();
            // SAFETY: the whole cache, under the lock writes take.
            Some(unsafe { std::slice::from_raw_parts(file.cache_ptr(), file.cache.len()) }.to_vec())
        }

        /// Overwrites the page cache's and the durable image's bytes of `name` at `offset`
        /// (bit rot, or a hostile writer): no write is recorded.
        pub fn corrupt(&self, name: &str, offset: u64, data: &[u8]) {
            let file = self
                .dir()
                .names
                .get(name)
                .cloned()
                .expect("corrupt: no such file");
            let mut state = file.state();
            let at = offset as usize;
            state.durable[at..at + data.len()].copy_from_slice(data);
            // SAFETY: inside the cache (the durable image has its length), under the lock.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), file.cache_ptr().add(at), data.len()) };
        }

        /// The disk a power cut now could leave, chosen by `seed`: every durable byte, and of
        /// each page written since its file's last sync, its durable content or its content
        /// after some of those writes in order (each page chosen apart, so pages land in any
        /// order), torn by sectors if `options.tear`; a name created or removed since the
        /// last directory sync may be there or not if `options.lose_names`. The new disk has
        /// no faults, no capacity limit and no lock held.
        pub fn crash(&self, seed: u64, options: CrashOptions) -> SimDisk {
            let mut rng = SplitMix(seed);
            let dir = self.dir();
            let mut names = BTreeMap::new();
            let all: std::collections::BTreeSet<&String> =
                dir.names.keys().chain(dir.durable_names.keys()).collect();
            for name in all {
                let live = dir.names.get(name);
                let durable = dir.durable_names.get(name);
                let file = match (live, durable) {
                    (Some(a), Some(b)) if Arc::ptr_eq(a, b) => a,
                    (Some(a), _) if !options.lose_names || rng.below(2) == 0 => a,
                    (Some(_), None) => continue,
                    (_, Some(b)) if !options.lose_names || rng.below(2) == 0 => b,
                    _ => continue,
                };
                names.insert(
                    name.clone(),
                    Arc::new(SimFile::new(crash_image(file, &mut rng, options))),
                );
            }
            SimDisk {
                inner: Arc::new(Mutex::new(Dir {
                    durable_names: names.clone(),
                    names,
                    ..Dir::default()
                })),
                faults: Arc::new(Faults::default()),
            }
        }

        fn lookup(&self, name: &str) -> io::Result<Arc<SimFile>> {
            check_name(name)?;
            self.dir()
                .names
                .get(name)
                .cloned()
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        }

        fn handle(&self, file: Arc<SimFile>) -> Arc<dyn DiskFile> {
            Arc::new(Handle {
                file,
                faults: self.faults.clone(),
                reader: false,
            })
        }
    }

    /// One file's bytes after a crash (see [`SimDisk::crash`]).
    fn crash_image(file: &SimFile, rng: &mut SplitMix, options: CrashOptions) -> Vec<u8> {
        let state = file.state();
        let mut image = state.durable.clone();
        // Each dirty page's writes, in order.
        let mut pages: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, (offset, data)) in state.pending.iter().enumerate() {
            if data.is_empty() {
                continue;
            }
            let first = *offset as usize / PAGE;
            let last = (*offset as usize + data.len() - 1) / PAGE;
            for page in first..=last {
                pages.entry(page).or_default().push(i);
            }
        }
        for (page, writes) in pages {
            let kept = rng.below(writes.len() as u64 + 1) as usize;
            if kept == 0 {
                continue;
            }
            let start = page * PAGE;
            let end = (start + PAGE).min(image.len());
            let mut content = image[start..end].to_vec();
            for &i in &writes[..kept] {
                let (offset, data) = &state.pending[i];
                let (w_start, w_end) = (*offset as usize, *offset as usize + data.len());
                let (from, to) = (w_start.max(start), w_end.min(end));
                content[from - start..to - start].copy_from_slice(&data[from - w_start..to - w_start]);
            }
            let torn = options.tear && rng.below(4) == 0;
            for (s, chunk) in content.chunks(SECTOR).enumerate() {
                if torn && rng.below(2) == 0 {
                    continue;
                }
                let at = start + s * SECTOR;
                image[at..at + chunk.len()].copy_from_slice(chunk);
            }
        }
        image
    }

    impl Disk for SimDisk {
        fn create(&self, name: &str, len: u64) -> io::Result<Arc<dyn DiskFile>> {
            check_name(name)?;
            let mut dir = self.dir();
            if dir.names.contains_key(name) {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            let used: u64 = dir.names.values().map(|f| f.cache.len() as u64).sum();
            if dir.capacity.is_some_and(|c| used + len > c) {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let file = Arc::new(SimFile::new(vec![0; len as usize]));
            // A new file's allocation is durable with its name (fallocate's metadata is
            // flushed by the first fdatasync; its bytes read as zero until written).
            dir.names.insert(name.to_owned(), file.clone());
            Ok(self.handle(file))
        }

        fn open(&self, name: &str) -> io::Result<Arc<dyn DiskFile>> {
            let file = self.lookup(name)?;
            Ok(self.handle(file))
        }

        fn open_read(&self, name: &str) -> io::Result<Arc<dyn DiskFile>> {
            let file = self.lookup(name)?;
            {
                let mut state = file.state();
                if state.claimed {
                    // Being recycled: gone, for a reader (as `FsDisk::open_read`).
                    return Err(io::Error::from(io::ErrorKind::NotFound));
                }
                state.readers += 1;
            }
            Ok(Arc::new(Handle {
                file,
                faults: self.faults.clone(),
                reader: true,
            }))
        }

        fn list(&self) -> io::Result<Vec<String>> {
            Ok(self.dir().names.keys().cloned().collect())
        }

        fn remove(&self, name: &str) -> io::Result<()> {
            check_name(name)?;
            match self.dir().names.remove(name) {
                Some(_) => Ok(()),
                None => Err(io::Error::from(io::ErrorKind::NotFound)),
            }
        }

        fn rename(&self, from: &str, to: &str) -> io::Result<()> {
            check_name(from)?;
            check_name(to)?;
            let mut dir = self.dir();
            if dir.names.contains_key(to) {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            let file = dir
                .names
                .remove(from)
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            dir.names.insert(to.to_owned(), file);
            Ok(())
        }

        fn single_threaded(&self) -> bool {
            true
        }

        fn sync_dir(&self) -> io::Result<()> {
            if self.faults.sync_fault() != SyncFault::None {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            let mut dir = self.dir();
            dir.durable_names = dir.names.clone();
            Ok(())
        }

        fn try_lock_writer(&self) -> io::Result<Option<DiskLock>> {
            let flag = self.dir().writer_locked.clone();
            let mut locked = flag.lock().unwrap_or_else(|e| e.into_inner());
            if *locked {
                return Ok(None);
            }
            *locked = true;
            drop(locked);
            Ok(Some(DiskLock::new(Box::new(Unlock(flag)))))
        }
    }

    struct Unlock(Arc<Mutex<bool>>);

    impl Drop for Unlock {
        fn drop(&mut self) {
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = false;
        }
    }

    /// SplitMix64: the crash images' choices, reproducible from a seed.
    struct SplitMix(u64);

    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }
}
