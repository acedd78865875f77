//! The journal on the simulated disk: appends and replays across segments, seeks, clean
//! reopens, retention, a full disk, failing syncs, corrupt and foreign files, and crash
//! images (`crash_images_lose_nothing_durable`, thousands of seeded power cuts between calls;
//! `power_cuts_during_syncs_lose_nothing_durable`, thousands in the middle of a sync).

use ringmq::journal::{
    CrashOptions, Disk, Durability, Journal, JournalOptions, JournalReader, Retention, Seek, SimDisk,
};
use ringmq::JournalError;
use std::sync::Arc;
use std::time::Duration;

/// Small segments, so a few hundred records cross several.
fn small() -> JournalOptions {
    JournalOptions {
        segment_size: 32 << 10,
        max_record: 3000,
        index_interval: 256,
        durability: Durability::EveryRecord,
        ..JournalOptions::default()
    }
}

/// The payload of record `sequence`: its length and bytes follow from the sequence, so a
/// replay can check each one alone.
fn payload(sequence: u64) -> Vec<u8> {
    let len = (sequence.wrapping_mul(2654435761) % 700) as usize;
    (0..len).map(|i| (sequence as usize * 31 + i) as u8).collect()
}

/// `small()` at page-cache durability.
fn page_cache() -> JournalOptions {
    JournalOptions {
        durability: Durability::PageCache,
        ..small()
    }
}

/// `small()` with group commit of at most 1000 records, at `delay`.
fn group_commit(delay: Duration) -> JournalOptions {
    JournalOptions {
        durability: Durability::GroupCommit {
            records: 1000,
            bytes: 1 << 20,
            delay,
        },
        ..small()
    }
}

/// A new journal on `disk` with records `0..count` appended.
fn with_records(disk: &SimDisk, options: JournalOptions, count: u64) -> Journal {
    let mut journal = open(disk, options).unwrap();
    for s in 0..count {
        journal.append(&payload(s)).unwrap();
    }
    journal
}

/// A new journal on `disk` with records `0..committed` appended and committed, then `more`
/// appended after them.
fn committed_then_appended(disk: &SimDisk, options: JournalOptions, committed: u64, more: u64) -> Journal {
    let mut journal = with_records(disk, options, committed);
    assert_eq!(journal.commit().unwrap(), committed);
    for s in committed..committed + more {
        journal.append(&payload(s)).unwrap();
    }
    journal
}

/// Asserts that a commit fails the journal with `durable` as its durable position.
fn commit_fails(journal: &mut Journal, durable: u64) {
    let result = journal.commit();
    assert!(
        matches!(result, Err(JournalError::Failed { durable: d, .. }) if d == durable),
        "{result:?}"
    );
}

/// The payload of `sequence` as writer incarnation `round` appends it: a record an earlier
/// incarnation left and a later one replaced reads differently.
fn payload_by(sequence: u64, round: u64) -> Vec<u8> {
    let mut p = payload(sequence);
    for b in &mut p {
        *b = b.wrapping_add((round as u8).wrapping_mul(101));
    }
    p
}

fn open(disk: &SimDisk, options: JournalOptions) -> Result<Journal, JournalError> {
    Journal::open_on(Arc::new(disk.clone()), options)
}

/// Every record from `from` on, checked against `payload`, returning how many.
fn check_replay(journal: &Journal, from: Seek, first: u64) -> u64 {
    let mut expected = first;
    for record in journal.replay(from).expect("replay") {
        let record = record.expect("a record that checks");
        assert_eq!(record.sequence, expected);
        assert_eq!(record.payload, payload(expected), "payload of {expected}");
        expected += 1;
    }
    assert_eq!(expected, journal.next_sequence(), "the replay stopped early");
    expected - first
}

#[test]
fn records_round_trip_across_segments_and_seeks_land_exactly() {
    let disk = SimDisk::new();
    let mut journal = open(&disk, small()).unwrap();
    for s in 0..400 {
        assert_eq!(journal.append(&payload(s)).unwrap(), s);
    }
    assert!(journal.segments() > 4, "only {} segments", journal.segments());
    assert_eq!(journal.durable(), 400);
    assert_eq!(check_replay(&journal, Seek::Earliest, 0), 400);
    for start in [0, 1, 57, 128, 255, 256, 399, 400] {
        check_replay(&journal, Seek::Sequence(start), start);
    }
    assert_eq!(check_replay(&journal, Seek::Latest, 400), 0);
    assert_eq!(
        journal.replay(Seek::Sequence(401)).err(),
        Some(JournalError::NotYet {
            requested: 401,
            next: 400
        })
    );
}

#[test]
fn a_seek_by_time_starts_at_the_first_record_appended_then() {
    let disk = SimDisk::new();
    let mut journal = open(&disk, small()).unwrap();
    for s in 0..150 {
        journal.append(&payload(s)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(5)); // Two clock readings apart, not a sync.
    let between = std::time::SystemTime::now();
    std::thread::sleep(Duration::from_millis(5));
    for s in 150..300 {
        journal.append(&payload(s)).unwrap();
    }
    check_replay(&journal, Seek::Time(between), 150);
    check_replay(&journal, Seek::Time(std::time::UNIX_EPOCH), 0);
}

#[test]
fn a_clean_reopen_continues_with_records_and_positions() {
    let disk = SimDisk::new();
    let options = JournalOptions {
        durability: Durability::default(),
        ..small()
    };
    let mut journal = open(&disk, options).unwrap();
    for s in 0..250 {
        journal.append(&payload(s)).unwrap();
    }
    journal.set_position("audit", 120).unwrap();
    journal.set_position("billing", 7).unwrap();
    journal.close().unwrap();
    let mut journal = open(&disk, options).unwrap();
    assert_eq!((journal.next_sequence(), journal.durable()), (250, 250));
    assert_eq!(journal.position("audit"), Some(120));
    assert_eq!(journal.position("billing"), Some(7));
    for s in 250..300 {
        assert_eq!(journal.append(&payload(s)).unwrap(), s);
    }
    journal.commit().unwrap();
    check_replay(&journal, Seek::Earliest, 0);
}

#[test]
fn a_second_writer_is_refused_while_the_first_lives() {
    let disk = SimDisk::new();
    let first = open(&disk, small()).unwrap();
    assert!(matches!(open(&disk, small()), Err(JournalError::Locked { .. })));
    drop(first);
    open(&disk, small()).unwrap();
}

#[test]
fn retention_deletes_whole_old_segments_by_each_policy() {
    for (retention, check) in [
        (
            Retention {
                max_segments: Some(3),
                ..Retention::default()
            },
            (|j: &Journal| assert_eq!(j.segments(), 3)) as fn(&Journal),
        ),
        (
            Retention {
                max_bytes: Some(4 * (32 << 10)),
                ..Retention::default()
            },
            |j: &Journal| assert_eq!(j.retained_bytes(), 4 * (32 << 10)),
        ),
    ] {
        let disk = SimDisk::new();
        let mut journal = open(&disk, JournalOptions { retention, ..small() }).unwrap();
        for s in 0..600 {
            journal.append(&payload(s)).unwrap();
        }
        check(&journal);
        assert_eq!(
            disk.list()
                .unwrap()
                .iter()
                .filter(|n| n.ends_with(".seg"))
                .count(),
            journal.segments()
        );
        let oldest = journal.oldest();
        assert!(oldest > 0);
        check_replay(&journal, Seek::Earliest, oldest);
        assert_eq!(
            journal.replay(Seek::Sequence(oldest - 1)).err(),
            Some(JournalError::Retained {
                requested: oldest - 1,
                oldest
            })
        );
    }
}

#[test]
fn retention_until_consumed_keeps_what_the_slowest_consumer_needs() {
    let disk = SimDisk::new();
    let retention = Retention {
        until_consumed: true,
        ..Retention::default()
    };
    let mut journal = open(&disk, JournalOptions { retention, ..small() }).unwrap();
    journal.set_position("slow", 0).unwrap();
    journal.set_position("fast", 0).unwrap();
    for s in 0..400 {
        journal.append(&payload(s)).unwrap();
        journal.set_position("fast", s + 1).unwrap();
    }
    assert_eq!(journal.oldest(), 0, "a segment went that \"slow\" still needs");
    journal.set_position("slow", 200).unwrap();
    journal.apply_retention().unwrap();
    let oldest = journal.oldest();
    assert!(oldest > 0 && oldest <= 200, "oldest {oldest}");
    check_replay(&journal, Seek::Sequence(200), 200);
}

#[test]
fn a_roll_renames_the_spare_allocated_ahead_and_a_dead_writers_spare_goes_at_open() {
    const SPARE: &str = "next.spare";
    let disk = SimDisk::new();
    let mut journal = open(&disk, small()).unwrap();
    let append = |journal: &mut Journal| {
        let next = journal.next_sequence();
        journal.append(&payload(next)).unwrap();
    };
    // No spare until the active segment is half full, then one (allocated inline: the
    // simulated disk keeps every call on the writer's thread).
    append(&mut journal);
    assert!(
        disk.contents(SPARE).is_none(),
        "a spare before the segment is half full"
    );
    while disk.contents(SPARE).is_none() {
        assert_eq!(journal.segments(), 1, "rolled before a spare was allocated");
        append(&mut journal);
    }
    assert!(disk.contents(SPARE).unwrap().iter().all(|&b| b == 0));
    // The roll takes it: the spare's name is gone and the new segment is there.
    while journal.segments() == 1 {
        append(&mut journal);
    }
    assert!(disk.contents(SPARE).is_none(), "the roll left its spare");
    let reader = JournalReader::open_on(Arc::new(disk.clone())).unwrap();
    assert_eq!(reader.segments(), 2);
    // A writer that dies with a spare allocated: readers pass it over, the next open removes it.
    while disk.contents(SPARE).is_none() {
        append(&mut journal);
    }
    let next = journal.next_sequence();
    drop(journal);
    let reader = JournalReader::open_on(Arc::new(disk.clone())).unwrap();
    assert_eq!(reader.segments(), 2, "a reader took the spare for a segment");
    let mut journal = open(&disk, small()).unwrap();
    assert!(
        disk.contents(SPARE).is_none(),
        "the open kept a dead writer's spare"
    );
    assert_eq!(journal.next_sequence(), next);
    check_replay(&journal, Seek::Earliest, 0);
    // A clean close removes its own.
    while disk.contents(SPARE).is_none() {
        append(&mut journal);
    }
    journal.close().unwrap();
    assert!(disk.contents(SPARE).is_none(), "the close left its spare");
}

#[test]
fn a_full_disk_is_no_space_at_a_roll_and_loses_nothing() {
    let disk = SimDisk::new();
    disk.set_capacity(Some(3 * (32 << 10)));
    let mut journal = open(&disk, small()).unwrap();
    let mut next = 0;
    let err = loop {
        match journal.append(&payload(next)) {
            Ok(s) => next = s + 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, JournalError::NoSpace { .. }), "{err:?}");
    assert_eq!(journal.durable(), next);
    check_replay(&journal, Seek::Earliest, 0);
    // Room again: the append that failed goes through.
    disk.set_capacity(None);
    assert_eq!(journal.append(&payload(next)).unwrap(), next);
    check_replay(&journal, Seek::Earliest, 0);
}

/// Appends reach the page cache (and readers) in batches: when a commit starts, by `flush`,
/// or when the handle drops.
#[test]
fn appends_are_written_in_batches() {
    let disk = SimDisk::new();
    let options = group_commit(Duration::from_secs(3600));
    let mut journal = with_records(&disk, options, 10);
    assert_eq!((journal.written(), journal.next_sequence()), (0, 10));
    assert_eq!(journal.replay(Seek::Earliest).unwrap().count(), 0);
    journal.flush().unwrap();
    assert_eq!(journal.written(), 10);
    check_replay(&journal, Seek::Earliest, 0);
    for s in 10..15 {
        journal.append(&payload(s)).unwrap();
    }
    assert_eq!(journal.commit().unwrap(), 15);
    assert_eq!(journal.written(), 15);
    journal.append(&payload(15)).unwrap();
    // A handle dropped without a close writes what it kept (and syncs nothing).
    drop(journal);
    let journal = open(&disk, options).unwrap();
    assert_eq!(journal.next_sequence(), 16);
    check_replay(&journal, Seek::Earliest, 0);
    drop(journal);
    let mut journal = open(&disk, page_cache()).unwrap();
    journal.append(&payload(16)).unwrap();
    assert_eq!(journal.written(), 16);
    journal.flush().unwrap();
    assert_eq!(journal.written(), 17);
}

/// A page-cache journal syncs behind its writer, which never waits for it: once 4096
/// records are unsynced, a sync starts on the syncer thread, and the durable position moves
/// with no commit asked for.
#[test]
fn a_page_cache_journal_writes_back_behind_the_writer() {
    let disk = SimDisk::new();
    let options = JournalOptions {
        segment_size: 4 << 20,
        ..page_cache()
    };
    let mut journal = open(&disk, options).unwrap();
    let record = [7u8; 16];
    for _ in 0..4095 {
        journal.append(&record).unwrap();
    }
    assert_eq!(
        journal.finish_sync().unwrap(),
        0,
        "nothing synced below the threshold"
    );
    journal.append(&record).unwrap();
    assert_eq!(journal.finish_sync().unwrap(), 4096, "the write-back's sync");
    assert_eq!(journal.written(), 4096, "written to the page cache first");
    // What it synced survives a power cut.
    drop(journal);
    let image = disk.crash(3, CrashOptions::default());
    assert!(open(&image, options).unwrap().next_sequence() >= 4096);
}

/// A write of buffered records that fails fails the journal: their sequences were handed
/// out, so nothing after them may be called durable; what was written before stays.
#[test]
fn a_failed_write_of_buffered_records_fails_the_journal() {
    let disk = SimDisk::new();
    let options = group_commit(Duration::from_secs(3600));
    let mut journal = committed_then_appended(&disk, options, 5, 3);
    disk.fail_writes_through_after(Some(0));
    commit_fails(&mut journal, 5);
    disk.fail_writes_through_after(None);
    assert!(matches!(journal.append(b"x"), Err(JournalError::Failed { .. })));
    assert!(matches!(journal.flush(), Err(JournalError::Failed { .. })));
    assert_eq!(journal.durable(), 5);
    drop(journal);
    // The records whose write failed are not there; the durable ones are.
    let journal = open(&disk, options).unwrap();
    assert_eq!(journal.next_sequence(), 5);
    check_replay(&journal, Seek::Earliest, 0);
}

/// An open after the writer's process died leaves the records it found unsynced (the open
/// would otherwise wait for their write-back), but bytes it cut off past them are zeroed
/// durably before it returns: the next writer writes its records over that place, and a
/// power cut that kept a record of it but not the zeros after it would splice the cut bytes
/// on.
#[test]
fn an_open_makes_the_zeros_over_a_cut_tail_durable() {
    const JUNK_AT: u64 = 20 << 10;
    let options = page_cache();
    for seed in 0..64 {
        let disk = SimDisk::new();
        drop(with_records(&disk, options, 5));
        // What a dead writer's torn record leaves past the end, in the page cache alone.
        let names = disk.list().unwrap();
        let segment = names.iter().find(|n| n.ends_with(".seg")).expect("a segment");
        let file = disk.open(segment).unwrap();
        file.write_at(JUNK_AT, &[0xA5; 100]).unwrap();
        let journal = open(&disk, options).unwrap();
        assert_eq!(journal.next_sequence(), 5);
        drop(journal);
        let image = disk.crash(seed, CrashOptions::default());
        let mut junk = [0u8; 100];
        image.open(segment).unwrap().read_at(JUNK_AT, &mut junk).unwrap();
        assert_eq!(
            junk, [0; 100],
            "seed {seed}: the cut bytes came back after a power cut"
        );
        assert_eq!(open(&image, options).unwrap().next_sequence(), 5, "seed {seed}");
    }
}

#[test]
fn a_failed_sync_fails_the_journal_and_acknowledges_nothing_more() {
    let disk = SimDisk::new();
    let options = JournalOptions {
        durability: Durability::PageCache,
        ..small()
    };
    let mut journal = committed_then_appended(&disk, options, 10, 10);
    disk.fail_syncs_after(Some(0));
    commit_fails(&mut journal, 10);
    // Syncs work again, but the dropped writes are gone: the journal stays failed.
    disk.fail_syncs_after(None);
    assert!(matches!(journal.commit(), Err(JournalError::Failed { .. })));
    assert!(matches!(journal.append(b"x"), Err(JournalError::Failed { .. })));
    assert_eq!(journal.durable(), 10);
    drop(journal);
    // What is on the disk is at least what was durable.
    let image = disk.crash(1, CrashOptions::default());
    let journal = open(&image, options).unwrap();
    assert!(journal.next_sequence() >= 10);
    check_replay(&journal, Seek::Earliest, 0);
}

#[test]
fn a_batch_ended_with_nothing_more_coming_is_synced_on_the_writer_s_thread() {
    let disk = SimDisk::new();
    let options = group_commit(Duration::ZERO);
    let mut journal = open(&disk, options).unwrap();
    journal.set_batching(true);
    // Batching: appends start no sync; ending the batch with nothing more coming syncs it
    // before returning, whatever the syncer thread is doing.
    for s in 0..5 {
        journal.append(&payload(s)).unwrap();
    }
    assert_eq!(journal.durable(), 0);
    assert_eq!(journal.end_batch(false).unwrap(), 5);
    // With more coming, the sync goes to the syncer; its result is taken later.
    for s in 5..8 {
        journal.append(&payload(s)).unwrap();
    }
    journal.end_batch(true).unwrap();
    assert_eq!(journal.finish_sync().unwrap(), 8);
    // A failed sync on the writer's thread fails the journal as one on the syncer does.
    journal.append(&payload(8)).unwrap();
    disk.fail_syncs_after(Some(0));
    assert!(matches!(
        journal.end_batch(false),
        Err(JournalError::Failed { durable: 8, .. })
    ));
    assert!(matches!(journal.append(b"x"), Err(JournalError::Failed { .. })));
    drop(journal);
    let image = disk.crash(2, CrashOptions::default());
    let journal = open(&image, options).unwrap();
    assert!(journal.next_sequence() >= 8);
    check_replay(&journal, Seek::Earliest, 0);
}

#[test]
fn a_page_cache_journal_s_position_slots_never_overwrite_the_last_synced_one() {
    let options = page_cache();
    for seed in 0..100 {
        let disk = SimDisk::new();
        let mut journal = with_records(&disk, options, 10);
        journal.commit().unwrap();
        // Positions moved twice: two unsynced slots, written when their delay has passed
        // (then nothing is left uncommitted but the records). Enough of them that a slot
        // spans several sectors, so a crash can tear one.
        for round in 0..3 {
            journal.append(&payload(10 + round)).unwrap();
            for c in 0..24 {
                let name = format!("a-consumer-with-a-rather-long-name-{c:02}");
                journal.set_position(&name, 3 + round).unwrap();
            }
            while journal.uncommitted() {
                journal.poll_commit().unwrap();
                std::thread::yield_now();
            }
        }
        let image = disk.crash(seed, CrashOptions::default());
        drop(journal);
        // The slot of the last commit is whole whatever the crash tore.
        let journal = open(&image, options).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(journal.next_sequence() >= 10, "seed {seed}");
        check_replay(&journal, Seek::Earliest, 0);
    }
}

#[test]
fn foreign_and_truncated_files_are_typed_errors() {
    let disk = SimDisk::new();
    disk.create("notes.txt", 10).unwrap();
    assert!(matches!(open(&disk, small()), Err(JournalError::Foreign { .. })));

    let disk = SimDisk::new();
    let f = disk.create("00000000000000000000.seg", 32 << 10).unwrap();
    f.write_at(0, b"PK\x03\x04 definitely a zip file").unwrap();
    assert!(matches!(open(&disk, small()), Err(JournalError::Foreign { .. })));

    let disk = SimDisk::new();
    let mut journal = open(&disk, small()).unwrap();
    for s in 0..200 {
        journal.append(&payload(s)).unwrap();
    }
    drop(journal);
    // A segment cut short: copy the first one into a shorter file of the same name.
    let first = disk.contents("00000000000000000000.seg").unwrap();
    disk.remove("00000000000000000000.seg").unwrap();
    let short = disk.create("00000000000000000000.seg", 16 << 10).unwrap();
    short.write_at(0, &first[..16 << 10]).unwrap();
    assert!(matches!(open(&disk, small()), Err(JournalError::Corrupt { .. })));
}

#[test]
fn a_flipped_byte_below_the_durable_position_is_a_media_error_never_a_truncation() {
    let disk = SimDisk::new();
    let mut journal = open(&disk, small()).unwrap();
    for s in 0..40 {
        journal.append(&payload(s)).unwrap();
    }
    drop(journal);
    let name = "00000000000000000000.seg";
    // A payload byte of a committed record in the active segment (record 0's payload
    // starts at 12288 + 32); a header byte of another.
    for (offset, what) in [(12288 + 40, "payload"), (12288 + 8, "sequence")] {
        let image = disk.crash(7, CrashOptions::default());
        let old = image.contents(name).unwrap()[offset];
        image.corrupt(name, offset as u64, &[old ^ 0x20]);
        match open(&image, small()) {
            // The payload flip is found by the replay (below the durable position the
            // open walks headers only) ...
            Ok(journal) => {
                assert_eq!(journal.next_sequence(), 40, "{what}: truncated");
                let err = journal.replay(Seek::Earliest).unwrap().find_map(Result::err);
                assert!(
                    matches!(err, Some(JournalError::Corrupt { .. })),
                    "{what}: {err:?}"
                );
            }
            // ... the header flip by the open.
            Err(e) => assert!(matches!(e, JournalError::Corrupt { .. }), "{what}: {e:?}"),
        }
    }
}

#[test]
fn a_lost_header_or_record_below_the_durable_position_is_corrupt_to_the_writer_and_readers() {
    // Records in three segments, closed cleanly: every one durable, the last slot says so.
    let fresh = || {
        let disk = SimDisk::new();
        with_records(&disk, small(), 200).close().unwrap();
        let mut names = disk.list().unwrap();
        names.sort();
        assert!(names.len() >= 3, "{names:?}");
        (disk, names)
    };
    let corrupt = |r: Result<u64, JournalError>, what: &str| match r {
        Err(JournalError::Corrupt { .. }) => {}
        other => panic!("{what}: {other:?}"),
    };
    let reader = |disk: &SimDisk| JournalReader::open_on(Arc::new(disk.clone())).map(|r| r.next_sequence());
    let writer = |disk: &SimDisk| open(disk, small()).map(|j| j.next_sequence());

    // The last segment's header page lost: its records are not a roll cut short.
    let (disk, names) = fresh();
    disk.corrupt(names.last().unwrap(), 0, &[0; 4096]);
    corrupt(reader(&disk), "reader, last header");
    corrupt(writer(&disk), "writer, last header");

    // A header lost in the middle: no reader skips the segment and reads on past a gap.
    let (disk, names) = fresh();
    disk.corrupt(&names[1], 0, &[0; 4096]);
    corrupt(reader(&disk), "reader, middle header");
    corrupt(writer(&disk), "writer, middle header");

    // A record below the durable position in the last segment: the reader does not take the
    // records before it for all there is.
    let (disk, names) = fresh();
    disk.corrupt(names.last().unwrap(), 12288 + 4, &[0xff; 4]);
    corrupt(reader(&disk), "reader, a record's CRC");
    // (The writer's open walks the records below the durable position by their headers; its
    // replay checks them.)
    let journal = open(&disk, small()).unwrap();
    let err = journal.replay(Seek::Earliest).unwrap().find_map(Result::err);
    assert!(
        matches!(err, Some(JournalError::Corrupt { .. })),
        "writer, a record's CRC: {err:?}"
    );
}

#[test]
fn a_sealed_segment_whose_records_are_not_the_footer_s_is_corrupt_to_a_whole_read() {
    let disk = SimDisk::new();
    let journal = with_records(&disk, small(), 300);
    let first = journal.replay(Seek::Earliest).unwrap().count();
    assert_eq!(first, 300, "every record read back before the change");
    assert!(journal.segments() > 2, "several segments");
    drop(journal);
    let mut names = disk.list().unwrap();
    names.sort();
    let second_segment = names[1].clone();
    // The first segment's footer, its checksum over the records' CRCs changed and the
    // footer's own CRC made right again: a footer that decodes, over records that check one
    // by one, which are not the ones it was sealed with.
    let name = "00000000000000000000.seg";
    let bytes = disk.contents(name).unwrap();
    let at = bytes.len() - 64;
    let mut footer = bytes[at..].to_vec();
    footer[48] ^= 1;
    let crc = crc32c::crc32c(&footer[..56]);
    footer[56..60].copy_from_slice(&crc.to_le_bytes());
    disk.corrupt(name, at as u64, &footer);

    let journal = open(&disk, small()).unwrap();
    let err = journal.replay(Seek::Earliest).unwrap().find_map(Result::err);
    match err {
        Some(JournalError::Corrupt { segment, .. }) => assert_eq!(segment, name),
        other => panic!("a whole read of the first segment: {other:?}"),
    }
    // A read that starts past the segment's first record cannot tell, and reads on; one that
    // starts in the next segment never looks.
    let from_second: u64 = second_segment.trim_end_matches(".seg").parse().unwrap();
    assert!(journal
        .replay(Seek::Sequence(from_second))
        .unwrap()
        .all(|r| r.is_ok()));
    assert!(journal
        .replay(Seek::Sequence(from_second - 1))
        .unwrap()
        .all(|r| r.is_ok()));
    drop(journal);
    let reader = JournalReader::open_on(Arc::new(disk.clone())).unwrap();
    let err = reader.replay(Seek::Earliest).unwrap().find_map(Result::err);
    assert!(matches!(err, Some(JournalError::Corrupt { .. })), "{err:?}");
}

/// A xorshift generator from `seed`: `rand(n)` is below `n`.
fn seeded(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    }
}

/// Small segments at a random durability (a group commit that starts only by its size or
/// an explicit commit, so that runs depend on the seed alone).
fn random_options(rand: &mut impl FnMut(u64) -> u64) -> JournalOptions {
    let durability = match rand(3) {
        0 => Durability::EveryRecord,
        1 => Durability::GroupCommit {
            records: 1 + rand(20),
            bytes: 1 << 20,
            delay: Duration::from_secs(3600),
        },
        _ => Durability::PageCache,
    };
    // A third of the runs keep two or three segments: retired ones are recycled into new
    // ones, so crashes also land in the middle of a recycling.
    let retention = Retention {
        max_segments: (rand(3) == 0).then(|| 2 + rand(2) as usize),
        ..Retention::default()
    };
    JournalOptions {
        durability,
        retention,
        ..small()
    }
}

/// Retention deletes whole segments and never more than its count allows: a journal that
/// lost its first records to it holds at least the segments it keeps.
fn check_kept(journal: &Journal, options: &JournalOptions, context: &str) {
    if let Some(kept) = options.retention.max_segments {
        assert!(
            journal.oldest() == 0 || journal.segments() >= kept,
            "{context}: {} segments kept of {kept}, from {}",
            journal.segments(),
            journal.oldest()
        );
    }
}

/// One seeded run: a random workload on a fresh disk, a crash at a random point, recovery,
/// more work and so on, three times; after each, every acknowledged record and position is
/// checked. The first two crashes are each a power cut or the writer's process dying (the
/// page cache kept, with what it had not written back), the last a power cut, which so also
/// finds what an open after a process crash left unsynced. Panics (naming the seed) on any
/// loss.
fn crash_run(seed: u64) {
    let mut rand = seeded(seed);
    let options = random_options(&mut rand);
    let crash = CrashOptions {
        tear: rand(4) != 0,
        lose_names: rand(4) != 0,
    };
    let mut disk = SimDisk::new();
    // What the writer was told is durable: records below `acked`, and positions.
    let mut acked = 0u64;
    let mut acked_positions: Vec<(String, u64)> = Vec::new();
    // The round that appended each sequence of the history the journal holds.
    let mut written: Vec<u64> = Vec::new();
    for round in 0..3 {
        let mut journal =
            open(&disk, options).unwrap_or_else(|e| panic!("seed {seed} round {round}: open: {e}"));
        let ops = rand(250);
        let mut positions = acked_positions.clone();
        // The positions set before the append that made the journal's end `n`: a sync that
        // covers `n` started after them, so its state slot holds them (or later ones).
        let mut set_before_end = std::collections::BTreeMap::new();
        // An open leaves the records it found past the durable position uncommitted: the
        // first sync of the round covers them with the positions it found.
        set_before_end.insert(journal.next_sequence(), positions.clone());
        for _ in 0..ops {
            let durable_before = journal.durable();
            let committed = match rand(20) {
                0 => {
                    journal.commit().unwrap();
                    true
                }
                1 => {
                    // A consumer's position only moves forward.
                    let name = format!("c{}", rand(3));
                    let position =
                        rand(journal.next_sequence() + 1).max(journal.position(&name).unwrap_or(0));
                    journal.set_position(&name, position).unwrap();
                    positions.retain(|(n, _)| *n != name);
                    positions.push((name, position));
                    false
                }
                _ => {
                    let s = journal.next_sequence();
                    set_before_end.insert(s + 1, positions.clone());
                    journal.append(&payload_by(s, round)).unwrap();
                    written.truncate(s as usize);
                    written.push(round);
                    false
                }
            };
            // An explicit commit persisted every position set before it; a sync that moved
            // the durable position to `d`, those set before `d` was appended.
            if committed {
                acked_positions = positions.clone();
            } else if journal.durable() > durable_before {
                acked_positions = set_before_end[&journal.durable()].clone();
            }
            acked = acked.max(journal.durable());
            if std::env::var("RINGMQ_CRASH_TRACE").is_ok() {
                eprintln!("committed {committed} durable {} next {} segs {} positions {positions:?} acked {acked_positions:?}", journal.durable(), journal.next_sequence(), journal.segments());
            }
        }
        // A group commit's sync in flight finishes first, so the image depends on the seed
        // alone (a sync that had not returned is, to the disk, one not yet run).
        journal.finish_sync().unwrap();
        let power_cut = round == 2 || rand(2) == 0;
        let appended = journal.next_sequence();
        if power_cut {
            disk = disk.crash(seed ^ ((round + 1) * 0x1234_5678), crash);
        }
        drop(journal);
        let journal =
            open(&disk, options).unwrap_or_else(|e| panic!("seed {seed} round {round}: reopen: {e}"));
        assert!(
            journal.next_sequence() >= acked,
            "seed {seed} round {round}: lost durable records: {} < {acked}",
            journal.next_sequence()
        );
        if !power_cut {
            assert_eq!(
                journal.next_sequence(),
                appended,
                "seed {seed} round {round}: a process crash lost records in the page cache"
            );
        }
        check_kept(&journal, &options, &format!("seed {seed} round {round}"));
        let mut expected = journal.oldest();
        for record in journal.replay(Seek::Earliest).unwrap() {
            let record = record.unwrap_or_else(|e| panic!("seed {seed} round {round}: replay: {e}"));
            assert_eq!(record.sequence, expected, "seed {seed}");
            let by = *written
                .get(expected as usize)
                .unwrap_or_else(|| panic!("seed {seed} round {round}: record {expected} was never appended"));
            assert_eq!(
                record.payload,
                payload_by(expected, by),
                "seed {seed} round {round}: record {expected} is not the one round {by} appended"
            );
            expected += 1;
        }
        assert_eq!(expected, journal.next_sequence(), "seed {seed}");
        written.truncate(expected as usize);
        for (name, position) in &acked_positions {
            let got = journal.position(name);
            assert!(
                got.is_some_and(|g| g >= (*position).min(journal.next_sequence())),
                "seed {seed} round {round}: position of {name}: {got:?}, acknowledged {position}"
            );
        }
        if power_cut {
            // What a crash image holds is the new disk's durable image.
            acked = journal.next_sequence();
            acked_positions = journal.positions().map(|(n, p)| (n.to_owned(), p)).collect();
        } else {
            // The page cache's records and positions past the durable ones are not durable
            // because the open found them.
            acked = acked.max(journal.durable());
        }
    }
}

/// One seeded run of a power cut *during* a sync (a seal's, a commit's, a roll's): appends
/// and commits until the cut stops the journal, then a crash image of that moment, reopened:
/// nothing acknowledged durable lost, every record delivered checks, no error.
fn power_cut_run(seed: u64) {
    let mut rand = seeded(seed);
    let options = random_options(&mut rand);
    let disk = SimDisk::new();
    let mut journal = open(&disk, options).unwrap();
    disk.cut_power_after_syncs(Some(rand(60)));
    let mut acked = 0;
    for _ in 0..400 {
        let result = if rand(25) == 0 {
            journal.commit().map(drop)
        } else {
            let s = journal.next_sequence();
            journal.append(&payload(s)).map(drop)
        };
        acked = acked.max(journal.durable());
        if result.is_err() {
            break;
        }
    }
    let _ = journal.finish_sync();
    acked = acked.max(journal.durable());
    let image = disk.crash(seed, CrashOptions::default());
    drop(journal);
    let journal = open(&image, options).unwrap_or_else(|e| panic!("seed {seed}: reopen: {e}"));
    assert!(
        journal.next_sequence() >= acked,
        "seed {seed}: lost durable records: {} < {acked}",
        journal.next_sequence()
    );
    check_kept(&journal, &options, &format!("seed {seed}"));
    let mut expected = journal.oldest();
    for record in journal.replay(Seek::Earliest).unwrap() {
        let record = record.unwrap_or_else(|e| panic!("seed {seed}: replay: {e}"));
        assert_eq!(
            (record.sequence, record.payload),
            (expected, &payload(expected)[..]),
            "seed {seed}"
        );
        expected += 1;
    }
    assert_eq!(expected, journal.next_sequence(), "seed {seed}");
}

#[test]
fn power_cuts_during_syncs_lose_nothing_durable() {
    let base: u64 = std::env::var("RINGMQ_CRASH_SEED").map_or(0, |s| s.parse().expect("a seed"));
    let count: u64 = std::env::var("RINGMQ_CUT_IMAGES").map_or(2000, |s| s.parse().expect("a count"));
    for seed in base..base + count {
        power_cut_run(seed);
    }
}

#[test]
fn crash_images_lose_nothing_durable() {
    let base: u64 = std::env::var("RINGMQ_CRASH_SEED").map_or(0, |s| s.parse().expect("a seed"));
    let count: u64 = std::env::var("RINGMQ_CRASH_IMAGES").map_or(5000, |s| s.parse().expect("a count"));
    for seed in base..base + count {
        crash_run(seed);
    }
}
