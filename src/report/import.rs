//! What `subsync import` adopted, per account: text for people, JSON for pipelines. Built from
//! the counts each account's refresh recorded, and from how many of the subscribers a manifest
//! does not list an earlier refresh had seen out of band (the ledger's, read after the import):
//! prune removes those only with `pruneOutOfBand`, and the hint says so.

use std::fmt::Write;

use serde::Serialize;

use crate::apply::RefreshSummary;
use crate::manifest::ManifestSet;
use crate::words::{count, noun};

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ImportReport {
    pub ledger: String,
    pub refresh: RefreshSummary,
    pub accounts: Vec<ImportedAccount>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ImportedAccount {
    pub official_account: String,
    pub name: String,
    /// Subscribers the ledger confirms now: the live list.
    pub confirmed: u64,
    /// Subscribed remotely and unknown to the ledger before: now confirmed, and managed.
    pub adopted: u64,
    /// Of the live list, the subscribers the manifest lists.
    pub listed: u64,
    /// Of the live list, the ones it does not list.
    pub not_listed: u64,
    /// Of `not_listed`, those an earlier refresh had seen out of band: import leaves them
    /// unmanaged, so prune removes them only with `pruneOutOfBand: true`; `prune: true` would
    /// remove the rest.
    pub out_of_band: u64,
    /// Confirmed before, gone remotely: no longer confirmed.
    pub gone: u64,
    /// Why the account could not be imported; it was left as it was.
    pub error: Option<String>,
}

impl ImportReport {
    /// What the refresh recorded for each set of `manifests`; `out_of_band[i]` is how many of
    /// the subscribers set `i` does not list are out of band in the ledger.
    pub(crate) fn new(
        ledger: String,
        manifests: &ManifestSet,
        refresh: RefreshSummary,
        out_of_band: &[u64],
    ) -> ImportReport {
        let accounts = manifests
            .sets
            .iter()
            .enumerate()
            .map(|(i, set)| {
                let id = &set.official_account;
                let error = refresh
                    .failed
                    .iter()
                    .find(|f| &f.official_account == id)
                    .map(|f| f.error.clone());
                let read = refresh.read.iter().find(|r| &r.official_account == id);
                let (counts, listed) = read.map(|r| (r.counts, r.listed)).unwrap_or_default();
                let not_listed = counts.seen.saturating_sub(listed);
                ImportedAccount {
                    official_account: id.clone(),
                    name: set.name.clone(),
                    confirmed: counts.seen,
                    adopted: counts.added,
                    listed,
                    not_listed,
                    out_of_band: out_of_band.get(i).copied().unwrap_or(0).min(not_listed),
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

pub(crate) fn import_text(report: &ImportReport) -> String {
    let mut out = String::new();
    let r = &report.refresh;
    let _ = writeln!(
        out,
        "Imported the live lists of {} ({} seen) into {}; nothing was changed remotely.\n",
        count(r.accounts, "account", "accounts"),
        count(r.seen, "subscriber", "subscribers"),
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
                    let _ = write!(out, ", {} it does not ({})", a.not_listed, prune_hint(a));
                }
                let _ = writeln!(out);
            }
        }
    }
    out
}

/// What prune would do with the subscribers a manifest does not list: remove the managed ones;
/// leave the ones seen out of band unless the set says `pruneOutOfBand: true`.
fn prune_hint(a: &ImportedAccount) -> String {
    let managed = a.not_listed - a.out_of_band;
    let out_of_band = |n: u64| {
        format!(
            "{} seen out of band before this import, which prune removes only with pruneOutOfBand: true",
            noun(n, "was", "were")
        )
    };
    match (managed, a.out_of_band) {
        (m, 0) => format!("prune: true would remove {}", noun(m, "it", "them")),
        (0, o) => format!("{} {}", noun(o, "it", "all"), out_of_band(o)),
        (m, o) => format!("prune: true would remove {m}; {o} {}", out_of_band(o)),
    }
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
            ..SubscriberSet::default()
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
        let report = ImportReport::new("l.db".into(), &manifests, refresh.clone(), &[0, 0]);
        let text = import_text(&report);
        assert!(
            text.contains("+ a (@TOA#_a): 2 adopted, 1 gone remotely; 2 confirmed now, 1 the manifest lists, 1 it does not (prune: true would remove it)"),
            "{text}"
        );
        assert!(
            text.contains("! a (@TOA#_b): not imported: the cursor repeats"),
            "{text}"
        );
        // The one it does not list had been seen out of band: prune keeps it.
        let report = ImportReport::new("l.db".into(), &manifests, refresh, &[1, 0]);
        let text = import_text(&report);
        assert!(
            text.contains("1 it does not (it was seen out of band before this import, which prune removes only with pruneOutOfBand: true)"),
            "{text}"
        );
    }

    #[test]
    fn the_prune_hint_tells_managed_subscribers_from_out_of_band_ones() {
        let account = |not_listed, out_of_band| ImportedAccount {
            official_account: "@TOA#_a".into(),
            name: "a".into(),
            confirmed: 60,
            adopted: 0,
            listed: 60 - not_listed,
            not_listed,
            out_of_band,
            gone: 0,
            error: None,
        };
        assert_eq!(prune_hint(&account(50, 0)), "prune: true would remove them");
        assert_eq!(
            prune_hint(&account(50, 2)),
            "prune: true would remove 48; 2 were seen out of band before this import, which prune removes only with pruneOutOfBand: true"
        );
        assert_eq!(
            prune_hint(&account(2, 2)),
            "all were seen out of band before this import, which prune removes only with pruneOutOfBand: true"
        );
    }
}
