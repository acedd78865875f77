//! The two cores every scenario runs on, and the machine's description.

use core_affinity::CoreId;
use std::process::Command;

/// The cores a run uses: the producer (or pinger) on `a`, the consumer (or echoer) on `b`.
#[derive(Clone, Copy, Debug)]
pub struct Cores {
    pub a: CoreId,
    pub b: CoreId,
}

impl Cores {
    /// The first two cores this process may run on.
    pub fn detect() -> Result<Cores, String> {
        let ids = core_affinity::get_core_ids().ok_or("cannot read this process's CPU affinity")?;
        match ids.as_slice() {
            [a, b, ..] => Ok(Cores { a: *a, b: *b }),
            _ => Err(format!("need two cores, have {}", ids.len())),
        }
    }
}

/// Pins the calling thread; a refused pin is reported, since unpinned numbers mean little.
pub fn pin(core: CoreId) {
    if !core_affinity::set_for_current(core) {
        eprintln!("warning: could not pin to core {}", core.id);
    }
}

/// Runs `reader` on a new thread pinned to core `b` and `writer` on this thread pinned to
/// core `a`; returns what the reader returns.
pub fn pair<T: Send + 'static>(
    cores: Cores,
    reader: impl FnOnce() -> T + Send + 'static,
    writer: impl FnOnce(),
) -> T {
    let reader = std::thread::spawn(move || {
        pin(cores.b);
        reader()
    });
    pin(cores.a);
    writer();
    match reader.join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// What the report says about the machine.
pub fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cores = core_affinity::get_core_ids().map_or(0, |c| c.len());
    serde_json::json!({ "cpu": cpu, "kernel": kernel, "rustc": rustc, "cores": cores })
}
