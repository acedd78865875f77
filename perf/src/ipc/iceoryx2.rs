//! iceoryx2 between two processes: publish-subscribe, and request-response.

use super::{ping_loop, ready, Checker, Peer, CAPACITY};
use crate::pin::Cores;
use hdrhistogram::Histogram;
use iceoryx2::prelude::*;
use iceoryx2::service::builder::publish_subscribe::Builder;

/// The throughput configuration: a subscriber buffer as large as the other cases' queues,
/// with backpressure (no overflow), so no message is lost.
fn throughput_service(
    node: &Node<ipc::Service>,
    name: &str,
) -> iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, u64, ()> {
    node.service_builder(&name.try_into().expect("service name"))
        .publish_subscribe::<u64>()
        .enable_safe_overflow(false)
        .subscriber_max_buffer_size(CAPACITY as usize)
        .open_or_create()
        .expect("service")
}

/// iceoryx2's round-trip configuration, as its own publish-subscribe benchmark sets it: one
/// publisher, one subscriber, no history, a one-sample subscriber buffer that overwrites
/// (only one message is ever in flight in a ping-pong).
fn latency_service(
    node: &Node<ipc::Service>,
    name: &str,
) -> iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, u64, ()> {
    let builder: Builder<u64, (), ipc::Service> = node
        .service_builder(&name.try_into().expect("service name"))
        .publish_subscribe::<u64>();
    builder
        .max_publishers(1)
        .max_subscribers(1)
        .history_size(0)
        .subscriber_max_buffer_size(1)
        .enable_safe_overflow(true)
        .open_or_create()
        .expect("service")
}

fn node() -> Node<ipc::Service> {
    NodeBuilder::new().create::<ipc::Service>().expect("node")
}

/// The parent sends `n` u64s, retrying until each is delivered.
pub fn throughput(name: &str, cores: Cores, n: u64) -> Option<f64> {
    let node = node();
    let service = throughput_service(&node, name);
    let publisher = service
        .publisher_builder()
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .expect("publisher");
    let peer = Peer::start("throughput", "iceoryx2", name, n, cores);
    for i in 0..n {
        publisher.send_copy(i).expect("send");
    }
    peer.finish("iceoryx2")
}

pub fn child_throughput(name: &str, n: u64, checker: &mut Checker) {
    let node = node();
    let service = throughput_service(&node, name);
    let subscriber = service
        .subscriber_builder()
        .buffer_size(CAPACITY as usize)
        .create()
        .expect("subscriber");
    ready();
    while checker.expected < n {
        if let Some(sample) = subscriber.receive().expect("receive") {
            checker.check(*sample, "iceoryx2");
        }
    }
}

/// Pings through service `NAME-a`, answered through `NAME-b`.
pub fn pingpong(name: &str, cores: Cores, n: u64) -> Histogram<u64> {
    let node = node();
    let ping = latency_service(&node, &format!("{name}-a"));
    let pong = latency_service(&node, &format!("{name}-b"));
    let tx = ping.publisher_builder().create().expect("publisher");
    let rx = pong.subscriber_builder().create().expect("subscriber");
    let peer = Peer::start("pingpong", "iceoryx2", name, n, cores);
    // As iceoryx2's own benchmark: the next sample is loaned right after a send, while the
    // round trip is in flight, and written in place.
    let mut loaned = Some(tx.loan_uninit().expect("loan"));
    let h = ping_loop(
        n,
        "iceoryx2",
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
    peer.finish("iceoryx2");
    h
}

pub fn child_pingpong(name: &str, n: u64) {
    let node = node();
    let ping = latency_service(&node, &format!("{name}-a"));
    let pong = latency_service(&node, &format!("{name}-b"));
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

/// The system name of iceoryx2's request-response case.
pub const REQUEST_RESPONSE: &str = "iceoryx2 request-response";

fn request_response_service(
    node: &Node<ipc::Service>,
    name: &str,
) -> iceoryx2::service::port_factory::request_response::PortFactory<ipc::Service, u64, (), u64, ()> {
    node.service_builder(&name.try_into().expect("service name"))
        .request_response::<u64, u64>()
        .open_or_create()
        .expect("service")
}

/// `send_copy` of a u64 request by a client here, answered by a server in the child: what
/// iceoryx2 offers for request-reply (every request goes to every server; one server here).
pub fn request_response(name: &str, cores: Cores, n: u64) -> Histogram<u64> {
    let node = node();
    let service = request_response_service(&node, name);
    let client = service.client_builder().create().expect("client");
    let peer = Peer::start("pingpong", REQUEST_RESPONSE, name, n, cores);
    let mut h = super::histogram();
    for i in 0..n {
        let t = std::time::Instant::now();
        let pending = client.send_copy(i).expect("send");
        let v = loop {
            if let Some(response) = pending.receive().expect("receive") {
                break *response;
            }
        };
        h.saturating_record(t.elapsed().as_nanos() as u64);
        assert_eq!(v, i, "iceoryx2 request-response answer");
    }
    peer.finish(REQUEST_RESPONSE);
    h
}

pub fn child_request_response(name: &str, n: u64) {
    let node = node();
    let service = request_response_service(&node, name);
    let server = service.server_builder().create().expect("server");
    ready();
    for _ in 0..n {
        let request = loop {
            if let Some(request) = server.receive().expect("receive") {
                break request;
            }
        };
        let v = *request;
        request.send_copy(v).expect("respond");
    }
}
