//! Fault points for tests: an environment variable that makes a process stop at a chosen
//! point of a protocol, so that tests can kill it there with SIGKILL. Only with the
//! `test-hooks` feature (this package's own tests enable it); without, every point is a
//! constant `false` and the variable is never read.
//!
//! `RINGMQ_TEST_PAUSE=<point>` parks the thread that reaches `<point>` forever:
//! - `create`: the creator has allocated its temporary file but not initialised it;
//! - `commit`: a multi-producer has claimed a sequence and not published it.

/// The environment variable.
const VAR: &str = "RINGMQ_TEST_PAUSE";

/// Whether the test hook asks to pause at `point`.
pub(crate) fn pause_requested(point: &str) -> bool {
    cfg!(feature = "test-hooks") && std::env::var_os(VAR).is_some_and(|v| v == point)
}

/// Parks this thread forever (until the test kills the process).
#[cold]
pub(crate) fn pause_forever(point: &str) -> ! {
    eprintln!("ringmq test hook: paused at {point}");
    loop {
        std::thread::park();
    }
}

/// Pauses here if the test hook asks for `point`.
pub(crate) fn pause_at(point: &str) {
    if pause_requested(point) {
        pause_forever(point);
    }
}
