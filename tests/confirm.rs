//! Publisher confirms by each kind: a named subscriber, a group, every gating consumer, the
//! journal's durable position; consumers attaching and detaching while a producer waits;
//! timeouts, and the try form; windowed use.

use ringmq::journal::{JournalOptions, JournalStage};
use ringmq::{ConfirmBy, ConfirmError, Ring, Start, WaitStrategy};
use std::sync::mpsc;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(30);
const SHORT: Duration = Duration::from_millis(20);

fn ring() -> Ring {
    Ring::builder().capacity(64).slot_size(64).build().unwrap()
}

#[test]
fn a_named_subscriber_confirms_what_it_released() {
    let ring = ring();
    let mut audit = ring.subscriber("audit").start(Start::Earliest).attach().unwrap();
    let mut producer = ring.producer().unwrap();
    let mut confirmer = ring.confirmer(ConfirmBy::Consumer("audit".into())).unwrap();
    let first = producer.publish(b"1").unwrap();
    let second = producer.publish(b"2").unwrap();
    assert_eq!(
        confirmer.try_confirm(first),
        Err(ConfirmError::NotYet { position: first })
    );
    assert_eq!(
        confirmer.confirm_timeout(first, SHORT),
        Err(ConfirmError::Timeout { position: first })
    );
    let message = audit.recv().unwrap();
    // Received but not yet acknowledged: not confirmed.
    assert!(confirmer.try_confirm(first).is_err());
    drop(message);
    assert_eq!(confirmer.try_confirm(first), Ok(first + 1));
    assert!(confirmer.try_confirm(second).is_err());
    drop(audit.recv().unwrap());
    // Cumulative: the later one covers the earlier.
    assert_eq!(confirmer.confirm(second), Ok(second + 1));
    assert_eq!(confirmer.position(), Ok(second + 1));
}

#[test]
fn a_group_confirms_when_every_worker_acknowledged() {
    let ring = ring();
    let mut w1 = ring.worker("billing", "w1").attach().unwrap();
    let mut w2 = ring.worker("billing", "w2").attach().unwrap();
    let mut producer = ring.producer().unwrap();
    let mut confirmer = ring.confirmer(ConfirmBy::Consumer("billing".into())).unwrap();
    let first = producer.publish(b"1").unwrap();
    let second = producer.publish(b"2").unwrap();
    let held = w1.recv().unwrap();
    drop(w2.recv().unwrap());
    // w2 acknowledged the second, but w1 still holds the first.
    assert_eq!(
        confirmer.try_confirm(first),
        Err(ConfirmError::NotYet { position: first })
    );
    drop(held);
    assert_eq!(confirmer.try_confirm(second), Ok(second + 1));
    assert_eq!(
        ring.confirmer(ConfirmBy::Consumer("w1".into())).unwrap_err(),
        ConfirmError::Worker { name: "w1".into() }
    );
}

#[test]
fn gating_confirms_when_the_slowest_released_and_follows_attach_and_detach() {
    let ring = ring();
    let mut producer = ring.producer().unwrap();
    let mut confirmer = ring.confirmer(ConfirmBy::Gating).unwrap();
    // Nobody gates: everything published is confirmed.
    let s0 = producer.publish(b"0").unwrap();
    assert_eq!(confirmer.try_confirm(s0), Ok(s0 + 1));
    let mut fast = ring.subscriber("fast").attach().unwrap();
    let slow = ring.subscriber("slow").attach().unwrap();
    let s1 = producer.publish(b"1").unwrap();
    drop(fast.recv().unwrap());
    assert_eq!(
        confirmer.try_confirm(s1),
        Err(ConfirmError::NotYet { position: s1 })
    );
    // A producer waits on another thread; the slow subscriber detaches meanwhile.
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        tx.send(()).unwrap();
        confirmer.confirm_timeout(s1, LONG)
    });
    rx.recv().unwrap();
    slow.detach();
    assert_eq!(waiter.join().unwrap(), Ok(s1 + 1));
}

#[test]
fn a_confirm_waits_through_a_late_attach_and_sees_a_named_consumer_go() {
    let ring = ring();
    let mut producer = ring.producer().unwrap();
    assert_eq!(
        ring.confirmer(ConfirmBy::Consumer("late".into())).unwrap_err(),
        ConfirmError::UnknownConsumer { name: "late".into() }
    );
    let mut late = ring.subscriber("late").start(Start::Earliest).attach().unwrap();
    let mut confirmer = ring.confirmer(ConfirmBy::Consumer("late".into())).unwrap();
    let s = producer.publish(b"x").unwrap();
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        tx.send(()).unwrap();
        confirmer.confirm_timeout(s + 5, LONG)
    });
    rx.recv().unwrap();
    drop(late.recv().unwrap());
    late.detach();
    assert_eq!(
        waiter.join().unwrap(),
        Err(ConfirmError::Detached { name: "late".into() })
    );
}

#[test]
fn a_durable_subscriber_that_comes_back_keeps_its_confirms_going() {
    let ring = ring();
    let mut producer = ring.producer().unwrap();
    let durable = ring
        .subscriber("d")
        .durable(true)
        .start(Start::Earliest)
        .attach()
        .unwrap();
    let mut confirmer = ring.confirmer(ConfirmBy::Consumer("d".into())).unwrap();
    let s = producer.publish(b"x").unwrap();
    durable.detach();
    let mut again = ring.subscriber("d").durable(true).attach().unwrap();
    drop(again.recv().unwrap());
    assert_eq!(confirmer.confirm_timeout(s, LONG), Ok(s + 1));
}

#[test]
fn durable_confirms_wait_for_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    assert_eq!(
        ring.confirmer(ConfirmBy::Durable).unwrap_err(),
        ConfirmError::UnknownConsumer {
            name: "journal".into()
        }
    );
    let stage = JournalStage::spawn(&ring, dir.path(), JournalOptions::default()).unwrap();
    let mut confirmer = ring.confirmer(ConfirmBy::Durable).unwrap();
    let mut producer = ring.producer().unwrap();
    let mut last = 0;
    for i in 0..200u32 {
        last = producer.publish(&i.to_le_bytes()).unwrap();
    }
    let durable = confirmer.confirm_timeout(last, LONG).unwrap();
    assert!(durable > last);
    // What the confirm said durable, the journal has.
    assert!(stage.durable() > last);
    stage.stop().unwrap();
}

#[test]
fn a_window_of_confirms_costs_a_wait_per_window() {
    let ring = Ring::builder().capacity(1024).slot_size(64).build().unwrap();
    let mut consumer = ring.subscriber("c").start(Start::Earliest).attach().unwrap();
    let mut producer = ring.producer().unwrap();
    let mut confirmer = ring
        .confirmer_with(ConfirmBy::Consumer("c".into()), WaitStrategy::Yield)
        .unwrap();
    const N: u64 = 20_000;
    const WINDOW: u64 = 64;
    let reader = std::thread::spawn(move || {
        for i in 0..N {
            let m = consumer.recv().unwrap();
            assert_eq!(&*m, &i.to_le_bytes());
        }
        // Kept attached until the producer's last confirm: a consumer that detached has no
        // position to confirm by.
        consumer
    });
    for i in 0..N {
        let s = producer.publish(&i.to_le_bytes()).unwrap();
        if s >= WINDOW {
            // At most WINDOW messages unconfirmed.
            confirmer.confirm_timeout(s - WINDOW, LONG).unwrap();
        }
    }
    let consumer = reader.join().unwrap();
    confirmer.confirm_timeout(N - 1, LONG).unwrap();
    drop(consumer);
}

#[test]
fn gating_counts_a_consumer_that_attaches_behind_the_sequence() {
    let ring = ring();
    let mut producer = ring.producer().unwrap();
    let mut a = ring.subscriber("a").start(Start::Earliest).attach().unwrap();
    let s = producer.publish(b"x").unwrap();
    let mut confirmer = ring.confirmer(ConfirmBy::Gating).unwrap();
    assert!(confirmer.try_confirm(s).is_err());
    // `b` attaches before anything released `s`, starting behind it: it gates too.
    let mut b = ring.subscriber("b").start(Start::Earliest).attach().unwrap();
    drop(a.recv().unwrap());
    assert_eq!(
        confirmer.try_confirm(s),
        Err(ConfirmError::NotYet { position: s })
    );
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        tx.send(()).unwrap();
        confirmer.confirm_timeout(s, LONG)
    });
    rx.recv().unwrap();
    drop(b.recv().unwrap());
    assert_eq!(waiter.join().unwrap(), Ok(s + 1));
}

#[test]
fn what_a_subscriber_released_before_it_detached_stays_confirmed() {
    let ring = ring();
    let mut producer = ring.producer().unwrap();
    let mut reader = ring.subscriber("r").start(Start::Earliest).attach().unwrap();
    let mut confirmer = ring.confirmer(ConfirmBy::Consumer("r".into())).unwrap();
    let first = producer.publish(b"1").unwrap();
    let second = producer.publish(b"2").unwrap();
    drop(reader.recv().unwrap());
    reader.detach();
    // Released, then gone: confirmed all the same; what it never released is not.
    assert_eq!(confirmer.confirm_timeout(first, LONG), Ok(first + 1));
    assert_eq!(
        confirmer.confirm_timeout(second, LONG),
        Err(ConfirmError::Detached { name: "r".into() })
    );
}
