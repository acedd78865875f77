//! Ping-pong: a message goes to the other core and an answer comes back; every round trip
//! is recorded in a histogram and every answer checked.

use crate::pin::{pin, Cores};
use hdrhistogram::Histogram;
use ringmq::request::Service;
use ringmq::{ConfirmBy, Ring, WaitStrategy};
use std::time::{Duration, Instant};

/// The systems this scenario runs, by name.
pub const SYSTEMS: &[&str] = &[
    "bare cache line",
    crate::calibrate::BARE_RING,
    "ringmq",
    "ringmq fixed-size",
    TRANSPORT,
    "ringmq request-reply",
    "ringmq request-reply (no deadline)",
    "ringmq confirmed publish",
    "bare futex ping-pong",
    "ringmq request-reply (Block)",
    "ringmq request-reply, 4 KiB in one slot",
    "ringmq request-reply, 4 KiB in 1 KiB slots",
    "rtrb",
    "disruptor",
    "crossbeam ArrayQueue",
    "crossbeam-channel",
];

/// Runs `n` round trips of `system`.
pub fn run(system: &str, cores: Cores, n: u64) -> Histogram<u64> {
    match system {
        "bare cache line" => crate::calibrate::cache_line_rtt(cores, n),
        crate::calibrate::BARE_RING => crate::calibrate::ring_rtt(cores, n),
        "ringmq" => ringmq(cores, n, false),
        "ringmq fixed-size" => ringmq(cores, n, true),
        TRANSPORT => transport(cores, n),
        "ringmq request-reply" => request_reply(cores, n, Duration::from_secs(10)),
        "ringmq request-reply (no deadline)" => request_reply(cores, n, Duration::MAX),
        "ringmq confirmed publish" => confirmed_publish(cores, n),
        "bare futex ping-pong" => futex_pingpong(cores, n / 100),
        "ringmq request-reply (Block)" => {
            request_reply_with(cores, n / 100, Duration::MAX, WaitStrategy::Block, Shape::U64)
        }
        "ringmq request-reply, 4 KiB in one slot" => request_reply_4k(cores, n / 10, 4096 + 128),
        "ringmq request-reply, 4 KiB in 1 KiB slots" => request_reply_4k(cores, n / 10, 1024),
        "rtrb" => rtrb(cores, n),
        "disruptor" => disruptor(cores, n),
        "crossbeam ArrayQueue" => array_queue(cores, n),
        "crossbeam-channel" => channel(cores, n),
        other => panic!("unknown system {other}"),
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("valid bounds")
}

/// Two rings of u64s, with slot headers or fixed-size (where a caught-up consumer reads the
/// cursor and then the slot: one more line per hop).
fn ringmq(cores: Cores, n: u64, fixed: bool) -> Histogram<u64> {
    let ring = || {
        let builder = Ring::builder().capacity(64).wakeups(false);
        let builder = if fixed {
            builder.fixed_size(8)
        } else {
            builder.slot_size(16)
        };
        builder.build().expect("valid ring")
    };
    let (ping, pong) = (ring(), ring());
    let echo = ping
        .subscriber("echo")
        .wait_strategy(WaitStrategy::BusySpin)
        .attach()
        .expect("attach");
    echo_pingpong(cores, n, &ping, echo, &pong, "ringmq")
}

/// The rings a request and its reply go through, with nothing of request-reply on them: a
/// u64 through a multi-producer ring of 64 slots of 128 bytes, read by a worker of a group,
/// echoed through another such ring to a subscriber. The floor under "ringmq request-reply",
/// whose requests and replies take these hops plus their headers, window and route.
const TRANSPORT: &str = "ringmq, multi-producer rings, a group's worker echoing";

/// [`TRANSPORT`].
fn transport(cores: Cores, n: u64) -> Histogram<u64> {
    let ring = || {
        Ring::builder()
            .capacity(64)
            .slot_size(128)
            .multi_producer()
            .wakeups(false)
            .build()
            .expect("valid ring")
    };
    let (ping, pong) = (ring(), ring());
    let echo = ping
        .worker("responders", "echo")
        .wait_strategy(WaitStrategy::BusySpin)
        .attach()
        .expect("attach");
    echo_pingpong(cores, n, &ping, echo, &pong, TRANSPORT)
}

/// `n` u64s published into `ping`, each read by `echo` on the other core and published back
/// into `pong`, read there by a subscriber; everything busy-spins. Round trips in ns.
fn echo_pingpong(
    cores: Cores,
    n: u64,
    ping: &Ring,
    mut echo: ringmq::Consumer,
    pong: &Ring,
    system: &'static str,
) -> Histogram<u64> {
    let wait = WaitStrategy::BusySpin;
    let mut pong_rx = pong
        .subscriber("pinger")
        .wait_strategy(wait)
        .attach()
        .expect("attach");
    let mut ping_tx = ping.producer_with(wait).expect("producer");
    let mut pong_tx = pong.producer_with(wait).expect("producer");
    let echoer = std::thread::spawn(move || {
        pin(cores.b);
        for _ in 0..n {
            let v = echo.recv().expect("no stop flag").value::<u64>().expect("u64");
            pong_tx.publish(&v.to_le_bytes()).expect("room");
        }
    });
    pin(cores.a);
    let mut h = histogram();
    for i in 0..n {
        let t = Instant::now();
        ping_tx.publish(&i.to_le_bytes()).expect("room");
        let v = pong_rx.recv().expect("no stop flag").value::<u64>().expect("u64");
        h.saturating_record(t.elapsed().as_nanos() as u64);
        assert_eq!(v, i, "{system} ping-pong answer");
    }
    echoer.join().expect("echo");
    h
}

/// `Requester::call` against one responder echoing a u64, both busy-spinning: a request
/// through the service's ring and its group claim, the reply through the requester's ring,
/// each request with a deadline `timeout` away (`Duration::MAX`: none, no clock read).
fn request_reply(cores: Cores, n: u64, timeout: Duration) -> Histogram<u64> {
    request_reply_with(cores, n, timeout, WaitStrategy::BusySpin, Shape::U64)
}

/// [`request_reply_with`] of 4 KiB requests echoed, in slots of `slot_size` bytes,
/// busy-spinning, no deadline.
fn request_reply_4k(cores: Cores, n: u64, slot_size: usize) -> Histogram<u64> {
    let shape = Shape::Bytes { len: 4096, slot_size };
    request_reply_with(cores, n, Duration::MAX, WaitStrategy::BusySpin, shape)
}

/// What the requests and replies of [`request_reply_with`] are.
#[derive(Clone, Copy)]
enum Shape {
    /// A u64 in 128-byte slots.
    U64,
    /// `len` bytes (an echo), in slots of `slot_size` bytes: in place if it fits one, as a
    /// message larger than a slot if not.
    Bytes { len: usize, slot_size: usize },
}

/// [`request_reply`] with both sides waiting by `wait` (on a ring with wake-ups unless they
/// spin), the requests and replies of `shape`.
fn request_reply_with(
    cores: Cores,
    n: u64,
    timeout: Duration,
    wait: WaitStrategy,
    shape: Shape,
) -> Histogram<u64> {
    let (len, slot_size) = match shape {
        Shape::U64 => (8, 128),
        Shape::Bytes { len, slot_size } => (len, slot_size),
    };
    let builder = Ring::builder().capacity(64).slot_size(slot_size);
    let builder = if wait == WaitStrategy::BusySpin {
        builder.wakeups(false)
    } else {
        builder
    };
    let service = Service::new(builder).expect("valid ring");
    let mut responder = service
        .responder("echo")
        .wait_strategy(wait)
        .attach()
        .expect("attach");
    let mut requester = service
        .requester()
        .reply_capacity(64)
        .wait_strategy(wait)
        .build()
        .expect("requester");
    let echo = std::thread::spawn(move || {
        pin(cores.b);
        for _ in 0..n {
            // The u64's reply is an array: no allocation in the round trip.
            match shape {
                Shape::U64 => responder
                    .respond(|r| u64::from_le_bytes(r.payload().try_into().expect("a u64")).to_le_bytes()),
                Shape::Bytes { .. } => responder.respond(|r| r.payload().to_vec()),
            }
            .expect("no stop flag");
        }
    });
    pin(cores.a);
    let mut h = histogram();
    let mut request = vec![0u8; len];
    for i in 0..n {
        request[..8].copy_from_slice(&i.to_le_bytes());
        let t = Instant::now();
        let reply = requester.call(&request, timeout).expect("a reply");
        let v = u64::from_le_bytes(reply.payload()[..8].try_into().expect("a u64"));
        h.saturating_record(t.elapsed().as_nanos() as u64);
        assert_eq!(v, i, "ringmq request-reply answer");
        assert_eq!(reply.payload().len(), len, "ringmq request-reply length");
    }
    echo.join().expect("echo");
    h
}

/// The limit of a blocking round trip: two threads taking turns through two futex words, each
/// asleep in `FUTEX_WAIT` until the other's `FUTEX_WAKE`, nothing else.
fn futex_pingpong(cores: Cores, n: u64) -> Histogram<u64> {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    let words = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
    let echo = {
        let words = Arc::clone(&words);
        std::thread::spawn(move || {
            pin(cores.b);
            for i in 1..=n as u32 {
                // Acquire pairs with the pinger's Release store of the ping word.
                while words[0].load(Ordering::Acquire) != i {
                    crate::blocking::futex_wait(&words[0], i - 1);
                }
                // Release pairs with the pinger's Acquire load of the pong word.
                words[1].store(i, Ordering::Release);
                crate::blocking::futex_wake(&words[1]);
            }
        })
    };
    pin(cores.a);
    let mut h = histogram();
    for i in 1..=n as u32 {
        let t = Instant::now();
        // Release pairs with the echo's Acquire load.
        words[0].store(i, Ordering::Release);
        crate::blocking::futex_wake(&words[0]);
        // Acquire pairs with the echo's Release store.
        while words[1].load(Ordering::Acquire) != i {
            crate::blocking::futex_wait(&words[1], i - 1);
        }
        h.saturating_record(t.elapsed().as_nanos() as u64);
    }
    echo.join().expect("echo");
    h
}

/// A publish and its confirm by the one subscriber (busy-spinning), which acknowledges each
/// message as it reads it: the time from publish until the producer knows it was consumed.
fn confirmed_publish(cores: Cores, n: u64) -> Histogram<u64> {
    let wait = WaitStrategy::BusySpin;
    let ring = Ring::builder()
        .capacity(64)
        .slot_size(16)
        .wakeups(false)
        .build()
        .expect("valid ring");
    let mut consumer = ring.subscriber("c").wait_strategy(wait).attach().expect("attach");
    let mut producer = ring.producer_with(wait).expect("producer");
    let mut confirmer = ring
        .confirmer_with(ConfirmBy::Consumer("c".into()), wait)
        .expect("confirmer");
    let reader = std::thread::spawn(move || {
        pin(cores.b);
        for i in 0..n {
            let v = consumer
                .recv()
                .expect("no stop flag")
                .value::<u64>()
                .expect("u64");
            assert_eq!(v, i, "ringmq confirmed publish");
        }
        // Attached until the producer's last confirm: a subscriber that detached has no
        // position to confirm by.
        consumer
    });
    pin(cores.a);
    let mut h = histogram();
    for i in 0..n {
        let t = Instant::now();
        let s = producer.publish(&i.to_le_bytes()).expect("room");
        confirmer.confirm(s).expect("attached");
        h.saturating_record(t.elapsed().as_nanos() as u64);
    }
    drop(reader.join().expect("reader"));
    h
}

/// Ping-pong over two spinning queues: (push, pop) for the ping direction and the pong one.
fn spin_pingpong<PushA, PopA, PushB, PopB>(
    cores: Cores,
    n: u64,
    name: &str,
    ping: (PushA, PopA),
    pong: (PushB, PopB),
) -> Histogram<u64>
where
    PushA: FnMut(u64) -> bool,
    PopA: FnMut() -> Option<u64> + Send + 'static,
    PushB: FnMut(u64) -> bool + Send + 'static,
    PopB: FnMut() -> Option<u64>,
{
    let (mut ping_push, mut ping_pop) = ping;
    let (mut pong_push, mut pong_pop) = pong;
    let echo = std::thread::spawn(move || {
        pin(cores.b);
        for _ in 0..n {
            let v = loop {
                if let Some(v) = ping_pop() {
                    break v;
                }
            };
            while !pong_push(v) {}
        }
    });
    pin(cores.a);
    let mut h = histogram();
    for i in 0..n {
        let t = Instant::now();
        while !ping_push(i) {}
        let v = loop {
            if let Some(v) = pong_pop() {
                break v;
            }
        };
        h.saturating_record(t.elapsed().as_nanos() as u64);
        assert_eq!(v, i, "{name} ping-pong answer");
    }
    echo.join().expect("echo");
    h
}

fn rtrb(cores: Cores, n: u64) -> Histogram<u64> {
    let (mut ping_tx, mut ping_rx) = rtrb::RingBuffer::<u64>::new(64);
    let (mut pong_tx, mut pong_rx) = rtrb::RingBuffer::<u64>::new(64);
    spin_pingpong(
        cores,
        n,
        "rtrb",
        (move |v| ping_tx.push(v).is_ok(), move || ping_rx.pop().ok()),
        (move |v| pong_tx.push(v).is_ok(), move || pong_rx.pop().ok()),
    )
}

fn array_queue(cores: Cores, n: u64) -> Histogram<u64> {
    use crossbeam_queue::ArrayQueue;
    use std::sync::Arc;
    let ping = Arc::new(ArrayQueue::<u64>::new(64));
    let pong = Arc::new(ArrayQueue::<u64>::new(64));
    let (p, q) = (ping.clone(), pong.clone());
    spin_pingpong(
        cores,
        n,
        "ArrayQueue",
        (move |v| ping.push(v).is_ok(), move || p.pop()),
        (move |v| q.push(v).is_ok(), move || pong.pop()),
    )
}

fn channel(cores: Cores, n: u64) -> Histogram<u64> {
    let (ping_tx, ping_rx) = crossbeam_channel::bounded::<u64>(64);
    let (pong_tx, pong_rx) = crossbeam_channel::bounded::<u64>(64);
    let echo = std::thread::spawn(move || {
        pin(cores.b);
        for _ in 0..n {
            pong_tx
                .send(ping_rx.recv().expect("pinger alive"))
                .expect("pinger alive");
        }
    });
    pin(cores.a);
    let mut h = histogram();
    for i in 0..n {
        let t = Instant::now();
        ping_tx.send(i).expect("echo alive");
        let v = pong_rx.recv().expect("echo alive");
        h.saturating_record(t.elapsed().as_nanos() as u64);
        assert_eq!(v, i, "crossbeam-channel ping-pong answer");
    }
    echo.join().expect("echo");
    h
}

/// The disruptor 4.4, both directions read with its `EventPoller` (so each side polls in its
/// own pinned thread, as the other systems do), busy-spinning, batch publish of one.
fn disruptor(cores: Cores, n: u64) -> Histogram<u64> {
    use disruptor::{BusySpin, Producer};
    let ring = || {
        let (poller, builder) = disruptor::build_single_producer(64, || 0u64, BusySpin).new_event_poller();
        (builder.build(), poller)
    };
    let (mut ping_tx, mut ping_rx) = ring();
    let (mut pong_tx, mut pong_rx) = ring();
    let echo = std::thread::spawn(move || {
        pin(cores.b);
        for _ in 0..n {
            let v = loop {
                if let Ok(mut events) = ping_rx.poll() {
                    if let Some(v) = (&mut events).next().copied() {
                        break v;
                    }
                }
            };
            pong_tx.publish(|e| *e = v);
        }
    });
    pin(cores.a);
    let mut h = histogram();
    for i in 0..n {
        let t = Instant::now();
        ping_tx.publish(|e| *e = i);
        let v = loop {
            if let Ok(mut events) = pong_rx.poll() {
                if let Some(v) = (&mut events).next().copied() {
                    break v;
                }
            }
        };
        h.saturating_record(t.elapsed().as_nanos() as u64);
        assert_eq!(v, i, "disruptor ping-pong answer");
    }
    echo.join().expect("echo");
    h
}
