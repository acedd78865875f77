//! `journal` (a ring's journal stage, until SIGTERM or SIGINT), `verify-journal` (every
//! record's CRC and sequence), and the journal part of `stat`.

use super::{print_json, Failure};
use ringmq::journal::{
    Durability, JournalOptions, JournalReader, JournalStage, Retention, Seek, STAGE_CONSUMER,
};
use ringmq::{JournalError, Ring};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

impl From<JournalError> for Failure {
    fn from(e: JournalError) -> Self {
        Failure(e.to_string(), 1)
    }
}

/// The `journal` command's settings.
#[derive(clap::Args, Debug)]
pub(super) struct StageArgs {
    /// group (fdatasync per group of records), every (per record), page-cache (none).
    #[arg(long, default_value = "group")]
    pub durability: String,
    /// Bytes per segment file.
    #[arg(long, default_value_t = 64 << 20)]
    pub segment_size: u64,
    /// The largest record (default: 1 MiB, or the ring's largest message if larger).
    #[arg(long)]
    pub max_record: Option<usize>,
    /// Group commit: records per sync at most.
    #[arg(long, default_value_t = 4096)]
    pub group_records: u64,
    /// Group commit: bytes per sync at most.
    #[arg(long, default_value_t = 1 << 20)]
    pub group_bytes: u64,
    /// Group commit: the longest a record waits before its sync starts, in microseconds (0: as
    /// soon as the sync in flight returns).
    #[arg(long, default_value_t = 0)]
    pub group_delay_us: u64,
    /// Retention: keep at most this many bytes of segments.
    #[arg(long)]
    pub retain_bytes: Option<u64>,
    /// Retention: keep at most this many segments.
    #[arg(long)]
    pub retain_segments: Option<usize>,
    /// Retention: delete segments whose newest record is older than this many seconds.
    #[arg(long)]
    pub retain_age: Option<f64>,
    /// Retention: delete segments every durable subscriber and group has passed.
    #[arg(long)]
    pub until_consumed: bool,
    /// Remove the segments retention retires, rather than making them the next segments.
    #[arg(long)]
    pub no_recycle: bool,
}

impl StageArgs {
    fn options(&self, ring: &Ring) -> Result<JournalOptions, Failure> {
        let durability = match self.durability.as_str() {
            "group" => Durability::GroupCommit {
                records: self.group_records,
                bytes: self.group_bytes,
                delay: Duration::from_micros(self.group_delay_us),
            },
            "every" => Durability::EveryRecord,
            "page-cache" => Durability::PageCache,
            other => {
                return Err(Failure(
                    format!("--durability {other:?}: expected group, every or page-cache"),
                    2,
                ))
            }
        };
        Ok(JournalOptions {
            segment_size: self.segment_size,
            max_record: self.max_record.unwrap_or((1 << 20).max(ring.max_message_len())),
            durability,
            retention: Retention {
                max_bytes: self.retain_bytes,
                max_segments: self.retain_segments,
                max_age: self.retain_age.map(Duration::from_secs_f64),
                until_consumed: self.until_consumed,
            },
            recycle: !self.no_recycle,
            ..JournalOptions::default()
        })
    }
}

/// `journal RING DIR`: runs the stage until SIGTERM or SIGINT (then closes the journal
/// cleanly) or until it fails.
pub(super) fn run(ring_path: &Path, dir: &Path, args: &StageArgs, json: bool) -> Result<(), Failure> {
    let ring = Ring::open(ring_path)?;
    let options = args.options(&ring)?;
    let mut signals =
        signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])?;
    if let Some(note) = ring_size_note(ring.capacity(), &options.durability) {
        eprintln!("ringmq journal: note: {} {note}", ring_path.display());
    }
    let stage = JournalStage::spawn(&ring, dir, options)?;
    if json {
        print_json(&json!({ "journal": dir, "ring": ring_path, "durable": stage.durable() }));
    } else {
        println!(
            "journaling {} into {} from {}",
            ring_path.display(),
            dir.display(),
            stage.durable()
        );
    }
    loop {
        if signals.pending().next().is_some() {
            break;
        }
        if let Some(failure) = stage.failure() {
            return Err(failure.into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let durable = stage.durable();
    stage.stop()?;
    if !json {
        println!("stopped; durable up to {durable}");
    }
    Ok(())
}

/// What to tell the user of a group-commit stage whose ring cannot hold what its producers
/// publish while a sync of a whole group is in flight beside the group being appended: the
/// stage frees slots only once they are durable, so the producers would wait for every sync.
fn ring_size_note(capacity: u64, durability: &Durability) -> Option<String> {
    let Durability::GroupCommit { records, .. } = durability else {
        return None;
    };
    let enough = records.saturating_mul(2).next_power_of_two();
    (capacity < enough).then(|| {
        format!(
            "holds {capacity} messages, and its producers wait for a sync whenever that many are \
             not durable yet: a ring of {enough} slots or more (twice --group-records) lets them \
             publish on while a group is synced (docs/journal.md, \"How large a ring the stage needs\")"
        )
    })
}

/// `verify-journal DIR`: reads every retained record, checking its CRC and sequence, and
/// each sealed segment read whole against its footer's CRC of the records' CRCs; exit 3 on
/// anything that does not check.
pub(super) fn verify(dir: &Path, json: bool) -> Result<(), Failure> {
    let reader = JournalReader::open(dir)?;
    let mut records = 0u64;
    let mut skipped = 0u64;
    let mut bytes = 0u64;
    let mut bad = None;
    for record in reader.replay(Seek::Earliest)? {
        match record {
            Ok(r) => {
                records += 1;
                bytes += r.payload.len() as u64;
                skipped += u64::from(r.flags & ringmq::journal::FLAG_SKIPPED != 0);
            }
            Err(e) => {
                bad = Some(e.to_string());
                break;
            }
        }
    }
    if json {
        print_json(&json!({
            "journal": dir, "segments": reader.segments(), "oldest": reader.oldest(),
            "next": reader.next_sequence(), "records": records, "skipped": skipped,
            "payload_bytes": bytes, "error": bad,
        }));
    } else {
        println!(
            "{}: {} segments, sequences {}..{}, {records} records ({skipped} skipped), {bytes} payload bytes",
            dir.display(),
            reader.segments(),
            reader.oldest(),
            reader.next_sequence()
        );
    }
    match bad {
        Some(e) => Err(Failure(e, 3)),
        None => Ok(()),
    }
}

/// The journal lines of `stat RING --journal DIR`: segments, retained range, the durable
/// position and its lag behind the ring's next sequence, the persisted consumer positions.
pub(super) fn stat(ring: &Ring, dir: &Path) -> Result<serde_json::Value, Failure> {
    let reader = JournalReader::open(dir)?;
    let next = ring.next_sequence();
    let stage = ring.consumers().into_iter().find(|c| c.name == STAGE_CONSUMER);
    let durable = stage.as_ref().and_then(|c| c.sequence);
    let positions: serde_json::Map<String, serde_json::Value> = reader
        .positions()
        .map(|(n, p)| (n.to_owned(), json!(p)))
        .collect();
    Ok(json!({
        "dir": dir,
        "segments": reader.segments(),
        "oldest": reader.oldest(),
        "written": reader.next_sequence(),
        "durable": durable,
        "durable_lag": durable.map(|d| next.saturating_sub(d)),
        "stage_alive": stage.as_ref().is_some_and(|c| c.alive),
        "positions": positions,
    }))
}

#[cfg(test)]
mod tests {
    use super::ring_size_note;
    use ringmq::journal::Durability;
    use std::time::Duration;

    fn group(records: u64) -> Durability {
        Durability::GroupCommit {
            records,
            bytes: 1 << 20,
            delay: Duration::ZERO,
        }
    }

    #[test]
    fn a_ring_smaller_than_two_groups_gets_a_note() {
        assert!(ring_size_note(1024, &group(4096)).is_some_and(|n| n.contains("8192 slots")));
        assert!(ring_size_note(4096, &group(4096)).is_some());
        assert!(ring_size_note(8192, &group(4096)).is_none());
        assert!(ring_size_note(128, &group(100)).is_some_and(|n| n.contains("256 slots")));
        assert!(ring_size_note(256, &group(100)).is_none());
        // Only a group commit holds slots for a whole group's sync.
        assert!(ring_size_note(64, &Durability::PageCache).is_none());
        assert!(ring_size_note(64, &Durability::EveryRecord).is_none());
    }
}
