//! Messages larger than a slot: published as fragments in consecutive slots, received whole
//! by `recv_large` under the last fragment's sequence, never interleaved with another
//! producer's, never delivered in part, and to one worker of a group whole; the limits give
//! typed errors.

use ringmq::{Fragment, PublishError, RecvError, Ring, Start};
use std::time::Duration;

const SLOT: usize = 64; // the payload of a 72-byte slot
const LONG: Duration = Duration::from_secs(30);

fn ring(capacity: u64, multi: bool) -> Ring {
    let builder = Ring::builder().capacity(capacity).slot_size(SLOT + 8);
    if multi { builder.multi_producer() } else { builder }
        .build()
        .unwrap()
}

/// A message of `len` bytes that says who sent it and which it is, in every byte.
fn message(producer: u8, i: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| (i as u8).wrapping_mul(31).wrapping_add(k as u8) ^ producer)
        .collect()
}

#[test]
fn messages_of_every_size_come_back_whole_under_their_last_fragment() {
    for multi in [false, true] {
        let ring = ring(64, multi);
        let mut consumer = ring.subscriber("s").start(Start::Earliest).attach().unwrap();
        let mut producer = ring.producer().unwrap();
        assert_eq!(producer.max_large_len(), 64 * SLOT);
        let sizes = [
            0,
            1,
            SLOT - 1,
            SLOT,
            SLOT + 1,
            2 * SLOT,
            3 * SLOT + 5,
            64 * SLOT,
            10,
        ];
        let mut out = Vec::new();
        let mut next = 0u64;
        for (i, &len) in sizes.iter().enumerate() {
            let sent = message(1, i as u64, len);
            let sequence = producer.publish_large_timeout(&sent, LONG).unwrap();
            let fragments = len.div_ceil(SLOT).max(1) as u64;
            assert_eq!(sequence, next + fragments - 1, "size {len} (multi {multi})");
            next = sequence + 1;
            assert_eq!(
                consumer.recv_large_timeout(&mut out, LONG).unwrap().sequence,
                sequence
            );
            assert_eq!(out, sent, "size {len} (multi {multi})");
            assert_eq!(
                consumer.position(),
                sequence + 1,
                "released to the end of the message"
            );
        }
        assert_eq!(consumer.try_recv_large(&mut out), Err(RecvError::Empty));
    }
}

#[test]
fn the_other_receives_see_the_fragments_and_say_which_they_are() {
    let ring = ring(16, false);
    let mut consumer = ring.subscriber("s").start(Start::Earliest).attach().unwrap();
    let mut producer = ring.producer().unwrap();
    let sent = message(2, 7, 3 * SLOT + 1);
    producer.publish_large(&sent).unwrap();
    producer.publish(b"small").unwrap();
    let batch = consumer.poll(16).unwrap();
    let seen: Vec<_> = batch.iter().map(|m| (m.fragment(), m.len())).collect();
    assert_eq!(
        seen,
        [
            (Some(Fragment::First), SLOT),
            (Some(Fragment::Middle), SLOT),
            (Some(Fragment::Middle), SLOT),
            (Some(Fragment::Last), 1),
            (None, 5),
        ]
    );
    let joined: Vec<u8> = batch.iter().take(4).flat_map(|m| m.bytes().to_vec()).collect();
    assert_eq!(joined, sent);
}

#[test]
fn limits_are_typed_errors_and_publish_nothing() {
    let ring = ring(8, true);
    let mut producer = ring.producer().unwrap();
    let too_big = vec![0u8; 8 * SLOT + 1];
    assert_eq!(
        producer.try_publish_large(&too_big),
        Err(PublishError::TooLarge {
            len: 8 * SLOT + 1,
            max: 8 * SLOT
        })
    );
    assert_eq!(ring.next_sequence(), 0);
    // A ring whose consumer holds some slots has no room for a whole-ring message now.
    let _consumer = ring.subscriber("s").start(Start::Earliest).attach().unwrap();
    producer.publish(b"x").unwrap();
    assert_eq!(
        producer.try_publish_large(&vec![1u8; 8 * SLOT]),
        Err(PublishError::Full)
    );
    assert!(matches!(
        producer.publish_large_timeout(&vec![1u8; 8 * SLOT], Duration::from_millis(20)),
        Err(PublishError::Timeout)
    ));
    assert_eq!(ring.next_sequence(), 1);

    // A fixed-size ring has no headers, so no fragments: its one message size only.
    let fixed = Ring::builder().capacity(8).fixed_size(16).build().unwrap();
    let mut producer = fixed.producer().unwrap();
    assert_eq!(producer.max_large_len(), 16);
    assert_eq!(
        producer.try_publish_large(&[0u8; 40]),
        Err(PublishError::WrongSize { len: 40, size: 16 })
    );
}

#[test]
fn a_group_gives_each_message_to_one_worker_whole() {
    // A backlog of mixed sizes, longer than a worker's claim (at most 256 slots), so claims
    // would cut messages; then two workers on threads take it with more coming: every
    // message comes out once, whole, at one of the two. A message cut between them would be
    // missing (each passes over pieces whose start it did not see).
    const N: u64 = 2000;
    let sizes = [10, 3 * SLOT + 7, SLOT, 1, 12 * SLOT, 2 * SLOT + 1];
    for multi in [false, true] {
        let ring = ring(16384, multi);
        let workers: Vec<_> = (0..2)
            .map(|w| ring.worker("g", &format!("w{w}")).attach().unwrap())
            .collect();
        let mut producer = ring.producer().unwrap();
        let mut sent = Vec::new();
        let mut publish = |i: u64| {
            let m = message(1, i, sizes[i as usize % sizes.len()]);
            sent.push((producer.publish_large_timeout(&m, LONG).unwrap(), m));
        };
        for i in 0..N / 2 {
            publish(i);
        }
        // Each worker sends what it receives, until the test drops its stop channel.
        let (sink, received) = std::sync::mpsc::channel::<(u64, Vec<u8>)>();
        let mut stops = Vec::new();
        let threads: Vec<_> = workers
            .into_iter()
            .map(|mut worker| {
                let sink = sink.clone();
                let (stop, stopped) = std::sync::mpsc::channel::<()>();
                stops.push(stop);
                std::thread::spawn(move || {
                    let mut out = Vec::new();
                    while let Err(std::sync::mpsc::TryRecvError::Empty) = stopped.try_recv() {
                        match worker.recv_large_timeout(&mut out, Duration::from_millis(5)) {
                            Ok(whole) => {
                                assert!(!whole.redelivered, "no worker stopped");
                                sink.send((whole.sequence, out.clone())).unwrap();
                            }
                            Err(RecvError::Timeout) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        for i in N / 2..N {
            publish(i);
        }
        // A message lost keeps the count below N: the deadline ends the wait, and the
        // comparison below says what is missing.
        let deadline = std::time::Instant::now() + LONG;
        let mut got = Vec::new();
        while (got.len() as u64) < N {
            match received.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
                Ok(message) => got.push(message),
                Err(_) => break,
            }
        }
        drop(stops);
        for t in threads {
            t.join().unwrap();
        }
        got.sort();
        assert_eq!(got.len(), sent.len(), "multi {multi}: messages lost or repeated");
        assert_eq!(got, sent, "multi {multi}");
    }
}

#[test]
fn a_plain_receive_claims_a_large_message_whole() {
    // The group's claims end at message boundaries, so the worker that takes a large
    // message's first piece takes all of them; the other worker gets the next message.
    let ring = ring(16, false);
    let mut a = ring.worker("g", "a").attach().unwrap();
    let mut b = ring.worker("g", "b").attach().unwrap();
    let mut producer = ring.producer().unwrap();
    let large = message(1, 0, 4 * SLOT);
    producer.publish_large(&large).unwrap(); // 0..=3
    producer.publish(b"small").unwrap(); // 4
    let first = a.try_recv().unwrap();
    assert_eq!((first.sequence(), first.fragment()), (0, Some(Fragment::First)));
    drop(first);
    let other = b.try_recv().unwrap();
    assert_eq!((other.sequence(), &other[..]), (4, &b"small"[..]));
    drop(other);
    let pieces: Vec<(u64, Option<Fragment>)> = (0..3)
        .map(|_| {
            let m = a.try_recv().unwrap();
            (m.sequence(), m.fragment())
        })
        .collect();
    assert_eq!(
        pieces,
        [
            (1, Some(Fragment::Middle)),
            (2, Some(Fragment::Middle)),
            (3, Some(Fragment::Last))
        ]
    );
    assert!(matches!(a.try_recv(), Err(RecvError::Empty)));
}

#[test]
fn a_worker_that_stops_leaves_the_rest_of_its_claim_whole_and_redelivered() {
    let ring = ring(32, false);
    let mut a = ring.worker("g", "a").attach().unwrap();
    let mut producer = ring.producer().unwrap();
    let sent: Vec<Vec<u8>> = [3 * SLOT, 2 * SLOT + 9, 5]
        .iter()
        .enumerate()
        .map(|(i, &len)| message(2, i as u64, len))
        .collect();
    let ends: Vec<u64> = sent.iter().map(|m| producer.publish_large(m).unwrap()).collect();
    let mut out = Vec::new();
    // One receive claims everything published (whole messages) and delivers the first.
    let whole = a.try_recv_large(&mut out).unwrap();
    assert_eq!(
        (whole.sequence, whole.redelivered, &out),
        (ends[0], false, &sent[0])
    );
    // It stops holding the other two: the next worker gets each whole, flagged.
    drop(a);
    let mut b = ring.worker("g", "b").attach().unwrap();
    for (end, message) in ends[1..].iter().zip(&sent[1..]) {
        let whole = b.try_recv_large(&mut out).unwrap();
        assert_eq!((whole.sequence, whole.redelivered, &out), (*end, true, message));
    }
    producer.publish(b"after").unwrap();
    let whole = b.try_recv_large(&mut out).unwrap();
    assert_eq!((whole.redelivered, &out[..]), (false, &b"after"[..]));
    assert_eq!(b.try_recv_large(&mut out), Err(RecvError::Empty));
}

#[test]
fn fragments_without_their_start_and_skipped_slots_are_passed_over() {
    let ring = ring(32, true);
    let mut producer = ring.producer().unwrap();
    let first = message(3, 1, 3 * SLOT);
    let end_of_first = producer.publish_large(&first).unwrap();
    // A batch whose writer panicked is published as skipped slots.
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _claim = producer.claim_batch(3).unwrap();
        panic!("the writer dies mid-batch");
    }));
    assert!(panicked.is_err());
    let second = message(3, 2, 2 * SLOT + 3);
    let end_of_second = producer.publish_large(&second).unwrap();
    assert_eq!(end_of_second, end_of_first + 3 + 3);

    // A subscriber that starts in the middle of the first message passes over the rest of
    // it, and the skipped slots, and gets the second whole.
    let mut late = ring
        .subscriber("late")
        .start(Start::Sequence(1))
        .attach()
        .unwrap();
    let mut out = Vec::new();
    assert_eq!(
        late.recv_large_timeout(&mut out, LONG).unwrap().sequence,
        end_of_second
    );
    assert_eq!(out, second);
    assert_eq!(late.skipped(), 3);

    let mut early = ring.subscriber("early").start(Start::Earliest).attach().unwrap();
    assert_eq!(
        early.recv_large_timeout(&mut out, LONG).unwrap().sequence,
        end_of_first
    );
    assert_eq!(out, first);
    assert_eq!(
        early.recv_large_timeout(&mut out, LONG).unwrap().sequence,
        end_of_second
    );
    assert_eq!(out, second);
}

#[test]
fn a_durable_subscriber_holds_a_message_until_it_is_whole() {
    let ring = ring(16, false);
    let mut producer = ring.producer().unwrap();
    let sent = message(4, 0, 5 * SLOT);
    {
        let mut consumer = ring
            .subscriber("d")
            .durable(true)
            .start(Start::Earliest)
            .attach()
            .unwrap();
        // Nothing yet: the position stays.
        let mut out = Vec::new();
        assert_eq!(consumer.try_recv_large(&mut out), Err(RecvError::Empty));
        assert_eq!(consumer.position(), 0);
    }
    let last = producer.publish_large(&sent).unwrap();
    let mut consumer = ring.subscriber("d").durable(true).attach().unwrap();
    assert_eq!(consumer.position(), 0, "resumed at the first fragment");
    let mut out = Vec::new();
    assert_eq!(consumer.recv_large(&mut out).unwrap().sequence, last);
    assert_eq!(out, sent);
}

#[test]
fn concurrent_producers_never_interleave_their_fragments() {
    const PER_PRODUCER: u64 = 2000;
    let ring = ring(256, true);
    let mut consumer = ring.subscriber("s").start(Start::Earliest).attach().unwrap();
    let producers: Vec<_> = (0..2u8)
        .map(|p| {
            let mut producer = ring.producer().unwrap();
            std::thread::spawn(move || {
                for i in 0..PER_PRODUCER {
                    // Sizes from one byte to six slots, different for each producer.
                    let len = 1 + ((i as usize * 37 + p as usize * 101) % (6 * SLOT));
                    producer.publish_large(&message(p, i, len)).unwrap();
                }
            })
        })
        .collect();
    let mut next = [0u64; 2];
    let mut out = Vec::new();
    while next.iter().sum::<u64>() < 2 * PER_PRODUCER {
        consumer.recv_large_timeout(&mut out, LONG).unwrap();
        // Which producer sent it: the only one whose next message this is.
        let from = (0..2u8)
            .find(|&p| {
                let i = next[p as usize];
                let len = 1 + ((i as usize * 37 + p as usize * 101) % (6 * SLOT));
                i < PER_PRODUCER && out == message(p, i, len)
            })
            .unwrap_or_else(|| panic!("a message of {} bytes no producer sent next", out.len()));
        next[from as usize] += 1;
    }
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(consumer.try_recv_large(&mut out), Err(RecvError::Empty));
}
