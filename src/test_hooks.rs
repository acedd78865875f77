//! Fault points for tests: an environment variable that makes a process stop at a chosen
//! point of a protocol, so that tests can kill it there with SIGKILL. Read on cold paths only
//! (ring creation, producer creation); a process without the variable pays nothing else.
//!
//! `RINGMQ_TEST_PAUSE=<point>` parks the thread that reaches `<point>` forever:
//! - `create`: the creator has allocated its temporary file but not initialised it;
//! - `commit`: a multi-producer has claimed a sequence and not published it.

/// The environment variable.
const VAR: &str = "RINGMQ_TEST_PAUSE";

/// Whether the test hook asks to pause at `point`.
pub(crate) fn pause_requested(point: &str) -> bool {
    std::env::var_os(VAR).is_some_and(|v| v == point)
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
