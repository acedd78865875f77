//! Who may have put a ring file where this process finds it.
//!
//! A ring file is shared memory another process writes into, and its name is the only thing
//! that says which ring it is. A user who could create the file first, or rename it away and
//! put their own under its name, would receive everything the victim publishes. So before a
//! ring file is created or opened:
//!
//! - every directory from the file's parent up to `/` is owned by root, the caller or a
//!   trusted user, and if its group or others may write it, it has the sticky bit (so they
//!   cannot rename or remove what they do not own);
//! - the file itself is not a symbolic link (`O_NOFOLLOW`), is a regular file, and is owned
//!   by the caller, root or a trusted user (checked on the open descriptor, so it is the file
//!   that is then mapped).
//!
//! [`Trust`] names the other users (or the groups whose members) this process trusts: by
//! default none, so only the caller's own rings (and root's) are opened.

use crate::error::OpenError;
use std::ffi::CString;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The users (besides this process's effective user and root) whose ring files, and
/// directories holding ring files, this process accepts.
///
/// By default nobody else: a ring file owned by another user, or one in a directory another
/// user could change, is refused with [`OpenError::Untrusted`]. Two users who share rings on
/// purpose name each other, or a group they are both members of:
///
/// ```
/// use ringmq::Trust;
/// let trust = Trust::default().user(1001).group(2000);
/// assert!(trust.trusts_user(1001));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trust {
    users: Vec<u32>,
    groups: Vec<u32>,
}

impl Trust {
    /// Also trusts the user `uid`.
    pub fn user(mut self, uid: u32) -> Self {
        self.users.push(uid);
        self
    }

    /// Also trusts every member of the group `gid` (by the user database: its primary
    /// members and those it lists).
    pub fn group(mut self, gid: u32) -> Self {
        self.groups.push(gid);
        self
    }

    /// Whether files and directories owned by `uid` are accepted: root, this process's
    /// effective user, a user named by [`Trust::user`], or a member of a group named by
    /// [`Trust::group`].
    pub fn trusts_user(&self, uid: u32) -> bool {
        uid == 0
            || uid == effective_uid()
            || self.users.contains(&uid)
            || self.groups.iter().any(|&gid| is_member(uid, gid))
    }

    /// Checks the directories that hold `path` (see the module doc).
    pub(crate) fn check_dirs(&self, path: &Path) -> Result<(), OpenError> {
        let parent = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = parent.canonicalize().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => OpenError::NoSuchDirectory {
                path: parent.display().to_string(),
            },
            _ => super::io_error(parent, "canonicalize", &e),
        })?;
        for ancestor in dir.ancestors() {
            let meta = std::fs::metadata(ancestor).map_err(|e| super::io_error(ancestor, "stat", &e))?;
            self.check_dir(ancestor, &meta)?;
        }
        Ok(())
    }

    fn check_dir(&self, dir: &Path, meta: &Metadata) -> Result<(), OpenError> {
        let untrusted = |reason: String| OpenError::Untrusted {
            path: dir.display().to_string(),
            reason,
        };
        if !self.trusts_user(meta.uid()) {
            return Err(untrusted(format!(
                "the directory is owned by uid {}, which this process does not trust",
                meta.uid()
            )));
        }
        let mode = meta.mode();
        let others_write = mode & 0o022 != 0;
        if others_write && mode & 0o1000 == 0 {
            return Err(untrusted(format!(
                "the directory (mode {:o}) lets other users rename its files, and has no sticky bit",
                mode & 0o7777
            )));
        }
        Ok(())
    }

    /// Checks the opened ring file's metadata (from its descriptor, not its name).
    pub(crate) fn check_file(&self, path: &Path, meta: &Metadata) -> Result<(), OpenError> {
        if !meta.file_type().is_file() {
            return Err(OpenError::NotARing {
                path: path.display().to_string(),
            });
        }
        if !self.trusts_user(meta.uid()) {
            return Err(OpenError::Untrusted {
                path: path.display().to_string(),
                reason: format!(
                    "the ring file is owned by uid {}, which this process does not trust",
                    meta.uid()
                ),
            });
        }
        Ok(())
    }
}

/// This process's effective user id.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether user `uid` is a member of group `gid` (its primary group, or a supplementary one
/// the user database lists). An unknown user is a member of nothing.
fn is_member(uid: u32, gid: u32) -> bool {
    let Some((name, primary)) = user_entry(uid) else {
        return false;
    };
    if primary == gid {
        return true;
    }
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut count = groups.len() as libc::c_int;
        // SAFETY: `name` is a NUL-terminated string; `groups` holds `count` writable gids, and
        // getgrouplist writes at most that many, setting `count` to the number it needs.
        let rc = unsafe { libc::getgrouplist(name.as_ptr(), primary, groups.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            return groups[..count.max(0) as usize].contains(&gid);
        }
        if count as usize <= groups.len() || groups.len() >= 1 << 16 {
            return false;
        }
        groups.resize(count as usize, 0);
    }
}

/// The login name and primary group of `uid`, from the user database.
fn user_entry(uid: u32) -> Option<(CString, u32)> {
    let mut buf = vec![0 as libc::c_char; 4096];
    loop {
        // SAFETY: all zeroes is a valid `passwd` (integers and null pointers).
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `entry` and `result` are valid for writes, `buf` holds `buf.len()` writable
        // bytes; getpwuid_r fills `entry` with pointers into `buf`, which we read below while
        // `buf` lives.
        let rc = unsafe { libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() || entry.pw_name.is_null() {
            return None;
        }
        // SAFETY: getpwuid_r succeeded, so `pw_name` points at a NUL-terminated string in
        // `buf`, which is alive.
        let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) }.to_owned();
        return Some((name, entry.pw_gid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_the_caller_are_always_trusted() {
        let trust = Trust::default();
        assert!(trust.trusts_user(0));
        assert!(trust.trusts_user(effective_uid()));
        let stranger = effective_uid().wrapping_add(4242);
        assert!(!trust.trusts_user(stranger));
        assert!(trust.clone().user(stranger).trusts_user(stranger));
    }

    #[test]
    fn a_user_is_a_member_of_its_primary_group() {
        let uid = effective_uid();
        if let Some((_, primary)) = user_entry(uid) {
            assert!(is_member(uid, primary));
        }
        // Nobody is a member of a group no user database lists.
        assert!(!is_member(uid.wrapping_add(4242), 4_000_000_000));
    }

    #[test]
    fn a_directory_others_can_write_needs_the_sticky_bit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        let trust = Trust::default();
        assert_eq!(trust.check_dirs(&path), Ok(()));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            trust.check_dirs(&path),
            Err(OpenError::Untrusted { .. })
        ));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(trust.check_dirs(&path), Ok(()));
        let missing = dir.path().join("no").join("ring");
        assert!(matches!(
            trust.check_dirs(&missing),
            Err(OpenError::NoSuchDirectory { .. })
        ));
    }
}
