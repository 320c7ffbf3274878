//! Shared by the benchmarks: the emulator they run against, and running the release binary
//! and measuring it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use subsync::emulator::{
    Credentials, Emulator, EmulatorOptions, Faults, Latency, RemoteState, Rules,
};
use subsync::tencent::usersig::SecretKey;

pub const KEY: &str = "bench-secret-key";
pub const APP: u64 = 1_400_000_001;

/// An emulator with `accounts` accounts `@TOA#_bench{N}` of a million subscribers each,
/// answering after `latency_ms`, failing `fault_rate` of calls, limited to `qps` per command.
pub async fn emulator(accounts: usize, latency_ms: u64, fault_rate: f64, qps: u32) -> Emulator {
    let mut state = RemoteState::default();
    for a in 0..accounts {
        state.seed_account(&format!("@TOA#_bench{a}"), 1_000_000, &[], 0);
    }
    let options = EmulatorOptions {
        credentials: Credentials {
            sdkappid: APP,
            identifier: "administrator".into(),
            key: SecretKey::new(KEY).unwrap(),
        },
        qps,
        rules: Rules::default(),
        latency: Latency {
            min: latency_ms,
            max: latency_ms,
            after_change: false,
        },
        faults: Faults {
            rate: fault_rate,
            seed: Some(1),
        },
        state,
        journal: None,
        clock_skew_secs: 0,
    };
    Emulator::start(options, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap()
}

/// Writes the bench key into `dir` and returns the environment that points subsync at it,
/// at `dir/state` and at `emulator`.
pub fn workspace_env(dir: &Path, emulator: &Emulator) -> [(&'static str, String); 4] {
    std::fs::write(dir.join("key"), KEY).unwrap();
    [
        ("SUBSYNC_STATE", dir.join("state").display().to_string()),
        ("SUBSYNC_SDKAPPID", APP.to_string()),
        (
            "SUBSYNC_SECRET_KEY_FILE",
            dir.join("key").display().to_string(),
        ),
        ("SUBSYNC_ENDPOINT", emulator.url()),
    ]
}

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
