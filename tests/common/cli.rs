//! Running the `ringmq` binary from tests: unique rings in /dev/shm removed on drop, child
//! processes killed on drop, one-line commands, and polling for a condition with a deadline.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ringmq");

/// A unique ring in /dev/shm, removed on drop (also when the test fails).
pub struct ShmRing(pub PathBuf);

impl ShmRing {
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        ShmRing(
            ringmq::TopicDir::shm()
                .path(&format!("test-{tag}-{}-{nanos}", std::process::id()))
                .unwrap(),
        )
    }

    pub fn arg(&self) -> String {
        self.0.display().to_string()
    }

    /// Creates the ring: `capacity` slots of `slot_size` bytes, single producer.
    pub fn create(&self, capacity: u64, slot_size: usize) -> ringmq::Ring {
        ringmq::Ring::builder()
            .capacity(capacity)
            .slot_size(slot_size)
            .create(&self.0)
            .unwrap()
    }
}

impl Drop for ShmRing {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A child process killed on drop (also when the test fails).
pub struct Proc(pub Option<Child>);

impl Proc {
    /// Spawns `ringmq` with the whitespace-separated arguments of `line`.
    pub fn spawn(line: &str) -> Self {
        Proc(Some(
            Command::new(BIN)
                .args(line.split_whitespace())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn ringmq"),
        ))
    }

    /// SIGKILL; asserts the process was still running (it did not exit on its own).
    pub fn kill(&mut self) {
        let mut child = self.0.take().expect("running");
        child.kill().expect("SIGKILL");
        let status = child.wait().unwrap();
        assert!(!status.success());
    }

    /// SIGKILL if it is still running, whatever it has done.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether it has exited (and then asserts that it succeeded).
    pub fn exited(&mut self) -> bool {
        let child = self.0.as_mut().expect("running");
        match child.try_wait().unwrap() {
            None => false,
            Some(_) => {
                assert_success(&self.0.take().unwrap().wait_with_output().unwrap());
                true
            }
        }
    }

    /// How it is doing, for a failure's message: running, or how it ended and what it said.
    pub fn status(&mut self) -> String {
        let Some(child) = self.0.as_mut() else {
            return "gone".into();
        };
        if child.try_wait().unwrap().is_none() {
            return "running".into();
        }
        let output = self.0.take().unwrap().wait_with_output().unwrap();
        format!(
            "{}: {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(&mut self) {
        let child = self.0.take().expect("running");
        // SAFETY: kill(2) on a child this test spawned and has not reaped.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
        assert_success(&child.wait_with_output().unwrap());
    }

    /// Waits for the process and parses the JSON object it printed; asserts success.
    pub fn json(&mut self) -> serde_json::Value {
        let output = self.0.take().expect("running").wait_with_output().unwrap();
        assert_success(&output);
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(&output.stdout)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "exit {}: {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `ringmq` with the whitespace-separated arguments of `line`.
pub fn run(line: &str) -> Output {
    Command::new(BIN)
        .args(line.split_whitespace())
        .output()
        .expect("run ringmq")
}

/// Polls `condition` until it holds; fails the test after 60 s.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}
