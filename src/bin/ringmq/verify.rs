//! The verifiable payload format that `produce --verifiable` writes and `consume --verify`
//! checks: who sent a message, its number, when, and a checksum over all of it.
//!
//! Layout (little-endian): magic u32, producer id u32, counter u64, send time
//! (CLOCK_MONOTONIC ns, comparable between processes) u64, checksum u64 over everything else,
//! then filler bytes derived from the counter.

const MAGIC: u32 = u32::from_le_bytes(*b"RMQv");

/// The smallest verifiable message.
pub const MIN_LEN: usize = 32;

/// Nanoseconds of CLOCK_MONOTONIC, which every process of the machine shares.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, exclusively borrowed timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A multiply-rotate hash of the message, 8 bytes at a time, the checksum field left out.
fn checksum(bytes: &[u8]) -> u64 {
    let mix = |hash: u64, word: u64| (hash ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
    let mut hash = mix(0, bytes.len() as u64);
    let mut chunks = bytes.chunks_exact(8);
    for (i, chunk) in chunks.by_ref().enumerate() {
        if i != 3 {
            hash = mix(hash, u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
    }
    for &b in chunks.remainder() {
        hash = mix(hash, b as u64);
    }
    hash
}

/// Writes a verifiable message stamped with `now` into `buf` (at least [`MIN_LEN`] bytes; the
/// caller reads the clock once per batch: a batch is published at once).
pub fn write(buf: &mut [u8], id: u32, counter: u64, now: u64) {
    buf[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    buf[4..8].copy_from_slice(&id.to_le_bytes());
    buf[8..16].copy_from_slice(&counter.to_le_bytes());
    for (i, b) in buf[MIN_LEN..].iter_mut().enumerate() {
        *b = counter.wrapping_add(i as u64) as u8;
    }
    buf[16..24].copy_from_slice(&now.to_le_bytes());
    let sum = checksum(buf);
    buf[24..32].copy_from_slice(&sum.to_le_bytes());
}

/// (producer id, counter, send time), or `None` if the message is corrupt.
pub fn read(buf: &[u8]) -> Option<(u32, u64, u64)> {
    if buf.len() < MIN_LEN {
        return None;
    }
    let word = |at: usize| u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"));
    let magic = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes"));
    let counter = word(8);
    let filler_ok = buf[MIN_LEN..]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == counter.wrapping_add(i as u64) as u8);
    (magic == MAGIC && word(24) == checksum(buf) && filler_ok).then(|| {
        let id = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
        (id, counter, word(16))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_message_reads_back_and_any_flipped_byte_is_caught() {
        let mut buf = vec![0u8; 48];
        write(&mut buf, 7, 123_456, 99);
        assert_eq!(read(&buf), Some((7, 123_456, 99)));
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            assert_eq!(read(&bad), None, "byte {i}");
        }
        assert_eq!(read(&buf[..MIN_LEN - 1]), None);
    }
}
