//! What a future costs when there is nothing to wait for: a message already published,
//! received by `try_recv` and by `recv_async` (polled once, with a no-op waker: a ready future
//! completes on its first poll). Both publish the message in the same iteration, so the
//! difference is the future's.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use ringmq::Ring;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Polls `future` once; it must be ready.
fn ready<T>(future: impl Future<Output = T>) -> T {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a published message is ready"),
    }
}

fn bench(c: &mut Criterion) {
    let ring = Ring::builder().capacity(1024).slot_size(16).build().unwrap();
    let mut consumer = ring.subscriber("bench").attach().unwrap();
    let mut producer = ring.producer().unwrap();
    let mut group = c.benchmark_group("ready");
    group.bench_function("publish + try_recv", |b| {
        b.iter(|| {
            producer.publish(&7u64.to_le_bytes()).unwrap();
            let message = consumer.try_recv().unwrap();
            assert_eq!(message.len(), 8);
        })
    });
    group.bench_function("publish + recv_async", |b| {
        b.iter(|| {
            producer.publish(&7u64.to_le_bytes()).unwrap();
            let message = ready(consumer.recv_async()).unwrap();
            assert_eq!(message.len(), 8);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
