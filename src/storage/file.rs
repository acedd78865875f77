//! The file backend: a ring in a file mapped `MAP_SHARED`, so every process that maps the file
//! sees the same bytes. Topics in /dev/shm (see `dir.rs`) and files on disk both use it.
//!
//! # Creating without ever showing a half-made ring
//!
//! A creator never initialises the file under its final name. It creates a hidden temporary
//! file next to it (`.NAME.PID.NANOS.init`, `O_EXCL`, the requested mode), preallocates every
//! byte (`posix_fallocate`, so a full disk or a full tmpfs is an error here and never a
//! `SIGBUS` later), maps it, lays the ring out (init word last), and only then hard-links it
//! to the final name. `link` fails if the name exists, so of several racing creators exactly
//! one wins and the others open the winner's file; an opener can only ever find a complete
//! ring under the name. A creator killed half-way leaves its temporary file, which holds an
//! OFD lock while it lives, so `ringmq prune` can tell an abandoned one from a live one.
//!
//! # Hazards that come from the OS
//!
//! The mapping is shared with every process that can open the file. Another process can write
//! anything into it (the ring treats its contents as untrusted input), and a process with
//! write access can truncate the file, after which touching the lost pages raises `SIGBUS` in
//! every process that maps it. File permissions are the only defence against the latter:
//! rings are created `0600` unless asked otherwise. Who may have created or replaced the file
//! is checked before it is created or opened (`trust.rs`).

use super::trust::Trust;
use super::Storage;
use crate::atomic::Word;
use crate::error::OpenError;
use crate::liveness;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::time::{SystemTime, UNIX_EPOCH};

/// A mapped ring file.
#[derive(Debug)]
pub(crate) struct FileStorage {
    map: memmap2::MmapRaw,
    /// The mapping's first byte (checked non-null when mapped).
    base: NonNull<u8>,
    file: File,
}

// SAFETY: the mapping is plain shared memory owned by this value; concurrent access is the
// ring protocol's business (all shared words are atomics), and nothing ties it to a thread.
unsafe impl Send for FileStorage {}
// SAFETY: see `Send`.
unsafe impl Sync for FileStorage {}

// SAFETY: `MmapRaw` keeps the mapping of `len` bytes alive and in place until drop; mappings
// are page aligned (so LINE aligned); a new file is zero (fallocate on a fresh file) and an
// opened one was laid out by this crate or is validated before use, as `Storage` requires.
unsafe impl Storage for FileStorage {
    fn base(&self) -> NonNull<u8> {
        self.base
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

impl FileStorage {
    /// The open file behind the mapping (its open file description holds this process's
    /// liveness locks).
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Maps `len` bytes of `file`.
    fn map(file: File, len: usize, path: &Path) -> Result<Self, OpenError> {
        let map = memmap2::MmapOptions::new()
            .len(len)
            .map_raw(&file)
            .map_err(|e| io_error(path, "mmap", &e))?;
        let base = NonNull::new(map.as_mut_ptr()).ok_or_else(|| OpenError::Io {
            path: path.display().to_string(),
            op: "mmap",
            message: "the mapping is at address 0".into(),
        })?;
        Ok(FileStorage { map, base, file })
    }

    /// Reads the 64-bit header word at `offset` (Acquire), or `None` past the end.
    pub(crate) fn header_word(&self, offset: usize) -> Option<u64> {
        if offset % 8 != 0 || offset + 8 > self.map.len() {
            return None;
        }
        // SAFETY: in bounds and 8-aligned (checked above; the mapping is page aligned); the
        // mapping lives as long as `self`; `Word` is `repr(transparent)` over `AtomicU64`, and
        // the crate only accesses these bytes atomically.
        let word = unsafe { &*(self.map.as_mut_ptr().add(offset) as *const Word) };
        // Acquire: pairs with the creator's Release of the init word (callers read that one
        // first and the rest after).
        Some(word.load_acquire())
    }
}

/// The name of a creator's temporary file; removed on drop unless published.
#[derive(Debug)]
pub(crate) struct TempName {
    tmp: PathBuf,
}

impl Drop for TempName {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Creates the temporary file for a ring that will be called `path`: `len` bytes, all
/// allocated, mode `mode`, with the use lock held exclusively (initialising). The directories
/// that hold `path` must pass `trust`'s checks.
pub(crate) fn create_temp(
    path: &Path,
    len: usize,
    mode: u32,
    trust: &Trust,
) -> Result<(FileStorage, TempName), OpenError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| OpenError::InvalidPath {
        path: path.display().to_string(),
    })?;
    make_user_shm_dir(path)?;
    trust.check_dirs(path)?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tmp = TempName {
        tmp: dir.join(format!(
            ".{}.{}.{}{}",
            name.to_string_lossy(),
            std::process::id(),
            nanos,
            TEMP_SUFFIX
        )),
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp.tmp)
        .map_err(|e| io_error(path, "create", &e))?;
    // The umask may have cleared bits of `mode`; the caller asked for exactly these.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| io_error(path, "chmod", &e))?;
    liveness::lock_byte(&file, liveness::USE_LOCK, true).map_err(|e| io_error(path, "lock", &e))?;
    allocate(&file, len, path)?;
    Ok((FileStorage::map(file, len, path)?, tmp))
}

/// The suffix of a creator's temporary file.
pub(crate) const TEMP_SUFFIX: &str = ".init";

impl TempName {
    /// Gives the initialised ring in `storage` its final name, and turns the creator's
    /// exclusive use lock into a shared one. Fails with [`OpenError::AlreadyExists`] if
    /// another ring got the name first; the temporary name is removed either way.
    pub(crate) fn publish(self, file: &File, path: &Path) -> Result<(), OpenError> {
        liveness::lock_byte(file, liveness::USE_LOCK, false).map_err(|e| io_error(path, "lock", &e))?;
        std::fs::hard_link(&self.tmp, path).map_err(|e| io_error(path, "link", &e))
    }
}

/// Makes every byte of the file exist on the device: a full disk is `NoSpace` now, not a
/// `SIGBUS` when a slot is first written.
fn allocate(file: &File, len: usize, path: &Path) -> Result<(), OpenError> {
    use std::os::fd::AsRawFd;
    let size = libc::off_t::try_from(len).map_err(|_| OpenError::NoSpace {
        path: path.display().to_string(),
        len,
    })?;
    // SAFETY: a plain syscall on a file descriptor we own; no memory is passed.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, size) };
    match rc {
        0 => Ok(()),
        libc::ENOSPC | libc::EFBIG => Err(OpenError::NoSpace {
            path: path.display().to_string(),
            len,
        }),
        // A file system without fallocate: size the file and hope (documented).
        libc::EOPNOTSUPP | libc::EINVAL => file
            .set_len(len as u64)
            .map_err(|e| io_error(path, "set_len", &e)),
        errno => Err(io_error(path, "fallocate", &io::Error::from_raw_os_error(errno))),
    }
}

/// Opens and maps an existing ring file, all of it, if it and the directories that hold it
/// pass `trust`'s checks (a symbolic link is never followed).
pub(crate) fn open(path: &Path, trust: &Trust) -> Result<FileStorage, OpenError> {
    trust.check_dirs(path)?;
    let file = open_no_follow(path, || OpenError::Untrusted {
        path: path.display().to_string(),
        reason: "it is a symbolic link, which is never followed".into(),
    })?;
    let meta = file.metadata().map_err(|e| io_error(path, "stat", &e))?;
    trust.check_file(path, &meta)?;
    // A shared use lock for as long as this process has the ring open; `prune` removes only
    // rings whose use lock it can take exclusively. Failing here means a prune is removing
    // this very file.
    if liveness::lock_byte(&file, liveness::USE_LOCK, false).is_err() {
        return Err(OpenError::NotFound {
            path: path.display().to_string(),
        });
    }
    let len = meta.len();
    let len = usize::try_from(len).map_err(|_| OpenError::Corrupt {
        path: path.display().to_string(),
        reason: format!("a file of {len} bytes cannot be mapped"),
    })?;
    if len < crate::layout::LINE {
        return Err(OpenError::Truncated {
            path: path.display().to_string(),
            len: len as u64,
            expected: crate::layout::LINE as u64,
        });
    }
    FileStorage::map(file, len, path)
}

/// Opens `path` for reading and writing without following a symbolic link: a link is the
/// error `link` makes, any other failure the I/O error's.
fn open_no_follow(path: &Path, link: impl FnOnce() -> OpenError) -> Result<File, OpenError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => link(),
            _ => io_error(path, "open", &e),
        })
}

/// Converts an I/O error on `path` into the crate's error.
pub(crate) fn io_error(path: &Path, op: &'static str, e: &io::Error) -> OpenError {
    let path = path.display().to_string();
    match e.kind() {
        io::ErrorKind::PermissionDenied => OpenError::PermissionDenied { path },
        io::ErrorKind::NotFound => OpenError::NotFound { path },
        io::ErrorKind::AlreadyExists => OpenError::AlreadyExists { path },
        _ if e.raw_os_error() == Some(libc::ENOSPC) => OpenError::NoSpace { path, len: 0 },
        _ => OpenError::Io {
            path,
            op,
            message: e.to_string(),
        },
    }
}

/// This user's directory of topics in /dev/shm: `/dev/shm/ringmq-<uid>`.
pub(crate) fn user_shm_dir() -> PathBuf {
    let uid = super::trust::effective_uid();
    Path::new("/dev/shm").join(format!("ringmq-{uid}"))
}

/// Makes [`user_shm_dir`], `0700`, if `path` is a ring in it and it is missing: it is this
/// user's private directory, which no other user may have made (the trust checks that
/// follow refuse one that anybody else owns).
pub(crate) fn make_user_shm_dir(path: &Path) -> Result<(), OpenError> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = user_shm_dir();
    if path.parent() != Some(dir.as_path()) {
        return Ok(());
    }
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_error(&dir, "mkdir", &e)),
    }
}

/// What a file in a ring directory is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A ring.
    Ring,
    /// A creator's temporary file (a ring being initialised, or abandoned half-way).
    Unfinished,
    /// Not a ring file.
    Foreign,
}

/// Opens `path` (never following a symbolic link) and tells what it is: a ring by its magic,
/// a creator's temporary file by its name, or neither.
pub(crate) fn classify(path: &Path) -> Result<(FileKind, File), OpenError> {
    use std::io::Read;
    // A symbolic link is not a ring, whatever it points to.
    let file = open_no_follow(path, || OpenError::NotARing {
        path: path.display().to_string(),
    })?;
    let meta = file.metadata().map_err(|e| io_error(path, "stat", &e))?;
    if !meta.file_type().is_file() {
        return Ok((FileKind::Foreign, file));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.starts_with('.') && name.ends_with(TEMP_SUFFIX) {
        return Ok((FileKind::Unfinished, file));
    }
    let mut magic = [0u8; 8];
    let is_ring =
        (&file).read_exact(&mut magic).is_ok() && u64::from_le_bytes(magic) == crate::layout::header::MAGIC;
    let kind = if is_ring {
        FileKind::Ring
    } else {
        FileKind::Foreign
    };
    Ok((kind, file))
}

/// Removes the ring (or a creator's abandoned temporary file) at `path`, refusing anything
/// else: a typo must not destroy data.
pub(crate) fn remove_ring(path: &Path) -> Result<(), OpenError> {
    let (kind, _file) = classify(path)?;
    if kind == FileKind::Foreign {
        return Err(OpenError::NotARing {
            path: path.display().to_string(),
        });
    }
    std::fs::remove_file(path).map_err(|e| io_error(path, "unlink", &e))
}
