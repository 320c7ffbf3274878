//! `subsync watch` benchmark against the emulator:
//! - from a manifest change saved on disk to the first add_subscriber call reaching the
//!   emulator, with the default debounce (500 ms): median over 20 changes (target: 1 s);
//! - the CPU an idle daemon watching 100 manifests uses (target: none measurable);
//! - failover (issues 10 and 25), when `SUBSYNC_TEST_POSTGRES_URL` names a server: two `watch
//!   --standby` replicas on one PostgreSQL ledger, the leader SIGKILLed (or SIGTERMed) in the
//!   middle of a 100,000-subscriber apply; from the signal to the standby's first
//!   add_subscriber call, median of 5 (targets: 1.5 s after SIGKILL, 1 s after SIGTERM), with
//!   the final remote state and ledger equal to the manifests (`-- failover`: these rows alone);
//! - memory at scale (issue 16): a daemon over 4,000,000 desired subscribers (40 accounts of
//!   100,000 in `.txt.gz` lists) that the ledger already confirms, resyncing every second:
//!   resident memory after the start and after each of 100 resyncs (target: at most 128 MB,
//!   and not growing).
//!
//! - memory under changes (issue 25): the same daemon, converged, while one manifest changes
//!   every second for 4 minutes: peak resident memory, start included (target: at most 128 MB),
//!   and the most in the first and the second half of the changes (target: no growth).
//!
//! Run with `cargo bench --bench watch` (`-- memory` for the memory rows alone, `-- changes`
//! for the last one, `-- latency` for the latency, idle and failover rows); prints a Markdown
//! table for the README.

#[path = "common.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use subsync::emulator::Emulator;
use subsync::tencent::api::Command as Api;

async fn emulator(accounts: usize, latency_ms: u64) -> Emulator {
    common::emulator(accounts, latency_ms, 0.0, 200).await
}

fn manifest(a: usize, n: usize) -> String {
    let list: Vec<String> = (0..n).map(|i| format!("\"u{a}-{i:06}\"")).collect();
    format!(
        "apiVersion: subsync/v1\nkind: SubscriberSet\nmetadata:\n  name: bench-{a}\nspec:\n  officialAccount: \"@TOA#_bench{a}\"\n  subscribers: [{}]\n",
        list.join(", ")
    )
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, emulator: &Emulator) -> Daemon {
    start_with(dir, emulator, &[])
}

fn start_with(dir: &Path, emulator: &Emulator, extra: &[&str]) -> Daemon {
    let mut child = Command::new(common::binary())
        .args(["watch", "manifests", "--listen", "127.0.0.1:0"])
        .args(extra)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .envs(common::workspace_env(dir, emulator))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    Daemon(child)
}

async fn wait_until(mut condition: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < Duration::from_secs(30), "timed out");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    started.elapsed()
}

/// (median, slowest) from a saved change to the first add reaching the emulator.
async fn change_to_first_add(changes: usize) -> (Duration, Duration) {
    let emulator = emulator(1, 50).await;
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(manifests.join("a.yaml"), manifest(0, 10)).unwrap();
    let _daemon = start(dir.path(), &emulator);
    let adds = || emulator.stats().calls(Api::AddSubscriber);
    wait_until(|| adds() >= 1).await;
    let mut samples = Vec::new();
    for i in 0..changes {
        // Let the previous reconcile finish before changing again.
        tokio::time::sleep(Duration::from_millis(800)).await;
        let before = adds();
        std::fs::write(manifests.join("a.yaml"), manifest(0, 11 + i)).unwrap();
        samples.push(wait_until(|| adds() > before).await);
    }
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

/// CPU seconds a process used so far (user + system), from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / per_second
}

/// CPU used by an idle daemon watching `manifests` files over `idle`.
async fn idle_cpu(manifests: usize, idle: Duration) -> f64 {
    let emulator = emulator(manifests, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("manifests");
    for a in 0..manifests {
        let sub = root.join(format!("team-{:02}", a % 10));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("{a}.yaml")), manifest(a, 50)).unwrap();
    }
    let daemon = start(dir.path(), &emulator);
    let accounts = manifests;
    wait_until(|| {
        let state = emulator.state();
        (0..accounts).all(|a| state.accounts[&format!("@TOA#_bench{a}")].subscribers.len() == 50)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = cpu_seconds(daemon.0.id());
    tokio::time::sleep(idle).await;
    cpu_seconds(daemon.0.id()) - before
}

/// Seconds from `signal` to the leader to the standby's first add, one round per entry
/// (issue 25: the standby waits on the lock itself).
async fn failover_after(signal: i32, server: &str, rounds: usize, total: usize) -> Vec<f64> {
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let db = subsync::testing::TestDatabase::create(server).unwrap();
        let emulator = emulator(10, 50).await;
        let dir = tempfile::tempdir().unwrap();
        let manifests = dir.path().join("manifests");
        std::fs::create_dir_all(&manifests).unwrap();
        for a in 0..10 {
            std::fs::write(manifests.join(format!("{a}.yaml")), manifest(a, total / 10)).unwrap();
        }
        let replica = |dir: &Path| start_with(dir, &emulator, &["--standby", "--state", db.url()]);
        let adds = || emulator.stats().calls(Api::AddSubscriber);
        let mut leader = replica(dir.path());
        wait_until(|| adds() >= 1).await;
        let _standby = replica(dir.path());
        // Well into the run, as a node failure would find it.
        wait_until(|| adds() >= (total / 100 / 4) as u64).await;
        // SAFETY: kill has no preconditions; the pid is our child's, not yet reaped.
        assert_eq!(unsafe { libc::kill(leader.0.id() as i32, signal) }, 0);
        let killed = Instant::now();
        leader.0.wait().unwrap();
        // Calls the leader sent before it died may still be counted for a moment (after
        // SIGTERM this also counts any of the standby's adds sent before the leader exited:
        // the time measured is then a little late, never early).
        tokio::time::sleep(Duration::from_millis(50)).await;
        let before = adds();
        let started = Instant::now();
        while adds() <= before {
            assert!(started.elapsed() < Duration::from_secs(60), "no takeover");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        samples.push(killed.elapsed().as_secs_f64());
        let expected = |a: usize| {
            (0..total / 10)
                .map(|i| format!("u{a}-{i:06}"))
                .collect::<Vec<_>>()
        };
        let started = Instant::now();
        loop {
            let state = emulator.state();
            let remote_done = (0..10).all(|a| {
                state.accounts[&format!("@TOA#_bench{a}")]
                    .subscribers
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    == expected(a)
            });
            let mut reader = subsync::ledger::Reader::open(db.location()).await.unwrap();
            let ledger = reader.snapshot().await.unwrap();
            reader.close().await;
            let ledger_done = (0..10).all(|a| {
                ledger
                    .accounts
                    .get(&format!("@TOA#_bench{a}"))
                    .is_some_and(|s| s.confirmed == expected(a))
            });
            if remote_done && ledger_done {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "never converged"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    samples
}

/// Resident memory of a process now, in MiB (`VmRSS`).
fn resident_mib(pid: u32) -> f64 {
    status_mib(pid, "VmRSS:")
}

/// Peak resident memory of a process so far, in MiB (`VmHWM`).
fn peak_mib(pid: u32) -> f64 {
    status_mib(pid, "VmHWM:")
}

/// A field of `/proc/PID/status` given in kB, in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// A directory of `accounts` manifests of `per_account` subscribers each (in `.txt.gz` lists),
/// and a ledger that confirms them all.
fn scale_workspace(accounts: usize, per_account: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(manifests.join("lists")).unwrap();
    let mut records = Vec::new();
    for a in 0..accounts {
        let ids: Vec<String> = (0..per_account).map(|i| format!("u{a}-{i:07}")).collect();
        common::write_gz_list(&manifests.join(format!("lists/{a:03}.txt.gz")), &ids);
        std::fs::write(
            manifests.join(format!("{a:03}.yaml")),
            scale_manifest(a, None),
        )
        .unwrap();
        let batch = subsync::ledger::Record::Batch {
            account: format!("@TOA#_bench{a}"),
            op: subsync::ledger::Op::Add,
            done: ids,
            unchanged: vec![],
            failed: vec![],
        };
        records.push(batch);
    }
    common::record(dir.path().join("state"), records);
    dir
}

/// Account `a`'s manifest: its list file, and `extra` listed inline when given.
fn scale_manifest(a: usize, extra: Option<&str>) -> String {
    let inline = extra.map_or(String::new(), |id| format!("  subscribers: [\"{id}\"]\n"));
    format!(
        "apiVersion: subsync/v1\nkind: SubscriberSet\nmetadata:\n  name: bench-{a}\nspec:\n  officialAccount: \"@TOA#_bench{a}\"\n  subscriberFiles: [\"lists/{a:03}.txt.gz\"]\n{inline}"
    )
}

/// `subsync watch` over `dir` with `args`, its log lines (watch at debug) sent to the receiver.
fn watch_logging(
    dir: &Path,
    emulator: &Emulator,
    per_account: usize,
    args: &[&str],
) -> (Daemon, std::sync::mpsc::Receiver<String>) {
    // Room for the subscribers a change adds inline.
    let max = (per_account + 1_000).max(100_000).to_string();
    let mut child = Command::new(common::binary())
        .args(["watch", "manifests", "--listen", "127.0.0.1:0"])
        .args(["--refresh-every", "0", "--max-subscribers", &max])
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn,subsync::watch=debug")
        .envs(common::workspace_env(dir, emulator))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (Daemon(child), rx)
}

/// Waits for a log line containing `what`; panics on an error line.
fn next_line(rx: &std::sync::mpsc::Receiver<String>, what: &str) {
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(600))
            .unwrap_or_else(|_| panic!("no {what}"));
        assert!(!line.contains("ERROR"), "{line}");
        if line.contains(what) {
            return;
        }
    }
}

/// A converged daemon over `accounts` x `per_account` subscribers resyncing every second:
/// resident memory after its start, and after each resync (one sample a resync).
async fn memory_at_scale(accounts: usize, per_account: usize, resyncs: usize) -> (f64, Vec<f64>) {
    let emulator = emulator(accounts, 0).await;
    let dir = scale_workspace(accounts, per_account);
    let (daemon, rx) = watch_logging(dir.path(), &emulator, per_account, &["--resync", "1s"]);
    let pid = daemon.0.id();
    // The start reads and plans everything once; each resync after it finds nothing changed.
    next_line(&rx, "resync: the set in force has converged");
    let started = resident_mib(pid);
    let mut samples = Vec::new();
    for _ in 0..resyncs {
        next_line(&rx, "resync: the set in force has converged");
        samples.push(resident_mib(pid));
    }
    drop(daemon);
    (started, samples)
}

/// What a daemon's memory did while its manifests kept changing.
struct UnderChanges {
    /// Peak resident memory of the whole run, its start included (`VmHWM`).
    peak: f64,
    /// Most resident memory sampled (every 50 ms) in the first and in the second half of the
    /// changes: the second no higher than the first means no growth.
    first_half: f64,
    second_half: f64,
    changes: usize,
    reconciles: usize,
}

/// A daemon over `accounts` x `per_account` subscribers, converged, while one manifest changes
/// every `every` for `span` (a busy repository): each change lists one more subscriber inline
/// in the next account's manifest (and drops the one it listed before), written as git writes
/// files (a new file renamed over the old).
async fn memory_under_changes(
    accounts: usize,
    per_account: usize,
    every: Duration,
    span: Duration,
) -> UnderChanges {
    let emulator = emulator(accounts, 0).await;
    let dir = scale_workspace(accounts, per_account);
    let (daemon, rx) = watch_logging(dir.path(), &emulator, per_account, &[]);
    let pid = daemon.0.id();
    next_line(&rx, "reconciled");
    let manifests = dir.path().join("manifests");
    let started = Instant::now();
    let mut samples: Vec<(Duration, f64)> = Vec::new();
    let mut changes = 0usize;
    let mut reconciles = 0usize;
    while started.elapsed() < span {
        let due = every * changes as u32;
        if started.elapsed() >= due {
            let a = changes % accounts;
            let file = manifests.join(format!("{a:03}.yaml"));
            let extra = format!("extra-{changes}");
            std::fs::write(file.with_extension("new"), scale_manifest(a, Some(&extra))).unwrap();
            std::fs::rename(file.with_extension("new"), &file).unwrap();
            changes += 1;
        }
        reconciles += rx
            .try_iter()
            .inspect(|line| assert!(!line.contains("ERROR"), "{line}"))
            .filter(|line| line.contains("reconciled"))
            .count();
        samples.push((started.elapsed(), resident_mib(pid)));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let half = span / 2;
    let most = |keep: &dyn Fn(Duration) -> bool| {
        samples
            .iter()
            .filter(|(at, _)| keep(*at))
            .map(|(_, mib)| *mib)
            .fold(0.0, f64::max)
    };
    let result = UnderChanges {
        peak: peak_mib(pid),
        first_half: most(&|at| at < half),
        second_half: most(&|at| at >= half),
        changes,
        reconciles,
    };
    drop(daemon);
    result
}

#[tokio::main]
async fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let only_memory = std::env::args().any(|a| a == "memory");
    if std::env::args().any(|a| a == "failover") {
        failover_rows(quick).await;
        return;
    }
    let only_changes = std::env::args().any(|a| a == "changes");
    // `-- latency`: the change-to-add latency, the idle daemon's CPU and the failover only.
    let only_latency = std::env::args().any(|a| a == "latency");
    if only_memory || (!quick && !only_changes && !only_latency) {
        let (accounts, per_account, resyncs) = if quick {
            (2, 1_000, 3)
        } else {
            (40, 100_000, 100)
        };
        let (first, samples) = memory_at_scale(accounts, per_account, resyncs).await;
        let last = samples.last().copied().unwrap_or(first);
        let most = samples.iter().copied().fold(first, f64::max);
        println!(
            "| resident memory of a converged daemon over {} subscribers ({accounts} accounts), resyncing every second: after the first resync, after {resyncs}, most | {first:.0} MiB, {last:.0} MiB, {most:.0} MiB |",
            accounts * per_account
        );
    }
    if only_memory || only_changes || (!quick && !only_latency) {
        let (accounts, per_account, span) = if quick && !only_changes {
            (2, 1_000, Duration::from_secs(3))
        } else {
            (40, 100_000, Duration::from_secs(240))
        };
        let run = memory_under_changes(accounts, per_account, Duration::from_secs(1), span).await;
        println!(
            "| resident memory of a daemon over {} subscribers ({accounts} accounts) while one manifest changes every second for {} s ({} changes, {} reconciles): peak, most in the first half, most in the second half | {:.0} MiB, {:.0} MiB, {:.0} MiB |",
            accounts * per_account,
            span.as_secs(),
            run.changes,
            run.reconciles,
            run.peak,
            run.first_half,
            run.second_half
        );
    }
    if only_memory || only_changes {
        return;
    }
    let (changes, idle) = if quick {
        (3, Duration::from_secs(2))
    } else {
        (20, Duration::from_secs(60))
    };
    let (median, slowest) = change_to_first_add(changes).await;
    let cpu = idle_cpu(100, idle).await;
    println!("| measurement | result |");
    println!("|---|--:|");
    println!(
        "| change saved → first add_subscriber at the emulator (default 500 ms debounce, 50 ms away), median of {changes} | {:.0} ms (slowest {:.0} ms) |",
        median.as_secs_f64() * 1000.0,
        slowest.as_secs_f64() * 1000.0
    );
    println!(
        "| CPU of an idle daemon watching 100 manifests, over {} s | {:.2} s ({:.3}% of one core) |",
        idle.as_secs(),
        cpu,
        100.0 * cpu / idle.as_secs_f64()
    );
    failover_rows(quick).await;
}

/// The failover rows of issue 25 (`-- failover` runs them alone): SIGKILL and SIGTERM of the
/// leader, the standby waiting on the lock (default flags).
async fn failover_rows(quick: bool) {
    let Ok(server) = std::env::var(subsync::testing::POSTGRES_URL_VAR) else {
        return;
    };
    let (rounds, total) = if quick { (1, 20_000) } else { (5, 100_000) };
    for (signal, name, target) in [
        (libc::SIGKILL, "SIGKILLed", "1.5 s"),
        (libc::SIGTERM, "SIGTERMed", "1 s"),
    ] {
        let mut samples = failover_after(signal, &server, rounds, total).await;
        samples.sort_by(f64::total_cmp);
        println!(
            "| failover: leader {name} mid-apply → standby's first add (standby waiting on the lock, PostgreSQL ledger), median of {rounds}, target {target} | {:.2} s (fastest {:.2} s, slowest {:.2} s; each run converged, ledger equal to the manifests) |",
            samples[samples.len() / 2],
            samples[0],
            samples[samples.len() - 1]
        );
    }
}
