//! Attaching and detaching: producers' roles, consumers' names, start positions, snapshots,
//! and what a detach frees.

use ringmq::{AttachError, ConsumerKind, PublishError, RecvError, Ring, Start};

/// The handles move to other threads (`Send`), and a ring handle and a producer may be shared
/// by reference (`Sync`): both keep raw addresses into the ring, whose `Send`/`Sync` are
/// written by hand.
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
fn names_are_free_again_after_detach() {
    // A group takes an entry of its own beside its workers'.
    let ring = Ring::builder().capacity(8).max_consumers(3).build().unwrap();
    for _ in 0..5 {
        let a = ring.subscriber("a").attach().unwrap();
        let w = ring.worker("g", "w").attach().unwrap();
        assert_eq!(
            ring.subscriber("x").attach().unwrap_err(),
            AttachError::TableFull { max_consumers: 3 }
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
    assert_eq!(ring.producer().unwrap_err(), AttachError::ProducerTaken);
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
        AttachError::SequenceUnavailable {
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
    assert!(info.iter().all(|i| i.alive && !i.durable));
}

#[test]
fn a_worker_depends_on_groups_and_subscribers_and_agrees_with_its_group() {
    let ring = Ring::builder().capacity(8).build().unwrap();
    let _a = ring.subscriber("a").attach().unwrap();
    let _w = ring.worker("g", "w1").after(["a"]).attach().unwrap();
    assert_eq!(
        ring.worker("g", "w2").after(["w1"]).attach().unwrap_err(),
        AttachError::UnknownDependency { name: "w1".into() },
        "a worker is not a dependency; its group is"
    );
    // A worker naming no dependencies takes its group's.
    let _w2 = ring.worker("g", "w2").attach().unwrap();
    assert_eq!(
        ring.worker("g", "w3")
            .after(Vec::<String>::new())
            .attach()
            .unwrap_err(),
        AttachError::GroupMismatch { group: "g".into() }
    );
    let _w3 = ring.worker("g", "w3").after(["a"]).attach().unwrap();
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
