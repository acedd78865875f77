//! Typed payloads: `TypedProducer`/`TypedConsumer` of `bytemuck::Pod` values, checked once
//! when the handle is made, and whole slices moved through a fixed-size ring.

use bytemuck::{Pod, Zeroable};
use ringmq::{PublishError, Ring, Start, TypeError, TypedConsumer, TypedProducer, WaitStrategy};

#[derive(Clone, Copy, Debug, PartialEq, Zeroable, Pod)]
#[repr(C)]
struct Order {
    id: u64,
    price: f64,
    quantity: u32,
    side: u32,
}

fn order(i: u64) -> Order {
    Order {
        id: i,
        price: 100.0 + i as f64 / 4.0,
        quantity: i as u32 * 3,
        side: (i % 2) as u32,
    }
}

#[test]
fn typed_payloads_round_trip() {
    let ring = Ring::builder().capacity(16).slot_size(32).build().unwrap();
    let mut c = TypedConsumer::<Order>::new(ring.subscriber("c").attach().unwrap()).unwrap();
    let mut p = TypedProducer::<Order>::new(ring.producer().unwrap()).unwrap();
    for i in 0..10 {
        if i % 2 == 0 {
            p.try_publish(&order(i)).unwrap();
        } else {
            p.try_publish_with(|o| *o = order(i)).unwrap();
        }
    }
    for i in 0..5 {
        assert_eq!(c.try_recv().unwrap(), (i, order(i)));
    }
    let mut rest = Vec::new();
    assert_eq!(c.try_poll(100, |s, o| rest.push((s, o))), 5);
    assert_eq!(rest, (5..10).map(|i| (i, order(i))).collect::<Vec<_>>());
}

#[test]
fn a_type_that_is_not_a_message_of_the_ring_is_refused_when_the_handle_is_made() {
    let small = Ring::builder().capacity(4).slot_size(16).build().unwrap();
    let fixed = Ring::builder().capacity(4).fixed_size(16).build().unwrap();
    let mismatch = |size, capacity| TypeError::Mismatch {
        size,
        align: 8,
        capacity,
    };
    assert_eq!(
        TypedProducer::<Order>::new(small.producer().unwrap()).unwrap_err(),
        mismatch(24, 8)
    );
    assert_eq!(
        TypedConsumer::<Order>::new(small.subscriber("c").attach().unwrap()).unwrap_err(),
        mismatch(24, 8)
    );
    // A fixed-size ring's messages are its size exactly, not merely at most.
    assert_eq!(
        TypedProducer::<u64>::new(fixed.producer().unwrap()).unwrap_err(),
        mismatch(8, 16)
    );
    assert!(TypedProducer::<[u64; 2]>::new(fixed.producer().unwrap()).is_ok());
}

#[test]
fn slices_publish_in_bulk_and_batches_read_as_slices_across_the_wrap() {
    let ring = Ring::builder().capacity(8).fixed_size(8).build().unwrap();
    let mut c = ring.subscriber("c").start(Start::Earliest).attach().unwrap();
    let mut p = TypedProducer::<u64>::new(ring.producer().unwrap()).unwrap();
    assert_eq!(p.try_publish_slice(&[]).unwrap(), 0);
    assert_eq!(p.try_publish_slice(&[10, 11, 12, 13, 14]).unwrap(), 0);
    {
        let batch = c.try_poll(64);
        let (a, b) = batch.as_slices::<u64>().unwrap();
        assert_eq!((a, b), (&[10u64, 11, 12, 13, 14][..], &[][..]));
    }
    // Sequences 5..11 are slots 5, 6, 7, 0, 1, 2: the copy and the view wrap.
    assert_eq!(p.try_publish_slice(&[15, 16, 17, 18, 19, 20]).unwrap(), 5);
    {
        let batch = c.try_poll(64);
        assert_eq!(batch.sequences(), 5..11);
        let (a, b) = batch.as_slices::<u64>().unwrap();
        assert_eq!((a, b), (&[15u64, 16, 17][..], &[18u64, 19, 20][..]));
        // The same messages one by one.
        let one_by_one: Vec<u64> = batch.iter().map(|m| m.value::<u64>().unwrap()).collect();
        assert_eq!(one_by_one, [15, 16, 17, 18, 19, 20]);
    }
    let empty = c.try_poll(64);
    assert_eq!(empty.as_slices::<u64>().unwrap(), (&[][..], &[][..]));
    drop(empty);
    // Room is checked for the whole slice: nothing of it is published without room for all.
    assert_eq!(
        p.try_publish_slice(&[0; 9]).unwrap_err(),
        PublishError::BatchTooLarge { n: 9, capacity: 8 }
    );
    p.try_publish_slice(&[1; 6]).unwrap();
    assert_eq!(p.try_publish_slice(&[2; 3]).unwrap_err(), PublishError::Full);
    assert_eq!(ring.next_sequence(), 17);
}

#[test]
fn batches_are_slices_only_of_a_fixed_size_ring_of_their_type() {
    let fixed = Ring::builder().capacity(8).fixed_size(16).build().unwrap();
    let mut c = fixed.subscriber("c").start(Start::Earliest).attach().unwrap();
    let mut p = TypedProducer::<[u64; 2]>::new(fixed.producer().unwrap()).unwrap();
    p.try_publish_slice(&[[1, 2], [3, 4]]).unwrap();
    let batch = c.try_poll(8);
    assert_eq!(
        batch.as_slices::<u64>().unwrap_err(),
        TypeError::NotFixedSizeOf { size: 8, align: 8 }
    );
    assert_eq!(batch.as_slices::<[u64; 2]>().unwrap().0, &[[1, 2], [3, 4]]);
    drop(batch);

    // A ring with headers takes each value as one message, and has no slices to give.
    let headers = Ring::builder().capacity(8).slot_size(24).build().unwrap();
    let mut c = headers.subscriber("c").start(Start::Earliest).attach().unwrap();
    let mut p = TypedProducer::<u64>::new(headers.producer().unwrap()).unwrap();
    assert_eq!(p.publish_slice(&[7, 8, 9]).unwrap(), 0);
    let batch = c.try_poll(8);
    let got: Vec<u64> = batch.iter().map(|m| m.value::<u64>().unwrap()).collect();
    assert_eq!(got, [7, 8, 9]);
    assert_eq!(
        batch.as_slices::<u64>().unwrap_err(),
        TypeError::NotFixedSizeOf { size: 8, align: 8 }
    );
}

#[test]
fn slices_stream_between_threads_in_order() {
    // Slices of 1 to 13 values into a 16-slot ring, read as slices by a subscriber and one
    // by one by a worker of a group after it: every value once, in order.
    let ring = Ring::builder().capacity(16).fixed_size(8).build().unwrap();
    let mut sub = ring
        .subscriber("slices")
        .wait_strategy(WaitStrategy::Yield)
        .attach()
        .unwrap();
    let mut worker = ring
        .worker("after", "w")
        .after(["slices"])
        .wait_strategy(WaitStrategy::Yield)
        .attach()
        .unwrap();
    let producer = ring.producer_with(WaitStrategy::Yield).unwrap();
    let mut p = TypedProducer::<u64>::new(producer).unwrap();
    const N: u64 = 20_000;
    let producer = std::thread::spawn(move || {
        let mut next = 0u64;
        let mut k = 1u64;
        while next < N {
            let n = k.min(N - next);
            let values: Vec<u64> = (next..next + n).collect();
            p.publish_slice(&values).unwrap();
            next += n;
            k = k % 13 + 1;
        }
    });
    let reader = std::thread::spawn(move || {
        let mut expected = 0u64;
        while expected < N {
            let batch = sub.poll(64).unwrap();
            let (a, b) = batch.as_slices::<u64>().unwrap();
            for &v in a.iter().chain(b) {
                assert_eq!(v, expected);
                expected += 1;
            }
        }
    });
    let mut expected = 0u64;
    while expected < N {
        let m = worker.recv().unwrap();
        assert_eq!(m.value::<u64>().unwrap(), expected);
        expected += 1;
    }
    producer.join().unwrap();
    reader.join().unwrap();
}
