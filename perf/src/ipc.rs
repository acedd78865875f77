//! Between two processes: 1P1C throughput and ping-pong with the consumer (or the echoer) in
//! a child process pinned to the other core, and the machine's own limit measured the same
//! way (a cache-line ping-pong through a /dev/shm mapping).
//!
//! The child is this executable run as `ringmq-perf --child KIND SYSTEM NAME N CORE`. It sets
//! up its side, prints `ready`, runs, checks every message (a wrong one panics it, and the
//! parent fails the run), and for throughput prints `rate R`: messages per second from its
//! first message to its last, so process start-up and teardown are not counted.

use crate::calibrate;
use crate::pin::{pin, Cores};
use hdrhistogram::Histogram;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Systems of the cross-process throughput scenario (`ipc`).
pub const THROUGHPUT: &[&str] = &[
    "ringmq (batch 64)",
    "ringmq fixed-size (batch 64)",
    "ringmq (single)",
    "ringfire",
    "disruptor-mp",
    "iceoryx2",
    "zeromq ipc",
];

/// Systems of the cross-process ping-pong scenario (`ipc-pingpong`).
pub const PINGPONG: &[&str] = &[
    "bare cache line (/dev/shm)",
    BARE_RING_SHM,
    "ringmq",
    "ringfire",
    "disruptor-mp",
    "iceoryx2",
    "zeromq ipc",
];

/// The bare ring (`calibrate::ring_rtt`) through a /dev/shm mapping.
pub const BARE_RING_SHM: &str = "bare ring (64 slots of 16 bytes, /dev/shm)";

const CAPACITY: u64 = 1 << 16;
const BATCH: usize = 64;
const PING_CAPACITY: u64 = 64;

/// A name no other run or test uses, removed by [`Cleanup`].
fn unique(tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "perf-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes a run's files in /dev/shm and /tmp, also when the run fails.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn shm_path(name: &str) -> String {
    ringmq::TopicDir::shm()
        .path(name)
        .expect("a valid name")
        .display()
        .to_string()
}

/// The child process of one case.
struct Peer {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Peer {
    /// Starts the child and waits until it says it is ready.
    fn start(kind: &str, system: &str, name: &str, n: u64, cores: Cores) -> Peer {
        let exe = std::env::current_exe().expect("own executable");
        let mut child = Command::new(exe)
            .args([
                "--child",
                kind,
                system,
                name,
                &n.to_string(),
                &cores.b.id.to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the child process");
        let mut out = BufReader::new(child.stdout.take().expect("piped"));
        // Some peers print their own chatter first.
        let mut line = String::new();
        loop {
            line.clear();
            let read = out.read_line(&mut line).expect("child output");
            assert!(read > 0, "{system}: the child exited before it was ready");
            if line.trim() == "ready" {
                break;
            }
        }
        Peer { child, out }
    }

    /// Waits for the child; returns the value of its `rate` line, if any.
    fn finish(mut self, system: &str) -> Option<f64> {
        let mut rest = String::new();
        let mut line = String::new();
        while self.out.read_line(&mut line).expect("child output") > 0 {
            rest.push_str(&line);
            line.clear();
        }
        let status = self.child.wait().expect("child exit");
        assert!(status.success(), "{system}: the child process failed ({status})");
        rest.lines()
            .find_map(|l| l.strip_prefix("rate ").map(|r| r.parse().expect("a number")))
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("valid bounds")
}

/// Pings `n` times through `ping` and `pong`, recording each round trip.
fn ping_loop(
    n: u64,
    system: &str,
    mut send: impl FnMut(u64),
    mut recv: impl FnMut() -> u64,
) -> Histogram<u64> {
    let mut h = histogram();
    for i in 0..n {
        let t = Instant::now();
        send(i);
        let v = recv();
        h.saturating_record(t.elapsed().as_nanos() as u64);
        assert_eq!(v, i, "{system} ping-pong answer");
    }
    h
}

// ---- the parent's side -------------------------------------------------------------------

/// Cross-process 1P1C throughput of `system`, u64 messages, in messages per second.
pub fn throughput(system: &str, cores: Cores, n: u64) -> f64 {
    let name = unique("tput");
    let mut cleanup = Cleanup(vec![shm_path(&name)]);
    pin(cores.a);
    let rate = match system {
        "ringmq (batch 64)" | "ringmq fixed-size (batch 64)" | "ringmq (single)" => {
            let builder = ringmq::Ring::builder().capacity(CAPACITY).wakeups(false);
            let builder = if system.contains("fixed-size") {
                builder.fixed_size(8)
            } else {
                builder.slot_size(16)
            };
            let ring = ringmq::TopicDir::shm().create(&name, builder).expect("ring");
            let peer = Peer::start("throughput", system, &name, n, cores);
            let mut producer = ring
                .producer_with(ringmq::WaitStrategy::BusySpin)
                .expect("producer");
            let batch = if system == "ringmq (single)" { 1 } else { 64 };
            crate::spsc::publish_numbers::<u64>(&mut producer, n, batch);
            peer.finish(system)
        }
        "ringfire" => {
            let path = format!("/dev/shm/{name}");
            cleanup.0.push(path.clone());
            let mut producer = ringfire::RingProducerBuilder::new(CAPACITY)
                .flow_control(ringfire::FlowControl::LosslessBackpressure)
                .build::<u64, _>(&path)
                .expect("ringfire producer");
            let peer = Peer::start("throughput", system, &path, n, cores);
            for i in 0..n {
                producer.push(&i);
            }
            peer.finish(system)
        }
        "disruptor-mp" => {
            let segment = disruptor_mp::portable_shm_segment_name(&name);
            cleanup.0.extend(disruptor_mp_files(&segment, "cp"));
            let mut producer = disruptor_mp::build_shared_single_producer::<u64>(&segment, CAPACITY as usize)
                .discover_consumer_with_prefix(1, "cp")
                .with_coordination(disruptor_mp::CoordinationMode::Immediate)
                .build_producer(u64::default)
                .expect("disruptor-mp producer");
            let peer = Peer::start("throughput", system, &segment, n, cores);
            assert!(
                producer.wait_for_consumer_id("cp_0", Duration::from_secs(10)),
                "disruptor-mp consumer"
            );
            let mut next = 0u64;
            while next < n {
                let k = BATCH.min((n - next) as usize);
                // `batch_publish` does not wait for room: spin until it has some.
                if producer.batch_publish(k, |e, i| *e = next + i as u64).is_ok() {
                    next += k as u64;
                }
            }
            peer.finish(system)
        }
        "iceoryx2" => {
            use iceoryx2::prelude::*;
            let node = NodeBuilder::new().create::<ipc::Service>().expect("node");
            let service = node
                .service_builder(&name.as_str().try_into().expect("service name"))
                .publish_subscribe::<u64>()
                .enable_safe_overflow(false)
                .subscriber_max_buffer_size(CAPACITY as usize)
                .open_or_create()
                .expect("service");
            let publisher = service
                .publisher_builder()
                .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
                .create()
                .expect("publisher");
            let peer = Peer::start("throughput", system, &name, n, cores);
            for i in 0..n {
                publisher.send_copy(i).expect("send");
            }
            peer.finish(system)
        }
        "zeromq ipc" => {
            let path = format!("/tmp/{name}.ipc");
            cleanup.0.push(path.clone());
            let ctx = zmq::Context::new();
            let socket = ctx.socket(zmq::PUSH).expect("socket");
            socket.set_sndhwm(CAPACITY as i32).expect("hwm");
            socket.bind(&format!("ipc://{path}")).expect("bind");
            let peer = Peer::start("throughput", system, &path, n, cores);
            for i in 0..n {
                socket.send(&i.to_le_bytes()[..], 0).expect("send");
            }
            let rate = peer.finish(system);
            drop(socket);
            rate
        }
        other => panic!("unknown system {other}"),
    };
    rate.expect("the child reports its rate")
}

/// iceoryx2's round-trip configuration, as its own publish-subscribe benchmark sets it: one
/// publisher, one subscriber, no history, a one-sample subscriber buffer that overwrites
/// (only one message is ever in flight in a ping-pong).
fn iceoryx2_latency_config(
    builder: iceoryx2::service::builder::publish_subscribe::Builder<u64, (), iceoryx2::service::ipc::Service>,
) -> iceoryx2::service::builder::publish_subscribe::Builder<u64, (), iceoryx2::service::ipc::Service> {
    builder
        .max_publishers(1)
        .max_subscribers(1)
        .history_size(0)
        .subscriber_max_buffer_size(1)
        .enable_safe_overflow(true)
}

/// Cross-process ping-pong of `system`: `n` round trips, each recorded.
pub fn pingpong(system: &str, cores: Cores, n: u64) -> Histogram<u64> {
    let name = unique("ping");
    let ping_name = format!("{name}-a");
    let pong_name = format!("{name}-b");
    let mut cleanup = Cleanup(vec![shm_path(&ping_name), shm_path(&pong_name)]);
    pin(cores.a);
    match system {
        "bare cache line (/dev/shm)" => {
            let path = shm_path(&name);
            cleanup.0.push(path.clone());
            let lines = SharedLines::create(&path);
            let peer = Peer::start("pingpong", system, &path, n, cores);
            let mut h = histogram();
            for i in 1..=n {
                let t = Instant::now();
                lines.ping().store(i, Ordering::Release);
                while lines.pong().load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                h.saturating_record(t.elapsed().as_nanos() as u64);
            }
            peer.finish(system);
            h
        }
        BARE_RING_SHM => {
            let path = shm_path(&name);
            cleanup.0.push(path.clone());
            let lines = SharedLines::create(&path);
            let peer = Peer::start("pingpong", system, &path, n, cores);
            let mut h = histogram();
            for i in 0..n {
                let t = Instant::now();
                calibrate::ring_send(lines.ring(0), i, !i);
                let answer = calibrate::ring_recv(lines.ring(1), i);
                h.saturating_record(t.elapsed().as_nanos() as u64);
                assert_eq!(answer, !i, "bare ring ping-pong answer");
            }
            peer.finish(system);
            h
        }
        "ringmq" => {
            let make = |n: &str| {
                let builder = ringmq::Ring::builder()
                    .capacity(PING_CAPACITY)
                    .slot_size(16)
                    .wakeups(false);
                ringmq::TopicDir::shm().create(n, builder).expect("ring")
            };
            let (ping, pong) = (make(&ping_name), make(&pong_name));
            let wait = ringmq::WaitStrategy::BusySpin;
            let mut rx = pong
                .subscriber("pinger")
                .wait_strategy(wait)
                .attach()
                .expect("attach");
            let peer = Peer::start("pingpong", system, &name, n, cores);
            let mut tx = ping.producer_with(wait).expect("producer");
            let h = ping_loop(
                n,
                system,
                |i| {
                    tx.publish(&i.to_le_bytes()).expect("room");
                },
                || rx.recv().expect("no stop flag").value::<u64>().expect("u64"),
            );
            peer.finish(system);
            h
        }
        "ringfire" => {
            let (a, b) = (
                format!("/dev/shm/{ping_name}.rf"),
                format!("/dev/shm/{pong_name}.rf"),
            );
            cleanup.0.extend([a.clone(), b.clone()]);
            let mut tx = ringfire::RingProducer::<u64>::create(&a, PING_CAPACITY).expect("ringfire");
            // The child attaches to `a` and creates `b`.
            let peer = Peer::start("pingpong", system, &name, n, cores);
            let mut rx = ringfire::RingConsumer::<u64>::builder()
                .start_from_head()
                .attach(&b)
                .expect("ringfire consumer");
            let mut wait = ringfire::BusySpin::new();
            let h = ping_loop(n, system, |i| tx.push(&i), || rx.recv_blocking(&mut wait));
            peer.finish(system);
            h
        }
        "disruptor-mp" => {
            let (a, b) = (
                disruptor_mp::portable_shm_segment_name(&ping_name),
                disruptor_mp::portable_shm_segment_name(&pong_name),
            );
            cleanup.0.extend(disruptor_mp_files(&a, "cp"));
            cleanup.0.extend(disruptor_mp_files(&b, "cq"));
            let mut tx = disruptor_mp::build_shared_single_producer::<u64>(&a, PING_CAPACITY as usize)
                .discover_consumer_with_prefix(1, "cp")
                .with_coordination(disruptor_mp::CoordinationMode::Immediate)
                .build_producer(u64::default)
                .expect("disruptor-mp producer");
            // The child attaches to the ping segment and creates the pong one.
            let peer = Peer::start("pingpong", system, &format!("{a}:{b}"), n, cores);
            let mut rx = disruptor_mp::attach_shared_consumer::<u64>(&b, PING_CAPACITY as usize)
                .with_consumer_id("cq_0")
                .build_consumer()
                .expect("disruptor-mp consumer");
            assert!(
                tx.wait_for_consumer_id("cp_0", Duration::from_secs(10)),
                "disruptor-mp echo"
            );
            let h = ping_loop(n, system, |i| tx.publish(|e| *e = i), || rx.consume_next().1);
            peer.finish(system);
            h
        }
        "iceoryx2" => {
            use iceoryx2::prelude::*;
            let node = NodeBuilder::new().create::<ipc::Service>().expect("node");
            let service = |n: &str| {
                iceoryx2_latency_config(
                    node.service_builder(&n.try_into().expect("service name"))
                        .publish_subscribe::<u64>(),
                )
                .open_or_create()
                .expect("service")
            };
            let (ping, pong) = (service(&ping_name), service(&pong_name));
            let tx = ping.publisher_builder().create().expect("publisher");
            let rx = pong.subscriber_builder().create().expect("subscriber");
            let peer = Peer::start("pingpong", system, &name, n, cores);
            // As iceoryx2's own benchmark: the next sample is loaned right after a send, while
            // the round trip is in flight, and written in place.
            let mut loaned = Some(tx.loan_uninit().expect("loan"));
            let h = ping_loop(
                n,
                system,
                |i| {
                    let sample = loaned.take().expect("a loaned sample");
                    sample.write_payload(i).send().expect("send");
                    loaned = Some(tx.loan_uninit().expect("loan"));
                },
                || loop {
                    if let Some(sample) = rx.receive().expect("receive") {
                        return *sample;
                    }
                },
            );
            peer.finish(system);
            h
        }
        "zeromq ipc" => {
            let path = format!("/tmp/{name}.ipc");
            cleanup.0.push(path.clone());
            let ctx = zmq::Context::new();
            let socket = ctx.socket(zmq::PAIR).expect("socket");
            socket.bind(&format!("ipc://{path}")).expect("bind");
            let peer = Peer::start("pingpong", system, &path, n, cores);
            let h = ping_loop(
                n,
                system,
                |i| socket.send(&i.to_le_bytes()[..], 0).expect("send"),
                || {
                    u64::from_le_bytes(
                        socket
                            .recv_bytes(0)
                            .expect("recv")
                            .as_slice()
                            .try_into()
                            .expect("8 bytes"),
                    )
                },
            );
            peer.finish(system);
            h
        }
        other => panic!("unknown system {other}"),
    }
}

/// What a disruptor-mp segment leaves in /dev/shm: the segment and its consumer's sequence.
fn disruptor_mp_files(segment: &str, prefix: &str) -> [String; 2] {
    let segment = segment.trim_start_matches('/');
    [
        format!("/dev/shm/{segment}"),
        format!("/dev/shm/{segment}_{prefix}_0_seq"),
    ]
}

// ---- the bare cache line through /dev/shm ---------------------------------------------------

/// A page of a /dev/shm file: the ping word and the pong word on 128-byte lines of their own,
/// then two bare rings (zero-filled: empty).
struct SharedLines {
    map: memmap::Map,
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
        file.set_len(memmap::LEN as u64).expect("size");
        SharedLines {
            map: memmap::Map::new(&file),
        }
    }

    fn open(path: &str) -> Self {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("open");
        SharedLines {
            map: memmap::Map::new(&file),
        }
    }

    fn ping(&self) -> &AtomicU64 {
        self.map.word(0)
    }

    fn pong(&self) -> &AtomicU64 {
        self.map.word(128)
    }

    /// Bare ring `k` (0: ping, 1: pong).
    fn ring(&self, k: usize) -> &calibrate::RingSlots {
        self.map.ring(1024 * (k + 1))
    }
}

mod memmap {
    use std::os::fd::AsRawFd;
    use std::sync::atomic::AtomicU64;

    /// Bytes of the mapping.
    pub const LEN: usize = 4096;

    /// A shared mapping of `LEN` bytes.
    pub struct Map(*mut u8);

    impl Map {
        pub fn new(file: &std::fs::File) -> Self {
            // SAFETY: maps LEN bytes of a file that has LEN; checked for failure.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    LEN,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    file.as_raw_fd(),
                    0,
                )
            };
            assert_ne!(ptr, libc::MAP_FAILED, "mmap");
            Map(ptr as *mut u8)
        }

        pub fn word(&self, offset: usize) -> &AtomicU64 {
            assert!(offset + 8 <= LEN && offset.is_multiple_of(8));
            // SAFETY: in bounds and aligned (the mapping is page aligned); the mapping lives
            // as long as `self`; the word is only accessed atomically, by both processes.
            unsafe { &*(self.0.add(offset) as *const AtomicU64) }
        }

        pub fn ring(&self, offset: usize) -> &crate::calibrate::RingSlots {
            let len = std::mem::size_of::<crate::calibrate::RingSlots>();
            assert!(offset + len <= LEN && offset.is_multiple_of(128));
            // SAFETY: in bounds and line-aligned (the mapping is page aligned); the mapping
            // lives as long as `self`; `RingSlots` is atomics only, accessed only atomically
            // by both processes, and any bit pattern is a valid one.
            unsafe { &*(self.0.add(offset) as *const crate::calibrate::RingSlots) }
        }
    }

    impl Drop for Map {
        fn drop(&mut self) {
            // SAFETY: unmaps exactly what `new` mapped, once.
            unsafe { libc::munmap(self.0 as *mut libc::c_void, LEN) };
        }
    }
}

// ---- the child's side ----------------------------------------------------------------------

/// The child's entry point: `--child KIND SYSTEM NAME N CORE`.
pub fn child(args: &[String]) -> ! {
    let [kind, system, name, n, core] = args else {
        panic!("usage: --child KIND SYSTEM NAME N CORE");
    };
    let n: u64 = n.parse().expect("N");
    let core: usize = core.parse().expect("CORE");
    pin(core_affinity::CoreId { id: core });
    match kind.as_str() {
        "throughput" => child_throughput(system, name, n),
        "pingpong" => child_pingpong(system, name, n),
        other => panic!("unknown kind {other}"),
    }
    std::process::exit(0);
}

fn ready() {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").expect("stdout");
    out.flush().expect("stdout");
}

/// Checks that u64 messages arrive as 0, 1, 2, ... and times them from the first.
#[derive(Default)]
struct Checker {
    started: Option<Instant>,
    expected: u64,
}

impl Checker {
    fn check(&mut self, v: u64, system: &str) {
        if self.started.is_none() {
            self.started = Some(Instant::now());
        }
        assert_eq!(v, self.expected, "{system} lost or reordered a message");
        self.expected += 1;
    }
}

/// Receives `n` u64s, checking each, and reports the rate from the first to the last.
fn child_throughput(system: &str, name: &str, n: u64) {
    let mut checker = Checker::default();
    match system {
        "ringmq (batch 64)" | "ringmq fixed-size (batch 64)" | "ringmq (single)" => {
            let ring = ringmq::Ring::open(shm_path(name)).expect("open");
            let mut consumer = ring
                .subscriber("perf")
                .wait_strategy(ringmq::WaitStrategy::BusySpin)
                .attach()
                .expect("attach");
            ready();
            // The clock starts at the first message; then the reader is the in-process
            // case's (`spsc`), so the two compare.
            let first = consumer
                .recv()
                .expect("no stop flag")
                .value::<u64>()
                .expect("u64");
            checker.check(first, system);
            crate::spsc::read_numbers::<u64>(&mut consumer, checker.expected, n, system);
            checker.expected = n;
        }
        "ringfire" => {
            let mut consumer = ringfire::RingConsumer::<u64>::builder()
                .start_from_head()
                .attach(name)
                .expect("ringfire consumer");
            ready();
            let mut wait = ringfire::BusySpin::new();
            while checker.expected < n {
                checker.check(consumer.recv_blocking(&mut wait), system);
            }
        }
        "disruptor-mp" => {
            let mut consumer = disruptor_mp::attach_shared_consumer::<u64>(name, CAPACITY as usize)
                .with_consumer_id("cp_0")
                .build_consumer()
                .expect("disruptor-mp consumer");
            ready();
            while checker.expected < n {
                checker.check(consumer.consume_next().1, system);
            }
        }
        "iceoryx2" => {
            use iceoryx2::prelude::*;
            let node = NodeBuilder::new().create::<ipc::Service>().expect("node");
            let service = node
                .service_builder(&name.try_into().expect("service name"))
                .publish_subscribe::<u64>()
                .enable_safe_overflow(false)
                .subscriber_max_buffer_size(CAPACITY as usize)
                .open_or_create()
                .expect("service");
            let subscriber = service
                .subscriber_builder()
                .buffer_size(CAPACITY as usize)
                .create()
                .expect("subscriber");
            ready();
            while checker.expected < n {
                if let Some(sample) = subscriber.receive().expect("receive") {
                    checker.check(*sample, system);
                }
            }
        }
        "zeromq ipc" => {
            let ctx = zmq::Context::new();
            let socket = ctx.socket(zmq::PULL).expect("socket");
            socket.set_rcvhwm(CAPACITY as i32).expect("hwm");
            socket.connect(&format!("ipc://{name}")).expect("connect");
            ready();
            while checker.expected < n {
                let bytes = socket.recv_bytes(0).expect("recv");
                checker.check(
                    u64::from_le_bytes(bytes.as_slice().try_into().expect("8 bytes")),
                    system,
                );
            }
        }
        other => panic!("unknown system {other}"),
    }
    let elapsed = checker
        .started
        .expect("at least one message")
        .elapsed()
        .as_secs_f64();
    println!("rate {}", (n.saturating_sub(1)) as f64 / elapsed.max(1e-9));
}

/// Echoes `n` u64s.
fn child_pingpong(system: &str, name: &str, n: u64) {
    match system {
        "bare cache line (/dev/shm)" => {
            let lines = SharedLines::open(name);
            ready();
            for i in 1..=n {
                while lines.ping().load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                lines.pong().store(i, Ordering::Release);
            }
        }
        BARE_RING_SHM => {
            let lines = SharedLines::open(name);
            ready();
            for i in 0..n {
                let value = calibrate::ring_recv(lines.ring(0), i);
                calibrate::ring_send(lines.ring(1), i, value);
            }
        }
        "ringmq" => {
            let ping = ringmq::Ring::open(shm_path(&format!("{name}-a"))).expect("open");
            let pong = ringmq::Ring::open(shm_path(&format!("{name}-b"))).expect("open");
            let wait = ringmq::WaitStrategy::BusySpin;
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
        "ringfire" => {
            let (a, b) = (format!("/dev/shm/{name}-a.rf"), format!("/dev/shm/{name}-b.rf"));
            let mut rx = ringfire::RingConsumer::<u64>::builder()
                .start_from_head()
                .attach(&a)
                .expect("ringfire consumer");
            let mut tx = ringfire::RingProducer::<u64>::create(&b, PING_CAPACITY).expect("ringfire");
            ready();
            let mut wait = ringfire::BusySpin::new();
            for _ in 0..n {
                let v = rx.recv_blocking(&mut wait);
                tx.push(&v);
            }
        }
        "disruptor-mp" => {
            let (a, b) = name.split_once(':').expect("two segment names");
            let mut rx = disruptor_mp::attach_shared_consumer::<u64>(a, PING_CAPACITY as usize)
                .with_consumer_id("cp_0")
                .build_consumer()
                .expect("disruptor-mp consumer");
            let mut tx = disruptor_mp::build_shared_single_producer::<u64>(b, PING_CAPACITY as usize)
                .discover_consumer_with_prefix(1, "cq")
                .with_coordination(disruptor_mp::CoordinationMode::Immediate)
                .build_producer(u64::default)
                .expect("disruptor-mp producer");
            ready();
            for i in 0..n {
                let v = rx.consume_next().1;
                if i == 0 {
                    // The pinger attached its consumer before its first ping.
                    assert!(
                        tx.wait_for_consumer_id("cq_0", Duration::from_secs(10)),
                        "disruptor-mp pinger"
                    );
                }
                tx.publish(|e| *e = v);
            }
        }
        "iceoryx2" => {
            use iceoryx2::prelude::*;
            let node = NodeBuilder::new().create::<ipc::Service>().expect("node");
            let service = |n: String| {
                iceoryx2_latency_config(
                    node.service_builder(&n.as_str().try_into().expect("service name"))
                        .publish_subscribe::<u64>(),
                )
                .open_or_create()
                .expect("service")
            };
            let (ping, pong) = (service(format!("{name}-a")), service(format!("{name}-b")));
            let rx = ping.subscriber_builder().create().expect("subscriber");
            let tx = pong.publisher_builder().create().expect("publisher");
            ready();
            for _ in 0..n {
                // Loaned before the wait, as in iceoryx2's own benchmark.
                let sample = tx.loan_uninit().expect("loan");
                let v = loop {
                    if let Some(sample) = rx.receive().expect("receive") {
                        break *sample;
                    }
                };
                sample.write_payload(v).send().expect("send");
            }
        }
        "zeromq ipc" => {
            let ctx = zmq::Context::new();
            let socket = ctx.socket(zmq::PAIR).expect("socket");
            socket.connect(&format!("ipc://{name}")).expect("connect");
            ready();
            for _ in 0..n {
                let bytes = socket.recv_bytes(0).expect("recv");
                socket.send(bytes, 0).expect("send");
            }
        }
        other => panic!("unknown system {other}"),
    }
}
