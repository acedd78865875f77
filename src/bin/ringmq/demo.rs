//! `demo`: a producer process and subscriber processes over a ring in /dev/shm, every message
//! verified; throughput, then one-way latency at a fixed rate.

use super::verify;
use super::{fail, print_json, Failure};
use ringmq::{Ring, TopicDir};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

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

/// Runs this executable with the whitespace-separated arguments of `args` (the paths of
/// topics have no spaces).
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
    let name = format!("demo-{}-{tag}", std::process::id());
    let builder = Ring::builder()
        .capacity(DEMO_CAPACITY)
        .slot_size(demo_slot_size(size));
    let ring = TopicDir::shm().create(&name, builder)?;
    let path = TopicDir::shm().path(&name)?;
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
    (size + ringmq::limits::SLOT_HEADER).next_multiple_of(8)
}

pub(super) fn run(
    messages: u64,
    subscribers: usize,
    size: usize,
    rate: f64,
    json: bool,
) -> Result<(), Failure> {
    if size < verify::MIN_LEN {
        return fail(format!("--size must be at least {}", verify::MIN_LEN));
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
