//! disruptor-mp between two processes, through its shared-memory segments.

use super::{ping_loop, ready, Checker, Cleanup, Peer, BATCH, CAPACITY, PING_CAPACITY};
use crate::pin::Cores;
use hdrhistogram::Histogram;
use std::time::Duration;

/// What a disruptor-mp segment leaves in /dev/shm: the segment and its consumer's sequence.
fn files(segment: &str, prefix: &str) -> [String; 2] {
    let segment = segment.trim_start_matches('/');
    [
        format!("/dev/shm/{segment}"),
        format!("/dev/shm/{segment}_{prefix}_0_seq"),
    ]
}

/// A single producer of segment `segment`, publishing to the consumer `PREFIX_0`.
fn producer(segment: &str, capacity: u64, prefix: &str) -> disruptor_mp::SharedProducer<u64> {
    disruptor_mp::build_shared_single_producer::<u64>(segment, capacity as usize)
        .discover_consumer_with_prefix(1, prefix)
        .with_coordination(disruptor_mp::CoordinationMode::Immediate)
        .build_producer(u64::default)
        .expect("disruptor-mp producer")
}

/// The consumer `id` of segment `segment`.
fn consumer(segment: &str, capacity: u64, id: &str) -> disruptor_mp::SharedConsumer<u64> {
    disruptor_mp::attach_shared_consumer::<u64>(segment, capacity as usize)
        .with_consumer_id(id)
        .build_consumer()
        .expect("disruptor-mp consumer")
}

/// The parent publishes `n` u64s in batches of 64.
pub fn throughput(name: &str, cores: Cores, n: u64, cleanup: &mut Cleanup) -> Option<f64> {
    let segment = disruptor_mp::portable_shm_segment_name(name);
    cleanup.0.extend(files(&segment, "cp"));
    let mut producer = producer(&segment, CAPACITY, "cp");
    let peer = Peer::start("throughput", "disruptor-mp", &segment, n, cores);
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
    peer.finish("disruptor-mp")
}

pub fn child_throughput(segment: &str, n: u64, checker: &mut Checker) {
    let mut consumer = consumer(segment, CAPACITY, "cp_0");
    ready();
    while checker.expected < n {
        checker.check(consumer.consume_next().1, "disruptor-mp");
    }
}

/// Pings through the `NAME-a` segment (made here), answered through `NAME-b` (made by the
/// child).
pub fn pingpong(name: &str, cores: Cores, n: u64, cleanup: &mut Cleanup) -> Histogram<u64> {
    let (a, b) = (
        disruptor_mp::portable_shm_segment_name(&format!("{name}-a")),
        disruptor_mp::portable_shm_segment_name(&format!("{name}-b")),
    );
    cleanup.0.extend(files(&a, "cp"));
    cleanup.0.extend(files(&b, "cq"));
    let mut tx = producer(&a, PING_CAPACITY, "cp");
    let peer = Peer::start("pingpong", "disruptor-mp", &format!("{a}:{b}"), n, cores);
    let mut rx = consumer(&b, PING_CAPACITY, "cq_0");
    assert!(
        tx.wait_for_consumer_id("cp_0", Duration::from_secs(10)),
        "disruptor-mp echo"
    );
    let h = ping_loop(
        n,
        "disruptor-mp",
        |i| tx.publish(|e| *e = i),
        || rx.consume_next().1,
    );
    peer.finish("disruptor-mp");
    h
}

pub fn child_pingpong(segments: &str, n: u64) {
    let (a, b) = segments.split_once(':').expect("two segment names");
    let mut rx = consumer(a, PING_CAPACITY, "cp_0");
    let mut tx = producer(b, PING_CAPACITY, "cq");
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
