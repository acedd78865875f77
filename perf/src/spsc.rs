//! One producer, one consumer: throughput of 8-byte (`u64`) and 64-byte (`[u64; 8]`)
//! messages, every message checked in order by the receiver.

use crate::pin::{pin, Cores};
use ringmq::{Ring, WaitStrategy};
use std::time::Instant;

/// Capacity of every queue in this scenario (a power of two all peers accept).
pub const CAPACITY: usize = 1 << 16;
/// Batch size where a system publishes in batches.
pub const BATCH: usize = 64;

/// The systems this scenario runs, by name.
pub const SYSTEMS: &[&str] = &[
    "ringmq (batch 64)",
    "ringmq fixed-size (batch 64)",
    "ringmq fixed-size (slices of 64)",
    "ringmq (single)",
    "ringmq fixed-size (single)",
    "ringmq (single, 64 confirms in flight)",
    "ringmq (single, 64 confirms in flight, a ring of 256)",
    "ringmq (single, a ring of 64)",
    "ringmq (single, a ring of 256)",
    "rtrb",
    "disruptor (batch 64)",
    "crossbeam ArrayQueue",
    "crossbeam-channel",
    "std sync_channel",
];

/// A message type: made from its number, checked back to it.
pub trait Payload: bytemuck::Pod + Default + Send + Sync + 'static {
    /// Message number `i`.
    fn make(i: u64) -> Self;
    /// The number a message carries; panics (failing the run) if it is corrupt.
    fn number(&self) -> u64;
}

impl Payload for u64 {
    fn make(i: u64) -> Self {
        i
    }
    fn number(&self) -> u64 {
        *self
    }
}

impl Payload for [u64; 8] {
    fn make(i: u64) -> Self {
        [i, !i, i, !i, i, !i, i, !i]
    }
    fn number(&self) -> u64 {
        assert!(self
            .iter()
            .enumerate()
            .all(|(k, &w)| w == if k % 2 == 0 { self[0] } else { !self[0] }));
        self[0]
    }
}

/// Runs `system` for `n` messages of type `T`; messages per second.
pub fn run<T: Payload>(system: &str, cores: Cores, n: u64) -> f64 {
    match system {
        "ringmq (batch 64)" => ringmq::<T>(cores, n, BATCH, false),
        "ringmq fixed-size (batch 64)" => ringmq::<T>(cores, n, BATCH, true),
        "ringmq fixed-size (slices of 64)" => ringmq_slices::<T>(cores, n),
        "ringmq (single)" => ringmq::<T>(cores, n, 1, false),
        "ringmq (single, a ring of 64)" => ringmq_small::<T>(cores, n, BATCH as u64),
        "ringmq (single, a ring of 256)" => ringmq_small::<T>(cores, n, 4 * BATCH as u64),
        "ringmq fixed-size (single)" => ringmq::<T>(cores, n, 1, true),
        "ringmq (single, 64 confirms in flight)" => {
            ringmq_confirmed::<T>(cores, n, BATCH as u64, CAPACITY as u64)
        }
        "ringmq (single, 64 confirms in flight, a ring of 256)" => {
            ringmq_confirmed::<T>(cores, n, BATCH as u64, 4 * BATCH as u64)
        }
        "rtrb" => {
            let (mut tx, mut rx) = rtrb::RingBuffer::<T>::new(CAPACITY);
            spin_queue(
                cores,
                n,
                "rtrb",
                move |v| tx.push(v).is_ok(),
                move || rx.pop().ok(),
            )
        }
        "disruptor (batch 64)" => disruptor::<T>(cores, n),
        "crossbeam ArrayQueue" => {
            let q = std::sync::Arc::new(crossbeam_queue::ArrayQueue::<T>::new(CAPACITY));
            let rq = q.clone();
            spin_queue(
                cores,
                n,
                "ArrayQueue",
                move |v| q.push(v).is_ok(),
                move || rq.pop(),
            )
        }
        "crossbeam-channel" => {
            let (tx, rx) = crossbeam_channel::bounded::<T>(CAPACITY);
            blocking_queue(cores, n, move |v| tx.send(v).is_ok(), move || rx.recv().ok())
        }
        "std sync_channel" => {
            let (tx, rx) = std::sync::mpsc::sync_channel::<T>(CAPACITY);
            blocking_queue(cores, n, move |v| tx.send(v).is_ok(), move || rx.recv().ok())
        }
        other => panic!("unknown system {other}"),
    }
}

fn rate(n: u64, start: Instant) -> f64 {
    n as f64 / start.elapsed().as_secs_f64()
}

/// A busy-spinning subscriber and producer of `ring`.
pub fn busy_pair(ring: &Ring) -> (ringmq::Consumer, ringmq::Producer) {
    let consumer = ring
        .subscriber("perf")
        .wait_strategy(WaitStrategy::BusySpin)
        .attach()
        .expect("attach");
    let producer = ring.producer_with(WaitStrategy::BusySpin).expect("producer");
    (consumer, producer)
}

/// ringmq with slot headers (`fixed` false) or a fixed-size ring of `T`s (header-less
/// slots, published by the cursor alone).
fn ringmq<T: Payload>(cores: Cores, n: u64, batch: usize, fixed: bool) -> f64 {
    let size = std::mem::size_of::<T>();
    let builder = Ring::builder().capacity(CAPACITY as u64).wakeups(false);
    let builder = if fixed {
        builder.fixed_size(size)
    } else {
        builder.slot_size(ringmq::limits::SLOT_HEADER + size)
    };
    let ring = builder.build().expect("valid ring");
    let (mut consumer, mut producer) = busy_pair(&ring);
    let reader = std::thread::spawn(move || {
        pin(cores.b);
        read_numbers::<T>(&mut consumer, 0, n, "ringmq");
    });
    pin(cores.a);
    let start = Instant::now();
    publish_numbers::<T>(&mut producer, n, batch);
    reader.join().expect("ringmq reader");
    rate(n, start)
}

/// "ringmq (single)" in a ring of `capacity` slots: a producer never more than `capacity`
/// messages ahead, as a window of confirms holds it; what a window costs without confirms.
fn ringmq_small<T: Payload>(cores: Cores, n: u64, capacity: u64) -> f64 {
    let size = std::mem::size_of::<T>();
    let ring = Ring::builder()
        .capacity(capacity)
        .wakeups(false)
        .slot_size(ringmq::limits::SLOT_HEADER + size)
        .build()
        .expect("valid ring");
    let (mut consumer, mut producer) = busy_pair(&ring);
    let reader = std::thread::spawn(move || {
        pin(cores.b);
        read_numbers::<T>(&mut consumer, 0, n, "ringmq small");
    });
    pin(cores.a);
    let start = Instant::now();
    publish_numbers::<T>(&mut producer, n, 1);
    reader.join().expect("ringmq small reader");
    rate(n, start)
}

/// One publish per message, as "ringmq (single)", by a producer that never has more than
/// `window` messages unconfirmed by the subscriber, waiting (busy-spinning) once per quarter
/// window: a confirm per message would read the subscriber's position, on a line it writes,
/// at every publish near the window's edge. On a ring of `capacity` slots: the queues'
/// size, or a few windows, whose slots stay in the two cores' caches (the subscriber reads
/// each line right after the producer wrote it, so a ring much larger than the window makes
/// every line the producer writes one it has to fetch).
fn ringmq_confirmed<T: Payload>(cores: Cores, n: u64, window: u64, capacity: u64) -> f64 {
    let size = std::mem::size_of::<T>();
    let ring = Ring::builder()
        .capacity(capacity)
        .wakeups(false)
        .slot_size(ringmq::limits::SLOT_HEADER + size)
        .build()
        .expect("valid ring");
    let (mut consumer, mut producer) = busy_pair(&ring);
    let mut confirmer = ring
        .confirmer_with(ringmq::ConfirmBy::Consumer("perf".into()), WaitStrategy::BusySpin)
        .expect("confirmer");
    let reader = std::thread::spawn(move || {
        pin(cores.b);
        // Polls of at most half a window, released as each is read: a poll as large as
        // the window would release only once the producer is out of window, and stop it.
        let mut expected = 0u64;
        while expected < n {
            let batch = consumer.try_poll(window as usize / 2);
            for m in &batch {
                let v: T = m.value().expect("a whole message");
                assert_eq!(
                    v.number(),
                    expected,
                    "ringmq confirmed lost or reordered a message"
                );
                expected += 1;
            }
        }
        // Attached until the producer's last confirm.
        consumer
    });
    pin(cores.a);
    let start = Instant::now();
    let mut next = 0u64;
    while next < n {
        // One wait per quarter window: before each quarter, everything but the last three
        // quarters must be confirmed, so at most `window` are ever unconfirmed.
        let step = window / 4;
        if next.is_multiple_of(step) && next + step > window {
            confirmer.confirm(next + step - window - 1).expect("attached");
        }
        if producer.try_publish(bytemuck::bytes_of(&T::make(next))).is_ok() {
            next += 1;
        }
    }
    confirmer.confirm(n - 1).expect("attached");
    let rate = rate(n, start);
    drop(reader.join().expect("ringmq confirmed reader"));
    rate
}

/// Publishes the messages `0..n`, one at a time (`batch` 1, `try_publish` of its bytes) or
/// `batch` at a time (`try_publish_batch_with`), spinning while the ring is full. The
/// in-process and cross-process (`ipc`) 1P1C cases share it, so the two compare.
pub fn publish_numbers<T: Payload>(producer: &mut ringmq::Producer, n: u64, batch: usize) {
    let size = std::mem::size_of::<T>();
    let mut next = 0u64;
    if batch == 1 {
        while next < n {
            if producer.try_publish(bytemuck::bytes_of(&T::make(next))).is_ok() {
                next += 1;
            }
        }
        return;
    }
    while next < n {
        let k = batch.min((n - next) as usize);
        let written = producer.try_publish_batch_with(k, |i, slot| {
            slot[..size].copy_from_slice(bytemuck::bytes_of(&T::make(next + i as u64)));
            size
        });
        if written.is_ok() {
            next += k as u64;
        }
    }
}

/// Reads the messages `from..n` in polls of up to 4096, checking each one's number (a lost
/// or reordered message fails the run, naming `system`). Shared as `publish_numbers` is.
pub fn read_numbers<T: Payload>(consumer: &mut ringmq::Consumer, from: u64, n: u64, system: &str) {
    let mut expected = from;
    while expected < n {
        let batch = consumer.try_poll(4096);
        for m in &batch {
            let v: T = m.value().expect("a whole message");
            assert_eq!(v.number(), expected, "{system} lost or reordered a message");
            expected += 1;
        }
    }
}

/// A fixed-size ring of `T`s moved as slices: `try_publish_slice` of 64 values (one copy)
/// and `Batch::as_slices` (no copy), every value checked.
fn ringmq_slices<T: Payload>(cores: Cores, n: u64) -> f64 {
    let ring = Ring::builder()
        .capacity(CAPACITY as u64)
        .wakeups(false)
        .fixed_size(std::mem::size_of::<T>())
        .build()
        .expect("valid ring");
    let (mut consumer, producer) = busy_pair(&ring);
    let mut producer = ringmq::TypedProducer::<T>::new(producer).expect("a fixed-size ring of T");
    let reader = std::thread::spawn(move || {
        pin(cores.b);
        let mut expected = 0u64;
        while expected < n {
            let batch = consumer.try_poll(4096);
            let (a, b) = batch.as_slices::<T>().expect("a fixed-size ring of T");
            for v in a.iter().chain(b) {
                assert_eq!(v.number(), expected, "ringmq lost or reordered a message");
                expected += 1;
            }
        }
    });
    pin(cores.a);
    let start = Instant::now();
    let mut values = [T::default(); BATCH];
    let mut next = 0u64;
    while next < n {
        let k = BATCH.min((n - next) as usize);
        for (i, v) in values[..k].iter_mut().enumerate() {
            *v = T::make(next + i as u64);
        }
        if producer.try_publish_slice(&values[..k]).is_ok() {
            next += k as u64;
        }
    }
    reader.join().expect("ringmq reader");
    rate(n, start)
}

/// A spinning queue between the two cores: `push` until it takes each value, `pop` until
/// it yields one, every value checked in order.
fn spin_queue<T: Payload>(
    cores: Cores,
    n: u64,
    name: &'static str,
    mut push: impl FnMut(T) -> bool,
    mut pop: impl FnMut() -> Option<T> + Send + 'static,
) -> f64 {
    let reader = std::thread::spawn(move || {
        pin(cores.b);
        let mut expected = 0;
        while expected < n {
            if let Some(v) = pop() {
                assert_eq!(v.number(), expected, "{name} lost or reordered a message");
                expected += 1;
            }
        }
    });
    pin(cores.a);
    let start = Instant::now();
    let mut next = 0;
    while next < n {
        if push(T::make(next)) {
            next += 1;
        }
    }
    reader.join().expect("reader thread");
    rate(n, start)
}

/// A channel whose `send` and `recv` block.
fn blocking_queue<T: Payload>(
    cores: Cores,
    n: u64,
    mut send: impl FnMut(T) -> bool,
    mut recv: impl FnMut() -> Option<T> + Send + 'static,
) -> f64 {
    let reader = std::thread::spawn(move || {
        pin(cores.b);
        for expected in 0..n {
            let v = recv().expect("sender alive");
            assert_eq!(v.number(), expected, "channel lost or reordered a message");
        }
    });
    pin(cores.a);
    let start = Instant::now();
    for i in 0..n {
        assert!(send(T::make(i)), "receiver alive");
    }
    reader.join().expect("channel reader");
    rate(n, start)
}

fn disruptor<T: Payload>(cores: Cores, n: u64) -> f64 {
    use disruptor::{BusySpin, ProcessorSettings};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let errors = Arc::new(AtomicU64::new(0));
    let seen = errors.clone();
    let mut expected = 0u64;
    let handler = move |e: &T, _sequence: i64, _end_of_batch: bool| {
        if e.number() != expected {
            seen.fetch_add(1, Ordering::Relaxed);
        }
        expected += 1;
    };
    // The disruptor checks the handler's core against the building thread's affinity: build
    // before pinning.
    let mut producer = disruptor::build_single_producer(CAPACITY, T::default, BusySpin)
        .pin_at_core(cores.b.id)
        .handle_events_with(handler)
        .build();
    pin(cores.a);
    let start = Instant::now();
    crate::topology::disruptor_publish(&mut producer, n, T::make);
    drop(producer); // joins the handler thread once it has every event
    assert_eq!(
        errors.load(Ordering::Relaxed),
        0,
        "disruptor lost or reordered a message"
    );
    rate(n, start)
}
