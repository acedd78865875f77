//! Between two processes: 1P1C throughput and ping-pong with the consumer (or the echoer) in
//! a child process pinned to the other core, and the machine's own limits measured the same
//! way (a cache-line ping-pong and a bare ring through a /dev/shm mapping, `bare.rs`).
//!
//! One file per system, each holding both halves: the parent's (`throughput`, `pingpong`)
//! and the child's (`child_throughput`, `child_pingpong`). The child is this executable run as
//! `ringmq-perf --child KIND SYSTEM NAME N CORE`. It sets up its side, prints `ready`, runs,
//! checks every message (a wrong one panics it, and the parent fails the run), and for
//! throughput prints `rate R`: messages per second from its first message to its last, so
//! process start-up and teardown are not counted.

mod bare;
pub use bare::{RING as BARE_RING, STREAM as STREAMING_LIMIT};
mod disruptor_mp;
mod iceoryx2;
mod ringfire;
mod ringmq;
mod zeromq;
pub use ringmq::{WAKE_ASYNC, WAKE_BLOCK};

use crate::pin::{pin, Cores};
use hdrhistogram::Histogram;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Systems of the cross-process throughput scenario (`ipc`).
pub const THROUGHPUT: &[&str] = &[
    bare::STREAM,
    ringmq::BATCH,
    ringmq::FIXED_BATCH,
    ringmq::SINGLE,
    "ringfire",
    "disruptor-mp",
    "iceoryx2",
    "zeromq ipc",
];

/// Systems of the cross-process ping-pong scenario (`ipc-pingpong`).
pub const PINGPONG: &[&str] = &[
    bare::LINE,
    bare::RING,
    "ringmq",
    ringmq::REQUEST_REPLY,
    "ringfire",
    "disruptor-mp",
    "iceoryx2",
    iceoryx2::REQUEST_RESPONSE,
    "zeromq ipc",
    zeromq::REQ_REP,
];

/// Slots of every throughput case's queue.
const CAPACITY: u64 = 1 << 16;
/// Messages per publish where a system publishes in batches.
const BATCH: usize = 64;
/// Slots of every ping-pong case's queues.
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

/// The path of topic `name` in this user's /dev/shm directory.
fn shm_path(name: &str) -> String {
    ::ringmq::TopicDir::shm()
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

/// Pings `n` times through `send` and `recv`, recording each round trip.
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

/// Cross-process 1P1C throughput of `system`, u64 messages, in messages per second.
pub fn throughput(system: &str, cores: Cores, n: u64) -> f64 {
    let name = unique("tput");
    let mut cleanup = Cleanup(vec![shm_path(&name)]);
    pin(cores.a);
    let rate = match system {
        bare::STREAM => Some(crate::calibrate::best_of_each(
            &crate::calibrate::STRIDES,
            |stride| bare::throughput(&name, cores, n, stride).expect("the child reports its rate"),
        )),
        ringmq::BATCH | ringmq::FIXED_BATCH | ringmq::SINGLE => ringmq::throughput(system, &name, cores, n),
        "ringfire" => ringfire::throughput(&name, cores, n, &mut cleanup),
        "disruptor-mp" => disruptor_mp::throughput(&name, cores, n, &mut cleanup),
        "iceoryx2" => iceoryx2::throughput(&name, cores, n),
        "zeromq ipc" => zeromq::throughput(&name, cores, n, &mut cleanup),
        other => panic!("unknown system {other}"),
    };
    rate.expect("the child reports its rate")
}

/// Cross-process ping-pong of `system`: `n` round trips, each recorded.
pub fn pingpong(system: &str, cores: Cores, n: u64) -> Histogram<u64> {
    let name = unique("ping");
    let mut cleanup = Cleanup(vec![
        shm_path(&format!("{name}-a")),
        shm_path(&format!("{name}-b")),
    ]);
    pin(cores.a);
    match system {
        bare::LINE | bare::RING => bare::pingpong(system, &name, cores, n, &mut cleanup),
        "ringmq" => ringmq::pingpong(&name, cores, n),
        ringmq::REQUEST_REPLY => ringmq::request_reply(&name, cores, n),
        "ringfire" => ringfire::pingpong(&name, cores, n, &mut cleanup),
        "disruptor-mp" => disruptor_mp::pingpong(&name, cores, n, &mut cleanup),
        "iceoryx2" => iceoryx2::pingpong(&name, cores, n),
        iceoryx2::REQUEST_RESPONSE => iceoryx2::request_response(&name, cores, n),
        "zeromq ipc" => zeromq::pingpong(&name, cores, n, &mut cleanup),
        zeromq::REQ_REP => zeromq::request_reply(&name, cores, n, &mut cleanup),
        other => panic!("unknown system {other}"),
    }
}

/// A sleeping consumer woken by a producer in the child (the `blocking` scenario's loop, the
/// producer's half in the other process): wake-up latency and idle CPU.
pub fn wake(system: &str, cores: Cores, n: u64, idle: std::time::Duration) -> crate::blocking::Outcome {
    let name = format!("{}-idle{}", unique("wake"), idle.as_millis());
    let _cleanup = Cleanup(vec![shm_path(&name)]);
    pin(cores.a);
    ringmq::wake(system, &name, cores, n)
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
        "wake" => ringmq::child_wake(name, n),
        other => panic!("unknown kind {other}"),
    }
    std::process::exit(0);
}

/// Tells the parent the child is set up.
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
        bare::STREAM => bare::child_throughput(name, n, &mut checker),
        ringmq::BATCH | ringmq::FIXED_BATCH | ringmq::SINGLE => {
            ringmq::child_throughput(system, name, n, &mut checker)
        }
        "ringfire" => ringfire::child_throughput(name, n, &mut checker),
        "disruptor-mp" => disruptor_mp::child_throughput(name, n, &mut checker),
        "iceoryx2" => iceoryx2::child_throughput(name, n, &mut checker),
        "zeromq ipc" => zeromq::child_throughput(name, n, &mut checker),
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
        bare::LINE | bare::RING => bare::child_pingpong(system, name, n),
        "ringmq" => ringmq::child_pingpong(name, n),
        ringmq::REQUEST_REPLY => ringmq::child_request_reply(name, n),
        "ringfire" => ringfire::child_pingpong(name, n),
        "disruptor-mp" => disruptor_mp::child_pingpong(name, n),
        "iceoryx2" => iceoryx2::child_pingpong(name, n),
        iceoryx2::REQUEST_RESPONSE => iceoryx2::child_request_response(name, n),
        "zeromq ipc" | zeromq::REQ_REP => zeromq::child_pingpong(system, name, n),
        other => panic!("unknown system {other}"),
    }
}
