//! Apply benchmark against the emulator (latency per call, limit 200 calls/s):
//! - 100,000 new subscribers at 50 ms: target at least 90% of the 20,000 subscribers/s ceiling,
//!   with no rate-limit answer caused by subsync;
//! - the same with 10% injected faults: must converge with no subscriber lost;
//! - the same with the ledger on PostgreSQL (issue 10: still at least 90% of the ceiling), when
//!   `SUBSYNC_TEST_POSTGRES_URL` names a server (`.ci/postgres start` prints one);
//! - 100 ms and 250 ms away (a far region), with default flags: the limiter must stay
//!   saturated (at least 85% of the ceiling at 250 ms);
//! - `apply --sandbox` with 150,000 subscribers (sandbox at 200 calls/s, 40-60 ms): the
//!   sandbox's own persistence must not slow the run below 90% of the ceiling;
//! - for comparison, a plain sequential client (one call at a time), measured in the same run;
//! - the emulator's own capacity on loopback, with no latency and no limits.
//!
//! Each `subsync apply` row also says when the emulator answered the first and the last add
//! (from the process's start, its latency included) and its share of the paced ceiling: the account probe's round
//! trip, 1,000 calls at the default 190 a second (evenly spaced, no burst), and the last add's
//! round trip (issue 25: at least 97% at 50 ms).
//!
//! Run with `cargo bench --bench apply` (`-- 250` for the scenarios whose name holds `250`;
//! `SUBSYNC_BENCH_ROUNDS=N` runs them N times); prints a Markdown table for the README.

#[path = "common.rs"]
mod common;

use std::time::Instant;

use subsync::emulator::Emulator;
use subsync::tencent::Api;
use subsync::tencent::api::Command;
use subsync::tencent::endpoint::Endpoint;
use subsync::tencent::usersig::SecretKey;
use subsync::tencent::{Client, ClientConfig};

use common::{APP, KEY};

const ACCOUNTS: usize = 10;

async fn emulator(latency_ms: u64, fault_rate: f64, qps: u32) -> Emulator {
    common::emulator(ACCOUNTS, latency_ms, fault_rate, qps).await
}

fn ids(a: usize, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("u{a}-{i:06}")).collect()
}

struct Row {
    scenario: String,
    subscribers: usize,
    secs: f64,
    rate_limited: u64,
    requests: u64,
    converged: bool,
    /// For runs of `subsync apply` against the emulator.
    timeline: Option<Timeline>,
}

async fn run_apply(scenario: &str, total: usize, latency_ms: u64, fault_rate: f64) -> Row {
    run_apply_on(scenario, total, latency_ms, fault_rate, None).await
}

/// `ledger`: a PostgreSQL database to keep the ledger in instead of a directory.
async fn run_apply_on(
    scenario: &str,
    total: usize,
    latency_ms: u64,
    fault_rate: f64,
    ledger: Option<&subsync::testing::TestDatabase>,
) -> Row {
    let emulator = emulator(latency_ms, fault_rate, 200).await;
    let dir = tempfile::tempdir().unwrap();
    write_manifests(dir.path(), total);
    let mut env = common::workspace_env(dir.path(), &emulator);
    if let Some(db) = ledger {
        env[0].1 = db.url().to_owned();
    }
    let calls = total.div_ceil(100) as u64;
    let started = Instant::now();
    // When the emulator has answered the first add, and the last (it counts after its latency).
    let window = {
        let emulator = &emulator;
        async move {
            let adds = || emulator.stats().calls(Command::AddSubscriber);
            while adds() == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            let first = started.elapsed();
            while adds() < calls {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            (first, started.elapsed())
        }
    };
    let run = tokio::task::spawn_blocking({
        let cwd = dir.path().to_owned();
        move || common::run_measured(&["apply", "manifests", "--format", "json"], &env, &cwd)
    });
    let ((first_add, last_add), run) = tokio::join!(window, run);
    let (out, elapsed, _) = run.unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    let state = emulator.state();
    let converged = (0..ACCOUNTS).all(|a| {
        state.accounts[&format!("@TOA#_bench{a}")]
            .subscribers
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            == ids(a, total / ACCOUNTS)
    });
    assert_eq!(
        summary["result"],
        "converged",
        "{scenario}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    Row {
        scenario: scenario.into(),
        subscribers: total,
        secs: elapsed.as_secs_f64(),
        rate_limited: emulator.stats().count(Command::AddSubscriber, "60007"),
        requests: summary["requests"].as_u64().unwrap_or(0),
        converged,
        timeline: Some(Timeline {
            first_add: first_add.as_secs_f64(),
            last_add: last_add.as_secs_f64(),
            latency: latency_ms as f64 / 1000.0,
            calls,
        }),
    }
}

/// When the emulator answered the adds, from the process's start, for one run.
struct Timeline {
    first_add: f64,
    last_add: f64,
    latency: f64,
    calls: u64,
}

impl Timeline {
    /// The fastest the default pace allows this run: its calls at 190 a second (evenly
    /// spaced, no burst), after the account probe's round trip and before the last add's
    /// answer.
    fn paced(&self) -> f64 {
        let pace = f64::from(subsync::settings::DEFAULT_QPS);
        self.latency + (self.calls - 1) as f64 / pace + self.latency
    }
}

fn write_manifests(dir: &std::path::Path, total: usize) {
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    for a in 0..ACCOUNTS {
        let list: Vec<String> = ids(a, total / ACCOUNTS)
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect();
        let yaml = format!(
            "apiVersion: subsync/v1\nkind: SubscriberSet\nmetadata:\n  name: bench-{a}\nspec:\n  officialAccount: \"@TOA#_bench{a}\"\n  subscribers: [{}]\n",
            list.join(", ")
        );
        std::fs::write(manifests.join(format!("{a}.yaml")), yaml).unwrap();
    }
}

/// `apply --sandbox`: the in-process emulator with its journal, as a new user first meets it.
async fn run_sandbox(total: usize) -> Row {
    let dir = tempfile::tempdir().unwrap();
    write_manifests(dir.path(), total);
    std::fs::write(
        dir.path().join("sandbox.yaml"),
        "qps: 200\nlatencyMs: {min: 40, max: 60}\n",
    )
    .unwrap();
    let env = [(
        "SUBSYNC_STATE",
        dir.path().join("state").display().to_string(),
    )];
    let (out, elapsed, _) = tokio::task::spawn_blocking({
        let cwd = dir.path().to_owned();
        move || {
            common::run_measured(
                &["apply", "--sandbox", "manifests", "--format", "json"],
                &env,
                &cwd,
            )
        }
    })
    .await
    .unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    assert_eq!(summary["result"], "converged", "sandbox: {summary}");
    Row {
        scenario: "subsync apply --sandbox, 40-60 ms".into(),
        subscribers: total,
        secs: elapsed.as_secs_f64(),
        rate_limited: 0,
        requests: summary["requests"].as_u64().unwrap_or(0),
        converged: summary["totals"]["added"].as_u64() == Some(total as u64),
        timeline: None,
    }
}

async fn run_sequential(total: usize, latency_ms: u64) -> Row {
    let emulator = emulator(latency_ms, 0.0, 200).await;
    let config = ClientConfig::new(
        Endpoint::parse(&emulator.url()).unwrap(),
        APP,
        "administrator".into(),
        SecretKey::new(KEY).unwrap(),
    );
    let client = Client::new(config).unwrap();
    let all = ids(0, total);
    let started = Instant::now();
    for chunk in all.chunks(100) {
        client.add_subscriber("@TOA#_bench0", chunk).await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let converged = emulator.state().accounts["@TOA#_bench0"].subscribers.len() == total;
    Row {
        scenario: format!("sequential client, {latency_ms} ms"),
        subscribers: total,
        secs,
        rate_limited: 0,
        requests: total.div_ceil(100) as u64,
        converged,
        timeline: None,
    }
}

#[tokio::main]
async fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let n = if quick { 2_000 } else { 100_000 };
    // `cargo bench --bench apply -- 250` runs the scenarios whose name holds `250`.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let rounds: usize = std::env::var("SUBSYNC_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let postgres = std::env::var(subsync::testing::POSTGRES_URL_VAR)
        .ok()
        .map(|server| subsync::testing::TestDatabase::create(&server).unwrap());
    println!("Measured on {}.\n", common::machine());
    let mut rows = Vec::new();
    for _ in 0..rounds {
        for (name, latency, faults) in [
            ("subsync apply, 50 ms", 50, 0.0),
            ("subsync apply, 50 ms, 10% faults", 50, 0.1),
        ] {
            if wanted(name) {
                rows.push(run_apply(name, n, latency, faults).await);
            }
        }
        if let Some(db) = &postgres {
            let name = "subsync apply, 50 ms, PostgreSQL ledger";
            if wanted(name) {
                rows.push(run_apply_on(name, n, 50, 0.0, Some(db)).await);
            }
        }
        for (name, latency) in [
            ("subsync apply, 100 ms", 100),
            ("subsync apply, 250 ms", 250),
        ] {
            if wanted(name) {
                rows.push(run_apply(name, n, latency, 0.0).await);
            }
        }
        if wanted("subsync apply --sandbox, 40-60 ms") {
            rows.push(run_sandbox(n * 3 / 2).await);
        }
        if wanted("sequential client, 50 ms") {
            rows.push(run_sequential(n / 5, 50).await);
        }
    }
    println!(
        "| scenario | subscribers | wall time | subscribers/s | % of 20,000/s | % of the paced ceiling | first add answered at | last add answered at | requests | 60007 answers | converged |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|");
    for r in rows {
        let rate = r.subscribers as f64 / r.secs;
        let (paced, first, last) = match &r.timeline {
            Some(t) => (
                format!("{:.1}%", 100.0 * t.paced() / r.secs),
                format!("{:.2} s", t.first_add),
                format!("{:.2} s", t.last_add),
            ),
            None => ("".into(), "".into(), "".into()),
        };
        println!(
            "| {} | {} | {:.2} s | {:.0} | {:.1}% | {paced} | {first} | {last} | {} | {} | {} |",
            r.scenario,
            r.subscribers,
            r.secs,
            rate,
            100.0 * rate / 20_000.0,
            r.requests,
            r.rate_limited,
            if r.converged { "yes" } else { "NO" }
        );
    }
    if !filter.is_empty() {
        return;
    }
    let (requests, secs) = emulator_capacity(if quick { 1 } else { 5 }).await;
    println!(
        "\nemulator capacity on loopback: {requests} add_subscriber calls (one subscriber each, 64 in flight) in {secs:.2} s = {:.0} requests/s",
        requests as f64 / secs
    );
}

/// How many calls the emulator answers per second with no latency and no limit.
async fn emulator_capacity(seconds: u64) -> (u64, f64) {
    let emulator = emulator(0, 0.0, 0).await;
    let config = ClientConfig::new(
        Endpoint::parse(&emulator.url()).unwrap(),
        APP,
        "administrator".into(),
        SecretKey::new(KEY).unwrap(),
    );
    let client = std::sync::Arc::new(Client::new(config).unwrap());
    let started = Instant::now();
    let deadline = started + std::time::Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut i = 0u64;
                while Instant::now() < deadline {
                    client
                        .add_subscriber("@TOA#_bench0", &[format!("load-{t}-{i}")])
                        .await
                        .unwrap();
                    i += 1;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (
        emulator.stats().count(Command::AddSubscriber, "0"),
        started.elapsed().as_secs_f64(),
    )
}
