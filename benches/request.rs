//! What request-reply costs in instructions, apart from moving lines between cores: one thread
//! plays both sides of a round trip, so every line stays in its cache. Beside it, the same hop
//! through the two plain rings request-reply is built on (a multi-producer ring read by a group
//! worker, a multi-producer reply ring read by a subscriber), and through two single-producer
//! rings read by subscribers (what the plain ping-pong uses). The differences are the layers'.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use ringmq::request::Service;
use ringmq::{Ring, WaitStrategy};
use std::time::Duration;

fn rings(c: &mut Criterion, name: &str, multi: bool, worker: bool) {
    let ring = || {
        let builder = Ring::builder().capacity(64).slot_size(128).wakeups(false);
        let builder = if multi { builder.multi_producer() } else { builder };
        builder.build().unwrap()
    };
    let (ping, pong) = (ring(), ring());
    let mut ping_rx = if worker {
        ping.worker("responders", "w").attach().unwrap()
    } else {
        ping.subscriber("s").attach().unwrap()
    };
    let mut pong_rx = pong.subscriber("r").attach().unwrap();
    let mut ping_tx = ping.producer().unwrap();
    let mut pong_tx = pong.producer().unwrap();
    c.bench_function(name, |b| {
        b.iter(|| {
            ping_tx.publish(&7u64.to_le_bytes()).unwrap();
            let request = ping_rx.try_recv().unwrap();
            pong_tx.publish(&request).unwrap();
            drop(request);
            let reply = pong_rx.try_recv().unwrap();
            assert_eq!(reply.len(), 8);
        })
    });
}

fn request_reply(c: &mut Criterion, name: &str, timeout: Duration) {
    let service = Service::new(Ring::builder().capacity(64).slot_size(128).wakeups(false)).unwrap();
    let spin = WaitStrategy::BusySpin;
    let mut responder = service.responder("echo").wait_strategy(spin).attach().unwrap();
    let mut requester = service
        .requester()
        .reply_capacity(64)
        .wait_strategy(spin)
        .build()
        .unwrap();
    c.bench_function(name, |b| {
        b.iter(|| {
            requester.try_send(&7u64.to_le_bytes(), timeout).unwrap();
            responder
                .try_respond(|r| <[u8; 8]>::try_from(r.payload()).unwrap())
                .unwrap();
            let reply = requester.try_recv().unwrap();
            assert_eq!(reply.payload().len(), 8);
        })
    });
}

fn bench(c: &mut Criterion) {
    rings(c, "hop: single-producer rings, subscribers", false, false);
    rings(c, "hop: multi-producer rings, a group worker", true, true);
    request_reply(c, "request-reply, no deadline", Duration::MAX);
    request_reply(c, "request-reply, a deadline", Duration::from_secs(10));
}

criterion_group!(benches, bench);
criterion_main!(benches);
