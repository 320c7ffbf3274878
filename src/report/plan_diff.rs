//! The plan as unified diffs, for reviewers who read diffs: per account, from the ledger's
//! sorted list to the desired sorted list.
//!
//! Both sides are sorted sets, so every common line is unique and in the same order on both
//! sides; the patience algorithm finds them all in O(n log n), where Myers' would degrade to
//! quadratic on large additions.

use std::fmt::Write;

use similar::{Algorithm, TextDiff};

use crate::ledger::Snapshot;
use crate::manifest::ManifestSet;

pub fn plan_diff(manifests: &ManifestSet, ledger: &Snapshot) -> String {
    let mut out = String::new();
    let none: Vec<String> = Vec::new();
    for set in &manifests.sets {
        let confirmed = ledger
            .accounts
            .get(&set.official_account)
            .map_or(&none, |a| &a.confirmed);
        if confirmed == &set.subscribers {
            continue;
        }
        let old = lines(confirmed);
        let new = lines(&set.subscribers);
        let diff = TextDiff::configure()
            .algorithm(Algorithm::Patience)
            .diff_lines(&old, &new);
        let _ = write!(
            out,
            "{}",
            diff.unified_diff().context_radius(3).header(
                &format!("ledger/{}", set.official_account),
                &format!("manifests/{} ({})", set.official_account, set.name)
            )
        );
    }
    for (account, state) in &ledger.accounts {
        if !state.confirmed.is_empty()
            && !manifests
                .sets
                .iter()
                .any(|s| &s.official_account == account)
        {
            let _ = writeln!(
                out,
                "# {account}: no manifest declares it; its {} subscribers are left alone",
                state.confirmed.len()
            );
        }
    }
    out
}

fn lines(list: &[String]) -> String {
    let mut s = String::with_capacity(list.iter().map(|l| l.len() + 1).sum());
    for l in list {
        s.push_str(&crate::quote::safe(l));
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::AccountState;
    use crate::manifest::SubscriberSet;

    #[test]
    fn the_diff_goes_from_ledger_to_manifests() {
        let manifests = ManifestSet {
            sets: vec![SubscriberSet {
                name: "w".into(),
                official_account: "@TOA#_w".into(),
                subscribers: vec!["a".into(), "c".into()],
                prune: false,
                allow_empty: false,
                source: "m.yaml".into(),
            }],
            ..ManifestSet::default()
        };
        let mut ledger = Snapshot::default();
        ledger.accounts.insert(
            "@TOA#_w".into(),
            AccountState {
                confirmed: vec!["a".into(), "b".into()],
                ..AccountState::default()
            },
        );
        let diff = plan_diff(&manifests, &ledger);
        assert_eq!(
            diff,
            "--- ledger/@TOA#_w\n+++ manifests/@TOA#_w (w)\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"
        );
    }
}
