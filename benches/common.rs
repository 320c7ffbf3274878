//! Shared by the benchmarks: the emulator they run against, and running the release binary
//! and measuring it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

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
    // As a careful operator keeps it (subsync warns about a key others can read).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("key"), std::fs::Permissions::from_mode(0o600)).unwrap();
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

/// The subsync binary to measure: this build's, or the one `SUBSYNC_BENCH_BINARY` names (a
/// build of another commit, to compare the two back to back on the same data).
pub fn binary() -> std::path::PathBuf {
    std::env::var_os("SUBSYNC_BENCH_BINARY")
        .map_or_else(|| env!("CARGO_BIN_EXE_subsync").into(), Into::into)
}

/// Runs `subsync ARGS` and returns its output, wall time and that process's own peak RSS in
/// MiB (its `VmHWM`, sampled while it runs).
pub fn run_measured(args: &[&str], env: &[(&str, String)], cwd: &Path) -> (Output, Duration, f64) {
    let mut cmd = Command::new(binary());
    cmd.args(args).current_dir(cwd).env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let measured = subsync::testing::run_measured(&mut cmd).expect("run subsync");
    let out = Output {
        status: measured.status,
        stdout: measured.stdout.clone(),
        stderr: measured.stderr.clone(),
    };
    (out, measured.elapsed, measured.peak_mib())
}

/// Writes `ids` one a line into the gzipped list `path`, as a manifest's `subscriberFiles` holds.
pub fn write_gz_list(path: &Path, ids: &[String]) {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(std::fs::File::create(path).unwrap()),
        flate2::Compression::fast(),
    );
    for id in ids {
        writeln!(gz, "{id}").unwrap();
    }
    gz.finish().unwrap().into_inner().unwrap();
}

/// This machine, for the README's tables: CPU model and count, memory.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown CPU")
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    format!("{model}, {cores} cores, {mem_gib:.0} GiB")
}

/// Records `records` (as run 1) in the ledger at `location`, creating it, on a runtime of its
/// own: preparing a benchmark's ledger is not what it measures.
pub fn record(
    location: impl Into<subsync::ledger::Location>,
    records: Vec<subsync::ledger::Record>,
) {
    let location = location.into();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let writer = subsync::ledger::Writer::open(location, "bench")
                    .await
                    .unwrap();
                writer.record(1, records).await.unwrap();
                writer.close().await;
            })
    })
    .join()
    .unwrap();
}
