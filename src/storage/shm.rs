//! The /dev/shm backend: rings named like topics, kept as files in `/dev/shm/ringmq/` (a
//! tmpfs, so memory speed and gone at reboot). The bytes and the protocol are the file
//! backend's; this file only turns names into paths.

use crate::error::Error;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The directory that holds named rings.
pub const SHM_DIR: &str = "/dev/shm/ringmq";

/// Longest ring name, in bytes.
pub const MAX_RING_NAME_LEN: usize = 200;

/// The path of the ring called `name` in [`SHM_DIR`].
///
/// A name is 1 to 200 bytes of ASCII letters, digits, `-`, `_` and `.`, not starting with a
/// `.` (those are temporary files of creators).
///
/// # Errors
///
/// [`Error::InvalidRingName`] for any other name.
pub fn shm_path(name: &str) -> Result<PathBuf, Error> {
    let valid = !name.is_empty()
        && name.len() <= MAX_RING_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid {
        return Err(Error::InvalidRingName {
            name: name.to_owned(),
        });
    }
    Ok(Path::new(SHM_DIR).join(name))
}

/// Creates [`SHM_DIR`] if missing: world-writable with the sticky bit, like `/tmp`, so every
/// user can create rings there and only remove their own. Each ring file has its own mode.
pub(crate) fn ensure_dir(path: &Path) -> Result<(), Error> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    if dir != Path::new(SHM_DIR) || dir.is_dir() {
        return Ok(());
    }
    match std::fs::DirBuilder::new().mode(0o1777).create(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777))
            .map_err(|e| super::file::io_error(dir, "chmod", &e)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(super::file::io_error(dir, "mkdir", &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_into_the_shm_directory() {
        assert_eq!(shm_path("orders").unwrap(), Path::new("/dev/shm/ringmq/orders"));
        assert_eq!(shm_path("a.b-c_9").unwrap(), Path::new("/dev/shm/ringmq/a.b-c_9"));
        for bad in ["", ".hidden", "a/b", "..", "x y", "é", &"n".repeat(201)] {
            assert!(
                matches!(shm_path(bad), Err(Error::InvalidRingName { .. })),
                "{bad:?}"
            );
        }
    }
}
