//! Synchronous access to a ledger: [`Ledger`] writes (holding the writer lock), [`Reader`]
//! reads (never creating a ledger, never waiting for the writer). Both run the meaning written
//! in `read.rs` and `write.rs` on whichever backend [`Location`] names.

use super::backend::{Backend, Copied, Meta, Tx};
use super::location::Access;
use super::write::Ids;
use super::{
    AccountSource, AccountSummary, LedgerError, Location, Record, Refreshed, Run, Snapshot, View,
    read, write,
};

/// Runs `f` in one read transaction of `db` and returns what it returns.
fn reading<T>(
    db: &mut dyn Backend,
    mut f: impl FnMut(&mut dyn Tx) -> Result<T, LedgerError>,
) -> Result<T, LedgerError> {
    let mut out = None;
    db.read(&mut |tx| {
        out = Some(f(tx)?);
        Ok(())
    })?;
    out.ok_or_else(|| located(db.location(), "a read returned nothing"))
}

/// Runs `f` over one read transaction of `db`, as an [`AccountSource`].
fn viewing<T>(
    db: &mut dyn Backend,
    f: impl FnOnce(&mut dyn AccountSource) -> Result<T, LedgerError>,
) -> Result<T, LedgerError> {
    let mut f = Some(f);
    reading(db, |tx| match f.take() {
        Some(f) => f(&mut View::new(tx)),
        None => Err(located("", "a read ran twice")),
    })
}

fn located(at: &str, detail: &str) -> LedgerError {
    LedgerError::Database {
        at: at.to_owned(),
        detail: detail.to_owned(),
    }
}

/// Gives errors raised by the shared logic (which knows no location) this ledger's.
fn at(location: &str, e: LedgerError) -> LedgerError {
    match e {
        LedgerError::Database { at, detail } if at.is_empty() => located(location, &detail),
        other => other,
    }
}

/// Read-only access: snapshots for planning, summaries for status. Never writes, never
/// creates a ledger, never waits for the writer.
pub struct Reader {
    db: Option<Box<dyn Backend>>,
    location: Location,
}

impl Reader {
    /// Opens the ledger at `location`; one that does not exist yet reads as empty.
    pub fn open(location: impl Into<Location>) -> Result<Reader, LedgerError> {
        let location = location.into();
        let db = location.connect(Access::Read)?;
        Ok(Reader { db, location })
    }

    pub fn exists(&self) -> bool {
        self.db.is_some()
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    fn read<T: Default>(
        &mut self,
        f: impl FnMut(&mut dyn Tx) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        match &mut self.db {
            Some(db) => {
                let shown = db.location().to_owned();
                reading(db.as_mut(), f).map_err(|e| at(&shown, e))
            }
            None => Ok(T::default()),
        }
    }

    /// The whole ledger in memory (tests).
    #[cfg(any(test, feature = "testing"))]
    pub fn snapshot(&mut self) -> Result<Snapshot, LedgerError> {
        self.read(read::snapshot)
    }

    /// Runs `f` over one read transaction, reading accounts one at a time; a ledger that does
    /// not exist yet reads as empty.
    pub fn view<T>(
        &mut self,
        f: impl FnOnce(&mut dyn AccountSource) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        match &mut self.db {
            Some(db) => {
                let shown = db.location().to_owned();
                viewing(db.as_mut(), f).map_err(|e| at(&shown, e))
            }
            None => f(&mut Snapshot::default()),
        }
    }

    pub fn summaries(&mut self) -> Result<(Snapshot, Vec<AccountSummary>), LedgerError> {
        self.read(read::summaries)
    }

    /// The latest `limit` runs, newest first.
    pub fn runs(&mut self, limit: usize) -> Result<Vec<Run>, LedgerError> {
        self.read(|tx| read::runs(tx, limit))
    }
}

/// The ledger open for writing, its writer lock held until it is dropped.
pub struct Ledger {
    db: Box<dyn Backend>,
    ids: Ids,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Ledger").field(&self.db.location()).finish()
    }
}

impl Ledger {
    /// Takes the writer lock (refused at once, naming the holder, if held) and opens the
    /// ledger, creating it or upgrading its schema.
    pub fn open(location: impl Into<Location>, command: &str) -> Result<Ledger, LedgerError> {
        let location = location.into();
        let db = location
            .connect(Access::Write { command })?
            .ok_or_else(|| located(&location.to_string(), "the writer found no ledger"))?;
        Ok(Ledger {
            db,
            ids: Ids::default(),
        })
    }

    /// Where the ledger is, as it is safe to show.
    pub fn location(&self) -> &str {
        self.db.location()
    }

    fn read<T>(
        &mut self,
        f: impl FnMut(&mut dyn Tx) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        let shown = self.db.location().to_owned();
        reading(self.db.as_mut(), f).map_err(|e| at(&shown, e))
    }

    /// Runs `f` in one write transaction; account ids it created are forgotten if it fails.
    fn write<T>(
        &mut self,
        mut f: impl FnMut(&mut dyn Tx, &mut Ids) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        let mut out = None;
        let ids = &mut self.ids;
        let result = self.db.write(&mut |tx| {
            out = Some(f(tx, ids)?);
            Ok(())
        });
        let shown = self.db.location().to_owned();
        if let Err(e) = result {
            self.ids.forget();
            return Err(at(&shown, e));
        }
        out.ok_or_else(|| located(&shown, "a write returned nothing"))
    }

    /// The whole ledger in memory (tests).
    #[cfg(any(test, feature = "testing"))]
    pub fn snapshot(&mut self) -> Result<Snapshot, LedgerError> {
        self.read(read::snapshot)
    }

    /// Runs `f` over one read transaction, reading accounts one at a time.
    pub fn view<T>(
        &mut self,
        f: impl FnOnce(&mut dyn AccountSource) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        let shown = self.db.location().to_owned();
        viewing(self.db.as_mut(), f).map_err(|e| at(&shown, e))
    }

    pub fn summaries(&mut self) -> Result<(Snapshot, Vec<AccountSummary>), LedgerError> {
        self.read(read::summaries)
    }

    pub fn runs(&mut self, limit: usize) -> Result<Vec<Run>, LedgerError> {
        self.read(|tx| read::runs(tx, limit))
    }

    /// Opens an audit-log entry; returns its id.
    pub fn begin_run(&mut self, command: &str, revision: Option<&str>) -> Result<i64, LedgerError> {
        self.write(|tx, _| write::begin_run(tx, command, revision))
    }

    /// Closes an audit-log entry with its result and summary.
    pub fn finish_run(
        &mut self,
        run: i64,
        result: &str,
        summary: &serde_json::Value,
    ) -> Result<(), LedgerError> {
        self.write(|tx, _| write::finish_run(tx, run, result, summary))
    }

    /// Records outcomes of `run`, all in one transaction.
    pub fn record(&mut self, run: i64, records: &[Record]) -> Result<(), LedgerError> {
        self.write(|tx, ids| write::record(tx, ids, run, records))
    }

    /// Starts (or restarts) the refresh of `account`: forgets what an earlier one staged.
    pub fn refresh_start(&mut self, account: &str) -> Result<(), LedgerError> {
        self.db.unstage(account)
    }

    /// Stages one page of `account`'s live list; the ledger itself is unchanged until
    /// [`Ledger::refresh_finish`].
    pub fn observe(&mut self, account: &str, page: &[String]) -> Result<(), LedgerError> {
        self.db.stage(account, page)
    }

    /// Makes the ledger match `account`'s staged live list, in one transaction.
    pub fn refresh_finish(
        &mut self,
        run: i64,
        account: &str,
        max_subscribers: Option<u64>,
        adopt: bool,
    ) -> Result<Refreshed, LedgerError> {
        self.write(|tx, ids| write::refresh_finish(tx, ids, run, account, max_subscribers, adopt))
    }

    /// Fails once the writer lock is no longer certainly held.
    pub fn check_lock(&mut self) -> Result<(), LedgerError> {
        self.db.check_lock()
    }

    /// Fills this ledger, which must be empty, with everything `from` holds, lineage and
    /// serial included, in one transaction.
    fn fill_from(&mut self, from: &mut Ledger) -> Result<Copied, LedgerError> {
        let meta: Meta = from.read(read::meta)?;
        let runs = from.read(read::all_runs)?;
        let shown = self.location().to_owned();
        let mut copied = Copied {
            runs: runs.len() as u64,
            ..Copied::default()
        };
        self.write(|tx, _| {
            write::check_empty(tx, &shown)?;
            write::copy_runs(tx, &runs)?;
            for name in &meta.accounts {
                let dump = from.read(|source| read::account_dump(source, name))?;
                write::copy_account(tx, &dump)?;
                copied.accounts += 1;
                copied.confirmed += dump.confirmed.len() as u64;
                copied.failed += dump.failed.len() as u64;
            }
            write::copy_meta(tx, &meta)
        })?;
        self.ids.forget();
        Ok(copied)
    }
}

/// Copies everything the ledger at `from` holds into the empty ledger at `to`, holding both
/// writer locks so that neither changes meanwhile.
pub fn copy(from: &Location, to: &Location) -> Result<Copied, LedgerError> {
    let mut source = Ledger::open(from, "ledger copy")?;
    let mut target = Ledger::open(to, "ledger copy")?;
    target.fill_from(&mut source)
}
