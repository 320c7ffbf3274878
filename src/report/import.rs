//! What `subsync import` adopted, per account: text for people, JSON for pipelines.

use std::fmt::Write;

use serde::Serialize;

use super::plural;
use crate::apply::RefreshSummary;
use crate::ledger::Snapshot;
use crate::manifest::ManifestSet;

#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub ledger: String,
    pub refresh: RefreshSummary,
    pub accounts: Vec<ImportedAccount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportedAccount {
    pub official_account: String,
    pub name: String,
    /// Subscribers the ledger confirms now.
    pub confirmed: u64,
    /// Subscribed remotely and unknown to the ledger before: now confirmed.
    pub adopted: u64,
    /// Of those, the ones the manifest lists.
    pub adopted_wanted: u64,
    /// Of those, the ones it does not list: unmanaged (or removed by prune).
    pub adopted_unmanaged: u64,
    /// Confirmed before, gone remotely: no longer confirmed.
    pub gone: u64,
    /// Why the account could not be imported; it was left as it was.
    pub error: Option<String>,
}

impl ImportReport {
    /// What the refresh recorded for each set of `manifests`, read back from `snapshot`.
    pub fn new(
        ledger: String,
        manifests: &ManifestSet,
        snapshot: Option<&Snapshot>,
        refresh: RefreshSummary,
    ) -> ImportReport {
        let accounts = manifests
            .sets
            .iter()
            .map(|set| {
                let error = refresh
                    .failed
                    .iter()
                    .find(|f| f.official_account == set.official_account)
                    .map(|f| f.error.clone());
                let state = snapshot.and_then(|s| s.accounts.get(&set.official_account));
                let (adopted, gone, confirmed) = match (state, &error) {
                    (Some(s), None) => {
                        (&s.drift.added[..], s.drift.removed.len(), s.confirmed.len())
                    }
                    (Some(s), Some(_)) => (&[][..], 0, s.confirmed.len()),
                    (None, _) => (&[][..], 0, 0),
                };
                let wanted = adopted
                    .iter()
                    .filter(|id| set.subscribers.binary_search(id).is_ok())
                    .count() as u64;
                ImportedAccount {
                    official_account: set.official_account.clone(),
                    name: set.name.clone(),
                    confirmed: confirmed as u64,
                    adopted: adopted.len() as u64,
                    adopted_wanted: wanted,
                    adopted_unmanaged: adopted.len() as u64 - wanted,
                    gone: gone as u64,
                    error,
                }
            })
            .collect();
        ImportReport {
            ledger,
            refresh,
            accounts,
        }
    }
}

pub fn import_text(report: &ImportReport) -> String {
    let mut out = String::new();
    let r = &report.refresh;
    let _ = writeln!(
        out,
        "Imported the live lists of {} ({} subscribers seen) into {}; nothing was changed remotely.\n",
        plural(r.accounts, "account", "accounts"),
        r.seen,
        report.ledger
    );
    for a in &report.accounts {
        let title = format!("{} ({})", a.name, a.official_account);
        match &a.error {
            Some(error) => {
                let _ = writeln!(out, "! {title}: not imported: {error}");
            }
            None => {
                let _ = writeln!(
                    out,
                    "+ {title}: {} adopted ({} the manifest lists, {} unmanaged), {} gone remotely; {} confirmed now",
                    a.adopted, a.adopted_wanted, a.adopted_unmanaged, a.gone, a.confirmed
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::RefreshFailure;
    use crate::ledger::{AccountState, Drift};
    use crate::manifest::SubscriberSet;

    #[test]
    fn adopted_subscribers_are_split_into_wanted_and_unmanaged() {
        let set = SubscriberSet {
            name: "a".into(),
            official_account: "@TOA#_a".into(),
            subscribers: vec!["x".into(), "y".into()],
            prune: false,
            allow_empty: false,
            prune_out_of_band: false,
            accept_shortfall: false,
            source: "m.yaml".into(),
        };
        let mut broken = set.clone();
        broken.official_account = "@TOA#_b".into();
        let manifests = ManifestSet {
            sets: vec![set, broken],
            ..ManifestSet::default()
        };
        let mut snapshot = Snapshot::default();
        snapshot.accounts.insert(
            "@TOA#_a".into(),
            AccountState {
                confirmed: vec!["x".into(), "z".into()],
                drift: Drift {
                    added: vec!["x".into(), "z".into()],
                    removed: vec!["old".into()],
                    at: Some(0),
                },
                ..AccountState::default()
            },
        );
        let refresh = RefreshSummary {
            accounts: 1,
            seen: 2,
            failed: vec![RefreshFailure {
                official_account: "@TOA#_b".into(),
                error: "the cursor repeats".into(),
            }],
            ..RefreshSummary::default()
        };
        let report = ImportReport::new("l.db".into(), &manifests, Some(&snapshot), refresh);
        let text = import_text(&report);
        assert!(
            text.contains("+ a (@TOA#_a): 2 adopted (1 the manifest lists, 1 unmanaged), 1 gone remotely; 2 confirmed now"),
            "{text}"
        );
        assert!(
            text.contains("! a (@TOA#_b): not imported: the cursor repeats"),
            "{text}"
        );
    }
}
