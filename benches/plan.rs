//! Plan benchmark: N desired subscribers over 10 accounts, half inline in YAML and half in
//! `.txt.gz` subscriber files, against a ledger that already confirms 90% of them.
//! Targets: 1,000,000 desired in at most 2 s and 400 MB, growing about linearly (issue 3); with
//! the ledger on PostgreSQL, within 3x of the SQLite time (issue 10).
//!
//! Run with `cargo bench --bench plan`; the PostgreSQL rows need `SUBSYNC_TEST_POSTGRES_URL`
//! (`.ci/postgres start` prints one). Prints a Markdown table for the README.

#[path = "common.rs"]
mod common;

use std::io::Write;
use std::path::Path;

use subsync::ledger::{Ledger, Location, Record};
use subsync::testing::TestDatabase;

const ACCOUNTS: usize = 10;

fn user(account: usize, i: usize) -> String {
    format!("user-{account:02}-{i:07}")
}

fn prepare(dir: &Path, total: usize, ledger: &Location) {
    let per_account = total / ACCOUNTS;
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(manifests.join("lists")).unwrap();
    let mut ledger = Ledger::open(ledger, "bench").unwrap();
    for a in 0..ACCOUNTS {
        let account = format!("@TOA#_bench{a:02}");
        let ids: Vec<String> = (0..per_account).map(|i| user(a, i)).collect();
        let mut yaml = format!(
            "apiVersion: subsync/v1\nkind: SubscriberSet\nmetadata:\n  name: bench-{a:02}\nspec:\n  officialAccount: \"{account}\"\n"
        );
        if a % 2 == 0 {
            let list = format!("lists/{a:02}.txt.gz");
            let mut gz = flate2::write::GzEncoder::new(
                std::fs::File::create(manifests.join(&list)).unwrap(),
                flate2::Compression::default(),
            );
            for id in &ids {
                writeln!(gz, "{id}").unwrap();
            }
            gz.finish().unwrap();
            yaml.push_str(&format!("  subscriberFiles: [\"{list}\"]\n"));
        } else {
            yaml.push_str("  subscribers:\n");
            for id in &ids {
                yaml.push_str(&format!("    - \"{id}\"\n"));
            }
        }
        std::fs::write(manifests.join(format!("bench-{a:02}.yaml")), yaml).unwrap();
        let confirmed: Vec<String> = ids.into_iter().take(per_account * 9 / 10).collect();
        ledger
            .record(
                1,
                &[Record::Batch {
                    account,
                    op: subsync::ledger::Op::Add,
                    done: confirmed,
                    unchanged: vec![],
                    failed: vec![],
                }],
            )
            .unwrap();
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would run this too: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if quick {
        &[10_000]
    } else {
        &[100_000, 250_000, 500_000, 1_000_000]
    };
    let server = std::env::var(subsync::testing::POSTGRES_URL_VAR).ok();
    println!("| ledger | desired | confirmed in ledger | to add | wall time | peak RSS |");
    println!("|--|--:|--:|--:|--:|--:|");
    for &total in sizes {
        for postgres in [false, true] {
            let db = match (postgres, &server) {
                (true, Some(server)) => Some(TestDatabase::create(server).unwrap()),
                (true, None) => continue,
                (false, _) => None,
            };
            run_plan(total, db.as_ref());
        }
    }
}

fn run_plan(total: usize, db: Option<&TestDatabase>) {
    {
        let dir = tempfile::tempdir().unwrap();
        let (location, state, name) = match db {
            Some(db) => (db.location(), db.url().to_owned(), "PostgreSQL"),
            None => {
                let state = dir.path().join("state");
                (
                    Location::Sqlite(state.clone()),
                    state.display().to_string(),
                    "SQLite",
                )
            }
        };
        prepare(dir.path(), total, &location);
        let (out, elapsed, rss) = common::run_measured(
            &[
                "plan",
                "manifests",
                "--format",
                "json",
                "--out",
                "plan.json",
            ],
            &[("SUBSYNC_STATE", state)],
            dir.path(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let plan: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("plan.json")).unwrap()).unwrap();
        assert_eq!(plan["summary"]["add"].as_u64(), Some((total / 10) as u64));
        println!(
            "| {name} | {total} | {} | {} | {:.2} s | {rss:.0} MiB |",
            total * 9 / 10,
            total / 10,
            elapsed.as_secs_f64()
        );
    }
}
