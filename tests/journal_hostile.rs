//! Journal files damaged at random (bit rot, a hostile or careless writer, a tool that wrote
//! over them): opening the journal, reading it and writing on after the damage give records as
//! they were appended or typed errors; never a panic, and never a record that was not appended.
//! The damage lands in every part of a segment: its header, its state slots, its records, its
//! index and its footer.

use proptest::prelude::*;
use ringmq::journal::{Disk, Durability, Journal, JournalOptions, JournalReader, Replay, Seek, SimDisk};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// Small segments, so a few hundred records cross several.
fn options(durability: u8) -> JournalOptions {
    JournalOptions {
        segment_size: 32 << 10,
        max_record: 3000,
        index_interval: 256,
        durability: match durability {
            0 => Durability::PageCache,
            1 => Durability::EveryRecord,
            _ => Durability::GroupCommit {
                records: 16,
                bytes: 1 << 20,
                delay: Duration::ZERO,
            },
        },
        ..JournalOptions::default()
    }
}

/// Record `sequence`'s payload: its length and bytes follow from the sequence.
fn payload(sequence: u64) -> Vec<u8> {
    let len = (sequence.wrapping_mul(2654435761) % 700) as usize;
    (0..len).map(|i| (sequence as usize * 7 + i) as u8).collect()
}

const PAGE: usize = 4096;

/// One piece of damage: which segment file, which part of it (0 the header page, 1 the state
/// slots, 2 the records, 3 the last page: index and footer), where in that part, and the
/// bytes written there.
type Damage = (usize, u8, u32, Vec<u8>);

fn damage() -> impl Strategy<Value = Damage> {
    (
        0usize..8,
        0u8..4,
        any::<u32>(),
        prop_oneof![
            prop::collection::vec(any::<u8>(), 1..48),
            // A single flipped bit, as bit rot leaves.
            (0u8..8).prop_map(|bit| vec![1u8 << bit]),
            // Zeros, as a file cut short and extended again reads.
            (1usize..600).prop_map(|n| vec![0; n]),
            // A whole page of zeros (written at a page boundary): a page the disk lost.
            Just(vec![0; PAGE]),
        ],
    )
}

/// Reads `replay` to its end or its first error: every record read is the one appended
/// with its sequence, and the sequences follow each other from `first`.
fn check(replay: Replay<'_>, first: u64, context: &str) {
    for (expected, record) in (first..).zip(replay) {
        let Ok(record) = record else { return };
        assert_eq!(record.sequence, expected, "{context}: a sequence out of order");
        assert_eq!(
            record.payload,
            &payload(record.sequence)[..],
            "{context}: record {expected} is not the one appended"
        );
    }
}

/// Every way into the records a reader has: from the oldest, from a sequence in the middle
/// (by the sparse index), from a time.
fn read_every_way<'a>(replay: impl Fn(Seek) -> Option<Replay<'a>>, oldest: u64, next: u64, context: &str) {
    for (seek, first) in [
        (Seek::Earliest, oldest),
        (
            Seek::Sequence(oldest + (next - oldest) / 2),
            oldest + (next - oldest) / 2,
        ),
    ] {
        if let Some(replay) = replay(seek) {
            check(replay, first, context);
        }
    }
    // From a time: where it lands depends on the damaged index; every record read is still
    // one appended.
    if let Some(replay) = replay(Seek::Time(UNIX_EPOCH + Duration::from_secs(1))) {
        let start = replay.next_sequence();
        check(replay, start, context);
    }
}

fn damaged_run(records: u64, durability: u8, clean: bool, damages: Vec<Damage>) {
    let disk = SimDisk::new();
    let mut journal = Journal::open_on(Arc::new(disk.clone()), options(durability)).unwrap();
    for s in 0..records {
        journal.append(&payload(s)).unwrap();
    }
    if clean {
        journal.close().unwrap();
    } else {
        journal.commit().unwrap();
        drop(journal);
    }
    let mut names = disk.list().unwrap();
    names.sort();
    for (file, part, at, bytes) in &damages {
        let name = &names[file % names.len()];
        let len = disk.contents(name).unwrap().len() as u64;
        let (start, end) = match part {
            0 => (0, 4096),
            1 => (4096, 12288),
            2 => (12288, len - 4096),
            _ => (len - 4096, len),
        };
        let room = (end - start).saturating_sub(bytes.len() as u64).max(1);
        let mut offset = (start + u64::from(*at) % room).min(len - bytes.len() as u64);
        if bytes.len() == PAGE {
            offset -= offset % PAGE as u64;
        }
        disk.corrupt(name, offset, bytes);
    }
    let context = format!("{records} records, durability {durability}, clean {clean}, damage {damages:?}");

    // Every record was committed, and a clean close wrote a state slot that says so: one
    // piece of damage can only make the open or a read fail, never lose a record quietly.
    // (Past the durable position a slot names, a bad record is the end of what a crash
    // left; two pieces of damage, one in the newest slot, can make records that.)
    let all_found = clean && damages.len() == 1;

    // A reader first (it writes nothing), then a writer, which may cut a tail and write on.
    if let Ok(reader) = JournalReader::open_on(Arc::new(disk.clone())) {
        if all_found {
            assert_eq!(
                reader.next_sequence(),
                records,
                "{context}: a reader lost records"
            );
        }
        read_every_way(
            |seek| reader.replay(seek).ok(),
            reader.oldest(),
            reader.next_sequence(),
            &context,
        );
    }
    let Ok(mut journal) = Journal::open_on(Arc::new(disk.clone()), options(durability)) else {
        return;
    };
    let next = journal.next_sequence();
    assert!(
        next <= records,
        "{context}: the open found records never appended"
    );
    if all_found {
        assert_eq!(next, records, "{context}: the open lost records");
    }
    for s in next..next + 50 {
        if journal.append(&payload(s)).is_err() {
            break;
        }
    }
    let _ = journal.commit();
    read_every_way(
        |seek| journal.replay(seek).ok(),
        journal.oldest(),
        journal.written(),
        &context,
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, .. ProptestConfig::default() })]

    #[test]
    fn damaged_files_give_the_records_appended_or_typed_errors(
        records in 1u64..400,
        durability in 0u8..3,
        clean in any::<bool>(),
        damages in prop::collection::vec(damage(), 1..5),
    ) {
        damaged_run(records, durability, clean, damages);
    }
}
