//! The plan for people at a terminal: one line per account, Terraform-style lists, a total.

use std::collections::HashMap;
use std::fmt::Write;

use super::{LIST_CUT, code_text, plural, short};
use crate::plan::{AccountPlan, Plan};

pub fn plan_text(plan: &Plan) -> String {
    let mut out = String::new();
    let ledger = match &plan.lineage {
        Some(l) => format!("ledger {} at serial {}", short(l), plan.serial),
        None => "an empty ledger".to_owned(),
    };
    let _ = writeln!(
        out,
        "Plan against {ledger}, manifests {}.\n",
        short(&plan.manifest_digest)
    );
    for account in &plan.accounts {
        account_block(&mut out, account);
    }
    let s = &plan.summary;
    let _ = write!(out, "\nPlan: {} to add, {} to remove", s.add, s.remove);
    if s.retry > 0 {
        let _ = write!(out, " ({} of the adds are retries)", s.retry);
    }
    if s.unmanaged > 0 {
        let _ = write!(out, ", {} unmanaged", s.unmanaged);
    }
    let _ = writeln!(
        out,
        "; {} of {} changed.",
        s.accounts_changed,
        plural(s.accounts, "account", "accounts")
    );
    if !plan.has_changes() {
        let _ = writeln!(out, "No changes: the ledger matches the manifests.");
    }
    out
}

fn account_block(out: &mut String, a: &AccountPlan) {
    let title = match &a.name {
        Some(name) => format!("{name} ({})", a.official_account),
        None => format!("{} (no manifest)", a.official_account),
    };
    let mark = if a.has_changes() {
        '~'
    } else if a.name.is_none() {
        '?'
    } else {
        '='
    };
    let mut parts = Vec::new();
    if !a.add.is_empty() {
        let retries = if a.retry.is_empty() {
            String::new()
        } else {
            format!(" ({})", plural(a.retry.len() as u64, "retry", "retries"))
        };
        parts.push(format!("{} to add{retries}", a.add.len()));
    }
    if !a.remove.is_empty() {
        parts.push(format!("{} to remove", a.remove.len()));
    }
    if !a.unmanaged.is_empty() {
        parts.push(format!("{} unmanaged", a.unmanaged.len()));
    }
    if parts.is_empty() {
        parts.push(format!("up to date ({} confirmed)", a.confirmed));
    }
    let _ = writeln!(out, "{mark} {title}: {}", parts.join(", "));
    let retries: HashMap<&str, _> = a.retry.iter().map(|r| (r.subscriber.as_str(), r)).collect();
    for id in a.add.iter().take(LIST_CUT) {
        match retries.get(id.as_str()) {
            Some(r) => {
                let _ = writeln!(
                    out,
                    "    + {id}   (retry: {} after {})",
                    code_text(r.code),
                    plural(u64::from(r.attempts), "attempt", "attempts")
                );
            }
            None => {
                let _ = writeln!(out, "    + {id}");
            }
        }
    }
    more(out, a.add.len(), "to add");
    for id in a.remove.iter().take(LIST_CUT) {
        let _ = writeln!(out, "    - {id}");
    }
    more(out, a.remove.len(), "to remove");
    for w in &a.warnings {
        let _ = writeln!(out, "    ! {w}");
    }
}

fn more(out: &mut String, total: usize, what: &str) {
    if total > LIST_CUT {
        let _ = writeln!(out, "    ... and {} more {what}", total - LIST_CUT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PlanSummary, RetryEntry};

    pub(crate) fn sample(adds: usize) -> Plan {
        let add: Vec<String> = (0..adds).map(|i| format!("u{i:03}")).collect();
        Plan {
            format_version: "1".into(),
            lineage: Some("0123456789abcdef0123".into()),
            serial: 4,
            manifest_digest: "sha256:abcdefabcdefabcdef".into(),
            manifest_paths: vec![],
            summary: PlanSummary {
                add: adds as u64,
                retry: 1,
                accounts: 2,
                accounts_changed: 1,
                ..PlanSummary::default()
            },
            accounts: vec![
                AccountPlan {
                    name: Some("weekly".into()),
                    official_account: "@TOA#_weekly".into(),
                    desired: adds as u64,
                    confirmed: 0,
                    prune: false,
                    retry: vec![RetryEntry {
                        subscriber: "u000".into(),
                        code: 130010,
                        attempts: 2,
                    }],
                    add,
                    remove: vec![],
                    unmanaged: vec![],
                    warnings: vec!["heads up".into()],
                },
                AccountPlan {
                    name: Some("news".into()),
                    official_account: "@TOA#_news".into(),
                    desired: 3,
                    confirmed: 3,
                    prune: false,
                    add: vec![],
                    remove: vec![],
                    unmanaged: vec![],
                    retry: vec![],
                    warnings: vec![],
                },
            ],
        }
    }

    #[test]
    fn lists_are_cut_after_twenty_with_the_count_of_the_rest() {
        let text = plan_text(&sample(25));
        assert!(
            text.contains("~ weekly (@TOA#_weekly): 25 to add (1 retry)"),
            "{text}"
        );
        assert!(
            text.contains("    + u000   (retry: error 130010 after 2 attempts)"),
            "{text}"
        );
        assert!(
            text.contains("    + u019\n    ... and 5 more to add"),
            "{text}"
        );
        assert!(!text.contains("u020"), "{text}");
        assert!(
            text.contains("= news (@TOA#_news): up to date (3 confirmed)"),
            "{text}"
        );
        assert!(
            text.contains(
                "Plan: 25 to add, 0 to remove (1 of the adds are retries); 1 of 2 accounts changed."
            ),
            "{text}"
        );
    }
}
