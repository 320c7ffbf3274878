//! What `subsync import` adopted, per account: text for people, JSON for pipelines. Built from
//! the counts each account's refresh recorded, never by reading the ledger back.

use std::fmt::Write;

use serde::Serialize;

use crate::apply::RefreshSummary;
use crate::manifest::ManifestSet;
use crate::words::count;

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
    /// Subscribers the ledger confirms now: the live list.
    pub confirmed: u64,
    /// Subscribed remotely and unknown to the ledger before: now confirmed, and managed.
    pub adopted: u64,
    /// Of the live list, the subscribers the manifest lists.
    pub listed: u64,
    /// Of the live list, the ones it does not list: `prune: true` would remove them.
    pub not_listed: u64,
    /// Confirmed before, gone remotely: no longer confirmed.
    pub gone: u64,
    /// Why the account could not be imported; it was left as it was.
    pub error: Option<String>,
}

impl ImportReport {
    /// What the refresh recorded for each set of `manifests`.
    pub fn new(ledger: String, manifests: &ManifestSet, refresh: RefreshSummary) -> ImportReport {
        let accounts = manifests
            .sets
            .iter()
            .map(|set| {
                let id = &set.official_account;
                let error = refresh
                    .failed
                    .iter()
                    .find(|f| &f.official_account == id)
                    .map(|f| f.error.clone());
                let read = refresh.read.iter().find(|r| &r.official_account == id);
                let (counts, listed) = read.map(|r| (r.counts, r.listed)).unwrap_or_default();
                ImportedAccount {
                    official_account: id.clone(),
                    name: set.name.clone(),
                    confirmed: counts.seen,
                    adopted: counts.added,
                    listed,
                    not_listed: counts.seen.saturating_sub(listed),
                    gone: counts.removed,
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
        count(r.accounts, "account", "accounts"),
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
                let _ = write!(
                    out,
                    "+ {title}: {} adopted, {} gone remotely; {} confirmed now, {} the manifest lists",
                    a.adopted, a.gone, a.confirmed, a.listed
                );
                if a.not_listed > 0 {
                    let _ = write!(
                        out,
                        ", {} it does not (prune: true would remove them)",
                        a.not_listed
                    );
                }
                let _ = writeln!(out);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{AccountRead, RefreshFailure};
    use crate::ledger::Refreshed;
    use crate::manifest::SubscriberSet;

    #[test]
    fn each_account_reports_what_its_refresh_recorded() {
        let set = SubscriberSet {
            name: "a".into(),
            official_account: "@TOA#_a".into(),
            subscribers: ["x", "y"].into_iter().collect(),
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
        let refresh = RefreshSummary {
            accounts: 1,
            seen: 2,
            failed: vec![RefreshFailure {
                official_account: "@TOA#_b".into(),
                error: "the cursor repeats".into(),
            }],
            read: vec![AccountRead {
                official_account: "@TOA#_a".into(),
                counts: Refreshed {
                    seen: 2,
                    added: 2,
                    removed: 1,
                },
                listed: 1,
            }],
            ..RefreshSummary::default()
        };
        let report = ImportReport::new("l.db".into(), &manifests, refresh);
        let text = import_text(&report);
        assert!(
            text.contains("+ a (@TOA#_a): 2 adopted, 1 gone remotely; 2 confirmed now, 1 the manifest lists, 1 it does not (prune: true would remove them)"),
            "{text}"
        );
        assert!(
            text.contains("! a (@TOA#_b): not imported: the cursor repeats"),
            "{text}"
        );
    }
}
