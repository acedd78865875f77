//! Request-reply between processes, through the CLI: responders killed with SIGKILL holding
//! requests (each request is answered, once after deduplication, by another), requesters
//! killed mid-run (nothing is held up, their reply rings go), and lines answered by a command.

mod common;

use common::cli::{run, wait_until, Proc, BIN};
use ringmq::request::Service;
use ringmq::{ConsumerKind, TopicDir};
use std::io::Write;
use std::process::{Command, Stdio};

/// A fresh directory of topics: the service and its reply rings, removed with it.
fn topics() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let arg = dir.path().display().to_string();
    (dir, arg)
}

fn serve(dir: &str, name: &str, extra: &str) -> Proc {
    Proc::spawn(&format!(
        "serve svc --dir {dir} --name {name} --capacity 256 {extra}"
    ))
}

fn open(dir: &str) -> Service {
    let mut service = None;
    wait_until("the service", || {
        service = Service::open(&TopicDir::new(dir), "svc").ok();
        service.is_some()
    });
    service.unwrap()
}

fn holds_a_request(service: &Service, worker: &str) -> bool {
    service
        .ring()
        .consumers()
        .iter()
        .any(|c| c.kind == ConsumerKind::Worker && c.name == worker && c.sequence.is_some())
}

fn reply_rings(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("svc.reply."))
        .collect();
    names.sort();
    names
}

#[test]
fn a_responder_killed_holding_requests_has_them_answered_by_another() {
    killed_responder("");
}

/// The same with requests and replies of several slots each.
#[test]
fn a_responder_killed_holding_large_requests_has_them_answered_whole_by_another() {
    killed_responder("--size 2000");
}

/// A requester's 300 verified requests (`extra` its options), one responder killed holding
/// one and another answering: every request is answered, once, by its echo.
fn killed_responder(extra: &str) {
    let (_guard, dir) = topics();
    // `a` holds its first request for a minute: it is holding it when it is killed.
    let mut a = serve(&dir, "a", "--hold-ms 60000");
    let service = open(&dir);
    let mut b = serve(&dir, "b", "--hold-ms 3");
    wait_until("two responders", || service.responders() == 2);
    let mut requester = Proc::spawn(&format!(
        "request svc --dir {dir} --count 300 --window 16 --verify --timeout-ms 120000 --json {extra}"
    ));
    wait_until("responder a holding a request", || holds_a_request(&service, "a"));
    a.kill();
    let summary = requester.json();
    assert_eq!(summary["replied"], 300, "{summary}");
    assert_eq!(summary["expired"], 0, "{summary}");
    assert_eq!(summary["mismatched"], 0, "{summary}");
    assert!(summary["redelivered"].as_u64().unwrap() >= 1, "{summary}");
    assert!(service.ring().redelivered_count() >= 1);
    b.terminate();
}

#[test]
fn a_killed_requester_holds_nothing_up_and_its_reply_ring_goes() {
    let (_guard, dir) = topics();
    let mut b = serve(&dir, "b", "");
    let service = open(&dir);
    wait_until("a responder", || service.responders() == 1);
    let mut doomed = Proc::spawn(&format!(
        "request svc --dir {dir} --count 100000000 --window 64 --timeout-ms 60000"
    ));
    wait_until("replies flowing", || {
        service.ring().next_sequence() > 1000 && reply_rings(&dir).len() == 1
    });
    let dead = reply_rings(&dir);
    doomed.kill();
    // The responder keeps serving: a new requester gets every reply.
    let output = run(&format!(
        "request svc --dir {dir} --count 2000 --window 8 --verify --timeout-ms 60000 --json"
    ));
    common::cli::assert_success(&output);
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (summary["replied"].as_u64(), summary["expired"].as_u64()),
        (Some(2000), Some(0))
    );
    // Once the idle responder has closed the dead requester's ring, the next requester
    // removes its file.
    let topics = TopicDir::new(&dir);
    wait_until("the dead reply ring unused", || {
        topics
            .list()
            .unwrap()
            .iter()
            .any(|f| f.path.ends_with(&dead[0]) && !f.in_use)
    });
    let _next = service.requester().build().unwrap();
    assert!(!reply_rings(&dir).contains(&dead[0]), "{:?}", reply_rings(&dir));
    b.terminate();
}

#[test]
fn a_command_answers_each_line() {
    let (_guard, dir) = topics();
    let mut upper = Proc(Some(
        Command::new(BIN)
            .args([
                "serve",
                "svc",
                "--dir",
                &dir,
                "--name",
                "upper",
                "--exec",
                "tr a-z A-Z",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let service = open(&dir);
    wait_until("a responder", || service.responders() == 1);
    let output = Command::new(BIN)
        .args(["request", "svc", "--dir", &dir])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            // The third line and its reply are larger than a slot of the service's ring.
            let long = "a".repeat(3000);
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("hello\nworld\n{long}\n").as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    common::cli::assert_success(&output);
    let text = String::from_utf8(output.stdout).unwrap();
    let replies: Vec<&str> = text.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(replies, ["HELLO", "WORLD", &"A".repeat(3000)]);
    upper.terminate();
}

#[test]
fn no_responder_is_an_error_not_a_wait() {
    let (_guard, dir) = topics();
    let mut b = serve(&dir, "b", "--count 0");
    let service = open(&dir);
    // The responder answered its zero requests and left: the group is there, empty.
    wait_until("the responder gone", || b.exited());
    assert_eq!(service.responders(), 0);
    let output = run(&format!("request svc --dir {dir} --count 1"));
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no responder"));
}
