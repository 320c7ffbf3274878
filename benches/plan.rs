//! Plan benchmark: `subsync plan --format json --out plan.json` over desired subscribers in
//! `.txt.gz` lists (and, in the first rows, half inline in YAML), against a ledger already
//! confirming 90% of them; wall time and the plan process's own peak RSS.
//!
//! Targets: 1,000,000 desired in 10 accounts within 2 s and 400 MB, about linear (issue 3);
//! PostgreSQL within 1.3x of SQLite at 1M (issue 16; was 3x); 4,000,000 in 40 accounts within
//! 256 MB and 0.58 s per million; 10,000,000 in 100 accounts within 300 MB; one account of
//! 1,000,000 within 200 MB (issue 16).
//!
//! `cargo bench --bench plan` runs every row (the PostgreSQL ones when
//! `SUBSYNC_TEST_POSTGRES_URL` is set); `cargo bench --bench plan -- 4M` runs the rows whose
//! name contains `4M`. Prints a Markdown table for the README.

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
    println!(
        "| ledger | accounts | desired | confirmed in ledger | to add | wall time | s per million | peak RSS |"
    );
    println!("|--|--:|--:|--:|--:|--:|--:|--:|");
    if quick {
        run(&row("quick", 2, 5_000, true, false), None);
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
        run(s, db.as_ref());
    }
}

fn run(s: &Scenario, db: Option<&TestDatabase>) {
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
    if let (Some(db), true) = (db, s.vacuumed) {
        db.execute("VACUUM ANALYZE").unwrap();
    }
    let total = s.accounts * s.per_account;
    let max = s.per_account.max(100_000).to_string();
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
        &[("SUBSYNC_STATE", state)],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let adds = s.accounts * (s.per_account - s.per_account * 9 / 10);
    let plan = std::fs::File::open(dir.path().join("plan.json")).unwrap();
    let summary = summary_of(std::io::BufReader::new(plan));
    assert_eq!(summary["add"].as_u64(), Some(adds as u64));
    println!(
        "| {name} | {} | {total} | {} | {adds} | {:.2} s | {:.2} s | {rss:.0} MiB |",
        s.accounts,
        total - adds,
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() / (total as f64 / 1e6)
    );
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
