//! The journal on real files: a round trip through a reopen, the writer lock between two
//! handles, a stray file, and a full file system (a size-limited tmpfs, mounted as root or
//! inside a user namespace).

use ringmq::journal::{Disk, DiskFile, DiskLock, Durability, FsDisk, Journal, JournalOptions, Seek};
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

/// `Journal::open`, tried again while the writer lock is held by a process this test binary
/// forked: a child forked by a concurrent test (`mount`, `umount`) holds a copy of every
/// descriptor until its exec closes them, the writer lock's among them, so a journal
/// dropped at that moment stays locked for that long. The lock itself is the point of
/// `a_second_writer_is_locked_out_and_a_stray_file_refused`, which checks it while its
/// first writer lives.
fn reopen(path: &std::path::Path) -> Result<Journal, JournalError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Journal::open(path, options()) {
            Err(JournalError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::yield_now()
            }
            other => return other,
        }
    }
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
    let mut journal = reopen(&path).unwrap();
    assert_eq!(journal.next_sequence(), 3000);
    assert_eq!(journal.position("audit"), Some(1234));
    for s in 3000..3100 {
        journal.append(&payload(s)).unwrap();
    }
    drop(journal);
    let journal = reopen(&path).unwrap();
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
    let third = reopen(dir.path());
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
            let journal = reopen(&path).unwrap();
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

#[test]
fn a_ring_made_anew_holds_each_group_s_backlog_and_gives_it_its_place_back() {
    use ringmq::journal::restore;
    use ringmq::{Fragment, OpenError, Ring};
    let dir = tempfile::tempdir().unwrap();
    let (jdir, ring_path) = (dir.path().join("journal"), dir.path().join("orders"));
    let text = |s: u64| format!("message {s}").into_bytes();
    let mut journal = Journal::open(&jdir, options()).unwrap();
    for s in 0..100 {
        journal.append(&text(s)).unwrap();
    }
    journal.append_skipped().unwrap(); // 100: a dead producer's slot
    for fragment in [Fragment::First, Fragment::Middle, Fragment::Last] {
        journal.append_fragment(&text(0), fragment).unwrap(); // 101..=103
    }
    for s in 104..120 {
        journal.append(&text(s)).unwrap();
    }
    journal.set_group_position("billing", 90).unwrap();
    journal.set_group_position("shipping", 110).unwrap();
    journal.set_position("audit", 5).unwrap(); // a subscriber: it resumes through the journal
    journal.close().unwrap();
    let entries = || {
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };

    // A ring too small for billing's 30 messages: refused, nothing left behind.
    let err = restore(Ring::builder().capacity(16).slot_size(64), &ring_path, &jdir).unwrap_err();
    assert!(
        matches!(err, JournalError::Backlog { ref group, position: 90, end: 120, capacity: 16 } if group == "billing"),
        "{err:?}"
    );
    assert_eq!(entries(), ["journal"]);

    let ring = restore(Ring::builder().capacity(64).slot_size(64), &ring_path, &jdir).unwrap();
    assert_eq!((ring.initial_sequence(), ring.next_sequence()), (90, 120));
    let mut groups: Vec<(String, Option<u64>)> = ring
        .consumers()
        .into_iter()
        .map(|c| (c.name, c.sequence))
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        [
            ("billing".to_owned(), Some(90)),
            ("shipping".to_owned(), Some(110))
        ]
    );
    // Billing's worker takes up at 90: the messages in the slots of their own sequences, the
    // dead producer's slot passed over, the large message's pieces named as such.
    let mut worker = ring.worker("billing", "w1").attach().unwrap();
    let mut got = Vec::new();
    while let Ok(m) = worker.try_recv() {
        got.push((m.sequence(), m.fragment(), m.to_vec()));
    }
    let mut expected: Vec<(u64, Option<Fragment>, Vec<u8>)> = (90..100).map(|s| (s, None, text(s))).collect();
    for (s, fragment) in [
        (101, Fragment::First),
        (102, Fragment::Middle),
        (103, Fragment::Last),
    ] {
        expected.push((s, Some(fragment), text(0)));
    }
    expected.extend((104..120).map(|s| (s, None, text(s))));
    assert_eq!(got, expected);

    // A ring already there is never replaced.
    drop(worker);
    let err = restore(Ring::builder().capacity(64).slot_size(64), &ring_path, &jdir).unwrap_err();
    assert!(
        matches!(err, JournalError::Open(OpenError::AlreadyExists { .. })),
        "{err:?}"
    );
    assert_eq!(entries(), ["journal", "orders"]);
    assert_eq!(Ring::open(&ring_path).unwrap().next_sequence(), 120);
}

/// Each segment file's inode number, by segment name.
fn inodes(path: &std::path::Path) -> std::collections::BTreeMap<String, u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(path)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().ino(),
            )
        })
        .collect()
}

/// What [`Counting`] does when a reader opens the file it names, right after the open: the
/// writer's part of a race (what it does between the reader's listing and its look).
type OnOpenRead = (String, Box<dyn FnOnce(&FsDisk, &str) + Send>);

/// Real files, with the files created counted (a recycled segment is not created), and a
/// hook on a reader's next open.
struct Counting {
    inner: FsDisk,
    creates: std::sync::Mutex<u64>,
    on_open_read: std::sync::Mutex<Option<OnOpenRead>>,
}

impl std::fmt::Debug for Counting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counting").finish_non_exhaustive()
    }
}

impl Counting {
    fn open(path: &std::path::Path) -> std::sync::Arc<Counting> {
        std::fs::create_dir_all(path).unwrap();
        std::sync::Arc::new(Counting {
            inner: FsDisk::open(path).unwrap(),
            creates: std::sync::Mutex::new(0),
            on_open_read: std::sync::Mutex::new(None),
        })
    }

    fn creates(&self) -> u64 {
        *self.creates.lock().unwrap()
    }
}

impl Disk for Counting {
    fn create(&self, name: &str, len: u64) -> std::io::Result<std::sync::Arc<dyn DiskFile>> {
        *self.creates.lock().unwrap() += 1;
        self.inner.create(name, len)
    }
    fn open(&self, name: &str) -> std::io::Result<std::sync::Arc<dyn DiskFile>> {
        self.inner.open(name)
    }
    fn open_read(&self, name: &str) -> std::io::Result<std::sync::Arc<dyn DiskFile>> {
        let file = self.inner.open_read(name)?;
        let mut hook = self.on_open_read.lock().unwrap();
        if hook.as_ref().is_some_and(|(of, _)| of == name) {
            let (_, run) = hook.take().unwrap();
            run(&self.inner, name);
        }
        Ok(file)
    }
    fn list(&self) -> std::io::Result<Vec<String>> {
        self.inner.list()
    }
    fn remove(&self, name: &str) -> std::io::Result<()> {
        self.inner.remove(name)
    }
    fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self) -> std::io::Result<()> {
        self.inner.sync_dir()
    }
    fn try_lock_writer(&self) -> std::io::Result<Option<DiskLock>> {
        self.inner.try_lock_writer()
    }
}

/// Appends until the journal has rolled `rolls` more times (a new newest segment).
fn roll(journal: &mut Journal, path: &std::path::Path, rolls: usize) {
    let newest = |path: &std::path::Path| inodes(path).into_keys().next_back();
    let mut last = newest(path);
    let mut rolled = 0;
    while rolled < rolls {
        let s = journal.next_sequence();
        journal.append(&payload(s)).unwrap();
        let now = newest(path);
        if now != last {
            rolled += 1;
            last = now;
        }
    }
}

fn two_segments(recycle: bool) -> JournalOptions {
    let retention = ringmq::journal::Retention {
        max_segments: Some(2),
        ..Default::default()
    };
    JournalOptions {
        retention,
        recycle,
        ..options()
    }
}

#[test]
fn retention_recycles_retired_segments_and_replay_sees_only_new_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recycled");
    let disk = Counting::open(&path);
    let mut journal = Journal::open_on(disk.clone(), two_segments(true)).unwrap();
    roll(&mut journal, &path, 12);
    // The first segment, and a spare or two before the first retirement: every later
    // segment is a retired one made anew.
    assert!(
        disk.creates() <= 3,
        "{} files created for 13 segments",
        disk.creates()
    );
    assert_eq!(journal.segments(), 2);
    check(&journal, journal.oldest());
    drop(journal);
    // A reopen finds the same records, none of a file's earlier lives.
    let journal = reopen(&path).unwrap();
    check(&journal, journal.oldest());

    // Without recycling, every segment is a file of its own.
    let path = dir.path().join("removed");
    let disk = Counting::open(&path);
    let mut journal = Journal::open_on(disk.clone(), two_segments(false)).unwrap();
    roll(&mut journal, &path, 12);
    assert_eq!(disk.creates(), 13);
    check(&journal, journal.oldest());
}

#[test]
fn a_segment_a_reader_holds_is_never_written_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("held");
    let disk = Counting::open(&path);
    let mut journal = Journal::open_on(disk.clone(), two_segments(true)).unwrap();
    journal.append(&payload(0)).unwrap();
    journal.commit().unwrap();
    let mut reader = ringmq::journal::JournalReader::open(&path).unwrap();
    let first = inodes(&path).into_values().next().unwrap();
    roll(&mut journal, &path, 1);
    // The reader takes the first segment whole, sealed, and the second.
    reader.refresh().unwrap();
    let held = reader.next_sequence();
    roll(&mut journal, &path, 6);
    // The first file left the journal and was not made a later segment: the reader has it
    // (and, open, its inode number cannot be another file's).
    assert!(!inodes(&path).values().any(|&ino| ino == first));
    let mut expected = 0;
    for record in reader.replay(Seek::Earliest).unwrap() {
        let record = record.unwrap();
        assert_eq!(
            (record.sequence, record.payload),
            (expected, &payload(expected)[..])
        );
        expected += 1;
    }
    assert_eq!(expected, held, "the reader read what it holds");
    // Once the reader lets go, recycling resumes.
    drop(reader);
    let before = disk.creates();
    roll(&mut journal, &path, 6);
    assert!(disk.creates() - before < 6, "recycling never resumed");
}

/// A reader that listed a segment under its name and opens it just as the writer recycles it
/// finds another segment's header in it: deleted, if the name is gone from the directory (the
/// writer renames before it writes); corrupt, if the name is still there.
#[test]
fn a_reader_passes_over_a_segment_recycled_under_its_feet() {
    for renamed in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("race");
        let disk = Counting::open(&path);
        let mut journal = Journal::open_on(disk.clone(), two_segments(false)).unwrap();
        roll(&mut journal, &path, 2);
        journal.commit().unwrap();
        let names: Vec<String> = inodes(&path).into_keys().collect();
        let newest = names.last().unwrap().clone();
        // The oldest gets the newest's header, as a recycled file does once it is the next
        // segment; renamed away first, as the writer does, or (the control) left in place.
        let oldest = names[0].clone();
        *disk.on_open_read.lock().unwrap() = Some((
            oldest,
            Box::new(move |fs: &FsDisk, name: &str| {
                let mut header = [0u8; 64];
                fs.open(&newest).unwrap().read_at(0, &mut header).unwrap();
                if renamed {
                    fs.rename(name, "next.spare").unwrap();
                    fs.open("next.spare").unwrap().write_at(0, &header).unwrap();
                } else {
                    fs.open(name).unwrap().write_at(0, &header).unwrap();
                }
            }),
        ));
        let reader = ringmq::journal::JournalReader::open_on(disk.clone());
        if renamed {
            let reader = reader.unwrap();
            assert_eq!(reader.segments(), names.len() - 1, "the recycled one passed over");
            assert_eq!(reader.next_sequence(), journal.next_sequence());
        } else {
            assert!(
                matches!(reader, Err(JournalError::Corrupt { .. })),
                "a header that disagrees with a listed name: {reader:?}"
            );
        }
    }
}

/// Files in `dir` this process holds open that are no longer in the directory.
fn deleted_files_held(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|target| target.display().to_string())
        .filter(|target| target.starts_with(&dir.display().to_string()) && target.ends_with("(deleted)"))
        .collect()
}

/// A subscriber that replayed the journal and went live reads it no more: it lets go of the
/// segments, which retention then recycles or removes for good, rather than leaving them
/// allocated while the subscriber lives.
#[test]
fn a_subscriber_gone_live_holds_no_segment() {
    use ringmq::journal::{JournalStage, JournalSubscriber};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live");
    let ring = ringmq::Ring::builder()
        .capacity(64)
        .slot_size(128)
        .build()
        .unwrap();
    let stage = JournalStage::spawn(&ring, &path, two_segments(true)).unwrap();
    let mut producer = ring.producer().unwrap();
    let timeout = std::time::Duration::from_secs(30);
    let wait = Some(timeout);
    let message = [7u8; 100];
    for _ in 0..3000 {
        producer.publish_timeout(&message, timeout).unwrap();
    }
    stage.wait_durable(2999, wait).unwrap();
    let mut subscriber = JournalSubscriber::attach(&ring, &path, "history", Seek::Earliest).unwrap();
    while !subscriber.is_live() {
        subscriber
            .poll_with(1000, std::time::Duration::from_millis(10), |_, _| ())
            .unwrap();
    }
    // Past every segment it replayed, read live as they come: retention takes them all.
    let mut last = 0;
    for _ in 0..200 {
        for _ in 0..32 {
            last = producer.publish_timeout(&message, timeout).unwrap();
        }
        while subscriber
            .poll_with(64, std::time::Duration::ZERO, |_, _| ())
            .unwrap()
            > 0
        {}
    }
    stage.wait_durable(last, wait).unwrap();
    assert_eq!(deleted_files_held(&path), Vec::<String>::new());
    drop(subscriber);
    stage.stop().unwrap();
}
