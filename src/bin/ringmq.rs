//! `ringmq`: create, inspect, feed, drain and clean up rings in /dev/shm or files.
//!
//! RING is a name (a file in /dev/shm/ringmq/) or a path (anything with a `/`). Human output by
//! default, `--json` for scripts. Errors are one line on stderr and a non-zero exit: 1 for an
//! error, 2 for bad arguments, 3 when `consume --verify` found a violation.

use clap::{Parser, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use ringmq::{
    ConsumerKind, Error, ProducerMode, PublishError, RecvError, Ring, RingFileKind, Start, WaitStrategy,
};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, ExitCode, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "ringmq",
    version,
    about = "Disruptor-style rings in /dev/shm and files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a ring.
    Create {
        /// Ring name (in /dev/shm/ringmq) or path.
        ring: String,
        /// Number of slots (a power of two).
        #[arg(long, default_value_t = 1024)]
        capacity: u64,
        /// Bytes per slot, 8-byte header included (a multiple of 8, at least 16).
        #[arg(long, default_value_t = 64)]
        slot_size: usize,
        /// Allow any number of producers (default: one).
        #[arg(long, conflicts_with = "fixed_size")]
        multi_producer: bool,
        /// Every message exactly this many bytes (a multiple of 8), in slots without headers;
        /// replaces --slot-size. Single producer.
        #[arg(long, conflicts_with = "slot_size")]
        fixed_size: Option<usize>,
        /// Entries of the consumer table (1-64).
        #[arg(long, default_value_t = 32)]
        max_consumers: usize,
        /// File mode, octal.
        #[arg(long, default_value = "0600")]
        mode: String,
    },
    /// Show a ring's parameters, cursor and consumers (cleaning up after dead processes).
    Stat {
        /// Ring name or path.
        ring: String,
    },
    /// List the rings of a directory.
    List {
        /// Directory (default /dev/shm/ringmq).
        dir: Option<PathBuf>,
    },
    /// Remove a ring.
    Rm {
        /// Ring name or path.
        ring: String,
    },
    /// Remove the rings of a directory that no process has open, and abandoned half-made ones.
    Prune {
        /// Directory (default /dev/shm/ringmq).
        dir: Option<PathBuf>,
    },
    /// Publish messages: stdin lines, or generated ones with --count.
    Produce {
        /// Ring name or path.
        ring: String,
        /// Publish this many generated messages instead of reading stdin.
        #[arg(long)]
        count: Option<u64>,
        /// Bytes per generated message.
        #[arg(long)]
        size: Option<usize>,
        /// Messages per second (default: as fast as the ring takes them).
        #[arg(long)]
        rate: Option<f64>,
        /// Generate verifiable messages carrying this producer id, a counter, a timestamp and
        /// a checksum (see `consume --verify`).
        #[arg(long, value_name = "ID")]
        verifiable: Option<u32>,
        /// Publish generated messages in batches of this many (one publish per batch).
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// How a full ring is waited on.
        #[arg(long, value_enum, default_value_t = Wait::Backoff)]
        wait: Wait,
    },
    /// Receive messages as a subscriber or as a worker of a group.
    Consume {
        /// Ring name or path.
        ring: String,
        /// Consumer name.
        #[arg(long)]
        name: String,
        /// Join this group as a worker (each message goes to one worker).
        #[arg(long)]
        group: Option<String>,
        /// Run after these consumers or groups (comma-separated).
        #[arg(long, value_delimiter = ',')]
        after: Vec<String>,
        /// earliest, latest, or a sequence.
        #[arg(long, default_value = "latest")]
        from: String,
        /// Stop after this many messages.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this many seconds without a message.
        #[arg(long)]
        timeout: Option<f64>,
        /// Print each message as a line.
        #[arg(long)]
        print: bool,
        /// Check verifiable messages and summarise (exit 3 on any violation).
        #[arg(long)]
        verify: bool,
        /// Keep the subscriber's position if this process dies (a restart resumes there).
        #[arg(long)]
        durable: bool,
        /// Write "producer counter redelivered" per verified message to this file.
        #[arg(long)]
        record: Option<PathBuf>,
        /// Stop (without counting it) at a message whose payload is exactly this text.
        #[arg(long, value_name = "TEXT")]
        until: Option<String>,
        /// Hold each message this many milliseconds before acknowledging it.
        #[arg(long, default_value_t = 0)]
        hold_ms: u64,
        /// Take up to this many messages at a time, acknowledged together (not with --until).
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// How an empty ring is waited on.
        #[arg(long, value_enum, default_value_t = Wait::Backoff)]
        wait: Wait,
    },
    /// Run a producer process and subscriber processes over a ring in /dev/shm; print
    /// throughput and latency.
    Demo {
        /// Messages in the throughput run.
        #[arg(long, default_value_t = 10_000_000)]
        messages: u64,
        /// Subscriber processes.
        #[arg(long, default_value_t = 1)]
        subscribers: usize,
        /// Bytes per message (at least 32).
        #[arg(long, default_value_t = 32)]
        size: usize,
        /// Messages per second in the latency run.
        #[arg(long, default_value_t = 100_000.0)]
        rate: f64,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Wait {
    Spin,
    Yield,
    Backoff,
    Block,
}

impl Wait {
    fn strategy(self) -> WaitStrategy {
        match self {
            Wait::Spin => WaitStrategy::BusySpin,
            Wait::Yield => WaitStrategy::Yield,
            Wait::Backoff => WaitStrategy::Backoff,
            Wait::Block => WaitStrategy::Block,
        }
    }
}

/// A failure: its message, and the exit code.
struct Failure(String, u8);

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure(e.to_string(), 1)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure(e.to_string(), 1)
    }
}

fn fail<T>(message: impl Into<String>) -> Result<T, Failure> {
    Err(Failure(message.into(), 1))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.to_string();
            eprintln!(
                "ringmq: {}",
                text.lines()
                    .next()
                    .unwrap_or("bad arguments")
                    .trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message, code)) => {
            eprintln!("ringmq: {message}");
            ExitCode::from(code)
        }
    }
}

/// A name (in /dev/shm/ringmq) or a path.
fn ring_path(ring: &str) -> Result<PathBuf, Failure> {
    if ring.contains('/') {
        Ok(PathBuf::from(ring))
    } else {
        Ok(ringmq::shm_path(ring)?)
    }
}

fn print_json(value: &Value) {
    println!("{value}");
}

fn run(cli: Cli) -> Result<(), Failure> {
    let json = cli.json;
    match cli.command {
        Command::Create {
            ring,
            capacity,
            slot_size,
            multi_producer,
            fixed_size,
            max_consumers,
            mode,
        } => {
            let mode = u32::from_str_radix(mode.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| Failure(format!("--mode {mode:?} is not an octal file mode"), 2))?;
            let path = ring_path(&ring)?;
            let mut builder = Ring::builder()
                .capacity(capacity)
                .slot_size(slot_size)
                .max_consumers(max_consumers)
                .mode(mode);
            if multi_producer {
                builder = builder.multi_producer();
            }
            if let Some(size) = fixed_size {
                builder = builder.fixed_size(size);
            }
            let created = builder.create(&path)?;
            if json {
                print_json(&json!({
                    "path": path,
                    "capacity": capacity,
                    "slot_size": created.slot_size(),
                    "fixed_size": created.fixed_size(),
                }));
            } else {
                println!("created {}", path.display());
            }
            Ok(())
        }
        Command::Stat { ring } => stat(&ring_path(&ring)?, json),
        Command::List { dir } => list(dir.as_deref().unwrap_or(Path::new(ringmq::SHM_DIR)), json),
        Command::Rm { ring } => {
            let path = ring_path(&ring)?;
            Ring::remove(&path)?;
            if !json {
                println!("removed {}", path.display());
            }
            Ok(())
        }
        Command::Prune { dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(ringmq::SHM_DIR));
            let removed = ringmq::prune_rings(&dir)?;
            if json {
                print_json(&json!({ "removed": removed }));
            } else {
                for path in &removed {
                    println!("removed {}", path.display());
                }
                println!("{} removed", removed.len());
            }
            Ok(())
        }
        Command::Produce {
            ring,
            count,
            size,
            rate,
            verifiable,
            batch,
            wait,
        } => produce(
            &ring_path(&ring)?,
            Generate {
                count,
                size,
                rate,
                verifiable,
                batch,
            },
            wait,
            json,
        ),
        Command::Consume {
            ring,
            name,
            group,
            after,
            from,
            count,
            timeout,
            print,
            verify,
            durable,
            record,
            until,
            hold_ms,
            batch,
            wait,
        } => {
            let options = ConsumeOptions {
                name,
                group,
                after,
                from: parse_start(&from)?,
                count,
                timeout: timeout.map(Duration::from_secs_f64),
                print,
                verify,
                durable,
                record,
                until,
                hold: Duration::from_millis(hold_ms),
                batch,
                wait,
            };
            consume(&ring_path(&ring)?, &options, json)
        }
        Command::Demo {
            messages,
            subscribers,
            size,
            rate,
        } => demo(messages, subscribers, size, rate, json),
    }
}

fn parse_start(from: &str) -> Result<Start, Failure> {
    match from {
        "earliest" => Ok(Start::Earliest),
        "latest" => Ok(Start::Latest),
        s => s.parse().map(Start::Sequence).map_err(|_| {
            Failure(
                format!("--from {s:?}: expected earliest, latest or a sequence"),
                2,
            )
        }),
    }
}

// ---- stat and list ------------------------------------------------------------------------

fn stat(path: &Path, json: bool) -> Result<(), Failure> {
    let ring = Ring::open(path)?;
    let reaped = ring.reap_dead();
    let cursor = ring.cursor();
    let consumers = ring.consumers();
    let kind = |k: ConsumerKind| match k {
        ConsumerKind::Subscriber => "subscriber",
        ConsumerKind::Group => "group",
        ConsumerKind::Worker => "worker",
    };
    let mode = match ring.producer_mode() {
        ProducerMode::Single => "single",
        ProducerMode::Multi => "multi",
    };
    if json {
        let list: Vec<Value> = consumers
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "kind": kind(c.kind),
                    "group": c.group,
                    "sequence": c.sequence,
                    "lag": c.sequence.map(|s| cursor.saturating_sub(s)),
                    "after": c.after,
                    "durable": c.durable,
                    "alive": c.alive,
                })
            })
            .collect();
        print_json(&json!({
            "path": path,
            "capacity": ring.capacity(),
            "slot_size": ring.slot_size(),
            "fixed_size": ring.fixed_size(),
            "producer_mode": mode,
            "cursor": cursor,
            "skipped": ring.skipped_count(),
            "redelivered": ring.redelivered_count(),
            "reaped": reaped,
            "consumers": list,
        }));
        return Ok(());
    }
    println!("ring        {}", path.display());
    let messages = match ring.fixed_size() {
        Some(_) => "fixed-size messages (no slot headers)".to_owned(),
        None => format!("messages up to {} bytes", ring.max_message_len()),
    };
    println!(
        "parameters  {} slots of {} bytes, {messages}, {mode} producer",
        ring.capacity(),
        ring.slot_size()
    );
    println!("cursor      {cursor}");
    println!(
        "skipped     {}   redelivered {}   cleaned up now {reaped}",
        ring.skipped_count(),
        ring.redelivered_count()
    );
    let columns = ["consumer", "kind", "group", "sequence", "lag", "state", "after"];
    println!(
        "{:<24} {:<10} {:<16} {:>14} {:>10} {:<6} {}",
        columns[0], columns[1], columns[2], columns[3], columns[4], columns[5], columns[6]
    );
    for c in &consumers {
        println!(
            "{:<24} {:<10} {:<16} {:>14} {:>10} {:<6} {}",
            c.name,
            format!("{}{}", kind(c.kind), if c.durable { "*" } else { "" }),
            c.group.as_deref().unwrap_or("-"),
            c.sequence.map_or("-".into(), |s| s.to_string()),
            c.sequence
                .map_or("-".into(), |s| cursor.saturating_sub(s).to_string()),
            if c.alive { "alive" } else { "dead" },
            c.after.join(",")
        );
    }
    Ok(())
}

fn list(dir: &Path, json: bool) -> Result<(), Failure> {
    let files = match ringmq::list_rings(dir) {
        Err(Error::NotFound { .. }) => Vec::new(),
        other => other?,
    };
    let kind = |k: RingFileKind| match k {
        RingFileKind::Ring => "ring",
        RingFileKind::Unfinished => "unfinished",
        RingFileKind::Foreign => "foreign",
    };
    if json {
        let list: Vec<Value> = files
            .iter()
            .map(|f| json!({ "path": f.path, "kind": kind(f.kind), "in_use": f.in_use }))
            .collect();
        print_json(&json!({ "dir": dir, "rings": list }));
    } else {
        for f in &files {
            let state = if f.in_use { "in use" } else { "unused" };
            println!("{:<11} {:<7} {}", kind(f.kind), state, f.path.display());
        }
    }
    Ok(())
}

// ---- verifiable payloads ------------------------------------------------------------------

/// Layout of a verifiable message (little-endian): magic u32, producer id u32, counter u64,
/// send time (CLOCK_MONOTONIC ns) u64, checksum u64 over everything else, then filler bytes
/// derived from the counter.
const VERIFY_MAGIC: u32 = u32::from_le_bytes(*b"RMQv");
const VERIFY_MIN: usize = 32;

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, exclusively borrowed timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A multiply-rotate hash of the message, 8 bytes at a time, the checksum field left out.
fn checksum(bytes: &[u8]) -> u64 {
    let mix = |hash: u64, word: u64| (hash ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
    let mut hash = mix(0, bytes.len() as u64);
    let mut chunks = bytes.chunks_exact(8);
    for (i, chunk) in chunks.by_ref().enumerate() {
        if i != 3 {
            hash = mix(hash, u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
    }
    for &b in chunks.remainder() {
        hash = mix(hash, b as u64);
    }
    hash
}

/// Writes a verifiable message stamped with `now` (the caller reads the clock once per
/// batch: a batch is published at once).
fn write_verifiable(buf: &mut [u8], id: u32, counter: u64, now: u64) {
    buf[0..4].copy_from_slice(&VERIFY_MAGIC.to_le_bytes());
    buf[4..8].copy_from_slice(&id.to_le_bytes());
    buf[8..16].copy_from_slice(&counter.to_le_bytes());
    for (i, b) in buf[VERIFY_MIN..].iter_mut().enumerate() {
        *b = counter.wrapping_add(i as u64) as u8;
    }
    buf[16..24].copy_from_slice(&now.to_le_bytes());
    let sum = checksum(buf);
    buf[24..32].copy_from_slice(&sum.to_le_bytes());
}

/// (producer id, counter, send time), or `None` if the message is corrupt.
fn read_verifiable(buf: &[u8]) -> Option<(u32, u64, u64)> {
    if buf.len() < VERIFY_MIN {
        return None;
    }
    let word = |at: usize| u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"));
    let magic = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes"));
    let counter = word(8);
    let filler_ok = buf[VERIFY_MIN..]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == counter.wrapping_add(i as u64) as u8);
    (magic == VERIFY_MAGIC && word(24) == checksum(buf) && filler_ok).then(|| {
        let id = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
        (id, counter, word(16))
    })
}

// ---- produce ------------------------------------------------------------------------------

/// What `produce` publishes.
struct Generate {
    count: Option<u64>,
    size: Option<usize>,
    rate: Option<f64>,
    verifiable: Option<u32>,
    batch: usize,
}

fn produce(path: &Path, g: Generate, wait: Wait, json: bool) -> Result<(), Failure> {
    let Generate {
        count,
        size,
        rate,
        verifiable,
        batch,
    } = g;
    let ring = Ring::open(path)?;
    let mut producer = ring.producer_with(wait.strategy())?;
    let max = ring.max_message_len();
    let size = size.unwrap_or(if verifiable.is_some() { VERIFY_MIN } else { 8 });
    if size > max {
        return fail(format!("--size {size} exceeds the ring's {max}-byte payload"));
    }
    if verifiable.is_some() && size < VERIFY_MIN {
        return fail(format!("--verifiable needs --size of at least {VERIFY_MIN}"));
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
        producer.publish(bytes).map(drop).map_err(|e| match e {
            PublishError::TooLarge { len, max } => {
                Failure(format!("a {len}-byte message exceeds the {max}-byte payload"), 1)
            }
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
                Some(id) => write_verifiable(slot, id, i, now),
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

// ---- consume ------------------------------------------------------------------------------

struct ConsumeOptions {
    name: String,
    group: Option<String>,
    after: Vec<String>,
    from: Start,
    count: Option<u64>,
    timeout: Option<Duration>,
    print: bool,
    verify: bool,
    durable: bool,
    record: Option<PathBuf>,
    until: Option<String>,
    hold: Duration,
    batch: usize,
    wait: Wait,
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
        let Some((id, counter, sent)) = read_verifiable(bytes) else {
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

fn consume(path: &Path, o: &ConsumeOptions, json: bool) -> Result<(), Failure> {
    let ring = Ring::open(path)?;
    let builder = match &o.group {
        Some(group) => ring.worker(group, &o.name),
        None => ring.subscriber(&o.name),
    };
    let mut builder = builder
        .start(o.from)
        .wait_strategy(o.wait.strategy())
        .durable(o.durable);
    if !o.after.is_empty() {
        builder = builder.after(&o.after);
    }
    let mut consumer = builder.attach()?;
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
    'receiving: while o.count.is_none_or(|c| taken < c) {
        let max = o.count.map_or(batch as u64, |c| (c - taken).min(batch as u64)) as usize;
        let polled = match o.timeout {
            Some(t) => consumer.poll_timeout(max, t),
            None => consumer.poll(max),
        };
        let polled = match polled {
            Ok(b) => b,
            Err(RecvError::Timeout) => {
                stopped_by_timeout = true;
                break;
            }
            Err(e) => return fail(e.to_string()),
        };
        // One clock read per batch: every message of it arrived by now.
        let now = monotonic_ns();
        for message in &polled {
            taken += 1;
            if handle(&message, message.sequence(), message.redelivered(), now)? {
                break 'receiving;
            }
        }
    }
    out.flush()?;
    if let Some(r) = &mut record {
        r.flush()?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let skipped = consumer.skipped();
    drop(consumer);
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

// ---- demo ---------------------------------------------------------------------------------

/// Removes the demo's ring and kills its children, also on failure.
struct DemoGuard {
    path: PathBuf,
    children: Vec<Child>,
}

impl Drop for DemoGuard {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Runs this executable with the whitespace-separated arguments of `args` (paths in
/// /dev/shm/ringmq have no spaces).
fn spawn_self(args: &str) -> Result<Child, Failure> {
    let exe = std::env::current_exe()?;
    Ok(Process::new(exe)
        .args(args.split_whitespace())
        .stdout(Stdio::piped())
        .spawn()?)
}

fn collect_json(child: Child) -> Result<Value, Failure> {
    let output = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let value: Value = serde_json::from_str(text.trim()).map_err(|_| {
        Failure(
            format!("a demo process printed no summary (exit {})", output.status),
            1,
        )
    })?;
    if !output.status.success() {
        return fail(format!("a demo process failed ({}): {value}", output.status));
    }
    Ok(value)
}

/// One demo phase on a new ring: subscribers attach, one producer publishes `messages`, all
/// report.
fn demo_phase(
    subscribers: usize,
    messages: u64,
    size: usize,
    rate: Option<f64>,
    tag: &str,
) -> Result<(PathBuf, Value, Vec<Value>), Failure> {
    let path = ringmq::shm_path(&format!("demo-{}-{tag}", std::process::id()))?;
    let ring = Ring::builder()
        .capacity(DEMO_CAPACITY)
        .slot_size(demo_slot_size(size))
        .create(&path)?;
    let mut guard = DemoGuard {
        path: path.clone(),
        children: Vec::new(),
    };
    // Two cores: one spinning subscriber beside the producer; more of them must yield.
    let wait = if subscribers == 1 { "spin" } else { "yield" };
    // Throughput in batches (one publish and one release per 64 messages); latency one by
    // one.
    let batch = if rate.is_some() { 1 } else { 64 };
    let shown = path.display().to_string();
    for i in 0..subscribers {
        let args = format!(
            "consume {shown} --name {tag}-{i} --from earliest --count {messages} --verify --json \
             --timeout 30 --wait {wait} --batch {batch}"
        );
        guard.children.push(spawn_self(&args)?);
    }
    // Start producing only once every subscriber gates the ring (nothing is lost then).
    let deadline = Instant::now() + Duration::from_secs(10);
    while ring
        .consumers()
        .iter()
        .filter(|c| c.name.starts_with(tag))
        .count()
        < subscribers
    {
        if Instant::now() > deadline {
            return fail("the demo's subscribers did not attach within 10 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut args = format!(
        "produce {shown} --count {messages} --verifiable 1 --size {size} --json --wait {wait} --batch {batch}"
    );
    if let Some(rate) = rate {
        args += &format!(" --rate {rate}");
    }
    let producer = spawn_self(&args)?;
    let produced = collect_json(producer)?;
    let mut results = Vec::new();
    for child in std::mem::take(&mut guard.children) {
        results.push(collect_json(child)?);
    }
    Ok((path, produced, results))
}

const DEMO_CAPACITY: u64 = 1 << 16;

fn demo_slot_size(size: usize) -> usize {
    (size + ringmq::SLOT_HEADER).next_multiple_of(8)
}

fn demo(messages: u64, subscribers: usize, size: usize, rate: f64, json: bool) -> Result<(), Failure> {
    if size < VERIFY_MIN {
        return fail(format!("--size must be at least {VERIFY_MIN}"));
    }
    if !(1..=8).contains(&subscribers) {
        return fail("--subscribers must be between 1 and 8");
    }
    if !(rate > 0.0 && rate.is_finite()) {
        return fail("--rate must be a positive number");
    }
    let slot_size = demo_slot_size(size);
    let (path, throughput, t_results) = demo_phase(subscribers, messages, size, None, "tput")?;
    let latency_messages = ((rate * 2.0) as u64).clamp(1000, messages.max(1000));
    let (_, _, l_results) = demo_phase(subscribers, latency_messages, size, Some(rate), "lat")?;
    let verified = t_results
        .iter()
        .chain(&l_results)
        .all(|r| r["out_of_order"] == 0 && r["gaps"] == 0 && r["duplicates"] == 0 && r["corrupt"] == 0);
    if json {
        print_json(&json!({
            "ring": path, "messages": messages, "size": size, "subscribers": subscribers,
            "producer": throughput, "throughput": t_results, "latency_rate": rate, "latency": l_results,
            "verified": verified,
        }));
    } else {
        println!(
            "ringmq demo: 1 producer process, {subscribers} subscriber process(es), rings like {} ({DEMO_CAPACITY} slots of {slot_size} bytes)",
            path.display()
        );
        println!(
            "throughput: {messages} messages of {size} bytes published in {:.3} s: {:.1} M msgs/s",
            throughput["elapsed_s"].as_f64().unwrap_or(0.0),
            throughput["rate"].as_f64().unwrap_or(0.0) / 1e6
        );
        for r in &t_results {
            println!(
                "  {}: received {} in {:.3} s, every message verified: {}",
                r["name"].as_str().unwrap_or("?"),
                r["received"],
                r["elapsed_s"].as_f64().unwrap_or(0.0),
                r["corrupt"] == 0 && r["gaps"] == 0 && r["duplicates"] == 0 && r["out_of_order"] == 0
            );
        }
        println!("latency at {rate:.0} msgs/s, one way, producer process to subscriber process (ns):");
        println!(
            "  {:<10} {:>8} {:>8} {:>8} {:>8} {:>10}",
            "", "p50", "p90", "p99", "p99.9", "max"
        );
        for r in &l_results {
            let l = |q: &str| r["latency_ns"][q].as_u64().unwrap_or(0);
            println!(
                "  {:<10} {:>8} {:>8} {:>8} {:>8} {:>10}",
                r["name"].as_str().unwrap_or("?"),
                l("p50"),
                l("p90"),
                l("p99"),
                l("p999"),
                l("max")
            );
        }
    }
    if !verified {
        return Err(Failure(
            "the demo found lost, duplicated or corrupt messages".into(),
            3,
        ));
    }
    Ok(())
}
