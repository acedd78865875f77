//! The API's contracts: bad input gives typed errors, start positions, claims in place,
//! typed payloads, handlers, and sequence arithmetic far from zero.

mod common;

use bytemuck::{Pod, Zeroable};
use ringmq::{
    ConsumerKind, Error, HandlerOptions, PublishError, RecvError, Ring, Start, TypedConsumer, TypedProducer,
    WaitStrategy, MAX_SEQUENCE,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The handles move to other threads (`Send`), and a ring handle and a producer may be shared
/// by reference (`Sync`): the producer keeps raw addresses into the ring (its `Geometry`),
/// whose `Send`/`Sync` are written by hand.
#[test]
fn handles_cross_threads() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<Ring>();
    sync::<Ring>();
    send::<ringmq::Producer>();
    sync::<ringmq::Producer>();
    send::<ringmq::Consumer>();
}

#[test]
fn bad_ring_parameters_are_typed_errors() {
    let err = |b: ringmq::RingBuilder| b.build().unwrap_err();
    assert!(matches!(
        err(Ring::builder().capacity(0)),
        Error::InvalidCapacity { capacity: 0 }
    ));
    assert!(matches!(
        err(Ring::builder().capacity(100)),
        Error::InvalidCapacity { .. }
    ));
    assert!(matches!(
        err(Ring::builder().slot_size(8)),
        Error::InvalidSlotSize { slot_size: 8 }
    ));
    assert!(matches!(
        err(Ring::builder().slot_size(60)),
        Error::InvalidSlotSize { .. }
    ));
    assert!(matches!(
        err(Ring::builder().max_consumers(0)),
        Error::InvalidMaxConsumers { .. }
    ));
    assert!(matches!(
        err(Ring::builder().initial_sequence(MAX_SEQUENCE + 1)),
        Error::InvalidInitialSequence { .. }
    ));
}

#[test]
fn bad_attachments_are_typed_errors() {
    let ring = Ring::builder().capacity(8).max_consumers(3).build().unwrap();
    let _a = ring.subscriber("a").attach().unwrap();
    assert_eq!(
        ring.subscriber("a").attach().unwrap_err(),
        Error::NameTaken { name: "a".into() }
    );
    assert!(matches!(
        ring.subscriber("").attach().unwrap_err(),
        Error::InvalidName { .. }
    ));
    assert!(matches!(
        ring.subscriber(&"x".repeat(65)).attach().unwrap_err(),
        Error::InvalidName { .. }
    ));
    assert_eq!(
        ring.subscriber("b").after(["nope"]).attach().unwrap_err(),
        Error::UnknownDependency { name: "nope".into() }
    );
    let many: Vec<String> = (0..9).map(|i| i.to_string()).collect();
    assert_eq!(
        ring.subscriber("b").after(&many).attach().unwrap_err(),
        Error::TooManyDependencies { count: 9 }
    );
    let _b = ring.subscriber("b").attach().unwrap();
    let _c = ring.subscriber("c").attach().unwrap();
    assert_eq!(
        ring.subscriber("d").attach().unwrap_err(),
        Error::TableFull { max_consumers: 3 }
    );
    // A worker's group name collides with a subscriber.
    assert!(matches!(
        ring.worker("a", "w").attach().unwrap_err(),
        Error::NameTaken { .. }
    ));
    // Failed attaches leave nothing behind.
    assert_eq!(ring.consumers().len(), 3);
}

#[test]
fn names_are_free_again_after_detach() {
    // A group takes an entry of its own beside its workers'.
    let ring = Ring::builder().capacity(8).max_consumers(3).build().unwrap();
    for _ in 0..5 {
        let a = ring.subscriber("a").attach().unwrap();
        let w = ring.worker("g", "w").attach().unwrap();
        assert_eq!(
            ring.subscriber("x").attach().unwrap_err(),
            Error::TableFull { max_consumers: 3 }
        );
        drop(a);
        w.detach();
    }
    assert!(ring.consumers().is_empty());
}

#[test]
fn single_producer_is_exclusive() {
    let ring = Ring::builder().build().unwrap();
    let p = ring.producer().unwrap();
    assert_eq!(ring.producer().unwrap_err(), Error::ProducerTaken);
    drop(p);
    let _again = ring.producer().unwrap();
    let multi = Ring::builder().multi_producer().build().unwrap();
    let _p1 = multi.producer().unwrap();
    let _p2 = multi.producer().unwrap();
}

#[test]
fn a_second_producer_continues_the_sequence() {
    let ring = Ring::builder().capacity(8).build().unwrap();
    let mut c = ring.subscriber("c").attach().unwrap();
    let mut p = ring.producer().unwrap();
    p.try_publish(b"one").unwrap();
    drop(p);
    let mut p = ring.producer().unwrap();
    assert_eq!(p.try_publish(b"two").unwrap(), 1);
    assert_eq!(&*c.try_recv().unwrap(), b"one");
    assert_eq!(&*c.try_recv().unwrap(), b"two");
}

#[test]
fn blocking_strategies_need_wakeups() {
    let ring = Ring::builder().wakeups(false).build().unwrap();
    assert_eq!(
        ring.producer_with(WaitStrategy::Block).unwrap_err(),
        Error::WakeupsDisabled
    );
    assert_eq!(
        ring.subscriber("c")
            .wait_strategy(WaitStrategy::Backoff)
            .attach()
            .unwrap_err(),
        Error::WakeupsDisabled
    );
    // The defaults adapt.
    let mut c = ring.subscriber("c").attach().unwrap();
    let mut p = ring.producer().unwrap();
    p.publish(b"spin").unwrap();
    assert_eq!(&*c.recv().unwrap(), b"spin");
}

#[test]
fn oversized_messages_are_refused_whole() {
    let ring = Ring::builder().capacity(8).slot_size(32).build().unwrap();
    let mut c = ring.subscriber("c").attach().unwrap();
    let mut p = ring.producer().unwrap();
    assert_eq!(ring.max_message_len(), 24);
    assert_eq!(
        p.try_publish(&[0; 25]),
        Err(PublishError::TooLarge { len: 25, max: 24 })
    );
    assert_eq!(
        p.try_publish_batch(&[&[1u8; 3][..], &[0; 25]]),
        Err(PublishError::TooLarge { len: 25, max: 24 })
    );
    assert_eq!(
        p.try_claim_batch(9).unwrap_err(),
        PublishError::BatchTooLarge { n: 9, capacity: 8 }
    );
    assert_eq!(
        c.try_recv().unwrap_err(),
        RecvError::Empty,
        "nothing was published"
    );
    p.try_publish(&[7; 24]).unwrap();
    assert_eq!(&*c.try_recv().unwrap(), &[7; 24]);
}

#[test]
fn start_positions() {
    let ring = Ring::builder().capacity(4).build().unwrap();
    let mut p = ring.producer().unwrap();
    for i in 0..10u64 {
        p.try_publish(&i.to_le_bytes()).unwrap();
    }
    // No consumer gated, so the producer may already be writing up to a lap past its last
    // refresh (sequence 11): Earliest is the oldest message it cannot be overwriting.
    let mut earliest = ring.subscriber("e").start(Start::Earliest).attach().unwrap();
    let mut latest = ring.subscriber("l").start(Start::Latest).attach().unwrap();
    let mut exact = ring.subscriber("x").start(Start::Sequence(9)).attach().unwrap();
    assert_eq!(
        ring.subscriber("old")
            .start(Start::Sequence(2))
            .attach()
            .unwrap_err(),
        Error::SequenceUnavailable {
            requested: 2,
            earliest: 8
        }
    );
    let mut future = ring.subscriber("f").start(Start::Sequence(11)).attach().unwrap();
    assert_eq!(earliest.try_recv().unwrap().sequence(), 8);
    assert_eq!(exact.try_recv().unwrap().value::<u64>().unwrap(), 9);
    assert_eq!(latest.try_recv().unwrap_err(), RecvError::Empty);
    drop(earliest);
    drop(exact);
    p.try_publish(&10u64.to_le_bytes()).unwrap();
    p.try_publish(&11u64.to_le_bytes()).unwrap();
    assert_eq!(latest.try_recv().unwrap().sequence(), 10);
    assert_eq!(future.try_recv().unwrap().value::<u64>().unwrap(), 11);
}

#[test]
fn claims_write_in_place() {
    let ring = Ring::builder().capacity(8).slot_size(32).build().unwrap();
    let mut c = ring.subscriber("c").attach().unwrap();
    let mut p = ring.producer().unwrap();
    {
        let mut claim = p.try_claim_slot().unwrap();
        assert_eq!(claim.sequence(), 0);
        claim.payload_mut()[..5].copy_from_slice(b"hello");
        claim.set_len(5).unwrap();
        assert_eq!(
            claim.set_len(25),
            Err(PublishError::TooLarge { len: 25, max: 24 })
        );
    }
    {
        let mut batch = p.try_claim_batch(3).unwrap();
        assert_eq!((batch.first_sequence(), batch.len()), (1, 3));
        for i in 0..3 {
            batch.slot_mut(i).unwrap()[0] = b'a' + i as u8;
            batch.set_len(i, 1).unwrap();
        }
        assert!(batch.slot_mut(3).is_none());
        assert_eq!(
            batch.set_len(3, 1),
            Err(PublishError::NoSuchSlot { index: 3, len: 3 })
        );
        // Nothing is visible before the batch publishes.
        assert_eq!(&*c.try_recv().unwrap(), b"hello");
        assert_eq!(c.try_recv().unwrap_err(), RecvError::Empty);
        batch.publish();
    }
    let batch = c.try_poll(10);
    let got: Vec<Vec<u8>> = batch.iter().map(|m| m.to_vec()).collect();
    assert_eq!(got, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    assert_eq!(batch.sequences(), 1..4);
}

#[test]
fn a_batch_slot_without_a_length_is_its_whole_payload() {
    // The documented default, in both producer modes and on a later lap too (where the slot
    // still holds the previous message's header, with its length).
    for multi in [false, true] {
        let builder = Ring::builder().capacity(4).slot_size(32);
        let ring = if multi { builder.multi_producer() } else { builder }
            .build()
            .unwrap();
        let mut c = ring.subscriber("c").attach().unwrap();
        let mut p = ring.producer().unwrap();
        for lap in 0..3u8 {
            p.try_publish(&[lap; 3]).unwrap();
            assert_eq!(c.try_recv().unwrap().len(), 3);
            let mut batch = p.try_claim_batch(2).unwrap();
            batch.slot_mut(0).unwrap().fill(lap);
            batch.slot_mut(1).unwrap().fill(lap);
            batch.set_len(1, 5).unwrap();
            batch.publish();
            let got: Vec<Vec<u8>> = c.try_poll(4).iter().map(|m| m.to_vec()).collect();
            assert_eq!(got, vec![vec![lap; 24], vec![lap; 5]], "multi {multi}, lap {lap}");
        }
    }
}

#[test]
fn a_claim_dropped_by_a_panic_is_skipped() {
    let ring = Ring::builder().capacity(8).multi_producer().build().unwrap();
    let mut c = ring.subscriber("c").attach().unwrap();
    let mut p = ring.producer().unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _claim = p.try_claim_slot().unwrap();
        panic!("the writer failed");
    }));
    assert!(result.is_err());
    p.try_publish(b"after").unwrap();
    let m = c.try_recv().unwrap();
    assert_eq!((m.sequence(), &*m), (1, &b"after"[..]));
    drop(m);
    assert_eq!(c.skipped(), 1);
}

#[derive(Clone, Copy, Debug, PartialEq, Zeroable, Pod)]
#[repr(C)]
struct Order {
    id: u64,
    price: f64,
    quantity: u32,
    side: u32,
}

#[test]
fn typed_payloads_round_trip() {
    let ring = Ring::builder().capacity(16).slot_size(32).build().unwrap();
    let mut c = TypedConsumer::<Order>::new(ring.subscriber("c").attach().unwrap()).unwrap();
    let mut p = TypedProducer::<Order>::new(ring.producer().unwrap()).unwrap();
    let order = |i: u64| Order {
        id: i,
        price: 100.0 + i as f64 / 4.0,
        quantity: i as u32 * 3,
        side: (i % 2) as u32,
    };
    for i in 0..10 {
        if i % 2 == 0 {
            p.try_publish(&order(i)).unwrap();
        } else {
            p.try_publish_with(|o| *o = order(i)).unwrap();
        }
    }
    for i in 0..5 {
        assert_eq!(c.try_recv().unwrap(), (i, order(i)));
    }
    let mut rest = Vec::new();
    assert_eq!(c.try_poll(100, |s, o| rest.push((s, o))), 5);
    assert_eq!(rest, (5..10).map(|i| (i, order(i))).collect::<Vec<_>>());
    // A type that does not fit a slot is refused.
    let small = Ring::builder().capacity(4).slot_size(16).build().unwrap();
    assert!(matches!(
        TypedProducer::<Order>::new(small.producer().unwrap()),
        Err(Error::TypeMismatch { size: 24, .. })
    ));
}

#[test]
fn sequences_far_from_zero() {
    for initial in [u32::MAX as u64 - 5, (1u64 << 32) - 1, MAX_SEQUENCE - 100] {
        for multi in [false, true] {
            let mut b = Ring::builder().capacity(8).initial_sequence(initial);
            if multi {
                b = b.multi_producer();
            }
            let ring = b.build().unwrap();
            let mut c = ring.subscriber("c").start(Start::Earliest).attach().unwrap();
            let mut w = ring.worker("g", "w").start(Start::Earliest).attach().unwrap();
            let mut p = ring.producer().unwrap();
            for i in 0..50u64 {
                assert_eq!(p.try_publish(&i.to_le_bytes()).unwrap(), initial + i);
                let m = c.try_recv().unwrap();
                assert_eq!((m.sequence(), m.value::<u64>().unwrap()), (initial + i, i));
                drop(m);
                let m = w.try_recv().unwrap();
                assert_eq!(m.sequence(), initial + i);
            }
            assert_eq!(c.try_recv().unwrap_err(), RecvError::Empty);
            assert_eq!(ring.cursor(), initial + 50);
        }
    }
}

#[test]
fn the_sequence_space_ends_with_an_error() {
    let ring = Ring::builder()
        .capacity(4)
        .initial_sequence(MAX_SEQUENCE - 2)
        .build()
        .unwrap();
    let mut p = ring.producer().unwrap();
    p.try_publish(b"a").unwrap();
    p.try_publish(b"b").unwrap();
    assert_eq!(p.try_publish(b"c"), Err(PublishError::Exhausted));
    let multi = Ring::builder()
        .capacity(4)
        .multi_producer()
        .initial_sequence(MAX_SEQUENCE - 1)
        .build()
        .unwrap();
    let mut p = multi.producer().unwrap();
    p.try_publish(b"a").unwrap();
    assert_eq!(p.try_publish(b"b"), Err(PublishError::Exhausted));
}

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
    assert!(matches!(
        ring.subscriber("x")
            .attach()
            .unwrap()
            .spawn(HandlerOptions::new().pin_to_core(10_000), |_, _| {}),
        Err(Error::InvalidCore { core: 10_000 })
    ));
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

#[test]
fn consumers_snapshot() {
    let ring = Ring::builder().capacity(8).build().unwrap();
    let _a = ring.subscriber("a").attach().unwrap();
    let _w = ring.worker("g", "w1").after(["a"]).attach().unwrap();
    let mut info = ring.consumers();
    info.sort_by(|x, y| x.name.cmp(&y.name));
    let kinds: Vec<_> = info.iter().map(|i| (i.name.as_str(), i.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            ("a", ConsumerKind::Subscriber),
            ("g", ConsumerKind::Group),
            ("w1", ConsumerKind::Worker)
        ]
    );
    assert_eq!(info[1].after, vec!["a".to_string()]);
    assert_eq!(info[2].group.as_deref(), Some("g"));
    assert_eq!(info[2].sequence, None, "an idle worker holds nothing");
    assert_eq!(
        ring.worker("g", "w2").after(["w1"]).attach().unwrap_err(),
        Error::UnknownDependency { name: "w1".into() },
        "a worker is not a dependency; its group is"
    );
    let _w2 = ring.worker("g", "w2").attach().unwrap();
    assert_eq!(
        ring.worker("g", "w3")
            .after(Vec::<String>::new())
            .attach()
            .unwrap_err(),
        Error::GroupMismatch { group: "g".into() }
    );
}

#[test]
fn timeouts_are_honoured() {
    let ring = Ring::builder().capacity(2).build().unwrap();
    let _c = ring.subscriber("c").attach().unwrap();
    let mut p = ring.producer_with(WaitStrategy::Block).unwrap();
    p.try_publish(b"1").unwrap();
    p.try_publish(b"2").unwrap();
    let started = std::time::Instant::now();
    assert_eq!(
        p.publish_timeout(b"3", Duration::from_millis(20)),
        Err(PublishError::Timeout)
    );
    assert!(started.elapsed() >= Duration::from_millis(20));
}

#[test]
fn detaching_a_stalled_consumer_frees_the_producer() {
    for worker in [false, true] {
        let ring = Ring::builder().capacity(4).build().unwrap();
        let mut steady = ring.subscriber("steady").attach().unwrap();
        let stalled = if worker {
            ring.worker("g", "stalled").attach().unwrap()
        } else {
            ring.subscriber("stalled").attach().unwrap()
        };
        let mut p = ring.producer().unwrap();
        for i in 0..4u64 {
            p.try_publish(&i.to_le_bytes()).unwrap();
        }
        assert_eq!(steady.try_poll(4).sequences(), 0..4);
        // The group has not taken a message; the subscriber has not read one.
        assert_eq!(p.try_publish(b"x"), Err(PublishError::Full));
        drop(stalled);
        assert_eq!(p.try_publish(b"x").unwrap(), 4);
    }
}

#[test]
fn batches_written_by_a_closure() {
    for multi in [false, true] {
        let mut b = Ring::builder().capacity(8).slot_size(24);
        if multi {
            b = b.multi_producer();
        }
        let ring = b.build().unwrap();
        let mut c = ring.subscriber("c").attach().unwrap();
        let mut p = ring.producer().unwrap();
        let first = p
            .try_publish_batch_with(5, |i, slot| {
                assert_eq!(slot.len(), 16);
                slot[..3].copy_from_slice(&[i as u8; 3]);
                if i == 4 {
                    99 // clamped to the payload
                } else {
                    3
                }
            })
            .unwrap();
        assert_eq!(first, 0);
        assert_eq!(
            p.try_publish_batch_with(4, |_, _| unreachable!("not called when full")),
            Err(PublishError::Full)
        );
        let got: Vec<(u64, Vec<u8>)> = c
            .try_poll(10)
            .iter()
            .map(|m| (m.sequence(), m.to_vec()))
            .collect();
        assert_eq!(got.len(), 5);
        for (i, (seq, bytes)) in got.iter().enumerate() {
            assert_eq!(*seq, i as u64);
            if i == 4 {
                assert_eq!(bytes.len(), 16);
            } else {
                assert_eq!(bytes, &vec![i as u8; 3]);
            }
        }
        // A panicking closure leaves the rest of its batch skipped, never unpublished.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = p.publish_batch_with(3, |i, slot| {
                if i == 1 {
                    panic!("writer failed");
                }
                slot[0] = 7;
                1
            });
        }));
        assert!(r.is_err());
        p.try_publish(b"next").unwrap();
        let got: Vec<(u64, Vec<u8>)> = c
            .try_poll(10)
            .iter()
            .map(|m| (m.sequence(), m.to_vec()))
            .collect();
        assert_eq!(got, vec![(5, vec![7]), (8, b"next".to_vec())]);
        assert_eq!(c.skipped(), 2);
        // Wherever `fill` stops, the slots it finished are delivered and the rest skipped.
        for stop in [0, 2] {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = p.publish_batch_with(3, |i, slot| {
                    if i == stop {
                        panic!("writer failed");
                    }
                    slot[0] = i as u8;
                    1
                });
            }));
            assert!(r.is_err());
        }
        p.try_publish(b"end").unwrap();
        let got: Vec<(u64, Vec<u8>)> = c
            .try_poll(10)
            .iter()
            .map(|m| (m.sequence(), m.to_vec()))
            .collect();
        assert_eq!(got, vec![(12, vec![0]), (13, vec![1]), (15, b"end".to_vec())]);
        assert_eq!(c.skipped(), 2 + 3 + 1);
    }
}

#[test]
fn a_worker_that_detaches_holding_a_message_hands_it_back_to_its_group() {
    let ring = Ring::builder().capacity(8).build().unwrap();
    let mut w1 = ring.worker("g", "w1").start(Start::Earliest).attach().unwrap();
    let mut w2 = ring.worker("g", "w2").attach().unwrap();
    let mut producer = ring.producer().unwrap();
    producer.publish(b"one").unwrap();
    producer.publish(b"two").unwrap();
    let held = w1.try_recv().unwrap();
    assert_eq!(&*held, b"one");
    // Never acknowledged (as if the handler had panicked past it), then detached.
    std::mem::forget(held);
    drop(w1);
    let again = w2.try_recv().unwrap();
    assert_eq!((&*again, again.redelivered()), (&b"one"[..], true));
    drop(again);
    let next = w2.try_recv().unwrap();
    assert_eq!((&*next, next.redelivered()), (&b"two"[..], false));
    drop(next);
    assert_eq!(ring.redelivered_count(), 1);
    // Subscribers never see the flag.
    let mut s = ring.subscriber("s").start(Start::Earliest).attach().unwrap();
    assert!(!s.try_recv().unwrap().redelivered());
}

#[test]
fn a_durable_subscriber_outlives_its_handle_until_it_unsubscribes() {
    let ring = Ring::builder().capacity(4).build().unwrap();
    let mut producer = ring.producer().unwrap();
    let mut durable = ring
        .subscriber("d")
        .durable(true)
        .start(Start::Earliest)
        .attach()
        .unwrap();
    assert!(durable.is_durable());
    producer.publish(b"1").unwrap();
    producer.publish(b"2").unwrap();
    drop(durable.recv().unwrap()); // acknowledges "1"
    assert!(matches!(
        ring.subscriber("d").durable(true).attach(),
        Err(Error::NameTaken { .. })
    ));
    drop(durable);
    // Still gating at "2": three more fill the four slots.
    for m in [b"3", b"4", b"5"] {
        producer.publish(m).unwrap();
    }
    assert_eq!(producer.try_publish(b"6"), Err(PublishError::Full));
    let info = &ring.consumers()[0];
    assert_eq!((info.durable, info.alive, info.sequence), (true, false, Some(1)));
    // Back, at its position.
    let mut durable = ring.subscriber("d").durable(true).attach().unwrap();
    assert_eq!(&*durable.recv().unwrap(), b"2");
    durable.unsubscribe();
    assert!(ring.consumers().is_empty());
    producer.try_publish(b"6").unwrap();
}

#[test]
fn a_detached_durable_subscriber_is_evicted_after_its_delay() {
    let ring = Ring::builder().capacity(2).build().unwrap();
    let mut producer = ring.producer().unwrap();
    let durable = ring
        .subscriber("d")
        .durable(true)
        .evict_after(Duration::from_millis(1))
        .attach()
        .unwrap();
    drop(durable);
    producer.publish(b"1").unwrap();
    producer.publish(b"2").unwrap();
    assert_eq!(producer.try_publish(b"3"), Err(PublishError::Full));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ring.reap_dead() == 0 {
        assert!(std::time::Instant::now() < deadline, "never evicted");
        std::thread::yield_now();
    }
    assert!(ring.consumers().is_empty());
    producer.try_publish(b"3").unwrap();
}

#[test]
fn fixed_size_rings_carry_messages_of_one_size() {
    assert_eq!(
        Ring::builder()
            .fixed_size(8)
            .multi_producer()
            .build()
            .unwrap_err(),
        Error::FixedSizeMultiProducer
    );
    assert!(matches!(
        Ring::builder().fixed_size(12).build().unwrap_err(),
        Error::InvalidSlotSize { slot_size: 12 }
    ));
    let ring = Ring::builder().capacity(16).fixed_size(8).build().unwrap();
    assert_eq!(
        (ring.fixed_size(), ring.slot_size(), ring.max_message_len()),
        (Some(8), 8, 8)
    );
    assert_eq!(Ring::builder().build().unwrap().fixed_size(), None);
    let mut c = ring.subscriber("c").attach().unwrap();
    let mut w = ring.worker("g", "w").attach().unwrap();
    let mut p = ring.producer().unwrap();
    assert!(p.is_fixed_size());
    // Every way to publish, each refusing another size.
    assert_eq!(
        p.try_publish(&[1; 7]),
        Err(PublishError::WrongSize { len: 7, size: 8 })
    );
    assert_eq!(
        p.try_publish_value(&1u32),
        Err(PublishError::WrongSize { len: 4, size: 8 })
    );
    assert_eq!(p.try_publish_value(&10u64), Ok(0));
    assert_eq!(p.try_publish(&11u64.to_le_bytes()), Ok(1));
    assert_eq!(
        p.try_publish_batch(&[[0u8; 8].as_slice(), &[0u8; 9]]),
        Err(PublishError::WrongSize { len: 9, size: 8 })
    );
    assert_eq!(
        p.try_publish_batch(&[12u64.to_le_bytes(), 13u64.to_le_bytes()]),
        Ok(2)
    );
    // The length `fill` returns does not matter: a message is the whole slot.
    let first = p
        .try_publish_batch_with(2, |i, slot| {
            slot.copy_from_slice(&(14 + i as u64).to_le_bytes());
            0
        })
        .unwrap();
    assert_eq!(first, 4);
    {
        let mut claim = p.try_claim_slot().unwrap();
        assert_eq!(claim.set_len(4), Err(PublishError::WrongSize { len: 4, size: 8 }));
        assert!(matches!(
            claim.value_mut::<u32>(),
            Err(Error::TypeMismatch { size: 4, .. })
        ));
        *claim.value_mut::<u64>().unwrap() = 16;
    }
    {
        let mut batch = p.try_claim_batch(2).unwrap();
        assert_eq!(
            batch.set_len(0, 1),
            Err(PublishError::WrongSize { len: 1, size: 8 })
        );
        batch.slot_mut(0).unwrap().copy_from_slice(&17u64.to_le_bytes());
        batch.slot_mut(1).unwrap().copy_from_slice(&18u64.to_le_bytes());
        batch.set_len(1, 8).unwrap();
        // Nothing is published before the batch is.
        assert_eq!(c.try_poll(8).sequences(), 0..7);
        assert_eq!(c.try_recv().unwrap_err(), RecvError::Empty);
    }
    let values: Vec<u64> = w.try_poll(16).iter().map(|m| m.value::<u64>().unwrap()).collect();
    assert_eq!(values, (10..19).collect::<Vec<_>>());
    let last: Vec<(u64, usize, u64)> = c
        .try_poll(8)
        .iter()
        .map(|m| (m.sequence(), m.len(), m.value::<u64>().unwrap()))
        .collect();
    assert_eq!(last, vec![(7, 8, 17), (8, 8, 18)]);
    // Typed handles need the message size exactly.
    drop(p);
    assert!(matches!(
        TypedProducer::<u32>::new(ring.producer().unwrap()),
        Err(Error::TypeMismatch { size: 4, .. })
    ));
    let mut typed = TypedProducer::<u64>::new(ring.producer().unwrap()).unwrap();
    let mut tc = TypedConsumer::<u64>::new(ring.subscriber("t").attach().unwrap()).unwrap();
    assert_eq!(
        typed.try_publish(&19),
        Ok(9),
        "a new producer continues at the cursor"
    );
    assert_eq!(tc.try_recv(), Ok((9, 19)));
}

#[test]
fn a_fixed_size_claim_that_panics_publishes_nothing() {
    let ring = Ring::builder().capacity(8).fixed_size(16).build().unwrap();
    let mut c = ring.subscriber("c").attach().unwrap();
    let mut p = ring.producer().unwrap();
    let panicked = |f: &mut dyn FnMut()| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err();
    assert!(panicked(&mut || {
        let mut claim = p.try_claim_slot().unwrap();
        claim.payload_mut().fill(0xee);
        panic!("the writer failed");
    }));
    assert!(panicked(&mut || {
        let _batch = p.try_claim_batch(3).unwrap();
        panic!("the writer failed");
    }));
    assert!(panicked(&mut || {
        let _ = p.try_publish_batch_with(3, |i, slot| {
            slot.fill(0xee);
            assert!(i < 1, "the writer failed");
            16
        });
    }));
    assert_eq!(c.try_recv().unwrap_err(), RecvError::Empty);
    // The slots are written again by the next publish, which gets the first sequence.
    assert_eq!(p.try_publish(&[7; 16]), Ok(0));
    let m = c.try_recv().unwrap();
    assert_eq!((m.sequence(), &*m), (0, &[7u8; 16][..]));
    drop(m);
    assert_eq!(c.try_recv().unwrap_err(), RecvError::Empty);
    assert_eq!(c.skipped(), 0);
}

#[test]
fn a_busy_spinning_subscriber_sees_each_publish_and_honours_its_deadline() {
    // A busy-spinning subscriber spins on the word the next publish writes (its slot's
    // header, or a fixed-size ring's cursor) between polls.
    for fixed in [false, true] {
        let builder = Ring::builder().capacity(8);
        let ring = if fixed {
            builder.fixed_size(8)
        } else {
            builder.slot_size(16)
        }
        .build()
        .unwrap();
        let mut c = ring
            .subscriber("spin")
            .wait_strategy(WaitStrategy::BusySpin)
            .attach()
            .unwrap();
        let started = std::time::Instant::now();
        assert_eq!(
            c.recv_timeout(Duration::from_millis(5)).unwrap_err(),
            RecvError::Timeout
        );
        assert!(started.elapsed() >= Duration::from_millis(5));
        let mut p = ring.producer_with(WaitStrategy::Yield).unwrap();
        let producer = std::thread::spawn(move || {
            for i in 0..2_000u64 {
                p.publish_value(&i).unwrap();
            }
        });
        for i in 0..2_000u64 {
            let m = c.recv().unwrap();
            assert_eq!((m.sequence(), m.value::<u64>().unwrap()), (i, i), "fixed {fixed}");
        }
        producer.join().unwrap();
        assert_eq!(c.try_recv().unwrap_err(), RecvError::Empty);
    }
}

#[test]
fn single_publishes_keep_the_cursor_exact_for_readers_of_it() {
    // A single producer stores its cursor only every few single publishes (their stamps
    // publish them); everything that reads the cursor must still see the exact end.
    let ring = Ring::builder().capacity(64).slot_size(16).build().unwrap();
    let mut behind = ring.subscriber("behind").attach().unwrap();
    let mut p = ring.producer().unwrap();
    for i in 0..40u64 {
        assert_eq!(ring.cursor(), i);
        let mut latest = ring.subscriber("latest").attach().unwrap();
        p.try_publish_value(&i).unwrap();
        assert_eq!(
            latest.try_recv().unwrap().sequence(),
            i,
            "Start::Latest after {i}"
        );
        assert_eq!(latest.try_recv().unwrap_err(), RecvError::Empty);
    }
    assert_eq!(ring.cursor(), 40);
    // A consumer 40 behind takes them all, in order, in one batch.
    let got: Vec<u64> = behind
        .try_poll(64)
        .iter()
        .map(|m| m.value::<u64>().unwrap())
        .collect();
    assert_eq!(got, (0..40).collect::<Vec<_>>());
    // A dropped producer leaves the cursor exact; the next continues there.
    drop(p);
    let mut next = ring.producer().unwrap();
    assert_eq!(next.try_publish_value(&40u64), Ok(40));
    assert_eq!(behind.try_recv().unwrap().sequence(), 40);
}

#[test]
fn values_publish_in_bulk_and_batches_read_as_slices_across_the_wrap() {
    let ring = Ring::builder().capacity(8).fixed_size(8).build().unwrap();
    let mut c = ring.subscriber("c").start(Start::Earliest).attach().unwrap();
    let mut p = ring.producer().unwrap();
    assert_eq!(p.try_publish_values::<u64>(&[]).unwrap(), 0);
    assert_eq!(p.try_publish_values(&[10u64, 11, 12, 13, 14]).unwrap(), 0);
    {
        let batch = c.try_poll(64);
        let (a, b) = batch.as_slices::<u64>().unwrap();
        assert_eq!((a, b), (&[10u64, 11, 12, 13, 14][..], &[][..]));
    }
    // Sequences 5..11 are slots 5, 6, 7, 0, 1, 2: the copy and the view wrap.
    assert_eq!(p.try_publish_values(&[15u64, 16, 17, 18, 19, 20]).unwrap(), 5);
    {
        let batch = c.try_poll(64);
        assert_eq!(batch.sequences(), 5..11);
        let (a, b) = batch.as_slices::<u64>().unwrap();
        assert_eq!((a, b), (&[15u64, 16, 17][..], &[18u64, 19, 20][..]));
        // The same messages one by one.
        let one_by_one: Vec<u64> = batch.iter().map(|m| m.value::<u64>().unwrap()).collect();
        assert_eq!(one_by_one, [15, 16, 17, 18, 19, 20]);
    }
    let empty = c.try_poll(64);
    assert_eq!(empty.as_slices::<u64>().unwrap(), (&[][..], &[][..]));
    drop(empty);
    // Room is checked for the whole slice: nothing of it is published without room for all.
    assert_eq!(
        p.try_publish_values(&[0u64; 9]).unwrap_err(),
        PublishError::BatchTooLarge { n: 9, capacity: 8 }
    );
    p.try_publish_values(&[1u64; 6]).unwrap();
    assert_eq!(p.try_publish_values(&[2u64; 3]).unwrap_err(), PublishError::Full);
    assert_eq!(ring.cursor(), 17);
}

#[test]
fn values_need_the_ring_s_message_size_and_slices_a_fixed_size_ring() {
    let fixed = Ring::builder().capacity(8).fixed_size(16).build().unwrap();
    let mut c = fixed.subscriber("c").start(Start::Earliest).attach().unwrap();
    let mut p = fixed.producer().unwrap();
    assert_eq!(
        p.try_publish_values(&[1u64, 2]).unwrap_err(),
        PublishError::WrongSize { len: 8, size: 16 }
    );
    p.try_publish_values(&[[1u64, 2], [3, 4]]).unwrap();
    let batch = c.try_poll(8);
    assert_eq!(
        batch.as_slices::<u64>().unwrap_err(),
        Error::NotFixedSizeOf { size: 8, align: 8 }
    );
    assert_eq!(batch.as_slices::<[u64; 2]>().unwrap().0, &[[1, 2], [3, 4]]);
    drop(batch);

    // A ring with headers takes each value as one message, and has no slices to give.
    let headers = Ring::builder().capacity(8).slot_size(24).build().unwrap();
    let mut c = headers.subscriber("c").start(Start::Earliest).attach().unwrap();
    let mut p = headers.producer().unwrap();
    assert_eq!(
        p.try_publish_values(&[[0u64; 3]]).unwrap_err(),
        PublishError::TooLarge { len: 24, max: 16 }
    );
    assert_eq!(p.publish_values(&[7u64, 8, 9]).unwrap(), 0);
    let batch = c.try_poll(8);
    let got: Vec<u64> = batch.iter().map(|m| m.value::<u64>().unwrap()).collect();
    assert_eq!(got, [7, 8, 9]);
    assert_eq!(
        batch.as_slices::<u64>().unwrap_err(),
        Error::NotFixedSizeOf { size: 8, align: 8 }
    );
}

#[test]
fn bulk_values_stream_between_threads_in_order() {
    // Batches of 1 to 13 values into a 16-slot ring, read as slices by a subscriber and
    // one by one by a worker of a group after it: every value once, in order.
    let ring = Ring::builder().capacity(16).fixed_size(8).build().unwrap();
    let mut sub = ring
        .subscriber("slices")
        .wait_strategy(WaitStrategy::Yield)
        .attach()
        .unwrap();
    let mut worker = ring
        .worker("after", "w")
        .after(["slices"])
        .wait_strategy(WaitStrategy::Yield)
        .attach()
        .unwrap();
    let mut p = ring.producer_with(WaitStrategy::Yield).unwrap();
    const N: u64 = 20_000;
    let producer = std::thread::spawn(move || {
        let mut next = 0u64;
        let mut k = 1u64;
        while next < N {
            let n = k.min(N - next);
            let values: Vec<u64> = (next..next + n).collect();
            p.publish_values(&values).unwrap();
            next += n;
            k = k % 13 + 1;
        }
    });
    let reader = std::thread::spawn(move || {
        let mut expected = 0u64;
        while expected < N {
            let batch = sub.poll(64).unwrap();
            let (a, b) = batch.as_slices::<u64>().unwrap();
            for &v in a.iter().chain(b) {
                assert_eq!(v, expected);
                expected += 1;
            }
        }
    });
    let mut expected = 0u64;
    while expected < N {
        let m = worker.recv().unwrap();
        assert_eq!(m.value::<u64>().unwrap(), expected);
        expected += 1;
    }
    producer.join().unwrap();
    reader.join().unwrap();
}
