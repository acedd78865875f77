//! `serve`: a responder of a request-reply service, answering each request with its own
//! payload (an echo) or with what a command prints for it.

use super::{print_json, Failure};
use ringmq::request::{Handled, Request, Service};
use ringmq::{OpenError, RecvError, Ring, ServiceError, TopicDir, WaitStrategy};
use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// What `serve` does.
pub(super) struct Options {
    pub service: String,
    pub topics: TopicDir,
    pub name: String,
    pub exec: Option<String>,
    pub hold: Duration,
    pub count: Option<u64>,
    pub capacity: u64,
    pub slot_size: usize,
    pub wait: WaitStrategy,
}

/// The service `name` in `topics`, created (as `capacity` slots of `slot_size` bytes) if it
/// does not exist yet.
pub(super) fn open_or_create(
    topics: &TopicDir,
    name: &str,
    capacity: u64,
    slot_size: usize,
) -> Result<Service, Failure> {
    match Service::open(topics, name) {
        Err(ServiceError::Open(OpenError::NotFound { .. })) => {
            let builder = Ring::builder().capacity(capacity).slot_size(slot_size);
            Ok(Service::open_or_create(topics, name, builder)?)
        }
        other => Ok(other?),
    }
}

/// `serve SERVICE --name NAME`: answers requests until SIGTERM or SIGINT (or `--count`).
pub(super) fn run(o: &Options, json: bool) -> Result<(), Failure> {
    let service = open_or_create(&o.topics, &o.service, o.capacity, o.slot_size)?;
    let signals =
        signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])?;
    let mut responder = service.responder(&o.name).wait_strategy(o.wait).attach()?;
    if !json {
        println!("{} serving {}", o.name, o.service);
    }
    let mut redelivered = 0u64;
    let mut failed_commands = 0u64;
    let mut handled = 0u64;
    let mut signals = signals;
    while o.count.is_none_or(|c| handled < c) && signals.pending().next().is_none() {
        let answer = |request: &Request<'_>| {
            redelivered += u64::from(request.redelivered());
            if !o.hold.is_zero() {
                std::thread::sleep(o.hold);
            }
            match &o.exec {
                None => request.payload().to_vec(),
                Some(command) => run_command(command, request.payload()).unwrap_or_else(|e| {
                    failed_commands += 1;
                    format!("error: {e}").into_bytes()
                }),
            }
        };
        match responder.respond_timeout(answer, Duration::from_millis(50)) {
            Ok(Handled::Replied | Handled::Undeliverable | Handled::Expired | Handled::Malformed) => {
                handled += 1
            }
            Err(RecvError::Timeout) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let summary = json!({
        "responder": o.name,
        "replied": responder.replied(),
        "expired": responder.expired(),
        "malformed": responder.malformed(),
        "undeliverable": responder.undeliverable(),
        "redelivered": redelivered,
        "failed_commands": failed_commands,
    });
    if json {
        print_json(&summary);
    } else {
        println!(
            "{}: replied {}, expired {}, malformed {}, undeliverable {}, redelivered {}, failed commands {}",
            o.name,
            responder.replied(),
            responder.expired(),
            responder.malformed(),
            responder.undeliverable(),
            redelivered,
            failed_commands
        );
    }
    Ok(())
}

/// Runs `sh -c command` with `input` on its stdin; its stdout is the reply.
fn run_command(command: &str, input: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut child = Command::new("sh")
        .args(["-c", command])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    // A command that does not read its input closes the pipe: that is not an error.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        return Err(std::io::Error::other(format!(
            "{command:?} exited with {}",
            output.status
        )));
    }
    Ok(output.stdout)
}
