//! Request-reply in one process: every reply matches its request, a pool of responders shares
//! the requests, pipelined requests each end once, deadlines expire once and late replies are
//! counted, a request whose responder left is answered by another, and nothing is sent when no
//! responder is there. The same on heap rings and on topics in a directory.

use ringmq::request::{Handled, Request, Service, RESPONDERS};
use ringmq::{RequestError, Ring, TopicDir, WaitStrategy};
use std::collections::HashSet;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(30);

fn heap_service() -> Service {
    Service::new(Ring::builder().capacity(64).slot_size(128)).unwrap()
}

/// A service whose rings are topics in a fresh directory (removed with it).
fn dir_service() -> (tempfile::TempDir, Service) {
    let dir = tempfile::tempdir().unwrap();
    let topics = TopicDir::new(dir.path());
    let service = Service::create(&topics, "svc", Ring::builder().capacity(64).slot_size(128)).unwrap();
    (dir, service)
}

fn both() -> Vec<(Option<tempfile::TempDir>, Service)> {
    let (dir, service) = dir_service();
    vec![(None, heap_service()), (Some(dir), service)]
}

fn reversed(request: &Request<'_>) -> Vec<u8> {
    request.payload().iter().rev().copied().collect()
}

#[test]
fn a_call_gets_the_reply_to_its_request() {
    for (_dir, service) in both() {
        let mut responder = service.responder("r1").attach().unwrap();
        let mut requester = service.requester().build().unwrap();
        let server = std::thread::spawn(move || {
            for _ in 0..100 {
                assert_eq!(responder.respond(reversed).unwrap(), Handled::Replied);
            }
            responder
        });
        for i in 0..100u32 {
            let request = format!("request {i}");
            let reply = requester.call(request.as_bytes(), LONG).unwrap();
            let expected: Vec<u8> = request.bytes().rev().collect();
            assert_eq!(reply.payload(), &expected[..]);
            assert_eq!(reply.id(), u64::from(i) + 1);
            assert!(!reply.redelivered());
        }
        let responder = server.join().unwrap();
        assert_eq!(responder.replied(), 100);
        assert_eq!(requester.in_flight(), 0);
        assert_eq!((requester.late_replies(), requester.duplicate_replies()), (0, 0));
    }
}

#[test]
fn pipelined_requests_each_end_once() {
    for (_dir, service) in both() {
        let mut responder = service.responder("r1").attach().unwrap();
        let mut requester = service.requester().reply_capacity(16).build().unwrap();
        let ids: Vec<u64> = (0..16u8)
            .map(|i| requester.send(&[i; 10], LONG).unwrap())
            .collect();
        assert_eq!(requester.in_flight(), 16);
        assert_eq!(
            requester.send(b"one too many", LONG),
            Err(RequestError::WindowFull { window: 16 })
        );
        for _ in 0..16 {
            responder.try_respond(reversed).unwrap();
        }
        let mut seen = HashSet::new();
        for _ in 0..16 {
            let reply = requester.try_recv().unwrap();
            let i = (reply.id() - ids[0]) as u8;
            assert_eq!(reply.payload(), &[i; 10]);
            assert!(seen.insert(reply.id()), "reply {} twice", reply.id());
        }
        assert_eq!(requester.try_recv().unwrap_err(), RequestError::Empty);
        assert_eq!(requester.in_flight(), 0);
    }
}

#[test]
fn a_call_keeps_other_replies_for_recv() {
    let service = heap_service();
    let mut responder = service.responder("r1").attach().unwrap();
    let mut requester = service.requester().build().unwrap();
    let first = requester.send(b"first", LONG).unwrap();
    let second = requester.send(b"second", LONG).unwrap();
    let server = std::thread::spawn(move || {
        for _ in 0..3 {
            responder.respond(|r| r.payload().to_vec()).unwrap();
        }
    });
    assert_eq!(requester.call(b"third", LONG).unwrap().payload(), b"third");
    let reply = requester.recv().unwrap();
    assert_eq!((reply.id(), reply.payload()), (first, &b"first"[..]));
    let reply = requester.recv().unwrap();
    assert_eq!((reply.id(), reply.payload()), (second, &b"second"[..]));
    server.join().unwrap();
}

/// `n` responders answering by `handler` on threads until `done` is set; each thread returns
/// how many requests it answered.
fn pool(
    service: &Service,
    n: usize,
    handler: fn(&Request<'_>) -> Vec<u8>,
    done: &Arc<Mutex<bool>>,
) -> Vec<std::thread::JoinHandle<u64>> {
    (0..n)
        .map(|k| {
            let mut responder = service.responder(&format!("r{k}")).attach().unwrap();
            let done = done.clone();
            std::thread::spawn(move || {
                while !*done.lock().unwrap() {
                    match responder.respond_timeout(handler, Duration::from_millis(5)) {
                        Ok(handled) => assert_eq!(handled, Handled::Replied),
                        Err(ringmq::RecvError::Timeout) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                responder.replied()
            })
        })
        .collect()
}

#[test]
fn a_pool_of_responders_answers_many_requesters() {
    for (_dir, service) in both() {
        const REQUESTERS: u32 = 4;
        const CALLS: u32 = 500;
        let done = Arc::new(Mutex::new(false));
        let responders = pool(&service, 3, reversed, &done);
        let requesters: Vec<_> = (0..REQUESTERS)
            .map(|r| {
                let mut requester = service.requester().build().unwrap();
                std::thread::spawn(move || {
                    for i in 0..CALLS {
                        let request = format!("requester {r} call {i}");
                        let reply = requester.call(request.as_bytes(), LONG).unwrap();
                        let expected: Vec<u8> = request.bytes().rev().collect();
                        assert_eq!(reply.payload(), &expected[..]);
                    }
                })
            })
            .collect();
        for requester in requesters {
            requester.join().unwrap();
        }
        *done.lock().unwrap() = true;
        let replied: u64 = responders.into_iter().map(|r| r.join().unwrap()).sum();
        assert_eq!(replied, u64::from(REQUESTERS * CALLS));
    }
}

#[test]
fn no_responder_means_no_request() {
    for (_dir, service) in both() {
        let mut requester = service.requester().build().unwrap();
        assert_eq!(requester.send(b"hello", LONG), Err(RequestError::NoResponders));
        let responder = service.responder("r1").attach().unwrap();
        assert_eq!(service.responders(), 1);
        requester.send(b"hello", LONG).unwrap();
        drop(responder);
        assert_eq!(service.responders(), 0);
        assert_eq!(requester.send(b"again", LONG), Err(RequestError::NoResponders));
        // The group kept the request: a responder that comes later answers it.
        let mut responder = service.responder("r2").attach().unwrap();
        assert_eq!(responder.try_respond(reversed), Ok(Handled::Replied));
        assert_eq!(requester.try_recv().unwrap().payload(), b"olleh");
    }
}

#[test]
fn a_deadline_expires_once_and_a_late_reply_is_counted() {
    for (_dir, service) in both() {
        let mut responder = service.responder("r1").attach().unwrap();
        let mut requester = service.requester().build().unwrap();
        let (expired_tx, expired_rx) = mpsc::channel::<()>();
        let (took_tx, took_rx) = mpsc::channel::<()>();
        let id = requester.send(b"slow", Duration::from_millis(50)).unwrap();
        let server = std::thread::spawn(move || {
            let handled = responder
                .respond(|request| {
                    took_tx.send(()).unwrap();
                    // Reply only once the requester has given up on it.
                    expired_rx.recv().unwrap();
                    reversed(request)
                })
                .unwrap();
            (handled, responder)
        });
        took_rx.recv().unwrap();
        assert_eq!(requester.recv().unwrap_err(), RequestError::Expired { id });
        assert_eq!(requester.in_flight(), 0);
        expired_tx.send(()).unwrap();
        let (handled, mut responder) = server.join().unwrap();
        // The deadline passed while the handler ran: the reply is still sent (the reply ring
        // has room), and the requester drops it.
        assert_eq!(handled, Handled::Replied);
        assert_eq!(
            requester.recv_timeout(Duration::from_millis(20)).unwrap_err(),
            RequestError::Timeout
        );
        assert_eq!(requester.late_replies(), 1);

        // A request whose deadline passed before a responder took it is not handled.
        let id = requester.send(b"too late", Duration::from_millis(1)).unwrap();
        assert_eq!(requester.recv().unwrap_err(), RequestError::Expired { id });
        let ran = std::cell::Cell::new(false);
        assert_eq!(
            responder.try_respond(|_| {
                ran.set(true);
                Vec::new()
            }),
            Ok(Handled::Expired)
        );
        assert!(!ran.get());
        assert_eq!(responder.expired(), 1);
    }
}

#[test]
fn a_call_that_times_out_says_which_request_expired() {
    let service = heap_service();
    let _responder = service.responder("silent").attach().unwrap();
    let mut requester = service.requester().build().unwrap();
    let err = requester.call(b"anyone?", Duration::from_millis(10)).unwrap_err();
    assert_eq!(err, RequestError::Expired { id: 1 });
    // The next request is not held up by the first.
    assert_eq!(requester.in_flight(), 0);
}

#[test]
fn a_request_whose_responder_left_is_answered_by_another() {
    for (_dir, service) in both() {
        let mut requester = service.requester().build().unwrap();
        let mut responder = None;
        // One slot, and several: a claim of one slot takes all of a larger request (a group
        // never cuts one), and it is redelivered whole.
        let large = tagged(9, 3 * requester.max_slot_payload());
        for (k, payload) in [b"work".to_vec(), large].into_iter().enumerate() {
            // A bare worker takes the request and leaves without acknowledging it, as a
            // responder killed in its handler would.
            let mut quitter = service
                .ring()
                .worker(RESPONDERS, &format!("quitter-{k}"))
                .durable(true)
                .attach()
                .unwrap();
            let id = requester.send(&payload, LONG).unwrap();
            let batch = quitter.try_poll(1);
            assert_eq!(batch.sequences().count(), 1);
            std::mem::forget(batch);
            quitter.detach();
            let responder = responder.get_or_insert_with(|| service.responder("r2").attach().unwrap());
            let mut redelivered = false;
            assert_eq!(
                responder.try_respond(|r| {
                    redelivered = r.redelivered();
                    reversed(r)
                }),
                Ok(Handled::Replied)
            );
            assert!(redelivered);
            let reply = requester.try_recv().unwrap();
            let expected: Vec<u8> = payload.iter().rev().copied().collect();
            assert_eq!((reply.id(), reply.redelivered()), (id, true));
            assert!(
                reply.payload() == &expected[..],
                "payload of {} bytes",
                payload.len()
            );
        }
    }
}

#[test]
fn a_second_reply_to_one_request_is_dropped_and_counted() {
    let service = heap_service();
    let mut requester = service.requester().build().unwrap();
    // A responder that replied and then left before acknowledging: its request comes again.
    let mut first = service
        .ring()
        .worker(RESPONDERS, "first")
        .durable(true)
        .attach()
        .unwrap();
    let id = requester.send(b"twice", LONG).unwrap();
    let batch = first.try_poll(1);
    assert_eq!(batch.sequences().count(), 1);
    std::mem::forget(batch);
    let mut second = service.responder("second").attach().unwrap();
    // The first replies by hand into the reply ring, as a responder would.
    {
        let reply_ring = requester_reply_ring(&service, requester.address());
        let mut producer = reply_ring.producer().unwrap();
        let mut reply = id.to_le_bytes().to_vec();
        reply.extend_from_slice(&0x5052u16.to_le_bytes());
        reply.extend_from_slice(&[0; 6]);
        reply.extend_from_slice(b"from first");
        producer.publish(&reply).unwrap();
    }
    first.detach();
    assert_eq!(
        second.try_respond(|_| b"from second".to_vec()),
        Ok(Handled::Replied)
    );
    assert_eq!(requester.try_recv().unwrap().payload(), b"from first");
    assert_eq!(requester.try_recv().unwrap_err(), RequestError::Empty);
    assert_eq!(requester.duplicate_replies(), 1);
}

/// A requester's reply ring, found by its address as a responder finds it.
fn requester_reply_ring(service: &Service, address: &str) -> Ring {
    service.reply_ring(address).expect("the requester's reply ring")
}

#[test]
fn garbage_in_either_ring_is_passed_over_and_counted() {
    for (_dir, service) in both() {
        let mut responder = service.responder("r1").attach().unwrap();
        let mut requester = service.requester().build().unwrap();
        service
            .ring()
            .producer()
            .unwrap()
            .publish(b"not a request")
            .unwrap();
        assert_eq!(responder.try_respond(reversed), Ok(Handled::Malformed));
        assert_eq!(responder.malformed(), 1);
        requester_reply_ring(&service, requester.address())
            .producer()
            .unwrap()
            .publish(b"not a reply either")
            .unwrap();
        assert_eq!(requester.try_recv().unwrap_err(), RequestError::Empty);
        assert_eq!(requester.malformed_replies(), 1);
    }
}

#[test]
fn sizes_are_checked_on_both_sides() {
    let service = Service::new(Ring::builder().capacity(64).slot_size(128)).unwrap();
    let mut responder = service.responder("r1").attach().unwrap();
    let mut requester = service
        .requester()
        .reply_capacity(4)
        .reply_slot_size(64)
        .build()
        .unwrap();
    let header_and_address = 24 + requester.address().len();
    assert_eq!(requester.max_slot_payload(), 128 - 8 - header_and_address);
    let max = requester.max_payload();
    assert_eq!(max, 64 * (128 - 8) - header_and_address);
    assert_eq!(
        requester.send(&vec![0; max + 1], LONG),
        Err(RequestError::TooLarge { len: max + 1, max })
    );
    // The largest request takes the whole ring, and arrives whole.
    requester.send(&vec![1; max], LONG).unwrap();
    let mut seen = 0;
    assert_eq!(
        responder.try_respond(|r| {
            seen = r.payload().len();
            vec![0; 4 * (64 - 8) - 16 + 1]
        }),
        Ok(Handled::Undeliverable),
        "a reply larger than the reply ring's four slots of 56 bytes is not delivered"
    );
    assert_eq!(seen, max);
    assert_eq!(responder.undeliverable(), 1);
    assert_eq!(requester.try_recv().unwrap_err(), RequestError::Empty);
    // One byte less fills the reply ring exactly.
    let id = requester.send(b"again", LONG).unwrap();
    assert_eq!(
        responder.try_respond(|_| vec![7; 4 * (64 - 8) - 16]),
        Ok(Handled::Replied)
    );
    let reply = requester.try_recv().unwrap();
    assert_eq!((reply.id(), reply.payload()), (id, &[7; 4 * 56 - 16][..]));
}

/// A payload of `len` bytes that says which request it is: `tag` then a counting pattern.
fn tagged(tag: u64, len: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let head = tag.to_le_bytes();
    let n = head.len().min(len);
    bytes[..n].copy_from_slice(&head[..n]);
    bytes
}

/// The reply the tests' responders give: the request reversed, three times over (so that a
/// request in one slot can have a reply of several).
fn reversed_thrice(request: &Request<'_>) -> Vec<u8> {
    reversed(request).repeat(3)
}

#[test]
fn requests_and_replies_larger_than_a_slot_arrive_whole() {
    for (_dir, service) in both() {
        let mut responder = service.responder("r1").attach().unwrap();
        let mut requester = service.requester().reply_capacity(64).build().unwrap();
        let slot = requester.max_slot_payload();
        // Around the slot's edge for the request and for its reply, and several slots.
        let sizes = [0, 1, slot / 3, slot / 3 + 1, slot, slot + 1, 2 * slot, 1000];
        let mut sent = Vec::new();
        for (k, &len) in sizes.iter().enumerate() {
            let payload = tagged(k as u64, len);
            let id = requester.send(&payload, LONG).unwrap();
            sent.push((id, payload));
        }
        for _ in &sizes {
            assert_eq!(responder.try_respond(reversed_thrice), Ok(Handled::Replied));
        }
        for (id, payload) in &sent {
            let reply = requester.try_recv().unwrap();
            let expected: Vec<u8> = payload.iter().rev().copied().collect::<Vec<_>>().repeat(3);
            assert_eq!(reply.id(), *id);
            assert!(reply.payload() == &expected[..], "reply to request {id} differs");
        }
        assert_eq!(requester.try_recv().unwrap_err(), RequestError::Empty);
        assert_eq!(requester.malformed_replies(), 0);
        assert_eq!(responder.malformed(), 0);
    }
}

#[test]
fn a_pool_answers_requests_of_every_size_from_threads() {
    for (_dir, service) in both() {
        const CALLS: u64 = 300;
        let done = Arc::new(Mutex::new(false));
        let responders = pool(&service, 2, reversed_thrice, &done);
        let requesters: Vec<_> = (0..2u64)
            .map(|r| {
                let mut requester = service.requester().reply_capacity(32).build().unwrap();
                std::thread::spawn(move || {
                    for i in 0..CALLS {
                        // Sizes from nothing to several slots of the service's ring.
                        let payload = tagged(r << 32 | i, ((i * 37) % 700) as usize);
                        let reply = requester.call(&payload, LONG).unwrap();
                        let expected: Vec<u8> = payload.iter().rev().copied().collect::<Vec<_>>().repeat(3);
                        assert!(reply.payload() == &expected[..], "requester {r} call {i}");
                    }
                })
            })
            .collect();
        for requester in requesters {
            requester.join().unwrap();
        }
        *done.lock().unwrap() = true;
        let replied: u64 = responders.into_iter().map(|r| r.join().unwrap()).sum();
        assert_eq!(replied, 2 * CALLS);
    }
}

#[test]
fn a_large_request_is_acknowledged_only_after_its_reply() {
    for (_dir, service) in both() {
        let mut requester = service.requester().build().unwrap();
        let mut responder = service.responder("r1").attach().unwrap();
        // What the responder's worker holds: the first sequence of its claim, or nothing.
        let held = |service: &Service| {
            service
                .ring()
                .consumers()
                .into_iter()
                .find(|c| c.name == "r1")
                .expect("the responder's entry")
                .sequence
        };
        let payload = tagged(3, 2 * requester.max_slot_payload());
        requester.send(&payload, LONG).unwrap();
        let mut during = None;
        let handled = responder.try_respond(|r| {
            during = held(&service);
            assert_eq!(r.payload().len(), payload.len());
            r.payload().to_vec()
        });
        assert_eq!(handled, Ok(Handled::Replied));
        assert_eq!(
            during,
            Some(0),
            "the request is held from its first slot while it is handled"
        );
        assert_eq!(
            held(&service),
            None,
            "and acknowledged once its reply is published"
        );
        assert!(requester.try_recv().unwrap().payload() == &payload[..]);
    }
}

#[test]
fn a_window_sized_for_large_replies_has_room_for_all_of_them() {
    let service = heap_service();
    let mut responder = service.responder("r1").attach().unwrap();
    // Replies of 1000 bytes take 9 slots of 120 bytes' payload: 36 for four, so 64.
    let mut requester = service.requester().window_for_replies(4, 1000).build().unwrap();
    let ids: Vec<u64> = (0..4u8)
        .map(|i| requester.send(&[i], Duration::from_secs(5)).unwrap())
        .collect();
    assert_eq!(
        requester.send(b"fifth", LONG),
        Err(RequestError::WindowFull { window: 4 })
    );
    // No reply waits for room: the ring holds all four before any is read.
    for _ in &ids {
        assert_eq!(
            responder.try_respond(|r| vec![r.payload()[0]; 1000]),
            Ok(Handled::Replied)
        );
    }
    for (i, id) in ids.iter().enumerate() {
        let reply = requester.try_recv().unwrap();
        assert_eq!((reply.id(), reply.payload()), (*id, &[i as u8; 1000][..]));
    }
    for window in [0, 257] {
        assert_eq!(
            service.requester().window(window).build().unwrap_err(),
            ringmq::ServiceError::InvalidWindow {
                window,
                capacity: 256
            }
        );
    }
    // Too large a ring to size is the reply ring's own build error, not an overflow.
    assert!(matches!(
        service
            .requester()
            .window_for_replies(usize::MAX, usize::MAX)
            .build()
            .unwrap_err(),
        ringmq::ServiceError::Build(ringmq::BuildError::InvalidCapacity { .. })
    ));
}

#[test]
fn a_requester_removes_its_reply_ring_and_prunes_those_of_dead_ones() {
    let (dir, service) = dir_service();
    let count = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_str()
                    .unwrap()
                    .starts_with("svc.reply.")
            })
            .count()
    };
    let requester = service.requester().build().unwrap();
    assert_eq!(count(), 1);
    drop(requester);
    assert_eq!(count(), 0);
    // A reply ring nobody has open, as a requester killed with SIGKILL leaves it.
    let topics = TopicDir::new(dir.path());
    drop(
        topics
            .create("svc.reply.999.1.0", Ring::builder().capacity(16).slot_size(64))
            .unwrap(),
    );
    // A ring of another name is not touched.
    drop(
        topics
            .create("svc.other", Ring::builder().capacity(16).slot_size(64))
            .unwrap(),
    );
    assert_eq!(count(), 1);
    let _requester = service.requester().build().unwrap();
    assert_eq!(count(), 1, "the dead requester's ring went, the new one's came");
    assert!(dir.path().join("svc.other").exists());
    assert!(!dir.path().join("svc.reply.999.1.0").exists());
}

#[test]
fn a_responder_never_replies_into_a_topic_that_is_not_a_reply_ring() {
    let (dir, service) = dir_service();
    let topics = TopicDir::new(dir.path());
    let victim = topics
        .create("orders", Ring::builder().capacity(16).slot_size(64))
        .unwrap();
    let mut watcher = victim.subscriber("w").attach().unwrap();
    let mut responder = service.responder("r1").attach().unwrap();
    // A hostile request naming another topic as its reply address.
    let _requester = service.requester().build().unwrap();
    let mut request = 1u64.to_le_bytes().to_vec();
    request.extend_from_slice(&0u64.to_le_bytes());
    request.extend_from_slice(&0x5152u16.to_le_bytes());
    request.extend_from_slice(&6u16.to_le_bytes());
    request.extend_from_slice(&[0; 4]);
    request.extend_from_slice(b"orders");
    service.ring().producer().unwrap().publish(&request).unwrap();
    assert_eq!(
        responder.try_respond(|_| b"x".to_vec()),
        Ok(Handled::Undeliverable)
    );
    assert!(watcher.try_recv().is_err());
}

#[test]
fn busy_spinning_sides_work_as_blocking_ones() {
    let service = heap_service();
    let mut responder = service
        .responder("spin")
        .wait_strategy(WaitStrategy::BusySpin)
        .attach()
        .unwrap();
    let mut requester = service
        .requester()
        .wait_strategy(WaitStrategy::BusySpin)
        .build()
        .unwrap();
    let server = std::thread::spawn(move || {
        for _ in 0..1000 {
            responder.respond(reversed).unwrap();
        }
    });
    for i in 0..1000u32 {
        let reply = requester.call(&i.to_le_bytes(), LONG).unwrap();
        let mut expected = i.to_le_bytes();
        expected.reverse();
        assert_eq!(reply.payload(), &expected);
    }
    server.join().unwrap();
}

#[test]
fn a_request_left_unanswered_does_not_block_its_window_slot() {
    let service = heap_service();
    let mut requester = service.requester().reply_capacity(4).build().unwrap();
    // A worker that takes the first request and never answers it.
    let mut holder = service.ring().worker(RESPONDERS, "holder").attach().unwrap();
    let stuck = requester.send(b"stuck", LONG).unwrap();
    let held = holder.try_poll(1);
    assert_eq!(held.sequences().count(), 1);
    let mut responder = service.responder("r2").attach().unwrap();
    let mut ids = HashSet::new();
    for i in 0..20u8 {
        let id = requester.send(&[i], LONG).unwrap();
        assert_ne!(id % 4, stuck % 4, "the stuck request's slot is passed over");
        assert_eq!(responder.try_respond(reversed), Ok(Handled::Replied));
        let reply = requester.try_recv().unwrap();
        assert_eq!((reply.id(), reply.payload()), (id, &[i][..]));
        assert!(ids.insert(id));
    }
    assert_eq!(requester.in_flight(), 1);
    drop(held);
}
