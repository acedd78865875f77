//! The verb matrix: every publish, claim and receive comes as `try_` (never waits), plain
//! (waits) and `_timeout` (waits at most so long), and each form keeps its contract.

use ringmq::{Producer, PublishError, RecvError, Ring, Start, TypedProducer, WaitStrategy};
use std::time::{Duration, Instant};

const SHORT: Duration = Duration::from_millis(15);

/// One publishing verb, by its three forms, as functions of a producer of a fixed-size ring
/// of 8-byte messages (every verb applies to it): `Ok` when it published.
struct Verb {
    name: &'static str,
    try_form: fn(&mut Producer) -> Result<(), PublishError>,
    wait_form: fn(&mut Producer) -> Result<(), PublishError>,
    timeout_form: fn(&mut Producer, Duration) -> Result<(), PublishError>,
}

fn verbs() -> Vec<Verb> {
    const M: [u8; 8] = [7; 8];
    vec![
        Verb {
            name: "publish",
            try_form: |p| p.try_publish(&M).map(drop),
            wait_form: |p| p.publish(&M).map(drop),
            timeout_form: |p, t| p.publish_timeout(&M, t).map(drop),
        },
        Verb {
            name: "publish_batch",
            try_form: |p| p.try_publish_batch(&[M]).map(drop),
            wait_form: |p| p.publish_batch(&[M]).map(drop),
            timeout_form: |p, t| p.publish_batch_timeout(&[M], t).map(drop),
        },
        Verb {
            name: "publish_batch_with",
            try_form: |p| p.try_publish_batch_with(1, |_, s| fill(s)).map(drop),
            wait_form: |p| p.publish_batch_with(1, |_, s| fill(s)).map(drop),
            timeout_form: |p, t| p.publish_batch_with_timeout(1, |_, s| fill(s), t).map(drop),
        },
        Verb {
            name: "claim_slot",
            try_form: |p| p.try_claim_slot().and_then(|mut c| c.write(&M)),
            wait_form: |p| p.claim_slot().and_then(|mut c| c.write(&M)),
            timeout_form: |p, t| p.claim_slot_timeout(t).and_then(|mut c| c.write(&M)),
        },
        Verb {
            name: "claim_batch",
            try_form: |p| p.try_claim_batch(1).map(write_first),
            wait_form: |p| p.claim_batch(1).map(write_first),
            timeout_form: |p, t| p.claim_batch_timeout(1, t).map(write_first),
        },
    ]
}

fn write_first(mut batch: ringmq::BatchClaim<'_>) {
    batch.slot_mut(0).unwrap().fill(7);
}

fn fill(slot: &mut [u8]) -> usize {
    slot.fill(7);
    slot.len()
}

/// A fixed-size ring of two slots, full, with a subscriber that has read nothing.
fn full_ring() -> (Ring, ringmq::Consumer, Producer) {
    let ring = Ring::builder().capacity(2).fixed_size(8).build().unwrap();
    let consumer = ring
        .subscriber("c")
        .start(Start::Earliest)
        .wait_strategy(WaitStrategy::Block)
        .attach()
        .unwrap();
    let mut producer = ring.producer_with(WaitStrategy::Block).unwrap();
    producer.try_publish(&[0; 8]).unwrap();
    producer.try_publish(&[0; 8]).unwrap();
    (ring, consumer, producer)
}

#[test]
fn on_a_full_ring_try_forms_say_full_at_once_and_timeout_forms_after_their_time() {
    for verb in verbs() {
        let (_ring, _consumer, mut producer) = full_ring();
        assert_eq!(
            (verb.try_form)(&mut producer),
            Err(PublishError::Full),
            "{}",
            verb.name
        );
        let started = Instant::now();
        assert_eq!(
            (verb.timeout_form)(&mut producer, SHORT),
            Err(PublishError::Timeout),
            "{}",
            verb.name
        );
        assert!(started.elapsed() >= SHORT, "{} returned early", verb.name);
    }
}

#[test]
fn with_room_every_form_publishes() {
    for verb in verbs() {
        for form in 0..3 {
            let (_ring, mut consumer, mut producer) = full_ring();
            drop(consumer.try_poll(2));
            let published = match form {
                0 => (verb.try_form)(&mut producer),
                1 => (verb.wait_form)(&mut producer),
                _ => (verb.timeout_form)(&mut producer, SHORT),
            };
            assert_eq!(published, Ok(()), "{} form {form}", verb.name);
            let message = consumer.try_recv().unwrap();
            assert_eq!(
                (message.sequence(), &*message),
                (2, &[7u8; 8][..]),
                "{}",
                verb.name
            );
        }
    }
}

#[test]
fn a_waiting_form_publishes_once_a_consumer_makes_room() {
    for verb in verbs() {
        let (_ring, mut consumer, mut producer) = full_ring();
        let waiter = std::thread::spawn(move || {
            let published = (verb.wait_form)(&mut producer);
            (verb.name, published)
        });
        // Room for one, released while the producer may already be asleep.
        drop(consumer.recv().unwrap());
        let (name, published) = waiter.join().unwrap();
        assert_eq!(published, Ok(()), "{name}");
        assert_eq!(consumer.recv().unwrap().sequence(), 1, "{name}");
        assert_eq!(consumer.recv().unwrap().sequence(), 2, "{name}");
    }
}

#[test]
fn the_typed_forms_follow_the_same_contract() {
    let (_ring, mut consumer, producer) = full_ring();
    let mut typed = TypedProducer::<u64>::new(producer).unwrap();
    assert_eq!(typed.try_publish(&1), Err(PublishError::Full));
    assert_eq!(typed.try_publish_slice(&[1]), Err(PublishError::Full));
    assert_eq!(typed.try_publish_with(|v| *v = 1), Err(PublishError::Full));
    assert_eq!(typed.publish_timeout(&1, SHORT), Err(PublishError::Timeout));
    assert_eq!(
        typed.publish_slice_timeout(&[1], SHORT),
        Err(PublishError::Timeout)
    );
    assert_eq!(
        typed.publish_with_timeout(|v| *v = 1, SHORT),
        Err(PublishError::Timeout)
    );
    drop(consumer.try_poll(2));
    assert_eq!(typed.publish(&10), Ok(2));
    assert_eq!(typed.publish_slice(&[11]), Ok(3));
    drop(consumer.try_poll(2));
    assert_eq!(typed.publish_with(|v| *v = 12), Ok(4));
    let values: Vec<u64> = consumer.try_poll(8).iter().map(|m| m.value().unwrap()).collect();
    assert_eq!(values, [12]);
}

#[test]
fn receives_come_in_the_same_three_forms() {
    let ring = Ring::builder().capacity(4).build().unwrap();
    let mut c = ring
        .subscriber("c")
        .wait_strategy(WaitStrategy::Block)
        .attach()
        .unwrap();
    assert_eq!(c.try_recv().unwrap_err(), RecvError::Empty);
    assert!(c.try_poll(4).is_empty());
    let started = Instant::now();
    assert_eq!(c.recv_timeout(SHORT).unwrap_err(), RecvError::Timeout);
    assert_eq!(c.poll_timeout(4, SHORT).unwrap_err(), RecvError::Timeout);
    assert!(started.elapsed() >= 2 * SHORT);
    let mut p = ring.producer().unwrap();
    let producer = std::thread::spawn(move || {
        for i in 0..2u64 {
            p.publish(&i.to_le_bytes()).unwrap();
        }
    });
    assert_eq!(c.recv().unwrap().sequence(), 0);
    let batch = c.poll(4).unwrap();
    assert_eq!(batch.sequences().start, 1);
    drop(batch);
    producer.join().unwrap();
}
