//! What the daemon tells the notification sinks, decided in one place from what happened.
//!
//! Only the leader tells: every replica reads the manifests and serves its probes, but one
//! holding the ledger's lock speaks for all of them, so N replicas tell each event once. A
//! replica standing by sends nothing but `leader_gained` when it takes over; a leader that
//! loses the lock sends `leader_lost`. Conditions are told when they appear ([`Conditions`]),
//! and a revision's commit status is posted once per state (pending, then success or
//! failure; failure too for a revision whose manifests are refused).

use std::time::Duration;

use crate::apply::Reconciled;
use crate::notifications::{CommitState, CommitStatus, Conditions, Notifier, event};

pub(super) struct Announcer {
    notifier: Notifier,
    /// The conditions the last run reported.
    conditions: Conditions,
    /// The last commit status posted, and for which revision.
    posted: Option<(String, CommitState)>,
}

impl Announcer {
    pub(super) fn new(notifier: Notifier) -> Announcer {
        Announcer {
            notifier,
            conditions: Conditions::default(),
            posted: None,
        }
    }

    /// This replica took the lock: the one thing a replica that stood by tells.
    pub(super) fn leader_gained(&mut self) {
        self.notifier.events(vec![event::leader(true)]);
    }

    /// This replica lost the lock: it tells that, then nothing until it leads again.
    pub(super) fn leader_lost(&mut self) {
        self.notifier.events(vec![event::leader(false)]);
    }

    /// The manifests are valid again after being refused.
    pub(super) fn manifests_valid(&mut self, leading: bool) {
        if leading {
            self.notifier.events(vec![event::valid(None)]);
        }
    }

    /// The manifests were refused: `invalid` when the problems are `news`, and a failed
    /// status for `revision` (once per revision).
    pub(super) fn manifests_invalid(
        &mut self,
        leading: bool,
        news: bool,
        revision: Option<&str>,
        problems: usize,
        first: &str,
    ) {
        if !leading {
            return;
        }
        if news {
            let mut e = event::invalid(problems, first);
            e.revision = revision.map(str::to_owned);
            self.notifier.events(vec![e]);
        }
        if let Some(r) = revision {
            self.post(event::invalid_status(r, problems, first));
        }
    }

    /// A run of `revision` starts: pending, once per revision.
    pub(super) fn run_started(&mut self, revision: Option<&str>) {
        if let Some(r) = revision
            && self.posted.as_ref().is_none_or(|(posted, _)| posted != r)
        {
            self.post(event::pending(r));
        }
    }

    /// What a run changed, without repeating what still holds, and the revision's status
    /// when it differs from the one posted.
    pub(super) fn run_ended(&mut self, reconciled: &Reconciled, revision: Option<&str>) {
        let events = event::of_run(&reconciled.summary);
        let told = self.conditions.after_run(events, revision);
        self.notifier.events(told);
        if let Some(r) = revision {
            self.post(event::status_of(&reconciled.summary, r));
        }
    }

    /// A run that could not start: fatal, as a condition.
    pub(super) fn not_started(&mut self, revision: Option<&str>, why: &str) {
        let told = self
            .conditions
            .after_run(vec![event::not_started(revision, why)], revision);
        self.notifier.events(told);
    }

    fn post(&mut self, status: CommitStatus) {
        let now = Some((status.revision.clone(), status.state));
        if self.posted != now {
            self.posted = now;
            self.notifier.status(status);
        }
    }

    /// Lets what is queued be delivered for at most `deadline`.
    pub(super) async fn close(self, deadline: Duration) {
        self.notifier.close(deadline).await;
    }
}
