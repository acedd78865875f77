//! loom models of the ring's lock-free protocols, on rings of one or two slots so every
//! message wraps. Run with `RUSTFLAGS="--cfg loom" cargo test --release --test loom_ring`.
//!
//! Payload bytes are tracked by loom per slot (see `storage/mod.rs`): a producer that
//! overwrites a slot a consumer still reads, or a consumer that reads a slot before its
//! publish happens-before the read, is reported by loom as a data race.
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;
use ringmq::{PublishError, Ring, RingBuilder, WaitStrategy};

/// Explores every interleaving with at most `preemptions` preemptions (raise it for a deeper
/// run with `LOOM_MAX_PREEMPTIONS`, which overrides every model's bound), and says how many
/// executions that took.
fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.max_branches = 100_000;
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        builder.preemption_bound = Some(preemptions);
    }
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = runs.clone();
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f()
    });
    eprintln!(
        "explored {} executions",
        runs.load(std::sync::atomic::Ordering::Relaxed)
    );
}

fn tiny(capacity: u64) -> RingBuilder {
    Ring::builder()
        .capacity(capacity)
        .slot_size(16)
        .max_consumers(4)
        .wakeups(false)
}

/// Subscriber "c" of `ring`, waiting by `wait`.
fn subscriber(ring: &Ring, wait: WaitStrategy) -> ringmq::Consumer {
    ring.subscriber("c").wait_strategy(wait).attach().unwrap()
}

/// Publishes `values` from one producer, spinning (yielding) while the ring is full.
fn produce(mut producer: ringmq::Producer, values: &[u64]) {
    for v in values {
        produce_one(&mut producer, *v);
    }
}

/// Publishes `value`, spinning (yielding) while the ring is full.
fn produce_one(producer: &mut ringmq::Producer, value: u64) {
    loop {
        match producer.try_publish(&value.to_le_bytes()) {
            Ok(_) => return,
            Err(PublishError::Full) => thread::yield_now(),
            Err(e) => panic!("unexpected {e}"),
        }
    }
}

fn take(consumer: &mut ringmq::Consumer) -> (u64, u64) {
    loop {
        if let Ok(m) = consumer.try_recv() {
            return (m.sequence(), m.value::<u64>().unwrap());
        }
        thread::yield_now();
    }
}

/// One single producer publishing three values into a ring of `capacity` slots, one
/// consumer taking them; `cursor()` exact afterwards.
fn single_producer_model(capacity: u64) {
    model(3, move || {
        let ring = tiny(capacity).build().unwrap();
        let mut consumer = subscriber(&ring, WaitStrategy::BusySpin);
        let producer = ring.producer().unwrap();
        let t = thread::spawn(move || produce(producer, &[10, 11, 12]));
        for i in 0..3 {
            assert_eq!(take(&mut consumer), (i, 10 + i));
        }
        t.join().unwrap();
        assert_eq!(ring.next_sequence(), 3);
    });
}

#[test]
fn single_producer_publish_consume() {
    // Two slots: every message wraps.
    single_producer_model(2);
}

#[test]
fn single_publishes_ahead_of_the_cursor() {
    // Four slots: the producer stores its cursor every other single publish; the consumer
    // finds the rest by their stamps, and `cursor()` is exact.
    single_producer_model(4);
}

/// A busy-spinning `recv`, which watches the word the next publish writes and takes a
/// message on that word alone when it shows it (`Consumer::spin_fill`): two messages into two
/// slots, with slot headers or fixed-size (where the word is the cursor).
fn busy_spin_recv_model(fixed: bool) {
    model(3, move || {
        let builder = tiny(2);
        let ring = if fixed { builder.fixed_size(8) } else { builder }
            .build()
            .unwrap();
        let mut consumer = subscriber(&ring, WaitStrategy::BusySpin);
        let producer = ring.producer().unwrap();
        let t = thread::spawn(move || produce(producer, &[10, 11]));
        for i in 0..2 {
            let m = consumer.recv().unwrap();
            assert_eq!((m.sequence(), m.value::<u64>().unwrap()), (i, 10 + i));
        }
        t.join().unwrap();
    });
}

#[test]
fn busy_spin_recv_on_the_stamp() {
    busy_spin_recv_model(false);
}

#[test]
fn busy_spin_recv_on_the_cursor() {
    busy_spin_recv_model(true);
}

#[test]
fn fixed_size_cursor_publish_consume() {
    // No slot headers: the cursor's Release store alone publishes, one message and then a
    // batch, into two slots so the batch wraps onto a slot the consumer may still be reading.
    model(3, || {
        let ring = tiny(2).fixed_size(8).build().unwrap();
        let mut consumer = subscriber(&ring, WaitStrategy::BusySpin);
        let mut producer = ring.producer().unwrap();
        let t = thread::spawn(move || {
            produce_one(&mut producer, 10);
            loop {
                let fill = |i: usize, slot: &mut [u8]| {
                    slot.copy_from_slice(&(11 + i as u64).to_le_bytes());
                    8
                };
                match producer.try_publish_batch_with(2, fill) {
                    Ok(_) => break,
                    Err(PublishError::Full) => thread::yield_now(),
                    Err(e) => panic!("unexpected {e}"),
                }
            }
        });
        for i in 0..3 {
            assert_eq!(take(&mut consumer), (i, 10 + i));
        }
        t.join().unwrap();
    });
}

#[test]
fn multi_producer_claim_and_stamp_publish() {
    model(3, || {
        let ring = tiny(1).multi_producer().wakeups(true).build().unwrap();
        let mut consumer = subscriber(&ring, WaitStrategy::Block);
        let mut a = ring.producer_with(WaitStrategy::Block).unwrap();
        let mut b = ring.producer_with(WaitStrategy::Block).unwrap();
        let ta = thread::spawn(move || a.publish(&100u64.to_le_bytes()).unwrap());
        let tb = thread::spawn(move || b.publish(&200u64.to_le_bytes()).unwrap());
        let mut next_a = 100;
        let mut seen_b = false;
        for i in 0..2 {
            let m = consumer.recv().unwrap();
            let (sequence, v) = (m.sequence(), m.value::<u64>().unwrap());
            assert_eq!(sequence, i);
            if v >= 200 {
                assert!(!seen_b);
                seen_b = true;
            } else {
                assert_eq!(v, next_a, "producer a's messages in order");
                next_a += 1;
            }
        }
        assert!(seen_b && next_a == 101);
        ta.join().unwrap();
        tb.join().unwrap();
    });
}

#[test]
fn dependent_consumer_barrier() {
    model(2, || {
        let ring = tiny(1).wakeups(true).build().unwrap();
        let mut first = ring
            .subscriber("first")
            .wait_strategy(WaitStrategy::Block)
            .attach()
            .unwrap();
        let mut second = ring
            .subscriber("second")
            .after(["first"])
            .wait_strategy(WaitStrategy::Block)
            .attach()
            .unwrap();
        let mut producer = ring.producer_with(WaitStrategy::Block).unwrap();
        // What `first` did to each message; `second` must see it (Relaxed here on purpose: the
        // barrier's Release/Acquire is what makes it visible).
        let marks: Arc<Vec<AtomicBool>> = Arc::new((0..2).map(|_| AtomicBool::new(false)).collect());
        let m1 = marks.clone();
        let t_first = thread::spawn(move || {
            for i in 0..2 {
                let m = first.recv().unwrap();
                assert_eq!(m.sequence(), i);
                m1[i as usize].store(true, Ordering::Relaxed);
            }
        });
        let t_producer = thread::spawn(move || {
            producer.publish(&7u64.to_le_bytes()).unwrap();
            producer.publish(&8u64.to_le_bytes()).unwrap();
        });
        for i in 0..2 {
            let m = second.recv().unwrap();
            assert_eq!((m.sequence(), m.value::<u64>().unwrap()), (i, 7 + i));
            assert!(
                marks[i as usize].load(Ordering::Relaxed),
                "second ran ahead of first"
            );
        }
        t_first.join().unwrap();
        t_producer.join().unwrap();
    });
}

#[test]
fn group_claims_each_message_once() {
    model(2, || {
        let ring = tiny(1).wakeups(true).build().unwrap();
        let producer_wait = WaitStrategy::Block;
        let workers: Vec<_> = (0..2)
            .map(|i| {
                let name = format!("w{i}");
                ring.worker("g", &name)
                    .wait_strategy(WaitStrategy::Block)
                    .attach()
                    .unwrap()
            })
            .collect();
        let mut producer = ring.producer_with(producer_wait).unwrap();
        // Each worker takes one message and leaves. A message lost leaves a worker blocked for
        // ever (loom reports a deadlock); a message delivered twice shows in the sequences.
        // The ring has one slot, so the second STOP waits for the group to release the first.
        const STOP: u64 = u64::MAX;
        let threads: Vec<_> = workers
            .into_iter()
            .map(|mut worker| {
                thread::spawn(move || {
                    let m = worker.recv().unwrap();
                    assert_eq!(m.value::<u64>().unwrap(), STOP);
                    m.sequence()
                })
            })
            .collect();
        for v in [STOP, STOP] {
            producer.publish(&v.to_le_bytes()).unwrap();
        }
        let mut got: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, vec![0, 1], "each STOP went to exactly one worker");
    });
}

#[test]
fn futex_wakeup_is_never_lost() {
    model(3, || {
        // Both sides block: a lost wake-up on either event is a loom deadlock.
        let ring = Ring::builder()
            .capacity(1)
            .slot_size(16)
            .max_consumers(2)
            .build()
            .unwrap();
        let mut consumer = subscriber(&ring, WaitStrategy::Block);
        let mut producer = ring.producer_with(WaitStrategy::Block).unwrap();
        let t = thread::spawn(move || {
            producer.publish(&1u64.to_le_bytes()).unwrap();
            producer.publish(&2u64.to_le_bytes()).unwrap();
        });
        for i in 0..2 {
            let m = consumer.recv().unwrap();
            assert_eq!((m.sequence(), m.value::<u64>().unwrap()), (i, i + 1));
        }
        t.join().unwrap();
    });
}

#[test]
fn attaching_while_the_producer_runs() {
    // `[attach]`: a subscriber that attaches at Earliest while an ungated producer laps the
    // ring must never start on a slot that is being overwritten (loom's payload tracking
    // reports it), and must then see every later message, in order.
    model(2, || {
        let ring = tiny(1).wakeups(true).build().unwrap();
        let mut producer = ring.producer_with(WaitStrategy::Block).unwrap();
        let t = thread::spawn(move || {
            for v in 0..3u64 {
                producer.publish(&(10 + v).to_le_bytes()).unwrap();
            }
        });
        let mut late = ring
            .subscriber("late")
            .start(ringmq::Start::Earliest)
            .wait_strategy(WaitStrategy::Block)
            .attach()
            .unwrap();
        let mut previous = None;
        loop {
            let m = late.recv().unwrap();
            let sequence = m.sequence();
            assert_eq!(m.value::<u64>().unwrap(), 10 + sequence);
            if let Some(p) = previous {
                assert_eq!(sequence, p + 1);
            }
            previous = Some(sequence);
            if sequence == 2 {
                break;
            }
        }
        t.join().unwrap();
    });
}

#[test]
fn subscriber_behind_a_group() {
    // `[group]`: a dependent reads the group's claim counter before its workers' positions,
    // so it never passes a message a worker still holds (loom also checks the slot is not
    // overwritten while the worker reads it: the group gates the producer the same way).
    model(2, || {
        let ring = tiny(1).wakeups(true).build().unwrap();
        let mut worker = ring
            .worker("g", "w")
            .wait_strategy(WaitStrategy::Block)
            .attach()
            .unwrap();
        let mut after = ring
            .subscriber("after")
            .after(["g"])
            .wait_strategy(WaitStrategy::Block)
            .attach()
            .unwrap();
        let mut producer = ring.producer_with(WaitStrategy::Block).unwrap();
        let done: Arc<Vec<AtomicBool>> = Arc::new((0..2).map(|_| AtomicBool::new(false)).collect());
        let marks = done.clone();
        let t_worker = thread::spawn(move || {
            for i in 0..2 {
                let m = worker.recv().unwrap();
                assert_eq!(m.sequence(), i);
                marks[i as usize].store(true, Ordering::Relaxed);
            }
        });
        let t_producer = thread::spawn(move || {
            for v in 0..2u64 {
                producer.publish(&v.to_le_bytes()).unwrap();
            }
        });
        for i in 0..2 {
            let m = after.recv().unwrap();
            assert_eq!((m.sequence(), m.value::<u64>().unwrap()), (i, i));
            assert!(done[i as usize].load(Ordering::Relaxed), "ran ahead of the group");
        }
        t_worker.join().unwrap();
        t_producer.join().unwrap();
    });
}

/// A worker coming back under the name of an orphan of its group (`group::take_over`) races
/// another worker adopting the same orphan (`group::adopt_orphan`): exactly one of them gets
/// the orphan's message, flagged redelivered, and neither gets it twice.
#[test]
fn an_orphan_is_taken_over_once() {
    model(2, || {
        let ring = tiny(2).build().unwrap();
        let mut producer = ring.producer().unwrap();
        let mut orphan = ring
            .worker("g", "w1")
            .wait_strategy(WaitStrategy::Yield)
            .attach()
            .unwrap();
        let mut other = ring
            .worker("g", "w2")
            .wait_strategy(WaitStrategy::Yield)
            .attach()
            .unwrap();
        producer.try_publish(&7u64.to_le_bytes()).unwrap();
        // w1 takes the message and stops without acknowledging it: an orphan of the group.
        std::mem::forget(orphan.try_recv().unwrap());
        drop(orphan);
        let ring2 = ring.clone();
        let returning = thread::spawn(move || {
            let mut w1 = ring2
                .worker("g", "w1")
                .wait_strategy(WaitStrategy::Yield)
                .attach()
                .unwrap();
            let got = w1.try_recv().ok().map(|m| (m.sequence(), m.redelivered()));
            got
        });
        let adopted = other.try_recv().ok().map(|m| (m.sequence(), m.redelivered()));
        let returned = returning.join().unwrap();
        let deliveries: Vec<(u64, bool)> = [adopted, returned].into_iter().flatten().collect();
        assert_eq!(
            deliveries,
            vec![(0, true)],
            "the orphan's message, once, redelivered"
        );
        assert_eq!(ring.redelivered_count(), 1);
    });
}
