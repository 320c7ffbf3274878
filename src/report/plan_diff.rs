//! The plan as a diff, for reviewers who read diffs: per account, the removals (`-`) and adds
//! (`+`) apply would make, in one sorted run, then `#` lines for what it would not do.
//!
//! It renders the same [`Plan`] value as every other format, so a `-` line is a removal apply
//! makes and nothing else: subscribers prune leaves alone are not `-` lines, and removals a
//! guard holds back are `# held back` lines.

use std::fmt::Write;

use super::{PlanSink, code_text};
#[cfg(test)]
use crate::plan::Plan;
use crate::plan::{AccountPlan, PlanHeader, PlanSummary};
use crate::quote::safe;
use crate::words::count;

#[cfg(test)]
pub(crate) fn plan_diff(plan: &Plan) -> String {
    let mut out = Vec::new();
    // Writing into memory cannot fail.
    let _ = super::render(plan, &mut DiffSink(&mut out));
    String::from_utf8_lossy(&out).into_owned()
}

/// The diff rendering, written account by account.
pub(crate) struct DiffSink<W>(pub W);

impl<W: std::io::Write> PlanSink for DiffSink<W> {
    fn header(&mut self, _: &PlanHeader) -> std::io::Result<()> {
        Ok(())
    }

    fn account(&mut self, a: &AccountPlan) -> std::io::Result<()> {
        let mut out = String::new();
        if a.name.is_none() {
            let _ = writeln!(
                out,
                "# {}: no manifest declares it; its {} left alone",
                safe(&a.official_account),
                count(a.confirmed, "subscriber is", "subscribers are")
            );
        } else if !a.add.is_empty()
            || !a.remove.is_empty()
            || !a.held.is_empty()
            || !a.properties.is_empty()
            || a.create.is_some()
        {
            account(&mut out, a);
        }
        self.0.write_all(out.as_bytes())
    }

    fn end(&mut self, _: &PlanSummary) -> std::io::Result<()> {
        self.0.flush()
    }
}

fn account(out: &mut String, a: &AccountPlan) {
    let name = a.name.as_deref().unwrap_or_default();
    let _ = writeln!(out, "--- ledger/{}", safe(&a.official_account));
    let _ = writeln!(
        out,
        "+++ manifests/{} ({})",
        safe(&a.official_account),
        safe(name)
    );
    let _ = writeln!(
        out,
        "@@ {} to remove, {} to add @@",
        a.remove.len(),
        a.add.len()
    );
    // The account's own changes are no subscriber lines: comments, as `patch` ignores them.
    for line in super::properties::lines(a.create.as_ref(), &a.properties) {
        let _ = writeln!(out, "# {line}");
    }
    // Both lists are sorted and disjoint: merge them so the diff reads in one order.
    let (mut r, mut d) = (a.remove.iter().peekable(), a.add.iter().peekable());
    loop {
        let take_remove = match (r.peek(), d.peek()) {
            (Some(x), Some(y)) => x < y,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let (sign, id) = if take_remove {
            ('-', r.next())
        } else {
            ('+', d.next())
        };
        if let Some(id) = id {
            let _ = writeln!(out, "{sign}{}", safe(id));
        }
    }
    for retry in &a.retry {
        let _ = writeln!(
            out,
            "# retry +{}: {} after {}",
            safe(&retry.subscriber),
            code_text(retry.code),
            count(u64::from(retry.attempts), "attempt", "attempts")
        );
    }
    for id in &a.held {
        let _ = writeln!(out, "# held back, not removed: {}", safe(id));
    }
    for w in &a.warnings {
        let _ = writeln!(out, "# ! {w}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{AccountState, Snapshot};
    use crate::manifest::SubscriberSet;
    use crate::plan::PlanOptions;

    fn set(subscribers: &[&str], prune: bool) -> SubscriberSet {
        SubscriberSet {
            name: "w".into(),
            official_account: "@TOA#_w".into(),
            subscribers: subscribers.iter().map(|s| s.to_string()).collect(),
            prune,
            allow_empty: false,
            prune_out_of_band: false,
            accept_shortfall: false,
            source: "m.yaml".into(),
            ..SubscriberSet::default()
        }
    }

    fn diff_of(set: &SubscriberSet, confirmed: &[&str], options: PlanOptions) -> String {
        let mut ledger = Snapshot::default();
        ledger.accounts.insert(
            set.official_account.clone(),
            AccountState {
                confirmed: confirmed.iter().map(|s| s.to_string()).collect(),
                ..AccountState::default()
            },
        );
        let manifests = crate::manifest::ManifestSet {
            sets: vec![set.clone()],
            ..Default::default()
        };
        let plan = crate::plan::compute(&manifests, &mut ledger, vec![], &options).unwrap();
        plan_diff(&plan)
    }

    #[test]
    fn removals_and_adds_read_in_one_sorted_run() {
        let options = PlanOptions {
            max_prune: None,
            allow_mass_prune: true,
            ..PlanOptions::default()
        };
        let diff = diff_of(&set(&["a", "c"], true), &["a", "b", "d"], options);
        assert_eq!(
            diff,
            "--- ledger/@TOA#_w\n+++ manifests/@TOA#_w (w)\n@@ 2 to remove, 1 to add @@\n-b\n+c\n-d\n"
        );
    }

    #[test]
    fn without_prune_nothing_is_a_removal() {
        let diff = diff_of(
            &set(&["a", "c"], false),
            &["a", "b"],
            PlanOptions::default(),
        );
        assert!(!diff.contains("-b"), "{diff}");
        assert!(diff.contains("+c"), "{diff}");
    }

    #[test]
    fn property_changes_are_comment_lines() {
        let mut ledger = Snapshot::default();
        let mut state = AccountState::default();
        state.view.properties.live.name = Some("Old".into());
        ledger.accounts.insert("@TOA#_w".into(), state);
        let mut declared = set(&[], false);
        declared.account.name = Some("New".into());
        let manifests = crate::manifest::ManifestSet {
            sets: vec![declared],
            ..Default::default()
        };
        let plan =
            crate::plan::compute(&manifests, &mut ledger, vec![], &PlanOptions::default()).unwrap();
        assert_eq!(
            plan_diff(&plan),
            "--- ledger/@TOA#_w\n+++ manifests/@TOA#_w (w)\n@@ 0 to remove, 0 to add @@\n# ~ name: \"Old\" -> \"New\"\n"
        );
    }

    #[test]
    fn removals_a_guard_holds_back_are_comments() {
        let options = PlanOptions {
            max_prune: Some(1),
            allow_mass_prune: false,
            ..PlanOptions::default()
        };
        let diff = diff_of(&set(&["a"], true), &["a", "b", "c", "d", "e"], options);
        assert!(!diff.contains("\n-"), "{diff}");
        assert!(diff.contains("# held back, not removed: b\n"), "{diff}");
        assert!(diff.contains("# ! prune would remove 4 of 5"), "{diff}");
    }
}
