//! The daemon's Prometheus metrics, in the OpenMetrics text format at `/metrics`.
//!
//! Updated from three streams: the reconcile loop (results, durations, manifest validity, the
//! ledger's per-account counts after each run), the executor's outcome stream (the same one the
//! progress display gets: drift), and the client's calls (requests by command and code).
//! Accounts are labelled by their official account id.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::apply::{Counts, Observer};
use crate::ledger::AccountOverview;
use crate::manifest::SubscriberSet;
use crate::tencent::CallObserver;
use crate::tencent::api::Command;

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabel {
    account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DriftLabels {
    account: String,
    /// `added` (subscribed out of band) or `removed` (left out of band).
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    command: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabel {
    command: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    sink: String,
    /// sent, failed, dropped or suppressed.
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

pub(crate) struct Metrics {
    registry: Registry,
    reconcile: Family<ResultLabel, Counter>,
    duration: Histogram,
    desired: Family<AccountLabel, Gauge>,
    confirmed: Family<AccountLabel, Gauge>,
    failed: Family<AccountLabel, Gauge>,
    drift: Family<DriftLabels, Counter>,
    added: Family<AccountLabel, Counter>,
    removed: Family<AccountLabel, Counter>,
    properties_set: Family<AccountLabel, Counter>,
    created: Family<AccountLabel, Counter>,
    limit_reached: Family<AccountLabel, Gauge>,
    requests: Family<CallLabels, Counter>,
    latency: Family<CommandLabel, Histogram>,
    notifications: Family<NotificationLabels, Counter>,
    manifests_valid: Gauge,
    leader: Gauge,
    last_success: Gauge<f64, AtomicU64>,
    /// The refresh time last counted per account, so each refresh's drift counts once.
    counted_refresh: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            reconcile: Family::default(),
            // 50 ms to about 7 minutes.
            duration: Histogram::new(exponential_buckets(0.05, 2.0, 14)),
            desired: Family::default(),
            confirmed: Family::default(),
            failed: Family::default(),
            drift: Family::default(),
            added: Family::default(),
            removed: Family::default(),
            properties_set: Family::default(),
            created: Family::default(),
            limit_reached: Family::default(),
            requests: Family::default(),
            // 10 ms to about 20 s.
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.01, 2.0, 12))
            }),
            notifications: Family::default(),
            manifests_valid: Gauge::default(),
            leader: Gauge::default(),
            last_success: Gauge::default(),
            counted_refresh: Default::default(),
        };
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
            })
            .set(1);
        let mut registry = Registry::default();
        registry.register("subsync_build_info", "subsync's version; always 1", build);
        // Counters get their `_total` suffix from the encoder.
        registry.register(
            "subsync_reconcile",
            "Reconciles by result: converged, partial, failed, invalid (manifests refused)",
            m.reconcile.clone(),
        );
        registry.register(
            "subsync_reconcile_duration_seconds",
            "Time one reconcile took",
            m.duration.clone(),
        );
        registry.register(
            "subsync_subscribers_desired",
            "Subscribers the manifests want, per official account",
            m.desired.clone(),
        );
        registry.register(
            "subsync_subscribers_confirmed",
            "Subscribers the ledger has confirmed, per official account",
            m.confirmed.clone(),
        );
        registry.register(
            "subsync_subscribers_failed",
            "Subscribers whose last add failed, per official account",
            m.failed.clone(),
        );
        registry.register(
            "subsync_drift",
            "Drift found, by direction: added (subscribed although the ledger did not know, by an add's answer or a refresh), removed (gone from the live list) or property (a declared account property changed outside subsync, and set back)",
            m.drift.clone(),
        );
        registry.register(
            "subsync_subscribers_added",
            "Subscribers added by subsync (answered Result 1)",
            m.added.clone(),
        );
        registry.register(
            "subsync_subscribers_removed",
            "Subscribers removed by prune",
            m.removed.clone(),
        );
        registry.register(
            "subsync_account_properties_set",
            "An official account's own properties (spec.account) set by subsync, a creation's included",
            m.properties_set.clone(),
        );
        registry.register(
            "subsync_accounts_created",
            "Official accounts created by subsync (spec.create with --allow-create)",
            m.created.clone(),
        );
        registry.register(
            "subsync_account_limit_reached",
            "1 while the official account is full at MaxSubscriberNum",
            m.limit_reached.clone(),
        );
        registry.register(
            "subsync_api_requests",
            "API calls by command and answer code (0 success; negative codes from the same codes table: -1 a network fault, -2 an unreadable answer, -3 a request never sent, -N an HTTP status, e.g. -429)",
            m.requests.clone(),
        );
        registry.register(
            "subsync_api_request_duration_seconds",
            "Time one API call took, answer included, by command",
            m.latency.clone(),
        );
        registry.register(
            "subsync_notifications",
            "Notifications by sink and result, one per notification after its tries: sent (answered 2xx), failed (refused or given up after retries), dropped (queue full or shutdown), suppressed (flap limit)",
            m.notifications.clone(),
        );
        registry.register(
            "subsync_manifests_valid",
            "1 when the manifests last read were valid",
            m.manifests_valid.clone(),
        );
        registry.register(
            "subsync_leader",
            "1 while this replica holds the ledger's writer lock and reconciles; 0 while it stands by",
            m.leader.clone(),
        );
        registry.register(
            "subsync_last_success_timestamp_seconds",
            "When a reconcile last finished without a fatal error, or a resync found the converged set and the ledger unchanged (Unix time)",
            m.last_success.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Metrics with one series in every family, its labels set to their own names, so that
    /// the encoding names each family's type, help and labels: what the reference
    /// (`docs/reference/metrics.md`) is generated from.
    pub(crate) fn specimen() -> Metrics {
        let m = Metrics::new();
        let account = account("account");
        m.reconciled("result", Duration::ZERO);
        m.called(Command::AddSubscriber, 0, Duration::ZERO);
        m.notification("sink", "result");
        m.drift_by("account", "direction", 0);
        for family in [&m.desired, &m.confirmed, &m.failed, &m.limit_reached] {
            let _ = family.get_or_create(&account);
        }
        for family in [&m.added, &m.removed, &m.properties_set, &m.created] {
            let _ = family.get_or_create(&account);
        }
        m
    }

    /// The metrics in the OpenMetrics text format.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub(crate) fn reconciled(&self, result: &str, took: Duration) {
        let label = ResultLabel {
            result: result.into(),
        };
        self.reconcile.get_or_create(&label).inc();
        self.duration.observe(took.as_secs_f64());
    }

    pub(crate) fn succeeded(&self, unix_secs: f64) {
        self.last_success.set(unix_secs);
    }

    pub(crate) fn manifests_valid(&self, valid: bool) {
        self.manifests_valid.set(i64::from(valid));
    }

    /// One notification's outcome at `sink`.
    pub(crate) fn notification(&self, sink: &str, result: &str) {
        self.notifications
            .get_or_create(&NotificationLabels {
                sink: sink.into(),
                result: result.into(),
            })
            .inc();
    }

    /// A configured sink's series, at zero, so that rates and alerts see it from the start.
    pub(crate) fn notifications_declared(&self, sink: &str) {
        for result in ["sent", "failed", "dropped", "suppressed"] {
            let _ = self.notifications.get_or_create(&NotificationLabels {
                sink: sink.into(),
                result: result.into(),
            });
        }
    }

    pub(crate) fn leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The desired counts of the set now in force; accounts no longer declared disappear.
    /// Each account's counters start at zero, so that rates and alerts see them before the
    /// first add, removal or drift.
    pub(crate) fn desired(&self, sets: &[SubscriberSet]) {
        self.desired.clear();
        for set in sets {
            let label = account(&set.official_account);
            self.desired
                .get_or_create(&label)
                .set(set.subscribers.len() as i64);
            let _ = self.added.get_or_create(&label);
            let _ = self.removed.get_or_create(&label);
            self.drift_by(&set.official_account, "added", 0);
            self.drift_by(&set.official_account, "removed", 0);
            if !set.account.is_empty() {
                let _ = self.properties_set.get_or_create(&label);
                self.drift_by(&set.official_account, "property", 0);
            }
        }
    }

    /// What the ledger holds after a run, and the drift of refreshes not counted yet.
    pub(crate) fn ledger(&self, accounts: &[AccountOverview]) {
        let mut counted = self
            .counted_refresh
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for a in accounts {
            let label = account(&a.official_account);
            self.confirmed.get_or_create(&label).set(a.confirmed as i64);
            self.failed.get_or_create(&label).set(a.failed as i64);
            let full = a.facts.limit_reached_at.is_some();
            self.limit_reached
                .get_or_create(&label)
                .set(i64::from(full));
            let Some(at) = a.refreshed_at else { continue };
            if counted.insert(a.official_account.clone(), at) != Some(at) {
                self.drift_by(&a.official_account, "added", a.drift_added);
                self.drift_by(&a.official_account, "removed", a.drift_removed);
            }
        }
    }

    fn drift_by(&self, account: &str, direction: &str, n: u64) {
        let labels = DriftLabels {
            account: account.to_owned(),
            direction: direction.to_owned(),
        };
        self.drift.get_or_create(&labels).inc_by(n);
    }
}

fn account(id: &str) -> AccountLabel {
    AccountLabel {
        account: id.to_owned(),
    }
}

impl Observer for Metrics {
    fn committed(&self, account_id: &str, counts: &Counts) {
        if counts.added > 0 {
            self.added
                .get_or_create(&account(account_id))
                .inc_by(counts.added);
        }
        if counts.already > 0 {
            self.drift_by(account_id, "added", counts.already);
        }
        if counts.removed > 0 {
            self.removed
                .get_or_create(&account(account_id))
                .inc_by(counts.removed);
        }
        if counts.properties_set > 0 {
            self.properties_set
                .get_or_create(&account(account_id))
                .inc_by(counts.properties_set);
        }
        if counts.property_drift > 0 {
            self.drift_by(account_id, "property", counts.property_drift);
        }
        if counts.created > 0 {
            self.created
                .get_or_create(&account(account_id))
                .inc_by(counts.created);
        }
    }
}

impl CallObserver for Metrics {
    fn called(&self, command: Command, code: i64, took: Duration) {
        let labels = CallLabels {
            command: command.as_str().into(),
            code: code.to_string(),
        };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&CommandLabel {
                command: command.as_str().into(),
            })
            .observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_required_families_are_exposed_with_their_labels() {
        let m = Metrics::new();
        m.reconciled("converged", Duration::from_millis(120));
        m.called(Command::AddSubscriber, 0, Duration::from_millis(40));
        m.called(Command::AddSubscriber, 130006, Duration::from_millis(40));
        m.notification("chat", "sent");
        m.committed(
            "@TOA#_a",
            &Counts {
                already: 2,
                properties_set: 3,
                property_drift: 1,
                created: 1,
                ..Counts::default()
            },
        );
        m.manifests_valid(true);
        m.leader(true);
        let text = m.encode();
        for line in [
            "subsync_reconcile_total{result=\"converged\"} 1",
            "subsync_api_requests_total{command=\"add_subscriber\",code=\"130006\"} 1",
            "subsync_drift_total{account=\"@TOA#_a\",direction=\"added\"} 2",
            "subsync_drift_total{account=\"@TOA#_a\",direction=\"property\"} 1",
            "subsync_account_properties_set_total{account=\"@TOA#_a\"} 3",
            "subsync_accounts_created_total{account=\"@TOA#_a\"} 1",
            "subsync_manifests_valid 1",
            "subsync_leader 1",
            "subsync_build_info{version=\"",
            "subsync_reconcile_duration_seconds_count 1",
            "subsync_api_request_duration_seconds_count{command=\"add_subscriber\"} 2",
            "subsync_notifications_total{sink=\"chat\",result=\"sent\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
