//! The plan as a pull-request comment: a summary table and a collapsible block per account,
//! kept under [`MARKDOWN_LIMIT`] characters (GitHub refuses comments over 65,536) by cutting the
//! lists first and, for very many accounts, the table.
//!
//! The summary goes first, so the comment is written at the end of the plan; meanwhile each
//! account is kept with its lists cut to the longest a comment shows (1,000 entries) and their
//! true lengths.

use std::fmt::Write;

use super::{PlanSink, own_total, short, verdict};
#[cfg(test)]
use crate::plan::Plan;
use crate::plan::{AccountPlan, PlanHeader, PlanSummary};
use crate::words::count;

pub(crate) const MARKDOWN_LIMIT: usize = 60_000;

/// Entries per list tried in turn until the comment fits.
const CUTS: [usize; 6] = [1000, 200, 50, 20, 5, 0];

#[cfg(test)]
pub(crate) fn plan_markdown(plan: &Plan) -> String {
    let mut out = Vec::new();
    // Writing into memory cannot fail.
    let _ = super::render(plan, &mut MarkdownSink::new(&mut out));
    String::from_utf8_lossy(&out).into_owned()
}

/// One account as the comment needs it: its lists cut to what a comment can show, and their
/// true lengths.
struct Clipped {
    plan: AccountPlan,
    add: usize,
    remove: usize,
    retry: usize,
    unmanaged: usize,
    held: usize,
    drift_added: usize,
    drift_removed: usize,
    repaired: usize,
}

impl Clipped {
    fn of(mut plan: AccountPlan) -> Clipped {
        let cut = CUTS[0];
        let lens = |l: &Vec<String>| l.len();
        let shown = Clipped {
            add: lens(&plan.add),
            remove: lens(&plan.remove),
            retry: plan.retry.len(),
            unmanaged: lens(&plan.unmanaged),
            held: lens(&plan.held),
            drift_added: lens(&plan.drift.out_of_band_added),
            drift_removed: lens(&plan.drift.out_of_band_removed),
            repaired: lens(&plan.drift.repaired),
            plan: AccountPlan::default(),
        };
        let d = &mut plan.drift;
        for list in [
            &mut plan.add,
            &mut plan.remove,
            &mut plan.unmanaged,
            &mut plan.held,
            &mut d.out_of_band_added,
            &mut d.out_of_band_removed,
            &mut d.repaired,
        ] {
            list.truncate(cut);
            list.shrink_to_fit();
        }
        plan.retry.truncate(cut);
        Clipped { plan, ..shown }
    }

    fn has_changes(&self) -> bool {
        self.add + self.remove > 0
    }

    fn has_own(&self) -> bool {
        !self.plan.properties.is_empty() || self.plan.create.is_some()
    }

    fn has_drift(&self) -> bool {
        self.drift_added + self.drift_removed + self.repaired > 0
    }
}

/// The Markdown rendering: kept account by account, written at the end.
pub(crate) struct MarkdownSink<W> {
    out: W,
    header: Option<PlanHeader>,
    accounts: Vec<Clipped>,
}

impl<W: std::io::Write> MarkdownSink<W> {
    pub(crate) fn new(out: W) -> MarkdownSink<W> {
        MarkdownSink {
            out,
            header: None,
            accounts: Vec::new(),
        }
    }
}

impl<W: std::io::Write> PlanSink for MarkdownSink<W> {
    fn header(&mut self, header: &PlanHeader) -> std::io::Result<()> {
        self.header = Some(header.clone());
        Ok(())
    }

    fn account(&mut self, account: &AccountPlan) -> std::io::Result<()> {
        self.accounts.push(Clipped::of(account.clone()));
        Ok(())
    }

    fn end(&mut self, summary: &PlanSummary) -> std::io::Result<()> {
        let header = self.header.take().unwrap_or_else(|| PlanHeader {
            format_version: crate::plan::FORMAT_VERSION.into(),
            lineage: None,
            serial: 0,
            manifest_digest: String::new(),
            manifest_paths: Vec::new(),
        });
        let md = fitted(&header, &self.accounts, summary);
        self.out.write_all(md.as_bytes())?;
        self.out.flush()
    }
}

/// The longest comment that fits.
fn fitted(header: &PlanHeader, accounts: &[Clipped], summary: &PlanSummary) -> String {
    for cut in CUTS {
        let md = render(header, accounts, summary, cut, accounts.len());
        if md.len() <= MARKDOWN_LIMIT {
            return md;
        }
    }
    // Too many accounts for even a bare table: halve the rows until it fits.
    let mut rows = accounts.len();
    loop {
        rows /= 2;
        let md = render(header, accounts, summary, 0, rows);
        if md.len() <= MARKDOWN_LIMIT || rows == 0 {
            return md;
        }
    }
}

fn render(
    header: &PlanHeader,
    accounts: &[Clipped],
    s: &PlanSummary,
    cut: usize,
    rows: usize,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### subsync plan\n");
    let _ = writeln!(
        out,
        "**{} to remove**, **{} to add** ({}), {} unmanaged{}; {} of {} changed.\n",
        s.remove,
        s.add,
        count(s.retry, "retry", "retries"),
        s.unmanaged,
        own_total(s),
        s.accounts_changed,
        count(s.accounts, "account", "accounts")
    );
    if s.held_back > 0 {
        let _ = writeln!(
            out,
            "⚠️ **{} held back** by the prune guards (see the warnings).\n",
            count(s.held_back, "removal", "removals")
        );
    }
    let not_accepted = s.over_limit_not_accepted();
    if not_accepted > 0 {
        let _ = writeln!(
            out,
            "⚠️ **{} over a known limit** (MaxSubscriberNum); set `acceptShortfall: true` on the set to accept it.\n",
            count(not_accepted, "desired subscriber", "desired subscribers")
        );
    }
    // Without anything to send, the verdict says it.
    if s.over_limit_accepted > 0 && s.needs_apply {
        let _ = writeln!(
            out,
            "{} over a known limit (MaxSubscriberNum), accepted by the sets (`acceptShortfall: true`).\n",
            count(
                s.over_limit_accepted,
                "desired subscriber",
                "desired subscribers"
            )
        );
    }
    if let Some(verdict) = verdict(s) {
        let _ = writeln!(out, "{verdict}\n");
    }
    if s.drift_added + s.drift_removed > 0 {
        let _ = writeln!(
            out,
            "Drift at the last refresh: {} added out of band, {} removed out of band.\n",
            s.drift_added, s.drift_removed
        );
    }
    let ledger = header
        .lineage
        .as_deref()
        .map_or("none yet".to_owned(), |l| {
            format!("`{}` serial {}", short(l), header.serial)
        });
    let _ = writeln!(
        out,
        "Ledger: {ledger} · manifests `{}`\n",
        short(&header.manifest_digest)
    );
    let _ = writeln!(
        out,
        "| Set | Official account | Desired | Remove | Add | Retry | Unmanaged | Drift | Warnings |"
    );
    let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|--:|---|");
    for shown in accounts.iter().take(rows) {
        let a = &shown.plan;
        let drift = (shown.drift_added, shown.drift_removed);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(a.name.as_deref().unwrap_or("*(no manifest)*")),
            cell(&code(&a.official_account)),
            a.desired,
            shown.remove,
            shown.add,
            shown.retry,
            shown.unmanaged,
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
    if rows < accounts.len() {
        let _ = writeln!(
            out,
            "\n*{} not shown; see `subsync plan --format json`.*",
            count(
                (accounts.len() - rows) as u64,
                "more account",
                "more accounts"
            )
        );
    }
    if cut > 0 {
        for a in accounts.iter().take(rows).filter(|a| {
            a.has_changes()
                || a.has_own()
                || a.held > 0
                || !a.plan.warnings.is_empty()
                || a.has_drift()
        }) {
            details(&mut out, a, cut);
        }
    } else if s.add + s.remove + s.held_back + s.property_changes + s.create > 0 {
        let _ = writeln!(
            out,
            "\n*Lists omitted to fit a comment; see `subsync plan --format json`.*"
        );
    }
    out
}

fn details(out: &mut String, shown: &Clipped, cut: usize) {
    let a = &shown.plan;
    let title = match &a.name {
        Some(n) => format!("{} (<code>{}</code>)", html(n), html(&a.official_account)),
        None => format!("<code>{}</code>", html(&a.official_account)),
    };
    let _ = writeln!(
        out,
        "\n<details><summary>{title}: −{} +{}</summary>\n",
        shown.remove, shown.add
    );
    for w in &a.warnings {
        let _ = writeln!(out, "> ⚠️ {}\n", w.replace('\n', " "));
    }
    let d = &a.drift;
    let own = super::properties::lines(a.create.as_ref(), &a.properties);
    let listed = a
        .add
        .iter()
        .chain(&a.remove)
        .chain(&a.held)
        .chain(&d.out_of_band_added)
        .chain(&d.out_of_band_removed)
        .chain(&d.repaired)
        .chain(&own);
    let longest_tick_run = listed.map(|s| max_run(s, '`')).max().unwrap_or(0);
    let fence = "`".repeat((longest_tick_run + 1).max(3));
    if !own.is_empty() {
        let _ = writeln!(out, "Account:\n\n{fence}diff");
        for line in &own {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out, "{fence}\n");
    }
    if shown.has_changes() || shown.held > 0 {
        let _ = writeln!(out, "{fence}diff");
        list(out, (&a.remove, shown.remove), '-', cut, "to remove");
        list(out, (&a.add, shown.add), '+', cut, "to add");
        list(
            out,
            (&a.held, shown.held),
            '#',
            cut,
            "held back, not removed",
        );
        let _ = writeln!(out, "{fence}");
    }
    if shown.has_drift() {
        let when = a.refreshed_at.as_deref().unwrap_or("?");
        let _ = writeln!(
            out,
            "\nDrift at the refresh of {when}: {} added out of band (now confirmed), {} removed out of band, {} repaired since.\n",
            shown.drift_added, shown.drift_removed, shown.repaired
        );
        let _ = writeln!(out, "{fence}");
        let (added, removed) = (shown.drift_added, shown.drift_removed);
        list(
            out,
            (&d.out_of_band_added, added),
            '>',
            cut,
            "added out of band",
        );
        list(
            out,
            (&d.out_of_band_removed, removed),
            '<',
            cut,
            "removed out of band",
        );
        list(out, (&d.repaired, shown.repaired), '=', cut, "repaired");
        let _ = writeln!(out, "{fence}");
    }
    let _ = writeln!(out, "\n</details>");
}

/// The first `cut` of a list kept (cut already) from one of `total` entries.
fn list(out: &mut String, (ids, total): (&[String], usize), sign: char, cut: usize, what: &str) {
    for id in ids.iter().take(cut) {
        let _ = writeln!(out, "{sign} {}", crate::quote::safe(id));
    }
    if total > cut {
        let _ = writeln!(out, "# ... and {} more {what}", total - cut);
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
                create: None,
                properties: vec![],
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

    #[test]
    fn property_changes_get_their_own_block_and_count_in_the_headline() {
        use crate::plan::PropertyChange;
        use crate::properties::{Field, Value};
        let mut plan = big_plan(1, 0);
        plan.accounts[0].properties = vec![PropertyChange {
            field: Field::Name,
            from: Some(Value::Text("Con`sole".into())),
            to: Value::Text("Weekly".into()),
            drift: true,
            refused: None,
        }];
        plan.summary = PlanSummary::of(&plan.accounts);
        let md = plan_markdown(&plan);
        assert!(
            md.contains(", 1 account property to change; 1 of 1 account changed."),
            "{md}"
        );
        assert!(
            md.contains("Account:\n\n```diff\n~ name: \"Con`sole\" -> \"Weekly\"   (changed outside subsync)\n```"),
            "{md}"
        );
    }
}
