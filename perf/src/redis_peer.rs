//! Redis Streams as the journal's peer: `XADD` of 100-byte messages to a stream on a
//! `redis-server` (Debian's package) started on loopback for the case, with its append-only
//! file in the case's scratch directory, synced as `appendfsync` says (`always`: before each
//! reply, for everything written since the last sync; `everysec`: once a second).

use crate::journal::{Scratch, ServerProcess, MESSAGE};
use hdrhistogram::Histogram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const EVERYSEC_PIPELINED: &str = "redis XADD, appendfsync everysec, pipelined 1000";
pub const ALWAYS_PIPELINED: &str = "redis XADD, appendfsync always, pipelined 1000";
pub const ALWAYS_ONE: &str = "redis XADD, appendfsync always, one at a time";

/// Whether `redis-server` can be run here (the cases are left out otherwise).
pub fn available() -> bool {
    ServerProcess::installed("redis-server")
}

/// A `redis-server` of this case, killed on drop.
struct Server {
    _server: ServerProcess,
    connection: redis::Connection,
    _dir: Scratch,
}

impl Server {
    fn start(fsync: &str) -> Server {
        let dir = Scratch::new("redis");
        let port = ServerProcess::free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", fsync])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("a client");
        let deadline = Instant::now() + Duration::from_secs(20);
        let connection = loop {
            match client.get_connection() {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => panic!("redis-server did not start: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        Server {
            _server: ServerProcess(child),
            connection,
            _dir: dir,
        }
    }
}

fn xadd(i: u64) -> redis::Cmd {
    let mut payload = [0u8; MESSAGE];
    payload[..8].copy_from_slice(&i.to_le_bytes());
    let mut cmd = redis::cmd("XADD");
    cmd.arg("journal").arg("*").arg("m").arg(&payload[..]);
    cmd
}

/// Messages per second, `n` of them in pipelines of 1000, every reply checked.
pub fn rate(system: &str, n: u64) -> f64 {
    let fsync = if system == EVERYSEC_PIPELINED {
        "everysec"
    } else {
        "always"
    };
    let mut server = Server::start(fsync);
    let start = Instant::now();
    let mut done = 0;
    while done < n {
        let here = 1000.min(n - done);
        let mut pipe = redis::pipe();
        for i in done..done + here {
            pipe.add_command(xadd(i));
        }
        let ids: Vec<String> = pipe.query(&mut server.connection).expect("XADD");
        assert_eq!(ids.len() as u64, here, "redis lost a message");
        done += here;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let len: u64 = redis::cmd("XLEN")
        .arg("journal")
        .query(&mut server.connection)
        .expect("XLEN");
    assert_eq!(len, n, "redis lost messages");
    rate
}

/// Each of `n` messages added and acknowledged alone (`appendfsync always`: synced first).
pub fn one_at_a_time(n: u64) -> Histogram<u64> {
    let mut server = Server::start("always");
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
    for i in 0..n {
        let start = Instant::now();
        let _: String = xadd(i).query(&mut server.connection).expect("XADD");
        let _ = h.record((start.elapsed().as_nanos() as u64).max(1));
    }
    h
}
