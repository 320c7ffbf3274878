//! When each account's live list is next read (`--refresh-every`): from when the ledger says
//! each was last read, with no clock of its own, so that it is tested by feeding it instants.

use std::collections::HashMap;
use std::time::Duration;

/// When each account's live list was last read, as the ledger says.
#[derive(Debug, Default)]
pub(super) struct Refreshes {
    /// `None`: live lists are never read on a schedule.
    every: Option<Duration>,
    /// Milliseconds since the epoch; `None` (or absent): never read.
    read_at: HashMap<String, Option<i64>>,
}

impl Refreshes {
    pub(super) fn new(every: Option<Duration>) -> Refreshes {
        Refreshes {
            every,
            read_at: HashMap::new(),
        }
    }

    /// Takes what the ledger says now: each account and when its list was last read.
    pub(super) fn learn(&mut self, read_at: impl IntoIterator<Item = (String, Option<i64>)>) {
        self.read_at = read_at.into_iter().collect();
    }

    fn last_read(&self, account: &str) -> Option<i64> {
        self.read_at.get(account).copied().flatten()
    }

    /// Whether the live list of one of `accounts` is due to be read at `now_ms`.
    pub(super) fn due<'a>(&self, accounts: impl IntoIterator<Item = &'a str>, now_ms: i64) -> bool {
        let Some(every) = self.every else {
            return false;
        };
        let horizon = now_ms - every.as_millis() as i64;
        accounts
            .into_iter()
            .any(|a| self.last_read(a).is_none_or(|at| at <= horizon))
    }

    /// How long after `now_ms` the oldest live list of `accounts` falls due; `None` when none
    /// will.
    pub(super) fn next<'a>(
        &self,
        accounts: impl IntoIterator<Item = &'a str>,
        now_ms: i64,
    ) -> Option<Duration> {
        let every = self.every?;
        let oldest = accounts
            .into_iter()
            .map(|a| self.last_read(a).unwrap_or(0))
            .min()?;
        let due_in = (oldest + every.as_millis() as i64 - now_ms).max(0);
        Some(Duration::from_millis(due_in as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn a_list_never_read_is_due_at_once_and_one_read_falls_due_a_period_later() {
        let mut r = Refreshes::new(Some(Duration::from_secs(600)));
        let now = 100 * MIN;
        assert!(r.due(["a"], now), "never read");
        assert_eq!(r.next(["a"], now), Some(Duration::ZERO));
        r.learn([("a".into(), Some(now)), ("b".into(), Some(now - 7 * MIN))]);
        assert!(!r.due(["a", "b"], now));
        // The oldest decides: b was read 7 minutes ago, so it is due in 3.
        assert_eq!(r.next(["a", "b"], now), Some(Duration::from_secs(180)));
        assert!(r.due(["a", "b"], now + 3 * MIN));
        // An account the ledger has no row for has never been read.
        assert!(r.due(["a", "c"], now));
    }

    #[test]
    fn without_a_period_nothing_is_ever_due() {
        let r = Refreshes::new(None);
        assert!(!r.due(["a"], 0));
        assert_eq!(r.next(["a"], 0), None);
        assert_eq!(
            Refreshes::new(Some(Duration::from_secs(1))).next([], 0),
            None
        );
    }
}
