//! `subsync status`: what the ledger holds, per account, and the latest runs.

use std::fmt::Write;

use serde::Serialize;

use crate::apply::RunSummary;
use crate::clock::rfc3339_millis;
use crate::engine::LedgerStatus;
use crate::ledger::{KnownProperties, RunOutcome};
use crate::properties::{Field, Properties};
use crate::words::count;

/// The status as JSON (`status --format json`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StatusReport {
    pub ledger: String,
    pub exists: bool,
    pub lineage: Option<String>,
    pub serial: u64,
    pub accounts: Vec<StatusAccount>,
    pub runs: Vec<StatusRun>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct StatusAccount {
    pub official_account: String,
    pub confirmed: u64,
    pub failed: u64,
    pub max_subscribers: Option<u64>,
    /// The account's remote count as last learnt (a probe, a refresh, or a run's own changes
    /// since its probe), and when.
    pub subscriber_num: Option<u64>,
    pub counted_at: Option<String>,
    pub limit_reached_at: Option<String>,
    pub missing_since: Option<String>,
    pub invalid_since: Option<String>,
    /// When the live list was last read, and the drift that refresh found.
    pub refreshed_at: Option<String>,
    pub drift_added: u64,
    pub drift_removed: u64,
    /// The account's declared properties (`spec.account`) against the live ones, when it
    /// declares any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub properties: Option<StatusProperties>,
}

/// Declared against live, for the declared fields only.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StatusProperties {
    /// As the manifests declared them at the last run that checked the account.
    pub declared: Properties,
    /// As the service last described them (or subsync set them since).
    pub live: Properties,
    /// When the live values were learnt.
    pub learnt_at: Option<String>,
    /// The declared fields whose live value differs (or is not known).
    pub differ: Vec<Field>,
}

impl StatusProperties {
    fn of(known: KnownProperties) -> Option<StatusProperties> {
        if known.declared.is_empty() {
            return None;
        }
        let live = known.live.restricted_to(&known.declared);
        let differ = known
            .declared
            .fields()
            .filter(|(f, v)| live.get(*f).as_ref() != Some(v))
            .map(|(f, _)| f)
            .collect();
        Some(StatusProperties {
            declared: known.declared,
            live,
            learnt_at: known.learnt_at.map(rfc3339_millis),
            differ,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct StatusRun {
    pub id: i64,
    pub command: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub revision: Option<String>,
    /// `converged`, `partial`, `failed`, `interrupted`, `refreshed`; null when the run is still
    /// going or was killed.
    pub result: Option<RunOutcome>,
    pub pid: i64,
    pub summary: Option<RunSummary>,
}

impl StatusReport {
    pub(crate) fn new(status: LedgerStatus) -> StatusReport {
        let LedgerStatus {
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
                    counted_at: a.facts.counted_at.map(rfc3339_millis),
                    limit_reached_at: a.facts.limit_reached_at.map(rfc3339_millis),
                    missing_since: a.facts.missing_since.map(rfc3339_millis),
                    invalid_since: a.facts.invalid_since.map(rfc3339_millis),
                    refreshed_at: a.refreshed_at.map(rfc3339_millis),
                    drift_added: a.drift_added,
                    drift_removed: a.drift_removed,
                    properties: a.properties.and_then(StatusProperties::of),
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

/// What a run's recorded summary says, in one line: its counts (an apply's or a refresh's)
/// and, for a run that stopped, why.
fn run_line(summary: &RunSummary) -> String {
    let mut out = String::new();
    let error = match summary {
        RunSummary::Apply(s) => {
            let t = &s.totals;
            let _ = write!(
                out,
                ": {} added, {} removed, {} drift, {} failed, {} over limit",
                t.added,
                t.removed,
                t.already_subscribed,
                t.failed + t.remove_failed,
                t.not_added_limit
            );
            if t.recovered > 0 {
                let _ = write!(out, ", {} recovered", t.recovered);
            }
            &s.error
        }
        RunSummary::Refresh(r) => {
            let refresh = &r.refresh;
            let _ = write!(
                out,
                ": read {}, {} added and {} removed out of band",
                count(refresh.accounts, "account", "accounts"),
                refresh.out_of_band_added,
                refresh.out_of_band_removed
            );
            &r.error
        }
    };
    if let Some(error) = error {
        let first = error.lines().next().unwrap_or_default();
        let _ = write!(out, "; stopped: {}", crate::quote::clean(first, 200));
    }
    out
}

/// Declared against live, in a few words: the fields that differ, each with both values.
fn properties_state(p: &StatusProperties) -> String {
    let when = p
        .learnt_at
        .as_deref()
        .map_or_else(|| "never learnt".to_owned(), |at| format!("learnt {at}"));
    if p.differ.is_empty() {
        return format!("properties as declared ({when})");
    }
    let differ: Vec<String> = p
        .differ
        .iter()
        .map(|f| {
            let shown = |v: Option<crate::properties::Value>| {
                v.map_or_else(|| "unknown".to_owned(), |v| v.to_string())
            };
            format!(
                "{f} declared {}, live {}",
                shown(p.declared.get(*f)),
                shown(p.live.get(*f))
            )
        })
        .collect();
    format!("{} ({when})", differ.join(", "))
}

pub(crate) fn status_text(s: &StatusReport) -> String {
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
        if let Some(num) = a.subscriber_num {
            let max = a
                .max_subscribers
                .map(|m| format!("/{m}"))
                .unwrap_or_default();
            let when = a.counted_at.as_deref().map_or_else(
                || "at an earlier check".to_owned(),
                |at| format!("as of {at}"),
            );
            state.push(format!("remote count {num}{max} {when}"));
        }
        if let Some(at) = &a.refreshed_at {
            state.push(format!(
                "refreshed {at}: {} added, {} removed out of band",
                a.drift_added, a.drift_removed
            ));
        }
        if let Some(p) = &a.properties {
            state.push(properties_state(p));
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
        let result = r.result.map_or("unfinished (running, or killed)", |o| {
            crate::ledger::Stored::as_str(o)
        });
        let rev = r
            .revision
            .as_deref()
            .map(|v| format!(" revision {}", crate::quote::safe(super::short(v))))
            .unwrap_or_default();
        let what = r.summary.as_ref().map(run_line).unwrap_or_default();
        let _ = writeln!(
            out,
            "  #{} {} {} {result}{rev}{what}",
            r.id, r.command, r.started_at
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(declared: &str, live: &str) -> KnownProperties {
        KnownProperties {
            declared: Properties {
                name: Some(declared.into()),
                ..Properties::default()
            },
            live: Properties {
                name: Some(live.into()),
                introduction: Some("undeclared, not shown".into()),
                ..Properties::default()
            },
            learnt_at: Some(0),
            ..KnownProperties::default()
        }
    }

    #[test]
    fn declared_and_live_are_shown_side_by_side_for_the_declared_fields_only() {
        let differ = StatusProperties::of(known("Weekly", "Con\u{1b}sole")).unwrap();
        assert_eq!(differ.differ, [Field::Name]);
        assert_eq!(differ.live.introduction, None);
        assert_eq!(
            properties_state(&differ),
            "name declared \"Weekly\", live \"Con\\u{1b}sole\" (learnt 1970-01-01T00:00:00Z)"
        );
        let same = StatusProperties::of(known("Weekly", "Weekly")).unwrap();
        assert_eq!(
            properties_state(&same),
            "properties as declared (learnt 1970-01-01T00:00:00Z)"
        );
        assert!(StatusProperties::of(KnownProperties::default()).is_none());
    }
}
