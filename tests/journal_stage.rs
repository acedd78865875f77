//! The journal as a stage of a ring: everything published reaches the journal once, in order;
//! durable-only consumers never see a message before it is durable; a stage stopped and
//! started again neither loses nor repeats a record; a failed sync stops the stage with a
//! typed error while the ring keeps the messages; skipped slots stay in the sequence.

use ringmq::journal::{
    Disk, Durability, Journal, JournalOptions, JournalReader, JournalStage, JournalSubscriber, Seek, SimDisk,
    FLAG_SKIPPED, STAGE_CONSUMER,
};
use ringmq::{JournalError, PublishError, Ring, Start};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Option<Duration> = Some(Duration::from_secs(30));

fn options() -> JournalOptions {
    options_with(Duration::from_millis(1))
}

/// Small segments and group commit with `delay`. At a zero delay the stage syncs on its own
/// thread when the ring has nothing more, and through the syncer thread when it has.
fn options_with(delay: Duration) -> JournalOptions {
    JournalOptions {
        segment_size: 64 << 10,
        max_record: 4096,
        index_interval: 512,
        durability: Durability::GroupCommit {
            records: 64,
            bytes: 1 << 20,
            delay,
        },
        ..JournalOptions::default()
    }
}

/// The group commit delays the stage tests run with.
const DELAYS: [Duration; 2] = [Duration::ZERO, Duration::from_millis(1)];

fn message(i: u64) -> Vec<u8> {
    format!("message {i}").into_bytes()
}

/// The journal's records, read back after the stage stopped: (sequence, flags, payload).
fn journaled(disk: &SimDisk) -> Vec<(u64, u32, Vec<u8>)> {
    let journal = Journal::open_on(Arc::new(disk.clone()), options()).unwrap();
    let records = journal
        .replay(Seek::Earliest)
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (r.sequence, r.flags, r.payload.to_vec())
        })
        .collect();
    records
}

#[test]
fn every_message_is_journaled_once_in_order_and_confirmed_durable() {
    for delay in DELAYS {
        let ring = Ring::builder().capacity(256).slot_size(64).build().unwrap();
        let disk = SimDisk::new();
        let stage = JournalStage::spawn_on(&ring, Arc::new(disk.clone()), options_with(delay)).unwrap();
        let mut producer = ring.producer().unwrap();
        for i in 0..2000 {
            let s = producer
                .publish_timeout(&message(i), Duration::from_secs(30))
                .unwrap();
            assert_eq!(s, i);
        }
        let durable = stage.wait_durable(1999, WAIT).unwrap();
        assert!(durable >= 2000);
        assert!(stage.durable() >= 2000);
        stage.stop().unwrap();
        let records = journaled(&disk);
        assert_eq!(records.len(), 2000);
        for (i, (s, flags, payload)) in records.into_iter().enumerate() {
            assert_eq!((s, flags, payload), (i as u64, 0, message(i as u64)));
        }
    }
}

#[test]
fn a_durable_only_consumer_never_sees_a_message_before_it_is_durable() {
    for delay in DELAYS {
        let ring = Ring::builder().capacity(64).slot_size(64).build().unwrap();
        let disk = SimDisk::new();
        // Slow syncs, so messages sit published but not durable for a while.
        disk.set_sync_delay(Duration::from_millis(2));
        let stage =
            Arc::new(JournalStage::spawn_on(&ring, Arc::new(disk.clone()), options_with(delay)).unwrap());
        let mut audit = ring
            .subscriber("audit")
            .after([STAGE_CONSUMER])
            .start(Start::Earliest)
            .attach()
            .unwrap();
        let mut producer = ring.producer().unwrap();
        let watcher = stage.clone();
        let reader = std::thread::spawn(move || {
            for i in 0..300u64 {
                let m = audit
                    .recv_timeout(Duration::from_secs(30))
                    .expect("a durable message");
                assert_eq!((m.sequence(), &*m), (i, &message(i)[..]));
                // The barrier let it through, so the stage's position had passed it.
                let durable = watcher.durable();
                assert!(
                    durable > i,
                    "sequence {i} delivered with the durable position at {durable}"
                );
            }
        });
        for i in 0..300 {
            producer
                .publish_timeout(&message(i), Duration::from_secs(30))
                .unwrap();
        }
        reader.join().unwrap();
        let stage = Arc::try_unwrap(stage).expect("the reader is done with it");
        assert!(stage.durable() >= 300);
        stage.stop().unwrap();
    }
}

#[test]
fn a_restarted_stage_neither_loses_nor_repeats() {
    let ring = Ring::builder().capacity(128).slot_size(64).build().unwrap();
    let disk = SimDisk::new();
    let mut producer = ring.producer().unwrap();
    let mut next = 0;
    for _round in 0..4 {
        let stage = JournalStage::spawn_on(&ring, Arc::new(disk.clone()), options()).unwrap();
        for _ in 0..500 {
            producer
                .publish_timeout(&message(next), Duration::from_secs(30))
                .unwrap();
            next += 1;
        }
        // Stopped with messages perhaps still unread: the next stage takes them.
        stage.stop().unwrap();
    }
    // Messages published while no stage runs wait in the ring: its position gates them, so
    // the ring fills up (with what the last stage left unread) and stays full.
    while producer.try_publish(&message(next)).is_ok() {
        next += 1;
    }
    assert_eq!(producer.try_publish(b"x"), Err(PublishError::Full));
    let stage = JournalStage::spawn_on(&ring, Arc::new(disk.clone()), options()).unwrap();
    stage.wait_durable(next - 1, WAIT).unwrap();
    stage.stop().unwrap();
    let records = journaled(&disk);
    let sequences: Vec<u64> = records.iter().map(|r| r.0).collect();
    assert_eq!(sequences, (0..next).collect::<Vec<_>>());
    assert!(records.iter().all(|(s, _, p)| *p == message(*s)));
}

#[test]
fn a_failed_sync_stops_the_stage_and_the_ring_keeps_the_messages() {
    for delay in DELAYS {
        let ring = Ring::builder().capacity(64).slot_size(64).build().unwrap();
        let disk = SimDisk::new();
        let stage = JournalStage::spawn_on(&ring, Arc::new(disk.clone()), options_with(delay)).unwrap();
        let mut producer = ring.producer().unwrap();
        producer.publish(&message(0)).unwrap();
        stage.wait_durable(0, WAIT).unwrap();
        disk.fail_syncs_after(Some(0));
        producer.publish(&message(1)).unwrap();
        let err = stage.wait_durable(1, WAIT).unwrap_err();
        assert!(matches!(err, JournalError::Failed { durable: 1, .. }), "{err:?}");
        assert_eq!(stage.durable(), 1, "a failed sync moved the durable position");
        // The stage still gates: the ring fills and stays full.
        let mut published = 0;
        while producer.try_publish(b"more").is_ok() {
            published += 1;
        }
        assert_eq!(published, 63, "the ring did not keep the undurable messages");
        assert_eq!(producer.try_publish(b"more"), Err(PublishError::Full));
        assert!(matches!(stage.stop(), Err(JournalError::Failed { .. })));
    }
}

#[test]
fn a_skipped_slot_is_a_skipped_record() {
    let ring = Ring::builder().capacity(64).slot_size(64).build().unwrap();
    let disk = SimDisk::new();
    let stage = JournalStage::spawn_on(&ring, Arc::new(disk.clone()), options()).unwrap();
    let mut producer = ring.producer().unwrap();
    producer.publish(&message(0)).unwrap();
    // A claim dropped by a panic is published skipped.
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _claim = producer.try_claim_slot().unwrap();
        panic!("dropped while writing");
    }));
    assert!(panicked.is_err());
    producer.publish(&message(2)).unwrap();
    stage.wait_durable(2, WAIT).unwrap();
    stage.stop().unwrap();
    let records = journaled(&disk);
    assert_eq!(
        records,
        vec![(0, 0, message(0)), (1, FLAG_SKIPPED, vec![]), (2, 0, message(2))]
    );
}

#[test]
fn a_journal_ahead_of_its_ring_is_refused() {
    let disk = SimDisk::new();
    let mut journal = Journal::open_on(Arc::new(disk.clone()), options()).unwrap();
    for i in 0..10 {
        journal.append(&message(i)).unwrap();
    }
    journal.close().unwrap();
    // A ring made anew (a machine crash took /dev/shm) at 0, not at the journal's end.
    let ring = Ring::builder().capacity(64).slot_size(64).build().unwrap();
    let err = JournalStage::spawn_on(&ring, Arc::new(disk.clone()), options()).unwrap_err();
    assert!(
        matches!(err, JournalError::RingMismatch { journal_end: 10, .. }),
        "{err:?}"
    );
    // Made at the journal's end, it works.
    let ring = Ring::builder()
        .capacity(64)
        .slot_size(64)
        .initial_sequence(10)
        .build()
        .unwrap();
    let stage = JournalStage::spawn_on(&ring, Arc::new(disk.clone()), options()).unwrap();
    ring.producer().unwrap().publish(&message(10)).unwrap();
    stage.wait_durable(10, WAIT).unwrap();
}

#[test]
fn a_reader_follows_the_writer_across_rolls_and_retention() {
    let disk = SimDisk::new();
    let options = JournalOptions {
        retention: ringmq::Retention {
            max_segments: Some(4),
            ..ringmq::Retention::default()
        },
        ..options()
    };
    let mut journal = Journal::open_on(Arc::new(disk.clone()), options).unwrap();
    let mut reader = JournalReader::open_on(Arc::new(disk.clone())).unwrap();
    assert_eq!(reader.next_sequence(), 0);
    let mut next = 0u64;
    for round in 0..20 {
        for _ in 0..100 {
            journal.append(&big(next)).unwrap();
            next += 1;
        }
        // What the writer has written (durable or not) is what the reader finds: with syncs,
        // a batch of appends is written when a commit starts, or by a flush.
        assert_eq!(reader.refresh().unwrap(), journal.written(), "round {round}");
        journal.flush().unwrap();
        assert_eq!(journal.written(), next);
        assert_eq!(reader.refresh().unwrap(), next, "round {round}");
        let oldest = reader.oldest();
        assert_eq!(oldest, journal.oldest(), "round {round}");
        let mut expected = oldest;
        for record in reader.replay(Seek::Earliest).unwrap() {
            let record = record.unwrap();
            assert_eq!((record.sequence, record.payload), (expected, &big(expected)[..]));
            expected += 1;
        }
        assert_eq!(expected, next);
    }
    assert!(journal.oldest() > 0, "retention never ran");

    fn big(i: u64) -> Vec<u8> {
        message(i).repeat(40)
    }
}

/// Refreshes `reader` until `done` says so, failing (with the positions) after 30 s.
fn wait_for(reader: &mut JournalReader, what: &str, done: impl Fn(&JournalReader) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done(reader) {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: {:?}",
            reader.positions().collect::<Vec<_>>()
        );
        std::thread::yield_now();
        reader.refresh().unwrap();
    }
}

/// A ring of 64 slots with a stage, and `n` messages published and durable: most of that
/// history is only in the journal.
fn with_history(n: u64) -> (Ring, SimDisk, JournalStage, ringmq::Producer) {
    let ring = Ring::builder().capacity(64).slot_size(64).build().unwrap();
    let disk = SimDisk::new();
    let stage = JournalStage::spawn_on(&ring, Arc::new(disk.clone()), options()).unwrap();
    let mut producer = ring.producer().unwrap();
    for i in 0..n {
        producer
            .publish_timeout(&message(i), Duration::from_secs(30))
            .unwrap();
    }
    stage.wait_durable(n - 1, WAIT).unwrap();
    (ring, disk, stage, producer)
}

#[test]
fn a_journal_subscriber_replays_history_then_continues_live_with_no_gap_or_duplicate() {
    let (ring, disk, stage, mut producer) = with_history(1000);
    let reader = JournalReader::open_on(Arc::new(disk.clone())).unwrap();
    let mut subscriber = JournalSubscriber::with_reader(&ring, reader, "history", Seek::Earliest).unwrap();
    // More published while it replays: it must find each in the journal or in the ring.
    let publisher = std::thread::spawn(move || {
        for i in 1000..3000 {
            producer
                .publish_timeout(&message(i), Duration::from_secs(30))
                .unwrap();
        }
        producer
    });
    let mut expected = 0;
    while expected < 3000 {
        subscriber
            .poll_with(256, Duration::from_secs(30), |s, payload| {
                assert_eq!(
                    (s, payload),
                    (expected, &message(expected)[..]),
                    "a gap or a duplicate"
                );
                expected += 1;
            })
            .unwrap();
    }
    // Caught up with the journal, it goes live (it may have read everything from the
    // journal so far, if the stage kept ahead of it), and takes the next message from the ring.
    let mut producer = publisher.join().unwrap();
    let mut none = 0;
    while !subscriber.is_live() {
        none += subscriber
            .poll_with(1, Duration::from_millis(1), |_, _| ())
            .unwrap();
    }
    assert_eq!(none, 0, "a message past the end");
    producer.publish(&message(3000)).unwrap();
    let got = subscriber
        .poll_with(1, Duration::from_secs(30), |s, payload| {
            assert_eq!((s, payload), (3000, &message(3000)[..]));
        })
        .unwrap();
    assert_eq!(got, 1);
    // From the middle of the history: 777 on, then nothing more.
    let reader = JournalReader::open_on(Arc::new(disk.clone())).unwrap();
    let mut late = JournalSubscriber::with_reader(&ring, reader, "late", Seek::Sequence(777)).unwrap();
    let mut expected = 777;
    while expected < 3001 {
        late.poll_with(1000, Duration::from_secs(30), |s, _| {
            assert_eq!(s, expected);
            expected += 1;
        })
        .unwrap();
    }
    assert_eq!(
        late.poll_with(10, Duration::from_millis(20), |s, _| panic!(
            "{s} delivered twice"
        ))
        .unwrap(),
        0
    );
    stage.stop().unwrap();
}

#[test]
fn a_page_cache_stage_confirms_without_syncing_and_closes_with_a_sync() {
    let ring = Ring::builder().capacity(64).slot_size(64).build().unwrap();
    let disk = SimDisk::new();
    let page_cache = JournalOptions {
        durability: Durability::PageCache,
        ..options()
    };
    let stage = JournalStage::spawn_on(&ring, Arc::new(disk.clone()), page_cache).unwrap();
    // Every sync from now on fails: a page-cache stage must confirm without one.
    disk.fail_syncs_after(Some(0));
    let mut producer = ring.producer().unwrap();
    // More than a lap: the producers are gated by the stage's position, which must move.
    for i in 0..500 {
        producer
            .publish_timeout(&message(i), Duration::from_secs(30))
            .unwrap();
    }
    assert!(stage.wait_durable(499, WAIT).unwrap() >= 500);
    // Closing syncs, and that sync fails: the stage says so.
    assert!(matches!(stage.stop(), Err(JournalError::Failed { .. })));
}

#[test]
fn acknowledgements_made_while_no_message_comes_are_persisted() {
    let ring = Ring::builder().capacity(64).slot_size(64).build().unwrap();
    let disk = SimDisk::new();
    let stage = JournalStage::spawn_on(&ring, Arc::new(disk.clone()), options()).unwrap();
    let mut producer = ring.producer().unwrap();
    for i in 0..40 {
        producer.publish(&message(i)).unwrap();
    }
    stage.wait_durable(39, WAIT).unwrap();
    let mut audit = ring
        .subscriber("audit")
        .durable(true)
        .start(Start::Sequence(0))
        .attach()
        .unwrap();
    let mut taken = 0;
    while taken < 25 {
        taken += audit
            .poll_timeout(25 - taken, Duration::from_secs(30))
            .unwrap()
            .sequences()
            .count();
    }
    // Nothing is published any more; the stage must still persist the new position.
    let mut reader = JournalReader::open_on(Arc::new(disk.clone())).unwrap();
    wait_for(&mut reader, "audit's position committed", |r| {
        r.position("audit") == Some(25)
    });
    stage.stop().unwrap();
}

#[test]
fn a_stage_whose_journal_is_ahead_of_its_ring_entry_reads_on_from_the_journal_s_end() {
    // A stage that died after a sync and before publishing it: the ring entry says 0, the
    // journal holds 0..100.
    let ring = Ring::builder().capacity(64).slot_size(64).build().unwrap();
    let disk = SimDisk::new();
    drop(
        ring.subscriber(STAGE_CONSUMER)
            .durable(true)
            .start(Start::Sequence(0))
            .attach()
            .unwrap(),
    );
    let mut producer = ring.producer().unwrap();
    let mut journal = Journal::open_on(Arc::new(disk.clone()), options()).unwrap();
    for i in 0..64 {
        producer.publish(&message(i)).unwrap();
        journal.append(&message(i)).unwrap();
    }
    journal.close().unwrap();
    let stage = JournalStage::spawn_on(&ring, Arc::new(disk.clone()), options()).unwrap();
    // More than a lap past the journal's end: the producer overwrites the slots below it,
    // which the stage must not wait for.
    for i in 64..400 {
        producer
            .publish_timeout(&message(i), Duration::from_secs(30))
            .unwrap();
    }
    assert!(stage.wait_durable(399, WAIT).unwrap() >= 400);
    stage.stop().unwrap();
    let records = journaled(&disk);
    assert_eq!(records.len(), 400);
    for (i, (s, flags, payload)) in records.into_iter().enumerate() {
        assert_eq!((s, flags, payload), (i as u64, 0, message(i as u64)));
    }
}

#[test]
fn messages_larger_than_a_slot_are_journaled_as_fragments_and_replayed_whole() {
    use ringmq::Fragment;
    // 4 KiB slots; messages up to 1 MiB (256 fragments) in a ring of 512 slots.
    const SLOT: usize = 4096;
    let ring = Ring::builder().capacity(512).slot_size(SLOT + 8).build().unwrap();
    let disk = SimDisk::new();
    let stage = JournalStage::spawn_on(
        &ring,
        Arc::new(disk.clone()),
        JournalOptions {
            segment_size: 8 << 20,
            max_record: 1 << 20,
            ..options()
        },
    )
    .unwrap();
    let mut producer = ring.producer().unwrap();
    // Sizes across the boundaries, the largest a whole 1 MiB, between small ones: the ring
    // laps several times, so the early messages are only in the journal.
    let sizes: Vec<usize> = (0..60)
        .map(|i| match i % 6 {
            0 => 10,
            1 => SLOT,
            2 => SLOT + 1,
            3 => 1 << 20,
            4 => 3 * SLOT - 7,
            _ => 100 * SLOT + 5,
        })
        .collect();
    let body = |i: usize| -> Vec<u8> { (0..sizes[i]).map(|k| (k * 7 + i) as u8).collect() };
    let mut ends = Vec::new();
    for i in 0..sizes.len() {
        ends.push(
            producer
                .publish_large_timeout(&body(i), Duration::from_secs(30))
                .unwrap(),
        );
    }
    let last = *ends.last().unwrap();
    stage.wait_durable(last, WAIT).unwrap();

    // The records are the slots, fragment flags and all.
    let reader = JournalReader::open_on(Arc::new(disk.clone())).unwrap();
    let first_large = ends[0] + 2; // message 1 is one whole slot; message 2 is two fragments
    let pieces: Vec<_> = reader
        .replay(Seek::Sequence(first_large))
        .unwrap()
        .take(2)
        .map(|r| r.unwrap().fragment())
        .collect();
    assert_eq!(pieces, [Some(Fragment::First), Some(Fragment::Last)]);

    // A journal subscriber from the start gets every message whole, under its last
    // fragment's sequence, across the journal and the ring.
    let mut subscriber = JournalSubscriber::with_reader(&ring, reader, "history", Seek::Earliest).unwrap();
    let mut got = 0;
    while got < sizes.len() {
        subscriber
            .poll_with(4, Duration::from_secs(30), |sequence, payload| {
                assert_eq!(sequence, ends[got], "message {got}");
                assert!(payload == body(got), "message {got} differs");
                got += 1;
            })
            .unwrap();
    }
    // Live now (or soon): the next large message comes from the ring, whole, though it
    // has more fragments than one look at the ring takes in.
    let longest: Vec<u8> = (0..300 * SLOT).map(|k| (k * 13) as u8).collect();
    let next = producer.publish_large(&longest).unwrap();
    let mut live = 0;
    while live == 0 {
        live = subscriber
            .poll_with(1, Duration::from_secs(30), |sequence, payload| {
                assert_eq!(sequence, next);
                assert!(payload == longest);
            })
            .unwrap();
    }

    // From the middle of a large message: it is passed over, the next one comes whole.
    let reader = JournalReader::open_on(Arc::new(disk.clone())).unwrap();
    let mid = ends[3] - 10;
    let mut late = JournalSubscriber::with_reader(&ring, reader, "late", Seek::Sequence(mid)).unwrap();
    let mut first = None;
    while first.is_none() {
        late.poll_with(1, Duration::from_secs(30), |sequence, payload| {
            first = Some((sequence, payload.len()));
        })
        .unwrap();
    }
    assert_eq!(first, Some((ends[4], sizes[4])));
    stage.stop().unwrap();
}

#[test]
fn a_durable_journal_subscriber_s_replay_progress_is_committed_and_resumed() {
    let (ring, disk, stage, _producer) = with_history(1000);
    // 300 messages of the history read, then the process "dies" (the handle is dropped
    // without going live: it is not in the ring).
    let reader = JournalReader::open_on(Arc::new(disk.clone())).unwrap();
    let mut history = JournalSubscriber::with_reader(&ring, reader, "history", Seek::Earliest)
        .unwrap()
        .durable(true);
    let mut expected = 0;
    while expected < 300 {
        history
            .poll_with((300 - expected) as usize, Duration::from_secs(30), |s, _| {
                assert_eq!(s, expected);
                expected += 1;
            })
            .unwrap();
    }
    assert!(!history.is_live());
    drop(history);
    // The stage commits the progress with the journal's positions, and holds it across
    // its own restart.
    let mut reader = JournalReader::open_on(Arc::new(disk.clone())).unwrap();
    wait_for(&mut reader, "the progress committed", |r| {
        r.position("history") == Some(300)
    });
    stage.stop().unwrap();
    let stage = JournalStage::spawn_on(&ring, Arc::new(disk.clone()), options()).unwrap();
    let reader = JournalReader::open_on(Arc::new(disk.clone())).unwrap();
    let resume = reader.position("history").expect("a persisted position");
    assert_eq!(resume, 300);
    // Its restart resumes there and reads on into the live stream; once live, the ring's
    // entry carries the position and the progress file goes.
    let mut history = JournalSubscriber::with_reader(&ring, reader, "history", Seek::Sequence(resume))
        .unwrap()
        .durable(true);
    let mut expected = 300;
    while !history.is_live() || expected < 1000 {
        history
            .poll_with(100, Duration::from_millis(10), |s, _| {
                assert_eq!(s, expected, "a gap or a duplicate");
                expected += 1;
            })
            .unwrap();
    }
    assert!(
        disk.list().unwrap().iter().all(|name| !name.ends_with(".reader")),
        "the progress file outlived the replay"
    );
    assert!(ring.consumers().iter().any(|c| c.name == "history" && c.durable));
    stage.stop().unwrap();
}

#[test]
fn a_consumer_that_leaves_is_forgotten_and_one_not_seen_yet_is_kept() {
    let ring = Ring::builder().capacity(64).slot_size(64).build().unwrap();
    let disk = SimDisk::new();
    // A position from before this ring: its consumer has not come back yet.
    let mut journal = Journal::open_on(Arc::new(disk.clone()), options()).unwrap();
    journal.set_position("old", 0).unwrap();
    journal.close().unwrap();
    let stage = JournalStage::spawn_on(&ring, Arc::new(disk.clone()), options()).unwrap();
    let mut audit = ring
        .subscriber("audit")
        .durable(true)
        .start(Start::Earliest)
        .attach()
        .unwrap();
    let mut producer = ring.producer().unwrap();
    for i in 0..10 {
        producer.publish(&message(i)).unwrap();
    }
    let mut taken = 0;
    while taken < 10 {
        taken += audit
            .poll_timeout(10, Duration::from_secs(30))
            .unwrap()
            .sequences()
            .count();
    }
    let mut reader = JournalReader::open_on(Arc::new(disk.clone())).unwrap();
    wait_for(&mut reader, "audit's position committed", |r| {
        r.position("audit") == Some(10)
    });
    // It unsubscribes: its position goes with a later commit; "old" stays.
    audit.unsubscribe();
    wait_for(&mut reader, "audit forgotten", |r| r.position("audit").is_none());
    assert_eq!(reader.position("old"), Some(0));
    stage.stop().unwrap();
    let reader = JournalReader::open_on(Arc::new(disk.clone())).unwrap();
    assert_eq!(reader.positions().collect::<Vec<_>>(), [("old", 0)]);
}
