//! ringfire between two processes, through its files in /dev/shm.

use super::{ping_loop, ready, Checker, Cleanup, Peer, CAPACITY, PING_CAPACITY};
use crate::pin::Cores;
use hdrhistogram::Histogram;

/// The parent pushes `n` u64s with lossless backpressure.
pub fn throughput(name: &str, cores: Cores, n: u64, cleanup: &mut Cleanup) -> Option<f64> {
    let path = format!("/dev/shm/{name}");
    cleanup.0.push(path.clone());
    let mut producer = ringfire::RingProducerBuilder::new(CAPACITY)
        .flow_control(ringfire::FlowControl::LosslessBackpressure)
        .build::<u64, _>(&path)
        .expect("ringfire producer");
    let peer = Peer::start("throughput", "ringfire", &path, n, cores);
    for i in 0..n {
        producer.push(&i);
    }
    peer.finish("ringfire")
}

pub fn child_throughput(path: &str, n: u64, checker: &mut Checker) {
    let mut consumer = ringfire::RingConsumer::<u64>::builder()
        .start_from_head()
        .attach(path)
        .expect("ringfire consumer");
    ready();
    let mut wait = ringfire::BusySpin::new();
    while checker.expected < n {
        checker.check(consumer.recv_blocking(&mut wait), "ringfire");
    }
}

/// Pings through `NAME-a.rf` (made here), answered through `NAME-b.rf` (made by the child).
pub fn pingpong(name: &str, cores: Cores, n: u64, cleanup: &mut Cleanup) -> Histogram<u64> {
    let (a, b) = (format!("/dev/shm/{name}-a.rf"), format!("/dev/shm/{name}-b.rf"));
    cleanup.0.extend([a.clone(), b.clone()]);
    let mut tx = ringfire::RingProducer::<u64>::create(&a, PING_CAPACITY).expect("ringfire");
    let peer = Peer::start("pingpong", "ringfire", name, n, cores);
    let mut rx = ringfire::RingConsumer::<u64>::builder()
        .start_from_head()
        .attach(&b)
        .expect("ringfire consumer");
    let mut wait = ringfire::BusySpin::new();
    let h = ping_loop(n, "ringfire", |i| tx.push(&i), || rx.recv_blocking(&mut wait));
    peer.finish("ringfire");
    h
}

pub fn child_pingpong(name: &str, n: u64) {
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
