//! `subsync status`: what the ledger holds, per account, and the latest runs.

use std::fmt::Write;

use serde::Serialize;

use crate::clock::rfc3339_millis;
use crate::engine::Status;

/// The status as JSON (`status --format json`).
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub ledger: String,
    pub exists: bool,
    pub lineage: Option<String>,
    pub serial: u64,
    pub accounts: Vec<StatusAccount>,
    pub runs: Vec<StatusRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusAccount {
    pub official_account: String,
    pub confirmed: u64,
    pub failed: u64,
    pub max_subscribers: Option<u64>,
    pub subscriber_num: Option<u64>,
    pub limit_reached_at: Option<String>,
    pub missing_since: Option<String>,
    pub invalid_since: Option<String>,
    /// When the live list was last read, and the drift that refresh found.
    pub refreshed_at: Option<String>,
    pub drift_added: u64,
    pub drift_removed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusRun {
    pub id: i64,
    pub command: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub revision: Option<String>,
    /// `converged`, `partial`, `failed`, `interrupted`; null when the run is still going or was killed.
    pub result: Option<String>,
    pub pid: i64,
    pub summary: Option<serde_json::Value>,
}

impl StatusReport {
    pub fn new(status: Status) -> StatusReport {
        let Status {
            ledger,
            lineage,
            serial,
            accounts,
            runs,
        } = status;
        StatusReport {
            ledger,
            exists: lineage.is_some(),
            lineage,
            serial,
            accounts: accounts
                .into_iter()
                .map(|a| StatusAccount {
                    official_account: a.official_account,
                    confirmed: a.confirmed,
                    failed: a.failed,
                    max_subscribers: a.facts.max_subscribers,
                    subscriber_num: a.facts.subscriber_num,
                    limit_reached_at: a.facts.limit_reached_at.map(rfc3339_millis),
                    missing_since: a.facts.missing_since.map(rfc3339_millis),
                    invalid_since: a.facts.invalid_since.map(rfc3339_millis),
                    refreshed_at: a.refreshed_at.map(rfc3339_millis),
                    drift_added: a.drift_added,
                    drift_removed: a.drift_removed,
                })
                .collect(),
            runs: runs
                .into_iter()
                .map(|r| StatusRun {
                    id: r.id,
                    command: r.command,
                    started_at: rfc3339_millis(r.started_at),
                    finished_at: r.finished_at.map(rfc3339_millis),
                    revision: r.revision,
                    result: r.result,
                    pid: r.pid,
                    summary: r.summary,
                })
                .collect(),
        }
    }
}

pub fn status_text(s: &StatusReport) -> String {
    let mut out = String::new();
    if !s.exists {
        let _ = writeln!(
            out,
            "No ledger at {} yet: nothing has been applied with this --state.",
            s.ledger
        );
        return out;
    }
    let _ = writeln!(
        out,
        "Ledger {} (lineage {}, serial {})\n",
        s.ledger,
        s.lineage.as_deref().unwrap_or("?"),
        s.serial
    );
    let width = s
        .accounts
        .iter()
        .map(|a| a.official_account.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let _ = writeln!(
        out,
        "{:<width$}  {:>9}  {:>6}  STATE",
        "ACCOUNT", "CONFIRMED", "FAILED"
    );
    for a in &s.accounts {
        let mut state = Vec::new();
        if let Some(at) = &a.limit_reached_at {
            state.push(format!("full since {at}"));
        }
        if let Some(at) = &a.missing_since {
            state.push(format!("missing since {at}"));
        }
        if let Some(at) = &a.invalid_since {
            state.push(format!("invalid since {at}"));
        }
        if let (Some(num), Some(max)) = (a.subscriber_num, a.max_subscribers) {
            state.push(format!("{num}/{max} subscribers at last check"));
        }
        if let Some(at) = &a.refreshed_at {
            state.push(format!(
                "refreshed {at}: {} added, {} removed out of band",
                a.drift_added, a.drift_removed
            ));
        }
        let state = if state.is_empty() {
            "-".to_owned()
        } else {
            state.join("; ")
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:>9}  {:>6}  {state}",
            a.official_account, a.confirmed, a.failed
        );
    }
    if !s.runs.is_empty() {
        let _ = writeln!(out, "\nLast runs:");
    }
    for r in &s.runs {
        let result = r
            .result
            .as_deref()
            .unwrap_or("unfinished (running, or killed)");
        let rev = r
            .revision
            .as_deref()
            .map(|v| format!(" revision {}", super::short(v)))
            .unwrap_or_default();
        let totals = r
            .summary
            .as_ref()
            .and_then(|s| s.get("totals"))
            .map(|t| {
                let n = |k: &str| t.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
                format!(
                    ": {} added, {} drift, {} failed, {} over limit",
                    n("added"),
                    n("already_subscribed"),
                    n("failed"),
                    n("not_added_limit")
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  #{} {} {} {result}{rev}{totals}",
            r.id, r.command, r.started_at
        );
    }
    out
}
