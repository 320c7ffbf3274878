//! Who hears about a run as it goes: a progress display, the daemon's metrics, a test. The
//! core knows nothing about terminals: the caller supplies an [`Observer`], and every event
//! comes from one place, the executor, only after the ledger has committed what it counts.

/// Outcomes of some of one account's planned subscribers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub added: u64,
    /// Result 2 for a subscriber the ledger did not know: drift.
    pub already: u64,
    /// Result 2 for a subscriber an interrupted run of subsync's own had sent: not drift.
    pub recovered: u64,
    /// Adds or removals that failed.
    pub failed: u64,
    pub not_added_limit: u64,
    /// Removed (or found not subscribed).
    pub removed: u64,
    /// The account's own fields set (by a modify, or a creation's).
    pub properties_set: u64,
    /// Of those, fields set back after a change outside subsync.
    pub property_drift: u64,
    /// The account was created.
    pub created: u64,
}

impl Counts {
    /// Subscribers accounted for (the account's own fields are not subscribers).
    pub fn total(&self) -> u64 {
        self.added
            + self.already
            + self.recovered
            + self.failed
            + self.not_added_limit
            + self.removed
    }
}

/// Hears a run's progress. Every method has a default that ignores the event.
pub trait Observer: Send + Sync {
    /// A run is about to send `total` planned changes.
    fn sending(&self, _total: u64) {}
    /// `counts` of `account`'s subscribers are now recorded.
    fn committed(&self, _account: &str, _counts: &Counts) {}
    /// The run has sent everything it is going to.
    fn sent(&self) {}
}

/// Hears nothing.
pub struct Nobody;

impl Observer for Nobody {}

/// Passes everything to each of two observers.
pub struct Both<A, B>(pub A, pub B);

impl<A: Observer, B: Observer> Observer for Both<A, B> {
    fn sending(&self, total: u64) {
        self.0.sending(total);
        self.1.sending(total);
    }

    fn committed(&self, account: &str, counts: &Counts) {
        self.0.committed(account, counts);
        self.1.committed(account, counts);
    }

    fn sent(&self) {
        self.0.sent();
        self.1.sent();
    }
}

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
