//! Bad input gives typed errors, each operation its own type, and a failed operation leaves
//! nothing behind.

use ringmq::limits::MAX_SEQUENCE;
use ringmq::{AttachError, BuildError, PublishError, RecvError, Ring, RingBuilder, WaitStrategy};
use std::time::Duration;

#[test]
fn bad_ring_parameters_are_typed_errors() {
    let cases: [(RingBuilder, BuildError); 8] = [
        (
            Ring::builder().capacity(0),
            BuildError::InvalidCapacity { capacity: 0 },
        ),
        (
            Ring::builder().capacity(100),
            BuildError::InvalidCapacity { capacity: 100 },
        ),
        (
            Ring::builder().slot_size(8),
            BuildError::InvalidSlotSize { slot_size: 8 },
        ),
        (
            Ring::builder().slot_size(60),
            BuildError::InvalidSlotSize { slot_size: 60 },
        ),
        (
            Ring::builder().max_consumers(0),
            BuildError::InvalidMaxConsumers { max_consumers: 0 },
        ),
        (
            Ring::builder().initial_sequence(MAX_SEQUENCE + 1),
            BuildError::InvalidInitialSequence {
                initial_sequence: MAX_SEQUENCE + 1,
            },
        ),
        (
            Ring::builder().fixed_size(8).multi_producer(),
            BuildError::FixedSizeMultiProducer,
        ),
        (
            Ring::builder().fixed_size(12),
            BuildError::InvalidSlotSize { slot_size: 12 },
        ),
    ];
    for (builder, expected) in cases {
        assert_eq!(builder.build().unwrap_err(), expected);
    }
}

#[test]
fn bad_attachments_are_typed_errors_and_leave_nothing_behind() {
    let ring = Ring::builder().capacity(8).max_consumers(3).build().unwrap();
    let _a = ring.subscriber("a").attach().unwrap();
    let many: Vec<String> = (0..9).map(|i| i.to_string()).collect();
    let cases = [
        (
            ring.subscriber("a").attach(),
            AttachError::NameTaken { name: "a".into() },
        ),
        (
            ring.subscriber("").attach(),
            AttachError::InvalidName { name: "".into() },
        ),
        (
            ring.subscriber(&"x".repeat(65)).attach(),
            AttachError::InvalidName { name: "x".repeat(65) },
        ),
        (
            ring.subscriber("b").after(["nope"]).attach(),
            AttachError::UnknownDependency { name: "nope".into() },
        ),
        (
            ring.subscriber("b").after(&many).attach(),
            AttachError::TooManyDependencies { count: 9 },
        ),
        // A worker's group name collides with a subscriber.
        (
            ring.worker("a", "w").attach(),
            AttachError::NameTaken { name: "a".into() },
        ),
        (
            ring.worker("", "w").attach(),
            AttachError::InvalidName { name: "".into() },
        ),
    ];
    for (i, (result, expected)) in cases.into_iter().enumerate() {
        assert_eq!(result.unwrap_err(), expected, "case {i}");
    }
    let _b = ring.subscriber("b").attach().unwrap();
    let _c = ring.subscriber("c").attach().unwrap();
    assert_eq!(
        ring.subscriber("d").attach().unwrap_err(),
        AttachError::TableFull { max_consumers: 3 }
    );
    assert_eq!(ring.consumers().len(), 3);
}

#[test]
fn blocking_strategies_need_wakeups() {
    let ring = Ring::builder().wakeups(false).build().unwrap();
    assert_eq!(
        ring.producer_with(WaitStrategy::Block).unwrap_err(),
        AttachError::WakeupsDisabled
    );
    assert_eq!(
        ring.subscriber("c")
            .wait_strategy(WaitStrategy::Backoff)
            .attach()
            .unwrap_err(),
        AttachError::WakeupsDisabled
    );
    assert_eq!(
        ring.worker("g", "w")
            .wait_strategy(WaitStrategy::Block)
            .attach()
            .unwrap_err(),
        AttachError::WakeupsDisabled
    );
}

#[test]
fn the_default_strategies_adapt_to_a_ring_without_wakeups() {
    let ring = Ring::builder().wakeups(false).build().unwrap();
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
        p.try_publish_batch_with(9, |_, _| unreachable!("never called")),
        Err(PublishError::BatchTooLarge { n: 9, capacity: 8 })
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
fn a_publish_timeout_waits_its_time_then_says_timeout() {
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
