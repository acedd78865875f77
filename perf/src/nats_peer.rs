//! NATS JetStream as the journal's peer: 100-byte messages published to a stream with file
//! storage on a `nats-server` (Debian's package) started on loopback for the case, its store
//! in the case's scratch directory. The Debian server (2.9) syncs its files on its own
//! interval (two minutes by default) and has no setting to sync before each acknowledgement,
//! so its figures are at page-cache durability.

use crate::journal::{Scratch, ServerProcess, MESSAGE};
use async_nats::jetstream;
use hdrhistogram::Histogram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const PIPELINED: &str = "nats jetstream, file storage, 1000 acks in flight";
pub const ONE: &str = "nats jetstream, file storage, one at a time";

/// Whether `nats-server` can be run here (the cases are left out otherwise).
pub fn available() -> bool {
    ServerProcess::installed("nats-server")
}

/// A `nats-server` of this case with a stream `journal` on subject `j`, killed on drop.
struct Server {
    _server: ServerProcess,
    runtime: tokio::runtime::Runtime,
    context: jetstream::Context,
    _dir: Scratch,
}

impl Server {
    fn start() -> Server {
        let dir = Scratch::new("nats");
        let port = ServerProcess::free_port();
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (apt-get install nats-server)");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let context = runtime.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(20);
            let client = loop {
                match async_nats::connect(format!("127.0.0.1:{port}")).await {
                    Ok(c) => break c,
                    Err(e) if Instant::now() > deadline => panic!("nats-server did not start: {e}"),
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            };
            let context = jetstream::new(client);
            context
                .get_or_create_stream(jetstream::stream::Config {
                    name: "journal".into(),
                    subjects: vec!["j".into()],
                    storage: jetstream::stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .expect("a stream");
            context
        });
        Server {
            _server: ServerProcess(child),
            runtime,
            context,
            _dir: dir,
        }
    }
}

fn payload(i: u64) -> Vec<u8> {
    let mut p = vec![0u8; MESSAGE];
    p[..8].copy_from_slice(&i.to_le_bytes());
    p
}

/// Messages per second, `n` of them with up to 1000 acknowledgements awaited at a time, each
/// acknowledgement's stream sequence checked.
pub fn rate(n: u64) -> f64 {
    let server = Server::start();
    let context = &server.context;
    let start = Instant::now();
    server.runtime.block_on(async {
        let mut done = 0;
        while done < n {
            let here = 1000.min(n - done);
            let mut acks = Vec::with_capacity(here as usize);
            for i in done..done + here {
                acks.push(context.publish("j", payload(i).into()).await.expect("publish"));
            }
            for (i, ack) in (done..).zip(acks) {
                let ack = ack.await.expect("an acknowledgement");
                assert_eq!(ack.sequence, i + 1, "nats lost or reordered a message");
            }
            done += here;
        }
    });
    n as f64 / start.elapsed().as_secs_f64()
}

/// Each of `n` messages published and acknowledged alone.
pub fn one_at_a_time(n: u64) -> Histogram<u64> {
    let server = Server::start();
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
    server.runtime.block_on(async {
        for i in 0..n {
            let start = Instant::now();
            let ack = server
                .context
                .publish("j", payload(i).into())
                .await
                .expect("publish")
                .await
                .expect("an acknowledgement");
            assert_eq!(ack.sequence, i + 1);
            let _ = h.record((start.elapsed().as_nanos() as u64).max(1));
        }
    });
    h
}
