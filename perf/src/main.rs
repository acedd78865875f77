//! ringmq-perf: pinned, histogrammed, side-by-side runs of ringmq, its peers and the
//! machine's own limits.
//!
//! ```text
//! cargo run --release -p ringmq-perf -- [SCENARIO...] [--quick] [--out DIR]
//!     [--only NAME[,NAME...]] [--rounds N]
//! ```
//!
//! Scenarios: `calibrate` (the streaming limits: u64s, and 64-byte messages for `spsc64`), `spsc`
//! and `spsc64` (one producer, one consumer, 8- and 64-byte messages), `pingpong` (round trips,
//! with the bare cache line and a bare ring of 64 slots as limits), `fixedrate` (one message per
//! microsecond, latency corrected for coordinated omission), `blocking` (wake-up latency of a
//! sleeping consumer and its CPU while idle, with a bare `FUTEX_WAIT`/`FUTEX_WAKE` as the limit),
//! `async-pingpong` (round trips between two tasks of a two-worker tokio runtime, against tokio's
//! mpsc, async-channel, flume and kanal),
//! `1p3c`, `3p1c`, `pipeline`, `diamond` and `group2` (the Disruptor's topologies, oversubscribed
//! on two cores: yielding waits, unpinned), `ipc` and `ipc-pingpong` (1P1C and round trips between
//! two processes through /dev/shm, with the cache line and the bare ring through a shared mapping
//! as limits, against ringfire, disruptor-mp, iceoryx2 and ZeroMQ), `journal` and
//! `journal-sync` (the journal's appends, replays and durable acknowledgements against the page
//! cache's copy limits and a bare `fdatasync`, on files in `RINGMQ_PERF_DIR`), `journal-curve`
//! (durable-acknowledgement latency against offered load, plotted), `request-pool` (requests
//! per second of one and two responders doing a fixed work per request, against as many bare
//! threads doing it). Default: all. Every case runs
//! between two placement probes (the bare cache-line round trip) and is labelled near or far;
//! systems run interleaved (A B C A B C ...) so they are compared inside one run and one placement.
//! Every message is checked by its receiver: a system that loses one fails the run. `--only` keeps
//! the systems whose name contains one of the given words (for an A/B of two systems, or a profile
//! of one); `--rounds` overrides the number of rounds.

mod asynch;
mod blocking;
mod calibrate;
mod fixedrate;
mod ipc;
mod journal;
mod nats_peer;
mod pin;
mod pingpong;
mod plot;
mod pool;
mod redis_peer;
mod report;
mod spsc;
mod topology;

use pin::Cores;
use report::{Sample, Value};
use std::path::PathBuf;
use std::time::Duration;

const SCENARIOS: &[&str] = &[
    "calibrate",
    "spsc",
    "spsc64",
    "pingpong",
    "fixedrate",
    "blocking",
    "async-pingpong",
    "1p3c",
    "3p1c",
    "pipeline",
    "diamond",
    "group2",
    "ipc",
    "ipc-pingpong",
    "journal",
    "journal-sync",
    "journal-curve",
    "request-pool",
];

struct Args {
    scenarios: Vec<String>,
    quick: bool,
    out: PathBuf,
    /// Keep only systems whose name contains one of these (all when empty).
    only: Vec<String>,
    rounds: Option<usize>,
}

const USAGE: &str =
    "usage: ringmq-perf [SCENARIO...] [--quick] [--out DIR] [--only NAME[,NAME...]] [--rounds N]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        scenarios: Vec::new(),
        quick: false,
        out: PathBuf::from("perf/out"),
        only: Vec::new(),
        rounds: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => args.quick = true,
            "--out" => args.out = it.next().ok_or("--out needs a directory")?.into(),
            "--only" => {
                let names = it.next().ok_or("--only needs system names")?;
                args.only
                    .extend(names.split(',').filter(|n| !n.is_empty()).map(str::to_owned));
            }
            "--rounds" => {
                let n = it.next().ok_or("--rounds needs a number")?;
                match n.parse::<usize>() {
                    Ok(n) if n > 0 => args.rounds = Some(n),
                    _ => return Err(format!("--rounds needs a positive number, not {n:?}")),
                }
            }
            "-h" | "--help" => return Err(format!("{USAGE}\nscenarios: {}", SCENARIOS.join(", "))),
            s if SCENARIOS.contains(&s) => args.scenarios.push(s.to_owned()),
            other => {
                return Err(format!(
                    "unknown argument {other:?}; scenarios are {}",
                    SCENARIOS.join(", ")
                ))
            }
        }
    }
    if args.scenarios.is_empty() {
        args.scenarios = SCENARIOS.iter().map(|s| s.to_string()).collect();
    }
    Ok(args)
}

/// Runs `f` on a fresh thread, so the main thread is never pinned and every case starts from
/// the process's whole affinity mask.
fn isolated<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match std::thread::spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn main() {
    let raw: Vec<String> = std::env::args().collect();
    if raw.get(1).map(String::as_str) == Some("--child") {
        ipc::child(&raw[2..]);
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let cores = match Cores::detect() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringmq-perf: {e}");
            std::process::exit(2);
        }
    };
    let (rounds, spsc_n, pings, stream_n, wakes, idle, paced) = if args.quick {
        (
            2,
            2_000_000,
            20_000,
            20_000_000,
            200,
            Duration::from_millis(50),
            100_000,
        )
    } else {
        (
            5,
            20_000_000,
            200_000,
            200_000_000,
            2_000,
            Duration::from_millis(500),
            1_000_000,
        )
    };
    // Journal messages per rate case, and messages made durable one at a time per sync case.
    let (journal_n, syncs) = if args.quick {
        (200_000, 100)
    } else {
        (2_000_000, 1_000)
    };
    // Requests per pool case.
    let pool_n = if args.quick { 20_000 } else { 200_000 };
    let rounds = args.rounds.unwrap_or(rounds);
    let quick = args.quick;
    let mut samples = Vec::new();
    for round in 0..rounds {
        for scenario in &args.scenarios {
            let cases: Vec<&str> = match scenario.as_str() {
                "calibrate" => vec!["streaming limit", "streaming limit (64 B)"],
                "spsc" | "spsc64" => spsc::SYSTEMS.to_vec(),
                "pingpong" => pingpong::SYSTEMS.to_vec(),
                "blocking" => blocking::SYSTEMS.to_vec(),
                "async-pingpong" => asynch::SYSTEMS.to_vec(),
                "fixedrate" => fixedrate::SYSTEMS.to_vec(),
                "ipc" => ipc::THROUGHPUT.to_vec(),
                s if topology::SCENARIOS.iter().any(|(t, _)| *t == s) => topology::SCENARIOS
                    .iter()
                    .find(|(t, _)| *t == s)
                    .map(|(_, systems)| systems.to_vec())
                    .unwrap_or_default(),
                "ipc-pingpong" => ipc::PINGPONG.to_vec(),
                "journal" => journal::RATES.to_vec(),
                "journal-sync" => journal::SYNCS.to_vec(),
                "journal-curve" => journal::CURVE.to_vec(),
                "request-pool" => pool::SYSTEMS.to_vec(),
                _ => unreachable!("checked by parse_args"),
            };
            let wanted = |system: &&str| {
                // The calibration always runs: every other figure is read against it; so do
                // the journal's own limits.
                scenario == "calibrate"
                    || (scenario.starts_with("journal")
                        && (system.starts_with("streaming limit") || system.starts_with("bare ")))
                    || (scenario == "request-pool" && system.starts_with("bare "))
                    || args.only.is_empty()
                    || args.only.iter().any(|w| system.contains(w.as_str()))
            };
            // Peers whose server is not installed are left out (with a word on stderr).
            let runnable = |system: &&str| {
                let (ok, server) = if system.starts_with("redis") {
                    (redis_peer::available(), "redis-server")
                } else if system.starts_with("nats") {
                    (nats_peer::available(), "nats-server")
                } else {
                    (true, "")
                };
                if !ok && round == 0 {
                    eprintln!("ringmq-perf: {system}: {server} not found, left out");
                }
                ok
            };
            for system in cases.into_iter().filter(wanted).filter(runnable) {
                let before = isolated(move || calibrate::probe(cores));
                let scenario_name = scenario.clone();
                let value = isolated(move || match scenario_name.as_str() {
                    "calibrate" if system == "streaming limit" => {
                        Value::Rate(calibrate::best_of_each(&calibrate::STRIDES, |stride| {
                            calibrate::streaming(cores, stream_n, stride)
                        }))
                    }
                    "calibrate" => Value::Rate(calibrate::best_of_each(&calibrate::STRIDES, |stride| {
                        calibrate::streaming_lines(cores, stream_n / 4, stride)
                    })),
                    "spsc" => Value::Rate(spsc::run::<u64>(system, cores, spsc_n)),
                    "spsc64" => Value::Rate(spsc::run::<[u64; 8]>(system, cores, spsc_n / 2)),
                    "blocking" => {
                        let outcome = blocking::run(system, cores, wakes, idle);
                        Value::Blocking(outcome.wake, outcome.idle_cpu)
                    }
                    "fixedrate" => {
                        Value::Latency(fixedrate::run(system, cores, paced, Duration::from_micros(1)))
                    }
                    "ipc" => Value::Rate(ipc::throughput(system, cores, spsc_n)),
                    "1p3c" | "3p1c" | "pipeline" | "diamond" | "group2" => {
                        Value::Rate(topology::run(&scenario_name, system, spsc_n / 4))
                    }
                    "ipc-pingpong" => Value::Latency(ipc::pingpong(system, cores, pings)),
                    "async-pingpong" => Value::Latency(asynch::run(system, pings / 10)),
                    "journal" if system == journal::SHM_RING => {
                        Value::Rate(journal::shm_ring(cores, journal_n))
                    }
                    "journal" => Value::Rate(journal::rate(system, journal_n)),
                    "journal-sync" => Value::Latency(journal::sync_latency(system, syncs)),
                    "journal-curve" => Value::Latency(journal::curve(system, quick)),
                    "request-pool" => Value::Rate(pool::run(system, pool_n)),
                    _ => Value::Latency(pingpong::run(system, cores, pings)),
                });
                let after = isolated(move || calibrate::probe(cores));
                let sample = Sample::new(scenario, system, round, before, after, value);
                eprintln!("{}", sample.line());
                samples.push(sample);
            }
        }
    }
    match report::write(&args.out, &samples, args.quick) {
        Ok(path) => println!("report: {}", path.display()),
        Err(e) => {
            eprintln!("ringmq-perf: cannot write the report: {e}");
            std::process::exit(1);
        }
    }
}
