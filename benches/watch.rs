//! `subsync watch` benchmark against the emulator:
//! - from a manifest change saved on disk to the first add_subscriber call reaching the
//!   emulator, with the default debounce (500 ms): median over 20 changes (target: 1 s);
//! - the CPU an idle daemon watching 100 manifests uses (target: none measurable);
//! - failover (issue 10), when `SUBSYNC_TEST_POSTGRES_URL` names a server: two `watch
//!   --standby` replicas on one PostgreSQL ledger, the leader SIGKILLed in the middle of a
//!   100,000-subscriber apply; from the kill to the standby's first add_subscriber call, median
//!   of 5 (target: 15 s), with the final remote state and ledger equal to the manifests;
//! - memory at scale (issue 16): a daemon over 4,000,000 desired subscribers (40 accounts of
//!   100,000 in `.txt.gz` lists) that the ledger already confirms, resyncing every second:
//!   resident memory after the start and after each of 100 resyncs (target: at most 128 MB,
//!   and not growing).
//!
//! Run with `cargo bench --bench watch` (`-- memory` for the last row alone); prints a
//! Markdown table for the README.

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
    let mut child = Command::new(env!("CARGO_BIN_EXE_subsync"))
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

/// Seconds from SIGKILL of the leader to the standby's first add, one round per entry.
async fn failover(server: &str, rounds: usize, total: usize) -> Vec<f64> {
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
        leader.0.kill().unwrap();
        let killed = Instant::now();
        leader.0.wait().unwrap();
        // Calls the leader sent before it died may still be counted for a moment.
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
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// A converged daemon over `accounts` x `per_account` subscribers resyncing every second:
/// resident memory after its start, and after each resync (one sample a resync).
async fn memory_at_scale(accounts: usize, per_account: usize, resyncs: usize) -> (f64, Vec<f64>) {
    let emulator = emulator(accounts, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(manifests.join("lists")).unwrap();
    let mut records = Vec::new();
    for a in 0..accounts {
        let ids: Vec<String> = (0..per_account).map(|i| format!("u{a}-{i:07}")).collect();
        let list = format!("lists/{a:03}.txt.gz");
        common::write_gz_list(&manifests.join(&list), &ids);
        std::fs::write(
            manifests.join(format!("{a:03}.yaml")),
            format!(
                "apiVersion: subsync/v1\nkind: SubscriberSet\nmetadata:\n  name: bench-{a}\nspec:\n  officialAccount: \"@TOA#_bench{a}\"\n  subscriberFiles: [\"{list}\"]\n"
            ),
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
    let max = per_account.max(100_000).to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_subsync"))
        .args(["watch", "manifests", "--listen", "127.0.0.1:0"])
        .args([
            "--resync",
            "1s",
            "--refresh-every",
            "0",
            "--max-subscribers",
            &max,
        ])
        .current_dir(dir.path())
        .env("RUST_LOG", "warn,subsync::watch=debug")
        .envs(common::workspace_env(dir.path(), &emulator))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let daemon = Daemon(child);
    let next = |what: &str| loop {
        let line = rx
            .recv_timeout(Duration::from_secs(600))
            .unwrap_or_else(|_| panic!("no {what}"));
        if line.contains("ERROR") {
            panic!("{line}");
        }
        if line.contains(what) {
            return;
        }
    };
    // The start reads and plans everything once; each resync after it finds nothing changed.
    next("resync: the set in force has converged");
    let started = resident_mib(pid);
    let mut samples = Vec::new();
    for _ in 0..resyncs {
        next("resync: the set in force has converged");
        samples.push(resident_mib(pid));
    }
    drop(daemon);
    (started, samples)
}

#[tokio::main]
async fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let only_memory = std::env::args().any(|a| a == "memory");
    if only_memory || !quick {
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
        if only_memory {
            return;
        }
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
    if let Ok(server) = std::env::var(subsync::testing::POSTGRES_URL_VAR) {
        let (rounds, total) = if quick { (1, 20_000) } else { (5, 100_000) };
        let mut samples = failover(&server, rounds, total).await;
        samples.sort_by(f64::total_cmp);
        println!(
            "| failover: leader SIGKILLed mid-apply → standby's first add (takeover every 5 s, PostgreSQL ledger), median of {rounds} | {:.1} s (slowest {:.1} s; each run converged, ledger equal to the manifests) |",
            samples[samples.len() / 2],
            samples[samples.len() - 1]
        );
    }
}
