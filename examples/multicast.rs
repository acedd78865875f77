//! Pub/sub: one producer, three subscribers; every subscriber sees every message, in order.
//!
//! ```text
//! cargo run --release --example multicast
//! ```

use ringmq::{Ring, Start};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ring = Ring::builder().capacity(256).slot_size(64).build()?;
    let names = ["prices-ui", "risk", "audit-log"];
    let readers: Vec<_> = names
        .iter()
        .map(|name| {
            let mut subscriber = ring.subscriber(name).start(Start::Earliest).attach()?;
            Ok(std::thread::spawn(move || {
                let mut total = 0u64;
                for _ in 0..10_000 {
                    let tick = subscriber.recv().unwrap();
                    total += tick.value::<u64>().unwrap();
                }
                (subscriber.name().to_owned(), total)
            }))
        })
        .collect::<Result<_, ringmq::AttachError>>()?;

    let mut producer = ring.producer()?;
    for price in 0..10_000u64 {
        producer.publish(&price.to_le_bytes())?; // waits while the slowest subscriber is a ring behind
    }
    for reader in readers {
        let (name, total) = reader.join().unwrap();
        println!("{name:>10} saw every tick: sum = {total}");
        assert_eq!(total, (0..10_000u64).sum());
    }
    Ok(())
}
