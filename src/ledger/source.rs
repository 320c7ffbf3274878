//! Reading the ledger one account at a time, for planning: an account's state, then its
//! confirmed subscribers in order, handed over one at a time as the database streams them (one
//! query per account, no page or account held), so that planning holds none of the ledger's
//! subscribers but the few it keeps.
//!
//! [`AccountSource`] is what the planner reads from: [`View`] over a read transaction (a
//! `Reader`'s, or the writer's), and a [`Snapshot`] held in memory (tests, small uses).

use super::backend::{Param, Tx};
use super::read::{account_row, facts_of, strings};
use super::{AccountView, Drift, FailedEntry, LedgerError, Op, Snapshot, sql};

/// The confirmed subscribers of one account: `each` is handed them in byte order.
pub trait Confirmed {
    fn each(&mut self, f: &mut dyn FnMut(String)) -> Result<(), LedgerError>;
}

/// Subscribers in memory, already in order.
pub struct Listed<'a>(pub &'a [String]);

impl Confirmed for Listed<'_> {
    fn each(&mut self, f: &mut dyn FnMut(String)) -> Result<(), LedgerError> {
        self.0.iter().cloned().for_each(f);
        Ok(())
    }
}

/// Where the planner reads the ledger from.
pub trait AccountSource {
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
            Some(state) => f(&state.view, &mut Listed(&state.confirmed)),
            None => f(&AccountView::default(), &mut Listed(&[])),
        }
    }
}

/// The ledger as one read transaction sees it.
pub struct View<'t> {
    tx: &'t mut dyn Tx,
}

impl<'t> View<'t> {
    pub(super) fn new(tx: &'t mut dyn Tx) -> View<'t> {
        View { tx }
    }
}

impl AccountSource for View<'_> {
    fn identity(&mut self) -> Result<(Option<String>, u64), LedgerError> {
        let (lineage, serial, _) = super::read::identity(self.tx)?;
        Ok((Some(lineage), serial))
    }

    fn held(&mut self) -> Result<Vec<String>, LedgerError> {
        // Byte order, as everywhere else, whatever the database's collation.
        let mut held = strings(self.tx, sql::ACCOUNTS_HELD, &[])?;
        held.sort();
        Ok(held)
    }

    fn account(
        &mut self,
        account: &str,
        f: &mut dyn FnMut(&AccountView, &mut dyn Confirmed) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        let mut found = None;
        self.tx
            .query(sql::ACCOUNT_BY_NAME, &[Param::Text(account)], &mut |r| {
                found = Some(account_row(r)?);
                Ok(())
            })?;
        let Some(row) = found else {
            return f(&AccountView::default(), &mut Listed(&[]));
        };
        let view = view_of(self.tx, row.id, facts_of(&row), row.refreshed_at)?;
        f(
            &view,
            &mut Streamed {
                tx: &mut *self.tx,
                account: row.id,
            },
        )
    }
}

/// An account's confirmed subscribers as the database streams them.
struct Streamed<'t> {
    tx: &'t mut dyn Tx,
    account: i64,
}

impl Confirmed for Streamed<'_> {
    fn each(&mut self, f: &mut dyn FnMut(String)) -> Result<(), LedgerError> {
        self.tx.confirmed(self.account, f)
    }
}

/// Everything about an account but its confirmed subscribers.
pub(super) fn view_of(
    tx: &mut dyn Tx,
    id: i64,
    facts: super::AccountFacts,
    refreshed_at: Option<i64>,
) -> Result<AccountView, LedgerError> {
    let properties = super::properties::of(tx, id)?;
    let id = Param::Int(id);
    let mut failed = Vec::new();
    tx.query(sql::FAILED_OF, &[id], &mut |r| {
        failed.push(FailedEntry {
            subscriber: r.text(0)?,
            code: r.int(1)?,
            attempts: u32::try_from(r.int(2)?).unwrap_or(u32::MAX),
            last_at: r.int(3)?,
            op: Op::parse(&r.text(4)?),
        });
        Ok(())
    })?;
    Ok(AccountView {
        failed,
        facts,
        drift: Drift {
            added: strings(tx, sql::DRIFT_OF, &[id, Param::Text("added")])?,
            removed: strings(tx, sql::DRIFT_OF, &[id, Param::Text("removed")])?,
            at: refreshed_at,
        },
        out_of_band: strings(tx, sql::OUT_OF_BAND_OF, &[id])?,
        intents: strings(tx, sql::INTENTS_OF, &[id])?,
        properties,
    })
}
