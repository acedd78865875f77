//! `ringmq`: create, inspect, feed, drain and clean up rings in /dev/shm or files.
//!
//! RING is a topic name (a ring in this user's /dev/shm directory, `ringmq::TopicDir::shm`) or a
//! path (anything with a `/`). Human output by default, `--json` for scripts. Errors are one
//! line on stderr and a non-zero exit: 1 for an error, 2 for bad arguments, 3 when
//! `consume --verify` found a violation.
//!
//! One file per command: `admin.rs` (create, stat, list, rm, prune), `produce.rs`,
//! `consume.rs`, `demo.rs`, `journal.rs` (journal, verify-journal), `serve.rs` and
//! `request.rs` (the two sides of request-reply); `verify.rs` is the verifiable payload
//! format both ends share.

mod admin;
mod consume;
mod demo;
mod journal;
mod produce;
mod request;
mod serve;
mod verify;

use clap::{Parser, Subcommand, ValueEnum};
use ringmq::{OpenError, Ring, RingBuilder, TopicDir, WaitStrategy};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
        /// Permissions of the ring file, octal.
        #[arg(long, default_value = "0600")]
        file_mode: String,
        /// Make the ring anew for the journal in this directory, which outlived it: it
        /// continues at the journal's end, holding what each durable group of the journal
        /// has not acknowledged, with each group back at its committed position (the ring
        /// must be large enough for that backlog).
        #[arg(long, value_name = "DIR")]
        journal: Option<PathBuf>,
    },
    /// Show a ring's parameters, cursor and consumers (cleaning up after dead processes).
    Stat {
        /// Ring name or path.
        ring: String,
        /// Also show the journal in this directory: segments, durable position and its lag.
        #[arg(long, value_name = "DIR")]
        journal: Option<PathBuf>,
    },
    /// Run a ring's journal stage: write every message to segment files in DIR, durable by
    /// group commit (or as --durability says), until SIGTERM or SIGINT.
    Journal {
        /// Ring name or path.
        ring: String,
        /// The journal's directory (created if missing).
        dir: PathBuf,
        #[command(flatten)]
        stage: journal::StageArgs,
    },
    /// Read every record of the journal in DIR, checking its CRC and sequence, and each sealed
    /// segment against its footer (exit 3 on anything that does not check).
    VerifyJournal {
        /// The journal's directory.
        dir: PathBuf,
    },
    /// List the rings of a directory.
    List {
        /// Directory (default: this user's topics in /dev/shm).
        dir: Option<PathBuf>,
    },
    /// Remove a ring (and nothing else: any other file is refused).
    Rm {
        /// Ring name or path.
        ring: String,
    },
    /// Remove the rings of a directory that no process has open, and abandoned half-made ones.
    Prune {
        /// Directory (default: this user's topics in /dev/shm).
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
        /// earliest, latest, or a sequence (for a worker: where its group starts, if it
        /// creates it); with --journal also @SECONDS (Unix time: the first record appended
        /// then or later).
        #[arg(long, default_value = "latest")]
        from: String,
        /// Start in the journal in this directory (history older than the ring holds), then
        /// continue live in the ring. A --durable subscriber resumes where the journal last
        /// persisted its position if the ring no longer has it (a ring made anew); so does a
        /// --durable group (whose workers read the ring only).
        #[arg(long, value_name = "DIR", conflicts_with = "after")]
        journal: Option<PathBuf>,
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
        /// Keep the subscriber's position if this process dies (a restart resumes there); with
        /// --group, keep the group and its position when its last worker leaves.
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
        /// Read messages larger than a slot (`produce --size` above it) whole, one at a time,
        /// each copied out once complete (a group gives each to one worker whole).
        #[arg(long)]
        large: bool,
        /// How an empty ring is waited on.
        #[arg(long, value_enum, default_value_t = Wait::Backoff)]
        wait: Wait,
    },
    /// Answer the requests of a request-reply service (created if missing) as one of its
    /// pool of responders: echo each payload back, or reply with what a command prints,
    /// until SIGTERM or SIGINT.
    Serve {
        /// The service's topic name.
        service: String,
        /// This responder's name (a restart under it takes over what it held).
        #[arg(long)]
        name: String,
        /// Reply with the stdout of `sh -c CMD`, run with the request on its stdin.
        #[arg(long, value_name = "CMD")]
        exec: Option<String>,
        /// Spend this many milliseconds on each request before replying.
        #[arg(long, default_value_t = 0)]
        hold_ms: u64,
        /// Stop after this many requests.
        #[arg(long)]
        count: Option<u64>,
        /// Slots of the service's ring, if this creates it.
        #[arg(long, default_value_t = 1024)]
        capacity: u64,
        /// Bytes per slot of the service's ring, if this creates it.
        #[arg(long, default_value_t = 256)]
        slot_size: usize,
        /// The directory of the service's topics (default: this user's in /dev/shm).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// How requests are waited for.
        #[arg(long, value_enum, default_value_t = Wait::Backoff)]
        wait: Wait,
    },
    /// Send requests to a service: each stdin line, printing its reply (up to 64 KiB) and
    /// round trip, or --count generated ones, pipelined, with a summary.
    Request {
        /// The service's topic name.
        service: String,
        /// Send this many generated (verifiable) requests instead of stdin lines.
        #[arg(long)]
        count: Option<u64>,
        /// Requests in flight at once with --count.
        #[arg(long, default_value_t = 1)]
        window: usize,
        /// Each request's deadline, in milliseconds.
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
        /// Bytes per generated request (larger than a slot: sent in several, and the reply
        /// ring sized for echoed replies of this size).
        #[arg(long, default_value_t = 32)]
        size: usize,
        /// Check that each reply is its request's payload (an echo responder); exit 3 if not.
        #[arg(long)]
        verify: bool,
        /// The directory of the service's topics (default: this user's in /dev/shm).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// How replies are waited for.
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

/// Every library error is a failure of exit code 1, with the error's message.
macro_rules! failure_from {
    ($($error:ty),*) => {
        $(impl From<$error> for Failure {
            fn from(e: $error) -> Self {
                Failure(e.to_string(), 1)
            }
        })*
    };
}
failure_from!(
    ringmq::ConfirmError,
    ringmq::OpenError,
    ringmq::AttachError,
    ringmq::PublishError,
    ringmq::RecvError,
    ringmq::ServiceError,
    ringmq::RequestError,
    std::io::Error
);

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

/// A topic name (in this user's /dev/shm directory) or a path.
fn ring_path(ring: &str) -> Result<PathBuf, Failure> {
    if ring.contains('/') {
        Ok(PathBuf::from(ring))
    } else {
        Ok(TopicDir::shm().path(ring)?)
    }
}

/// Creates RING (a topic name, or a path) as `builder` describes it.
fn create_ring(ring: &str, builder: RingBuilder) -> Result<Ring, OpenError> {
    if ring.contains('/') {
        builder.create(ring)
    } else {
        TopicDir::shm().create(ring, builder)
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
            file_mode,
            journal,
        } => {
            let file_mode = u32::from_str_radix(file_mode.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| Failure(format!("--file-mode {file_mode:?} is not an octal file mode"), 2))?;
            let mut builder = Ring::builder()
                .capacity(capacity)
                .slot_size(slot_size)
                .max_consumers(max_consumers)
                .file_mode(file_mode);
            if multi_producer {
                builder = builder.multi_producer();
            }
            if let Some(size) = fixed_size {
                builder = builder.fixed_size(size);
            }
            match journal.filter(|d| d.exists()) {
                Some(dir) => admin::restore(&ring_path(&ring)?, builder, &dir, json),
                None => admin::create(&ring, builder, json),
            }
        }
        Command::Stat { ring, journal } => admin::stat(&ring_path(&ring)?, journal.as_deref(), json),
        Command::Journal { ring, dir, stage } => journal::run(&ring_path(&ring)?, &dir, &stage, json),
        Command::VerifyJournal { dir } => journal::verify(&dir, json),
        Command::List { dir } => admin::list(&topic_dir(dir), json),
        Command::Rm { ring } => admin::rm(&ring_path(&ring)?, json),
        Command::Prune { dir } => admin::prune(&topic_dir(dir), json),
        Command::Produce {
            ring,
            count,
            size,
            rate,
            verifiable,
            batch,
            wait,
        } => produce::run(
            &ring_path(&ring)?,
            produce::Generate {
                count,
                size,
                rate,
                verifiable,
                batch,
            },
            wait.strategy(),
            json,
        ),
        Command::Consume {
            ring,
            name,
            group,
            after,
            from,
            journal,
            count,
            timeout,
            print,
            verify,
            durable,
            record,
            until,
            hold_ms,
            batch,
            large,
            wait,
        } => {
            // A worker reads the ring only (its group's start may come from the journal).
            let seek = match (&journal, &group) {
                (Some(_), None) => Some(parse_seek(&from)?),
                _ => None,
            };
            let options = consume::Options {
                name,
                group,
                after,
                from: if seek.is_some() {
                    ringmq::Start::Latest
                } else {
                    parse_start(&from)?
                },
                journal: journal.map(|dir| (dir, seek.unwrap_or(ringmq::Seek::Latest))),
                count,
                timeout: timeout.map(Duration::from_secs_f64),
                print,
                verify,
                durable,
                record,
                until,
                hold: Duration::from_millis(hold_ms),
                batch,
                large,
                wait: wait.strategy(),
            };
            consume::run(&ring_path(&ring)?, &options, json)
        }
        Command::Serve {
            service,
            name,
            exec,
            hold_ms,
            count,
            capacity,
            slot_size,
            dir,
            wait,
        } => serve::run(
            &serve::Options {
                service,
                topics: topic_dir(dir),
                name,
                exec,
                hold: Duration::from_millis(hold_ms),
                count,
                capacity,
                slot_size,
                wait: wait.strategy(),
            },
            json,
        ),
        Command::Request {
            service,
            count,
            window,
            timeout_ms,
            size,
            verify,
            dir,
            wait,
        } => request::run(
            &request::Options {
                service,
                topics: topic_dir(dir),
                count,
                window,
                timeout: Duration::from_millis(timeout_ms),
                size,
                verify,
                wait: wait.strategy(),
            },
            json,
        ),
        Command::Demo {
            messages,
            subscribers,
            size,
            rate,
        } => demo::run(messages, subscribers, size, rate, json),
    }
}

/// The topic directory DIR, or this user's in /dev/shm.
fn topic_dir(dir: Option<PathBuf>) -> TopicDir {
    dir.map_or_else(TopicDir::shm, TopicDir::new)
}

/// `--from` with `--journal`: earliest, latest, a sequence, or @SECONDS (Unix time).
fn parse_seek(from: &str) -> Result<ringmq::Seek, Failure> {
    if let Some(seconds) = from.strip_prefix('@') {
        let seconds: f64 = seconds
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| Failure(format!("--from {from:?}: expected @ and Unix seconds"), 2))?;
        return Ok(ringmq::Seek::Time(
            std::time::UNIX_EPOCH + Duration::from_secs_f64(seconds),
        ));
    }
    Ok(match parse_start(from)? {
        ringmq::Start::Earliest => ringmq::Seek::Earliest,
        ringmq::Start::Latest => ringmq::Seek::Latest,
        ringmq::Start::Sequence(s) => ringmq::Seek::Sequence(s),
    })
}

fn parse_start(from: &str) -> Result<ringmq::Start, Failure> {
    match from {
        "earliest" => Ok(ringmq::Start::Earliest),
        "latest" => Ok(ringmq::Start::Latest),
        s => s.parse().map(ringmq::Start::Sequence).map_err(|_| {
            Failure(
                format!("--from {s:?}: expected earliest, latest or a sequence"),
                2,
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::Parser;

    /// Every `ringmq ...` command of the shell examples (the ```sh blocks) in the README and
    /// the guides, with its comment, a trailing `&` and the `;` between commands taken off.
    fn documented_commands() -> Vec<(&'static str, String)> {
        let docs = [
            ("README.md", include_str!("../../../README.md")),
            ("docs/journal.md", include_str!("../../../docs/journal.md")),
            ("docs/messaging.md", include_str!("../../../docs/messaging.md")),
        ];
        let mut commands = Vec::new();
        for (doc, text) in docs {
            let mut in_shell = false;
            for line in text.lines() {
                if line.starts_with("```") {
                    in_shell = line == "```sh";
                    continue;
                }
                if !in_shell {
                    continue;
                }
                let code = line.split(" #").next().unwrap_or_default();
                for command in code.split(';') {
                    let command = command.trim().trim_end_matches('&').trim();
                    if command.starts_with("ringmq ") || command == "ringmq" {
                        commands.push((doc, command.to_owned()));
                    }
                }
            }
        }
        commands
    }

    /// A newcomer copies these first: each must be a command line the CLI takes.
    #[test]
    fn the_documented_command_lines_parse() {
        let commands = documented_commands();
        assert!(
            commands.len() >= 10,
            "the shell examples were not found: {commands:?}"
        );
        for (doc, command) in commands {
            if let Err(e) = Cli::try_parse_from(command.split_whitespace()) {
                panic!("{doc}: `{command}` does not parse:\n{e}");
            }
        }
    }
}
