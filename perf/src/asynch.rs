//! async/await: ping-pong between two tasks of a multi-threaded tokio runtime (two workers),
//! every answer checked; ringmq's futures against tokio's mpsc and the async channels a user
//! would pick instead. Each round trip is two wake-ups of a task when the other side is not
//! already there.

use hdrhistogram::Histogram;
use std::future::Future;
use std::time::Instant;

/// The systems of the `async-pingpong` scenario.
pub const SYSTEMS: &[&str] = &["ringmq async", "tokio mpsc", "async-channel", "flume", "kanal"];

/// Ping-pong over two bounded channels made by `$make` (cloneable halves), whose futures are
/// `$send(v)` and `$recv()`: an echo task, and the pinger on the runtime's main task.
macro_rules! channel_case {
    ($n:expr, $system:expr, $make:expr, $send:ident, $recv:ident) => {{
        let (ping_tx, ping_rx) = $make;
        let (pong_tx, pong_rx) = $make;
        tokio::spawn(async move {
            while let Ok(v) = ping_rx.$recv().await {
                pong_tx.$send(v).await.expect("pinger alive");
            }
        });
        ping($n, $system, |i| {
            let (tx, rx) = (ping_tx.clone(), pong_rx.clone());
            async move {
                tx.$send(i).await.expect("echo alive");
                rx.$recv().await.expect("echo alive")
            }
        })
        .await
    }};
}

/// Runs `n` async round trips of `system`.
pub fn run(system: &str, n: u64) -> Histogram<u64> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        match system {
            "ringmq async" => ringmq_async(n).await,
            "tokio mpsc" => {
                let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<u64>(64);
                let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<u64>(64);
                tokio::spawn(async move {
                    while let Some(v) = ping_rx.recv().await {
                        pong_tx.send(v).await.expect("pinger alive");
                    }
                });
                let mut h = histogram();
                for i in 0..n {
                    let t = Instant::now();
                    ping_tx.send(i).await.expect("echo alive");
                    let v = pong_rx.recv().await.expect("echo alive");
                    h.saturating_record(t.elapsed().as_nanos() as u64);
                    assert_eq!(v, i, "{system} ping-pong answer");
                }
                h
            }
            "async-channel" => channel_case!(n, system, async_channel::bounded::<u64>(64), send, recv),
            "flume" => channel_case!(n, system, flume::bounded::<u64>(64), send_async, recv_async),
            "kanal" => channel_case!(n, system, kanal::bounded_async::<u64>(64), send, recv),
            other => panic!("unknown system {other}"),
        }
    })
}

/// Two heap rings of u64s; the echo task and the pinger each await `recv_async` and
/// `publish_async`.
async fn ringmq_async(n: u64) -> Histogram<u64> {
    let ring = || {
        ringmq::Ring::builder()
            .capacity(64)
            .slot_size(16)
            .build()
            .expect("valid ring")
    };
    let (ping_ring, pong_ring) = (ring(), ring());
    let mut ping_rx = ping_ring.subscriber("echo").attach().expect("attach");
    let mut pong_rx = pong_ring.subscriber("pinger").attach().expect("attach");
    let mut ping_tx = ping_ring.producer().expect("producer");
    let mut pong_tx = pong_ring.producer().expect("producer");
    let echo = tokio::spawn(async move {
        for _ in 0..n {
            let v = recv_u64(&mut ping_rx).await;
            pong_tx.publish_async(&v.to_le_bytes()).await.expect("room");
        }
    });
    let mut h = histogram();
    for i in 0..n {
        let t = Instant::now();
        ping_tx.publish_async(&i.to_le_bytes()).await.expect("room");
        let v = recv_u64(&mut pong_rx).await;
        h.saturating_record(t.elapsed().as_nanos() as u64);
        assert_eq!(v, i, "ringmq async ping-pong answer");
    }
    echo.await.expect("echo task");
    h
}

/// The next u64 of `consumer`, awaited.
async fn recv_u64(consumer: &mut ringmq::Consumer) -> u64 {
    let message = consumer.recv_async().await.expect("no stop flag");
    message.value::<u64>().expect("u64")
}

fn histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("valid bounds")
}

/// `n` round trips through `round` (send `i`, await the answer), each recorded and checked.
async fn ping<F, R>(n: u64, system: &str, mut round: F) -> Histogram<u64>
where
    F: FnMut(u64) -> R,
    R: Future<Output = u64>,
{
    let mut h = histogram();
    for i in 0..n {
        let t = Instant::now();
        let v = round(i).await;
        h.saturating_record(t.elapsed().as_nanos() as u64);
        assert_eq!(v, i, "{system} ping-pong answer");
    }
    h
}
