//! What the executor is given (per-account work) and what it hands back (tallies and a report).

use super::own::{OwnResult, OwnWork};
use crate::ledger::RecordError;
use crate::tencent::ApiError;

/// The changes planned for one account.
#[derive(Debug, Clone, Default)]
pub struct Work {
    pub add: Vec<String>,
    /// Removals planned by prune.
    pub remove: Vec<String>,
    /// Those an interrupted earlier run may have sent (sorted): "already subscribed" for them
    /// is recovered, not drift.
    pub intended: Vec<String>,
}

/// An account a run may send changes to, before its lists are read: the executor reads them
/// (through a [`Load`]) only as its window has room, so that no more than a few accounts'
/// lists are in memory at once.
#[derive(Debug, Clone)]
pub struct Pending {
    pub official_account: String,
    pub add: u64,
    pub remove: u64,
    /// What get_official_account_info already said about the account (as it will be once
    /// its own call is made: a created account is usable).
    pub known: Known,
    /// The account's own call: a creation, or its properties that differ.
    pub own: OwnWork,
}

/// Reads the work lists of the `i`th pending account.
pub type Load = std::sync::Arc<
    dyn Fn(
            usize,
        )
            -> futures_util::future::BoxFuture<'static, Result<Work, crate::ledger::LedgerError>>
        + Send
        + Sync,
>;

/// An account's state known before anything is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Known {
    #[default]
    Usable,
    /// Full: no adds are sent (unless removals may make room); they are "not added because of
    /// the limit".
    Full,
    /// Does not exist (130004): nothing is sent; everything planned fails with that code.
    Missing,
    /// Its id is invalid (130007): likewise.
    Invalid,
}

/// How an account's work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum End {
    #[default]
    Done,
    Full,
    Missing,
    Invalid,
    /// The run stopped before everything planned was sent.
    Unfinished,
}

/// What happened to one account's planned changes (committed outcomes only).
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub planned: u64,
    pub added: u64,
    pub already: u64,
    pub recovered: u64,
    pub failed: Vec<(String, i64)>,
    pub not_added_limit: u64,
    pub planned_remove: u64,
    /// Removed, or found not subscribed: either way gone.
    pub removed: u64,
    pub remove_failed: Vec<(String, i64)>,
    pub end: End,
    /// How the run changed the account's remote count: added less removed (Result 1 only).
    pub count_change: i64,
    /// The account's own call, and what became of it (`None`: there was none to make).
    pub own: OwnWork,
    pub own_result: Option<OwnResult>,
    /// The service's code when the own call failed.
    pub own_code: Option<i64>,
}

impl Tally {
    pub(super) fn accounted(&self) -> u64 {
        self.added
            + self.already
            + self.recovered
            + self.failed.len() as u64
            + self.not_added_limit
            + self.removed
            + self.remove_failed.len() as u64
    }
}

pub struct Report {
    pub tallies: Vec<Tally>,
    pub calls: crate::apply::read::Calls,
    pub rate_limited: u64,
    /// The answer that stopped the run.
    pub fatal: Option<ApiError>,
    pub record_error: Option<RecordError>,
    pub interrupted: bool,
    /// Batches whose outcome is unknown (abandoned in flight, or waiting to be retried after
    /// an unanswered call): (account, op, members). Their intents stay recorded.
    pub in_doubt: Vec<(String, crate::ledger::Op, Vec<String>)>,
}

impl Report {
    /// The report of a run stopped before its first batch.
    pub fn not_started(pending: &[Pending]) -> Report {
        Report {
            tallies: pending
                .iter()
                .map(|p| {
                    let sends = p.own.call(&p.official_account).is_some();
                    Tally {
                        planned: p.add,
                        planned_remove: p.remove,
                        end: if p.add + p.remove == 0 && !sends {
                            End::Done
                        } else {
                            End::Unfinished
                        },
                        own: p.own.clone(),
                        own_result: (!p.own.is_empty()).then_some(OwnResult::NotSent),
                        ..Tally::default()
                    }
                })
                .collect(),
            calls: Default::default(),
            rate_limited: 0,
            fatal: None,
            record_error: None,
            interrupted: false,
            in_doubt: Vec::new(),
        }
    }
}
