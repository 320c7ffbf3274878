//! What is worth telling people, derived from the same values the logs, metrics and exit codes
//! come from: a run's [`Summary`] (and why it stopped), the manifests' validity, the lead.
//!
//! Everything here is pure. Messages keep untrusted values (account ids, subscriber ids, error
//! text, revisions) apart from subsync's own words ([`Part`]), so that each target escapes
//! exactly those for its format.

use serde::Serialize;

use crate::apply::Summary;
pub(crate) use crate::report::thousands;

/// The events a sink can ask for, by the names the configuration uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum EventType {
    /// A revision reconciled with changes.
    Applied,
    /// Subscribers found added or removed outside subsync.
    Drift,
    /// An account is full: desired subscribers were left out.
    LimitReached,
    /// Subscribers could not be added or removed.
    Failed,
    /// A run stopped: credentials, the service, the ledger.
    Fatal,
    /// Runs succeed again after a fatal stop.
    Recovered,
    /// The manifests were refused.
    Invalid,
    /// The manifests are valid again.
    Valid,
    LeaderGained,
    LeaderLost,
}

impl EventType {
    pub(crate) const ALL: [EventType; 10] = [
        EventType::Applied,
        EventType::Drift,
        EventType::LimitReached,
        EventType::Failed,
        EventType::Fatal,
        EventType::Recovered,
        EventType::Invalid,
        EventType::Valid,
        EventType::LeaderGained,
        EventType::LeaderLost,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            EventType::Applied => "applied",
            EventType::Drift => "drift",
            EventType::LimitReached => "limit_reached",
            EventType::Failed => "failed",
            EventType::Fatal => "fatal",
            EventType::Recovered => "recovered",
            EventType::Invalid => "invalid",
            EventType::Valid => "valid",
            EventType::LeaderGained => "leader_gained",
            EventType::LeaderLost => "leader_lost",
        }
    }

    /// When it is told, in the words of the reference (`docs/reference/events.md`).
    pub(crate) fn description(self) -> &'static str {
        match self {
            EventType::Applied => {
                "a run changed something: `revision 0123456789ab applied: 1,344 added, 2 removed` (and `, 2 account properties set`, `, 1 account created`)"
            }
            EventType::Drift => {
                "subscribers of an account were found added or removed outside subsync, or its declared properties changed outside subsync (`@TOA#_weekly: name changed outside subsync and set back`)"
            }
            EventType::LimitReached => "an account is full: desired subscribers were left out",
            EventType::Failed => {
                "subscribers of an account could not be added or removed (with the first and its code)"
            }
            EventType::Fatal => {
                "a run stopped (credentials, the service, the ledger), with the reason"
            }
            EventType::Recovered => "runs succeed again after a fatal stop",
            EventType::Invalid => "the manifests were refused (the count and the first problem)",
            EventType::Valid => "the manifests are valid again",
            EventType::LeaderGained => "a replica standing by took the ledger's lock and leads",
            EventType::LeaderLost => "the leader lost the ledger's lock",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|k| k.name() == name)
    }

    /// A condition holds across runs (an account stays full); it is told when it appears,
    /// not at every resync.
    pub(crate) fn is_condition(self) -> bool {
        matches!(
            self,
            EventType::LimitReached | EventType::Failed | EventType::Fatal | EventType::Invalid
        )
    }
}

/// A piece of a message: subsync's own words, or a value from outside that each target
/// escapes (and cuts) for its format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Plain(String),
    Value(String),
}

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub kind: EventType,
    pub revision: Option<String>,
    /// The official account it is about, if one.
    pub account: Option<String>,
    pub message: Vec<Part>,
}

impl Event {
    pub(crate) fn new(kind: EventType, revision: Option<&str>, account: Option<&str>) -> Event {
        Event {
            kind,
            revision: revision.map(str::to_owned),
            account: account.map(str::to_owned),
            message: Vec::new(),
        }
    }

    fn plain(mut self, text: impl Into<String>) -> Event {
        self.message.push(Part::Plain(text.into()));
        self
    }

    fn value(mut self, text: impl Into<String>) -> Event {
        self.message.push(Part::Value(text.into()));
        self
    }

    /// What identifies the condition it reports: the same key on the next run means the same
    /// condition still holds.
    pub(crate) fn key(&self) -> String {
        format!(
            "{}|{}",
            self.kind.name(),
            self.account.as_deref().unwrap_or("")
        )
    }
}

/// The commit status of a revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommitState {
    Pending,
    Success,
    Failure,
}

/// A commit status to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommitStatus {
    pub revision: String,
    pub state: CommitState,
    pub description: Vec<Part>,
}

/// The events one run gives: per account drift, a limit reached, failures; then, for the
/// run, `applied` when it changed anything and `fatal` when it stopped.
pub(crate) fn of_run(summary: &Summary) -> Vec<Event> {
    let rev = summary.revision.as_deref();
    let mut events = Vec::new();
    for a in &summary.accounts {
        let account = a.official_account.as_str();
        let (mut drift_in, mut drift_out) = (a.already_subscribed, 0);
        if let Some(read) = summary.refresh.as_ref().and_then(|r| {
            r.read
                .iter()
                .find(|r| r.official_account == a.official_account)
        }) {
            drift_in += read.counts.added;
            drift_out += read.counts.removed;
        }
        let changed: Vec<&str> = a
            .properties
            .iter()
            .flat_map(|p| p.changes.iter().filter(|c| c.drift))
            .map(|c| c.field.key())
            .collect();
        if drift_in + drift_out > 0 || !changed.is_empty() {
            let mut e = Event::new(EventType::Drift, rev, Some(account)).value(account);
            if drift_in + drift_out > 0 {
                e = e.plain(format!(
                    ": {} subscribed and {} unsubscribed outside subsync",
                    thousands(drift_in),
                    thousands(drift_out)
                ));
            }
            if !changed.is_empty() {
                let set_back = a.properties.as_ref().is_some_and(|p| p.drift() > 0);
                e = e.plain(format!(
                    "{} {} changed outside subsync{}",
                    if drift_in + drift_out > 0 { ";" } else { ":" },
                    changed.join(", "),
                    if set_back { " and set back" } else { "" }
                ));
            }
            events.push(e);
        }
        if a.not_added_limit > 0 {
            let full = a
                .max_subscribers
                .map(|m| format!(" at {} subscribers", thousands(m)))
                .unwrap_or_default();
            let accepted = if a.accept_shortfall {
                " (the manifest accepts the shortfall)"
            } else {
                ""
            };
            events.push(
                Event::new(EventType::LimitReached, rev, Some(account))
                    .value(account)
                    .plain(format!(
                        " is full{full}: {} not added{accepted}",
                        count(a.not_added_limit as usize, "desired subscriber")
                    )),
            );
        }
        let (failed, remove_failed) = (a.failed.len() as u64, a.remove_failed.len() as u64);
        if failed + remove_failed > 0 {
            let first = a.failed.first().or(a.remove_failed.first());
            let mut e = Event::new(EventType::Failed, rev, Some(account))
                .value(account)
                .plain(format!(
                    ": {} could not be added and {} not removed",
                    count(failed as usize, "subscriber"),
                    thousands(remove_failed)
                ));
            if let Some(f) = first {
                e = e
                    .plain("; the first, ")
                    .value(f.subscriber.as_str())
                    .plain(format!(", code {}", f.code));
            }
            events.push(e);
        }
    }
    let t = &summary.totals;
    if t.added + t.removed + t.properties_set + t.created > 0 {
        let mut e = Event::new(EventType::Applied, rev, None);
        e = match rev {
            Some(r) => e.plain("revision ").value(short(r)).plain(" applied: "),
            None => e.plain("applied: "),
        };
        let mut text = format!(
            "{} added, {} removed",
            thousands(t.added),
            thousands(t.removed)
        );
        if t.properties_set > 0 {
            let noun = if t.properties_set == 1 {
                "property"
            } else {
                "properties"
            };
            text.push_str(&format!(
                ", {} account {noun} set",
                thousands(t.properties_set)
            ));
        }
        if t.created > 0 {
            text.push_str(&format!(
                ", {} created",
                count(t.created as usize, "account")
            ));
        }
        events.push(e.plain(text));
    }
    if summary.result == crate::apply::RunResult::Failed {
        let why = summary.error.as_deref().unwrap_or("a fatal error");
        events.push(
            Event::new(EventType::Fatal, rev, None)
                .plain("the reconcile stopped: ")
                .value(why),
        );
    }
    events
}

/// The event for a run that could not start (the ledger refused it).
pub(crate) fn not_started(revision: Option<&str>, why: &str) -> Event {
    Event::new(EventType::Fatal, revision, None)
        .plain("the reconcile could not start: ")
        .value(why)
}

pub(crate) fn recovered(revision: Option<&str>) -> Event {
    Event::new(EventType::Recovered, revision, None).plain("reconciles succeed again")
}

pub(crate) fn invalid(problems: usize, first: &str) -> Event {
    Event::new(EventType::Invalid, None, None)
        .plain(format!(
            "the manifests are invalid ({}; the last valid set stays in force); the first: ",
            count(problems, "problem")
        ))
        .value(first)
}

/// `1 problem`, `1,344 problems` (the noun's plural is regular here).
pub(crate) fn count(n: usize, noun: &str) -> String {
    let n = n as u64;
    format!(
        "{} {}",
        thousands(n),
        crate::words::noun(n, noun, &format!("{noun}s"))
    )
}

pub(crate) fn valid(revision: Option<&str>) -> Event {
    Event::new(EventType::Valid, revision, None).plain("the manifests are valid again")
}

pub(crate) fn leader(gained: bool) -> Event {
    if gained {
        Event::new(EventType::LeaderGained, None, None)
            .plain("this replica holds the ledger's lock and reconciles")
    } else {
        Event::new(EventType::LeaderLost, None, None)
            .plain("this replica lost the ledger's lock and stands by")
    }
}

/// The commit status a run ends with: failure when subscribers failed, a limit left some
/// out (and the manifest does not accept that) or the run stopped.
pub(crate) fn status_of(summary: &Summary, revision: &str) -> CommitStatus {
    let t = &summary.totals;
    let mut parts = vec![Part::Plain(format!(
        "{} added, {} removed",
        thousands(t.added),
        thousands(t.removed)
    ))];
    let mut failure = summary.result == crate::apply::RunResult::Failed;
    if t.failed + t.remove_failed > 0 {
        failure = true;
        parts.push(Part::Plain(format!(
            ", {} failed",
            thousands(t.failed + t.remove_failed)
        )));
    }
    for a in summary
        .accounts
        .iter()
        .filter(|a| a.properties.as_ref().is_some_and(|p| !p.complete()))
    {
        failure = true;
        parts.push(Part::Plain(
            ", the declared properties not all set on ".into(),
        ));
        parts.push(Part::Value(a.official_account.clone()));
    }
    for a in summary.accounts.iter().filter(|a| a.not_added_limit > 0) {
        failure |= !a.accept_shortfall;
        parts.push(Part::Plain(format!(
            ", {} over the limit of ",
            thousands(a.not_added_limit)
        )));
        parts.push(Part::Value(a.official_account.clone()));
    }
    if summary.result == crate::apply::RunResult::Failed {
        parts.push(Part::Plain("; stopped: ".into()));
        parts.push(Part::Value(
            summary
                .error
                .clone()
                .unwrap_or_else(|| "a fatal error".into()),
        ));
    }
    CommitStatus {
        revision: revision.to_owned(),
        state: if failure {
            CommitState::Failure
        } else {
            CommitState::Success
        },
        description: parts,
    }
}

/// The commit status of a revision whose manifests were refused: failure, with the count
/// and the first problem.
pub(crate) fn invalid_status(revision: &str, problems: usize, first: &str) -> CommitStatus {
    CommitStatus {
        revision: revision.to_owned(),
        state: CommitState::Failure,
        description: vec![
            Part::Plain(format!(
                "the manifests are invalid ({}): ",
                count(problems, "problem")
            )),
            Part::Value(first.to_owned()),
        ],
    }
}

pub(crate) fn pending(revision: &str) -> CommitStatus {
    CommitStatus {
        revision: revision.to_owned(),
        state: CommitState::Pending,
        description: vec![Part::Plain("reconciling".into())],
    }
}

fn short(revision: &str) -> &str {
    let hex = revision.len() >= 12 && revision.bytes().all(|b| b.is_ascii_hexdigit());
    if hex { &revision[..12] } else { revision }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{AccountStatus, AccountSummary, FailedSubscriber, RunResult, Totals};

    fn account(id: &str) -> AccountSummary {
        AccountSummary {
            official_account: id.into(),
            name: Some("n".into()),
            status: AccountStatus::Ok,
            planned_add: 0,
            added: 0,
            already_subscribed: 0,
            recovered: 0,
            failed: vec![],
            not_added_limit: 0,
            max_subscribers: None,
            planned_remove: 0,
            removed: 0,
            remove_failed: vec![],
            remove_skipped: 0,
            accept_shortfall: false,
            properties: None,
        }
    }

    fn summary(accounts: Vec<AccountSummary>, result: RunResult) -> Summary {
        let mut totals = Totals::default();
        for a in &accounts {
            totals.added += a.added;
            totals.removed += a.removed;
            totals.failed += a.failed.len() as u64;
            totals.not_added_limit += a.not_added_limit;
        }
        Summary {
            format_version: "1".into(),
            result,
            interrupted: false,
            duration_ms: 0,
            requests: 0,
            retries: 0,
            rate_limited: 0,
            revision: Some("0123456789abcdef0123456789abcdef01234567".into()),
            trigger: crate::apply::Trigger::Apply,
            refresh: None,
            error: None,
            accounts,
            totals,
        }
    }

    fn text(e: &Event) -> String {
        e.message
            .iter()
            .map(|p| match p {
                Part::Plain(s) | Part::Value(s) => s.as_str(),
            })
            .collect()
    }

    #[test]
    fn a_run_that_changed_nothing_tells_nothing() {
        assert!(of_run(&summary(vec![account("@TOA#_a")], RunResult::Converged)).is_empty());
    }

    #[test]
    fn a_full_account_and_a_failure_are_told_per_account_and_the_adds_once() {
        let mut vip = account("@TOA#_vip");
        vip.added = 1344;
        vip.not_added_limit = 10;
        vip.max_subscribers = Some(1354);
        let mut news = account("@TOA#_news");
        news.failed = vec![FailedSubscriber {
            subscriber: "u3".into(),
            code: 130010,
        }];
        news.already_subscribed = 2;
        let s = summary(vec![vip, news], RunResult::Partial);
        let events = of_run(&s);
        let kinds: Vec<_> = events.iter().map(|e| (e.kind, e.account.clone())).collect();
        assert_eq!(
            kinds,
            vec![
                (EventType::LimitReached, Some("@TOA#_vip".into())),
                (EventType::Drift, Some("@TOA#_news".into())),
                (EventType::Failed, Some("@TOA#_news".into())),
                (EventType::Applied, None),
            ]
        );
        assert_eq!(
            text(&events[0]),
            "@TOA#_vip is full at 1,354 subscribers: 10 desired subscribers not added"
        );
        assert_eq!(
            text(&events[2]),
            "@TOA#_news: 1 subscriber could not be added and 0 not removed; the first, u3, code 130010"
        );
        assert_eq!(
            text(&events[3]),
            "revision 0123456789ab applied: 1,344 added, 0 removed"
        );
        let status = status_of(&s, "0123");
        assert_eq!(status.state, CommitState::Failure);
        let description: String = status
            .description
            .iter()
            .map(|p| match p {
                Part::Plain(s) | Part::Value(s) => s.as_str(),
            })
            .collect();
        assert_eq!(
            description,
            "1,344 added, 0 removed, 1 failed, 10 over the limit of @TOA#_vip"
        );
    }

    #[test]
    fn an_accepted_shortfall_is_told_but_the_commit_succeeds() {
        let mut vip = account("@TOA#_vip");
        vip.not_added_limit = 10;
        vip.accept_shortfall = true;
        let s = summary(vec![vip], RunResult::Converged);
        assert_eq!(of_run(&s)[0].kind, EventType::LimitReached);
        assert_eq!(status_of(&s, "r").state, CommitState::Success);
    }

    #[test]
    fn a_stopped_run_is_fatal_and_fails_its_commit() {
        let mut s = summary(vec![], RunResult::Failed);
        s.error = Some("credentials refused (70009)".into());
        let events = of_run(&s);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventType::Fatal);
        assert_eq!(status_of(&s, "r").state, CommitState::Failure);
    }

    #[test]
    fn a_console_edit_set_back_is_drift_and_counts_as_applied() {
        use crate::apply::{AccountProperties, OwnResult};
        use crate::plan::PropertyChange;
        use crate::properties::{Field, Value};
        let mut a = account("@TOA#_w");
        a.properties = Some(AccountProperties {
            create: None,
            changes: vec![PropertyChange {
                field: Field::Name,
                from: Some(Value::Text("Console".into())),
                to: Value::Text("Weekly".into()),
                drift: true,
                refused: None,
            }],
            result: OwnResult::Done,
            code: None,
        });
        let mut s = summary(vec![a], RunResult::Converged);
        s.totals.properties_set = 1;
        s.totals.property_drift = 1;
        let events = of_run(&s);
        assert_eq!(events[0].kind, EventType::Drift);
        assert_eq!(
            text(&events[0]),
            "@TOA#_w: name changed outside subsync and set back"
        );
        assert_eq!(
            text(&events[1]),
            "revision 0123456789ab applied: 0 added, 0 removed, 1 account property set"
        );
        assert_eq!(status_of(&s, "r").state, CommitState::Success);
    }

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn event_names_round_trip() {
        for k in EventType::ALL {
            assert_eq!(EventType::parse(k.name()), Some(k));
        }
        assert_eq!(EventType::parse("Applied"), None);
    }
}
