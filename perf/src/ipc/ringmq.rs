//! ringmq between two processes, through rings in this user's /dev/shm directory.

use super::{ping_loop, ready, shm_path, Checker, Peer, CAPACITY, PING_CAPACITY};
use crate::pin::Cores;
use hdrhistogram::Histogram;
use ringmq::{Ring, TopicDir, WaitStrategy};

pub const BATCH: &str = "ringmq (batch 64)";
pub const FIXED_BATCH: &str = "ringmq fixed-size (batch 64)";
pub const SINGLE: &str = "ringmq (single)";

/// The parent publishes `n` u64s, one at a time or in batches of 64, with the in-process
/// case's loop (`spsc::publish_numbers`), so the two compare.
pub fn throughput(system: &str, name: &str, cores: Cores, n: u64) -> Option<f64> {
    let builder = Ring::builder().capacity(CAPACITY).wakeups(false);
    let builder = if system == FIXED_BATCH {
        builder.fixed_size(8)
    } else {
        builder.slot_size(16)
    };
    let ring = TopicDir::shm().create(name, builder).expect("ring");
    let peer = Peer::start("throughput", system, name, n, cores);
    let mut producer = ring.producer_with(WaitStrategy::BusySpin).expect("producer");
    let batch = if system == SINGLE { 1 } else { super::BATCH };
    crate::spsc::publish_numbers::<u64>(&mut producer, n, batch);
    peer.finish(system)
}

/// The child reads them with the in-process case's reader (`spsc::read_numbers`).
pub fn child_throughput(system: &str, name: &str, n: u64, checker: &mut Checker) {
    let ring = Ring::open(shm_path(name)).expect("open");
    let mut consumer = ring
        .subscriber("perf")
        .wait_strategy(WaitStrategy::BusySpin)
        .attach()
        .expect("attach");
    ready();
    // The clock starts at the first message; then the reader is the in-process case's.
    let first = consumer
        .recv()
        .expect("no stop flag")
        .value::<u64>()
        .expect("u64");
    checker.check(first, system);
    crate::spsc::read_numbers::<u64>(&mut consumer, checker.expected, n, system);
    checker.expected = n;
}

/// Pings through ring `NAME-a`, answered through `NAME-b`, busy-spinning both ways.
pub fn pingpong(name: &str, cores: Cores, n: u64) -> Histogram<u64> {
    let make = |tag: &str| {
        let builder = Ring::builder()
            .capacity(PING_CAPACITY)
            .slot_size(16)
            .wakeups(false);
        TopicDir::shm()
            .create(&format!("{name}-{tag}"), builder)
            .expect("ring")
    };
    let (ping, pong) = (make("a"), make("b"));
    let wait = WaitStrategy::BusySpin;
    let mut rx = pong
        .subscriber("pinger")
        .wait_strategy(wait)
        .attach()
        .expect("attach");
    let peer = Peer::start("pingpong", "ringmq", name, n, cores);
    let mut tx = ping.producer_with(wait).expect("producer");
    let h = ping_loop(
        n,
        "ringmq",
        |i| {
            tx.publish(&i.to_le_bytes()).expect("room");
        },
        || rx.recv().expect("no stop flag").value::<u64>().expect("u64"),
    );
    peer.finish("ringmq");
    h
}

pub fn child_pingpong(name: &str, n: u64) {
    let ping = Ring::open(shm_path(&format!("{name}-a"))).expect("open");
    let pong = Ring::open(shm_path(&format!("{name}-b"))).expect("open");
    let wait = WaitStrategy::BusySpin;
    let mut rx = ping
        .subscriber("echo")
        .wait_strategy(wait)
        .attach()
        .expect("attach");
    let mut tx = pong.producer_with(wait).expect("producer");
    ready();
    for _ in 0..n {
        let v = rx.recv().expect("no stop flag").value::<u64>().expect("u64");
        tx.publish(&v.to_le_bytes()).expect("room");
    }
}

/// The system name of the request-reply case.
pub const REQUEST_REPLY: &str = "ringmq request-reply";

/// `Requester::call` of a u64 against a responder in the child, both busy-spinning: the
/// service is topic `NAME-a`, the reply ring a topic beside it.
pub fn request_reply(name: &str, cores: Cores, n: u64) -> Histogram<u64> {
    let builder = Ring::builder()
        .capacity(PING_CAPACITY)
        .slot_size(128)
        .wakeups(false);
    let service =
        ringmq::request::Service::create(&TopicDir::shm(), &format!("{name}-a"), builder).expect("service");
    let peer = Peer::start("pingpong", REQUEST_REPLY, name, n, cores);
    let mut requester = service
        .requester()
        .reply_capacity(PING_CAPACITY)
        .wait_strategy(WaitStrategy::BusySpin)
        .build()
        .expect("requester");
    let mut h = super::histogram();
    for i in 0..n {
        let t = std::time::Instant::now();
        let reply = requester
            .call(&i.to_le_bytes(), std::time::Duration::from_secs(10))
            .expect("a reply");
        let v = u64::from_le_bytes(reply.payload().try_into().expect("a u64"));
        h.saturating_record(t.elapsed().as_nanos() as u64);
        assert_eq!(v, i, "ringmq request-reply answer");
    }
    peer.finish(REQUEST_REPLY);
    h
}

/// The child's responder: echoes `n` requests.
pub fn child_request_reply(name: &str, n: u64) {
    let service = ringmq::request::Service::open(&TopicDir::shm(), &format!("{name}-a")).expect("open");
    let mut responder = service
        .responder("echo")
        .wait_strategy(WaitStrategy::BusySpin)
        .attach()
        .expect("attach");
    ready();
    for _ in 0..n {
        responder
            .respond(|r| u64::from_le_bytes(r.payload().try_into().expect("a u64")).to_le_bytes())
            .expect("no stop flag");
    }
}

/// The `blocking` case with the producer in the child and the consumer blocking on the futex.
pub const WAKE_BLOCK: &str = "ringmq Block, producer in another process";
/// The same with the consumer a task awaiting `recv_async`: the ring's waker thread is woken by
/// the child's publish and wakes the task.
pub const WAKE_ASYNC: &str = "ringmq async (tokio), producer in another process";

/// CLOCK_MONOTONIC nanoseconds: one clock for both processes.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The parent's side of [`WAKE_BLOCK`] and [`WAKE_ASYNC`]: ring `name`, its consumer here;
/// the child publishes `n` paced messages stamped with CLOCK_MONOTONIC, a quiet stretch (its
/// length in the name), one last.
pub fn wake(system: &str, name: &str, cores: Cores, n: u64) -> crate::blocking::Outcome {
    let builder = Ring::builder().capacity(1024).slot_size(16);
    let ring = TopicDir::shm().create(name, builder).expect("ring");
    let wait = if system == WAKE_BLOCK {
        WaitStrategy::Block
    } else {
        WaitStrategy::Backoff
    };
    let mut consumer = ring
        .subscriber("sleeper")
        .wait_strategy(wait)
        .attach()
        .expect("attach");
    // The child's stamps are CLOCK_MONOTONIC; `consume` reads them against its epoch.
    let (epoch, epoch_ns) = (std::time::Instant::now(), monotonic_ns());
    let peer = Peer::start("wake", system, name, n, cores);
    let outcome = if system == WAKE_BLOCK {
        crate::blocking::consume(n, epoch, || {
            let sent = consumer
                .recv()
                .expect("no stop flag")
                .value::<u64>()
                .expect("u64");
            sent.saturating_sub(epoch_ns)
        })
    } else {
        let runtime = crate::blocking::current_thread();
        crate::blocking::consume(n, epoch, || {
            runtime.block_on(async {
                let message = consumer.recv_async().await.expect("no stop flag");
                message.value::<u64>().expect("u64").saturating_sub(epoch_ns)
            })
        })
    };
    peer.finish(system);
    outcome
}

/// The child's producer for [`wake`].
pub fn child_wake(name: &str, n: u64) {
    let idle_ms: u64 = name
        .rsplit("-idle")
        .next()
        .and_then(|ms| ms.parse().ok())
        .expect("the quiet stretch in the name");
    let ring = Ring::open(shm_path(name)).expect("open");
    let mut producer = ring.producer().expect("producer");
    ready();
    // `produce` stamps with its epoch; the consumer wants CLOCK_MONOTONIC.
    let (epoch, epoch_ns) = (std::time::Instant::now(), monotonic_ns());
    crate::blocking::produce(n, std::time::Duration::from_millis(idle_ms), epoch, |v| {
        producer.publish(&(v + epoch_ns).to_le_bytes()).expect("room");
    });
}
