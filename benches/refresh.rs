//! Refresh benchmark: `subsync import` reading live lists from the emulator (50 ms a call,
//! 200 calls/s per command). Target (issues 9 and 16): 200,000 subscribers over 20 accounts,
//! read together, at no less than 90% of the 200 calls/s ceiling (1,000 pages of 200)
//! measured on the whole process, with memory that does not grow with the account size.
//!
//! Run with `cargo bench --bench refresh`; prints a Markdown table for the README.

#[path = "common.rs"]
mod common;

use subsync::tencent::api::Command;

struct Row {
    accounts: usize,
    subscribers: usize,
    secs: f64,
    calls: u64,
    /// From the first page to the last, as the emulator saw them.
    paging_secs: f64,
    /// From the process's start to the first page's answer (the emulator counts after its latency).
    first_page: f64,
    rss: f64,
}

async fn import(accounts: usize, per_account: usize) -> Row {
    let emulator = common::emulator(accounts, 50, 0.0, 200).await;
    // Seed the live lists directly: they exist before subsync does.
    let mut manifests = String::new();
    for a in 0..accounts {
        let ids: Vec<String> = (0..per_account).map(|i| format!("u{a}-{i:07}")).collect();
        emulator.seed_subscribers(&format!("@TOA#_bench{a}"), &ids);
        manifests.push_str(&format!(
            "---\napiVersion: subsync/v1\nkind: SubscriberSet\nmetadata:\n  name: bench-{a}\nspec:\n  officialAccount: \"@TOA#_bench{a}\"\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
    std::fs::write(dir.path().join("manifests/all.yaml"), manifests).unwrap();
    let env = common::workspace_env(dir.path(), &emulator);
    let pages = (accounts * per_account).div_ceil(200) as u64;
    let started = std::time::Instant::now();
    let watch = {
        let emulator = &emulator;
        async move {
            let calls = || emulator.stats().calls(Command::GetSubscriberInfo);
            while calls() == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            let first = std::time::Instant::now();
            while calls() < pages {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            (first.elapsed(), first - started)
        }
    };
    let run = tokio::task::spawn_blocking({
        let cwd = dir.path().to_owned();
        move || common::run_measured(&["import", "manifests", "--format", "json"], &env, &cwd)
    });
    let ((paging, first_page), run) = tokio::join!(watch, run);
    let (out, elapsed, rss) = run.unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(
        report["refresh"]["seen"].as_u64(),
        Some((accounts * per_account) as u64),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats = emulator.stats();
    Row {
        accounts,
        subscribers: accounts * per_account,
        secs: elapsed.as_secs_f64(),
        calls: stats.calls(Command::GetSubscriberInfo),
        paging_secs: paging.as_secs_f64(),
        first_page: first_page.as_secs_f64(),
        rss,
    }
}

#[tokio::main]
async fn main() {
    println!("Measured on {}.\n", common::machine());
    let quick = !std::env::args().any(|a| a == "--bench");
    // `cargo bench --bench refresh -- 20` runs the rows of 20 accounts.
    let filter: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rounds: usize = std::env::var("SUBSYNC_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let sizes: &[(usize, usize)] = if quick {
        &[(2, 1_000)]
    } else {
        &[(10, 5_000), (10, 20_000), (20, 10_000)]
    };
    println!(
        "| accounts | subscribers | pages | wall time (whole process) | pages/s | % of 200 calls/s | first page answered at | paging window | pages/s while paging | % of 200 calls/s | after the last page | peak RSS |"
    );
    println!("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for _ in 0..rounds {
        for &(accounts, per) in sizes {
            if !filter.is_empty() && !filter.contains(&accounts) {
                continue;
            }
            let r = import(accounts, per).await;
            let rate = r.calls as f64 / r.secs;
            // The window spans the gaps between the first page and the last: one fewer than pages.
            let paging = (r.calls - 1) as f64 / r.paging_secs;
            println!(
                "| {} | {} | {} | {:.2} s | {:.0} | {:.1}% | {:.2} s | {:.2} s | {:.0} | {:.1}% | {:.2} s | {:.0} MiB |",
                r.accounts,
                r.subscribers,
                r.calls,
                r.secs,
                rate,
                100.0 * rate / 200.0,
                r.first_page,
                r.paging_secs,
                paging,
                100.0 * paging / 200.0,
                r.secs - r.first_page - r.paging_secs,
                r.rss
            );
        }
    }
}
