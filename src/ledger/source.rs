//! Reading the ledger one account at a time, for planning: an account's state, then its
//! confirmed subscribers in order, handed over one at a time as the database streams them (one
//! query per account, no page or account held), so that planning holds none of the ledger's
//! subscribers but the few it keeps.
//!
//! [`AccountSource`] is what the planner reads from, synchronously: a read transaction of any
//! backend seen through `view::serve` (the planner runs on the blocking pool, the database's
//! answers come from the async side), or a [`Snapshot`] held in memory (tests, small uses).

use super::{AccountView, LedgerError, Snapshot};

/// The confirmed subscribers of one account: `each` is handed them in byte order, borrowed
/// (the few a planner keeps, it copies).
pub(crate) trait Confirmed {
    fn each(&mut self, f: &mut dyn FnMut(&str)) -> Result<(), LedgerError>;
}

/// Subscribers in memory, already in order.
pub(crate) struct InMemory<'a>(pub(crate) &'a [String]);

impl Confirmed for InMemory<'_> {
    fn each(&mut self, f: &mut dyn FnMut(&str)) -> Result<(), LedgerError> {
        self.0.iter().for_each(|s| f(s));
        Ok(())
    }
}

/// Where the planner reads the ledger from.
pub(crate) trait AccountSource {
    /// The ledger's lineage (`None` when there is no ledger yet) and serial.
    fn identity(&mut self) -> Result<(Option<String>, u64), LedgerError>;
    /// The accounts holding confirmed subscribers, sorted.
    fn held(&mut self) -> Result<Vec<String>, LedgerError>;
    /// Hands `account`'s state and its confirmed subscribers to `f`. An account the ledger
    /// does not know reads as empty.
    fn account(
        &mut self,
        account: &str,
        f: &mut dyn FnMut(&AccountView, &mut dyn Confirmed) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError>;
}

impl AccountSource for Snapshot {
    fn identity(&mut self) -> Result<(Option<String>, u64), LedgerError> {
        Ok((self.lineage.clone(), self.serial))
    }

    fn held(&mut self) -> Result<Vec<String>, LedgerError> {
        Ok(self
            .accounts
            .iter()
            .filter(|(_, state)| !state.confirmed.is_empty())
            .map(|(name, _)| name.clone())
            .collect())
    }

    fn account(
        &mut self,
        account: &str,
        f: &mut dyn FnMut(&AccountView, &mut dyn Confirmed) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        match self.accounts.get(account) {
            Some(state) => f(&state.view, &mut InMemory(&state.confirmed)),
            None => f(&AccountView::default(), &mut InMemory(&[])),
        }
    }
}
