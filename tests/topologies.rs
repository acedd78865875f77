//! One test per topology, with every message's content checked, not just counted.

mod common;

use common::{check, payload};
use ringmq::{PublishError, RecvError, Ring, Start, WaitStrategy};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

const N: u64 = 20_000;

fn ring(capacity: u64) -> Ring {
    Ring::builder().capacity(capacity).slot_size(64).build().unwrap()
}

fn multi_ring(capacity: u64) -> Ring {
    Ring::builder()
        .capacity(capacity)
        .slot_size(64)
        .multi_producer()
        .build()
        .unwrap()
}

/// Reads `n` messages from one producer, checking order and content.
fn read_in_order(consumer: &mut ringmq::Consumer, n: u64, max_len: usize) {
    for expected in 0..n {
        let m = consumer.recv().unwrap();
        let (producer, k) = check(&m, max_len);
        assert_eq!((producer, k), (0, expected), "at sequence {}", m.sequence());
        assert_eq!(m.sequence(), expected);
    }
}

#[test]
fn one_producer_one_consumer() {
    let ring = ring(256);
    let max = ring.max_message_len();
    let mut consumer = ring.subscriber("c").attach().unwrap();
    let mut producer = ring.producer().unwrap();
    let t = thread::spawn(move || read_in_order(&mut consumer, N, max));
    for i in 0..N {
        assert_eq!(producer.publish(&payload(0, i, max)).unwrap(), i);
    }
    t.join().unwrap();
}

#[test]
fn one_producer_one_consumer_with_batches_both_sides() {
    let ring = ring(128);
    let max = ring.max_message_len();
    let mut consumer = ring
        .subscriber("c")
        .wait_strategy(WaitStrategy::Block)
        .attach()
        .unwrap();
    let mut producer = ring.producer().unwrap();
    let t = thread::spawn(move || {
        let mut expected = 0;
        while expected < N {
            let batch = consumer.poll(64).unwrap();
            assert!(!batch.is_empty());
            for m in &batch {
                assert_eq!(check(&m, max), (0, expected));
                assert_eq!(m.sequence(), expected);
                expected += 1;
            }
        }
    });
    let mut i = 0;
    while i < N {
        let n = (1 + i % 16).min(N - i);
        let msgs: Vec<Vec<u8>> = (i..i + n).map(|k| payload(0, k, max)).collect();
        assert_eq!(producer.publish_batch(&msgs).unwrap(), i);
        i += n;
    }
    t.join().unwrap();
}

#[test]
fn multicast_one_producer_three_subscribers() {
    let ring = ring(64);
    let max = ring.max_message_len();
    let consumers: Vec<_> = (0..3)
        .map(|i| ring.subscriber(&format!("sub-{i}")).attach().unwrap())
        .collect();
    let mut producer = ring.producer().unwrap();
    let threads: Vec<_> = consumers
        .into_iter()
        .map(|mut c| thread::spawn(move || read_in_order(&mut c, N, max)))
        .collect();
    for i in 0..N {
        producer.publish(&payload(0, i, max)).unwrap();
    }
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn three_producers_one_consumer() {
    let ring = multi_ring(128);
    let max = ring.max_message_len();
    let mut consumer = ring.subscriber("c").attach().unwrap();
    let per = N / 2;
    let producers: Vec<_> = (0..3u32)
        .map(|id| {
            let mut p = ring.producer().unwrap();
            thread::spawn(move || {
                let mut n = 0;
                while n < per {
                    if id == 2 {
                        // One producer publishes in batches, to mix claim sizes.
                        let k = (1 + n % 7).min(per - n);
                        let msgs: Vec<Vec<u8>> = (n..n + k).map(|j| payload(id, j, max)).collect();
                        p.publish_batch(&msgs).unwrap();
                        n += k;
                    } else {
                        p.publish(&payload(id, n, max)).unwrap();
                        n += 1;
                    }
                }
            })
        })
        .collect();
    let mut next = [0u64; 3];
    let mut last_sequence = None;
    for _ in 0..3 * per {
        let m = consumer.recv().unwrap();
        if let Some(last) = last_sequence {
            assert_eq!(m.sequence(), last + 1, "sequences are consecutive");
        }
        last_sequence = Some(m.sequence());
        let (id, n) = check(&m, max);
        assert_eq!(
            n, next[id as usize],
            "producer {id} out of order, lost or duplicated"
        );
        next[id as usize] += 1;
    }
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(next, [per; 3]);
    assert_eq!(consumer.try_recv().unwrap_err(), RecvError::Empty);
}

/// Marks, per sequence, which stages have finished it.
struct Marks(Vec<[AtomicBool; 4]>);

impl Marks {
    fn new(n: u64) -> Arc<Self> {
        Arc::new(Marks((0..n).map(|_| Default::default()).collect()))
    }
    fn done(&self, stage: usize, s: u64) {
        // Relaxed: the consumer's Release of its position publishes it.
        self.0[s as usize][stage].store(true, Ordering::Relaxed);
    }
    fn is_done(&self, stage: usize, s: u64) -> bool {
        self.0[s as usize][stage].load(Ordering::Relaxed)
    }
}

/// Runs a stage: for every message, checks content and that `before` stages finished it.
fn stage(
    mut consumer: ringmq::Consumer,
    marks: Arc<Marks>,
    me: usize,
    before: &'static [usize],
    n: u64,
    max: usize,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for expected in 0..n {
            let m = consumer.recv().unwrap();
            assert_eq!(check(&m, max), (0, expected));
            for &b in before {
                assert!(
                    marks.is_done(b, expected),
                    "stage {me} saw {expected} before stage {b} released it"
                );
            }
            marks.done(me, expected);
        }
    })
}

#[test]
fn pipeline_three_stages() {
    let ring = ring(64);
    let max = ring.max_message_len();
    let a = ring.subscriber("a").attach().unwrap();
    let b = ring.subscriber("b").after(["a"]).attach().unwrap();
    let c = ring.subscriber("c").after(["b"]).attach().unwrap();
    let marks = Marks::new(N);
    let threads = vec![
        stage(a, marks.clone(), 0, &[], N, max),
        stage(b, marks.clone(), 1, &[0], N, max),
        stage(c, marks.clone(), 2, &[0, 1], N, max),
    ];
    let mut producer = ring.producer().unwrap();
    for i in 0..N {
        producer.publish(&payload(0, i, max)).unwrap();
    }
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn diamond() {
    let ring = ring(64);
    let max = ring.max_message_len();
    let a = ring.subscriber("a").attach().unwrap();
    let b = ring.subscriber("b").after(["a"]).attach().unwrap();
    let c = ring
        .subscriber("c")
        .after(["a"])
        .wait_strategy(WaitStrategy::Block)
        .attach()
        .unwrap();
    let d = ring.subscriber("d").after(["b", "c"]).attach().unwrap();
    let marks = Marks::new(N);
    let threads = vec![
        stage(a, marks.clone(), 0, &[], N, max),
        stage(b, marks.clone(), 1, &[0], N, max),
        stage(c, marks.clone(), 2, &[0], N, max),
        stage(d, marks.clone(), 3, &[0, 1, 2], N, max),
    ];
    let mut producer = ring.producer().unwrap();
    for i in 0..N {
        producer.publish(&payload(0, i, max)).unwrap();
    }
    for t in threads {
        t.join().unwrap();
    }
}

/// Runs `workers` workers of `group` until `n` messages have been taken in all; returns the
/// sequences each one got.
fn run_group(
    ring: &Ring,
    group: &str,
    workers: usize,
    after: &[&str],
    n: u64,
    marks: Option<(Arc<Marks>, usize)>,
) -> Vec<thread::JoinHandle<Vec<u64>>> {
    let max = ring.max_message_len();
    let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    (0..workers)
        .map(|w| {
            let mut builder = ring.worker(group, &format!("{group}-{w}"));
            if !after.is_empty() {
                builder = builder.after(after.iter().copied());
            }
            let mut worker = builder.wait_strategy(WaitStrategy::Block).attach().unwrap();
            let taken = taken.clone();
            let marks = marks.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                while taken.load(Ordering::Acquire) < n as usize {
                    let Ok(m) = worker.recv_timeout(Duration::from_millis(20)) else {
                        continue;
                    };
                    let (_, k) = check(&m, max);
                    assert_eq!(k, m.sequence());
                    if let Some((marks, before)) = &marks {
                        assert!(marks.is_done(*before, k), "worker saw {k} before its dependency");
                    }
                    got.push(k);
                    taken.fetch_add(1, Ordering::AcqRel);
                }
                got
            })
        })
        .collect()
}

fn assert_exactly_once(parts: Vec<Vec<u64>>, n: u64) {
    let mut all: Vec<u64> = parts.iter().flatten().copied().collect();
    for part in &parts {
        assert!(
            part.windows(2).all(|w| w[0] < w[1]),
            "a worker got its messages out of order"
        );
    }
    all.sort_unstable();
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a message was delivered twice");
    assert_eq!(all, (0..n).collect::<Vec<_>>(), "a message was lost");
}

#[test]
fn group_of_three_workers_gets_each_message_once() {
    let ring = ring(64);
    let max = ring.max_message_len();
    let workers = run_group(&ring, "g", 3, &[], N, None);
    let mut producer = ring.producer().unwrap();
    for i in 0..N {
        producer.publish(&payload(0, i, max)).unwrap();
    }
    let parts = workers.into_iter().map(|t| t.join().unwrap()).collect();
    assert_exactly_once(parts, N);
}

#[test]
fn group_behind_a_subscriber() {
    let ring = ring(64);
    let max = ring.max_message_len();
    let sub = ring.subscriber("audit").attach().unwrap();
    let marks = Marks::new(N);
    let audit = stage(sub, marks.clone(), 0, &[], N, max);
    let workers = run_group(&ring, "g", 2, &["audit"], N, Some((marks, 0)));
    let mut producer = ring.producer().unwrap();
    for i in 0..N {
        producer.publish(&payload(0, i, max)).unwrap();
    }
    audit.join().unwrap();
    let parts = workers.into_iter().map(|t| t.join().unwrap()).collect();
    assert_exactly_once(parts, N);
}

#[test]
fn subscriber_behind_a_group() {
    let ring = ring(32);
    let max = ring.max_message_len();
    let marks = Marks::new(N);
    // Workers mark what they finish, in stage 0.
    let workers: Vec<_> = (0..2)
        .map(|w| ring.worker("g", &format!("w{w}")).attach().unwrap())
        .collect();
    let after = ring.subscriber("after").after(["g"]).attach().unwrap();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let worker_threads: Vec<_> = workers
        .into_iter()
        .map(|mut worker| {
            let marks = marks.clone();
            let done = done.clone();
            thread::spawn(move || {
                while done.load(Ordering::Acquire) < N as usize {
                    let Ok(m) = worker.recv_timeout(Duration::from_millis(20)) else {
                        continue;
                    };
                    let (_, k) = check(&m, max);
                    marks.done(0, k);
                    done.fetch_add(1, Ordering::AcqRel);
                }
            })
        })
        .collect();
    let tail = stage(after, marks.clone(), 1, &[0], N, max);
    let mut producer = ring.producer().unwrap();
    for i in 0..N {
        producer.publish(&payload(0, i, max)).unwrap();
    }
    tail.join().unwrap();
    for t in worker_threads {
        t.join().unwrap();
    }
}

#[test]
fn full_ring_says_full_then_resumes() {
    let ring = ring(8);
    let mut consumer = ring.subscriber("slow").attach().unwrap();
    let mut producer = ring.producer().unwrap();
    for i in 0..8u64 {
        assert_eq!(producer.try_publish(&i.to_le_bytes()).unwrap(), i);
    }
    assert_eq!(producer.try_publish(b"x"), Err(PublishError::Full));
    assert_eq!(
        producer.publish_timeout(b"x", Duration::from_millis(5)),
        Err(PublishError::Timeout)
    );
    // Releasing one message makes room for exactly one more.
    assert_eq!(consumer.recv().unwrap().value::<u64>().unwrap(), 0);
    assert_eq!(producer.try_publish(&8u64.to_le_bytes()).unwrap(), 8);
    assert_eq!(producer.try_publish(b"x"), Err(PublishError::Full));
    // A blocked `publish` resumes when the consumer drains.
    let t = thread::spawn(move || {
        for i in 9..40u64 {
            producer.publish(&i.to_le_bytes()).unwrap();
        }
    });
    for i in 1..40u64 {
        assert_eq!(consumer.recv().unwrap().value::<u64>().unwrap(), i);
    }
    t.join().unwrap();
}

#[test]
fn full_ring_multi_producer() {
    let ring = multi_ring(4);
    let mut consumer = ring.subscriber("slow").attach().unwrap();
    let mut a = ring.producer().unwrap();
    let mut b = ring.producer().unwrap();
    assert_eq!(a.try_publish(b"a0").unwrap(), 0);
    assert_eq!(b.try_publish(b"b0").unwrap(), 1);
    assert_eq!(a.try_publish_batch(&[b"a1", b"a2"]).unwrap(), 2);
    assert_eq!(b.try_publish(b"b1"), Err(PublishError::Full));
    assert_eq!(
        a.publish_timeout(b"a3", Duration::from_millis(5)),
        Err(PublishError::Timeout)
    );
    let batch = consumer.try_poll(2);
    let got: Vec<Vec<u8>> = batch.iter().map(|m| m.to_vec()).collect();
    assert_eq!(got, vec![b"a0".to_vec(), b"b0".to_vec()]);
    drop(batch);
    assert_eq!(b.try_publish(b"b1").unwrap(), 4);
    let t = thread::spawn(move || b.publish(b"b2").unwrap());
    let order: Vec<Vec<u8>> = (0..4).map(|_| consumer.recv().unwrap().to_vec()).collect();
    assert_eq!(
        order,
        vec![b"a1".to_vec(), b"a2".to_vec(), b"b1".to_vec(), b"b2".to_vec()]
    );
    assert_eq!(t.join().unwrap(), 5);
}

#[test]
fn consumers_attach_and_detach_while_producing() {
    let ring = ring(64);
    let max = ring.max_message_len();
    let steady = ring.subscriber("steady").attach().unwrap();
    let marks = Marks::new(N);
    let steady = stage(steady, marks, 0, &[], N, max);
    let mut producer = ring.producer().unwrap();
    let producing = thread::spawn(move || {
        for i in 0..N {
            producer.publish(&payload(0, i, max)).unwrap();
        }
    });
    let mut visits = 0;
    while !producing.is_finished() || visits == 0 {
        let mut late = ring
            .subscriber(&format!("late-{visits}"))
            .start(Start::Latest)
            .wait_strategy(WaitStrategy::Block)
            .attach()
            .unwrap();
        let mut previous = None;
        for _ in 0..50 {
            let Ok(m) = late.recv_timeout(Duration::from_millis(50)) else {
                break;
            };
            let (_, k) = check(&m, max);
            assert_eq!(k, m.sequence());
            if let Some(p) = previous {
                assert_eq!(k, p + 1, "a late subscriber skipped or repeated a message");
            }
            previous = Some(k);
        }
        late.detach();
        visits += 1;
    }
    producing.join().unwrap();
    steady.join().unwrap();
    assert!(ring.consumers().iter().all(|c| c.name == "steady"));
}

#[test]
fn recv_timeout_expires() {
    let ring = ring(8);
    let mut c = ring
        .subscriber("c")
        .wait_strategy(WaitStrategy::Block)
        .attach()
        .unwrap();
    let mut y = ring
        .subscriber("y")
        .wait_strategy(WaitStrategy::Yield)
        .attach()
        .unwrap();
    let mut w = ring.worker("g", "w").attach().unwrap();
    let started = std::time::Instant::now();
    assert_eq!(
        c.recv_timeout(Duration::from_millis(30)).unwrap_err(),
        RecvError::Timeout
    );
    assert!(started.elapsed() >= Duration::from_millis(30));
    assert_eq!(
        y.recv_timeout(Duration::from_millis(5)).unwrap_err(),
        RecvError::Timeout
    );
    assert_eq!(
        w.recv_timeout(Duration::from_millis(5)).unwrap_err(),
        RecvError::Timeout
    );
    assert_eq!(
        c.poll_timeout(8, Duration::from_millis(5)).unwrap_err(),
        RecvError::Timeout
    );
    assert_eq!(c.try_recv().unwrap_err(), RecvError::Empty);
    assert!(c.try_poll(8).is_empty());
}

/// A fixed-size message: its sequence and a value derived from it.
fn fixed_message(s: u64) -> [u64; 2] {
    [s, s.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555]
}

#[test]
fn fixed_size_ring_feeds_a_subscriber_a_stage_after_it_and_a_group() {
    // Header-less slots, published by the cursor alone: a subscriber polling batches, a
    // subscriber after it taking one message at a time, and two workers after the first
    // subscriber, every message checked, the workers' union exactly once.
    let ring = Ring::builder().capacity(64).fixed_size(16).build().unwrap();
    let first = ring
        .subscriber("first")
        .wait_strategy(WaitStrategy::Block)
        .attach()
        .unwrap();
    let second = ring
        .subscriber("second")
        .after(["first"])
        .wait_strategy(WaitStrategy::Yield)
        .attach()
        .unwrap();
    let read = |mut consumer: ringmq::Consumer, batches: bool| {
        thread::spawn(move || {
            let mut expected = 0;
            while expected < N {
                if batches {
                    let batch = consumer.poll(32).unwrap();
                    for m in &batch {
                        assert_eq!(m.sequence(), expected);
                        assert_eq!(m.value::<[u64; 2]>().unwrap(), fixed_message(expected));
                        expected += 1;
                    }
                } else {
                    let m = consumer.recv().unwrap();
                    assert_eq!((m.sequence(), m.len()), (expected, 16));
                    assert_eq!(m.value::<[u64; 2]>().unwrap(), fixed_message(expected));
                    expected += 1;
                }
            }
        })
    };
    let readers = [read(first, true), read(second, false)];
    let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers = (0..2)
        .map(|w| {
            let mut worker = ring
                .worker("g", &format!("w{w}"))
                .after(["first"])
                .wait_strategy(WaitStrategy::Block)
                .attach()
                .unwrap();
            let taken = taken.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                // The timeout only lets a worker see that the other took the last message.
                while taken.load(Ordering::Acquire) < N as usize {
                    let Ok(m) = worker.recv_timeout(Duration::from_millis(20)) else {
                        continue;
                    };
                    let value = m.value::<[u64; 2]>().unwrap();
                    assert_eq!(value, fixed_message(m.sequence()));
                    got.push(m.sequence());
                    taken.fetch_add(1, Ordering::AcqRel);
                }
                got
            })
        })
        .collect::<Vec<_>>();
    let mut producer = ring.producer_with(WaitStrategy::Block).unwrap();
    let mut s = 0;
    while s < N {
        if s % 3 == 0 {
            assert_eq!(
                producer.publish(bytemuck::bytes_of(&fixed_message(s))).unwrap(),
                s
            );
            s += 1;
        } else {
            let n = (1 + s % 24).min(N - s) as usize;
            let start = producer
                .publish_batch_with(n, |i, slot| {
                    let words = fixed_message(s + i as u64);
                    slot.copy_from_slice(bytemuck::bytes_of(&words));
                    16
                })
                .unwrap();
            assert_eq!(start, s);
            s += n as u64;
        }
    }
    for reader in readers {
        reader.join().unwrap();
    }
    let parts = workers.into_iter().map(|w| w.join().unwrap()).collect();
    assert_exactly_once(parts, N);
}
