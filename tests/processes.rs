//! Rings shared by real processes (the `ringmq` binary), and processes killed with SIGKILL at
//! the worst moments: subscribers, durable subscribers, group workers holding messages,
//! creators half-way through creating a ring.
#![cfg(not(loom))]

use ringmq::{AttachError, ConsumerKind, FileKind, OpenError, Ring, Start, TopicDir};
mod common;

use common::cli::{assert_success, run, wait_until, Proc, ShmRing, BIN};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn attached(ring: &Ring, name: &str) -> bool {
    ring.consumers().iter().any(|c| c.name == name)
}

fn position(ring: &Ring, name: &str) -> Option<u64> {
    ring.consumers().into_iter().find(|c| c.name == name)?.sequence
}

fn records(path: &Path) -> Vec<(u64, u64, bool)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let f: Vec<u64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
            (f[0], f[1], f[2] == 1)
        })
        .collect()
}

#[test]
fn producers_subscribers_and_a_group_in_separate_processes() {
    const N: u64 = 20_000;
    let ring_file = ShmRing::new("mix");
    let r = ring_file.arg();
    assert_success(&run(&format!(
        "create {r} --capacity 256 --slot-size 48 --multi-producer"
    )));
    let ring = Ring::open(&ring_file.0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rec = |name: &str| dir.path().join(name).display().to_string();
    let (rec1, rec2) = (rec("w1"), rec("w2"));
    let total = (2 * N).to_string();
    // s2 takes batches of up to 16 (one release per batch).
    let mut subscribers: Vec<Proc> = [("s1", 1), ("s2", 16)]
        .iter()
        .map(|(name, batch)| {
            Proc::spawn(&format!(
                "consume {r} --name {name} --from earliest --count {total} --verify --json --wait yield --batch {batch}"
            ))
        })
        .collect();
    let mut workers: Vec<Proc> = [("w1", &rec1), ("w2", &rec2)]
        .iter()
        .map(|(name, record)| {
            let worker = format!("consume {r} --group g --name {name} --from earliest --verify --json");
            Proc::spawn(&format!("{worker} --record {record} --until STOP --wait yield"))
        })
        .collect();
    wait_until("the first subscriber to attach", || attached(&ring, "s1"));
    // A third subscriber runs after s1 (a pipeline stage in its own process).
    let stage = Proc::spawn(&format!(
        "consume {r} --name s3 --after s1 --from earliest --count {total} --verify --json --wait yield"
    ));
    wait_until("every consumer to attach", || {
        ["s1", "s2", "s3", "w1", "w2"].iter().all(|n| attached(&ring, n))
    });
    let s3 = ring.consumers().into_iter().find(|c| c.name == "s3").unwrap();
    assert_eq!(s3.after, ["s1"]);
    let n = N.to_string();
    let mut producers: Vec<Proc> = ["1", "2"]
        .iter()
        .map(|id| {
            // Producer 2 publishes in batches of 32.
            Proc::spawn(&format!(
                "produce {r} --count {n} --verifiable {id} --wait yield --json --batch {}",
                if *id == "2" { 32 } else { 1 }
            ))
        })
        .collect();
    for p in &mut producers {
        assert_eq!(p.json()["published"], N);
    }
    // One STOP per worker: a worker that takes one detaches, so the other gets the next.
    let mut producer = ring.producer().unwrap();
    producer.publish(b"STOP").unwrap();
    producer.publish(b"STOP").unwrap();
    subscribers.push(stage);
    for s in &mut subscribers {
        let summary = s.json();
        assert_eq!(summary["received"], 2 * N, "{summary}");
        assert_eq!(summary["producers"]["1"], N);
        assert_eq!(summary["producers"]["2"], N);
        for field in ["out_of_order", "gaps", "duplicates", "corrupt", "redelivered"] {
            assert_eq!(summary[field], 0, "{field}: {summary}");
        }
    }
    let mut received = 0;
    for w in &mut workers {
        let summary = w.json();
        for field in ["out_of_order", "duplicates", "corrupt", "redelivered"] {
            assert_eq!(summary[field], 0, "{field}: {summary}");
        }
        received += summary["received"].as_u64().unwrap();
    }
    assert_eq!(received, 2 * N);
    // Exactly once across the group: the union of what the two workers got is everything.
    let mut all: Vec<(u64, u64)> = records(Path::new(&rec1))
        .into_iter()
        .chain(records(Path::new(&rec2)))
        .map(|(id, counter, _)| (id, counter))
        .collect();
    all.sort_unstable();
    let expected: Vec<(u64, u64)> = (1..=2).flat_map(|id| (0..N).map(move |c| (id, c))).collect();
    assert_eq!(all, expected);
}

#[test]
fn a_killed_ephemeral_subscriber_stops_gating_the_producer() {
    let ring_file = ShmRing::new("eph");
    let ring = Ring::builder().capacity(16).create(&ring_file.0).unwrap();
    let mut subscriber = Proc::spawn(&format!("consume {} --name eph --hold-ms 60000", ring_file.arg()));
    wait_until("the subscriber to attach", || attached(&ring, "eph"));
    let mut producer = ring.producer().unwrap();
    producer.publish(b"held").unwrap();
    wait_until("the subscriber to hold the message", || {
        position(&ring, "eph") == Some(0)
    });
    subscriber.kill();
    // The dead subscriber gated the ring at sequence 0; a producer waiting on it notices the
    // death (its OFD lock is gone) and detaches it.
    for i in 0..100u64 {
        producer
            .publish_timeout(&i.to_le_bytes(), Duration::from_secs(10))
            .expect("the dead subscriber no longer gates");
    }
    assert!(!attached(&ring, "eph"));
}

#[test]
fn a_killed_durable_subscriber_resumes_where_it_was_without_loss_or_duplicates() {
    const N: u64 = 3_000;
    let ring_file = ShmRing::new("durable");
    let r = ring_file.arg();
    let ring = ring_file.create(64, 48);
    let mut first = Proc::spawn(&format!(
        "consume {r} --name dur --durable --from earliest --hold-ms 1"
    ));
    wait_until("the subscriber to attach", || attached(&ring, "dur"));
    let n = N.to_string();
    let mut producer = Proc::spawn(&format!(
        "produce {r} --count {n} --verifiable 7 --wait block --json"
    ));
    wait_until("the subscriber to get going", || {
        position(&ring, "dur").is_some_and(|p| p > 100)
    });
    first.kill();
    let info = ring
        .consumers()
        .into_iter()
        .find(|c| c.name == "dur")
        .expect("durable entry kept");
    assert!(info.durable);
    assert!(!info.alive, "{info:?}");
    let resume = info.sequence.unwrap();
    assert!(resume > 100 && resume < N, "{resume}");
    // The dead durable subscriber keeps gating: the producer cannot have passed it by a lap.
    assert!(ring.next_sequence() <= resume + 64);
    let remaining = (N - resume).to_string();
    let mut second = Proc::spawn(&format!(
        "consume {r} --name dur --durable --count {remaining} --verify --json"
    ));
    let summary = second.json();
    assert_eq!(summary["first_sequence"], resume, "{summary}");
    assert_eq!(summary["last_sequence"], N - 1);
    assert_eq!(summary["received"], N - resume);
    for field in ["out_of_order", "gaps", "duplicates", "corrupt"] {
        assert_eq!(summary[field], 0, "{field}: {summary}");
    }
    assert_eq!(producer.json()["published"], N);
}

#[test]
fn a_group_worker_killed_holding_a_message_gets_it_redelivered_to_another() {
    const N: u64 = 200;
    let ring_file = ShmRing::new("group");
    let r = ring_file.arg();
    let ring = ring_file.create(256, 48);
    let mut holder = Proc::spawn(&format!(
        "consume {r} --group g --name w1 --from earliest --hold-ms 60000"
    ));
    wait_until("the worker to attach", || attached(&ring, "w1"));
    let n = N.to_string();
    assert_success(&run(&format!("produce {r} --count {n} --verifiable 3")));
    wait_until("the worker to hold a message", || {
        position(&ring, "w1") == Some(0)
    });
    holder.kill();
    let mut survivor = Proc::spawn(&format!(
        "consume {r} --group g --name w2 --count {n} --verify --json"
    ));
    let summary = survivor.json();
    assert_eq!(summary["received"], N, "{summary}");
    assert_eq!(summary["producers"]["3"], N);
    assert_eq!(summary["redelivered"], 1, "{summary}");
    for field in ["out_of_order", "duplicates", "corrupt"] {
        assert_eq!(summary[field], 0, "{field}: {summary}");
    }
    assert_eq!(ring.redelivered_count(), 1);
    // Both workers are gone, so the group went with them.
    assert!(ring.consumers().iter().all(|c| c.kind != ConsumerKind::Group));
}

#[test]
fn a_group_s_only_worker_killed_and_restarted_under_its_name_gets_its_messages_again() {
    const N: u64 = 100;
    let ring_file = ShmRing::new("rejoin");
    let r = ring_file.arg();
    let ring = ring_file.create(64, 48);
    let mut holder = Proc::spawn(&format!(
        "consume {r} --group g --name w1 --from earliest --batch 4 --hold-ms 60000"
    ));
    wait_until("the worker to attach", || attached(&ring, "w1"));
    let n = N.to_string();
    let producer = Proc::spawn(&format!("produce {r} --count {n} --verifiable 5 --json"));
    wait_until("the worker to hold a message", || {
        position(&ring, "w1") == Some(0)
    });
    holder.kill();
    // The same worker, restarted: it takes its own place back, and the messages it held.
    let mut restarted = Proc::spawn(&format!(
        "consume {r} --group g --name w1 --count {n} --verify --json"
    ));
    let summary = restarted.json();
    assert_eq!(summary["received"], N, "{summary}");
    assert_eq!(summary["producers"]["5"], N, "{summary}");
    let redelivered = summary["redelivered"].as_u64().unwrap();
    assert!((1..=4).contains(&redelivered), "{summary}");
    for field in ["out_of_order", "duplicates", "corrupt"] {
        assert_eq!(summary[field], 0, "{field}: {summary}");
    }
    assert_eq!(ring.redelivered_count(), redelivered);
    let mut producer = producer;
    assert_eq!(producer.json()["published"], N);
    assert!(ring.consumers().is_empty(), "{:?}", ring.consumers());
}

#[test]
fn a_creator_killed_while_initialising_leaves_no_ring_under_the_name() {
    let ring_file = ShmRing::new("init");
    let dir = ring_file.0.parent().unwrap().to_owned();
    let name = ring_file.0.file_name().unwrap().to_string_lossy().into_owned();
    let mut creator = Proc(Some(
        Command::new(BIN)
            .args(["create", &ring_file.arg()])
            .env("RINGMQ_TEST_PAUSE", "create")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let temp = || {
        TopicDir::new(&dir)
            .list()
            .unwrap()
            .into_iter()
            .find(|f| f.kind == FileKind::Unfinished && f.path.to_string_lossy().contains(&name))
    };
    wait_until("the creator's temporary file", || {
        temp().is_some_and(|f| f.in_use)
    });
    creator.kill();
    // Nobody can open a half-made ring: the name does not exist yet.
    assert!(matches!(
        Ring::open(&ring_file.0),
        Err(OpenError::NotFound { .. })
    ));
    let abandoned = temp().expect("the temporary file stays until pruned");
    assert!(!abandoned.in_use, "its creator is dead");
    // A new creator is not disturbed by the leftover.
    let ring = Ring::builder().open_or_create(&ring_file.0).unwrap();
    let mut consumer = ring.subscriber("c").start(Start::Earliest).attach().unwrap();
    ring.producer().unwrap().publish(b"ok").unwrap();
    assert_eq!(&*consumer.recv().unwrap(), b"ok");
    // Prune removes the abandoned file once it is old enough to be surely abandoned, and
    // leaves the ring that is in use alone.
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&abandoned.path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let removed = TopicDir::new(&dir).prune().unwrap();
    assert!(removed.contains(&abandoned.path), "{removed:?}");
    assert!(!removed.contains(&ring_file.0));
    assert!(ring_file.0.exists());
}

#[test]
fn prune_removes_rings_nobody_uses_and_keeps_used_ones() {
    let dir = tempfile::tempdir().unwrap();
    let used = dir.path().join("used");
    let unused = dir.path().join("unused");
    let _ring = Ring::builder().create(&used).unwrap();
    drop(Ring::builder().create(&unused).unwrap());
    std::fs::write(dir.path().join("notes.txt"), "not a ring").unwrap();
    let out = run(&format!("prune {} --json", dir.path().display()));
    assert_success(&out);
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["removed"], serde_json::json!([unused]));
    assert!(used.exists() && dir.path().join("notes.txt").exists());
    let listed = run(&format!("list {} --json", dir.path().display()));
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let rings = listed["rings"].as_array().unwrap();
    assert_eq!(rings.len(), 2);
    assert_eq!(
        (&rings[0]["kind"], &rings[0]["in_use"]),
        (&"foreign".into(), &false.into())
    );
    assert_eq!(
        (&rings[1]["kind"], &rings[1]["in_use"]),
        (&"ring".into(), &true.into())
    );
}

#[test]
fn stat_reports_consumers_and_the_cli_gives_one_line_errors() {
    let ring_file = ShmRing::new("stat");
    let r = ring_file.arg();
    assert_success(&run(&format!("create {r} --capacity 64")));
    let ring = Ring::open(&ring_file.0).unwrap();
    let _sub = ring.subscriber("audit").start(Start::Earliest).attach().unwrap();
    let _worker = ring.worker("billing", "billing-1").attach().unwrap();
    let mut producer = ring.producer().unwrap();
    for _ in 0..5 {
        producer.publish(b"x").unwrap();
    }
    let out = run(&format!("stat {r} --json"));
    assert_success(&out);
    let stat: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stat["capacity"], 64);
    assert_eq!(stat["next_sequence"], 5);
    let audit = stat["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "audit")
        .unwrap()
        .clone();
    assert_eq!(
        (audit["lag"].as_u64(), audit["alive"].as_bool()),
        (Some(5), Some(true))
    );
    assert!(String::from_utf8_lossy(&run(&format!("stat {r}")).stdout).contains("billing-1"));

    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    for (args, code, needle) in [
        (vec!["stat", junk.to_str().unwrap()], 1, "not a ringmq ring"),
        (
            vec!["stat", "/nonexistent/ring"],
            1,
            "/nonexistent: no such directory",
        ),
        (vec!["stat", "bad name"], 1, "not a topic name"),
        (
            vec!["create", "/no/such/dir/x"],
            1,
            "/no/such/dir: no such directory",
        ),
        (vec!["list", "/nonexistent"], 1, "/nonexistent: no such directory"),
        (
            vec!["prune", "/nonexistent"],
            1,
            "/nonexistent: no such directory",
        ),
        (vec!["rm", junk.to_str().unwrap()], 1, "not a ringmq ring"),
        (
            vec!["consume", &r, "--name", "w", "--journal", "/tmp", "--after", "a"],
            2,
            "cannot be used with",
        ),
        (vec!["create"], 2, "required"),
        (vec!["create", &r], 1, "already exists"),
        (vec!["create", "x/y", "--capacity", "3"], 1, "power of two"),
        (
            vec!["consume", &r, "--name", "n", "--from", "soon"],
            2,
            "earliest",
        ),
        (vec!["frobnicate"], 2, "unrecognized"),
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    // `rm` refused the file that is not a ring, and left it alone.
    assert_eq!(std::fs::read(&junk).unwrap(), vec![b'x'; 4096]);
}

#[test]
fn rm_removes_a_ring_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("ring");
    let text = dir.path().join("notes.txt");
    let link = dir.path().join("link");
    assert_success(&run(&format!("create {}", ring.display())));
    std::fs::write(&text, b"keep me").unwrap();
    std::os::unix::fs::symlink(&ring, &link).unwrap();
    for refused in [&text, &link] {
        let out = run(&format!("rm {}", refused.display()));
        assert_eq!(out.status.code(), Some(1), "{}", refused.display());
        assert!(String::from_utf8_lossy(&out.stderr).contains("not a ringmq ring"));
    }
    assert_eq!(std::fs::read(&text).unwrap(), b"keep me");
    assert!(
        std::fs::symlink_metadata(&link).is_ok(),
        "the link is still there"
    );
    assert_success(&run(&format!("rm {}", ring.display())));
    assert!(!ring.exists());
}

/// The `ringmq` binary, copied where every user can run it: the build's own copy may sit in
/// a checkout other users cannot enter (a 0700 home, a private temporary directory).
struct SharedBin(tempfile::TempDir);

impl SharedBin {
    fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("ringmq-bin-")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::copy(BIN, dir.path().join("ringmq")).unwrap();
        std::fs::set_permissions(dir.path().join("ringmq"), std::fs::Permissions::from_mode(0o755)).unwrap();
        SharedBin(dir)
    }

    /// Runs it as user and group 65534 (nobody) with `args`.
    fn run_as_nobody(&self, args: &[&str]) -> Output {
        Command::new(self.0.path().join("ringmq"))
            .args(args)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    }
}

/// Whether this process can become another user (only root can).
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { geteuid() == 0 }
}

#[test]
fn another_user_is_refused_a_0600_ring() {
    let ring_file = ShmRing::new("perm");
    Ring::builder().create(&ring_file.0).unwrap();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&ring_file.0).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    if !is_root() {
        // Only root can become another user; the mode check above is what is left.
        return;
    }
    let out = SharedBin::new().run_as_nobody(&["stat", &ring_file.arg()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("permission denied"));
}

#[test]
fn a_ring_another_user_put_under_a_name_is_refused() {
    if !is_root() {
        // Only root can make files another user owns; `tests/files.rs` covers the
        // directory and symbolic-link checks any user can run.
        return;
    }
    use std::os::unix::fs::{chown, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    // A ring file owned by another user (as if that user had created it first), 0666 so
    // that every user could open it.
    let planted = dir.path().join("orders");
    Ring::builder().file_mode(0o666).create(&planted).unwrap();
    chown(&planted, Some(65534), Some(65534)).unwrap();
    for open in [
        Ring::open(&planted).map(drop),
        Ring::builder().open_or_create(&planted).map(drop),
    ] {
        assert!(
            matches!(&open, Err(OpenError::Untrusted { reason, .. }) if reason.contains("uid 65534")),
            "{open:?}"
        );
    }
    let out = run(&format!("produce {} --count 1", planted.display()));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused"));
    // Trusted on purpose, it opens.
    let trust = ringmq::Trust::default().user(65534);
    Ring::open_trusting(&planted, &trust).unwrap();

    // A directory another user owns could have its files renamed away and replaced.
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o755)).unwrap();
    chown(&theirs, Some(65534), Some(65534)).unwrap();
    let inside = theirs.join("ring");
    assert!(matches!(
        Ring::builder().create(&inside),
        Err(OpenError::Untrusted { .. })
    ));
    assert!(Ring::builder().trust(trust.clone()).create(&inside).is_ok());
    assert!(matches!(Ring::open(&inside), Err(OpenError::Untrusted { .. })));
    assert!(Ring::open_trusting(&inside, &trust).is_ok());
}

#[test]
fn this_user_s_topic_directory_made_by_another_user_is_refused() {
    if !is_root() {
        return;
    }
    // Another user's "private" directory where this user's topics would go: refused, never
    // used. (Played here with a directory of the same shape in a temporary place, so the
    // test leaves the real one alone.)
    use std::os::unix::fs::{chown, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let squatted = dir.path().join("ringmq-0");
    std::fs::create_dir(&squatted).unwrap();
    std::fs::set_permissions(&squatted, std::fs::Permissions::from_mode(0o777)).unwrap();
    chown(&squatted, Some(65534), Some(65534)).unwrap();
    let topics = TopicDir::new(&squatted);
    assert!(matches!(
        topics.create("orders", Ring::builder()),
        Err(OpenError::Untrusted { .. })
    ));
    assert!(matches!(topics.open("orders"), Err(OpenError::Untrusted { .. })));
}

use std::os::unix::process::CommandExt;

extern "C" {
    fn geteuid() -> u32;
}

#[test]
fn a_producer_killed_between_claim_and_publish_does_not_stall_consumers() {
    let ring_file = ShmRing::new("deadproducer");
    let ring = Ring::builder()
        .capacity(64)
        .slot_size(48)
        .multi_producer()
        .create(&ring_file.0)
        .unwrap();
    let mut consumer = ring.subscriber("c").start(Start::Earliest).attach().unwrap();
    // The test hook parks the producer after it claimed sequence 0, before its publish.
    let mut stuck = Proc(Some(
        Command::new(BIN)
            .args(["produce", &ring_file.arg(), "--count", "1", "--verifiable", "1"])
            .env("RINGMQ_TEST_PAUSE", "commit")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    wait_until("the producer to claim a slot", || ring.next_sequence() == 1);
    let mut producer = ring.producer().unwrap();
    for i in 1..=10u64 {
        assert_eq!(producer.publish(&i.to_le_bytes()).unwrap(), i);
    }
    // Sequence 0 is claimed and unpublished, and its producer is alive: nothing passes it.
    assert!(matches!(consumer.try_recv(), Err(ringmq::RecvError::Empty)));
    stuck.kill();
    // Once the death is confirmed (the OFD lock is gone), a waiting consumer skips the slot.
    let message = consumer
        .recv_timeout(Duration::from_secs(10))
        .expect("not stalled");
    assert_eq!((message.sequence(), message.value::<u64>().unwrap()), (1, 1));
    drop(message);
    assert_eq!(consumer.skipped(), 1);
    assert_eq!(ring.skipped_count(), 1);
    for i in 2..=10u64 {
        assert_eq!(consumer.recv().unwrap().value::<u64>().unwrap(), i);
    }
}

#[test]
fn a_blocked_consumer_in_another_process_sleeps_and_wakes() {
    let ring_file = ShmRing::new("block");
    let ring = Ring::builder().capacity(16).create(&ring_file.0).unwrap();
    let mut consumer = Proc::spawn(&format!(
        "consume {} --name sleeper --wait block --count 1 --json",
        ring_file.arg()
    ));
    wait_until("the consumer to attach", || attached(&ring, "sleeper"));
    let pid = consumer.0.as_ref().unwrap().id();
    let cpu_ticks = || {
        // utime + stime, fields 14 and 15 of /proc/PID/stat (after the parenthesised name).
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<u64> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|f| f.parse().unwrap())
            .collect();
        fields[0] + fields[1]
    };
    // The idle period being measured, not a stand-in for synchronisation.
    let before = cpu_ticks();
    std::thread::sleep(Duration::from_millis(500));
    let used = cpu_ticks() - before;
    // A spinning consumer would use ~50 ticks (100 Hz) in 0.5 s; a blocked one ~0.
    assert!(used <= 5, "an idle blocked consumer used {used} ticks in 0.5 s");
    // The futex word lives in the shared mapping: a publish here wakes it there.
    ring.producer().unwrap().publish(b"wake up").unwrap();
    assert_eq!(consumer.json()["received"], 1);
}

#[test]
fn produce_reads_stdin_lines_and_consume_prints_them() {
    let ring_file = ShmRing::new("lines");
    let r = ring_file.arg();
    assert_success(&run(&format!("create {r}")));
    let mut producer = Command::new(BIN)
        .args(["produce", &r])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let ring = Ring::open(&ring_file.0).unwrap();
    let _reader = ring.subscriber("keep").start(Start::Earliest).attach().unwrap();
    use std::io::Write;
    producer
        .stdin
        .take()
        .unwrap()
        .write_all(b"first line\nsecond line\n")
        .unwrap();
    assert!(producer.wait().unwrap().success());
    let out = run(&format!(
        "consume {r} --name printer --from earliest --count 2 --print"
    ));
    assert_success(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "first line\nsecond line\n");
}

#[test]
fn a_killed_single_producer_is_replaced_by_a_new_one() {
    let ring_file = ShmRing::new("takeover");
    let r = ring_file.arg();
    let ring = ring_file.create(64, 48);
    let mut consumer = ring.subscriber("c").start(Start::Earliest).attach().unwrap();
    let mut first = Proc::spawn(&format!("produce {r} --count 1000000 --verifiable 1 --rate 1000"));
    wait_until("the first producer to publish", || ring.next_sequence() > 5);
    // Only one producer at a time while it lives.
    assert_eq!(ring.producer().unwrap_err(), AttachError::ProducerTaken);
    first.kill();
    // Its lock is gone: the role passes on, continuing at its cursor (or just past a slot
    // the dead producer finished and stamped without moving the cursor: consumers may have
    // read that one already).
    let cursor = ring.next_sequence();
    let mut second = ring.producer().expect("the dead producer's role passes on");
    let sequence = second.publish(b"next").unwrap();
    assert!(
        sequence == cursor || sequence == cursor + 1,
        "{sequence} after {cursor}"
    );
    let mut seen = Vec::new();
    while let Ok(m) = consumer.try_recv() {
        seen.push((m.sequence(), m.to_vec()));
    }
    // Every sequence once, in order, ending with the new producer's message.
    assert!(seen.iter().enumerate().all(|(i, (s, _))| *s == i as u64));
    assert_eq!(seen.last(), Some(&(sequence, b"next".to_vec())));
}

#[test]
fn a_fixed_size_ring_between_processes_and_its_producer_replaced() {
    // Created from the command line, fed by a producer process (single publishes, then
    // batches), read and verified by a subscriber process; the producer killed and
    // replaced at exactly its cursor, since a fixed-size ring has no stamps to publish past it.
    const N: u64 = 5_000;
    let ring_file = ShmRing::new("fixed");
    let r = ring_file.arg();
    let created = run(&format!("--json create {r} --capacity 128 --fixed-size 32"));
    assert_success(&created);
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(
        (created["fixed_size"].as_u64(), created["slot_size"].as_u64()),
        (Some(32), Some(32))
    );
    let ring = Ring::open(&ring_file.0).unwrap();
    assert_eq!(ring.fixed_size(), Some(32));
    let mut reader = Proc::spawn(&format!(
        "consume {r} --name v --from earliest --count {} --verify --json --wait yield --batch 16",
        2 * N
    ));
    wait_until("the subscriber to attach", || attached(&ring, "v"));
    for batch in [1, 32] {
        let mut producer = Proc::spawn(&format!(
            "produce {r} --count {N} --verifiable {batch} --wait yield --json --batch {batch}"
        ));
        assert_eq!(producer.json()["published"], N);
    }
    let summary = reader.json();
    assert_eq!(summary["received"], 2 * N, "{summary}");
    for field in ["out_of_order", "gaps", "duplicates", "corrupt", "redelivered"] {
        assert_eq!(summary[field], 0, "{field}: {summary}");
    }
    let mut consumer = ring.subscriber("c").attach().unwrap();
    let mut first = Proc::spawn(&format!("produce {r} --count 1000000 --verifiable 7 --rate 1000"));
    wait_until("the producer to publish", || ring.next_sequence() > 2 * N + 5);
    first.kill();
    let cursor = ring.next_sequence();
    let mut second = ring.producer().expect("the dead producer's role passes on");
    assert_eq!(second.publish(&[9; 32]), Ok(cursor));
    let mut seen = Vec::new();
    while let Ok(m) = consumer.try_recv() {
        assert_eq!(m.len(), 32);
        seen.push(m.sequence());
    }
    assert_eq!(seen, (2 * N..=cursor).collect::<Vec<_>>());
}
