//! The file and /dev/shm backends: create, open, open-or-create races, removal, validation of
//! foreign, truncated and corrupt files, permissions.
#![cfg(not(loom))]

use ringmq::{AttachError, OpenError, ProducerMode, Ring, Start};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// A unique /dev/shm ring name, removed on drop (also when the test fails).
struct ShmName(String);

impl ShmName {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        ShmName(format!("test-{tag}-{}-{nanos}", std::process::id()))
    }

    fn path(&self) -> PathBuf {
        ringmq::TopicDir::shm().path(&self.0).unwrap()
    }
}

impl Drop for ShmName {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path());
    }
}

#[test]
fn a_ring_in_shm_is_shared_between_handles_that_open_it() {
    let name = ShmName::new("shared");
    let ring = Ring::builder()
        .capacity(64)
        .slot_size(32)
        .create(name.path())
        .unwrap();
    let opened = Ring::open(name.path()).unwrap();
    assert_eq!((opened.capacity(), opened.slot_size()), (64, 32));
    assert_eq!(opened.path(), Some(name.path().as_path()));
    let mut consumer = opened
        .subscriber("reader")
        .start(Start::Earliest)
        .attach()
        .unwrap();
    let mut producer = ring.producer().unwrap();
    for i in 0..200u64 {
        producer.publish(&i.to_le_bytes()).unwrap();
        let message = consumer.recv().unwrap();
        assert_eq!(message.sequence(), i);
        assert_eq!(&*message, &i.to_le_bytes());
    }
    // The consumer table is shared too.
    assert_eq!(ring.consumers()[0].name, "reader");
    // The single producer is taken for every handle of the ring.
    assert_eq!(opened.producer().unwrap_err(), AttachError::ProducerTaken);
}

#[test]
fn create_refuses_an_existing_name_and_leaves_no_temporary_files() {
    let dir = dir();
    let path = dir.path().join("ring");
    let _ring = Ring::builder().create(&path).unwrap();
    assert!(matches!(
        Ring::builder().create(&path),
        Err(OpenError::AlreadyExists { .. })
    ));
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["ring"]);
}

#[test]
fn files_are_created_with_the_requested_mode() {
    let dir = dir();
    let private = dir.path().join("private");
    let shared = dir.path().join("shared");
    Ring::builder().create(&private).unwrap();
    Ring::builder().file_mode(0o644).create(&shared).unwrap();
    let mode = |p: &PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&private), 0o600);
    assert_eq!(mode(&shared), 0o644);
}

#[test]
fn a_file_without_access_is_a_permission_error() {
    let dir = dir();
    let path = dir.path().join("ring");
    Ring::builder().file_mode(0o000).create(&path).unwrap();
    // Root ignores file modes; everybody else must be refused.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        assert!(matches!(
            Ring::open(&path),
            Err(OpenError::PermissionDenied { .. })
        ));
    } else {
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0);
    }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

#[test]
fn open_or_create_opens_an_existing_ring_with_the_same_parameters() {
    let dir = dir();
    let path = dir.path().join("ring");
    let builder = Ring::builder().capacity(32).slot_size(24).multi_producer();
    let first = builder.clone().open_or_create(&path).unwrap();
    let second = builder.clone().open_or_create(&path).unwrap();
    let mut producer = first.producer().unwrap();
    let mut consumer = second.subscriber("c").start(Start::Earliest).attach().unwrap();
    producer.publish(b"x").unwrap();
    assert_eq!(&*consumer.recv().unwrap(), b"x");
    match builder.capacity(64).open_or_create(&path) {
        Err(OpenError::ParamsMismatch {
            field,
            expected,
            found,
            ..
        }) => assert_eq!((field, expected, found), ("capacity", 64, 32)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Ring::builder()
            .capacity(32)
            .slot_size(24)
            .producer_mode(ProducerMode::Single)
            .open_or_create(&path),
        Err(OpenError::ParamsMismatch {
            field: "producer_mode",
            ..
        })
    ));
}

#[test]
fn racing_creators_end_up_on_one_ring() {
    let dir = dir();
    let path = dir.path().join("ring");
    let rings: Vec<Ring> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    Ring::builder()
                        .capacity(16)
                        .multi_producer()
                        .open_or_create(&path)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
    });
    let mut consumer = rings[0].subscriber("c").start(Start::Earliest).attach().unwrap();
    for (i, ring) in rings.iter().enumerate() {
        ring.producer().unwrap().publish(&[i as u8]).unwrap();
    }
    let got: Vec<u8> = (0..8).map(|_| consumer.recv().unwrap()[0]).collect();
    assert_eq!(got, (0..8).collect::<Vec<u8>>());
}

#[test]
fn remove_unlinks_and_open_then_fails() {
    let dir = dir();
    let path = dir.path().join("ring");
    Ring::builder().create(&path).unwrap();
    Ring::remove(&path).unwrap();
    assert!(matches!(Ring::open(&path), Err(OpenError::NotFound { .. })));
    assert!(matches!(Ring::remove(&path), Err(OpenError::NotFound { .. })));
}

fn write_at(path: &PathBuf, offset: u64, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn foreign_truncated_and_corrupt_files_are_refused_with_typed_errors() {
    let dir = dir();
    let make = |name: &str| {
        let path = dir.path().join(name);
        drop(Ring::builder().capacity(16).slot_size(32).create(&path).unwrap());
        path
    };

    let foreign = dir.path().join("foreign");
    std::fs::write(
        &foreign,
        "a text file, not a ring, long enough for a header\n".repeat(10),
    )
    .unwrap();
    assert!(matches!(Ring::open(&foreign), Err(OpenError::NotARing { .. })));

    let tiny = dir.path().join("tiny");
    std::fs::write(&tiny, b"RINGMQ").unwrap();
    assert!(matches!(Ring::open(&tiny), Err(OpenError::Truncated { .. })));

    let short = make("short");
    let len = std::fs::metadata(&short).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&short)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    assert!(matches!(Ring::open(&short), Err(OpenError::Truncated { expected, .. }) if expected == len));

    let version = make("version");
    write_at(&version, 8, &7u64.to_le_bytes());
    assert!(matches!(
        Ring::open(&version),
        Err(OpenError::IncompatibleVersion {
            found: 7,
            supported: 1,
            ..
        })
    ));

    for (offset, value) in [
        (16u64, 3u64),
        (24, 12),
        (32, 9),
        (40, 0),
        (48, 0x10),
        (56, u64::MAX),
        (64, 1),
    ] {
        let path = make(&format!("corrupt-{offset}"));
        write_at(&path, offset, &value.to_le_bytes());
        assert!(
            matches!(Ring::open(&path), Err(OpenError::Corrupt { .. })),
            "field at {offset}"
        );
    }

    let zeroed = dir.path().join("zeroed");
    std::fs::write(&zeroed, vec![0u8; 4096]).unwrap();
    let started = std::time::Instant::now();
    assert!(matches!(
        Ring::builder()
            .init_timeout(Duration::from_millis(50))
            .open_or_create(&zeroed),
        Err(OpenError::NotInitialised { .. })
    ));
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[test]
fn a_fixed_size_ring_file_keeps_its_kind_and_its_messages() {
    let dir = dir();
    let path = dir.path().join("fixed");
    {
        let ring = Ring::builder().capacity(16).fixed_size(8).create(&path).unwrap();
        // A durable subscriber keeps the messages it has not read in the file.
        let _keeps = ring
            .subscriber("d")
            .durable(true)
            .start(Start::Earliest)
            .attach()
            .unwrap();
        let mut producer = ring.producer().unwrap();
        for i in 0..5u64 {
            producer.publish(&(100 + i).to_le_bytes()).unwrap();
        }
    }
    let ring = Ring::open(&path).unwrap();
    assert_eq!((ring.fixed_size(), ring.next_sequence()), (Some(8), 5));
    // A producer of the reopened ring continues at the cursor.
    assert_eq!(ring.producer().unwrap().publish(&105u64.to_le_bytes()), Ok(5));
    let mut consumer = ring.subscriber("d").durable(true).attach().unwrap();
    let batch = consumer.try_poll(16);
    let got: Vec<(u64, u64)> = batch
        .iter()
        .map(|m| (m.sequence(), m.value::<u64>().unwrap()))
        .collect();
    assert_eq!(got, (0..6).map(|i| (i, 100 + i)).collect::<Vec<_>>());
    drop(batch);
    // Asking for the same ring with headers is a mismatch, and the other way round.
    match Ring::builder()
        .capacity(16)
        .slot_size(8 + 8)
        .open_or_create(&path)
    {
        Err(OpenError::ParamsMismatch { field, .. }) => assert_eq!(field, "slot_size"),
        other => panic!("expected a mismatch, got {other:?}"),
    }
    match Ring::builder().capacity(16).slot_size(8).open_or_create(&path) {
        Err(OpenError::ParamsMismatch {
            field,
            expected,
            found,
            ..
        }) => assert_eq!((field, expected, found), ("fixed_size", 0, 1)),
        other => panic!("expected a mismatch, got {other:?}"),
    }
    let headers = dir.path().join("headers");
    Ring::builder()
        .capacity(16)
        .slot_size(16)
        .create(&headers)
        .unwrap();
    match Ring::builder()
        .capacity(16)
        .fixed_size(16)
        .open_or_create(&headers)
    {
        Err(OpenError::ParamsMismatch { field, .. }) => assert_eq!(field, "fixed_size"),
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

#[test]
fn a_symbolic_link_is_never_followed_to_a_ring() {
    let dir = dir();
    let ring = dir.path().join("ring");
    let link = dir.path().join("link");
    Ring::builder().create(&ring).unwrap();
    std::os::unix::fs::symlink(&ring, &link).unwrap();
    match Ring::open(&link) {
        Err(OpenError::Untrusted { reason, .. }) => assert!(reason.contains("symbolic link"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Nor created through: the name is taken by the link.
    assert!(matches!(
        Ring::builder().create(&link),
        Err(OpenError::AlreadyExists { .. })
    ));
}

#[test]
fn a_directory_others_may_change_holds_no_ring_unless_it_is_sticky() {
    let dir = dir();
    let path = dir.path().join("ring");
    Ring::builder().create(&path).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(matches!(Ring::open(&path), Err(OpenError::Untrusted { .. })));
    assert!(matches!(
        Ring::builder().create(dir.path().join("other")),
        Err(OpenError::Untrusted { .. })
    ));
    // With the sticky bit others cannot rename or remove what they do not own.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    Ring::open(&path).unwrap();
}

#[test]
fn a_missing_directory_is_named_as_such() {
    let dir = dir();
    let path = dir.path().join("no").join("ring");
    for result in [
        Ring::builder().create(&path).map(drop),
        Ring::open(&path).map(drop),
    ] {
        match result {
            Err(OpenError::NoSuchDirectory { path }) => assert!(path.ends_with("/no"), "{path}"),
            other => panic!("{other:?}"),
        }
    }
}
