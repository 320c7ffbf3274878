//! The ledger's rows as typed values, decoded by column name, once for every backend.
//!
//! A backend hands its driver's rows over as [`Row`] (a column read by name, with the
//! driver's own conversions) and gets typed rows back; the statements name their columns so
//! that these decoders find them. Text that stands for an enum must be a value this build
//! knows ([`LedgerError::Unknown`] otherwise); counts must fit their type.

use super::model::Stored;
use super::{AccountFacts, AccountOverview, Direction, LedgerError, Op, RunOutcome};

/// One row of an answer, read by column name.
pub(crate) trait Row {
    /// Where the row comes from, as messages show it.
    fn at(&self) -> &str;
    fn int(&self, column: &str) -> Result<i64, LedgerError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, LedgerError>;
    fn text(&self, column: &str) -> Result<String, LedgerError>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, LedgerError>;
    fn flag(&self, column: &str) -> Result<bool, LedgerError>;

    /// A column holding one of `T`'s values.
    fn value<T: Stored>(&self, column: &'static str) -> Result<T, LedgerError>
    where
        Self: Sized,
    {
        let text = self.text(column)?;
        T::parse(&text).ok_or_else(|| LedgerError::unknown(self.at(), column, &text))
    }

    /// A column holding a count, which is never negative.
    fn count(&self, column: &'static str) -> Result<u64, LedgerError>
    where
        Self: Sized,
    {
        let n = self.int(column)?;
        u64::try_from(n).map_err(|_| LedgerError::unknown(self.at(), column, &n.to_string()))
    }

    fn opt_count(&self, column: &'static str) -> Result<Option<u64>, LedgerError>
    where
        Self: Sized,
    {
        match self.opt_int(column)? {
            None => Ok(None),
            Some(n) => u64::try_from(n)
                .map(Some)
                .map_err(|_| LedgerError::unknown(self.at(), column, &n.to_string())),
        }
    }
}

/// Implements [`Row`] for a driver's row wrapper whose inherent `get(column)` reads any column
/// type the driver converts and whose `at` field names the ledger.
macro_rules! row_by_get {
    ($row:ty) => {
        impl $crate::ledger::rows::Row for $row {
            fn at(&self) -> &str {
                self.at
            }

            fn int(&self, column: &str) -> Result<i64, LedgerError> {
                self.get(column)
            }

            fn opt_int(&self, column: &str) -> Result<Option<i64>, LedgerError> {
                self.get(column)
            }

            fn text(&self, column: &str) -> Result<String, LedgerError> {
                self.get(column)
            }

            fn opt_text(&self, column: &str) -> Result<Option<String>, LedgerError> {
                self.get(column)
            }

            fn flag(&self, column: &str) -> Result<bool, LedgerError> {
                self.get(column)
            }
        }
    };
}
pub(crate) use row_by_get;

/// A row type decoded from one row of its statement.
pub(crate) trait Decode: Sized {
    fn decode(row: &impl Row) -> Result<Self, LedgerError>;
}

/// The ledger's identity: the `meta` rows `lineage`, `serial` and `created_at`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) lineage: String,
    pub(crate) serial: u64,
    pub(crate) created_at: i64,
}

impl Identity {
    /// From the `meta` table's (key, value) rows; other keys are the backend's own.
    pub(crate) fn from_pairs(at: &str, pairs: &[Pair]) -> Result<Identity, LedgerError> {
        let get = |key: &'static str| -> Result<&str, LedgerError> {
            pairs
                .iter()
                .find(|Pair(k, _)| k == key)
                .map(|Pair(_, v)| v.as_str())
                .ok_or_else(|| LedgerError::unknown(at, key, "nothing"))
        };
        let number = |key: &'static str| -> Result<i64, LedgerError> {
            let text = get(key)?;
            text.parse()
                .map_err(|_| LedgerError::unknown(at, key, text))
        };
        Ok(Identity {
            lineage: get("lineage")?.to_owned(),
            serial: u64::try_from(number("serial")?)
                .map_err(|_| LedgerError::unknown(at, "serial", get("serial").unwrap_or("")))?,
            created_at: number("created_at")?,
        })
    }
}

/// An `accounts` row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AccountRow {
    pub(crate) id: i64,
    pub(crate) official_account: String,
    pub(crate) facts: AccountFacts,
    pub(crate) refreshed_at: Option<i64>,
    pub(crate) updated_at: i64,
}

fn facts(r: &impl Row) -> Result<AccountFacts, LedgerError> {
    Ok(AccountFacts {
        max_subscribers: r.opt_count("max_subscribers")?,
        subscriber_num: r.opt_count("subscriber_num")?,
        limit_reached_at: r.opt_int("limit_reached_at")?,
        missing_since: r.opt_int("missing_since")?,
        invalid_since: r.opt_int("invalid_since")?,
        counted_at: r.opt_int("counted_at")?,
    })
}

impl Decode for AccountRow {
    fn decode(r: &impl Row) -> Result<Self, LedgerError> {
        Ok(AccountRow {
            id: r.int("id")?,
            official_account: r.text("official_account")?,
            facts: facts(r)?,
            refreshed_at: r.opt_int("refreshed_at")?,
            updated_at: r.int("updated_at")?,
        })
    }
}

/// Counts and facts of one account, for `status` and the metrics.
impl Decode for AccountOverview {
    fn decode(r: &impl Row) -> Result<Self, LedgerError> {
        Ok(AccountOverview {
            official_account: r.text("official_account")?,
            confirmed: r.count("confirmed")?,
            failed: r.count("failed")?,
            facts: facts(r)?,
            refreshed_at: r.opt_int("refreshed_at")?,
            drift_added: r.count("drift_added")?,
            drift_removed: r.count("drift_removed")?,
            properties: super::properties::joined(r)?,
        })
    }
}

/// A `confirmed` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfirmedRow {
    pub(crate) subscriber: String,
    pub(crate) confirmed_at: i64,
    pub(crate) run_id: i64,
    pub(crate) already: bool,
    pub(crate) observed: bool,
    pub(crate) managed: bool,
}

impl Decode for ConfirmedRow {
    fn decode(r: &impl Row) -> Result<Self, LedgerError> {
        Ok(ConfirmedRow {
            subscriber: r.text("subscriber")?,
            confirmed_at: r.int("confirmed_at")?,
            run_id: r.int("run_id")?,
            already: r.flag("already")?,
            observed: r.flag("observed")?,
            managed: r.flag("managed")?,
        })
    }
}

/// A `failed` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FailedRow {
    pub(crate) subscriber: String,
    pub(crate) op: Op,
    pub(crate) code: i64,
    pub(crate) attempts: u32,
    pub(crate) first_at: i64,
    pub(crate) last_at: i64,
    pub(crate) run_id: i64,
}

impl Decode for FailedRow {
    fn decode(r: &impl Row) -> Result<Self, LedgerError> {
        let attempts = r.count("attempts")?;
        Ok(FailedRow {
            subscriber: r.text("subscriber")?,
            op: r.value("op")?,
            code: r.int("code")?,
            attempts: u32::try_from(attempts)
                .map_err(|_| LedgerError::unknown(r.at(), "attempts", &attempts.to_string()))?,
            first_at: r.int("first_at")?,
            last_at: r.int("last_at")?,
            run_id: r.int("run_id")?,
        })
    }
}

/// A `drift` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DriftRow {
    pub(crate) direction: Direction,
    pub(crate) subscriber: String,
    pub(crate) observed_at: i64,
}

impl Decode for DriftRow {
    fn decode(r: &impl Row) -> Result<Self, LedgerError> {
        Ok(DriftRow {
            direction: r.value("direction")?,
            subscriber: r.text("subscriber")?,
            observed_at: r.int("observed_at")?,
        })
    }
}

/// An `intents` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IntentRow {
    pub(crate) subscriber: String,
    pub(crate) op: Op,
    pub(crate) run_id: i64,
}

impl Decode for IntentRow {
    fn decode(r: &impl Row) -> Result<Self, LedgerError> {
        Ok(IntentRow {
            subscriber: r.text("subscriber")?,
            op: r.value("op")?,
            run_id: r.int("run_id")?,
        })
    }
}

/// A `runs` row, its summary as stored (JSON text, which `ledger copy` copies untouched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunRow {
    pub(crate) id: i64,
    pub(crate) command: String,
    pub(crate) started_at: i64,
    pub(crate) finished_at: Option<i64>,
    pub(crate) revision: Option<String>,
    pub(crate) result: Option<RunOutcome>,
    pub(crate) summary: Option<String>,
    pub(crate) pid: i64,
    /// The version of subsync that wrote it.
    pub(crate) version: String,
}

impl Decode for RunRow {
    fn decode(r: &impl Row) -> Result<Self, LedgerError> {
        let result = match r.opt_text("result")? {
            None => None,
            Some(text) => Some(
                RunOutcome::parse(&text)
                    .ok_or_else(|| LedgerError::unknown(r.at(), "result", &text))?,
            ),
        };
        Ok(RunRow {
            id: r.int("id")?,
            command: r.text("command")?,
            started_at: r.int("started_at")?,
            finished_at: r.opt_int("finished_at")?,
            revision: r.opt_text("revision")?,
            result,
            summary: r.opt_text("summary")?,
            pid: r.int("pid")?,
            version: r.text("version")?,
        })
    }
}

/// A one-column row of text (`subscriber`, `official_account`, `value`): the column is named
/// by the statement as `name`.
pub(crate) struct Name(pub(crate) String);

impl Decode for Name {
    fn decode(r: &impl Row) -> Result<Self, LedgerError> {
        r.text("name").map(Name)
    }
}

/// A `meta` row.
pub(crate) struct Pair(pub(crate) String, pub(crate) String);

impl Decode for Pair {
    fn decode(r: &impl Row) -> Result<Self, LedgerError> {
        Ok(Pair(r.text("key")?, r.text("value")?))
    }
}
