//! Who hears about a run as it goes: a progress display, the daemon's metrics, a test. The
//! core knows nothing about terminals: the caller supplies an [`Observer`], and every event
//! comes from one place, the executor, only after the ledger has committed what it counts.

/// Outcomes of some of one account's planned subscribers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) added: u64,
    /// Result 2 for a subscriber the ledger did not know: drift.
    pub(crate) already: u64,
    /// Result 2 for a subscriber an interrupted run of subsync's own had sent: not drift.
    pub(crate) recovered: u64,
    /// Adds or removals that failed.
    pub(crate) failed: u64,
    pub(crate) not_added_limit: u64,
    /// Removed (or found not subscribed).
    pub(crate) removed: u64,
    /// The account's own fields set (by a modify, or a creation's).
    pub(crate) properties_set: u64,
    /// Of those, fields set back after a change outside subsync.
    pub(crate) property_drift: u64,
    /// The account was created.
    pub(crate) created: u64,
}

impl Counts {
    /// Subscribers accounted for (the account's own fields are not subscribers).
    pub(crate) fn total(&self) -> u64 {
        self.added
            + self.already
            + self.recovered
            + self.failed
            + self.not_added_limit
            + self.removed
    }
}

/// Hears a run's progress. Every method has a default that ignores the event.
pub(crate) trait Observer: Send + Sync {
    /// A run is about to send `total` planned changes.
    fn sending(&self, _total: u64) {}
    /// `counts` of `account`'s subscribers are now recorded.
    fn committed(&self, _account: &str, _counts: &Counts) {}
    /// The run has sent everything it is going to.
    fn sent(&self) {}
}

/// Hears nothing.
pub(crate) struct Nobody;

impl Observer for Nobody {}

impl<T: Observer + ?Sized> Observer for std::sync::Arc<T> {
    fn sending(&self, total: u64) {
        (**self).sending(total)
    }

    fn committed(&self, account: &str, counts: &Counts) {
        (**self).committed(account, counts)
    }

    fn sent(&self) {
        (**self).sent()
    }
}
