//! Shared by the benchmarks: running the release binary and measuring it.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Runs `subsync ARGS` and returns its output, wall time and peak RSS in MiB.
pub fn run_measured(args: &[&str], env: &[(&str, String)], cwd: &Path) -> (Output, Duration, f64) {
    let before = max_rss_children_kib();
    let started = Instant::now();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_subsync"));
    cmd.args(args).current_dir(cwd).env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run subsync");
    let elapsed = started.elapsed();
    let after = max_rss_children_kib();
    // ru_maxrss of children is the largest of any child so far; benchmarks run the big case last.
    (out, elapsed, after.max(before) as f64 / 1024.0)
}

fn max_rss_children_kib() -> i64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_CHILDREN is always valid.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    if rc != 0 {
        return 0;
    }
    // SAFETY: initialised by the successful call above.
    unsafe { usage.assume_init() }.ru_maxrss
}
