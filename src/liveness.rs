//! Who is alive: tokens the kernel releases when a process dies.
//!
//! Every attached handle of a file-backed ring holds an exclusive OFD (open file description)
//! byte-range lock on one byte of the ring file: table entry `i` locks byte
//! `ENTRY_LOCK_BASE + i`, a single-producer ring's producer locks [`PRODUCER_LOCK`], a
//! creator locks [`USE_LOCK`] of its temporary file while it initialises it, and every process
//! with the ring open shares that lock. The kernel drops an
//! OFD lock when the last descriptor of its open file description closes, which a dying
//! process does whatever killed it, so "the byte is not locked" is a confirmed death, not a
//! guess from a timeout. PIDs are never used: they are reused, and every process of a
//! container can be PID 1.
//!
//! The locks live in the file's byte-range lock space, not in its bytes: they cover offsets of
//! the header but change nothing there.
//!
//! Locks of one open file description never conflict with each other, so inside one process
//! (which opens the file once) a set of held bytes says which handle owns which byte, and the
//! kernel is asked only about other processes. To see the locks this process holds, as another
//! process would, checks go through a second open file description of the same file.
//!
//! Claiming an entry is: lock its byte, then move its state word from free to claiming. The
//! byte is held from before the claim until after the entry is free again, so an entry that is
//! not free and whose byte nobody holds belongs to a dead process. Whoever wants to clean up
//! after it locks the byte first, which makes it the only one doing so, and releases the byte
//! once the entry is free.

// Under loom only heap rings exist; the file half of this module is not used there.
#![cfg_attr(loom, allow(dead_code))]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Mutex;

/// The use lock: held exclusively by a creator while it initialises the ring (in its
/// temporary file), then shared by every process that has the ring open. A ring whose use
/// lock can be taken exclusively is used by nobody (`ringmq prune`).
pub(crate) const USE_LOCK: u64 = 0;
/// A single-producer ring's producer holds this byte.
pub(crate) const PRODUCER_LOCK: u64 = 1;
/// Table entry `i` is held through byte `ENTRY_LOCK_BASE + i`.
pub(crate) const ENTRY_LOCK_BASE: u64 = 64;
/// Multi-producer `i` is held through byte `PRODUCER_LOCK_BASE + i`.
pub(crate) const PRODUCER_LOCK_BASE: u64 = 128;
/// Bytes this module hands out are below this.
const LOCK_BYTES: u64 = 256;

/// The lock byte of table entry `index`.
#[inline]
pub(crate) const fn entry_lock(index: usize) -> u64 {
    ENTRY_LOCK_BASE + index as u64
}

/// The lock byte of multi-producer entry `index`.
#[inline]
pub(crate) const fn producer_lock(index: usize) -> u64 {
    PRODUCER_LOCK_BASE + index as u64
}

/// A set of lock bytes.
#[derive(Debug, Default)]
struct ByteSet([u64; (LOCK_BYTES / 64) as usize]);

impl ByteSet {
    fn contains(&self, byte: u64) -> bool {
        byte < LOCK_BYTES && self.0[(byte / 64) as usize] & (1 << (byte % 64)) != 0
    }

    fn set(&mut self, byte: u64, on: bool) {
        if byte < LOCK_BYTES {
            let bit = 1 << (byte % 64);
            let word = &mut self.0[(byte / 64) as usize];
            if on {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
    }
}

fn flock(kind: libc::c_short, byte: u64) -> libc::flock {
    // SAFETY: `flock` is a plain C struct of integers; all zeroes is a valid value (and
    // `l_pid` must be zero for OFD locks).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = byte as libc::off_t;
    lock.l_len = 1;
    lock
}

fn fcntl(file: &File, cmd: libc::c_int, lock: &mut libc::flock) -> io::Result<()> {
    // SAFETY: `lock` is a valid, exclusively borrowed `flock` for the duration of the call,
    // and `cmd` is one of the OFD lock commands, which read and write exactly that struct.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), cmd, lock as *mut libc::flock) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Takes the lock of `byte` (exclusive or shared) through `file`'s open file description, or
/// converts the one it holds; `Ok(false)` if another open file description holds a
/// conflicting lock.
pub(crate) fn try_lock_byte(file: &File, byte: u64, exclusive: bool) -> io::Result<bool> {
    let kind = if exclusive { libc::F_WRLCK } else { libc::F_RDLCK };
    let mut lock = flock(kind as libc::c_short, byte);
    match fcntl(file, libc::F_OFD_SETLK, &mut lock) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Takes the lock of `byte`, failing with `WouldBlock` if another holder has a conflicting one.
pub(crate) fn lock_byte(file: &File, byte: u64, exclusive: bool) -> io::Result<()> {
    if try_lock_byte(file, byte, exclusive)? {
        Ok(())
    } else {
        Err(io::Error::from(io::ErrorKind::WouldBlock))
    }
}

/// Releases the lock of `byte` held through `file`'s open file description.
pub(crate) fn unlock_byte(file: &File, byte: u64) -> io::Result<()> {
    let mut lock = flock(libc::F_UNLCK as libc::c_short, byte);
    fcntl(file, libc::F_OFD_SETLK, &mut lock)
}

/// Whether an open file description other than `probe`'s holds a lock on `byte`.
pub(crate) fn is_locked(probe: &File, byte: u64) -> io::Result<bool> {
    let mut lock = flock(libc::F_WRLCK as libc::c_short, byte);
    fcntl(probe, libc::F_OFD_GETLK, &mut lock)?;
    Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
}

/// Opens a second, independent open file description of the file behind `file` (even if
/// its name has been unlinked or replaced since).
pub(crate) fn reopen(file: &File) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// This process's liveness tokens for one ring.
///
/// The held set makes a token exclusive among the handles of this process (for heap rings,
/// that is all there is); for a file-backed ring the OFD lock makes it exclusive among
/// processes and tells them when its holder died.
#[derive(Debug)]
pub(crate) struct Liveness {
    /// The bytes this process holds, since the kernel will not report them.
    held: Mutex<ByteSet>,
    file: Option<FileLocks>,
}

/// The ring file through two open file descriptions.
#[derive(Debug)]
struct FileLocks {
    /// The description whose locks are this process's tokens.
    owner: File,
    /// Another description of the same file, for `F_OFD_GETLK`.
    probe: File,
}

impl Liveness {
    /// Tokens for a heap ring: every handle lives in this process.
    pub(crate) fn process() -> Self {
        Liveness {
            held: Mutex::new(ByteSet::default()),
            file: None,
        }
    }

    /// Tokens held through `owner`'s open file description.
    pub(crate) fn file(owner: File) -> io::Result<Self> {
        let probe = reopen(&owner)?;
        Ok(Liveness {
            held: Mutex::new(ByteSet::default()),
            file: Some(FileLocks { owner, probe }),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, ByteSet> {
        // Nothing panics while holding it; if something did, the set is still consistent.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the token `byte` for a handle of this process; `false` if another handle (here or
    /// in another process) holds it. An I/O error also says `false`: nothing is claimed that
    /// cannot be shown to be held.
    pub(crate) fn acquire(&self, byte: u64) -> bool {
        let mut held = self.held();
        if held.contains(byte) {
            return false;
        }
        if let Some(locks) = &self.file {
            if !try_lock_byte(&locks.owner, byte, true).unwrap_or(false) {
                return false;
            }
        }
        held.set(byte, true);
        true
    }

    /// Gives the token `byte` back (a no-op if this process does not hold it).
    pub(crate) fn release(&self, byte: u64) {
        let mut held = self.held();
        if !held.contains(byte) {
            return;
        }
        if let Some(locks) = &self.file {
            // An unlock cannot fail for a lock this description holds; if it somehow did,
            // the token is released when the process exits.
            let _ = unlock_byte(&locks.owner, byte);
        }
        held.set(byte, false);
    }

    /// Whether some live handle (of any process) holds `byte`. Errs on the side of life: a
    /// failed check says alive, so nothing is ever cleaned up on a guess.
    pub(crate) fn is_held(&self, byte: u64) -> bool {
        if self.held().contains(byte) {
            return true;
        }
        match &self.file {
            Some(locks) => is_locked(&locks.probe, byte).unwrap_or(true),
            None => false,
        }
    }

    /// Whether the ring is shared with other processes (so handles can die separately).
    pub(crate) fn is_shared(&self) -> bool {
        self.file.is_some()
    }
}
