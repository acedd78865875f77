//! The ringmq perf harness. The scenarios, peers and reports arrive with the perf issue; until
//! then this binary only says so, so that the workspace member builds.

fn main() {
    eprintln!("ringmq-perf: the side-by-side harness is not written yet (see the perf issue)");
    std::process::exit(2);
}
