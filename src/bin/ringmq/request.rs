//! `request`: a requester of a request-reply service: stdin lines, each printed with its reply
//! and round trip, or generated verifiable requests, pipelined, with every reply checked.

use super::verify::{self, monotonic_ns};
use super::{fail, print_json, Failure};
use hdrhistogram::Histogram;
use ringmq::request::Service;
use ringmq::{RequestError, TopicDir, WaitStrategy};
use serde_json::json;
use std::collections::HashMap;
use std::io::BufRead;
use std::time::Duration;

/// What `request` sends.
pub(super) struct Options {
    pub service: String,
    pub topics: TopicDir,
    pub count: Option<u64>,
    pub window: usize,
    pub timeout: Duration,
    pub size: usize,
    pub verify: bool,
    pub wait: WaitStrategy,
}

/// How the requests of a generated run ended.
#[derive(Default)]
struct Tally {
    replied: u64,
    expired: u64,
    mismatched: u64,
    redelivered: u64,
}

/// The longest reply to a line that the reply ring is sized for.
const LINE_REPLY_MAX: usize = 64 * 1024;

pub(super) fn run(o: &Options, json: bool) -> Result<(), Failure> {
    let service = Service::open(&o.topics, &o.service)?;
    if o.window == 0 {
        return fail("--window must be at least 1");
    }
    // The reply ring holds a reply to every request in flight (see
    // `RequesterBuilder::window`): generated requests are echoed, so their replies are as
    // long as they are; lines are sent one at a time, and their replies (what a command
    // printed) may be up to LINE_REPLY_MAX.
    let requester = service.requester();
    let requester = match o.count {
        Some(_) => requester.window_for_replies(o.window, o.size.max(verify::MIN_LEN)),
        None => requester.window_for_replies(1, LINE_REPLY_MAX),
    };
    let mut requester = requester.wait_strategy(o.wait).build()?;
    match o.count {
        None => lines(&mut requester, o.timeout, json),
        Some(count) => generated(&mut requester, o, count, json),
    }
}

/// Each stdin line is one call; prints the reply and the round trip.
fn lines(requester: &mut ringmq::request::Requester, timeout: Duration, json: bool) -> Result<(), Failure> {
    let mut failures = 0u64;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let start = monotonic_ns();
        match requester.call(line.as_bytes(), timeout) {
            Ok(reply) => {
                let micros = (monotonic_ns() - start) as f64 / 1e3;
                let text = String::from_utf8_lossy(reply.payload());
                if json {
                    print_json(&json!({ "request": line, "reply": text, "round_trip_us": micros }));
                } else {
                    println!("{text}\t({micros:.1} µs)");
                }
            }
            Err(e @ (RequestError::Expired { .. } | RequestError::NoResponders)) => {
                failures += 1;
                eprintln!("ringmq: {line:?}: {e}");
            }
            Err(e) => return fail(e.to_string()),
        }
    }
    if failures > 0 {
        return fail(format!("{failures} requests got no reply"));
    }
    Ok(())
}

/// `count` verifiable requests, `window` in flight at a time; with `verify`, each reply must
/// be its request's payload (an echo responder).
fn generated(
    requester: &mut ringmq::request::Requester,
    o: &Options,
    count: u64,
    json: bool,
) -> Result<(), Failure> {
    let size = o.size.max(verify::MIN_LEN);
    if size > requester.max_payload() {
        return fail(format!(
            "--size {size} exceeds the {} bytes a request of this service can carry",
            requester.max_payload()
        ));
    }
    let mut histogram = Histogram::<u64>::new(3).expect("3 significant digits is valid");
    let mut buf = vec![0u8; size];
    // Request id -> (counter, send time).
    let mut pending: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut tally = Tally::default();
    let mut sent = 0u64;
    let started = monotonic_ns();
    while sent < count || !pending.is_empty() {
        while sent < count && pending.len() < o.window {
            let now = monotonic_ns();
            verify::write(&mut buf, std::process::id(), sent, now);
            let id = requester
                .send(&buf, o.timeout)
                .map_err(|e| Failure(e.to_string(), 1))?;
            pending.insert(id, (sent, now));
            sent += 1;
        }
        match requester.recv() {
            Ok(reply) => {
                let Some((counter, at)) = pending.remove(&reply.id()) else {
                    return fail(format!(
                        "a reply to request {} that was not in flight",
                        reply.id()
                    ));
                };
                tally.replied += 1;
                tally.redelivered += u64::from(reply.redelivered());
                histogram.saturating_record((monotonic_ns() - at) / 1000);
                if o.verify && verify::read(reply.payload()).map(|(_, c, _)| c) != Some(counter) {
                    tally.mismatched += 1;
                }
            }
            Err(RequestError::Expired { id }) => {
                pending.remove(&id);
                tally.expired += 1;
            }
            Err(e) => return fail(e.to_string()),
        }
    }
    let seconds = (monotonic_ns() - started) as f64 / 1e9;
    let summary = json!({
        "sent": sent,
        "replied": tally.replied,
        "expired": tally.expired,
        "late": requester.late_replies(),
        "duplicates": requester.duplicate_replies(),
        "malformed": requester.malformed_replies(),
        "redelivered": tally.redelivered,
        "mismatched": tally.mismatched,
        "requests_per_second": sent as f64 / seconds,
        "round_trip_us": {
            "p50": histogram.value_at_quantile(0.5),
            "p99": histogram.value_at_quantile(0.99),
            "max": histogram.max(),
        },
    });
    if json {
        print_json(&summary);
    } else {
        println!(
            "sent {sent}, replied {}, expired {}, late {}, duplicates {}, redelivered {}, mismatched {}; {:.0} requests/s, round trip p50 {} µs, p99 {} µs",
            tally.replied,
            tally.expired,
            requester.late_replies(),
            requester.duplicate_replies(),
            tally.redelivered,
            tally.mismatched,
            sent as f64 / seconds,
            histogram.value_at_quantile(0.5),
            histogram.value_at_quantile(0.99),
        );
    }
    if tally.mismatched > 0 {
        return Err(Failure(
            format!("{} replies did not match their requests", tally.mismatched),
            3,
        ));
    }
    Ok(())
}
