//! The journal (`ringmq::journal`) against what this machine's file system and page cache
//! allow, measured in the same run, on files in `RINGMQ_PERF_DIR` (default: the temporary
//! directory; its file system is printed with the report's line for each case).
//!
//! `journal` (rates, 100-byte messages): appending with page-cache durability and with group
//! commit (also through a ring and its stage from one producer, with a ring of 4096 slots and
//! one of 65536: the stage frees a slot once it is durable, so a ring must hold what is
//! published during a sync), and replaying, against the
//! **write limit** (the journal's record-sized copies into preallocated segment-sized files,
//! through their mappings or gathered into `pwrite`s of 256 KiB, the faster of the two, each
//! file synced once full, as a journal syncs every segment it seals: what appending does
//! minus the header, the CRC and the bookkeeping) and the **page-cache read limit** (the same
//! copies out of a mapping). Appending at a steady size (two segments kept, retired ones
//! recycled) is against the write limit over files written before. Every rate is also
//! against the same 100-byte messages through a ring in /dev/shm in batches of 64
//! ([`SHM_RING`], the report's "/ ringmq" column): the page-cache journal is meant to keep
//! at least half of that ring's rate.
//!
//! `journal-sync` (latencies): a message made durable one at a time, against the **bare
//! fdatasync** (a record-sized write into a preallocated file and its `fdatasync`, nothing
//! else; also of 4 KiB, the page the sync-per-publish target is stated for, and of
//! 64 KiB and 1 MiB, a group commit's batches): the journal's every-record sync, and a
//! confirmed publish through a ring and its journal stage (publish, then `wait_durable`) with
//! group commit at a delay of 1 ms and of 0, and with page-cache durability (no sync: the
//! level of the NATS peer).
//!
//! Also in `journal`: group commit on files whose syncs take 50 µs, 1 ms or 5 ms longer
//! (`SlowSync`, through the journal's `Disk` interface), so the figures hold on disks that
//! flush slower than this VM's; in `journal-sync`: the time to open a journal after a clean
//! close (4 GiB retained; 256 MiB with `--quick`) and after a writer died with a segment's
//! records unsynced (recovery checks each of them).
//!
//! Also in `journal`: messages of 1 MiB (256 fragments of 4 KiB) through a ring
//! (`publish_large` to `recv_large`) and through a ring into its journal stage, against the
//! **large copy limit** (one thread copying 1 MiB messages into a ring-sized buffer: each side
//! of a ring copies every byte once) and the **large write limit** (the write limit's copies
//! with the fragments' 4 KiB records).
//!
//! `journal-curve` (latencies): a ring's stage under a paced producer at offered loads from
//! 10k to 3M msgs/s, each message's publish-to-durable-confirm time (plotted against the
//! load); and the publish call's own latency at 100k msgs/s with segments that never fill in
//! the run against 1 MiB segments with four kept (a roll and a deletion about every 75 ms).
//!
//! Peers: Redis Streams (`redis_peer`) and NATS JetStream (`nats_peer`), when their servers are
//! installed.

use hdrhistogram::Histogram;
use ringmq::journal::{
    Disk, DiskFile, DiskLock, Durability, FsDisk, Journal, JournalOptions, JournalReader, JournalStage, Seek,
};
use ringmq::Ring;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The payload of every message.
pub const MESSAGE: usize = 100;
/// A 100-byte payload's record: the 32-byte header and the payload, 8-byte aligned.
const RECORD: usize = (32 + MESSAGE).div_ceil(8) * 8;

pub const RATES: &[&str] = &[
    SHM_RING,
    WRITE_LIMIT,
    "ringmq journal, page cache",
    "ringmq journal, group commit 1 ms",
    "ringmq journal, group commit 0",
    "ringmq stage, one producer through a ring of 4096, group commit 0",
    "ringmq stage, one producer through a ring of 65536, group commit 0",
    REUSED_WRITE_LIMIT,
    "ringmq journal, page cache, 2 segments kept (recycled)",
    "ringmq journal, group commit 0, 2 segments kept (recycled)",
    READ_LIMIT,
    "ringmq journal, replay",
    "ringmq journal, group commit, sync +50 µs",
    "ringmq journal, group commit, sync +1 ms",
    "ringmq journal, group commit, sync +5 ms",
    crate::redis_peer::EVERYSEC_PIPELINED,
    crate::redis_peer::ALWAYS_PIPELINED,
    crate::nats_peer::PIPELINED,
    LARGE_LIMIT,
    "ringmq ring, 1 MiB messages (publish_large, recv_large)",
    LARGE_WRITE_LIMIT,
    "ringmq journal stage, 1 MiB messages, page cache",
];
/// One thread copying 1 MiB messages into a ring-sized buffer: each side of a ring copies
/// every byte once, in parallel with the other, so neither can move messages faster.
pub const LARGE_LIMIT: &str = "streaming limit (copies of 1 MiB)";
/// The write limit for 1 MiB messages journaled as fragments: the fragments' records copied
/// into mapped segment-sized files, a sync per segment; per 1 MiB message.
pub const LARGE_WRITE_LIMIT: &str = "streaming limit (write of 1 MiB as 4 KiB records, a sync per segment)";
/// A large message's size, and the ring that carries it: 4 KiB slots, 4 MiB in all.
const LARGE: usize = 1 << 20;
const LARGE_SLOT: usize = 4096;
/// A large message's fragments, and the record of each.
const LARGE_FRAGMENTS: u64 = (LARGE / LARGE_SLOT) as u64;
const LARGE_RECORD: usize = (32 + LARGE_SLOT).div_ceil(8) * 8;
const LARGE_CAPACITY: u64 = 1024;
pub const WRITE_LIMIT: &str = "streaming limit (write, a sync per segment)";
/// What the page-cache journal is held against besides the write limit: the same 100-byte
/// messages through a ring in /dev/shm, one producer publishing batches of 64 and one
/// busy-spinning subscriber checking each, on two pinned cores. A ring, not a limit: the
/// ring's own limits are the `spsc` scenarios'.
pub const SHM_RING: &str = "ringmq ring in /dev/shm, 100-byte messages, batches of 64";
/// The write limit into files written before, as a recycling journal's segments are.
pub const REUSED_WRITE_LIMIT: &str = "streaming limit (write over written files, a sync per segment)";
pub const READ_LIMIT: &str = "streaming limit (page-cache read)";

pub const SYNCS: &[&str] = &[
    BARE_FDATASYNC,
    BARE_FDATASYNC_WITH_SLOT,
    "bare fdatasync of 4 KiB",
    "bare fdatasync of 64 KiB",
    "bare fdatasync of 1 MiB",
    "ringmq journal, sync every record",
    "ringmq stage, confirmed publish, group commit 1 ms",
    "ringmq stage, confirmed publish, group commit 0",
    "ringmq stage, confirmed publish, page cache",
    crate::redis_peer::ALWAYS_ONE,
    crate::nats_peer::ONE,
    OPEN_CLEAN,
    OPEN_CRASHED,
];
/// `journal-curve`: durable-acknowledgement latency of a ring's journal stage (group commit,
/// delay 0) under a paced producer, at each offered rate.
pub const CURVE: &[&str] = &[
    "ringmq stage, group commit 0, offered 10k msgs/s",
    "ringmq stage, group commit 0, offered 30k msgs/s",
    "ringmq stage, group commit 0, offered 100k msgs/s",
    "ringmq stage, group commit 0, offered 300k msgs/s",
    "ringmq stage, group commit 0, offered 1000k msgs/s",
    "ringmq stage, group commit 0, offered 3000k msgs/s",
    PUBLISH_NO_ROLL,
    PUBLISH_ROLLING,
];
/// `journal-curve`'s publish latencies at 100k msgs/s: with segments that never fill in the
/// run, and with 1 MiB segments, 4 kept (a roll and a deletion about every 75 ms).
pub const PUBLISH_NO_ROLL: &str = "ringmq stage, publish at 100k msgs/s, no roll";
pub const PUBLISH_ROLLING: &str = "ringmq stage, publish at 100k msgs/s, a roll and a deletion every 75 ms";

/// The offered rate in a `journal-curve` case's name, in messages per second.
pub fn offered(system: &str) -> Option<f64> {
    let k = system.rsplit("offered ").next()?.split('k').next()?;
    k.parse::<f64>().ok().map(|k| k * 1000.0)
}

/// The ring of the paced cases: 16384 slots of 128 bytes, on the heap.
fn paced_ring() -> Ring {
    Ring::builder()
        .capacity(16384)
        .slot_size(128)
        .build()
        .expect("a ring")
}

/// Yields until message `i` is due, at `rate` messages per second from `epoch`.
fn pace(epoch: Instant, i: u64, rate: f64) {
    let due = Duration::from_secs_f64(i as f64 / rate);
    while epoch.elapsed() < due {
        std::thread::yield_now();
    }
}

/// A producer publishing 100-byte messages at 100k msgs/s (for 2 s; 0.5 s with `quick`)
/// into a ring whose stage journals them with group commit, on segments of `segment_size`
/// keeping at most `keep`; the time of each `publish` call, in nanoseconds. The stage's rolls
/// and deletions run on its own thread: they show here only if they hold the ring full.
fn publish_latency(segment_size: u64, keep: Option<usize>, quick: bool) -> Histogram<u64> {
    let rate = 100_000.0;
    let n = (rate * if quick { 0.5 } else { 2.0 }) as u64;
    let scratch = Scratch::new("publish");
    let ring = paced_ring();
    let options = JournalOptions {
        segment_size,
        max_record: 4096,
        retention: ringmq::Retention {
            max_segments: keep,
            ..ringmq::Retention::default()
        },
        ..options(group_commit(Duration::ZERO))
    };
    let stage = JournalStage::spawn(&ring, scratch.path(), options).expect("a stage");
    let mut producer = ring.producer().expect("a producer");
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
    let epoch = Instant::now();
    let mut last = 0;
    for i in 0..n {
        pace(epoch, i, rate);
        let start = Instant::now();
        last = producer.publish(&payload(i)).expect("publish");
        record(&mut h, start);
    }
    stage
        .wait_durable(last, Some(Duration::from_secs(60)))
        .expect("durable");
    stage.stop().expect("stop");
    h
}

/// One `journal-curve` case: a producer publishing 100-byte messages at the offered rate
/// (for 1 s; 0.2 s with `quick`) into a ring whose stage journals them with group commit, and
/// a thread that waits for each to become durable; the latency from each publish to its
/// confirm, in nanoseconds.
pub fn curve(system: &str, quick: bool) -> Histogram<u64> {
    use std::sync::atomic::{AtomicU64, Ordering};
    match system {
        PUBLISH_NO_ROLL => return publish_latency(64 << 20, None, quick),
        PUBLISH_ROLLING => return publish_latency(1 << 20, Some(4), quick),
        _ => {}
    }
    let rate = offered(system).unwrap_or_else(|| panic!("no offered rate in {system:?}"));
    let n = ((rate * if quick { 0.2 } else { 1.0 }) as u64).max(1000);
    let scratch = Scratch::new("curve");
    let ring = paced_ring();
    let stage =
        JournalStage::spawn(&ring, scratch.path(), options(group_commit(Duration::ZERO))).expect("a stage");
    let mut producer = ring.producer().expect("a producer");
    // When each message was published, in nanoseconds since `epoch`.
    let sent: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
    let epoch = Instant::now();
    let h = std::thread::scope(|scope| {
        let confirms = scope.spawn(|| {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
            let mut next = 0;
            while next < n {
                let durable = stage
                    .wait_durable(next, Some(Duration::from_secs(60)))
                    .expect("durable");
                let now = epoch.elapsed().as_nanos() as u64;
                for at in &sent[next as usize..durable.min(n) as usize] {
                    // Acquire: pairs with the Release store below; the store also comes
                    // before the publish whose durability this thread just saw.
                    let _ = h.record(now.saturating_sub(at.load(Ordering::Acquire)).max(1));
                }
                next = durable;
            }
            h
        });
        for i in 0..n {
            pace(epoch, i, rate);
            // Release: pairs with the Acquire load of the confirming thread.
            sent[i as usize].store(epoch.elapsed().as_nanos() as u64, Ordering::Release);
            producer.publish(&payload(i)).expect("publish");
        }
        confirms.join().expect("the confirming thread")
    });
    stage.stop().expect("stop");
    h
}

pub const OPEN_CLEAN: &str = "ringmq journal, open after a clean close (4 GiB; --quick 256 MiB)";
pub const OPEN_CRASHED: &str = "ringmq journal, open after a crash, 60 MiB unsynced";
pub const BARE_FDATASYNC: &str = "bare fdatasync";
/// What a journal's lone commit writes and syncs: its record's page and a state slot's (the
/// two slots in turn), with one `fdatasync`.
const BARE_FDATASYNC_WITH_SLOT: &str = "bare fdatasync of a record and a state slot";

/// A directory of its own under `RINGMQ_PERF_DIR` (or the temporary directory), removed on
/// drop.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let base = std::env::var_os("RINGMQ_PERF_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
        Scratch::under(&base, tag)
    }

    /// A scratch directory in `base`.
    pub fn under(base: &Path, tag: &str) -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = base.join(format!("ringmq-perf-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A peer's server process, started for one case and killed when the case drops it.
pub struct ServerProcess(pub std::process::Child);

impl ServerProcess {
    /// Whether `program` runs here (`--version`): a peer whose server is not installed is
    /// left out of the run.
    pub fn installed(program: &str) -> bool {
        std::process::Command::new(program)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// A loopback port nobody listens on now.
    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // SIGTERM first: a server shutting down stops the children it forked (Redis's
        // append-only-file rewrite), which a SIGKILL would leave writing into the scratch
        // directory after it is removed.
        // SAFETY: kill(2) on a child this process spawned and has not reaped.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The file system the scratch directory is on, for the log.
pub fn file_system() -> String {
    let base = std::env::var_os("RINGMQ_PERF_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let out = std::process::Command::new("df")
        .arg("--output=fstype,source")
        .arg(&base)
        .output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .nth(1)
            .unwrap_or("?")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        Err(_) => "?".into(),
    }
}

fn options(durability: Durability) -> JournalOptions {
    JournalOptions {
        durability,
        ..JournalOptions::default()
    }
}

/// Group commit at the default size limits and `delay`.
fn group_commit(delay: Duration) -> Durability {
    Durability::GroupCommit {
        records: 4096,
        bytes: 1 << 20,
        delay,
    }
}

fn payload(i: u64) -> [u8; MESSAGE] {
    let mut p = [0u8; MESSAGE];
    p[..8].copy_from_slice(&i.to_le_bytes());
    p
}

/// A message of [`SHM_RING`]: [`payload`], checked back by the reader.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
struct Message([u8; MESSAGE]);

impl Default for Message {
    fn default() -> Self {
        Message([0; MESSAGE])
    }
}

impl crate::spsc::Payload for Message {
    fn make(i: u64) -> Self {
        Message(payload(i))
    }

    fn number(&self) -> u64 {
        let number = u64::from_le_bytes(self.0[..8].try_into().expect("8 bytes"));
        assert!(self.0[8..].iter().all(|&b| b == 0), "a corrupt message {number}");
        number
    }
}

/// [`SHM_RING`]: `n` messages through a ring in /dev/shm, with the `spsc` scenario's loops
/// (`publish_numbers` in batches of 64, `read_numbers`).
pub fn shm_ring(cores: crate::pin::Cores, n: u64) -> f64 {
    let scratch = Scratch::under(Path::new("/dev/shm"), "ring");
    let ring = Ring::builder()
        .capacity(crate::spsc::CAPACITY as u64)
        .slot_size(ringmq::limits::SLOT_HEADER + MESSAGE.next_multiple_of(8))
        .wakeups(false)
        .create(scratch.path().join("ring"))
        .expect("a ring in /dev/shm");
    let (mut consumer, mut producer) = crate::spsc::busy_pair(&ring);
    let reader = std::thread::spawn(move || {
        crate::pin::pin(cores.b);
        crate::spsc::read_numbers::<Message>(&mut consumer, 0, n, SHM_RING);
    });
    crate::pin::pin(cores.a);
    let start = Instant::now();
    crate::spsc::publish_numbers::<Message>(&mut producer, n, crate::spsc::BATCH);
    reader.join().expect("the ring's reader");
    n as f64 / start.elapsed().as_secs_f64()
}

/// One rate case: messages per second.
pub fn rate(system: &str, n: u64) -> f64 {
    let scratch = Scratch::new("rate");
    match system {
        // A limit keeps the fastest of its tries: the VM's pauses only ever slow a run.
        WRITE_LIMIT => crate::calibrate::best_of_each(&[Way::Mapped, Way::Pwrite], |way| {
            copy_limit(scratch.path(), n, RECORD, way, false)
        }),
        REUSED_WRITE_LIMIT => crate::calibrate::best_of_each(&[Way::Mapped, Way::Pwrite], |way| {
            copy_limit(scratch.path(), n, RECORD, way, true)
        }),
        READ_LIMIT => crate::calibrate::best_of(|| copy_limit(scratch.path(), n, RECORD, Way::Read, false)),
        LARGE_WRITE_LIMIT => crate::calibrate::best_of_each(&[Way::Mapped, Way::Pwrite], |way| {
            copy_limit(
                scratch.path(),
                large_count(n) * LARGE_FRAGMENTS,
                LARGE_RECORD,
                way,
                false,
            ) / LARGE_FRAGMENTS as f64
        }),
        "ringmq journal, page cache" => append(scratch.path(), n, Durability::PageCache),
        "ringmq stage, one producer through a ring of 4096, group commit 0" => {
            through_stage(scratch.path(), n, 4096, group_commit(Duration::ZERO))
        }
        "ringmq stage, one producer through a ring of 65536, group commit 0" => {
            through_stage(scratch.path(), n, 65536, group_commit(Duration::ZERO))
        }
        "ringmq journal, page cache, 2 segments kept (recycled)" => {
            recycled(scratch.path(), n, Durability::PageCache)
        }
        "ringmq journal, group commit 0, 2 segments kept (recycled)" => {
            recycled(scratch.path(), n, group_commit(Duration::ZERO))
        }
        "ringmq journal, group commit 1 ms" => {
            append(scratch.path(), n, group_commit(Duration::from_millis(1)))
        }
        "ringmq journal, group commit 0" => append(scratch.path(), n, group_commit(Duration::ZERO)),
        "ringmq journal, replay" => replay(scratch.path(), n),
        s if s.starts_with("ringmq journal, group commit, sync +") => {
            let delay = injected(s);
            let disk = Arc::new(SlowSync {
                inner: FsDisk::open(scratch.path()).expect("a directory"),
                delay,
            });
            let mut journal =
                Journal::open_on(disk, options(group_commit(Duration::ZERO))).expect("a journal");
            let rate = timed_appends(&mut journal, n);
            journal.close().expect("close");
            rate
        }
        LARGE_LIMIT => crate::calibrate::best_of(|| large_copy_limit(large_count(n))),
        "ringmq ring, 1 MiB messages (publish_large, recv_large)" => large_through_ring(large_count(n)),
        "ringmq journal stage, 1 MiB messages, page cache" => {
            large_through_stage(scratch.path(), large_count(n))
        }
        s if s.starts_with("redis") => crate::redis_peer::rate(s, n),
        crate::nats_peer::PIPELINED => crate::nats_peer::rate(n),
        other => panic!("unknown journal system {other:?}"),
    }
}

/// How [`copy_limit`] moves records: into the mapping, gathered and written by `pwrite` (as
/// a journal that syncs writes them), or out of the mapping.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    Mapped,
    Pwrite,
    Read,
}

/// Bytes of records a [`Way::Pwrite`] limit gathers per `pwrite`, as the journal does.
const PWRITE_CHUNK: usize = 256 << 10;

/// Record-sized copies into (or out of) a file allocated in segment-sized pieces, as the
/// journal's are: the best a journal on this page cache can do, without the header, the CRC
/// or the index. A write limit is the fastest of its two ways ([`Way::Mapped`],
/// [`Way::Pwrite`]): which is faster depends on the page cache, and the journal uses both.
/// `reuse`: the pieces are two files written and synced in full before the timing starts,
/// written over in turn, as a journal whose retention keeps two segments recycles them (its
/// zeroing of each, on its helper thread, left out).
fn copy_limit(dir: &Path, n: u64, record: usize, way: Way, reuse: bool) -> f64 {
    use std::os::unix::fs::FileExt;
    let write = way != Way::Read;
    let segment = JournalOptions::default().segment_size as usize;
    let per_segment = segment / record;
    let mut source = vec![0u8; record];
    let mut sink = vec![0u8; record];
    let mut chunk = Vec::with_capacity(PWRITE_CHUNK);
    let mut done = 0u64;
    let mut files = 0;
    let mut elapsed = Duration::ZERO;
    while done < n {
        let path = dir.join(format!("limit-{}", if reuse { files % 2 } else { files }));
        let fresh = !reuse || files < 2;
        files += 1;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .expect("a limit file");
        if fresh {
            allocate(&file, segment as u64);
        }
        if reuse && fresh {
            for at in (0..segment).step_by(PWRITE_CHUNK) {
                file.write_all_at(&vec![0; PWRITE_CHUNK.min(segment - at)], at as u64)
                    .expect("pwrite");
            }
            file.sync_data().expect("fdatasync");
        }
        // SAFETY: the file is this function's own, sized above, and nothing truncates it
        // while mapped.
        let mut map = unsafe { memmap2::MmapMut::map_mut(&file) }.expect("a mapping");
        let reading = if write {
            None
        } else {
            // Reads are timed over written pages in the page cache, through a mapping of
            // their own (its page tables empty), as a reader's in another process are.
            map.fill(1);
            // SAFETY: as above; read-only.
            Some(unsafe { memmap2::Mmap::map(&file) }.expect("a read-only mapping"))
        };
        let here = per_segment.min((n - done) as usize);
        let start = Instant::now();
        let mut chunk_at = 0;
        for i in 0..here {
            let at = i * record;
            match (&reading, way) {
                (None, Way::Pwrite) => {
                    if chunk.len() + record > PWRITE_CHUNK {
                        file.write_all_at(&chunk, chunk_at as u64).expect("pwrite");
                        chunk.clear();
                    }
                    if chunk.is_empty() {
                        chunk_at = at;
                    }
                    source[..8].copy_from_slice(&(done + i as u64).to_le_bytes());
                    chunk.extend_from_slice(std::hint::black_box(&source));
                }
                (None, _) => {
                    source[..8].copy_from_slice(&(done + i as u64).to_le_bytes());
                    map[at..at + record].copy_from_slice(std::hint::black_box(&source));
                }
                (Some(read), _) => {
                    sink.copy_from_slice(&read[at..at + record]);
                    std::hint::black_box(&sink);
                }
            }
        }
        if !chunk.is_empty() {
            file.write_all_at(&chunk, chunk_at as u64).expect("pwrite");
            chunk.clear();
        }
        if write {
            // A journal syncs each segment it seals, whatever its durability: the disk's write
            // bandwidth is part of the limit.
            file.sync_data().expect("fdatasync");
        }
        elapsed += start.elapsed();
        done += here as u64;
        drop(map);
        if !reuse {
            let _ = std::fs::remove_file(&path);
        }
    }
    for i in 0..2 {
        let _ = std::fs::remove_file(dir.join(format!("limit-{i}")));
    }
    n as f64 / elapsed.as_secs_f64()
}

/// How many 1 MiB messages stand in for `n` small ones: a thousandth, at least 50.
fn large_count(n: u64) -> u64 {
    (n / 1000).max(50)
}

/// Copies of `LARGE` bytes into successive places of a ring-sized buffer, by one thread;
/// messages per second.
fn large_copy_limit(n: u64) -> f64 {
    let source = vec![7u8; LARGE];
    let ring = LARGE_CAPACITY as usize * LARGE_SLOT;
    let mut sink = vec![0u8; ring];
    let start = Instant::now();
    for i in 0..n as usize {
        let at = (i * LARGE) % ring;
        sink[at..at + LARGE].copy_from_slice(std::hint::black_box(&source));
        std::hint::black_box(&sink);
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// The ring of the large-message cases: `LARGE_CAPACITY` slots of `LARGE_SLOT` bytes.
fn large_ring() -> Ring {
    Ring::builder()
        .capacity(LARGE_CAPACITY)
        .slot_size(LARGE_SLOT + 8)
        .build()
        .expect("a ring")
}

/// A message of `LARGE` bytes numbered `i` (its first 8 bytes), for a receiver to check.
fn large_message(buf: &mut [u8], i: u64) {
    buf[..8].copy_from_slice(&i.to_le_bytes());
}

/// A producer thread publishing `n` 1 MiB messages with `publish_large` and a subscriber
/// reading them whole with `recv_large`; messages per second, from the first publish to the
/// last message received.
fn large_through_ring(n: u64) -> f64 {
    let ring = large_ring();
    let mut consumer = ring.subscriber("large").attach().expect("a subscriber");
    let mut producer = ring.producer().expect("a producer");
    let start = Instant::now();
    let publisher = std::thread::spawn(move || {
        let mut buf = vec![1u8; LARGE];
        for i in 0..n {
            large_message(&mut buf, i);
            producer.publish_large(&buf).expect("publish");
        }
    });
    let mut out = Vec::with_capacity(LARGE);
    for i in 0..n {
        consumer
            .recv_large_timeout(&mut out, Duration::from_secs(30))
            .expect("a message");
        assert!(
            out.len() == LARGE && out[..8] == i.to_le_bytes(),
            "message {i} lost or torn"
        );
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    publisher.join().expect("the publisher");
    rate
}

/// `n` 1 MiB messages published through a ring into its journal stage (page-cache
/// durability), until the last is in the journal; messages per second.
fn large_through_stage(dir: &Path, n: u64) -> f64 {
    let mut buf = vec![1u8; LARGE];
    through_stage_with(dir, &large_ring(), Durability::PageCache, n, |producer, i| {
        large_message(&mut buf, i);
        producer.publish_large(&buf).expect("publish")
    })
}

/// One producer publishing `n` 100-byte messages into a ring of `capacity` slots whose
/// journal stage has `durability`, timed from the first publish until the last is durable:
/// what a producer's messages cost end to end, the ring's hop and the stage's batches
/// included.
fn through_stage(dir: &Path, n: u64, capacity: u64, durability: Durability) -> f64 {
    let ring = Ring::builder()
        .capacity(capacity)
        .slot_size(128)
        .build()
        .expect("a ring");
    through_stage_with(dir, &ring, durability, n, |producer, i| {
        producer.publish(&payload(i)).expect("publish")
    })
}

/// `n` messages published by `publish` (message `i`, its last sequence) into `ring`, whose
/// journal stage in `dir` has `durability`; messages per second from the first publish
/// until the last is durable, every sequence checked to be in the journal.
fn through_stage_with(
    dir: &Path,
    ring: &Ring,
    durability: Durability,
    n: u64,
    mut publish: impl FnMut(&mut ringmq::Producer, u64) -> u64,
) -> f64 {
    let stage = JournalStage::spawn(ring, dir, options(durability)).expect("a stage");
    let mut producer = ring.producer().expect("a producer");
    let start = Instant::now();
    let mut last = 0;
    for i in 0..n {
        last = publish(&mut producer, i);
    }
    stage
        .wait_durable(last, Some(Duration::from_secs(60)))
        .expect("in the journal");
    let rate = n as f64 / start.elapsed().as_secs_f64();
    stage.stop().expect("stop");
    let reader = JournalReader::open(dir).expect("a reader");
    assert_eq!(reader.next_sequence(), last + 1, "the stage lost messages");
    rate
}

/// Allocates every byte of `file`, as the journal's segments are.
fn allocate(file: &std::fs::File, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a file descriptor this function's caller owns.
    let r = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) };
    if r != 0 {
        file.set_len(len).expect("a sized file");
    }
}

/// Appends `n` messages to a fresh journal and makes them durable; messages per second
/// (segment creation included: it is part of appending).
fn append(dir: &Path, n: u64, durability: Durability) -> f64 {
    let mut journal = Journal::open(dir, options(durability)).expect("a journal");
    let rate = timed_appends(&mut journal, n);
    journal.close().expect("close");
    rate
}

/// Appends with retention keeping two segments, timed once three segments have been
/// retired (so each roll takes a recycled one): a journal at its steady size.
fn recycled(dir: &Path, n: u64, durability: Durability) -> f64 {
    let options = JournalOptions {
        retention: ringmq::journal::Retention {
            max_segments: Some(2),
            ..Default::default()
        },
        ..options(durability)
    };
    let mut journal = Journal::open(dir, options).expect("a journal");
    let mut i = 0;
    while journal.oldest() == 0 || journal.segments() < 2 || i < 4 * per_segment() {
        journal.append(&payload(i)).expect("append");
        i += 1;
    }
    let rate = timed_appends(&mut journal, n);
    journal.close().expect("close");
    rate
}

/// 100-byte messages in a default segment.
fn per_segment() -> u64 {
    JournalOptions::default().segment_size / RECORD as u64
}

fn timed_appends(journal: &mut Journal, n: u64) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        journal.append(&payload(i)).expect("append");
    }
    journal.commit().expect("commit");
    n as f64 / start.elapsed().as_secs_f64()
}

/// The sync latency a case's name adds: "... sync +50 µs", "+1 ms", "+5 ms".
fn injected(system: &str) -> Duration {
    match system.rsplit('+').next() {
        Some("50 µs") => Duration::from_micros(50),
        Some("1 ms") => Duration::from_millis(1),
        Some("5 ms") => Duration::from_millis(5),
        other => panic!("no injected sync latency in {other:?}"),
    }
}

/// Files whose every `fdatasync` (and directory sync) takes `delay` longer: how the journal
/// runs on a disk slower to flush than this VM's, which may acknowledge flushes early.
#[derive(Debug)]
struct SlowSync {
    inner: FsDisk,
    delay: Duration,
}

#[derive(Debug)]
struct SlowFile {
    inner: Arc<dyn DiskFile>,
    delay: Duration,
}

impl Disk for SlowSync {
    fn create(&self, name: &str, len: u64) -> std::io::Result<Arc<dyn DiskFile>> {
        let inner = self.inner.create(name, len)?;
        Ok(Arc::new(SlowFile {
            inner,
            delay: self.delay,
        }))
    }
    fn open(&self, name: &str) -> std::io::Result<Arc<dyn DiskFile>> {
        let inner = self.inner.open(name)?;
        Ok(Arc::new(SlowFile {
            inner,
            delay: self.delay,
        }))
    }
    fn list(&self) -> std::io::Result<Vec<String>> {
        self.inner.list()
    }
    fn remove(&self, name: &str) -> std::io::Result<()> {
        self.inner.remove(name)
    }
    fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self) -> std::io::Result<()> {
        std::thread::sleep(self.delay);
        self.inner.sync_dir()
    }
    fn try_lock_writer(&self) -> std::io::Result<Option<DiskLock>> {
        self.inner.try_lock_writer()
    }
}

impl DiskFile for SlowFile {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.inner.write_at(offset, data)
    }
    fn write_through(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.inner.write_through(offset, data)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_at(offset, buf)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        std::thread::sleep(self.delay);
        self.inner.sync_data()
    }
    fn as_ptr(&self) -> *const u8 {
        self.inner.as_ptr()
    }
    fn prefetch(&self, offset: u64, len: u64) {
        self.inner.prefetch(offset, len)
    }
    fn try_claim(&self) -> std::io::Result<bool> {
        self.inner.try_claim()
    }
    fn release(&self) {
        self.inner.release()
    }
}

/// Writes `n` messages, then times a reader replaying them from the start, every record's
/// CRC checked.
fn replay(dir: &Path, n: u64) -> f64 {
    append(dir, n, Durability::PageCache);
    let reader = JournalReader::open(dir).expect("a reader");
    let start = Instant::now();
    let mut count = 0u64;
    for record in reader.replay(Seek::Earliest).expect("replay") {
        let record = record.expect("a record that checks");
        assert_eq!(record.sequence, count, "the journal lost a message");
        std::hint::black_box(record.payload);
        count += 1;
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    assert_eq!(count, n, "the journal lost messages");
    rate
}

/// One latency case: each of `n` messages made durable alone, in nanoseconds.
pub fn sync_latency(system: &str, n: u64) -> Histogram<u64> {
    let scratch = Scratch::new("sync");
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
    match system {
        s if s.starts_with(BARE_FDATASYNC) => {
            // A record, or a group commit's batch of records.
            let size = match s.rsplit(" of ").next() {
                Some("4 KiB") => 4 << 10,
                Some("64 KiB") => 64 << 10,
                Some("1 MiB") => 1 << 20,
                _ => RECORD,
            };
            // The fastest of three tries by its median, as every limit.
            for _ in 0..crate::calibrate::LIMIT_TRIES {
                let mut try_h = h.clone();
                try_h.reset();
                let slot = s == BARE_FDATASYNC_WITH_SLOT;
                bare_fdatasync(scratch.path(), n, size, slot, &mut try_h);
                if h.is_empty() || try_h.value_at_quantile(0.5) < h.value_at_quantile(0.5) {
                    h = try_h;
                }
                let _ = std::fs::remove_file(scratch.path().join("bare"));
            }
        }
        "ringmq journal, sync every record" => {
            let mut journal =
                Journal::open(scratch.path(), options(Durability::EveryRecord)).expect("a journal");
            for i in 0..n {
                let start = Instant::now();
                journal.append(&payload(i)).expect("append");
                record(&mut h, start);
            }
            journal.close().expect("close");
        }
        "ringmq stage, confirmed publish, group commit 1 ms" => {
            confirmed(scratch.path(), n, group_commit(Duration::from_millis(1)), &mut h)
        }
        "ringmq stage, confirmed publish, group commit 0" => {
            confirmed(scratch.path(), n, group_commit(Duration::ZERO), &mut h)
        }
        "ringmq stage, confirmed publish, page cache" => {
            confirmed(scratch.path(), n, Durability::PageCache, &mut h)
        }
        crate::redis_peer::ALWAYS_ONE => return crate::redis_peer::one_at_a_time(n),
        crate::nats_peer::ONE => return crate::nats_peer::one_at_a_time(n),
        OPEN_CLEAN => {
            // Retained bytes (fewer with --quick). An open reads each sealed segment's header
            // and footer and walks only the last, unsealed one: the time grows with the
            // number of segments, not with their bytes.
            let records = if n >= 1000 {
                (4 << 30) / RECORD as u64
            } else {
                (256 << 20) / RECORD as u64
            };
            let mut journal =
                Journal::open(scratch.path(), options(Durability::PageCache)).expect("a journal");
            for i in 0..records {
                journal.append(&payload(i)).expect("append");
            }
            journal.close().expect("close");
            for _ in 0..5 {
                let start = Instant::now();
                let journal = Journal::open(scratch.path(), options(Durability::PageCache)).expect("open");
                record(&mut h, start);
                journal.close().expect("close");
            }
        }
        OPEN_CRASHED => {
            for _ in 0..3 {
                let _ = std::fs::remove_dir_all(scratch.path());
                std::fs::create_dir_all(scratch.path()).expect("a directory");
                // A segment's records written, none synced, and no close: what a writer
                // killed then leaves in the page cache for the next open to check.
                let mut journal =
                    Journal::open(scratch.path(), options(Durability::PageCache)).expect("a journal");
                for i in 0..(60 << 20) / RECORD as u64 {
                    journal.append(&payload(i)).expect("append");
                }
                drop(journal);
                let start = Instant::now();
                let journal = Journal::open(scratch.path(), options(Durability::PageCache)).expect("open");
                record(&mut h, start);
                assert_eq!(
                    journal.next_sequence(),
                    (60 << 20) / RECORD as u64,
                    "recovery lost records"
                );
                journal.close().expect("close");
            }
        }
        other => panic!("unknown journal system {other:?}"),
    }
    h
}

fn record(h: &mut Histogram<u64>, since: Instant) {
    let _ = h.record((since.elapsed().as_nanos() as u64).max(1));
}

/// `n` writes of `size` bytes at the next offset of a preallocated file, each followed by one
/// `fdatasync`; with `slot`, each also writes a 4 KiB page before the records, one of two in
/// turn, as a journal's commit writes its state slot.
fn bare_fdatasync(dir: &Path, n: u64, size: usize, slot: bool, h: &mut Histogram<u64>) {
    use std::os::unix::fs::FileExt;
    const SLOTS: u64 = 2 * 4096;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dir.join("bare"))
        .expect("a file");
    allocate(&file, SLOTS + n * size as u64 + 4096);
    file.sync_all().expect("fsync");
    let data = vec![7u8; size];
    let page = vec![9u8; 4096];
    for i in 0..n {
        let start = Instant::now();
        file.write_all_at(&data, SLOTS + i * size as u64).expect("pwrite");
        if slot {
            file.write_all_at(&page, (i % 2) * 4096).expect("pwrite");
        }
        file.sync_data().expect("fdatasync");
        record(h, start);
    }
}

/// Publishes into a ring whose journal stage has `durability`, and waits for each message
/// to be durable by it before the next.
fn confirmed(dir: &Path, n: u64, durability: Durability, h: &mut Histogram<u64>) {
    let ring = Ring::builder()
        .capacity(1024)
        .slot_size(128)
        .build()
        .expect("a ring");
    let options = options(durability);
    let stage = JournalStage::spawn(&ring, dir, options).expect("a stage");
    let mut producer = ring.producer().expect("a producer");
    for i in 0..n {
        let start = Instant::now();
        let sequence = producer.publish(&payload(i)).expect("publish");
        stage
            .wait_durable(sequence, Some(Duration::from_secs(30)))
            .expect("durable");
        record(h, start);
    }
    stage.stop().expect("stop");
}
