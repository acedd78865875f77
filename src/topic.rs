//! Topics: the ring files of a directory (by default [`crate::SHM_DIR`]), listed and pruned.
//!
//! Whether anybody uses a ring is read from its use lock (see `liveness.rs`): every process
//! with the ring open holds it shared, so a ring whose use lock can be taken exclusively is
//! used by nobody, whatever its consumer table says. Nothing here trusts PIDs or timestamps
//! in the file.

use crate::error::Error;
use crate::layout::MAGIC;
use crate::liveness::{is_locked, try_lock_byte, USE_LOCK};
use crate::storage::{io_error, TEMP_SUFFIX};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A creator's temporary file this old whose creator is gone is abandoned.
const ABANDONED_AFTER: Duration = Duration::from_secs(10);

/// What a file in a ring directory is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RingFileKind {
    /// A ring.
    Ring,
    /// A creator's temporary file (a ring being initialised, or abandoned half-way).
    Unfinished,
    /// Not a ring file.
    Foreign,
}

/// One file of a ring directory; see [`list_rings`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingFile {
    /// Its path.
    pub path: PathBuf,
    /// Ring, unfinished ring, or some other file.
    pub kind: RingFileKind,
    /// Whether some process has it open as a ring (or is still creating it).
    pub in_use: bool,
}

fn classify(path: &Path) -> Result<(RingFileKind, File), Error> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io_error(path, "open", &e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.starts_with('.') && name.ends_with(TEMP_SUFFIX) {
        return Ok((RingFileKind::Unfinished, file));
    }
    let mut magic = [0u8; 8];
    let is_ring = (&file).read_exact(&mut magic).is_ok() && u64::from_le_bytes(magic) == MAGIC;
    Ok((
        if is_ring {
            RingFileKind::Ring
        } else {
            RingFileKind::Foreign
        },
        file,
    ))
}

fn entries(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_error(dir, "read_dir", &e))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .map(|entry| entry.path())
        .collect();
    paths.sort();
    Ok(paths)
}

/// The files of the ring directory `dir`, sorted by path. Files this process may not open
/// are left out.
///
/// # Errors
///
/// [`Error::NotFound`], [`Error::PermissionDenied`] or [`Error::Io`] for the directory.
pub fn list_rings(dir: impl AsRef<Path>) -> Result<Vec<RingFile>, Error> {
    Ok(entries(dir.as_ref())?
        .into_iter()
        .filter_map(|path| {
            let (kind, file) = classify(&path).ok()?;
            let in_use = kind != RingFileKind::Foreign && is_locked(&file, USE_LOCK).unwrap_or(true);
            Some(RingFile { path, kind, in_use })
        })
        .collect())
}

/// Removes the rings of `dir` that no process has open, and temporary files that creators
/// abandoned (killed while initialising). Returns the removed paths. Other files, and files
/// this process may not remove, are left alone.
///
/// A ring is removed while holding its use lock exclusively, so a process opening it at that
/// moment gets [`Error::NotFound`] instead of a ring that is about to disappear.
///
/// # Errors
///
/// [`Error::NotFound`], [`Error::PermissionDenied`] or [`Error::Io`] for the directory.
pub fn prune_rings(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, Error> {
    let mut removed = Vec::new();
    for path in entries(dir.as_ref())? {
        let Ok((kind, file)) = classify(&path) else {
            continue;
        };
        let old_enough = kind != RingFileKind::Unfinished
            || file
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= ABANDONED_AFTER);
        if kind == RingFileKind::Foreign || !old_enough {
            continue;
        }
        if try_lock_byte(&file, USE_LOCK, true).unwrap_or(false) && std::fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
        // Dropping `file` releases the exclusive lock.
    }
    Ok(removed)
}
