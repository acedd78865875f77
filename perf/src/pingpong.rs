//! Ping-pong: a message goes to the other core and an answer comes back; every round trip
//! is recorded in a histogram and every answer checked.

use crate::pin::{pin, Cores};
use hdrhistogram::Histogram;
use ringmq::{Ring, WaitStrategy};
use std::time::Instant;

/// The systems this scenario runs, by name.
pub const SYSTEMS: &[&str] = &[
    "bare cache line",
    "ringmq",
    "rtrb",
    "crossbeam ArrayQueue",
    "crossbeam-channel",
];

/// Runs `n` round trips of `system`.
pub fn run(system: &str, cores: Cores, n: u64) -> Histogram<u64> {
    match system {
        "bare cache line" => crate::calibrate::cache_line_rtt(cores, n),
        "ringmq" => ringmq(cores, n),
        "rtrb" => rtrb(cores, n),
        "crossbeam ArrayQueue" => array_queue(cores, n),
        "crossbeam-channel" => channel(cores, n),
        other => panic!("unknown system {other}"),
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("valid bounds")
}

fn ringmq(cores: Cores, n: u64) -> Histogram<u64> {
    let ring = || {
        Ring::builder()
            .capacity(64)
            .slot_size(16)
            .wakeups(false)
            .build()
            .expect("valid ring")
    };
    let (ping, pong) = (ring(), ring());
    let wait = WaitStrategy::BusySpin;
    let mut ping_rx = ping
        .subscriber("echo")
        .wait_strategy(wait)
        .attach()
        .expect("attach");
    let mut pong_rx = pong
        .subscriber("pinger")
        .wait_strategy(wait)
        .attach()
        .expect("attach");
    let mut ping_tx = ping.producer_with(wait).expect("producer");
    let mut pong_tx = pong.producer_with(wait).expect("producer");
    let echo = std::thread::spawn(move || {
        pin(cores.b);
        for _ in 0..n {
            let v = ping_rx.recv().expect("no stop flag").value::<u64>().expect("u64");
            pong_tx.publish_value(&v).expect("room");
        }
    });
    pin(cores.a);
    let mut h = histogram();
    for i in 0..n {
        let t = Instant::now();
        ping_tx.publish_value(&i).expect("room");
        let v = pong_rx.recv().expect("no stop flag").value::<u64>().expect("u64");
        h.saturating_record(t.elapsed().as_nanos() as u64);
        assert_eq!(v, i, "ringmq ping-pong answer");
    }
    echo.join().expect("echo");
    h
}

fn rtrb(cores: Cores, n: u64) -> Histogram<u64> {
    let (mut ping_tx, mut ping_rx) = rtrb::RingBuffer::<u64>::new(64);
    let (mut pong_tx, mut pong_rx) = rtrb::RingBuffer::<u64>::new(64);
    let echo = std::thread::spawn(move || {
        pin(cores.b);
        for _ in 0..n {
            let v = loop {
                if let Ok(v) = ping_rx.pop() {
                    break v;
                }
            };
            while pong_tx.push(v).is_err() {}
        }
    });
    pin(cores.a);
    let mut h = histogram();
    for i in 0..n {
        let t = Instant::now();
        while ping_tx.push(i).is_err() {}
        let v = loop {
            if let Ok(v) = pong_rx.pop() {
                break v;
            }
        };
        h.saturating_record(t.elapsed().as_nanos() as u64);
        assert_eq!(v, i, "rtrb ping-pong answer");
    }
    echo.join().expect("echo");
    h
}

fn array_queue(cores: Cores, n: u64) -> Histogram<u64> {
    use crossbeam_queue::ArrayQueue;
    use std::sync::Arc;
    let ping = Arc::new(ArrayQueue::<u64>::new(64));
    let pong = Arc::new(ArrayQueue::<u64>::new(64));
    let (p, q) = (ping.clone(), pong.clone());
    let echo = std::thread::spawn(move || {
        pin(cores.b);
        for _ in 0..n {
            let v = loop {
                if let Some(v) = p.pop() {
                    break v;
                }
            };
            while q.push(v).is_err() {}
        }
    });
    pin(cores.a);
    let mut h = histogram();
    for i in 0..n {
        let t = Instant::now();
        while ping.push(i).is_err() {}
        let v = loop {
            if let Some(v) = pong.pop() {
                break v;
            }
        };
        h.saturating_record(t.elapsed().as_nanos() as u64);
        assert_eq!(v, i, "ArrayQueue ping-pong answer");
    }
    echo.join().expect("echo");
    h
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
