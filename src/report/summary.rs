//! The apply summary for people.

use std::fmt::Write;

use super::{LIST_CUT, code_text, short};
use crate::apply::{AccountStatus, RunResult, Summary};
use crate::tencent::codes;

pub fn summary_text(s: &Summary) -> String {
    let mut out = String::new();
    let result = match (s.result, s.interrupted) {
        (_, true) => "interrupted",
        (RunResult::Converged, _) => "converged",
        (RunResult::Partial, _) => "finished with subscribers left out",
        (RunResult::Failed, _) => "failed",
    };
    let _ = write!(
        out,
        "Apply {result} after {:.1}s: {} requests, {} retries, {} rate-limit answers",
        s.duration_ms as f64 / 1000.0,
        s.requests,
        s.retries,
        s.rate_limited
    );
    if let Some(rev) = &s.revision {
        let _ = write!(out, " (revision {})", short(rev));
    }
    let _ = writeln!(out, ".\n");
    for a in &s.accounts {
        let status = match a.status {
            AccountStatus::Ok => "ok",
            AccountStatus::LimitReached => "limit reached",
            AccountStatus::Missing => "missing",
            AccountStatus::Failed => "failed",
            AccountStatus::Interrupted => "interrupted",
            AccountStatus::Stopped => "stopped",
        };
        let mut parts = Vec::new();
        if a.planned_add == 0 {
            parts.push("nothing to add".to_owned());
        } else {
            parts.push(format!("{} added", a.added));
            if a.already_subscribed > 0 {
                parts.push(format!(
                    "{} already subscribed (drift)",
                    a.already_subscribed
                ));
            }
            if !a.failed.is_empty() {
                parts.push(format!("{} failed", a.failed.len()));
            }
            if a.not_added_limit > 0 {
                let max = a
                    .max_subscribers
                    .map(|m| format!(" at MaxSubscriberNum {m}"))
                    .unwrap_or_default();
                parts.push(format!(
                    "{} not added (account full{max})",
                    a.not_added_limit
                ));
            }
            let unaccounted = a.planned_add.saturating_sub(
                a.added + a.already_subscribed + a.failed.len() as u64 + a.not_added_limit,
            );
            if unaccounted > 0 {
                parts.push(format!("{unaccounted} not sent"));
            }
        }
        let name = a
            .name
            .as_deref()
            .map(|n| format!("{n} "))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{status:<14} {name}({}): {}",
            a.official_account,
            parts.join(", ")
        );
        for f in a.failed.iter().take(LIST_CUT) {
            let meaning = codes::describe(f.code)
                .map(|i| format!(" ({})", i.meaning))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{:<14}   ! {}: {}{meaning}",
                "",
                f.subscriber,
                code_text(f.code)
            );
        }
        if a.failed.len() > LIST_CUT {
            let _ = writeln!(
                out,
                "{:<14}   ... and {} more failed",
                "",
                a.failed.len() - LIST_CUT
            );
        }
        if a.remove_skipped > 0 {
            let _ = writeln!(
                out,
                "{:<14}   {} removals planned by prune were not made: this version does not prune yet",
                "", a.remove_skipped
            );
        }
    }
    let t = &s.totals;
    let _ = writeln!(
        out,
        "\nTotals: {} added, {} already subscribed (drift), {} failed, {} not added because of account limits.",
        t.added, t.already_subscribed, t.failed, t.not_added_limit
    );
    if let Some(e) = &s.error {
        let _ = writeln!(out, "Stopped: {e}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{AccountSummary, FailedSubscriber, Totals};

    #[test]
    fn the_summary_names_drift_limits_and_failures() {
        let s = Summary {
            format_version: "1".into(),
            result: RunResult::Partial,
            interrupted: false,
            duration_ms: 1234,
            requests: 9,
            retries: 1,
            rate_limited: 0,
            revision: Some("0123456789abcdef".into()),
            trigger: crate::apply::Trigger::Apply,
            error: None,
            accounts: vec![AccountSummary {
                official_account: "@TOA#_vip".into(),
                name: Some("vip".into()),
                status: AccountStatus::LimitReached,
                planned_add: 12,
                added: 5,
                already_subscribed: 1,
                failed: vec![FailedSubscriber {
                    subscriber: "x".into(),
                    code: 130010,
                }],
                not_added_limit: 5,
                max_subscribers: Some(6),
                remove_skipped: 0,
            }],
            totals: Totals {
                added: 5,
                already_subscribed: 1,
                failed: 1,
                not_added_limit: 5,
            },
        };
        let text = summary_text(&s);
        assert!(text.starts_with("Apply finished with subscribers left out after 1.2s: 9 requests, 1 retries, 0 rate-limit answers (revision 0123456789ab)."), "{text}");
        assert!(text.contains("limit reached  vip (@TOA#_vip): 5 added, 1 already subscribed (drift), 1 failed, 5 not added (account full at MaxSubscriberNum 6)"), "{text}");
        assert!(text.contains("! x: error 130010 (the subscriber already follows the maximum number of official accounts)"), "{text}");
        assert!(text.contains("Totals: 5 added, 1 already subscribed (drift), 1 failed, 5 not added because of account limits."), "{text}");
    }
}
