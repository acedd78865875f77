//! A durable [`super::JournalSubscriber`]'s progress through the journal's past, before it is
//! a subscriber of the ring: kept in a small file of the journal's directory
//! (`<name in hex>.reader`), which the stage reads and commits with the journal's consumer
//! positions, as it commits the positions of the ring's durable consumers.
//!
//! The subscriber writes the file through its mapping (no system call per update), and the
//! stage may read it in the middle of a write: each copy carries a CRC, and a copy that does
//! not check is passed over until the next look. Nothing syncs the file: what makes a
//! position durable is the stage's commit of it, so a crash can only take the subscriber back
//! to a position committed earlier (at-least-once). Once the subscriber is in the ring, the
//! ring's entry carries its position and the file goes.

use super::io::{Disk, DiskFile};
use std::io;
use std::sync::Arc;

/// The suffix of a progress file's name.
pub(crate) const SUFFIX: &str = ".reader";

/// The file's length (one page; the record is its first `RECORD` bytes).
const LEN: u64 = 4096;
/// The record: the position, its CRC32C, a magic number.
const RECORD: usize = 16;
const MAGIC: u32 = u32::from_le_bytes(*b"RMQR");

/// The file name of subscriber `name`'s progress: the name in hex (a consumer's name may hold
/// any byte, a file name not).
pub(crate) fn file_name(name: &str) -> String {
    let mut file: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    file.push_str(SUFFIX);
    file
}

/// The subscriber's name a progress file's name stands for; `None` if it is not one.
fn subscriber_of(file: &str) -> Option<String> {
    let hex = file.strip_suffix(SUFFIX)?;
    if hex.is_empty() || hex.len() % 2 != 0 {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

fn encode(position: u64) -> [u8; RECORD] {
    let mut record = [0u8; RECORD];
    record[..8].copy_from_slice(&position.to_le_bytes());
    let crc = crc32c::crc32c(&record[..8]);
    record[8..12].copy_from_slice(&crc.to_le_bytes());
    record[12..].copy_from_slice(&MAGIC.to_le_bytes());
    record
}

fn decode(record: &[u8; RECORD]) -> Option<u64> {
    let word = |at: usize| u32::from_le_bytes(record[at..at + 4].try_into().expect("4 bytes"));
    (word(12) == MAGIC && word(8) == crc32c::crc32c(&record[..8]))
        .then(|| u64::from_le_bytes(record[..8].try_into().expect("8 bytes")))
}

/// One subscriber's progress file, open for writing.
#[derive(Debug)]
pub(crate) struct Progress {
    file: Arc<dyn DiskFile>,
}

impl Progress {
    /// Opens (or creates) subscriber `name`'s progress file in `disk`.
    pub(crate) fn open(disk: &dyn Disk, name: &str) -> io::Result<Progress> {
        let file_name = file_name(name);
        let file = match disk.open(&file_name) {
            Ok(file) if file.len() >= RECORD as u64 => file,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a short progress file",
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => disk.create(&file_name, LEN)?,
            Err(e) => return Err(e),
        };
        Ok(Progress { file })
    }

    /// Records that every sequence below `position` has been delivered.
    pub(crate) fn store(&self, position: u64) -> io::Result<()> {
        self.file.write_at(0, &encode(position))
    }
}

/// Removes subscriber `name`'s progress file, if there is one.
pub(crate) fn remove(disk: &dyn Disk, name: &str) -> io::Result<()> {
    match disk.remove(&file_name(name)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Every progress file's subscriber in `names` (the directory's listing), with its position
/// if the file reads whole now (`None`: being written, or unreadable).
pub(crate) fn read_all(disk: &dyn Disk, names: &[String]) -> Vec<(String, Option<u64>)> {
    let mut found = Vec::new();
    for file_name in names {
        let Some(subscriber) = subscriber_of(file_name) else {
            continue;
        };
        let mut record = [0u8; RECORD];
        let position = disk
            .open_read(file_name)
            .and_then(|file| file.read_at(0, &mut record))
            .ok()
            .and_then(|()| decode(&record));
        found.push((subscriber, position));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_records_round_trip_and_damage_is_refused() {
        for name in ["audit", "a/b c", "é", "x"] {
            assert_eq!(subscriber_of(&file_name(name)).as_deref(), Some(name));
        }
        for foreign in [
            "00000000000000000000.seg",
            "zz.reader",
            "a.reader",
            ".reader",
            "6.reader",
        ] {
            assert_eq!(subscriber_of(foreign), None, "{foreign}");
        }
        let record = encode(123_456_789);
        assert_eq!(decode(&record), Some(123_456_789));
        for at in 0..RECORD {
            let mut torn = record;
            torn[at] ^= 0x10;
            assert_eq!(decode(&torn), None, "a flip at {at} went unseen");
        }
    }
}
