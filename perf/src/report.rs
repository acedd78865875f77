//! The report: a Markdown table per scenario, the same as JSON, and `.hgrm` percentile files.

use crate::calibrate::Placement;
use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What a case measured.
pub enum Value {
    /// Messages (or u64s) per second.
    Rate(f64),
    /// Round trips, in nanoseconds.
    Latency(Histogram<u64>),
    /// Wake-up latencies in nanoseconds, and the idle consumer's CPU share (0 to 1).
    Blocking(Histogram<u64>, f64),
}

/// One case of one round.
pub struct Sample {
    pub scenario: String,
    pub system: String,
    pub round: usize,
    pub probe_before: u64,
    pub probe_after: u64,
    pub value: Value,
}

impl Sample {
    pub fn new(scenario: &str, system: &str, round: usize, before: u64, after: u64, value: Value) -> Self {
        Sample {
            scenario: scenario.to_owned(),
            system: system.to_owned(),
            round,
            probe_before: before,
            probe_after: after,
            value,
        }
    }

    /// near, far, or mixed when the placement changed during the case: by the run's split,
    /// or by a jump between the two probes as large as one between placements (a host can
    /// move a pair between two placements of one cluster, such as two threads of one core
    /// and two cores of one cache, which move data at different rates).
    pub fn placement(&self, split: &Placement) -> &'static str {
        if Placement::apart(self.probe_before, self.probe_after) {
            return "mixed";
        }
        match (split.label(self.probe_before), split.label(self.probe_after)) {
            ("near", "near") => "near",
            ("far", "far") => "far",
            _ => "mixed",
        }
    }

    /// The figure compared across systems: a rate, or the median round trip.
    pub fn figure(&self) -> f64 {
        match &self.value {
            Value::Rate(r) => *r,
            Value::Latency(h) | Value::Blocking(h, _) => h.value_at_quantile(0.5) as f64,
        }
    }

    pub fn line(&self) -> String {
        let figure = match &self.value {
            Value::Rate(r) => format!("{} M/s", millions(*r)),
            Value::Latency(h) => format!(
                "p50 {} ns p99 {} ns max {} ns",
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.max()
            ),
            Value::Blocking(h, cpu) => format!(
                "wake p50 {} ns p99 {} ns max {} ns, idle CPU {:.2}%",
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.max(),
                cpu * 100.0
            ),
        };
        // The placement is labelled in the report, once every probe of the run is known.
        format!(
            "[round {}] {:<9} {:<22} (probe {}/{} ns) {}",
            self.round, self.scenario, self.system, self.probe_before, self.probe_after, figure
        )
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Writes report.md, report.json, one .hgrm per latency case and one PNG percentile plot per
/// latency scenario and placement; returns the report's path.
pub fn write(dir: &Path, samples: &[Sample], quick: bool) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let machine = crate::pin::machine();
    let probes: Vec<u64> = samples
        .iter()
        .flat_map(|s| [s.probe_before, s.probe_after])
        .collect();
    let split = Placement::of(&probes);
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# ringmq perf report{}\n",
        if quick { " (--quick)" } else { "" }
    );
    let _ = writeln!(
        md,
        "Machine: {} ({} cores), kernel {}, {}. Threads pinned to two cores, busy-spin waits. \
         Placement: the bare cache-line round trip is probed before and after every case; {}; \
         a case whose two probes differ is mixed. Figures are medians over rounds of one \
         placement, with the range.\n",
        machine["cpu"].as_str().unwrap_or("?"),
        machine["cores"],
        machine["kernel"].as_str().unwrap_or("?"),
        machine["rustc"].as_str().unwrap_or("?"),
        split.describe()
    );
    let mut json_rows = Vec::new();
    let mut plots: Vec<String> = Vec::new();
    let scenarios: Vec<&str> = dedup(samples.iter().map(|s| s.scenario.as_str()));
    for scenario in scenarios {
        let of_scenario: Vec<&Sample> = samples.iter().filter(|s| s.scenario == scenario).collect();
        let latency = matches!(of_scenario[0].value, Value::Latency(_));
        let blocking = matches!(of_scenario[0].value, Value::Blocking(..));
        let _ = writeln!(md, "## {scenario}\n");
        if blocking {
            let _ = writeln!(
                md,
                "| system | placement | rounds | min | wake-up p50 ns (median, range) | p90 | p99 | p99.9 | p99.99 | max | idle CPU % (median) | p50 / bare futex |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
            );
        } else if latency && scenario == "journal-sync" {
            let _ = writeln!(
                md,
                "Files on {}.\n\n| system | placement | rounds | min | p50 ns (median, range) | p90 | p99 | p99.9 | p99.99 | max | p50 / bare fdatasync | - |\n|---|---|---|---|---|---|---|---|---|---|---|---|",
                crate::journal::file_system()
            );
        } else if latency {
            let _ = writeln!(
                md,
                "| system | placement | rounds | min | p50 ns (median, range) | p90 | p99 | p99.9 | p99.99 | max | p50 / bare cache line | p50 / bare ring |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
            );
        } else {
            let _ = writeln!(
                md,
                "| system | placement | rounds | M msgs/s (median) | range | / ringmq (batch 64 or only) | / streaming limit |\n|---|---|---|---|---|---|---|"
            );
        }
        if scenario == "journal-curve" {
            // The disk, not the cores' placement, sets these figures: one curve over every
            // round, each load's rounds merged, in the order of the load.
            let mut points: Vec<(f64, Histogram<u64>)> = Vec::new();
            for system in dedup(of_scenario.iter().map(|s| s.system.as_str())) {
                let Some(load) = crate::journal::offered(system) else {
                    continue;
                };
                let mut merged =
                    Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
                for s in of_scenario.iter().filter(|s| s.system == system) {
                    if let Value::Latency(h) = &s.value {
                        let _ = merged.add(h);
                    }
                }
                points.push((load, merged));
            }
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let png = format!("{scenario}-load.png");
            let title = "group commit: durable confirm latency against offered load, every round";
            match crate::plot::curve(&dir.join(&png), title, &points) {
                Ok(true) => plots.push(png),
                Ok(false) => {}
                Err(e) => eprintln!("ringmq-perf: plot {png}: {e}"),
            }
        }
        let mut summaries: Vec<String> = Vec::new();
        for place in ["near", "far", "mixed"] {
            let here: Vec<&&Sample> = of_scenario
                .iter()
                .filter(|s| s.placement(&split) == place)
                .collect();
            if here.is_empty() {
                continue;
            }
            let figure_of = |system: &str, from: &[&Sample]| {
                median(
                    from.iter()
                        .filter(|s| s.system == system && s.placement(&split) == place)
                        .map(|s| s.figure())
                        .collect(),
                )
            };
            // 64-byte messages against the 64-byte limit, cross-process cases against the limit
            // through /dev/shm, everything else against the u64 one.
            let limit_of = |system: &str| {
                if scenario == "spsc64" || system.ends_with("(64 B)") {
                    "streaming limit (64 B)"
                } else if scenario == "ipc" {
                    crate::ipc::STREAMING_LIMIT
                } else if scenario == "request-pool" {
                    crate::pool::limit_of(system)
                } else if scenario == "journal" {
                    if system.contains("1 MiB") && (system.contains("journal") || system.contains("write")) {
                        crate::journal::LARGE_WRITE_LIMIT
                    } else if system.contains("1 MiB") {
                        crate::journal::LARGE_LIMIT
                    } else if system.contains("replay") || system == crate::journal::READ_LIMIT {
                        crate::journal::READ_LIMIT
                    } else if system.contains("(recycled)") || system == crate::journal::REUSED_WRITE_LIMIT {
                        crate::journal::REUSED_WRITE_LIMIT
                    } else if system == crate::journal::SHM_RING {
                        // Not bound by the disk; no limit of this scenario's bounds it.
                        ""
                    } else {
                        crate::journal::WRITE_LIMIT
                    }
                } else {
                    "streaming limit"
                }
            };
            let streaming = |system: &str| figure_of(limit_of(system), &samples.iter().collect::<Vec<_>>());
            // The limit's fastest round in this placement.
            let streaming_max = |system: &str| {
                samples
                    .iter()
                    .filter(|s| s.system == limit_of(system) && s.placement(&split) == place)
                    .map(|s| s.figure())
                    .fold(f64::NAN, f64::max)
            };
            // In process, or through /dev/shm between two processes.
            let bare = [
                figure_of("bare cache line", &of_scenario),
                figure_of("bare cache line (/dev/shm)", &of_scenario),
                figure_of(crate::journal::BARE_FDATASYNC, &of_scenario),
            ]
            .into_iter()
            .find(|f| f.is_finite())
            .unwrap_or(f64::NAN);
            let futex = figure_of("bare futex", &of_scenario);
            let bare_ring = [
                figure_of(crate::calibrate::BARE_RING, &of_scenario),
                figure_of(crate::ipc::BARE_RING, &of_scenario),
            ]
            .into_iter()
            .find(|f| f.is_finite())
            .unwrap_or(f64::NAN);
            let ringmq = [
                figure_of("ringmq (batch 64)", &of_scenario),
                figure_of(crate::journal::SHM_RING, &of_scenario),
                figure_of("ringmq", &of_scenario),
            ]
            .into_iter()
            .find(|f| f.is_finite())
            .unwrap_or(f64::NAN);
            let ratio = |x: f64| {
                if x.is_finite() {
                    format!("{x:.2}")
                } else {
                    "-".to_owned()
                }
            };
            let mut plotted: Vec<(String, Histogram<u64>)> = Vec::new();
            for system in dedup(here.iter().map(|s| s.system.as_str())) {
                let runs: Vec<&&&Sample> = here.iter().filter(|s| s.system == system).collect();
                let figures: Vec<f64> = runs.iter().map(|s| s.figure()).collect();
                let (lo, hi) = figures
                    .iter()
                    .fold((f64::MAX, f64::MIN), |(l, h), &f| (l.min(f), h.max(f)));
                let mid = median(figures.clone());
                if blocking {
                    let mut merged =
                        Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("valid bounds");
                    let mut cpus = Vec::new();
                    for s in &runs {
                        if let Value::Blocking(h, cpu) = &s.value {
                            let _ = merged.add(h);
                            cpus.push(cpu * 100.0);
                        }
                    }
                    let cpu = median(cpus);
                    let q = |x| merged.value_at_quantile(x);
                    let _ = writeln!(
                        md,
                        "| {system} | {place} | {} | {} | {mid:.0} ({lo:.0}-{hi:.0}) | {} | {} | {} | {} | {} | {cpu:.2} | {} |",
                        runs.len(),
                        merged.min(),
                        q(0.9),
                        q(0.99),
                        q(0.999),
                        q(0.9999),
                        merged.max(),
                        ratio(mid / futex)
                    );
                    let file = dir.join(format!("{scenario}-{}-{place}.hgrm", slug(system)));
                    std::fs::write(&file, hgrm(&merged))?;
                    plotted.push((system.to_owned(), merged.clone()));
                    json_rows.push(serde_json::json!({
                        "scenario": scenario, "system": system, "placement": place, "rounds": runs.len(),
                        "wake_min_ns": merged.min(), "wake_p50_ns": mid, "wake_p50_range_ns": [lo, hi],
                        "wake_p90_ns": q(0.9), "wake_p99_ns": q(0.99), "wake_p99_9_ns": q(0.999),
                        "wake_p99_99_ns": q(0.9999), "wake_max_ns": merged.max(), "idle_cpu_percent": cpu,
                        "ratio_to_bare_futex": mid / futex,
                        "hgrm": file.file_name().map(|f| f.to_string_lossy().into_owned()),
                    }));
                } else if latency {
                    let mut merged =
                        Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("valid bounds");
                    for s in &runs {
                        if let Value::Latency(h) = &s.value {
                            let _ = merged.add(h);
                        }
                    }
                    let q = |x| merged.value_at_quantile(x);
                    let _ = writeln!(
                        md,
                        "| {system} | {place} | {} | {} | {mid:.0} ({lo:.0}-{hi:.0}) | {} | {} | {} | {} | {} | {} | {} |",
                        runs.len(),
                        merged.min(),
                        q(0.9),
                        q(0.99),
                        q(0.999),
                        q(0.9999),
                        merged.max(),
                        ratio(mid / bare),
                        ratio(mid / bare_ring)
                    );
                    let file = dir.join(format!("{scenario}-{}-{place}.hgrm", slug(system)));
                    std::fs::write(&file, hgrm(&merged))?;
                    plotted.push((system.to_owned(), merged.clone()));
                    json_rows.push(serde_json::json!({
                        "scenario": scenario, "system": system, "placement": place, "rounds": runs.len(),
                        "min_ns": merged.min(), "p50_ns": mid, "p50_range_ns": [lo, hi], "p90_ns": q(0.9), "p99_ns": q(0.99),
                        "p99_9_ns": q(0.999), "p99_99_ns": q(0.9999), "max_ns": merged.max(),
                        "ratio_to_bare_cache_line": mid / bare, "ratio_to_bare_ring": mid / bare_ring, "hgrm": file.file_name().map(|f| f.to_string_lossy().into_owned()),
                    }));
                } else {
                    let to_limit = mid / streaming(system);
                    let is_limit = system.starts_with("streaming limit");
                    // A queue whose every round beat every round of the limit (its slowest
                    // above the limit's fastest: beyond the run-to-run spread of both) means
                    // the limit measures the wrong thing. A queue that runs the limit's own
                    // protocol ties it, and a tie's median falls on either side.
                    let exceeded = !is_limit && lo > streaming_max(system);
                    if exceeded {
                        let warning = format!(
                            "- **limit exceeded**: {system} ({place}) ran at {} of the streaming limit, its slowest round above the limit's fastest: the limit does not bound it, a harness bug",
                            ratio(to_limit)
                        );
                        eprintln!("ringmq-perf: {warning}");
                        summaries.push(warning);
                    }
                    let _ = writeln!(
                        md,
                        "| {system} | {place} | {} | {} | {}-{} | {} | {}{} |",
                        runs.len(),
                        millions(mid),
                        millions(lo),
                        millions(hi),
                        ratio(mid / ringmq),
                        ratio(to_limit),
                        if exceeded { " (exceeded)" } else { "" }
                    );
                    json_rows.push(serde_json::json!({
                        "scenario": scenario, "system": system, "placement": place, "rounds": runs.len(),
                        "msgs_per_s": mid, "range": [lo, hi], "ratio_to_ringmq_batch": mid / ringmq,
                        "ratio_to_streaming_limit": to_limit, "limit_exceeded": exceeded,
                    }));
                }
            }
            // ringmq against the best peer and the machine's limit, in this placement.
            let systems = dedup(here.iter().map(|s| s.system.as_str()));
            let is_ringmq = |s: &str| s.starts_with("ringmq");
            let is_limit = |s: &str| s.starts_with("bare ") || s.starts_with("streaming limit");
            let peers: Vec<f64> = systems
                .iter()
                .filter(|s| !is_ringmq(s) && !is_limit(s))
                .map(|s| figure_of(s, &of_scenario))
                .filter(|f| f.is_finite())
                .collect();
            let ours = systems
                .iter()
                .filter(|s| is_ringmq(s))
                .map(|s| figure_of(s, &of_scenario))
                .filter(|f| f.is_finite())
                .fold(
                    f64::NAN,
                    |a, b| if latency || blocking { a.min(b) } else { a.max(b) },
                );
            let best = if latency || blocking {
                peers.iter().copied().fold(f64::NAN, f64::min)
            } else {
                peers.iter().copied().fold(f64::NAN, f64::max)
            };
            let limit = if latency {
                bare
            } else if blocking {
                futex
            } else {
                streaming("")
            };
            // The journal's and the pool's cases each have their own limit (writes, reads; one
            // or two threads): the table's last column, not one summary. The pool's summary
            // is how it scales.
            if scenario == "request-pool" {
                let of = |system: &str| figure_of(system, &of_scenario);
                let pool = of("ringmq pool, 2 responders") / of("ringmq pool, 1 responder");
                let bare = of("bare handler, 2 threads") / of("bare handler, 1 thread");
                if pool.is_finite() {
                    summaries.push(format!(
                        "- {place}: two responders / one = {}, against two bare threads / one = {}",
                        ratio(pool),
                        ratio(bare)
                    ));
                }
            }
            if ours.is_finite()
                && (best.is_finite() || limit.is_finite())
                && scenario != "journal"
                && scenario != "request-pool"
            {
                let better = if latency || blocking { "lower" } else { "higher" };
                let ring = if bare_ring.is_finite() {
                    format!(", / the bare ring = {}", ratio(ours / bare_ring))
                } else {
                    String::new()
                };
                summaries.push(format!(
                    "- {place}: ringmq's best / best peer's = {}, ringmq's best / the machine's limit = {}{ring} ({better} is better)",
                    ratio(ours / best),
                    ratio(ours / limit)
                ));
            }
            if !plotted.is_empty() {
                let png = format!("{scenario}-{place}.png");
                let title = format!("{scenario} ({place} placement): percentile distribution");
                match crate::plot::percentiles(&dir.join(&png), &title, &plotted) {
                    Ok(true) => plots.push(png),
                    Ok(false) => {}
                    Err(e) => eprintln!("ringmq-perf: plot {png}: {e}"),
                }
            }
        }
        md.push('\n');
        for line in &summaries {
            let _ = writeln!(md, "{line}");
        }
        if !summaries.is_empty() {
            md.push('\n');
        }
    }
    let _ = writeln!(
        md,
        "Cross-process cases (`ipc`, `ipc-pingpong`): the consumer or echoer is a child process \
         pinned to the other core; peers as configured in `perf/src/ipc/` (ringfire lossless, \
         disruptor-mp with one discovered consumer, iceoryx2 pub/sub with \
         `RetryUntilDelivered` and `send_copy`, ZeroMQ PUSH/PULL and PAIR over `ipc://`). \
         Topologies (`1p3c`, `3p1c`, `pipeline`, `diamond`, `group2`) run 4-5 threads on the \
         machine's cores, unpinned, every waiter yielding (the disruptor through a yielding \
         `WaitStrategy` written in the harness); the disruptor crate has no work pools, so \
         `group2` compares with crossbeam-channel's MPMC receivers."
    );
    if !plots.is_empty() {
        let _ = writeln!(md, "\n## Plots\n");
        for png in &plots {
            let _ = writeln!(md, "![{png}]({png})\n");
        }
    }
    let report = dir.join("report.md");
    std::fs::write(&report, md)?;
    let json = serde_json::json!({ "machine": machine, "quick": quick, "results": json_rows });
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    )?;
    Ok(report)
}

fn dedup<'a>(it: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = Vec::new();
    for s in it {
        if !seen.contains(&s) {
            seen.push(s);
        }
    }
    seen
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// HdrHistogram's percentile-distribution text format, in microseconds.
fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = String::from("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
    for v in h.iter_quantiles(5) {
        let p = v.quantile_iterated_to();
        let inverse = if p < 1.0 { 1.0 / (1.0 - p) } else { f64::INFINITY };
        let _ = writeln!(
            out,
            "{:12.3} {:14.12} {:10} {:14.2}",
            v.value_iterated_to() as f64 / 1000.0,
            p,
            v.count_since_last_iteration(),
            inverse
        );
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]\n#[Max     = {:12.3}, Total count    = {:12}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0,
        h.max() as f64 / 1000.0,
        h.len()
    );
    out
}

/// A rate in millions per second, with three significant digits below 1 M/s (a case of
/// 1 MiB messages runs at thousands per second).
fn millions(rate: f64) -> String {
    let m = rate / 1e6;
    if !(m.is_finite() && m > 0.0) || m >= 1.0 {
        return format!("{m:.1}");
    }
    let decimals = (2.0 - m.log10().floor()) as usize;
    format!("{m:.decimals$}")
}
