//! Plan benchmark: `subsync plan --format json --out plan.json` over desired subscribers in
//! `.txt.gz` lists (and, in the first rows, half inline in YAML), against a ledger already
//! confirming 90% of them; wall time and the plan process's own peak RSS.
//!
//! Targets: 1,000,000 desired in 10 accounts within 2 s and 400 MB, about linear (issue 3);
//! PostgreSQL within 1.3x of SQLite at 1M (issue 16; was 3x); 4,000,000 in 40 accounts within
//! 256 MB and 0.58 s per million; 10,000,000 in 100 accounts within 300 MB; one account of
//! 1,000,000 within 200 MB (issue 16); 10,000,000 in 100 accounts at 0.15 s per million within
//! 200 MB (issue 25).
//!
//! Anchor (issue 25): beside each SQLite row, `benches/plan_anchor.py`, the plain script a team
//! might write instead (PyYAML's C loader, no validation), over the same files and ledger,
//! alternating with subsync in every round; target: subsync at least 10x faster at 1M.
//!
//! After a bulk load (issue 25): a fresh ledger filled by `ledger copy`, by `import` or by a
//! first big `apply`, then planned once: PostgreSQL within 1.3x of SQLite loaded the same way.
//! Both are loaded first, then planned back to back, and the ratio printed (on this shared
//! machine two plans a minute apart differ more than the two backends do); `-- after` runs
//! these rows alone.
//!
//! `cargo bench --bench plan` runs every row (the PostgreSQL ones when
//! `SUBSYNC_TEST_POSTGRES_URL` is set); `cargo bench --bench plan -- 4M` runs the rows whose
//! name contains `4M`. Each row is planned `SUBSYNC_BENCH_ROUNDS` times (3 by default) and
//! its range shown; `SUBSYNC_BENCH_KEEP=DIR` keeps each row's files and ledger in `DIR` (to
//! profile on them); `SUBSYNC_BENCH_BINARY` measures another build. Prints a Markdown table
//! for the README.

#[path = "common.rs"]
mod common;

use std::path::Path;

use subsync::ledger::{Location, Record};
use subsync::testing::TestDatabase;

/// One row: `accounts` accounts of `per_account` desired subscribers each.
struct Scenario {
    name: &'static str,
    accounts: usize,
    per_account: usize,
    /// Half of the accounts list their subscribers inline in YAML, the rest in `.txt.gz`.
    inline_half: bool,
    postgres: bool,
    /// PostgreSQL only: `VACUUM ANALYZE` after loading, as autovacuum leaves a ledger in use
    /// (the first read of freshly written rows also sets their hint bits, which costs the
    /// server as much again).
    vacuumed: bool,
}

const fn row(
    name: &'static str,
    accounts: usize,
    per_account: usize,
    inline_half: bool,
    postgres: bool,
) -> Scenario {
    Scenario {
        name,
        accounts,
        per_account,
        inline_half,
        postgres,
        vacuumed: false,
    }
}

const SCENARIOS: &[Scenario] = &[
    row("100k SQLite", 10, 10_000, true, false),
    row("100k PostgreSQL", 10, 10_000, true, true),
    row("250k SQLite", 10, 25_000, true, false),
    row("250k PostgreSQL", 10, 25_000, true, true),
    row("500k SQLite", 10, 50_000, true, false),
    row("500k PostgreSQL", 10, 50_000, true, true),
    row("1M SQLite", 10, 100_000, true, false),
    row("1M PostgreSQL", 10, 100_000, true, true),
    Scenario {
        vacuumed: true,
        ..row("1M PostgreSQL vacuumed", 10, 100_000, true, true)
    },
    row("1M in one account SQLite", 1, 1_000_000, false, false),
    row("4M in 40 accounts SQLite", 40, 100_000, false, false),
    row("10M in 100 accounts SQLite", 100, 100_000, false, false),
];

fn user(account: usize, i: usize) -> String {
    format!("user-{account:03}-{i:07}")
}

fn prepare(dir: &Path, s: &Scenario, ledger: &Location) {
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(manifests.join("lists")).unwrap();
    let mut records = Vec::new();
    for a in 0..s.accounts {
        let account = format!("@TOA#_bench{a:03}");
        let ids: Vec<String> = (0..s.per_account).map(|i| user(a, i)).collect();
        let mut yaml = format!(
            "apiVersion: subsync/v1\nkind: SubscriberSet\nmetadata:\n  name: bench-{a:03}\nspec:\n  officialAccount: \"{account}\"\n"
        );
        if s.inline_half && a % 2 == 1 {
            yaml.push_str("  subscribers:\n");
            for id in &ids {
                yaml.push_str(&format!("    - \"{id}\"\n"));
            }
        } else {
            let list = format!("lists/{a:03}.txt.gz");
            common::write_gz_list(&manifests.join(&list), &ids);
            yaml.push_str(&format!("  subscriberFiles: [\"{list}\"]\n"));
        }
        std::fs::write(manifests.join(format!("bench-{a:03}.yaml")), yaml).unwrap();
        let confirmed: Vec<String> = ids.into_iter().take(s.per_account * 9 / 10).collect();
        records.push(Record::Batch {
            account,
            op: subsync::ledger::Op::Add,
            done: confirmed,
            unchanged: vec![],
            failed: vec![],
        });
    }
    common::record(ledger, records);
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this too: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let server = std::env::var(subsync::testing::POSTGRES_URL_VAR).ok();
    println!("Measured on {}.\n", common::machine());
    let rounds = std::env::var("SUBSYNC_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    println!(
        "| ledger | accounts | desired | confirmed in ledger | to add | wall time | s per million | peak RSS | anchor: PyYAML script | subsync's speed-up |"
    );
    println!("|--|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    if quick {
        run(&row("quick", 2, 5_000, true, false), None, 1);
        return;
    }
    for s in SCENARIOS {
        if !filter.is_empty() && !filter.iter().any(|f| s.name.contains(f.as_str())) {
            continue;
        }
        let db = match (s.postgres, &server) {
            (true, Some(server)) => Some(TestDatabase::create(server).unwrap()),
            (true, None) => continue,
            (false, _) => None,
        };
        run(s, db.as_ref(), rounds);
    }
    after_bulk_loads(&filter, server.as_deref());
}

fn run(s: &Scenario, db: Option<&TestDatabase>, rounds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (location, state, name) = match db {
        Some(db) if s.vacuumed => (db.location(), db.url().to_owned(), "PostgreSQL, vacuumed"),
        Some(db) => (db.location(), db.url().to_owned(), "PostgreSQL"),
        None => {
            let state = dir.path().join("state");
            (
                Location::sqlite(state.clone()),
                state.display().to_string(),
                "SQLite",
            )
        }
    };
    prepare(dir.path(), s, &location);
    if let Ok(keep) = std::env::var("SUBSYNC_BENCH_KEEP") {
        copy_tree(dir.path(), &Path::new(&keep).join(s.name.replace(' ', "-")));
    }
    if let (Some(db), true) = (db, s.vacuumed) {
        db.execute("VACUUM ANALYZE").unwrap();
    }
    let total = s.accounts * s.per_account;
    let adds = s.accounts * (s.per_account - s.per_account * 9 / 10);
    let max = s.per_account.max(100_000);
    // The anchor reads the same manifests and SQLite ledger, alternating with subsync.
    let anchor = db.is_none() && anchor_available();
    let (mut times, mut anchors, mut rss) = (Vec::new(), Vec::new(), 0f64);
    for _ in 0..rounds {
        let (elapsed, peak) = plan_once(dir.path(), &state, s, max);
        times.push(elapsed);
        rss = rss.max(peak);
        if anchor {
            anchors.push(run_anchor(dir.path(), adds));
        }
    }
    let per_million = |t: f64| t / (total as f64 / 1e6);
    let (ratio, anchor_time) = if anchor {
        // Same-round ratios: each anchor run against the subsync run just before it.
        let ratios: Vec<f64> = anchors.iter().zip(&times).map(|(a, t)| a / t).collect();
        (
            format!("{}x", spread(&ratios, 1)),
            format!("{} s", spread(&anchors, 2)),
        )
    } else {
        ("n/a".into(), "n/a".into())
    };
    println!(
        "| {name} | {} | {total} | {} | {adds} | {} s | {} s | {rss:.0} MiB | {anchor_time} | {ratio} |",
        s.accounts,
        total - adds,
        spread(&times, 2),
        spread(
            &times.iter().copied().map(per_million).collect::<Vec<_>>(),
            2
        ),
    );
}

/// `low-high` of `values` (or the one value), with `decimals`.
fn spread(values: &[f64], decimals: usize) -> String {
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(0.0, f64::max);
    if format!("{low:.decimals$}") == format!("{high:.decimals$}") {
        format!("{low:.decimals$}")
    } else {
        format!("{low:.decimals$}-{high:.decimals$}")
    }
}

/// The anchor needs Python 3 with PyYAML built on libyaml (its C loader).
fn anchor_available() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import yaml; yaml.CSafeLoader"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs the anchor script (`benches/plan_anchor.py`) over `dir`; its wall time in seconds.
fn run_anchor(dir: &Path, adds: usize) -> f64 {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/plan_anchor.py");
    let started = std::time::Instant::now();
    let out = std::process::Command::new("python3")
        .args([script, "manifests", "state/ledger.db", "anchor.json"])
        .current_dir(dir)
        .output()
        .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        adds.to_string()
    );
    elapsed
}

/// Copies the prepared directory `from` to `to` (`SUBSYNC_BENCH_KEEP`, to profile on it).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The plan's summary, read without holding the plan (its lists can be large).
fn summary_of(reader: impl std::io::Read) -> serde_json::Value {
    #[derive(serde::Deserialize)]
    struct Head {
        summary: serde_json::Value,
    }
    let head: Head = serde_json::from_reader(reader).unwrap();
    head.summary
}

/// How a fresh ledger is filled before it is planned once (issue 25).
#[derive(Clone, Copy)]
enum Load {
    /// `subsync ledger copy` from a SQLite ledger.
    Copied,
    /// `subsync import` of the live lists, which hold the 90% confirmed.
    Imported,
    /// A first `subsync apply` of the 90%; the manifests then grow to all.
    Applied,
}

const LOADS: &[(&str, Load)] = &[
    ("1M after ledger copy", Load::Copied),
    ("1M after import", Load::Imported),
    ("1M after first apply", Load::Applied),
];

/// The rows after a bulk load, SQLite and PostgreSQL side by side (with a server only).
fn after_bulk_loads(filter: &[String], server: Option<&str>) {
    let Some(server) = server else {
        return;
    };
    let chosen: Vec<&(&str, Load)> = LOADS
        .iter()
        .filter(|(name, _)| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str())))
        .collect();
    if chosen.is_empty() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = row("", 10, 100_000, true, false);
    println!(
        "\n| 1,000,000 desired, 900,000 confirmed, planned once right after | wall time | peak RSS | PostgreSQL / SQLite |"
    );
    println!("|--|--:|--:|--:|");
    for (name, how) in chosen {
        let on_sqlite = tempfile::tempdir().unwrap();
        let sqlite = on_sqlite.path().join("state").display().to_string();
        load(on_sqlite.path(), &s, *how, &sqlite, &rt);
        let db = TestDatabase::create(server).unwrap();
        let on_postgres = tempfile::tempdir().unwrap();
        load(on_postgres.path(), &s, *how, db.url(), &rt);
        let (sqlite_time, sqlite_rss) = plan_once(on_sqlite.path(), &sqlite, &s, s.per_account);
        let (time, rss) = plan_once(on_postgres.path(), db.url(), &s, s.per_account);
        println!("| SQLite, {name} | {sqlite_time:.2} s | {sqlite_rss:.0} MiB | |");
        println!(
            "| PostgreSQL, {name} | {time:.2} s | {rss:.0} MiB | {:.2}x |",
            time / sqlite_time
        );
    }
}

/// Writes the manifests of `s` in `dir` and fills the fresh ledger at `state` as `how` says,
/// through the real commands.
fn load(dir: &Path, s: &Scenario, how: Load, state: &str, rt: &tokio::runtime::Runtime) {
    // Manifests come from `prepare`, which also fills a ledger: this one is not planned.
    let scratch = Location::sqlite(dir.join("scratch"));
    let max = s.per_account.to_string();
    let subsync = |args: &[&str], env: &[(&str, String)]| {
        let (out, _, _) = common::run_measured(args, env, dir);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let accounts: Vec<String> = (0..s.accounts)
        .map(|a| format!("@TOA#_bench{a:03}"))
        .collect();
    let remote = |seeded: bool| {
        rt.block_on(async {
            let emulator = common::emulator(0, 0, 0.0, 0).await;
            emulator.ensure_accounts(&accounts).await;
            for (a, account) in accounts.iter().enumerate().filter(|_| seeded) {
                let confirmed: Vec<String> =
                    (0..s.per_account * 9 / 10).map(|i| user(a, i)).collect();
                emulator.seed_subscribers(account, &confirmed);
            }
            emulator
        })
    };
    let bulk = |command: &str, emulator: &subsync::emulator::Emulator| {
        let mut env = common::workspace_env(dir, emulator).to_vec();
        env.retain(|(k, _)| *k != "SUBSYNC_STATE");
        env.push(("SUBSYNC_STATE", state.to_owned()));
        subsync(
            &[
                command,
                "manifests",
                "--qps",
                "10000",
                "--max-subscribers",
                &max,
            ],
            &env,
        );
    };
    match how {
        Load::Copied => {
            let source = dir.join("source");
            prepare(dir, s, &Location::sqlite(source.clone()));
            let source = source.display().to_string();
            subsync(&["ledger", "copy", "--from", &source, "--to", state], &[]);
        }
        Load::Imported => {
            prepare(dir, s, &scratch);
            bulk("import", &remote(true));
        }
        Load::Applied => {
            let first = row("", s.accounts, s.per_account * 9 / 10, s.inline_half, false);
            prepare(dir, &first, &scratch);
            bulk("apply", &remote(false));
            prepare(dir, s, &scratch);
        }
    }
}

/// Plans `s` in `dir` against the ledger at `state` once, each account capped at `max`
/// subscribers, checking the plan's adds: wall time (s) and peak RSS (MiB).
fn plan_once(dir: &Path, state: &str, s: &Scenario, max: usize) -> (f64, f64) {
    let max = max.to_string();
    let (out, elapsed, rss) = common::run_measured(
        &[
            "plan",
            "manifests",
            "--format",
            "json",
            "--out",
            "plan.json",
            "--max-subscribers",
            &max,
        ],
        &[("SUBSYNC_STATE", state.to_owned())],
        dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan = std::fs::File::open(dir.join("plan.json")).unwrap();
    let adds = s.accounts * (s.per_account - s.per_account * 9 / 10);
    assert_eq!(
        summary_of(std::io::BufReader::new(plan))["add"].as_u64(),
        Some(adds as u64)
    );
    (elapsed.as_secs_f64(), rss)
}
