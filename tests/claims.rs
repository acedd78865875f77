//! Writing in place: claims of one slot and of a batch, batches filled by a closure, and what
//! a writer that panics leaves behind (skipped slots, never unpublished ones).

use ringmq::{PublishError, RecvError, Ring};

/// A ring of `capacity` slots of 24 bytes (16 of payload), single or multi producer.
fn ring(capacity: u64, multi: bool) -> Ring {
    let builder = Ring::builder().capacity(capacity).slot_size(24);
    if multi { builder.multi_producer() } else { builder }
        .build()
        .unwrap()
}

/// Every message the consumer can take now: (sequence, bytes).
fn drain(c: &mut ringmq::Consumer) -> Vec<(u64, Vec<u8>)> {
    c.try_poll(64)
        .iter()
        .map(|m| (m.sequence(), m.to_vec()))
        .collect()
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
        let ring = Ring::builder().capacity(4).slot_size(32);
        let ring = if multi { ring.multi_producer() } else { ring }.build().unwrap();
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
    for multi in [false, true] {
        let ring = ring(8, multi);
        let mut c = ring.subscriber("c").attach().unwrap();
        let mut p = ring.producer().unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _claim = p.try_claim_slot().unwrap();
            panic!("the writer failed");
        }));
        assert!(result.is_err());
        p.try_publish(b"after").unwrap();
        let m = c.try_recv().unwrap();
        assert_eq!((m.sequence(), &*m), (1, &b"after"[..]), "multi {multi}");
        drop(m);
        assert_eq!(c.skipped(), 1);
    }
}

#[test]
fn a_batch_closure_writes_each_slot_in_place_and_returns_its_length() {
    for multi in [false, true] {
        let ring = ring(8, multi);
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
        let got = drain(&mut c);
        assert_eq!(got.len(), 5);
        for (i, (seq, bytes)) in got.iter().enumerate() {
            assert_eq!(*seq, i as u64);
            if i == 4 {
                assert_eq!(bytes.len(), 16);
            } else {
                assert_eq!(bytes, &vec![i as u8; 3]);
            }
        }
    }
}

#[test]
fn a_panicking_batch_closure_publishes_what_it_finished_and_skips_the_rest() {
    // (where `fill` panics in a batch of 3, the messages then delivered, slots skipped). The
    // cases run one after another on one ring of 8 slots, so the last one crosses the wrap.
    let cases: [(usize, &[u8], u64); 4] = [(1, &[0], 2), (0, &[], 3), (2, &[0, 1], 1), (1, &[0], 2)];
    for multi in [false, true] {
        let ring = ring(8, multi);
        let mut c = ring.subscriber("c").attach().unwrap();
        let mut p = ring.producer().unwrap();
        let mut base = 0u64;
        let mut skipped = 0;
        for (stop, delivered, skips) in cases {
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
            // Never unpublished: the next message comes after the whole batch.
            assert_eq!(p.try_publish(b"next").unwrap(), base + 3);
            let mut expected: Vec<(u64, Vec<u8>)> =
                delivered.iter().map(|&i| (base + i as u64, vec![i])).collect();
            expected.push((base + 3, b"next".to_vec()));
            assert_eq!(drain(&mut c), expected, "multi {multi}, stop {stop} at {base}");
            skipped += skips;
            assert_eq!(c.skipped(), skipped, "multi {multi}, stop {stop} at {base}");
            base += 4;
        }
    }
}
