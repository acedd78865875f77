//! A work queue: three workers of the group "resize" share the jobs; each job reaches exactly
//! one of them. The group as a whole holds the producer back when it falls a ring behind.
//!
//! ```text
//! cargo run --release --example work_queue
//! ```

use ringmq::{Ring, WaitStrategy};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ring = Ring::builder().capacity(64).slot_size(128).build()?;
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let mut worker = ring
                .worker("resize", &format!("resize-{i}"))
                .wait_strategy(WaitStrategy::Block)
                .attach()?;
            Ok(std::thread::spawn(move || {
                let mut done = Vec::new();
                // A worker leaves when no job has come for a while.
                while let Ok(job) = worker.recv_timeout(Duration::from_millis(200)) {
                    let path = std::str::from_utf8(&job).unwrap().to_owned();
                    done.push(path); // ... resize the image here ...
                }
                (worker.name().to_owned(), done)
            }))
        })
        .collect::<Result<_, ringmq::AttachError>>()?;

    let mut producer = ring.producer()?;
    for n in 0..1_000 {
        producer.publish(format!("/photos/{n:04}.jpg").as_bytes())?;
    }
    let mut all = Vec::new();
    for w in workers {
        let (name, done) = w.join().unwrap();
        println!("{name}: {} jobs", done.len());
        all.extend(done);
    }
    all.sort();
    all.dedup();
    println!("{} distinct jobs done, none twice", all.len());
    assert_eq!(all.len(), 1_000);
    Ok(())
}
