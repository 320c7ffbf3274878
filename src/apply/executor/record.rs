//! Recording what the executor learnt: outcomes go to the ledger, and count only once it
//! has committed them; a ledger that can no longer record stops the run.

use super::{Exec, Mode};
use crate::apply::observe::Counts;
use crate::apply::own::OwnResult;
use crate::apply::work::Report;
use crate::ledger::{AccountFact, Op, Record, RecordError};

/// Outcomes to commit and, once committed, to count.
#[derive(Default)]
pub(super) struct Delta {
    pub(super) counts: Counts,
    pub(super) count_change: i64,
    pub(super) failed: Vec<(String, i64)>,
    pub(super) remove_failed: Vec<(String, i64)>,
    /// What became of the account's own call (and the service's code when it failed).
    pub(super) own: Option<(OwnResult, Option<i64>)>,
}

pub(super) struct Committed {
    pub(super) account: usize,
    pub(super) delta: Delta,
    pub(super) result: Result<(), RecordError>,
}

impl Exec<'_> {
    pub(super) fn fail_all(&mut self, index: usize, op: Op, members: Vec<String>, code: i64) {
        if members.is_empty() {
            return;
        }
        let failed: Vec<(String, i64)> = members.into_iter().map(|m| (m, code)).collect();
        let mut delta = Delta::default();
        delta.counts.failed = failed.len() as u64;
        match op {
            Op::Add => delta.failed = failed.clone(),
            Op::Remove => delta.remove_failed = failed.clone(),
        }
        let record = Record::Batch {
            account: self.accounts[index].id.to_string(),
            op,
            done: vec![],
            unchanged: vec![],
            failed,
        };
        self.commit(index, vec![record], delta);
    }

    /// Counts `n` planned adds as not added because the account is full.
    pub(super) fn count_limit(&mut self, index: usize, n: u64) {
        if n == 0 {
            return;
        }
        let mut delta = Delta::default();
        delta.counts.not_added_limit = n;
        self.commit(index, Vec::new(), delta);
    }

    /// The account is full: no more adds are sent to it; the queued ones are not added.
    pub(super) fn account_full(&mut self, index: usize) {
        let account = &mut self.accounts[index];
        if account.mode == Mode::Full {
            return;
        }
        tracing::warn!(account = %account.id, "official account reached its subscriber limit (130006); no more adds are sent to it");
        account.mode = Mode::Full;
        let left_out = account.drain_adds();
        let record = Record::Account {
            account: account.id.to_string(),
            fact: AccountFact::LimitReached,
        };
        let mut delta = Delta::default();
        delta.counts.not_added_limit = left_out;
        self.commit(index, vec![record], delta);
    }

    /// Counts `delta` once `records` are committed (at once when there is nothing to commit).
    pub(super) fn commit(&mut self, account: usize, records: Vec<Record>, delta: Delta) {
        if records.is_empty() {
            return self.on_committed(Committed {
                account,
                delta,
                result: Ok(()),
            });
        }
        let recorder = self.ctx.recorder.clone();
        self.commits.spawn(async move {
            let result = recorder.record(records).await;
            Committed {
                account,
                delta,
                result,
            }
        });
    }

    /// The ledger cannot record: stop sending.
    pub(super) fn cannot_record(&mut self, e: RecordError) {
        // Every batch in flight fails the same way; say it once.
        if self.record_error.is_none() {
            let why = crate::errors::chain(&e);
            tracing::error!(error = %why, "stopping: outcomes can no longer be recorded");
        }
        self.record_error.get_or_insert(e);
        self.stop.cancel();
    }

    pub(super) fn on_committed(&mut self, committed: Committed) {
        if let Err(e) = committed.result {
            return self.cannot_record(e);
        }
        let account = &mut self.accounts[committed.account];
        let Delta {
            counts,
            count_change,
            failed,
            remove_failed,
            own,
        } = committed.delta;
        let tally = &mut account.tally;
        tally.added += counts.added;
        tally.already += counts.already;
        tally.recovered += counts.recovered;
        tally.count_change += count_change;
        tally.not_added_limit += counts.not_added_limit;
        tally.removed += counts.removed;
        tally.failed.extend(failed);
        tally.remove_failed.extend(remove_failed);
        if let Some((result, code)) = own {
            tally.own_result = Some(result);
            tally.own_code = code;
        }
        self.ctx.observer.committed(&account.id, &counts);
    }

    pub(super) fn report(mut self, interrupted: bool) -> Report {
        for index in 0..self.accounts.len() {
            for batch in self.accounts[index].take_queued_retries() {
                self.doubt(index, batch.op, batch.members);
            }
        }
        let tallies = self
            .accounts
            .into_iter()
            .map(|a| {
                let end = a.end();
                let mut tally = a.tally;
                tally.end = end;
                tally
            })
            .collect();
        Report {
            tallies,
            calls: self.calls,
            rate_limited: self.rate_limited,
            fatal: self.fatal,
            record_error: self.record_error,
            interrupted,
            in_doubt: self.in_doubt,
        }
    }
}
