//! The machine's own limits between two processes, through a /dev/shm file mapped by each: the
//! streaming limit (`calibrate::stream_write` and `stream_read`) for throughput, and a
//! cache-line ping-pong and the bare ring (`calibrate::ring_rtt`) for round trips.

use super::{histogram, ready, shm_path, Checker, Cleanup, Peer};
use crate::calibrate::{self, RingSlots};
use crate::pin::Cores;
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The streaming limit through /dev/shm, the `ipc` scenario's limit.
pub const STREAM: &str = "streaming limit (/dev/shm)";
/// The bare cache line through /dev/shm.
pub const LINE: &str = "bare cache line (/dev/shm)";
/// The bare ring through /dev/shm.
pub const RING: &str = "bare ring (64 slots of 16 bytes, /dev/shm)";

/// Bytes of the round trips' mapping.
const LEN: usize = 4096;

/// A /dev/shm file holding the streaming limit's `head` and `tail` on lines of their own and
/// its array (as large as the queues' rings).
struct SharedStream {
    map: memmap2::MmapRaw,
}

impl SharedStream {
    /// Bytes before the array: `head` and `tail`, 128 bytes apart.
    const ARRAY: usize = 256;
    const LEN: usize = Self::ARRAY + calibrate::SLOTS * 8;

    fn map(path: &str, create: bool) -> Self {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(create)
            .open(path)
            .expect("open");
        if create {
            file.set_len(Self::LEN as u64).expect("size");
        }
        let map = memmap2::MmapOptions::new()
            .len(Self::LEN)
            .map_raw(&file)
            .expect("mmap");
        SharedStream { map }
    }

    /// (head, tail, the array).
    fn parts(&self) -> (&AtomicU64, &AtomicU64, &[AtomicU64]) {
        let base = self.map.as_mut_ptr();
        // SAFETY: the mapping is `LEN` bytes, page aligned, and lives as long as `self`: the
        // two words at 0 and 128 and the `SLOTS` words from `ARRAY` are in bounds and 8-aligned;
        // both processes access them only atomically, and zero is a valid `AtomicU64`.
        unsafe {
            (
                &*(base as *const AtomicU64),
                &*(base.add(128) as *const AtomicU64),
                std::slice::from_raw_parts(base.add(Self::ARRAY) as *const AtomicU64, calibrate::SLOTS),
            )
        }
    }
}

/// The parent writes `0..n` into the shared array; the child reads and checks them and
/// reports its rate from the first value to the last. The file is `shm_path(name)`, which
/// `ipc::throughput` removes.
pub fn throughput(name: &str, cores: Cores, n: u64, stride: u64) -> Option<f64> {
    let path = shm_path(name);
    let stream = SharedStream::map(&path, true);
    let peer = Peer::start("throughput", STREAM, &path, n, cores);
    let (head, tail, data) = stream.parts();
    calibrate::stream_write(stride, data, head, tail, n);
    peer.finish(STREAM)
}

pub fn child_throughput(path: &str, n: u64, checker: &mut Checker) {
    let stream = SharedStream::map(path, false);
    let (head, tail, data) = stream.parts();
    ready();
    calibrate::stream_read(data, head, tail, n, || checker.started = Some(Instant::now()));
    checker.expected = n;
}

/// A page of a /dev/shm file: the ping word and the pong word on 128-byte lines of their own,
/// then two bare rings (zero-filled: empty).
struct SharedLines {
    map: memmap2::MmapRaw,
}

impl SharedLines {
    fn create(path: &str) -> Self {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .expect("create");
        file.set_len(LEN as u64).expect("size");
        Self::map(&file)
    }

    fn open(path: &str) -> Self {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("open");
        Self::map(&file)
    }

    fn map(file: &std::fs::File) -> Self {
        let map = memmap2::MmapOptions::new().len(LEN).map_raw(file).expect("mmap");
        SharedLines { map }
    }

    /// The word at `offset`.
    fn word(&self, offset: usize) -> &AtomicU64 {
        assert!(offset + 8 <= LEN && offset.is_multiple_of(8));
        // SAFETY: in bounds and aligned (the mapping is page aligned); the mapping lives as
        // long as `self`; the word is only accessed atomically, by both processes.
        unsafe { &*(self.map.as_mut_ptr().add(offset) as *const AtomicU64) }
    }

    fn ping(&self) -> &AtomicU64 {
        self.word(0)
    }

    fn pong(&self) -> &AtomicU64 {
        self.word(128)
    }

    /// Bare ring `k` (0: ping, 1: pong).
    fn ring(&self, k: usize) -> &RingSlots {
        let offset = 1024 * (k + 1);
        assert!(offset + std::mem::size_of::<RingSlots>() <= LEN);
        // SAFETY: in bounds and line-aligned (the mapping is page aligned); the mapping lives
        // as long as `self`; `RingSlots` is atomics only, accessed only atomically by both
        // processes, and any bit pattern is a valid one.
        unsafe { &*(self.map.as_mut_ptr().add(offset) as *const RingSlots) }
    }
}

/// The parent pings `n` times: the line (`LINE`) or through the bare rings (`RING`).
pub fn pingpong(system: &str, name: &str, cores: Cores, n: u64, cleanup: &mut Cleanup) -> Histogram<u64> {
    let path = shm_path(name);
    cleanup.0.push(path.clone());
    let lines = SharedLines::create(&path);
    let peer = Peer::start("pingpong", system, &path, n, cores);
    let mut h = histogram();
    for i in 0..n {
        let t = Instant::now();
        if system == LINE {
            lines.ping().store(i + 1, Ordering::Release);
            while lines.pong().load(Ordering::Acquire) != i + 1 {
                std::hint::spin_loop();
            }
        } else {
            calibrate::ring_send(lines.ring(0), i, !i);
            let answer = calibrate::ring_recv(lines.ring(1), i);
            assert_eq!(answer, !i, "bare ring ping-pong answer");
        }
        h.saturating_record(t.elapsed().as_nanos() as u64);
    }
    peer.finish(system);
    h
}

/// The child echoes `n` pings.
pub fn child_pingpong(system: &str, path: &str, n: u64) {
    let lines = SharedLines::open(path);
    ready();
    for i in 0..n {
        if system == LINE {
            while lines.ping().load(Ordering::Acquire) != i + 1 {
                std::hint::spin_loop();
            }
            lines.pong().store(i + 1, Ordering::Release);
        } else {
            let value = calibrate::ring_recv(lines.ring(0), i);
            calibrate::ring_send(lines.ring(1), i, value);
        }
    }
}
