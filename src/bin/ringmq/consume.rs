//! `consume`: receives as a subscriber or a worker; prints, records, or verifies every
//! message (`Verifier`).

use super::verify::{self, monotonic_ns};
use super::{fail, print_json, Failure};
use hdrhistogram::Histogram;
use ringmq::journal::{JournalReader, JournalSubscriber};
use ringmq::{Consumer, RecvError, Ring, Seek, Start, WaitStrategy};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub(super) struct Options {
    pub name: String,
    pub group: Option<String>,
    pub after: Vec<String>,
    pub from: Start,
    /// Start in this journal, at this point, then go live in the ring.
    pub journal: Option<(PathBuf, Seek)>,
    pub count: Option<u64>,
    pub timeout: Option<Duration>,
    pub print: bool,
    pub verify: bool,
    pub durable: bool,
    pub record: Option<PathBuf>,
    pub until: Option<String>,
    pub hold: Duration,
    pub batch: usize,
    /// Read messages larger than a slot whole (`Source::Large`).
    pub large: bool,
    pub wait: WaitStrategy,
}

/// What `--verify` found.
#[derive(Default)]
struct Verifier {
    worker: bool,
    received: u64,
    per_producer: HashMap<u32, (u64, u64)>, // id -> (received, highest counter)
    seen: HashSet<(u32, u64)>,
    out_of_order: u64,
    gaps: u64,
    duplicates: u64,
    redelivered: u64,
    corrupt: u64,
    latency: Option<Histogram<u64>>,
}

impl Verifier {
    fn check(
        &mut self,
        bytes: &[u8],
        redelivered: bool,
        now: u64,
        record: &mut Option<std::io::BufWriter<std::fs::File>>,
    ) {
        self.received += 1;
        if redelivered {
            self.redelivered += 1;
        }
        let Some((id, counter, sent)) = verify::read(bytes) else {
            self.corrupt += 1;
            return;
        };
        if let Some(h) = &mut self.latency {
            let _ = h.record(now.saturating_sub(sent).max(1));
        }
        if let Some(out) = record {
            let _ = writeln!(out, "{id} {counter} {}", redelivered as u8);
        }
        // A subscriber sees each producer's counters in order, so the highest one seen tells
        // duplicates apart; a worker sees an arbitrary subset and needs the set.
        let highest = self.per_producer.get(&id).map_or(u64::MAX, |e| e.1);
        let duplicate = if self.worker {
            !self.seen.insert((id, counter))
        } else {
            highest != u64::MAX && counter <= highest
        };
        if duplicate {
            // A redelivered message may have been seen before: at-least-once.
            if !redelivered {
                if self.worker || counter == highest {
                    self.duplicates += 1;
                } else {
                    self.out_of_order += 1;
                }
            }
            return;
        }
        let entry = self.per_producer.entry(id).or_insert((0, u64::MAX));
        entry.0 += 1;
        let highest = entry.1;
        if highest == u64::MAX {
            entry.1 = counter;
            return;
        }
        if counter < highest {
            if !redelivered {
                self.out_of_order += 1;
            }
            return;
        }
        if !self.worker && counter > highest + 1 {
            self.gaps += counter - highest - 1;
        }
        entry.1 = counter;
    }

    fn violations(&self) -> u64 {
        self.out_of_order + self.gaps + self.duplicates + self.corrupt
    }
}

/// Where messages come from: the ring, or the journal and then the ring.
enum Source {
    Ring(Consumer),
    /// A subscriber or worker that reads messages larger than a slot whole, into the buffer.
    Large(Consumer, Vec<u8>),
    Journal(Box<JournalSubscriber>),
}

/// Takes one message: `(bytes, sequence, redelivered, now)`; `Ok(true)` to stop.
type Handler<'a> = dyn FnMut(&[u8], u64, bool, u64) -> std::io::Result<bool> + 'a;

/// How a poll ended.
enum Polled {
    /// Delivered this many; `true` if the handler asked to stop.
    Some(u64, bool),
    Timeout,
}

impl Source {
    /// Up to `max` messages to `handle(bytes, sequence, redelivered, now)`, waiting at most
    /// `timeout` (for ever if `None`) for the first.
    fn poll(
        &mut self,
        max: usize,
        timeout: Option<Duration>,
        handle: &mut Handler<'_>,
    ) -> Result<Polled, Failure> {
        match self {
            Source::Ring(consumer) => {
                let worker = consumer.is_worker();
                let polled = match timeout {
                    Some(t) => consumer.poll_timeout(max, t),
                    None => consumer.poll(max),
                };
                let polled = match polled {
                    Ok(b) => b,
                    Err(RecvError::Timeout) => return Ok(Polled::Timeout),
                    Err(e) => return fail(e.to_string()),
                };
                // One clock read per batch: every message of it arrived by now.
                let now = monotonic_ns();
                let mut n = 0;
                for message in &polled {
                    if message.fragment().is_some() {
                        return fail(format!(
                            "message {} is a fragment of one larger than a slot: {}",
                            message.sequence(),
                            if worker {
                                "a group's workers cannot read those"
                            } else {
                                "consume with --large"
                            }
                        ));
                    }
                    n += 1;
                    if handle(&message, message.sequence(), message.redelivered(), now)? {
                        return Ok(Polled::Some(n, true));
                    }
                }
                Ok(Polled::Some(n, false))
            }
            Source::Large(consumer, buf) => {
                let received = match timeout {
                    Some(t) => consumer.recv_large_timeout(buf, t),
                    None => consumer.recv_large(buf),
                };
                let whole = match received {
                    Ok(whole) => whole,
                    Err(RecvError::Timeout) => return Ok(Polled::Timeout),
                    Err(e) => return fail(e.to_string()),
                };
                let stop = handle(buf, whole.sequence, whole.redelivered, monotonic_ns())?;
                Ok(Polled::Some(1, stop))
            }
            Source::Journal(subscriber) => {
                let wait = timeout.unwrap_or(Duration::from_secs(3600));
                let mut n = 0;
                let mut stop = false;
                let mut error = None;
                loop {
                    let now = monotonic_ns();
                    let delivered = subscriber.poll_with(max, wait, |sequence, bytes| {
                        if stop || error.is_some() {
                            return;
                        }
                        n += 1;
                        match handle(bytes, sequence, false, now) {
                            Ok(s) => stop = s,
                            Err(e) => error = Some(e),
                        }
                    })?;
                    if let Some(e) = error {
                        return Err(e.into());
                    }
                    if delivered > 0 {
                        return Ok(Polled::Some(n, stop));
                    }
                    if timeout.is_some() {
                        return Ok(Polled::Timeout);
                    }
                }
            }
        }
    }

    fn skipped(&self) -> u64 {
        match self {
            Source::Ring(consumer) | Source::Large(consumer, _) => consumer.skipped(),
            Source::Journal(_) => 0,
        }
    }
}

/// The subscriber of `--journal DIR --from SEEK`: a durable one whose name the ring still
/// has is the ring's; one the ring has lost (a ring made anew) starts where the journal
/// last persisted its position.
fn journal_source(ring: &Ring, dir: &Path, seek: Seek, o: &Options) -> Result<Source, Failure> {
    let in_ring = ring.consumers().iter().any(|c| c.name == o.name && c.durable);
    if o.durable && in_ring {
        let consumer = ring
            .subscriber(&o.name)
            .durable(true)
            .wait_strategy(o.wait)
            .attach()?;
        return Ok(if o.large {
            Source::Large(consumer, Vec::new())
        } else {
            Source::Ring(consumer)
        });
    }
    let reader = JournalReader::open(dir)?;
    let seek = match reader.position(&o.name) {
        Some(position) if o.durable => Seek::Sequence(position),
        _ => seek,
    };
    let subscriber = JournalSubscriber::with_reader(ring, reader, &o.name, seek)?.durable(o.durable);
    Ok(Source::Journal(Box::new(subscriber)))
}

pub(super) fn run(path: &Path, o: &Options, json: bool) -> Result<(), Failure> {
    let ring = Ring::open(path)?;
    let mut source = match (&o.journal, &o.group) {
        (Some((dir, seek)), None) => journal_source(&ring, dir, *seek, o)?,
        (journal, Some(group)) => {
            let mut from = o.from;
            // A durable group the ring has lost (a ring made anew) starts where the journal
            // last persisted its position.
            if let (Some((dir, _)), true) = (journal, o.durable) {
                if !ring.consumers().iter().any(|c| &c.name == group) {
                    if let Some(position) = JournalReader::open(dir)?.position(group) {
                        from = Start::Sequence(position);
                    }
                }
            }
            let mut builder = ring
                .worker(group, &o.name)
                .group_start(from)
                .durable(o.durable)
                .wait_strategy(o.wait);
            if !o.after.is_empty() {
                builder = builder.after(&o.after);
            }
            let worker = builder.attach()?;
            if o.large {
                Source::Large(worker, Vec::new())
            } else {
                Source::Ring(worker)
            }
        }
        (None, None) => {
            let consumer = ring
                .subscriber(&o.name)
                .start(o.from)
                .wait_strategy(o.wait)
                .durable(o.durable)
                .after(&o.after)
                .attach()?;
            if o.large {
                Source::Large(consumer, Vec::new())
            } else {
                Source::Ring(consumer)
            }
        }
    };
    let mut record = match &o.record {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => None,
    };
    let mut verifier = Verifier {
        worker: o.group.is_some(),
        latency: Histogram::new_with_bounds(1, 60_000_000_000, 3).ok(),
        ..Verifier::default()
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let started = Instant::now();
    let mut received = 0u64;
    let (mut first, mut last) = (None, None);
    let mut stopped_by_timeout = false;
    // Handles one message received at `now`; true to stop.
    let mut handle = |bytes: &[u8], sequence: u64, redelivered: bool, now: u64| -> std::io::Result<bool> {
        if o.until.as_deref().is_some_and(|u| u.as_bytes() == bytes) {
            return Ok(true);
        }
        received += 1;
        first.get_or_insert(sequence);
        last = Some(sequence);
        if o.verify {
            verifier.check(bytes, redelivered, now, &mut record);
        }
        if o.print {
            writeln!(out, "{}", String::from_utf8_lossy(bytes))?;
        }
        if !o.hold.is_zero() {
            out.flush()?;
            std::thread::sleep(o.hold);
        }
        Ok(false)
    };
    let batch = if o.until.is_some() { 1 } else { o.batch.max(1) };
    let mut taken = 0u64;
    while o.count.is_none_or(|c| taken < c) {
        let max = o.count.map_or(batch as u64, |c| (c - taken).min(batch as u64)) as usize;
        match source.poll(max, o.timeout, &mut handle)? {
            Polled::Timeout => {
                stopped_by_timeout = true;
                break;
            }
            Polled::Some(n, stop) => {
                taken += n;
                if stop {
                    break;
                }
            }
        }
    }
    out.flush()?;
    if let Some(r) = &mut record {
        r.flush()?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let skipped = source.skipped();
    drop(source);
    let latency = verifier.latency.as_ref().filter(|h| !h.is_empty()).map(|h| {
        json!({
            "p50": h.value_at_quantile(0.5), "p90": h.value_at_quantile(0.9),
            "p99": h.value_at_quantile(0.99), "p999": h.value_at_quantile(0.999),
            "max": h.max(),
        })
    });
    if json {
        let mut summary = json!({
            "name": o.name, "received": received, "elapsed_s": elapsed, "skipped": skipped,
            "timed_out": stopped_by_timeout, "first_sequence": first, "last_sequence": last,
        });
        if o.verify {
            let producers: HashMap<String, u64> = verifier
                .per_producer
                .iter()
                .map(|(id, (n, _))| (id.to_string(), *n))
                .collect();
            summary["producers"] = json!(producers);
            summary["out_of_order"] = json!(verifier.out_of_order);
            summary["gaps"] = json!(verifier.gaps);
            summary["duplicates"] = json!(verifier.duplicates);
            summary["redelivered"] = json!(verifier.redelivered);
            summary["corrupt"] = json!(verifier.corrupt);
            summary["latency_ns"] = latency.unwrap_or(Value::Null);
        }
        print_json(&summary);
    } else if o.verify || !o.print {
        println!(
            "{}: received {received} in {elapsed:.3} s, skipped {skipped}{}",
            o.name,
            if stopped_by_timeout {
                " (stopped: timeout)"
            } else {
                ""
            }
        );
        if o.verify {
            println!(
                "verify: out-of-order {}, gaps {}, duplicates {}, redelivered {}, corrupt {}",
                verifier.out_of_order,
                verifier.gaps,
                verifier.duplicates,
                verifier.redelivered,
                verifier.corrupt
            );
            if let Some(l) = latency {
                println!(
                    "latency ns: p50 {} p90 {} p99 {} p99.9 {} max {}",
                    l["p50"], l["p90"], l["p99"], l["p999"], l["max"]
                );
            }
        }
    }
    if o.verify && verifier.violations() > 0 {
        return Err(Failure(
            format!("{}: {} violations", o.name, verifier.violations()),
            3,
        ));
    }
    Ok(())
}
