//! Fixed-size rings: slots without headers, every message the ring's one size, published by
//! the cursor alone.

use ringmq::{Producer, PublishError, RecvError, Ring, TypeError, TypedConsumer, TypedProducer};

fn ring() -> Ring {
    Ring::builder().capacity(16).fixed_size(8).build().unwrap()
}

#[test]
fn a_fixed_size_ring_reports_its_message_size() {
    let ring = ring();
    assert_eq!(
        (ring.fixed_size(), ring.slot_size(), ring.max_message_len()),
        (Some(8), 8, 8)
    );
    assert_eq!(Ring::builder().build().unwrap().fixed_size(), None);
    let producer = ring.producer().unwrap();
    assert!(producer.is_fixed_size());
    assert_eq!(producer.max_message_len(), 8);
    let consumer = ring.subscriber("c").attach().unwrap();
    assert!(consumer.is_fixed_size());
}

#[test]
fn every_way_to_publish_refuses_another_size() {
    let ring = ring();
    let mut c = ring.subscriber("c").attach().unwrap();
    let mut p = ring.producer().unwrap();
    let wrong = |len| PublishError::WrongSize { len, size: 8 };
    type Publish = fn(&mut Producer) -> Result<(), PublishError>;
    let cases: [(Publish, PublishError); 5] = [
        (|p| p.try_publish(&[1; 7]).map(drop), wrong(7)),
        (|p| p.try_publish(&1u32.to_le_bytes()).map(drop), wrong(4)),
        (
            |p| p.try_publish_batch(&[[0u8; 8].as_slice(), &[0u8; 9]]).map(drop),
            wrong(9),
        ),
        (|p| p.try_claim_slot().unwrap().set_len(4), wrong(4)),
        (|p| p.try_claim_batch(2).unwrap().set_len(0, 1), wrong(1)),
    ];
    for (i, (publish, expected)) in cases.into_iter().enumerate() {
        assert_eq!(publish(&mut p), Err(expected), "case {i}");
    }
    let mut claim = p.try_claim_slot().unwrap();
    assert_eq!(
        claim.value_mut::<u32>().unwrap_err(),
        TypeError::Mismatch {
            size: 4,
            align: 4,
            capacity: 8
        }
    );
    // (The claims above published their slots whole: a claim's message is the whole slot.)
    drop(claim);
    let published: Vec<u64> = c.try_poll(16).iter().map(|m| m.sequence()).collect();
    assert_eq!(published, [0, 1, 2, 3], "the claims' slots, and nothing else");
}

#[test]
fn every_way_to_publish_carries_whole_slots() {
    let ring = ring();
    let mut c = ring.subscriber("c").attach().unwrap();
    let mut w = ring.worker("g", "w").attach().unwrap();
    let mut p = ring.producer().unwrap();
    assert_eq!(p.try_publish(&10u64.to_le_bytes()), Ok(0));
    assert_eq!(p.try_publish(&11u64.to_le_bytes()), Ok(1));
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
        *claim.value_mut::<u64>().unwrap() = 16;
    }
    {
        let mut batch = p.try_claim_batch(2).unwrap();
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
}

#[test]
fn a_new_producer_continues_at_the_cursor() {
    let ring = ring();
    let mut p = TypedProducer::<u64>::new(ring.producer().unwrap()).unwrap();
    for i in 0..9 {
        p.try_publish(&(10 + i)).unwrap();
    }
    drop(p);
    let mut typed = TypedProducer::<u64>::new(ring.producer().unwrap()).unwrap();
    let mut tc = TypedConsumer::<u64>::new(ring.subscriber("t").attach().unwrap()).unwrap();
    assert_eq!(typed.try_publish(&19), Ok(9));
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
