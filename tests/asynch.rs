//! The futures (feature `async`) on a multi-threaded tokio runtime: a message, a batch, a
//! stream, a publish into a full ring, a confirm, a call; a future dropped while pending
//! leaves nothing behind; a consumer awaiting in this process woken by a producer in another;
//! a thread blocked and a task awaiting on one event of one process both woken.

mod common;

use common::cli::{Proc, ShmRing};
use ringmq::request::Service;
use ringmq::{ConfirmBy, Ring, Start};
use std::time::Duration;
use tokio::time::timeout;

const LONG: Duration = Duration::from_secs(30);

fn ring() -> Ring {
    Ring::builder().capacity(16).slot_size(64).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_async_is_woken_by_a_publish_on_another_thread() {
    let ring = ring();
    let mut consumer = ring.subscriber("c").start(Start::Earliest).attach().unwrap();
    let mut producer = ring.producer().unwrap();
    let sender = tokio::task::spawn_blocking(move || {
        for i in 0..1000u32 {
            producer.publish(&i.to_le_bytes()).unwrap();
        }
    });
    for i in 0..1000u32 {
        let message = timeout(LONG, consumer.recv_async()).await.unwrap().unwrap();
        assert_eq!(&*message, &i.to_le_bytes());
    }
    sender.await.unwrap();
}

/// The stream's next item.
async fn next<S: futures_core::Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *stream).poll_next(cx)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_and_a_stream() {
    let ring = ring();
    let mut consumer = ring.subscriber("c").start(Start::Earliest).attach().unwrap();
    let mut producer = ring.producer().unwrap();
    for i in 0..5u8 {
        producer.publish(&[i]).unwrap();
    }
    let batch = consumer.poll_async(3).await.unwrap();
    assert_eq!(batch.sequences(), 0..3);
    drop(batch);
    let mut stream = consumer.stream();
    assert_eq!(next(&mut stream).await, Some((3, vec![3])));
    assert_eq!(next(&mut stream).await, Some((4, vec![4])));
    let publisher = tokio::task::spawn_blocking(move || producer.publish(b"later").unwrap());
    assert_eq!(
        timeout(LONG, next(&mut stream)).await.unwrap(),
        Some((5, b"later".to_vec()))
    );
    publisher.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_async_waits_for_room_in_a_full_ring() {
    let ring = ring();
    let mut consumer = ring.subscriber("c").start(Start::Earliest).attach().unwrap();
    let mut producer = ring.producer().unwrap();
    for i in 0..16u8 {
        producer.try_publish(&[i]).unwrap();
    }
    assert!(producer.try_publish(b"full").is_err());
    let reader = tokio::task::spawn_blocking(move || {
        for i in 0..16u8 {
            assert_eq!(&*consumer.recv().unwrap(), &[i]);
        }
        consumer
    });
    let sequence = timeout(LONG, producer.publish_async(b"room"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sequence, 16);
    drop(reader.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_async_completes_when_the_consumer_releases() {
    let ring = ring();
    let mut consumer = ring.subscriber("c").start(Start::Earliest).attach().unwrap();
    let mut producer = ring.producer().unwrap();
    let mut confirmer = ring.confirmer(ConfirmBy::Consumer("c".into())).unwrap();
    let sequence = producer.publish(b"x").unwrap();
    // Not yet: the future is pending until the consumer releases it.
    assert!(
        timeout(Duration::from_millis(20), confirmer.confirm_async(sequence))
            .await
            .is_err()
    );
    let reader = tokio::task::spawn_blocking(move || {
        drop(consumer.recv().unwrap());
        consumer
    });
    assert_eq!(
        timeout(LONG, confirmer.confirm_async(sequence)).await.unwrap(),
        Ok(sequence + 1)
    );
    drop(reader.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_async_gets_its_reply_and_its_deadline() {
    let service = Service::new(Ring::builder().capacity(64).slot_size(128)).unwrap();
    let mut responder = service.responder("r").attach().unwrap();
    let mut requester = service.requester().build().unwrap();
    let server = tokio::task::spawn_blocking(move || {
        for _ in 0..100 {
            responder.respond(|r| r.payload().to_vec()).unwrap();
        }
        responder
    });
    for i in 0..100u32 {
        let reply = timeout(LONG, requester.call_async(&i.to_le_bytes(), LONG))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reply.payload(), &i.to_le_bytes());
    }
    let _silent = server.await.unwrap();
    // Nobody answers now: the deadline ends the call, woken by the waker thread's timer. The
    // replies above were woken by their responder directly (it is in this process), so the
    // thread may be asleep on the word until its one-second safety net: the new deadline,
    // much earlier, must wake it.
    let start = std::time::Instant::now();
    let err = timeout(LONG, requester.call_async(b"anyone?", Duration::from_millis(20)))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, ringmq::RequestError::Expired { .. }), "{err}");
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "a 20 ms deadline ended the call after {took:?}: the waker thread slept through it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_pending_future_leaves_no_waiter() {
    let ring = ring();
    let mut consumer = ring.subscriber("c").start(Start::Earliest).attach().unwrap();
    for _ in 0..3 {
        assert!(timeout(Duration::from_millis(5), consumer.recv_async())
            .await
            .is_err());
    }
    // The futures are gone: a publish finds no sleeper, and the next receive works.
    let mut producer = ring.producer().unwrap();
    producer.publish(b"x").unwrap();
    assert_eq!(
        &*timeout(LONG, consumer.recv_async()).await.unwrap().unwrap(),
        b"x"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_in_another_process_wakes_an_awaiting_consumer() {
    let shm = ShmRing::new("async-wake");
    let ring = shm.create(1024, 64);
    let mut consumer = ring.subscriber("c").start(Start::Earliest).attach().unwrap();
    // Awaiting before anything is published: the wake must come from the other process.
    let receive = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..100 {
            let message = consumer.recv_async().await.unwrap();
            seen.push(message.sequence());
        }
        seen
    });
    let mut producer = Proc::spawn(&format!(
        "produce {} --count 100 --verifiable 1 --rate 2000",
        shm.arg()
    ));
    let seen = timeout(LONG, receive).await.unwrap().unwrap();
    assert_eq!(seen, (0..100).collect::<Vec<u64>>());
    while !producer.exited() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responder_and_a_requester_both_awaiting() {
    let service = Service::new(Ring::builder().capacity(64).slot_size(128)).unwrap();
    let mut responder = service.responder("r").attach().unwrap();
    let mut requester = service.requester().build().unwrap();
    let server = tokio::spawn(async move {
        for _ in 0..200 {
            let handled = responder.respond_async(|r| r.payload().to_vec()).await.unwrap();
            assert_eq!(handled, ringmq::request::Handled::Replied);
        }
    });
    for i in 0..200u32 {
        // From four bytes to several slots of 128: larger requests and replies arrive whole.
        let payload = i.to_le_bytes().repeat(1 + (i as usize * 7) % 150);
        let reply = timeout(LONG, requester.call_async(&payload, LONG))
            .await
            .unwrap()
            .unwrap();
        assert!(reply.payload() == &payload[..], "call {i}");
    }
    timeout(LONG, server).await.unwrap().unwrap();
}

/// A publish that finds only this process's futures waiting skips the futex wake; a thread
/// blocked on the same event must still be woken. The producer waits until both consumers
/// have each message before it publishes the next, so that both are asleep at every publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_thread_and_an_awaiting_task_of_one_process_both_wake() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let ring = ring();
    let mut awaiting = ring.subscriber("task").start(Start::Earliest).attach().unwrap();
    let mut blocked = ring
        .subscriber("thread")
        .start(Start::Earliest)
        .wait_strategy(ringmq::WaitStrategy::Block)
        .attach()
        .unwrap();
    let mut producer = ring.producer().unwrap();
    const N: u32 = 300;
    // How many messages each consumer has: the producer's lockstep.
    let (by_task, by_thread) = (Arc::new(Mutex::new(0u32)), Arc::new(Mutex::new(0u32)));
    // Set when the thread ends, panicking or not: the producer stops waiting for it then.
    let thread_done = Arc::new(AtomicBool::new(false));
    struct Done(Arc<AtomicBool>);
    impl Drop for Done {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }
    let thread = {
        let by_thread = by_thread.clone();
        let done = Done(thread_done.clone());
        std::thread::spawn(move || {
            let _done = done;
            for i in 0..N {
                let start = std::time::Instant::now();
                let message = blocked.recv().unwrap();
                assert_eq!(&*message, &i.to_le_bytes());
                // A sleep whose wake-up was skipped ends at the one-second safety net.
                let took = start.elapsed();
                assert!(
                    took < Duration::from_millis(250),
                    "message {i} took {took:?}: the blocked thread was not woken by its publish"
                );
                *by_thread.lock().unwrap() = i + 1;
            }
        })
    };
    let sender = {
        let (by_task, by_thread) = (by_task.clone(), by_thread.clone());
        let thread_done = thread_done.clone();
        tokio::task::spawn_blocking(move || {
            for i in 0..N {
                // Both have everything before `i`, and are (about to be) asleep for `i`.
                while *by_task.lock().unwrap() < i || *by_thread.lock().unwrap() < i {
                    if thread_done.load(Ordering::Acquire) {
                        return;
                    }
                    std::thread::yield_now();
                }
                producer.publish(&i.to_le_bytes()).unwrap();
            }
        })
    };
    for i in 0..N {
        let Ok(message) = timeout(LONG, awaiting.recv_async()).await else {
            break;
        };
        assert_eq!(&*message.unwrap(), &i.to_le_bytes());
        *by_task.lock().unwrap() = i + 1;
    }
    sender.await.unwrap();
    // The thread's verdict first: if it failed, the task's missing messages are why.
    thread.join().unwrap();
    assert_eq!(*by_task.lock().unwrap(), N, "the awaiting task got every message");
}
