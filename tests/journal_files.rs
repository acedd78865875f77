//! The journal on real files: a round trip through a reopen, the writer lock between two
//! handles, a stray file, and a full file system (a size-limited tmpfs, mounted as root or
//! inside a user namespace).

use ringmq::journal::{Disk, Durability, FsDisk, Journal, JournalOptions, Seek};
use ringmq::JournalError;

fn options() -> JournalOptions {
    JournalOptions {
        segment_size: 128 << 10,
        max_record: 4096,
        durability: Durability::default(),
        ..JournalOptions::default()
    }
}

fn payload(s: u64) -> Vec<u8> {
    format!("record {s} ").repeat((s % 40) as usize + 1).into_bytes()
}

fn check(journal: &Journal, first: u64) {
    let mut expected = first;
    for record in journal.replay(Seek::Sequence(first)).unwrap() {
        let record = record.unwrap();
        assert_eq!(
            (record.sequence, record.payload),
            (expected, &payload(expected)[..])
        );
        expected += 1;
    }
    assert_eq!(expected, journal.next_sequence());
}

#[test]
fn files_round_trip_through_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders");
    let mut journal = Journal::open(&path, options()).unwrap();
    for s in 0..3000 {
        journal.append(&payload(s)).unwrap();
    }
    journal.set_position("audit", 1234).unwrap();
    assert!(journal.segments() > 3);
    journal.close().unwrap();
    // Each roll renamed a spare its helper thread allocated; a close removes the last.
    let spare = path.join("next.spare");
    assert!(!spare.exists(), "the close left its spare");
    // Dropped without a close: the next open recovers the tail past the durable position.
    let mut journal = Journal::open(&path, options()).unwrap();
    assert_eq!(journal.next_sequence(), 3000);
    assert_eq!(journal.position("audit"), Some(1234));
    for s in 3000..3100 {
        journal.append(&payload(s)).unwrap();
    }
    drop(journal);
    let journal = Journal::open(&path, options()).unwrap();
    assert!(!spare.exists(), "the open kept a dead writer's spare");
    assert_eq!(journal.next_sequence(), 3100);
    check(&journal, 0);
    check(&journal, 2999);
}

#[test]
fn a_second_writer_is_locked_out_and_a_stray_file_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = Journal::open(dir.path(), options()).unwrap();
    let second = Journal::open(dir.path(), options());
    assert!(matches!(second, Err(JournalError::Locked { .. })), "{second:?}");
    drop(first);
    std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    let third = Journal::open(dir.path(), options());
    assert!(
        matches!(third, Err(JournalError::Foreign { ref name, .. }) if name == "notes.txt"),
        "{third:?}"
    );
}

/// Runs `body` with a fresh tmpfs of `size` bytes mounted at a temporary directory: as root
/// directly, otherwise by running this very test again under `unshare -rm` (a user and
/// mount namespace in which this user is root).
fn with_small_tmpfs(test: &str, size: u64, body: impl FnOnce(&std::path::Path)) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        let exe = std::env::current_exe().unwrap();
        let status = std::process::Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount"])
            .arg(exe)
            .args(["--exact", test, "--test-threads=1"])
            .status()
            .expect("unshare (util-linux) runs this test as root in a namespace");
        assert!(status.success(), "the test failed inside its namespace: {status}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mount = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir.path())
        .status()
        .expect("mount");
    assert!(mount.success(), "mounting a tmpfs failed: {mount}");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(dir.path().to_owned());
    body(dir.path());
}

#[test]
fn a_full_file_system_is_no_space_at_segment_creation() {
    with_small_tmpfs(
        "a_full_file_system_is_no_space_at_segment_creation",
        300 << 10,
        |mount| {
            let path = mount.join("j");
            let mut journal = Journal::open(&path, options()).unwrap();
            let mut next = 0;
            let err = loop {
                match journal.append(&payload(next)) {
                    Ok(s) => next = s + 1,
                    Err(e) => break e,
                }
            };
            assert!(matches!(err, JournalError::NoSpace { .. }), "{err:?}");
            // Nothing was lost: what was appended commits.
            assert_eq!(journal.commit().unwrap(), next);
            check(&journal, 0);
            drop(journal);
            let journal = Journal::open(&path, options()).unwrap();
            assert_eq!(journal.next_sequence(), next);
            check(&journal, 0);
        },
    );
}

#[test]
fn a_rename_never_replaces_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FsDisk::open(dir.path()).unwrap();
    let a = disk.create("a", 4096).unwrap();
    a.write_at(0, b"kept").unwrap();
    disk.create("b", 4096).unwrap();
    let err = disk.rename("b", "a").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(&std::fs::read(dir.path().join("a")).unwrap()[..4], b"kept");
    disk.rename("b", "c").unwrap();
    assert!(!dir.path().join("b").exists() && dir.path().join("c").exists());
    let err = disk.rename("../a", "d").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}
