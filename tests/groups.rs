//! Groups of workers: what a worker that stops holding messages leaves to its group, and a
//! worker coming back under its own name.

use ringmq::{AttachError, Ring, Start};

/// A ring with a group "g" whose worker "w1" took `held` messages and stopped without
/// acknowledging them (as if its handler had panicked past them), then detached; the
/// messages were "0", "1", ... ("held" of them, and one more).
fn group_with_an_orphan(held: usize) -> Ring {
    let ring = Ring::builder().capacity(8).build().unwrap();
    let mut w1 = ring
        .worker("g", "w1")
        .group_start(Start::Earliest)
        .attach()
        .unwrap();
    let mut producer = ring.producer().unwrap();
    for i in 0..=held {
        producer.publish(i.to_string().as_bytes()).unwrap();
    }
    let batch = w1.try_poll(held);
    assert_eq!(batch.sequences(), 0..held as u64);
    // Never acknowledged, then detached.
    std::mem::forget(batch);
    drop(w1);
    ring
}

#[test]
fn a_worker_that_detaches_holding_a_message_hands_it_back_to_its_group() {
    let ring = group_with_an_orphan(1);
    let mut w2 = ring.worker("g", "w2").attach().unwrap();
    let again = w2.try_recv().unwrap();
    assert_eq!((&*again, again.redelivered()), (&b"0"[..], true));
    drop(again);
    let next = w2.try_recv().unwrap();
    assert_eq!((&*next, next.redelivered()), (&b"1"[..], false));
    drop(next);
    assert_eq!(ring.redelivered_count(), 1);
    // Subscribers never see the flag.
    let mut s = ring.subscriber("s").start(Start::Earliest).attach().unwrap();
    assert!(!s.try_recv().unwrap().redelivered());
}

#[test]
fn a_worker_back_under_its_own_name_takes_its_place_and_its_messages() {
    // Its group's only worker: nobody else would ever take the messages over.
    let ring = group_with_an_orphan(2);
    let info = ring.consumers();
    let orphan = info.iter().find(|c| c.name == "w1").unwrap();
    assert_eq!((orphan.sequence, orphan.alive), (Some(0), false));
    let mut w1 = ring.worker("g", "w1").attach().unwrap();
    for expected in [b"0", b"1"] {
        let m = w1.try_recv().unwrap();
        assert_eq!((&*m, m.redelivered()), (&expected[..], true));
    }
    let m = w1.try_recv().unwrap();
    assert_eq!((&*m, m.redelivered()), (&b"2"[..], false));
    drop(m);
    assert_eq!(ring.redelivered_count(), 2);
    // One worker entry, alive, and the group's count right: detaching it frees the group.
    let workers: Vec<_> = ring.consumers().into_iter().filter(|c| c.name == "w1").collect();
    assert_eq!(workers.len(), 1);
    assert!(workers[0].alive);
    drop(w1);
    assert!(ring.consumers().is_empty(), "{:?}", ring.consumers());
}

#[test]
fn a_worker_name_held_by_a_live_worker_or_another_group_s_orphan_is_taken() {
    let ring = group_with_an_orphan(1);
    // The orphan belongs to "g": a worker of another group may not have its name.
    assert_eq!(
        ring.worker("h", "w1").attach().unwrap_err(),
        AttachError::NameTaken { name: "w1".into() }
    );
    let _w1 = ring.worker("g", "w1").attach().unwrap();
    assert_eq!(
        ring.worker("g", "w1").attach().unwrap_err(),
        AttachError::NameTaken { name: "w1".into() }
    );
}

#[test]
fn a_durable_group_outlives_its_last_worker_gating_producers_until_a_worker_comes_back() {
    let ring = Ring::builder().capacity(8).build().unwrap();
    let mut w1 = ring
        .worker("g", "w1")
        .group_start(Start::Earliest)
        .durable(true)
        .attach()
        .unwrap();
    let mut producer = ring.producer().unwrap();
    for i in 0..6 {
        producer.publish(i.to_string().as_bytes()).unwrap();
    }
    for expected in [b"0", b"1"] {
        assert_eq!(&*w1.try_recv().unwrap(), &expected[..]);
    }
    drop(w1);
    // The group stays, with its position, though no worker is left...
    let group = ring
        .consumers()
        .into_iter()
        .find(|c| c.name == "g")
        .expect("the group stays");
    assert_eq!((group.sequence, group.durable), (Some(2), true));
    // ...and gates: a lap past its position is as far as producers go.
    for i in 6..10 {
        producer.try_publish(i.to_string().as_bytes()).unwrap();
    }
    assert!(producer.try_publish(b"10").is_err());
    // A worker joining later (durable or not) claims on where the group was.
    let w2 = ring.worker("g", "w2").attach().unwrap();
    let mut w2 = w2;
    assert_eq!(&*w2.try_recv().unwrap(), &b"2"[..]);
    // Unsubscribing makes the group ephemeral: it goes with its last worker.
    w2.unsubscribe();
    assert!(ring.consumers().iter().all(|c| c.name != "g"));
    producer.try_publish(b"10").unwrap();
}

#[test]
fn an_ephemeral_group_goes_with_its_last_worker() {
    let ring = Ring::builder().capacity(8).build().unwrap();
    let w1 = ring.worker("g", "w1").attach().unwrap();
    assert!(ring.consumers().iter().any(|c| c.name == "g"));
    drop(w1);
    assert!(ring.consumers().iter().all(|c| c.name != "g"));
}
