//! The plan as a pull-request comment: a summary table and a collapsible block per account,
//! kept under [`MARKDOWN_LIMIT`] characters (GitHub refuses comments over 65,536) by cutting the
//! lists first and, for very many accounts, the table.

use std::fmt::Write;

use super::{plural, short, verdict};
use crate::plan::{AccountPlan, Plan};

pub const MARKDOWN_LIMIT: usize = 60_000;

/// Entries per list tried in turn until the comment fits.
const CUTS: [usize; 6] = [1000, 200, 50, 20, 5, 0];

pub fn plan_markdown(plan: &Plan) -> String {
    for cut in CUTS {
        let md = render(plan, cut, plan.accounts.len());
        if md.len() <= MARKDOWN_LIMIT {
            return md;
        }
    }
    // Too many accounts for even a bare table: halve the rows until it fits.
    let mut rows = plan.accounts.len();
    loop {
        rows /= 2;
        let md = render(plan, 0, rows);
        if md.len() <= MARKDOWN_LIMIT || rows == 0 {
            return md;
        }
    }
}

fn render(plan: &Plan, cut: usize, rows: usize) -> String {
    let s = &plan.summary;
    let mut out = String::new();
    let _ = writeln!(out, "### subsync plan\n");
    let _ = writeln!(
        out,
        "**{} to remove**, **{} to add** ({} retries), {} unmanaged; {} of {} changed.\n",
        s.remove,
        s.add,
        s.retry,
        s.unmanaged,
        s.accounts_changed,
        plural(s.accounts, "account", "accounts")
    );
    if s.held_back > 0 {
        let _ = writeln!(
            out,
            "⚠️ **{} removals held back** by the prune guards (see the warnings).\n",
            s.held_back
        );
    }
    if s.over_limit > 0 {
        let _ = writeln!(
            out,
            "⚠️ **{} desired subscribers over a known limit** (MaxSubscriberNum); set `acceptShortfall: true` on the set to accept it.\n",
            s.over_limit
        );
    }
    if let Some(verdict) = verdict(plan) {
        let _ = writeln!(out, "{verdict}\n");
    }
    if s.drift_added + s.drift_removed > 0 {
        let _ = writeln!(
            out,
            "Drift at the last refresh: {} added out of band, {} removed out of band.\n",
            s.drift_added, s.drift_removed
        );
    }
    let ledger = plan.lineage.as_deref().map_or("none yet".to_owned(), |l| {
        format!("`{}` serial {}", short(l), plan.serial)
    });
    let _ = writeln!(
        out,
        "Ledger: {ledger} · manifests `{}`\n",
        short(&plan.manifest_digest)
    );
    let _ = writeln!(
        out,
        "| Set | Official account | Desired | Remove | Add | Retry | Unmanaged | Drift | Warnings |"
    );
    let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|--:|---|");
    for a in plan.accounts.iter().take(rows) {
        let drift = (
            a.drift.out_of_band_added.len(),
            a.drift.out_of_band_removed.len(),
        );
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(a.name.as_deref().unwrap_or("*(no manifest)*")),
            cell(&code(&a.official_account)),
            a.desired,
            a.remove.len(),
            a.add.len(),
            a.retry.len(),
            a.unmanaged.len(),
            match drift {
                (0, 0) => String::new(),
                (added, removed) => format!("+{added} −{removed}"),
            },
            if a.warnings.is_empty() {
                String::new()
            } else {
                format!("⚠️ {}", a.warnings.len())
            }
        );
    }
    if rows < plan.accounts.len() {
        let _ = writeln!(
            out,
            "\n*{} more accounts not shown; see `subsync plan --format json`.*",
            plan.accounts.len() - rows
        );
    }
    if cut > 0 {
        for a in plan.accounts.iter().take(rows).filter(|a| {
            a.has_changes() || !a.held.is_empty() || !a.warnings.is_empty() || has_drift(a)
        }) {
            details(&mut out, a, cut);
        }
    } else if s.add + s.remove + s.held_back > 0 {
        let _ = writeln!(
            out,
            "\n*Lists omitted to fit a comment; see `subsync plan --format json`.*"
        );
    }
    out
}

fn has_drift(a: &AccountPlan) -> bool {
    let d = &a.drift;
    !d.out_of_band_added.is_empty() || !d.out_of_band_removed.is_empty() || !d.repaired.is_empty()
}

fn details(out: &mut String, a: &AccountPlan, cut: usize) {
    let title = match &a.name {
        Some(n) => format!("{} (<code>{}</code>)", html(n), html(&a.official_account)),
        None => format!("<code>{}</code>", html(&a.official_account)),
    };
    let _ = writeln!(
        out,
        "\n<details><summary>{title}: −{} +{}</summary>\n",
        a.remove.len(),
        a.add.len()
    );
    for w in &a.warnings {
        let _ = writeln!(out, "> ⚠️ {}\n", w.replace('\n', " "));
    }
    let d = &a.drift;
    let listed = a
        .add
        .iter()
        .chain(&a.remove)
        .chain(&a.held)
        .chain(&d.out_of_band_added)
        .chain(&d.out_of_band_removed)
        .chain(&d.repaired);
    let longest_tick_run = listed.map(|s| max_run(s, '`')).max().unwrap_or(0);
    let fence = "`".repeat((longest_tick_run + 1).max(3));
    if a.has_changes() || !a.held.is_empty() {
        let _ = writeln!(out, "{fence}diff");
        list(out, &a.remove, '-', cut, "to remove");
        list(out, &a.add, '+', cut, "to add");
        list(out, &a.held, '#', cut, "held back, not removed");
        let _ = writeln!(out, "{fence}");
    }
    if has_drift(a) {
        let when = a.refreshed_at.as_deref().unwrap_or("?");
        let _ = writeln!(
            out,
            "\nDrift at the refresh of {when}: {} added out of band (now confirmed), {} removed out of band, {} repaired since.\n",
            d.out_of_band_added.len(),
            d.out_of_band_removed.len(),
            d.repaired.len()
        );
        let _ = writeln!(out, "{fence}");
        list(out, &d.out_of_band_added, '>', cut, "added out of band");
        list(out, &d.out_of_band_removed, '<', cut, "removed out of band");
        list(out, &d.repaired, '=', cut, "repaired");
        let _ = writeln!(out, "{fence}");
    }
    let _ = writeln!(out, "\n</details>");
}

fn list(out: &mut String, ids: &[String], sign: char, cut: usize, what: &str) {
    for id in ids.iter().take(cut) {
        let _ = writeln!(out, "{sign} {}", crate::quote::safe(id));
    }
    if ids.len() > cut {
        let _ = writeln!(out, "# ... and {} more {what}", ids.len() - cut);
    }
}

fn max_run(s: &str, c: char) -> usize {
    s.split(|x| x != c).map(str::len).max().unwrap_or(0)
}

/// A code span that survives backticks in the text.
fn code(s: &str) -> String {
    if s.contains('`') {
        format!("`` {s} ``")
    } else {
        format!("`{s}`")
    }
}

/// Escapes what would end a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PlanSummary;

    fn big_plan(accounts: usize, adds: usize) -> Plan {
        let accounts: Vec<AccountPlan> = (0..accounts)
            .map(|i| AccountPlan {
                name: Some(format!("set-{i}")),
                official_account: format!("@TOA#_acc|{i}"),
                desired: adds as u64,
                confirmed: 0,
                prune: false,
                add: (0..adds).map(|j| format!("user-{i}-{j:06}")).collect(),
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
            })
            .collect();
        Plan {
            format_version: "1".into(),
            lineage: None,
            serial: 0,
            manifest_digest: "sha256:00".into(),
            manifest_paths: vec![],
            summary: PlanSummary {
                add: (accounts.len() * adds) as u64,
                accounts: accounts.len() as u64,
                accounts_changed: accounts.len() as u64,
                needs_apply: true,
                ..PlanSummary::default()
            },
            accounts,
        }
    }

    #[test]
    fn a_small_plan_shows_every_entry_in_a_collapsible_block() {
        let md = plan_markdown(&big_plan(2, 3));
        assert!(
            md.contains("| set-0 | `@TOA#_acc\\|0` | 3 | 0 | 3 | 0 | 0 |  |  |"),
            "{md}"
        );
        assert!(
            md.contains("<details><summary>set-1 (<code>@TOA#_acc|1</code>): −0 +3</summary>"),
            "{md}"
        );
        assert!(
            md.contains("```diff\n+ user-1-000000\n+ user-1-000001\n+ user-1-000002\n```"),
            "{md}"
        );
    }

    #[test]
    fn a_huge_plan_is_cut_to_fit_a_comment() {
        let md = plan_markdown(&big_plan(10, 20_000));
        assert!(md.len() <= MARKDOWN_LIMIT, "{}", md.len());
        assert!(
            md.contains("# ... and "),
            "lists should be cut, not dropped entirely"
        );
        assert_eq!(md.matches("<details>").count(), 10);
    }

    #[test]
    fn very_many_accounts_cut_the_table_too() {
        let md = plan_markdown(&big_plan(3000, 1));
        assert!(md.len() <= MARKDOWN_LIMIT);
        assert!(md.contains("more accounts not shown"));
    }

    #[test]
    fn removals_come_first_and_drift_gets_its_own_block() {
        let mut plan = big_plan(1, 1);
        plan.accounts[0].remove = vec!["gone".into()];
        plan.accounts[0].drift.out_of_band_added = vec!["walk-in".into()];
        plan.summary.drift_added = 1;
        let md = plan_markdown(&plan);
        assert!(md.contains("```diff\n- gone\n+ user-0-000000\n```"), "{md}");
        assert!(
            md.contains("1 added out of band (now confirmed), 0 removed out of band"),
            "{md}"
        );
        assert!(md.contains("```\n> walk-in\n```"), "{md}");
        assert!(md.contains("| +1 −0 |"), "{md}");
    }
}
