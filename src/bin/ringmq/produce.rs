//! `produce`: publishes stdin lines, or generated (and verifiable) messages.

use super::verify::{self, monotonic_ns};
use super::{fail, print_json, Failure};
use ringmq::{PublishError, Ring, WaitStrategy};
use serde_json::json;
use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

/// What `produce` publishes.
pub(super) struct Generate {
    pub count: Option<u64>,
    pub size: Option<usize>,
    pub rate: Option<f64>,
    pub verifiable: Option<u32>,
    pub batch: usize,
}

pub(super) fn run(path: &Path, g: Generate, wait: WaitStrategy, json: bool) -> Result<(), Failure> {
    let Generate {
        count,
        size,
        rate,
        verifiable,
        batch,
    } = g;
    let ring = Ring::open(path)?;
    let mut producer = ring.producer_with(wait)?;
    let slot = ring.max_message_len();
    let max = producer.max_large_len();
    let size = size.unwrap_or(if verifiable.is_some() { verify::MIN_LEN } else { 8 });
    if size > max {
        return fail(format!(
            "--size {size} exceeds the largest message of this ring, {max} bytes (a whole ring of {slot}-byte slots)"
        ));
    }
    if size > slot && batch > 1 {
        return fail(format!(
            "--batch publishes slot-sized messages; a --size above the {slot}-byte slot is published one message at a time"
        ));
    }
    if verifiable.is_some() && size < verify::MIN_LEN {
        return fail(format!(
            "--verifiable needs --size of at least {}",
            verify::MIN_LEN
        ));
    }
    if batch == 0 {
        return fail("--batch must be at least 1");
    }
    let batch = (batch as u64).min(ring.capacity());
    let interval = match rate {
        Some(r) if !(r > 0.0 && r.is_finite()) => return fail("--rate must be a positive number"),
        Some(r) => Some(Duration::from_secs_f64(1.0 / r)),
        None => None,
    };
    let started = Instant::now();
    let pace = |i: u64| {
        if let Some(interval) = interval {
            let due = started + interval.mul_f64(i as f64);
            while Instant::now() < due {
                std::hint::spin_loop();
            }
        }
    };
    let mut published = 0u64;
    let mut buf = vec![0u8; size];
    let publish = |producer: &mut ringmq::Producer, bytes: &[u8]| -> Result<(), Failure> {
        // Messages larger than a slot go out as fragments (`consume --large` reads them).
        producer.publish_large(bytes).map(drop).map_err(|e| match e {
            PublishError::TooLarge { len, max } => Failure(
                format!("a {len}-byte message exceeds the ring's largest, {max} bytes"),
                1,
            ),
            other => Failure(other.to_string(), 1),
        })
    };
    match (count, verifiable) {
        (None, None) => {
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                pace(published);
                publish(&mut producer, line.as_bytes())?;
                published += 1;
            }
        }
        (count, id) => {
            let count = count.unwrap_or(u64::MAX);
            let fill = |slot: &mut [u8], i: u64, now: u64| match id {
                Some(id) => verify::write(slot, id, i, now),
                None => {
                    let n = slot.len().min(8);
                    slot[..n].copy_from_slice(&i.to_le_bytes()[..n]);
                }
            };
            let mut i = 0;
            while i < count {
                pace(i);
                let n = batch.min(count - i);
                let now = monotonic_ns();
                if n == 1 {
                    fill(&mut buf, i, now);
                    publish(&mut producer, &buf)?;
                } else {
                    producer
                        .publish_batch_with(n as usize, |k, slot| {
                            fill(&mut slot[..size], i + k as u64, now);
                            size
                        })
                        .map_err(|e| Failure(e.to_string(), 1))?;
                }
                i += n;
                published += n;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = published as f64 / elapsed.max(1e-9);
    if json {
        print_json(&json!({ "published": published, "elapsed_s": elapsed, "rate": rate }));
    } else {
        println!("published {published} messages in {elapsed:.3} s ({rate:.0} msgs/s)");
    }
    Ok(())
}
