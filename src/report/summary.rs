//! The apply summary for people.

use std::fmt::Write;

use super::{LIST_CUT, short};
use crate::apply::{AccountStatus, FailedSubscriber, OwnResult, RunResult, Summary};
use crate::tencent::codes;
use crate::words::count;

pub(crate) fn summary_text(s: &Summary) -> String {
    let mut out = String::new();
    let result = match (s.result, s.interrupted) {
        (_, true) => "interrupted",
        (RunResult::Converged, _) => "converged",
        (RunResult::Partial, _) => "finished with subscribers left out",
        (RunResult::Failed, _) => "failed",
    };
    let _ = write!(
        out,
        "Apply {result} after {:.1}s: {}, {}, {}",
        s.duration_ms as f64 / 1000.0,
        count(s.requests, "request", "requests"),
        count(s.retries, "retry", "retries"),
        count(s.rate_limited, "rate-limit answer", "rate-limit answers")
    );
    if let Some(rev) = &s.revision {
        let _ = write!(out, " (revision {})", crate::quote::safe(short(rev)));
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
        if let Some(p) = &a.properties {
            parts.extend(own_part(p));
        }
        if a.planned_remove > 0 {
            parts.push(format!("{} removed", a.removed));
            if !a.remove_failed.is_empty() {
                parts.push(format!("{} not removed", a.remove_failed.len()));
            }
        }
        if a.planned_add == 0 && a.planned_remove == 0 && a.properties.is_none() {
            parts.push("nothing to change".to_owned());
        } else if a.planned_add > 0 {
            parts.push(format!("{} added", a.added));
            if a.already_subscribed > 0 {
                parts.push(format!(
                    "{} already subscribed (drift)",
                    a.already_subscribed
                ));
            }
            if a.recovered > 0 {
                parts.push(format!(
                    "{} recovered (sent by an interrupted run)",
                    a.recovered
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
                let accepted = if a.accept_shortfall { ", accepted" } else { "" };
                parts.push(format!(
                    "{} not added (account full{max}{accepted})",
                    a.not_added_limit
                ));
            }
        }
        let done = a.added
            + a.already_subscribed
            + a.recovered
            + a.failed.len() as u64
            + a.not_added_limit
            + a.removed
            + a.remove_failed.len() as u64;
        let unaccounted = (a.planned_add + a.planned_remove).saturating_sub(done);
        if unaccounted > 0 {
            parts.push(format!("{unaccounted} not sent"));
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
        if let Some(p) = &a.properties {
            for line in super::properties::lines(p.create.as_ref(), &p.changes) {
                let _ = writeln!(out, "{:<14}   {line}", "");
            }
        }
        failures(&mut out, &a.failed, "failed");
        failures(&mut out, &a.remove_failed, "not removed");
        if a.remove_skipped > 0 {
            let _ = writeln!(
                out,
                "{:<14}   {} held back by a prune guard (see `subsync plan`)",
                "",
                count(a.remove_skipped, "removal", "removals")
            );
        }
    }
    let t = &s.totals;
    let recovered = if t.recovered > 0 {
        format!(", {} recovered", t.recovered)
    } else {
        String::new()
    };
    let mut own = super::properties::counted(t.properties_set, "set");
    if t.property_drift > 0 {
        own.push_str(&format!(
            " ({} back after a change outside subsync)",
            t.property_drift
        ));
    }
    own.push_str(&super::properties::created(t.created, "created"));
    let _ = writeln!(
        out,
        "\nTotals: {} added, {} already subscribed (drift){recovered}, {} failed, {} not added because of account limits, {} removed{own}.",
        t.added, t.already_subscribed, t.failed, t.not_added_limit, t.removed
    );
    if let Some(r) = &s.refresh {
        let _ = writeln!(
            out,
            "Refresh: {} read ({}), {} added out of band, {} removed out of band{}.",
            count(r.accounts, "account", "accounts"),
            count(r.seen, "subscriber", "subscribers"),
            r.out_of_band_added,
            r.out_of_band_removed,
            if r.failed.is_empty() {
                String::new()
            } else {
                format!(", {} could not be read", r.failed.len())
            }
        );
        for f in &r.failed {
            let _ = writeln!(out, "  ! {}: {}", f.official_account, f.error);
        }
    }
    // Why a run stopped is the command's error, printed once on stderr.
    out
}

/// What became of the account's own call, as a part of its line.
fn own_part(p: &crate::apply::AccountProperties) -> Option<String> {
    let set = p.set();
    match p.result {
        OwnResult::Done if p.created() => Some(format!(
            "created with {}",
            count(set, "property", "properties")
        )),
        OwnResult::Done => Some(format!("{} set", count(set, "property", "properties"))),
        OwnResult::Failed => {
            let code = p.code.unwrap_or_default();
            let what = if p.create.is_some() {
                "not created"
            } else {
                "properties not set"
            };
            Some(format!("{what}: {}", codes::explained(code)))
        }
        OwnResult::NotSent if p.create.is_some() => Some("not created".to_owned()),
        OwnResult::NotSent => Some("properties not set".to_owned()),
    }
}

fn failures(out: &mut String, failed: &[FailedSubscriber], what: &str) {
    for f in failed.iter().take(LIST_CUT) {
        let _ = writeln!(
            out,
            "{:<14}   ! {}: {}",
            "",
            crate::quote::safe(&f.subscriber),
            codes::explained(f.code)
        );
    }
    if failed.len() > LIST_CUT {
        let _ = writeln!(
            out,
            "{:<14}   ... and {} more {what}",
            "",
            failed.len() - LIST_CUT
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{AccountSummary, Totals};

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
            refresh: None,
            error: None,
            accounts: vec![AccountSummary {
                official_account: "@TOA#_vip".into(),
                name: Some("vip".into()),
                status: AccountStatus::LimitReached,
                planned_add: 12,
                added: 5,
                already_subscribed: 1,
                recovered: 0,
                failed: vec![FailedSubscriber {
                    subscriber: "x".into(),
                    code: 130010,
                }],
                not_added_limit: 5,
                max_subscribers: Some(6),
                planned_remove: 0,
                removed: 0,
                remove_failed: vec![],
                remove_skipped: 0,
                accept_shortfall: false,
                properties: None,
            }],
            totals: Totals {
                added: 5,
                already_subscribed: 1,
                recovered: 0,
                failed: 1,
                not_added_limit: 5,
                removed: 0,
                remove_failed: 0,
                ..Totals::default()
            },
        };
        let text = summary_text(&s);
        assert!(text.starts_with("Apply finished with subscribers left out after 1.2s: 9 requests, 1 retry, 0 rate-limit answers (revision 0123456789ab)."), "{text}");
        assert!(text.contains("limit reached  vip (@TOA#_vip): 5 added, 1 already subscribed (drift), 1 failed, 5 not added (account full at MaxSubscriberNum 6)"), "{text}");
        assert!(text.contains("! x: error 130010 (the subscriber already follows the maximum number of official accounts)"), "{text}");
        assert!(text.contains("Totals: 5 added, 1 already subscribed (drift), 1 failed, 5 not added because of account limits, 0 removed."), "{text}");
    }

    #[test]
    fn an_accounts_own_call_is_told_on_its_line_with_each_change_below() {
        use crate::apply::AccountProperties;
        use crate::plan::{Creation, PropertyChange};
        use crate::properties::{Field, Value};
        let change = PropertyChange {
            field: Field::Name,
            from: None,
            to: Value::Text("New".into()),
            drift: false,
            refused: None,
        };
        let mut s = Summary::start(&[], None, crate::apply::Trigger::Apply);
        let mut a = AccountSummary {
            official_account: "@TOA#_new".into(),
            name: Some("new".into()),
            status: AccountStatus::Missing,
            planned_add: 0,
            added: 0,
            already_subscribed: 0,
            recovered: 0,
            failed: vec![],
            not_added_limit: 0,
            max_subscribers: None,
            planned_remove: 0,
            removed: 0,
            remove_failed: vec![],
            remove_skipped: 0,
            accept_shortfall: false,
            properties: Some(AccountProperties {
                create: Some(Creation {
                    owner: "admin".into(),
                    refused: None,
                }),
                changes: vec![change],
                result: OwnResult::Failed,
                code: Some(130008),
            }),
        };
        s.accounts = vec![a.clone()];
        let text = summary_text(&s);
        assert!(
            text.contains("missing        new (@TOA#_new): not created: error 130008 (official account user ID already in use)\n"),
            "{text}"
        );
        assert!(text.contains("                 + create (owner \"admin\")\n                 ~ name: (unknown) -> \"New\"\n"), "{text}");
        a.status = AccountStatus::Ok;
        if let Some(p) = a.properties.as_mut() {
            p.result = OwnResult::Done;
        }
        s.accounts = vec![a];
        s.totals = Summary::totals_of(&s.accounts);
        let text = summary_text(&s);
        assert!(
            text.contains("ok             new (@TOA#_new): created with 1 property\n"),
            "{text}"
        );
        assert!(
            text.contains("0 removed, 1 account property set, 1 account created."),
            "{text}"
        );
    }
}
