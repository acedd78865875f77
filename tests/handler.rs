//! Push consumption: a handler thread gets every message, in order, batch by batch, and
//! stops cleanly, giving the consumer back where it stopped.
#![cfg(not(loom))]

use ringmq::{HandlerOptions, Ring, SpawnError, WaitStrategy};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[test]
fn handler_thread_gets_every_message_and_stops_cleanly() {
    let ring = Ring::builder().capacity(64).build().unwrap();
    let consumer = ring
        .subscriber("h")
        .wait_strategy(WaitStrategy::Block)
        .attach()
        .unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let ends = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let (s, e, n) = (seen.clone(), ends.clone(), next.clone());
    let core = core_affinity::get_core_ids().unwrap()[0].id;
    let handler = consumer
        .spawn(
            HandlerOptions::new().pin_to_core(core).max_batch(16),
            move |m, end_of_batch| {
                assert_eq!(m.sequence() as usize, n.load(Ordering::Relaxed));
                assert_eq!(m.value::<u64>().unwrap(), m.sequence());
                n.fetch_add(1, Ordering::Relaxed);
                s.fetch_add(1, Ordering::Release);
                if end_of_batch {
                    e.fetch_add(1, Ordering::Relaxed);
                }
            },
        )
        .unwrap();
    let mut p = ring.producer().unwrap();
    for i in 0..5_000u64 {
        p.publish(&i.to_le_bytes()).unwrap();
    }
    let consumer = handler.stop().unwrap();
    // Stopping may leave a tail unhandled; the consumer picks up exactly where it left off.
    let handled = seen.load(Ordering::Acquire) as u64;
    assert_eq!(consumer.position(), handled);
    assert!(ends.load(Ordering::Relaxed) >= 1);
    let mut consumer = consumer;
    for i in handled..5_000 {
        assert_eq!(consumer.try_recv().unwrap().sequence(), i);
    }
}

#[test]
fn a_handler_pinned_to_a_core_that_does_not_exist_is_refused() {
    let ring = Ring::builder().capacity(8).build().unwrap();
    let consumer = ring.subscriber("x").attach().unwrap();
    assert_eq!(
        consumer
            .spawn(HandlerOptions::new().pin_to_core(10_000), |_, _| {})
            .unwrap_err(),
        SpawnError::InvalidCore { core: 10_000 }
    );
}

#[test]
fn an_idle_handler_stops_promptly() {
    for wait in [
        WaitStrategy::Block,
        WaitStrategy::Yield,
        WaitStrategy::Backoff,
        WaitStrategy::BusySpin,
    ] {
        let ring = Ring::builder().capacity(8).build().unwrap();
        let handler = ring
            .subscriber("idle")
            .wait_strategy(wait)
            .attach()
            .unwrap()
            .spawn(HandlerOptions::new(), |_, _| {})
            .unwrap();
        let consumer = handler.stop().unwrap();
        assert_eq!(consumer.position(), 0);
    }
}
