//! Durable subscribers: their entry and position outlive their handle until they come back,
//! unsubscribe, or are evicted after their delay.

use ringmq::{AttachError, PublishError, Ring, Start};
use std::time::Duration;

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
    assert_eq!(
        ring.subscriber("d").durable(true).attach().unwrap_err(),
        AttachError::NameTaken { name: "d".into() },
        "its handle is alive"
    );
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
        .evict_after(Duration::from_millis(1))
        .attach()
        .unwrap();
    assert!(durable.is_durable(), "an eviction delay makes it durable");
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
