//! A proptest model test: random sequences of publish, batch publish, claim, attach, detach,
//! receive and poll on a small ring, against a model built on a `VecDeque` of the messages
//! the ring still holds and the position of every consumer. Run on single-producer,
//! multi-producer and fixed-size rings (the last with every message `FIXED` bytes).

use proptest::prelude::*;
use ringmq::{Consumer, PublishError, RecvError, Ring, Start};
use std::collections::VecDeque;

const CAPACITY: u64 = 4;
const SLOT: usize = 32;
/// The message size of the fixed-size ring.
const FIXED: usize = 24;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Single,
    Multi,
    Fixed,
}

#[derive(Clone, Debug)]
enum Op {
    Publish(usize),
    PublishBatch(usize),
    Claim(usize),
    Attach(usize, bool),
    Detach(usize),
    Recv(usize),
    Poll(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..=24usize).prop_map(Op::Publish),
        1 => (1..=5usize).prop_map(Op::PublishBatch),
        1 => (0..=24usize).prop_map(Op::Claim),
        1 => (0..4usize, any::<bool>()).prop_map(|(i, w)| Op::Attach(i, w)),
        1 => (0..4usize).prop_map(Op::Detach),
        3 => (0..4usize).prop_map(Op::Recv),
        1 => (0..4usize, 1..6usize).prop_map(|(i, m)| Op::Poll(i, m)),
    ]
}

/// The bytes of message `seq`, `len` long.
fn body(seq: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seq as usize * 31 + i * 7) as u8).collect()
}

struct Model {
    /// Every message still in the ring, oldest first: (sequence, bytes).
    held: VecDeque<(u64, Vec<u8>)>,
    next: u64,
    /// Consumer slot i: None, or (position, is_worker). Workers share `group_next`.
    consumers: [Option<(u64, bool)>; 4],
    group_next: Option<u64>,
}

impl Model {
    fn gating(&self) -> u64 {
        let mut min = self.next;
        for (position, worker) in self.consumers.iter().flatten() {
            if !worker {
                min = min.min(*position);
            }
        }
        if let Some(g) = self.group_next {
            min = min.min(g);
        }
        min
    }

    fn room(&self) -> u64 {
        self.gating() + CAPACITY - self.next
    }

    fn push(&mut self, bytes: Vec<u8>) {
        self.held.push_back((self.next, bytes));
        self.next += 1;
        while self.held.len() as u64 > CAPACITY {
            self.held.pop_front();
        }
    }

    fn message(&self, seq: u64) -> &[u8] {
        let (s, bytes) = self
            .held
            .iter()
            .find(|(s, _)| *s == seq)
            .expect("model: message not held");
        assert_eq!(*s, seq);
        bytes
    }
}

fn run(ops: Vec<Op>, kind: Kind) {
    let builder = Ring::builder()
        .capacity(CAPACITY)
        .slot_size(SLOT)
        .max_consumers(8);
    let ring = match kind {
        Kind::Single => builder,
        Kind::Multi => builder.multi_producer(),
        Kind::Fixed => builder.fixed_size(FIXED),
    }
    .build()
    .unwrap();
    // A fixed-size ring's messages are all one size.
    let len_of = |len: usize| if kind == Kind::Fixed { FIXED } else { len };
    let mut producer = ring.producer().unwrap();
    let mut handles: Vec<Option<Consumer>> = (0..4).map(|_| None).collect();
    let mut model = Model {
        held: VecDeque::new(),
        next: 0,
        consumers: [None; 4],
        group_next: None,
    };
    for op in ops {
        match op {
            Op::Publish(len) => {
                let bytes = body(model.next, len_of(len));
                match producer.try_publish(&bytes) {
                    Ok(seq) => {
                        assert!(model.room() >= 1, "published into a full ring");
                        assert_eq!(seq, model.next);
                        model.push(bytes);
                    }
                    Err(PublishError::Full) => assert_eq!(model.room(), 0, "Full with room"),
                    Err(e) => panic!("{e}"),
                }
            }
            Op::PublishBatch(n) => {
                let msgs: Vec<Vec<u8>> = (0..n as u64)
                    .map(|i| body(model.next + i, len_of(3 + i as usize)))
                    .collect();
                match producer.try_publish_batch(&msgs) {
                    Ok(first) => {
                        assert!(model.room() >= n as u64);
                        assert_eq!(first, model.next);
                        msgs.into_iter().for_each(|m| model.push(m));
                    }
                    Err(PublishError::Full) => assert!(model.room() < n as u64),
                    Err(PublishError::BatchTooLarge { .. }) => assert!(n as u64 > CAPACITY),
                    Err(e) => panic!("{e}"),
                }
            }
            Op::Claim(len) => match producer.try_claim_slot() {
                Ok(mut claim) => {
                    assert!(model.room() >= 1);
                    let bytes = body(model.next, len_of(len));
                    claim.write(&bytes).unwrap();
                    drop(claim);
                    model.push(bytes);
                }
                Err(PublishError::Full) => assert_eq!(model.room(), 0),
                Err(e) => panic!("{e}"),
            },
            Op::Attach(i, worker) => {
                if handles[i].is_some() {
                    continue;
                }
                let name = format!("c{i}");
                let consumer = if worker {
                    ring.worker("g", &name)
                        .group_start(Start::Latest)
                        .attach()
                        .unwrap()
                } else {
                    ring.subscriber(&name).start(Start::Latest).attach().unwrap()
                };
                if worker && model.group_next.is_none() {
                    model.group_next = Some(model.next);
                }
                model.consumers[i] = Some((model.next, worker));
                handles[i] = Some(consumer);
            }
            Op::Detach(i) => {
                if let Some(c) = handles[i].take() {
                    c.detach();
                    model.consumers[i] = None;
                    if !model.consumers.iter().flatten().any(|(_, w)| *w) {
                        model.group_next = None;
                    }
                }
            }
            Op::Recv(i) => {
                let Some(c) = handles[i].as_mut() else { continue };
                let (position, worker) = model.consumers[i].unwrap();
                let expected = if worker {
                    model.group_next.unwrap()
                } else {
                    position
                };
                match c.try_recv() {
                    Ok(m) => {
                        assert_eq!(m.sequence(), expected);
                        assert_eq!(&*m, model.message(expected));
                        if worker {
                            model.group_next = Some(expected + 1);
                        } else {
                            model.consumers[i] = Some((expected + 1, false));
                        }
                    }
                    Err(RecvError::Empty) => assert_eq!(expected, model.next, "Empty with a message waiting"),
                    Err(e) => panic!("{e}"),
                }
            }
            Op::Poll(i, max) => {
                let Some(c) = handles[i].as_mut() else { continue };
                let (position, worker) = model.consumers[i].unwrap();
                let from = if worker {
                    model.group_next.unwrap()
                } else {
                    position
                };
                // A worker claims `max` at once in a poll; a subscriber sees all available.
                let want = (model.next - from).min(max as u64);
                let batch = c.try_poll(max);
                if want == 0 {
                    assert!(batch.is_empty());
                } else {
                    assert_eq!(batch.sequences(), from..from + want);
                }
                for m in &batch {
                    assert_eq!(m.bytes(), model.message(m.sequence()));
                }
                drop(batch);
                if worker {
                    model.group_next = Some(from + want);
                } else {
                    model.consumers[i] = Some((from + want, false));
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn ring_matches_the_model(ops in prop::collection::vec(op(), 1..80)) {
        run(ops, Kind::Single);
    }

    #[test]
    fn multi_producer_ring_matches_the_model(ops in prop::collection::vec(op(), 1..80)) {
        run(ops, Kind::Multi);
    }

    #[test]
    fn fixed_size_ring_matches_the_model(ops in prop::collection::vec(op(), 1..80)) {
        run(ops, Kind::Fixed);
    }
}
