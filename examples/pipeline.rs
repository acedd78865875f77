//! Dependency graphs: a three-stage pipeline (decode -> enrich -> persist) and a diamond
//! (journal and replicate both after receive, then apply after both).
//!
//! ```text
//! cargo run --release --example pipeline
//! ```

use ringmq::{Consumer, Ring};
use std::thread::JoinHandle;

const N: u64 = 50_000;

/// Runs a stage on its own thread: reads every message and returns the sum of the values.
fn stage(mut consumer: Consumer) -> JoinHandle<(String, u64)> {
    std::thread::spawn(move || {
        let mut sum = 0;
        for _ in 0..N {
            sum += consumer.recv().unwrap().value::<u64>().unwrap();
        }
        (consumer.name().to_owned(), sum)
    })
}

fn run(ring: &Ring, stages: Vec<Consumer>) -> Result<(), Box<dyn std::error::Error>> {
    let threads: Vec<_> = stages.into_iter().map(stage).collect();
    let mut producer = ring.producer()?;
    for i in 0..N {
        producer.publish(&i.to_le_bytes())?;
    }
    for t in threads {
        let (name, sum) = t.join().unwrap();
        println!("  {name:>10}: {N} messages, sum {sum}");
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("pipeline: decode -> enrich -> persist");
    let ring = Ring::builder().capacity(1024).build()?;
    let decode = ring.subscriber("decode").attach()?;
    let enrich = ring.subscriber("enrich").after(["decode"]).attach()?;
    let persist = ring.subscriber("persist").after(["enrich"]).attach()?;
    run(&ring, vec![decode, enrich, persist])?;

    println!("diamond: receive -> {{journal, replicate}} -> apply");
    let ring = Ring::builder().capacity(1024).build()?;
    let receive = ring.subscriber("receive").attach()?;
    let journal = ring.subscriber("journal").after(["receive"]).attach()?;
    let replicate = ring.subscriber("replicate").after(["receive"]).attach()?;
    let apply = ring
        .subscriber("apply")
        .after(["journal", "replicate"])
        .attach()?;
    run(&ring, vec![receive, journal, replicate, apply])
}
