//! Moves messages between two pinned threads and prints the throughput and a latency
//! histogram.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```

use hdrhistogram::Histogram;
use ringmq::{Ring, WaitStrategy};
use std::time::{Duration, Instant};

const THROUGHPUT_MESSAGES: u64 = 20_000_000;
const LATENCY_MESSAGES: u64 = 200_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let pin = |i: usize| {
        cores
            .get(i % cores.len().max(1))
            .map(|&c| core_affinity::set_for_current(c))
    };

    // A ring of 64 Ki slots of 16 bytes: 8 bytes of slot header, one u64 of payload. No
    // wake-ups: both sides busy-spin on their own core, the fastest setting.
    let ring = Ring::builder()
        .capacity(1 << 16)
        .slot_size(16)
        .wakeups(false)
        .build()?;
    let mut consumer = ring
        .subscriber("quickstart")
        .wait_strategy(WaitStrategy::BusySpin)
        .attach()?;
    let mut producer = ring.producer_with(WaitStrategy::BusySpin)?;
    let epoch = Instant::now();

    let reader = {
        let cores = cores.clone();
        std::thread::spawn(move || -> (Instant, Histogram<u64>) {
            if let Some(&core) = cores.get(1) {
                core_affinity::set_for_current(core);
            }
            // Phase 1: count and check every message.
            let mut expected = 0;
            while expected < THROUGHPUT_MESSAGES {
                // Never take phase 2's probes into a phase 1 batch.
                let max = (THROUGHPUT_MESSAGES - expected).min(1024) as usize;
                let batch = consumer
                    .poll(max)
                    .expect("poll without a deadline only fails when stopped");
                for m in &batch {
                    assert_eq!(m.value::<u64>().unwrap(), expected, "lost or reordered message");
                    expected += 1;
                }
            }
            let received_all = Instant::now();
            // Phase 2: each message carries its send time; record the one-way latency.
            let mut latency = Histogram::<u64>::new(3).unwrap();
            for _ in 0..LATENCY_MESSAGES {
                let m = consumer.recv().unwrap();
                let sent = m.value::<u64>().unwrap();
                let now = epoch.elapsed().as_nanos() as u64;
                latency.record(now.saturating_sub(sent)).unwrap();
            }
            (received_all, latency)
        })
    };
    pin(0);

    let start = Instant::now();
    let mut next = 0u64;
    while next < THROUGHPUT_MESSAGES {
        let n = 64.min(THROUGHPUT_MESSAGES - next) as usize;
        // Writes the messages in place and publishes all of them with one store.
        producer.publish_batch_with(n, |i, slot| {
            slot[..8].copy_from_slice(&(next + i as u64).to_le_bytes());
            8
        })?;
        next += n as u64;
    }
    for _ in 0..LATENCY_MESSAGES {
        let pause = Instant::now();
        while pause.elapsed() < Duration::from_micros(2) {
            std::hint::spin_loop();
        }
        let now = epoch.elapsed().as_nanos() as u64;
        producer.publish(&now.to_le_bytes())?;
    }
    let (received_all, latency) = reader.join().expect("the reader thread panicked");
    let elapsed = received_all - start;

    println!("ringmq quickstart: 1 producer -> 1 subscriber, u64 payloads, busy-spin, pinned");
    println!(
        "throughput: {} messages, each checked, in {:.3} s = {:.1} M msgs/s (batches of 64)",
        THROUGHPUT_MESSAGES,
        elapsed.as_secs_f64(),
        THROUGHPUT_MESSAGES as f64 / elapsed.as_secs_f64() / 1e6
    );
    println!(
        "one-way latency, one message every ~2 us ({} samples):",
        latency.len()
    );
    for (label, q) in [
        ("p50", 0.5),
        ("p90", 0.9),
        ("p99", 0.99),
        ("p99.9", 0.999),
        ("p99.99", 0.9999),
    ] {
        println!("  {label:>7}: {:>8} ns", latency.value_at_quantile(q));
    }
    println!("  {:>7}: {:>8} ns", "max", latency.max());
    Ok(())
}
