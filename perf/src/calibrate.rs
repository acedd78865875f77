//! The machine's own limits, measured in every run: the bare cache-line round trip between
//! the two pinned cores, and a streaming limit (a producer filling an array of u64s as large as
//! the `spsc` queues' rings; for `spsc64`, 64-byte messages in an array as large as that
//! scenario's rings). A limit is measured in the geometry of what it limits, the fastest of
//! [`LIMIT_TRIES`] tries, each try the fastest of the protocols in [`STRIDES`] (which one
//! moves data fastest depends on how far apart the two cores are): a queue that beats it
//! means the limit is wrong, and the report says so.
//!
//! The round trip also labels the placement: the probes of a run fall in one cluster, or in
//! two (near cores and far ones); [`Placement`] splits them where they jump.

use crate::pin::{pin, Cores};
use crate::spsc::Payload;
use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The smallest jump between two sorted probe medians that separates two placements: one
/// host's cores sit within it of each other, the two clusters of a host whose vCPUs land on
/// near and far cores (a few times apart) do not.
const CLUSTER_GAP: f64 = 1.5;

/// How a run's probes split into placements: near (the lower cluster, or the only one) and
/// far (the upper cluster).
#[derive(Clone, Copy, Debug)]
pub struct Placement {
    /// Probes above this are far; `u64::MAX` when the run saw one cluster.
    pub threshold: u64,
}

impl Placement {
    /// Splits `probes` (round-trip medians, ns) at their largest jump, if it is at least
    /// [`CLUSTER_GAP`]; the threshold is the geometric mean of the two sides of the jump.
    pub fn of(probes: &[u64]) -> Placement {
        let mut sorted: Vec<u64> = probes.iter().copied().filter(|&p| p > 0).collect();
        sorted.sort_unstable();
        let jump = sorted
            .windows(2)
            .map(|w| (w[1] as f64 / w[0] as f64, w[0], w[1]))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let threshold = match jump {
            Some((gap, lo, hi)) if gap >= CLUSTER_GAP => ((lo as f64) * (hi as f64)).sqrt() as u64,
            _ => u64::MAX,
        };
        Placement { threshold }
    }

    /// Whether two probes are as far apart as two placements are ([`CLUSTER_GAP`]).
    pub fn apart(a: u64, b: u64) -> bool {
        let (lo, hi) = (a.min(b), a.max(b));
        lo > 0 && hi as f64 / lo as f64 >= CLUSTER_GAP
    }

    /// The label of a round-trip median.
    pub fn label(&self, rtt_ns: u64) -> &'static str {
        if rtt_ns <= self.threshold {
            "near"
        } else {
            "far"
        }
    }

    /// How the report states the rule.
    pub fn describe(&self) -> String {
        if self.threshold == u64::MAX {
            "every probe of this run fell in one cluster: one placement, labelled near".to_owned()
        } else {
            format!(
                "this run's probes fell in two clusters, split at {} ns (near at or below, far above)",
                self.threshold
            )
        }
    }
}

/// Bare cache-line ping-pong: `n` round trips, each recorded.
pub fn cache_line_rtt(cores: Cores, n: u64) -> Histogram<u64> {
    let ping = Arc::new(CachePadded::new(AtomicU64::new(0)));
    let pong = Arc::new(CachePadded::new(AtomicU64::new(0)));
    let echo = {
        let (ping, pong) = (ping.clone(), pong.clone());
        std::thread::spawn(move || {
            pin(cores.b);
            for i in 1..=n {
                while ping.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                pong.store(i, Ordering::Release);
            }
        })
    };
    pin(cores.a);
    let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("valid bounds");
    for i in 1..=n {
        let t = Instant::now();
        ping.store(i, Ordering::Release);
        while pong.load(Ordering::Acquire) != i {
            std::hint::spin_loop();
        }
        h.saturating_record(t.elapsed().as_nanos() as u64);
    }
    echo.join().expect("echo thread");
    h
}

/// The bare ring's name in the ping-pong scenario and its report.
pub const BARE_RING: &str = "bare ring (64 slots of 16 bytes)";

/// Slots of the bare ring: as many as the ping-pong scenarios' rings have.
pub const RING_SLOTS: usize = 64;

/// A bare ring's slots and nothing else: 16 bytes each (a stamp word, then the payload), four
/// to a cache line, as in a ringmq ring of `slot_size(16)`. A stamp of 0 is "never written",
/// so a zero-filled mapping is an empty ring.
pub type RingSlots = [[AtomicU64; 2]; RING_SLOTS];

/// Writes message `i` (payload `value`) into its slot, the stamp (`i + 1`) last.
#[inline(always)]
pub fn ring_send(ring: &RingSlots, i: u64, value: u64) {
    let slot = &ring[i as usize % RING_SLOTS];
    slot[1].store(value, Ordering::Relaxed);
    // Release pairs with `ring_recv`'s Acquire: the payload is visible with the stamp.
    slot[0].store(i + 1, Ordering::Release);
}

/// Waits for message `i`'s stamp; its payload.
#[inline(always)]
pub fn ring_recv(ring: &RingSlots, i: u64) -> u64 {
    let slot = &ring[i as usize % RING_SLOTS];
    // Acquire pairs with `ring_send`'s Release.
    while slot[0].load(Ordering::Acquire) != i + 1 {
        std::hint::spin_loop();
    }
    slot[1].load(Ordering::Relaxed)
}

/// [`RingSlots`] on a line boundary of their own.
#[repr(C, align(128))]
struct BareRing(RingSlots);

impl BareRing {
    fn new() -> Self {
        BareRing(std::array::from_fn(|_| [AtomicU64::new(0), AtomicU64::new(0)]))
    }
}

/// Bare ring ping-pong: the bare cache line's round trip, with each message in the next
/// 16-byte slot of a 64-slot ring (a stamp and a payload, as ringmq's slots) instead of in one
/// fixed word. No positions, no cursor, no gating (one message is ever outstanding): what the
/// slots alone cost. A ring's messages move through 16 lines where the bare line uses one;
/// the report's "/ bare ring" column divides by this, so that what any ring layout pays over
/// one fixed word is not counted against a queue.
pub fn ring_rtt(cores: Cores, n: u64) -> Histogram<u64> {
    let ping = Arc::new(BareRing::new());
    let pong = Arc::new(BareRing::new());
    let echo = {
        let (ping, pong) = (ping.clone(), pong.clone());
        std::thread::spawn(move || {
            pin(cores.b);
            for i in 0..n {
                let value = ring_recv(&ping.0, i);
                ring_send(&pong.0, i, value);
            }
        })
    };
    pin(cores.a);
    let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("valid bounds");
    for i in 0..n {
        let t = Instant::now();
        ring_send(&ping.0, i, !i);
        let answer = ring_recv(&pong.0, i);
        h.saturating_record(t.elapsed().as_nanos() as u64);
        assert_eq!(answer, !i, "bare ring ping-pong answer");
    }
    echo.join().expect("echo thread");
    h
}

/// The placement probe: the median of a short cache-line ping-pong.
pub fn probe(cores: Cores) -> u64 {
    cache_line_rtt(cores, 2_000).value_at_quantile(0.5)
}

/// Tries of a streaming limit in one case, the fastest kept: the VM's pauses only ever slow a
/// try, and a limit is the most the machine did. A queue runs once per case, so a queue that
/// merely ties the limit's protocol stays under it.
pub const LIMIT_TRIES: usize = 3;

/// The fastest of [`LIMIT_TRIES`] runs of a limit.
pub fn best_of(mut run: impl FnMut() -> f64) -> f64 {
    (0..LIMIT_TRIES).map(|_| run()).fold(0.0, f64::max)
}

/// The fastest of [`LIMIT_TRIES`] tries of a limit, each try running every one of
/// `protocols` once (interleaved, so that a slow stretch of the VM hits them alike).
pub fn best_of_each<P: Copy>(protocols: &[P], mut run: impl FnMut(P) -> f64) -> f64 {
    best_of(|| protocols.iter().map(|&p| run(p)).fold(0.0, f64::max))
}

/// The limits' index strides, each tried: published every 64 slots, the reader starts on a
/// block sooner; every 512, the index line moves between the cores less often, which wins
/// between far cores; every 4096 (32 KiB of u64s, 256 KiB of 64-byte messages), the reader
/// reads a block long after it was written, in bulk, as a queue whose consumer sleeps does
/// (std's `sync_channel` of 64-byte messages ran past the two others between far cores).
/// (A stamp in every 64-byte message, which the reader polls line by line, was tried too and
/// lost in every placement: docs/perf/log.md.)
pub const STRIDES: [u64; 3] = [64, 512, 4096];

/// The largest of [`STRIDES`] (its last: they go up): the arrays hold a whole number of its
/// blocks.
const LARGEST_STRIDE: usize = STRIDES[STRIDES.len() - 1] as usize;

/// Slots of the u64 streaming limit's array: as many as the `spsc` queues have (512 KiB), so
/// the limit sees the cache footprint they see.
pub const SLOTS: usize = crate::spsc::CAPACITY;
const _: () = assert!(
    SLOTS.is_multiple_of(LARGEST_STRIDE),
    "a block of any of STRIDES never wraps"
);

/// Streaming limit: u64s per second through an array as large as the queues' rings, index
/// published every `stride` slots (one of [`STRIDES`]), every value checked by the reader
/// ([`stream_write`], [`stream_read`]; `ipc/bare.rs` runs the same loops between two
/// processes).
pub fn streaming(cores: Cores, n: u64, stride: u64) -> f64 {
    let data: Arc<Vec<AtomicU64>> = Arc::new((0..SLOTS).map(|_| AtomicU64::new(0)).collect());
    let head = Arc::new(CachePadded::new(AtomicU64::new(0)));
    let tail = Arc::new(CachePadded::new(AtomicU64::new(0)));
    let reader = {
        let (data, head, tail) = (data.clone(), head.clone(), tail.clone());
        std::thread::spawn(move || {
            pin(cores.b);
            stream_read(&data, &head, &tail, n, || {});
        })
    };
    pin(cores.a);
    let start = Instant::now();
    stream_write(stride, &data, &head, &tail, n);
    reader.join().expect("streaming reader");
    n as f64 / start.elapsed().as_secs_f64()
}

/// The streaming limit's writer with an index store every `stride` slots (one of
/// [`STRIDES`]): [`stream_write_every`] compiled for it.
pub fn stream_write(stride: u64, data: &[AtomicU64], head: &AtomicU64, tail: &AtomicU64, n: u64) {
    match stride {
        64 => stream_write_every::<64>(data, head, tail, n),
        512 => stream_write_every::<512>(data, head, tail, n),
        4096 => stream_write_every::<4096>(data, head, tail, n),
        other => panic!("no streaming writer for a stride of {other}"),
    }
}

/// The streaming limit's writer: values `0..n` into `data` (a multiple of `STRIDE` slots), a
/// Release store of `head` after every `STRIDE`, waiting on `tail` (the reader's progress) for
/// room. The tightest loop the protocol allows: a block of `STRIDE` slots never wraps, so it
/// is one slice with one bounds check, of a length the compiler knows.
fn stream_write_every<const STRIDE: u64>(data: &[AtomicU64], head: &AtomicU64, tail: &AtomicU64, n: u64) {
    let slots = data.len();
    assert!(
        slots.is_multiple_of(STRIDE as usize),
        "a block of STRIDE slots never wraps"
    );
    let mut next = 0u64;
    let mut cached_tail = 0u64;
    while next < n {
        while next + STRIDE > cached_tail + slots as u64 {
            // Acquire: pairs with the reader's Release store of `tail`.
            cached_tail = tail.load(Ordering::Acquire);
        }
        let base = next as usize % slots;
        for (k, slot) in data[base..base + STRIDE as usize].iter().enumerate() {
            slot.store(next + k as u64, Ordering::Relaxed);
        }
        next += STRIDE;
        // Release: pairs with the reader's Acquire load of `head`.
        head.store(next, Ordering::Release);
    }
}

/// The streaming limit's reader: checks that `data` holds `0..n` in order as `head` publishes
/// them (whole runs up to the wrap at a time), releasing them through `tail`; calls `first`
/// when the first values arrive.
pub fn stream_read(data: &[AtomicU64], head: &AtomicU64, tail: &AtomicU64, n: u64, mut first: impl FnMut()) {
    let slots = data.len();
    let mut next = 0u64;
    while next < n {
        // Acquire: pairs with the writer's Release store of `head`.
        let available = head.load(Ordering::Acquire);
        if next == 0 && available > 0 {
            first();
        }
        while next < available {
            let start = next as usize % slots;
            let run = ((available - next) as usize).min(slots - start);
            for (k, slot) in data[start..start + run].iter().enumerate() {
                let v = slot.load(Ordering::Relaxed);
                assert_eq!(v, next + k as u64, "streaming limit lost a value");
            }
            next += run as u64;
        }
        // Release: pairs with the writer's Acquire load of `tail`.
        tail.store(next, Ordering::Release);
    }
}

/// Slots of the 64-byte streaming limit's array: as many as the `spsc64` queues have (4 MiB):
/// in a small array the writer, never far ahead, writes every line just after the reader read
/// it, which no ring of this size does.
const LINE_SLOTS: usize = crate::spsc::CAPACITY;
const _: () = assert!(
    LINE_SLOTS.is_multiple_of(LARGEST_STRIDE),
    "a block of any of STRIDES never wraps"
);

/// An array of 64-byte messages written by one thread and read by another, ordered by the
/// `head` and `tail` indices (as in a ring buffer, no slot is accessed by both at once).
struct Lines(Vec<UnsafeCell<[u64; 8]>>);

// SAFETY: `lines_every` hands a slot to the reader only through `head` (Release/Acquire)
// and back to the writer only through `tail`, so no slot is read and written concurrently.
unsafe impl Sync for Lines {}

/// Streaming limit for 64-byte messages (`spsc64`), index published every `stride` messages
/// (one of [`STRIDES`]), in an array as large as that scenario's rings, every message checked
/// by the reader as the queues' readers check theirs.
pub fn streaming_lines(cores: Cores, n: u64, stride: u64) -> f64 {
    match stride {
        64 => lines_every::<64>(cores, n),
        512 => lines_every::<512>(cores, n),
        4096 => lines_every::<4096>(cores, n),
        other => panic!("no 64-byte streaming limit for a stride of {other}"),
    }
}

/// [`streaming_lines`]: the u64 limit's loops (a block of `STRIDE` as one slice, whole runs
/// up to the wrap) with whole cache lines (a message a line), each message copied in and out as
/// a ring buffer copies it (plain copies of `[u64; 8]`). A copy of `streaming`'s loops on
/// purpose: a generic loop over atomic words (the only way to share it without unsafe copies
/// in the u64 limit) slows the u64 limit, which must stay the fastest way to move u64s (see
/// docs/perf/log.md).
fn lines_every<const STRIDE: u64>(cores: Cores, n: u64) -> f64 {
    let data = Arc::new(Lines((0..LINE_SLOTS).map(|_| UnsafeCell::new([0; 8])).collect()));
    let head = Arc::new(CachePadded::new(AtomicU64::new(0)));
    let tail = Arc::new(CachePadded::new(AtomicU64::new(0)));
    let reader = {
        let (data, head, tail) = (data.clone(), head.clone(), tail.clone());
        std::thread::spawn(move || {
            pin(cores.b);
            let mut next = 0u64;
            while next < n {
                // Acquire pairs with the writer's Release store of `head`.
                let available = head.load(Ordering::Acquire);
                while next < available {
                    let start = next as usize % LINE_SLOTS;
                    let run = ((available - next) as usize).min(LINE_SLOTS - start);
                    for (k, slot) in data.0[start..start + run].iter().enumerate() {
                        // SAFETY: below `head`: the writer finished this slot before its
                        // Release store of `head`, and will not touch it again until `tail`
                        // passes it.
                        let value = unsafe { slot.get().read() };
                        assert_eq!(value.number(), next + k as u64, "streaming limit lost a value");
                    }
                    next += run as u64;
                }
                // Release pairs with the writer's Acquire load of `tail`.
                tail.store(next, Ordering::Release);
            }
        })
    };
    pin(cores.a);
    let start = Instant::now();
    let mut next = 0u64;
    let mut cached_tail = 0u64;
    while next < n {
        while next + STRIDE > cached_tail + LINE_SLOTS as u64 {
            cached_tail = tail.load(Ordering::Acquire);
        }
        let base = next as usize % LINE_SLOTS;
        for (k, slot) in data.0[base..base + STRIDE as usize].iter().enumerate() {
            // SAFETY: below `tail + LINE_SLOTS`: the reader is done with this slot, and will
            // not read it until the Release store of `head` below.
            unsafe { slot.get().write(<[u64; 8]>::make(next + k as u64)) };
        }
        next += STRIDE;
        head.store(next, Ordering::Release);
    }
    reader.join().expect("streaming reader");
    n as f64 / start.elapsed().as_secs_f64()
}
