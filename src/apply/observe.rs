//! Who hears about outcomes as they are committed: the progress display of a run, and the
//! daemon's metrics. Both receive the same stream, from the executor, only after the ledger has
//! committed what they count.

/// Outcomes of some of one account's planned subscribers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub added: u64,
    pub already: u64,
    /// Adds or removals that failed.
    pub failed: u64,
    pub not_added_limit: u64,
    /// Removed (or found not subscribed).
    pub removed: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.added + self.already + self.failed + self.not_added_limit + self.removed
    }
}

pub trait Observer: Send + Sync {
    /// `counts` of `account`'s subscribers are now recorded.
    fn committed(&self, account: &str, counts: &Counts);
}

/// Hears nothing.
pub struct Nobody;

impl Observer for Nobody {
    fn committed(&self, _: &str, _: &Counts) {}
}

/// Passes everything to each of several observers.
pub struct Both<A, B>(pub A, pub B);

impl<A: Observer, B: Observer> Observer for Both<A, B> {
    fn committed(&self, account: &str, counts: &Counts) {
        self.0.committed(account, counts);
        self.1.committed(account, counts);
    }
}

impl<T: Observer + ?Sized> Observer for std::sync::Arc<T> {
    fn committed(&self, account: &str, counts: &Counts) {
        (**self).committed(account, counts)
    }
}
