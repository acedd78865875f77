//! The journal through the `ringmq` binary, with real processes killed with SIGKILL: the
//! journal stage, producers and a durable consumer killed at random points, round after round
//! (every durably-acknowledged message stays in the journal, once, in order; the durable
//! consumer resumes where it acknowledged), and every process of a journal stopped and started
//! again, with the ring kept and with the ring made anew from the journal.
#![cfg(not(loom))]

#[path = "../src/bin/ringmq/verify.rs"]
#[allow(dead_code)]
mod verify;

mod common;

use common::cli::{assert_success, run, wait_until, Proc, ShmRing};
use ringmq::journal::{JournalReader, Seek, FLAG_SKIPPED, STAGE_CONSUMER};
use ringmq::Ring;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Whether a live stage is attached (so it has its signal handlers: the CLI sets them first).
fn stage_alive(ring: &Ring) -> bool {
    ring.consumers()
        .iter()
        .any(|c| c.name == STAGE_CONSUMER && c.alive)
}

fn position(ring: &Ring, name: &str) -> Option<u64> {
    ring.consumers().into_iter().find(|c| c.name == name)?.sequence
}

/// A journal record: its sequence, and (producer, counter) unless it is a skipped slot.
type Entry = (u64, Option<(u32, u64)>);

/// Every record of the journal in `dir`, checked: sequences from the oldest kept with no gap,
/// payloads verifiable, each producer's counters consecutive (from 0 in a journal that kept
/// everything; a producer killed between claim and publish leaves a skipped record and
/// publishes nothing after it).
fn journal(dir: &Path, context: &str) -> Vec<Entry> {
    let reader = JournalReader::open(dir).unwrap_or_else(|e| panic!("{context}: open: {e}"));
    let oldest = reader.oldest();
    let mut next_counter: HashMap<u32, u64> = HashMap::new();
    let mut entries = Vec::new();
    for (i, record) in reader.replay(Seek::Earliest).unwrap().enumerate() {
        let record = record.unwrap_or_else(|e| panic!("{context}: record {i}: {e}"));
        if record.sequence != oldest + i as u64 {
            let files: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            let verified = run(&format!("verify-journal {}", dir.display()));
            panic!(
                "{context}: a gap in the sequences: record {i} is {}; files {files:?}; {}{}",
                record.sequence,
                String::from_utf8_lossy(&verified.stdout),
                String::from_utf8_lossy(&verified.stderr)
            );
        }
        if record.flags & FLAG_SKIPPED != 0 {
            entries.push((record.sequence, None));
            continue;
        }
        let (id, counter, _) =
            verify::read(record.payload).unwrap_or_else(|| panic!("{context}: record {i} does not verify"));
        // Retention may have taken a producer's first messages.
        let expected = next_counter
            .entry(id)
            .or_insert(if oldest == 0 { 0 } else { counter });
        assert_eq!(counter, *expected, "{context}: producer {id} out of order at {i}");
        *expected += 1;
        entries.push((record.sequence, Some((id, counter))));
    }
    entries
}

/// The run's seed: `RINGMQ_KILL_SEED`, or one from the clock; printed, so that a failure
/// can be run again.
fn kill_seed() -> u64 {
    let seed = std::env::var("RINGMQ_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("RINGMQ_KILL_SEED={seed}");
    seed
}

/// A small deterministic generator, seeded per run (the seed is printed on failure).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn processes_killed_at_random_lose_no_durable_message_and_the_durable_consumer_resumes() {
    const ROUNDS: u64 = 30;
    const PER_PRODUCER: u64 = 20_000;
    let seed = kill_seed();
    let mut rng = Rng(seed);
    let ring_file = ShmRing::new("jkill");
    let r = ring_file.arg();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    assert_success(&run(&format!("create {r} --capacity 256 --slot-size 64")));
    let ring = Ring::open(&ring_file.0).unwrap();
    // Small segments and a short group commit delay: rolls, seals and syncs all the time.
    let stage_line = format!("journal {r} {d} --segment-size 65536 --max-record 4096 --group-delay-us 200");
    let consumer_line = format!("consume {r} --name dur --durable --from earliest --journal {d}");
    let mut stage = Proc::spawn(&stage_line);
    wait_until("the stage", || stage_alive(&ring));
    let mut consumer = Proc::spawn(&consumer_line);
    wait_until("the consumer", || position(&ring, "dur").is_some());
    let mut snapshot: Vec<Entry> = Vec::new();
    let mut stage_kills = 0;
    for round in 0..ROUNDS {
        let context = format!("seed {seed} round {round}");
        let start = ring.next_sequence();
        let mut producer = Proc::spawn(&format!(
            "produce {r} --count {PER_PRODUCER} --verifiable {round} --wait block --json"
        ));
        // A random point in the producer's run, found by watching the ring.
        let target = start + 1 + rng.below(PER_PRODUCER - 1);
        let deadline = Instant::now() + Duration::from_secs(60);
        while ring.next_sequence() < target && !producer.exited() {
            if Instant::now() > deadline {
                panic!(
                    "{context}: stuck before {target}: {:?}; stage {}; consumer {}",
                    ring.consumers(),
                    stage.status(),
                    consumer.status()
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        // Kill one, two or all three kinds of process; the producer most of the time.
        let victims = 1 + rng.below(7);
        if victims & 1 != 0 {
            producer.stop();
        }
        if victims & 2 != 0 {
            stage.kill();
            stage_kills += 1;
            // Everything the dead stage called durable is in the journal, and what an earlier
            // look found there is still there, unchanged.
            let durable = position(&ring, STAGE_CONSUMER).expect("the stage's entry is kept");
            let now = journal(dir.path(), &context);
            assert!(
                now.len() as u64 >= durable,
                "{context}: {} records, durable {durable}",
                now.len()
            );
            assert_eq!(
                now[..snapshot.len()],
                snapshot[..],
                "{context}: the journal's past changed"
            );
            snapshot = now;
            stage = Proc::spawn(&stage_line);
        }
        if victims & 4 != 0 {
            consumer.kill();
            consumer = Proc::spawn(&consumer_line);
        }
        producer.stop();
    }
    assert!(
        stage_kills > 0 || ROUNDS < 4,
        "seed {seed}: the stage was never killed"
    );
    // A last producer runs to its end; everything published becomes durable.
    let mut last = Proc::spawn(&format!(
        "produce {r} --count {PER_PRODUCER} --verifiable {ROUNDS} --wait block --json"
    ));
    assert_eq!(last.json()["published"], PER_PRODUCER);
    let end = ring.next_sequence();
    wait_until("everything durable", || {
        position(&ring, STAGE_CONSUMER) == Some(end)
    });
    let all = journal(dir.path(), &format!("seed {seed} at the end"));
    assert_eq!(all.len() as u64, end);
    assert_eq!(all[..snapshot.len()], snapshot[..]);
    // The durable consumer, killed where it is and started again, resumes where it
    // acknowledged and reads the rest with no gap and no duplicate.
    consumer.kill();
    let resume = position(&ring, "dur").expect("the durable entry is kept");
    let rest = all[resume as usize..].iter().filter(|e| e.1.is_some()).count();
    if rest > 0 {
        let mut again = Proc::spawn(&format!(
            "consume {r} --name dur --durable --journal {d} --count {rest} --verify --json"
        ));
        let summary = again.json();
        let first = all[resume as usize..].iter().find(|e| e.1.is_some()).unwrap().0;
        assert_eq!(summary["first_sequence"], first, "seed {seed}: {summary}");
        assert_eq!(summary["last_sequence"], end - 1, "seed {seed}: {summary}");
        for field in ["out_of_order", "gaps", "duplicates", "corrupt"] {
            assert_eq!(summary[field], 0, "seed {seed}: {field}: {summary}");
        }
    }
    stage.terminate();
    let verified = run(&format!("--json verify-journal {d}"));
    assert_success(&verified);
    let verified: Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(verified["records"], end, "{verified}");
}

#[test]
fn every_process_stopped_and_started_again_resumes_durable_subscribers_and_groups() {
    const N: u64 = 3_000;
    let ring_file = ShmRing::new("jrestart");
    let r = ring_file.arg();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    assert_success(&run(&format!("create {r} --capacity 4096 --slot-size 64")));
    let ring = Ring::open(&ring_file.0).unwrap();
    let mut stage = Proc::spawn(&format!("journal {r} {d}"));
    wait_until("the stage", || stage_alive(&ring));
    // A durable subscriber and a group attach, then the producer publishes N.
    let mut sub = Proc::spawn(&format!(
        "consume {r} --name dur --durable --from earliest --count 1000 --json"
    ));
    let mut worker = Proc::spawn(&format!(
        "consume {r} --group g --name w1 --durable --from earliest --count 1200 --json"
    ));
    wait_until("both consumers", || {
        position(&ring, "dur").is_some() && position(&ring, "g").is_some()
    });
    let mut producer = Proc::spawn(&format!(
        "produce {r} --count {N} --verifiable 1 --wait block --json"
    ));
    assert_eq!(producer.json()["published"], N);
    assert_eq!(sub.json()["received"], 1000);
    assert_eq!(worker.json()["received"], 1200);
    // Everything stops once all is durable: the stage cleanly (it persists the positions as
    // it closes).
    wait_until("everything durable", || {
        position(&ring, STAGE_CONSUMER) == Some(N)
    });
    stage.terminate();
    let reader = JournalReader::open(dir.path()).unwrap();
    assert_eq!(reader.next_sequence(), N);
    assert_eq!(reader.position("dur"), Some(1000));
    assert_eq!(reader.position("g"), Some(1200));

    // Started again with the ring kept: each resumes where it acknowledged.
    let mut stage = Proc::spawn(&format!("journal {r} {d}"));
    wait_until("the stage", || stage_alive(&ring));
    let summary = Proc::spawn(&format!(
        "consume {r} --name dur --durable --count 500 --verify --json"
    ))
    .json();
    assert_eq!(summary["first_sequence"], 1000, "{summary}");
    let summary = Proc::spawn(&format!(
        "consume {r} --group g --name w1 --durable --count 1300 --json"
    ))
    .json();
    assert_eq!(summary["first_sequence"], 1200, "{summary}");
    assert_eq!(summary["last_sequence"], 2499, "{summary}");
    stage.terminate();

    // Started again with the ring lost (a machine restart) and made anew for the journal:
    // the durable subscriber resumes from the journal at its persisted position and reads
    // on into the ring's new messages with no gap and no duplicate; the group, 500 messages
    // behind the journal's end, finds them in the new ring and resumes where it was.
    let reader = JournalReader::open(dir.path()).unwrap();
    assert_eq!(reader.position("dur"), Some(1500));
    assert_eq!(reader.position("g"), Some(2500));
    assert_eq!(reader.groups().collect::<Vec<_>>(), [("g", 2500)]);
    drop(ring);
    assert_success(&run(&format!("rm {r}")));
    let created = run(&format!(
        "--json create {r} --capacity 4096 --slot-size 64 --journal {d}"
    ));
    assert_success(&created);
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(created["initial_sequence"], 2500, "{created}");
    assert_eq!(created["groups"][0]["name"], "g", "{created}");
    let ring = Ring::open(&ring_file.0).unwrap();
    assert_eq!(ring.next_sequence(), N);
    let mut stage = Proc::spawn(&format!("journal {r} {d}"));
    wait_until("the stage", || stage_alive(&ring));
    let mut sub = Proc::spawn(&format!(
        "consume {r} --name dur --durable --journal {d} --count {} --verify --json",
        N - 1500 + 100
    ));
    let mut worker = Proc::spawn(&format!(
        "consume {r} --group g --name w2 --durable --journal {d} --count 600 --verify --json"
    ));
    wait_until("the group", || position(&ring, "g").is_some());
    let mut producer = Proc::spawn(&format!(
        "produce {r} --count 100 --verifiable 2 --wait block --json"
    ));
    assert_eq!(producer.json()["published"], 100);
    let summary = worker.json();
    assert_eq!(summary["first_sequence"], 2500, "{summary}");
    assert_eq!(summary["last_sequence"], N + 99, "{summary}");
    for field in ["out_of_order", "gaps", "duplicates", "corrupt"] {
        assert_eq!(summary[field], 0, "{field}: {summary}");
    }
    let summary = sub.json();
    assert_eq!(summary["first_sequence"], 1500, "{summary}");
    assert_eq!(summary["last_sequence"], N + 99, "{summary}");
    for field in ["out_of_order", "gaps", "duplicates", "corrupt"] {
        assert_eq!(summary[field], 0, "{field}: {summary}");
    }
    stage.terminate();
}

#[test]
fn messages_larger_than_a_slot_go_through_the_cli_ring_and_journal_whole() {
    const N: u64 = 200;
    const FRAGMENTS: u64 = 20; // 20,000 bytes in 1016-byte payloads
    let ring_file = ShmRing::new("jlarge");
    let r = ring_file.arg();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    assert_success(&run(&format!("create {r} --capacity 256 --slot-size 1024")));
    let ring = Ring::open(&ring_file.0).unwrap();
    let mut stage = Proc::spawn(&format!("journal {r} {d}"));
    wait_until("the stage", || stage_alive(&ring));
    let mut live = Proc::spawn(&format!(
        "consume {r} --name big --large --from earliest --count {N} --verify --json"
    ));
    // Two workers of a group share the messages, each whole at one of them.
    let mut workers: Vec<Proc> = ["w1", "w2"]
        .iter()
        .map(|w| {
            Proc::spawn(&format!(
                "consume {r} --group bigg --name {w} --large --from earliest --timeout 3 --verify --json"
            ))
        })
        .collect();
    wait_until("the subscriber and the group", || {
        position(&ring, "big").is_some() && position(&ring, "bigg").is_some()
    });
    let mut producer = Proc::spawn(&format!(
        "produce {r} --count {N} --size 20000 --verifiable 1 --wait block --json"
    ));
    assert_eq!(producer.json()["published"], N);
    let last = N * FRAGMENTS - 1;
    let mut shared = 0;
    for worker in &mut workers {
        let summary = worker.json();
        for field in ["duplicates", "corrupt"] {
            assert_eq!(summary[field], 0, "{field}: {summary}");
        }
        shared += summary["received"].as_u64().unwrap();
    }
    assert_eq!(shared, N, "the group's workers received {shared} of {N}");
    for summary in [
        live.json(),
        // The ring has lapped many times: the history is the journal's.
        Proc::spawn(&format!(
            "consume {r} --name hist --journal {d} --from earliest --count {N} --verify --json"
        ))
        .json(),
    ] {
        assert_eq!(summary["received"], N, "{summary}");
        assert_eq!(summary["last_sequence"], last, "{summary}");
        for field in ["out_of_order", "gaps", "duplicates", "corrupt"] {
            assert_eq!(summary[field], 0, "{field}: {summary}");
        }
    }
    // Without --large, a subscriber is told what it met.
    let output = run(&format!(
        "consume {r} --name plain --from earliest --count 1 --timeout 5"
    ));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("consume with --large"), "{stderr}");
    // Too large for the ring: a typed refusal, nothing published.
    let output = run(&format!("produce {r} --count 1 --size 300000"));
    assert!(!output.status.success());
    assert_eq!(ring.next_sequence(), N * FRAGMENTS);
    stage.terminate();
}

/// The stage of a journal that keeps three segments, so that it recycles one at every roll,
/// killed at random points: after each kill the journal holds a contiguous run of records up
/// to at least the durable position, every one of them whole and in order, and the stage that
/// replaces it goes on from there.
#[test]
fn a_stage_killed_while_it_recycles_segments_leaves_whole_records() {
    const ROUNDS: u64 = 12;
    const PER_PRODUCER: u64 = 20_000;
    let seed = kill_seed();
    let mut rng = Rng(seed);
    let ring_file = ShmRing::new("jrecycle");
    let r = ring_file.arg();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    assert_success(&run(&format!("create {r} --capacity 256 --slot-size 64")));
    let ring = Ring::open(&ring_file.0).unwrap();
    let stage_line = format!(
        "journal {r} {d} --segment-size 65536 --max-record 4096 --group-delay-us 200 --retain-segments 3"
    );
    let mut stage = Proc::spawn(&stage_line);
    wait_until("the stage", || stage_alive(&ring));
    let mut rolled_past = 0;
    for round in 0..ROUNDS {
        let context = format!("seed {seed} round {round}");
        let start = ring.next_sequence();
        let mut producer = Proc::spawn(&format!(
            "produce {r} --count {PER_PRODUCER} --verifiable {round} --wait block --json"
        ));
        let target = start + 1 + rng.below(PER_PRODUCER - 1);
        wait_until(&format!("{context}: message {target}"), || {
            ring.next_sequence() >= target || producer.exited()
        });
        stage.kill();
        let durable = position(&ring, STAGE_CONSUMER).expect("the stage's entry is kept");
        let kept = journal(dir.path(), &context);
        let end = kept.last().map_or(0, |e| e.0 + 1);
        assert!(
            end >= durable,
            "{context}: the journal ends at {end}, durable {durable}"
        );
        if kept.first().is_some_and(|e| e.0 > 0) {
            rolled_past += 1;
        }
        stage = Proc::spawn(&stage_line);
        producer.stop();
    }
    assert!(rolled_past > 0, "seed {seed}: retention never took a segment");
    let mut last = Proc::spawn(&format!(
        "produce {r} --count {PER_PRODUCER} --verifiable {ROUNDS} --wait block --json"
    ));
    assert_eq!(last.json()["published"], PER_PRODUCER);
    let end = ring.next_sequence();
    wait_until("everything durable", || {
        position(&ring, STAGE_CONSUMER) == Some(end)
    });
    let kept = journal(dir.path(), &format!("seed {seed} at the end"));
    assert_eq!(kept.last().map(|e| e.0 + 1), Some(end), "seed {seed}");
    stage.terminate();
    assert_success(&run(&format!("verify-journal {d}")));
}
