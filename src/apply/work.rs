//! What the executor is given (per-account work) and what it hands back (tallies and a report).

use super::own::{OwnResult, OwnWork};
use crate::ledger::RecordError;
use crate::tencent::ApiError;

/// The changes planned for one account.
#[derive(Debug, Clone, Default)]
pub(crate) struct Work {
    pub(crate) add: Vec<String>,
    /// Removals planned by prune.
    pub(crate) remove: Vec<String>,
    /// Those an interrupted earlier run may have sent (sorted): "already subscribed" for them
    /// is recovered, not drift.
    pub(crate) intended: Vec<String>,
}

/// An account a run may send changes to, before its lists are read: the executor reads them
/// (through a [`Load`]) only as its window has room, so that no more than a few accounts'
/// lists are in memory at once.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) official_account: String,
    pub(crate) add: u64,
    pub(crate) remove: u64,
    /// What get_official_account_info already said about the account (as it will be once
    /// its own call is made: a created account is usable).
    pub(crate) known: Known,
    /// The account's own call: a creation, or its properties that differ.
    pub(crate) own: OwnWork,
}

/// Reads the work lists of the `i`th pending account.
pub(crate) type Load = std::sync::Arc<
    dyn Fn(
            usize,
        )
            -> futures_util::future::BoxFuture<'static, Result<Work, crate::ledger::LedgerError>>
        + Send
        + Sync,
>;

/// An account's state known before anything is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Known {
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
pub(crate) enum End {
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
pub(crate) struct Tally {
    pub(crate) planned: u64,
    pub(crate) added: u64,
    pub(crate) already: u64,
    pub(crate) recovered: u64,
    pub(crate) failed: Vec<(String, i64)>,
    pub(crate) not_added_limit: u64,
    pub(crate) planned_remove: u64,
    /// Removed, or found not subscribed: either way gone.
    pub(crate) removed: u64,
    pub(crate) remove_failed: Vec<(String, i64)>,
    pub(crate) end: End,
    /// How the run changed the account's remote count: added less removed (Result 1 only).
    pub(crate) count_change: i64,
    /// The account's own call, and what became of it (`None`: there was none to make).
    pub(crate) own: OwnWork,
    pub(crate) own_result: Option<OwnResult>,
    /// The service's code when the own call failed.
    pub(crate) own_code: Option<i64>,
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

pub(crate) struct Report {
    pub(crate) tallies: Vec<Tally>,
    pub(crate) calls: crate::apply::read::Calls,
    pub(crate) rate_limited: u64,
    /// The answer that stopped the run.
    pub(crate) fatal: Option<ApiError>,
    pub(crate) record_error: Option<RecordError>,
    pub(crate) interrupted: bool,
    /// Batches whose outcome is unknown (abandoned in flight, or waiting to be retried after
    /// an unanswered call): (account, op, members). Their intents stay recorded.
    pub(crate) in_doubt: Vec<(String, crate::ledger::Op, Vec<String>)>,
}

impl Report {
    /// The report of a run stopped before its first batch.
    pub(crate) fn not_started(pending: &[Pending]) -> Report {
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
