//! Sequence arithmetic far from zero, and the exact end of the published stream seen by
//! everything that reads it (`Ring::next_sequence`, `Start::Latest`, a next producer, a
//! busy-spinning subscriber).

use ringmq::limits::MAX_SEQUENCE;
use ringmq::{RecvError, Ring, Start, WaitStrategy};
use std::time::Duration;

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
            let mut w = ring
                .worker("g", "w")
                .group_start(Start::Earliest)
                .attach()
                .unwrap();
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
            assert_eq!(ring.next_sequence(), initial + 50);
        }
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
        assert_eq!(ring.next_sequence(), i);
        let mut latest = ring.subscriber("latest").attach().unwrap();
        p.try_publish(&i.to_le_bytes()).unwrap();
        assert_eq!(
            latest.try_recv().unwrap().sequence(),
            i,
            "Start::Latest after {i}"
        );
        assert_eq!(latest.try_recv().unwrap_err(), RecvError::Empty);
    }
    assert_eq!(ring.next_sequence(), 40);
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
    assert_eq!(next.try_publish(&40u64.to_le_bytes()), Ok(40));
    assert_eq!(behind.try_recv().unwrap().sequence(), 40);
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
                p.publish(&i.to_le_bytes()).unwrap();
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
