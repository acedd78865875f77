//! Topics: named rings in a directory. [`TopicDir::shm`] is this user's directory in
//! /dev/shm (a tmpfs: memory speed, gone at reboot); any other directory works the same way.
//!
//! Whether anybody uses a ring is read from its use lock (see `liveness.rs`): every process
//! with the ring open holds it shared, so a ring whose use lock can be taken exclusively is
//! used by nobody, whatever its consumer table says. Nothing here trusts PIDs or timestamps
//! in the file.

use crate::error::OpenError;
use crate::limits::MAX_TOPIC_NAME_LEN;
use crate::liveness::{is_locked, try_lock_byte, USE_LOCK};
use crate::ring::{Ring, RingBuilder};
use crate::storage::{classify, io_error, user_shm_dir, FileKind, Trust};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A creator's temporary file this old whose creator is gone is abandoned.
const ABANDONED_AFTER: Duration = Duration::from_secs(10);

/// A directory of topics: ring files named by their topic.
///
/// ```no_run
/// use ringmq::{Ring, TopicDir};
///
/// let topics = TopicDir::shm(); // /dev/shm/ringmq-<uid>
/// let ring = topics.open_or_create("orders", Ring::builder().capacity(4096))?;
/// # Ok::<(), ringmq::OpenError>(())
/// ```
///
/// The default, [`TopicDir::shm`], is private to this process's user (created `0700`), so no
/// other user can create a topic under a name this user's processes will open. To share
/// topics between users on purpose, give them a directory both trust: for example one that
/// root created with `install -d -m 1770 -g traders /dev/shm/ringmq-traders`, rings created in
/// it with [`RingBuilder::file_mode`]`(0o660)`, and each side opening it with
/// `TopicDir::new(..).trust(Trust::default().group(traders_gid))`.
#[derive(Clone, Debug)]
pub struct TopicDir {
    dir: PathBuf,
    trust: Trust,
}

/// One file of a topic directory; see [`TopicDir::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicFile {
    /// Its path.
    pub path: PathBuf,
    /// Ring, unfinished ring, or some other file.
    pub kind: FileKind,
    /// Whether some process has it open as a ring (or is still creating it).
    pub in_use: bool,
}

impl TopicDir {
    /// This user's topics in /dev/shm: `/dev/shm/ringmq-<uid>`, made `0700` when the first
    /// topic is created.
    pub fn shm() -> Self {
        TopicDir::new(user_shm_dir())
    }

    /// The topics of the directory `dir`, which must exist (unless it is this user's /dev/shm
    /// directory, made when its first topic is created).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        TopicDir {
            dir: dir.into(),
            trust: Trust::default(),
        }
    }

    /// Also accepts rings and directories of the users `trust` names (see [`Trust`]).
    pub fn trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of the topic `name`.
    ///
    /// A name is 1 to 200 bytes of ASCII letters, digits, `-`, `_` and `.`, not starting with
    /// a `.` (those are temporary files of creators).
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidTopicName`] for any other name.
    pub fn path(&self, name: &str) -> Result<PathBuf, OpenError> {
        let valid = !name.is_empty()
            && name.len() <= MAX_TOPIC_NAME_LEN
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid {
            return Err(OpenError::InvalidTopicName {
                name: name.to_owned(),
            });
        }
        Ok(self.dir.join(name))
    }

    /// Creates the topic `name` as `builder` describes it ([`RingBuilder::create`]), making
    /// this user's /dev/shm directory first if it is missing.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidTopicName`], and those of [`RingBuilder::create`].
    pub fn create(&self, name: &str, builder: RingBuilder) -> Result<Ring, OpenError> {
        builder.trust(self.trust.clone()).create(self.path(name)?)
    }

    /// Opens the topic `name` if it exists with `builder`'s parameters, or creates it
    /// ([`RingBuilder::open_or_create`]).
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidTopicName`], and those of [`RingBuilder::open_or_create`].
    pub fn open_or_create(&self, name: &str, builder: RingBuilder) -> Result<Ring, OpenError> {
        builder.trust(self.trust.clone()).open_or_create(self.path(name)?)
    }

    /// Opens the topic `name` ([`Ring::open_trusting`] with this directory's trust).
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidTopicName`], and those of [`Ring::open`].
    pub fn open(&self, name: &str) -> Result<Ring, OpenError> {
        Ring::open_trusting(self.path(name)?, &self.trust)
    }

    /// Removes the topic `name` ([`Ring::remove`]: only a ring, never another file).
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidTopicName`], and those of [`Ring::remove`].
    pub fn remove(&self, name: &str) -> Result<(), OpenError> {
        Ring::remove(self.path(name)?)
    }

    /// The files of the directory, sorted by path, each classified. Files this process may
    /// not open are left out.
    ///
    /// # Errors
    ///
    /// [`OpenError::NoSuchDirectory`], [`OpenError::PermissionDenied`] or [`OpenError::Io`]
    /// for the directory.
    pub fn list(&self) -> Result<Vec<TopicFile>, OpenError> {
        Ok(self
            .entries()?
            .into_iter()
            .filter_map(|path| {
                let (kind, file) = classify(&path).ok()?;
                let in_use = kind != FileKind::Foreign && is_locked(&file, USE_LOCK).unwrap_or(true);
                Some(TopicFile { path, kind, in_use })
            })
            .collect())
    }

    /// Removes the rings that no process has open, and temporary files that creators
    /// abandoned (killed while initialising). Returns the removed paths. Other files, and
    /// files this process may not remove, are left alone.
    ///
    /// A ring is removed while holding its use lock exclusively, so a process opening it at
    /// that moment gets [`OpenError::NotFound`] instead of a ring that is about to disappear.
    ///
    /// # Errors
    ///
    /// As [`TopicDir::list`].
    pub fn prune(&self) -> Result<Vec<PathBuf>, OpenError> {
        self.prune_where(|_| true)
    }

    /// Removes the reply rings of requesters that died: [`TopicDir::prune`] of the files whose
    /// name starts with `prefix`. Returns how many it removed.
    pub(crate) fn prune_prefix(&self, prefix: &str) -> Result<usize, OpenError> {
        let named = |path: &Path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        };
        Ok(self.prune_where(named)?.len())
    }

    /// [`TopicDir::prune`] of the files `wanted` picks.
    fn prune_where(&self, wanted: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>, OpenError> {
        let mut removed = Vec::new();
        for path in self.entries()?.into_iter().filter(|p| wanted(p)) {
            let Ok((kind, file)) = classify(&path) else {
                continue;
            };
            let old_enough = kind != FileKind::Unfinished
                || file
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age >= ABANDONED_AFTER);
            if kind == FileKind::Foreign || !old_enough {
                continue;
            }
            if try_lock_byte(&file, USE_LOCK, true).unwrap_or(false) && std::fs::remove_file(&path).is_ok() {
                removed.push(path);
            }
            // Dropping `file` releases the exclusive lock.
        }
        Ok(removed)
    }

    fn entries(&self) -> Result<Vec<PathBuf>, OpenError> {
        let dir = &self.dir;
        let read = std::fs::read_dir(dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => OpenError::NoSuchDirectory {
                path: dir.display().to_string(),
            },
            _ => io_error(dir, "read_dir", &e),
        })?;
        let mut paths: Vec<PathBuf> = read
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
            .map(|entry| entry.path())
            .collect();
        paths.sort();
        Ok(paths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_into_the_directory() {
        let topics = TopicDir::new("/some/dir");
        assert_eq!(topics.path("orders").unwrap(), Path::new("/some/dir/orders"));
        assert_eq!(topics.path("a.b-c_9").unwrap(), Path::new("/some/dir/a.b-c_9"));
        for bad in ["", ".hidden", "a/b", "..", "x y", "é", &"n".repeat(201)] {
            assert!(
                matches!(topics.path(bad), Err(OpenError::InvalidTopicName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_shm_directory_is_this_user_s() {
        let uid = crate::storage::trust::effective_uid();
        assert_eq!(
            TopicDir::shm().dir(),
            Path::new(&format!("/dev/shm/ringmq-{uid}"))
        );
    }
}
