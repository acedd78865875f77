//! Typed payloads: `bytemuck::Pod` structs in and out, written in place (zero copy) or copied.
//!
//! ```text
//! cargo run --release --example typed
//! ```

use bytemuck::{Pod, Zeroable};
use ringmq::{Ring, TypedConsumer, TypedProducer};

#[derive(Clone, Copy, Debug, PartialEq, Zeroable, Pod)]
#[repr(C)]
struct Trade {
    id: u64,
    price_ticks: i64,
    quantity: u32,
    venue: [u8; 4],
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ring = Ring::builder().capacity(1024).slot_size(32).build()?; // 24 bytes of payload
    let mut trades = TypedConsumer::<Trade>::new(ring.subscriber("book").attach()?)?;
    let mut producer = TypedProducer::<Trade>::new(ring.producer()?)?;

    // Copy a value in...
    producer.publish(&Trade {
        id: 1,
        price_ticks: 10_050,
        quantity: 300,
        venue: *b"XLON",
    })?;
    // ...or fill the slot in place.
    producer.try_publish_with(|t| {
        t.id = 2;
        t.price_ticks = 10_051;
        t.quantity = 100;
        t.venue = *b"XPAR";
    })?;

    for _ in 0..2 {
        let (sequence, trade) = trades.recv()?;
        println!("#{sequence}: {trade:?} at {}", std::str::from_utf8(&trade.venue)?);
    }
    Ok(())
}
