//! The plan for people at a terminal: one line per account, Terraform-style lists (removals
//! first, red when colour is on), drift, a total.

use std::collections::HashMap;
use std::fmt::Write;

use super::{LIST_CUT, PlanSink, code_text, own_total, short, verdict};
#[cfg(test)]
use crate::plan::Plan;
use crate::plan::{AccountPlan, PlanHeader, PlanSummary};
use crate::quote::safe;
use crate::words::{count, noun};

const RED: &str = "\u{1b}[31m";
const GREEN: &str = "\u{1b}[32m";
const RESET: &str = "\u{1b}[0m";

#[cfg(test)]
pub(crate) fn plan_text(plan: &Plan, color: bool) -> String {
    let mut out = Vec::new();
    // Writing into memory cannot fail.
    let _ = super::render(plan, &mut TextSink::new(&mut out, color));
    String::from_utf8_lossy(&out).into_owned()
}

/// The text rendering, written account by account.
pub(crate) struct TextSink<W> {
    out: W,
    color: bool,
}

impl<W: std::io::Write> TextSink<W> {
    pub(crate) fn new(out: W, color: bool) -> TextSink<W> {
        TextSink { out, color }
    }
}

impl<W: std::io::Write> PlanSink for TextSink<W> {
    fn header(&mut self, h: &PlanHeader) -> std::io::Result<()> {
        let ledger = match &h.lineage {
            Some(l) => format!("ledger {} at serial {}", short(l), h.serial),
            None => "an empty ledger".to_owned(),
        };
        writeln!(
            self.out,
            "Plan against {ledger}, manifests {}.\n",
            short(&h.manifest_digest)
        )
    }

    fn account(&mut self, a: &AccountPlan) -> std::io::Result<()> {
        let mut block = String::new();
        account_block(&mut block, a, self.color);
        self.out.write_all(block.as_bytes())
    }

    fn end(&mut self, s: &PlanSummary) -> std::io::Result<()> {
        let mut out = String::new();
        let _ = write!(
            out,
            "\nPlan: {} to add, {} to remove{}",
            s.add,
            s.remove,
            own_total(s)
        );
        if s.held_back > 0 {
            let _ = write!(
                out,
                " ({} held back by a guard)",
                count(s.held_back, "removal", "removals")
            );
        }
        if s.retry > 0 {
            let _ = write!(
                out,
                " ({} of the adds {})",
                s.retry,
                noun(s.retry, "is a retry", "are retries")
            );
        }
        if s.unmanaged > 0 {
            let _ = write!(out, ", {} unmanaged", s.unmanaged);
        }
        if s.over_limit > 0 {
            let _ = write!(out, ", {} over a known limit", s.over_limit);
            match s.over_limit_accepted {
                0 => {}
                n if n == s.over_limit => out.push_str(" (accepted)"),
                n => {
                    let _ = write!(out, " ({n} accepted)");
                }
            }
        }
        let _ = writeln!(
            out,
            "; {} of {} changed.",
            s.accounts_changed,
            count(s.accounts, "account", "accounts")
        );
        if let Some(verdict) = verdict(s) {
            let _ = writeln!(out, "{verdict}");
        }
        self.out.write_all(out.as_bytes())?;
        self.out.flush()
    }
}

fn account_block(out: &mut String, a: &AccountPlan, color: bool) {
    let title = match &a.name {
        Some(name) => format!("{name} ({})", a.official_account),
        None => format!("{} (no manifest)", a.official_account),
    };
    let mark = if a.creates() {
        '+'
    } else if a.has_changes() {
        '~'
    } else if a.name.is_none() {
        '?'
    } else {
        '='
    };
    let mut parts = Vec::new();
    if a.creates() {
        parts.push("to create".to_owned());
    }
    if a.property_changes() > 0 {
        parts.push(format!(
            "{} to change",
            count(a.property_changes(), "property", "properties")
        ));
    }
    if !a.remove.is_empty() {
        parts.push(format!("{} to remove", a.remove.len()));
    }
    if !a.add.is_empty() {
        let retries = if a.retry.is_empty() {
            String::new()
        } else {
            format!(" ({})", count(a.retry.len() as u64, "retry", "retries"))
        };
        parts.push(format!("{} to add{retries}", a.add.len()));
    }
    if a.held_back > 0 {
        parts.push(format!("{} held back", a.held_back));
    }
    if !a.unmanaged.is_empty() {
        parts.push(format!("{} unmanaged", a.unmanaged.len()));
    }
    if a.over_limit > 0 {
        let accepted = if a.accept_shortfall { ", accepted" } else { "" };
        parts.push(format!("{} over the limit{accepted}", a.over_limit));
    }
    let refused = a.refused();
    if refused > 0 {
        parts.push(format!("{refused} refused"));
    }
    if parts.is_empty() {
        parts.push(format!("up to date ({} confirmed)", a.confirmed));
    }
    let _ = writeln!(out, "{mark} {title}: {}", parts.join(", "));
    let (red, green, reset) = if color {
        (RED, GREEN, RESET)
    } else {
        ("", "", "")
    };
    for line in super::properties::lines(a.create.as_ref(), &a.properties) {
        let _ = writeln!(out, "    {line}");
    }
    for id in a.remove.iter().take(LIST_CUT) {
        let _ = writeln!(out, "    {red}- {}{reset}", safe(id));
    }
    more(out, a.remove.len(), "to remove");
    let retries: HashMap<&str, _> = a.retry.iter().map(|r| (r.subscriber.as_str(), r)).collect();
    for id in a.add.iter().take(LIST_CUT) {
        match retries.get(id.as_str()) {
            Some(r) => {
                let _ = writeln!(
                    out,
                    "    {green}+ {}{reset}   (retry: {} after {})",
                    safe(id),
                    code_text(r.code),
                    count(u64::from(r.attempts), "attempt", "attempts")
                );
            }
            None => {
                let _ = writeln!(out, "    {green}+ {}{reset}", safe(id));
            }
        }
    }
    more(out, a.add.len(), "to add");
    for id in a.held.iter().take(LIST_CUT) {
        let _ = writeln!(out, "    # {}   (held back, not removed)", safe(id));
    }
    more(out, a.held.len(), "held back");
    drift_lines(out, a);
    for w in &a.warnings {
        let _ = writeln!(out, "    ! {w}");
    }
}

/// What the last refresh found, with a few of the subscribers.
fn drift_lines(out: &mut String, a: &AccountPlan) {
    let d = &a.drift;
    if d.out_of_band_added.is_empty() && d.out_of_band_removed.is_empty() && d.repaired.is_empty() {
        return;
    }
    let when = a.refreshed_at.as_deref().unwrap_or("?");
    let repaired = if d.repaired.is_empty() {
        String::new()
    } else {
        format!(", {} repaired since", d.repaired.len())
    };
    let _ = writeln!(
        out,
        "    drift at the refresh of {when}: {} added out of band, {} removed out of band{repaired}",
        d.out_of_band_added.len(),
        d.out_of_band_removed.len()
    );
    for (list, sign, what) in [
        (&d.out_of_band_added, '>', "added out of band"),
        (&d.out_of_band_removed, '<', "removed out of band"),
        (&d.repaired, '=', "repaired"),
    ] {
        for id in list.iter().take(LIST_CUT) {
            let _ = writeln!(out, "      {sign} {}", safe(id));
        }
        more(out, list.len(), what);
    }
}

fn more(out: &mut String, total: usize, what: &str) {
    if total > LIST_CUT {
        let _ = writeln!(out, "    ... and {} more {what}", total - LIST_CUT);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::plan::{Drift, PlanSummary, RetryEntry};

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
                needs_apply: true,
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
                    drift: Default::default(),
                    refreshed_at: None,
                    held_back: 0,
                    held: vec![],
                    out_of_band_kept: 0,
                    over_limit: 0,
                    accept_shortfall: false,
                    create: None,
                    properties: vec![],
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
                    drift: Default::default(),
                    refreshed_at: None,
                    held_back: 0,
                    held: vec![],
                    out_of_band_kept: 0,
                    over_limit: 0,
                    accept_shortfall: false,
                    create: None,
                    properties: vec![],
                },
            ],
        }
    }

    #[test]
    fn lists_are_cut_after_twenty_with_the_count_of_the_rest() {
        let text = plan_text(&sample(25), false);
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
                "Plan: 25 to add, 0 to remove (1 of the adds is a retry); 1 of 2 accounts changed."
            ),
            "{text}"
        );
    }

    #[test]
    fn removals_come_first_in_red_and_drift_is_listed() {
        let mut plan = sample(1);
        plan.accounts[0].remove = vec!["gone-1".into()];
        plan.accounts[0].drift = Drift {
            out_of_band_added: vec!["walk-in".into()],
            out_of_band_removed: vec!["left".into()],
            repaired: vec![],
        };
        plan.accounts[0].refreshed_at = Some("2026-11-30T10:00:00Z".into());
        let text = plan_text(&plan, true);
        let remove = text.find("\u{1b}[31m- gone-1\u{1b}[0m").unwrap();
        let add = text.find("\u{1b}[32m+ u000").unwrap();
        assert!(remove < add, "{text}");
        assert!(text.contains("1 to remove, 1 to add"), "{text}");
        assert!(
            text.contains("drift at the refresh of 2026-11-30T10:00:00Z: 1 added out of band, 1 removed out of band"),
            "{text}"
        );
        assert!(text.contains("      > walk-in\n      < left"), "{text}");
        assert!(!plan_text(&plan, false).contains('\u{1b}'));
    }

    #[test]
    fn property_changes_and_a_creation_come_first_and_count_as_changes() {
        use crate::plan::{Creation, PropertyChange};
        use crate::properties::{Field, Value};
        let mut plan = sample(0);
        plan.accounts[1].properties = vec![
            PropertyChange {
                field: Field::Name,
                from: Some(Value::Text("Old".into())),
                to: Value::Text("New".into()),
                drift: false,
                refused: None,
            },
            PropertyChange {
                field: Field::MaxSubscribers,
                from: Some(Value::Number(50)),
                to: Value::Number(80),
                drift: false,
                refused: None,
            },
        ];
        plan.accounts[0].create = Some(Creation {
            owner: "admin".into(),
            refused: None,
        });
        plan.summary = crate::plan::PlanSummary::of(&plan.accounts);
        let text = plan_text(&plan, false);
        assert!(
            text.contains("+ weekly (@TOA#_weekly): to create"),
            "{text}"
        );
        assert!(text.contains("    + create (owner \"admin\")"), "{text}");
        assert!(
            text.contains("~ news (@TOA#_news): 2 properties to change\n    ~ name: \"Old\" -> \"New\"\n    ~ maxSubscribers: 50 -> 80\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "Plan: 0 to add, 0 to remove, 2 account properties to change, 1 account to create"
            ),
            "{text}"
        );
    }
}
