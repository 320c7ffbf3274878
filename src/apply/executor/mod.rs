//! The executor: sends the planned removals and adds in batches of at most 100, many in flight
//! across and within accounts, each command paced by its own rate limiter, and carries out
//! [`decide`]'s decisions. An account's own call ([`own`]) goes first when it creates the
//! account, and between its removals and its adds when it modifies it.
//!
//! Idempotency and crash safety: add_subscriber and delete_subscriber are idempotent (a repeat
//! answers `Result: 2`), and an outcome counts as done only after the ledger has committed it.
//! A crash at any point therefore loses at most the outcomes of the batches in flight; the next
//! run plans them again and converges. On a stop signal no new batch starts, batches already
//! sent get `drain` to finish and be recorded, and the rest are abandoned (and re-sent by the
//! next run).
//!
//! Before a batch is first sent, its members are recorded as intended (group-committed with
//! the other batches' records); a batch whose outcome is recorded clears its members' intents. What a crash, an abandoned batch or a
//! dropped retry leaves in doubt therefore stays intended, and the next run (or a takeover)
//! counts its "already subscribed" answers as `recovered`, not as drift.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod own;
mod record;

use record::{Committed, Delta};

use super::account::{AccountRun, Batch, Mode};
use super::decide::{Decision, RetryPolicy, decide};
use super::observe::Observer;
use super::read::SLOW_DOWN_FOR;
use super::work::{End, Known, Load, Pending, Report, Work};
use crate::ledger::{AccountFact, Cause, Op, Record, RecordError, Recorder};
use crate::tencent::api::{Command, SubscriberResult};
use crate::tencent::codes::{ACCOUNT_FULL, Gone};
use crate::tencent::ratelimit::Pacer;
use crate::tencent::{Api, ApiError};

/// The API command that carries `op`.
fn command(op: Op) -> Command {
    match op {
        Op::Add => Command::AddSubscriber,
        Op::Remove => Command::DeleteSubscriber,
    }
}

pub(super) struct Context {
    pub(crate) api: Arc<dyn Api>,
    pub(crate) pacer: Arc<Pacer>,
    pub(crate) recorder: Recorder,
    pub(crate) policy: RetryPolicy,
    /// Most calls in flight at once.
    pub(crate) concurrency: usize,
    /// How long batches already sent may take to finish after a stop.
    pub(crate) drain: Duration,
    /// Told about every outcome once it is recorded.
    pub(crate) observer: Arc<dyn Observer>,
}

enum BatchEvent {
    Sent(Batch, Result<Vec<SubscriberResult>, ApiError>),
    /// Stopped before it was sent.
    Unsent(Batch),
    /// Not sent: its intent could not be recorded.
    Unrecorded(Batch, RecordError),
    /// A retry dropped while waiting for its backoff.
    Dropped(Batch),
    /// A retry's backoff elapsed.
    Ready(Batch),
    /// The answer to an account's own call (its index, the call, the attempt).
    Own(usize, super::own::OwnCall, u32, Result<(), ApiError>),
    /// An own call's retry pause elapsed.
    OwnReady(usize, super::own::OwnCall, u32),
    /// An own call stopped before it was sent (`true`: while counted in flight).
    OwnUnsent(usize, bool),
}

struct Exec<'a> {
    ctx: &'a Context,
    accounts: Vec<AccountRun>,
    cursor: usize,
    stop: CancellationToken,
    api: JoinSet<BatchEvent>,
    commits: JoinSet<Committed>,
    in_flight: usize,
    calls: super::read::Calls,
    rate_limited: u64,
    fatal: Option<ApiError>,
    record_error: Option<RecordError>,
    /// The members of every task in `api`, to know what an abandoned one leaves in doubt.
    tasks: HashMap<tokio::task::Id, (usize, Op, Vec<String>)>,
    in_doubt: Vec<(String, Op, Vec<String>)>,
    /// Reads an account's work lists; at most one read at a time, in account order.
    load: Load,
    known: Vec<Known>,
    next_load: usize,
    loading: JoinSet<(usize, Result<Work, crate::ledger::LedgerError>)>,
    /// Accounts whose own call has not been sent yet: none, and dispatching skips looking.
    own_waiting: usize,
}

/// Sends every planned change; returns when all are accounted for or the run was stopped.
///
/// Accounts are read (`load`) in order, each only once fewer than two rounds of batches are
/// waiting to be sent: the pipeline never starves, and memory holds the lists of the accounts
/// being sent, not of the whole run.
pub(super) async fn execute(
    pending: Vec<Pending>,
    load: Load,
    ctx: &Context,
    cancel: &CancellationToken,
) -> Report {
    let known = pending.iter().map(|p| p.known).collect();
    let accounts = pending
        .iter()
        .map(|p| {
            let mut run = AccountRun::pending(&p.official_account, p.add, p.remove);
            run.own = p.own.call(&p.official_account).map(|call| (call, 0));
            if !p.own.is_empty() {
                run.tally.own = p.own.clone();
                run.tally.own_result = Some(super::own::OwnResult::NotSent);
            }
            run
        })
        .collect::<Vec<AccountRun>>();
    let own_waiting = accounts.iter().filter(|a| a.own.is_some()).count();
    let mut exec = Exec {
        ctx,
        accounts,
        cursor: 0,
        stop: cancel.child_token(),
        api: JoinSet::new(),
        commits: JoinSet::new(),
        in_flight: 0,
        calls: Default::default(),
        rate_limited: 0,
        fatal: None,
        record_error: None,
        tasks: HashMap::new(),
        in_doubt: Vec::new(),
        load,
        known,
        next_load: 0,
        loading: JoinSet::new(),
        own_waiting,
    };
    exec.run().await;
    exec.report(cancel.is_cancelled())
}

impl Exec<'_> {
    async fn run(&mut self) {
        let mut deadline: Option<Instant> = None;
        let mut abandoned = false;
        loop {
            self.fill_window();
            self.dispatch();
            let all_read = self.next_load >= self.accounts.len() || self.stop.is_cancelled();
            if self.api.is_empty() && self.commits.is_empty() && self.loading.is_empty() && all_read
            {
                return;
            }
            tokio::select! {
                biased;
                Some(loaded) = self.loading.join_next() => match loaded {
                    Ok((index, Ok(work))) => self.on_loaded(index, work),
                    Ok((_, Err(e))) => self.cannot_record(RecordError::Read(e)),
                    Err(e) => self.cannot_record(RecordError::Task(Cause::new(e))),
                },
                Some(done) = self.commits.join_next() => match done {
                    Ok(committed) => self.on_committed(committed),
                    Err(e) => {
                        self.record_error = Some(RecordError::Task(Cause::new(e)));
                        self.stop.cancel();
                    }
                },
                () = self.stop.cancelled(), if deadline.is_none() => {
                    deadline = Some(Instant::now() + self.ctx.drain);
                }
                () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() && !abandoned => {
                    tracing::warn!("{} still in flight after {:?}; abandoning them (the next run re-sends them)", crate::words::count(self.in_flight as u64, "request", "requests"), self.ctx.drain);
                    self.api.abort_all();
                    abandoned = true;
                }
                Some(event) = self.api.join_next_with_id() => match event {
                    Ok((id, event)) => {
                        self.tasks.remove(&id);
                        self.on_event(event);
                    }
                    // Aborted at the drain deadline: its outcome is unknown and not recorded.
                    Err(e) => {
                        if let Some((index, op, members)) = self.tasks.remove(&e.id()) {
                            self.doubt(index, op, members);
                        }
                    }
                },
            }
        }
    }

    /// Starts reading the next account's lists when fewer than two rounds of batches wait.
    /// Accounts with nothing to send are passed without reading anything.
    fn fill_window(&mut self) {
        let window = self.ctx.concurrency.saturating_mul(2).max(2);
        while self.loading.is_empty()
            && !self.stop.is_cancelled()
            && self.next_load < self.accounts.len()
        {
            let index = self.next_load;
            let queued: usize = self.accounts[..index].iter().map(AccountRun::queued).sum();
            if queued >= window {
                return;
            }
            self.next_load += 1;
            let planned = &self.accounts[index].tally;
            // An account with only its own call to make reads nothing either.
            if planned.planned + planned.planned_remove == 0 {
                self.on_loaded(index, Work::default());
                continue;
            }
            let read = (self.load)(index);
            self.loading.spawn(async move { (index, read.await) });
        }
    }

    /// An account's lists arrived: queue its batches, or settle them at once for an account
    /// the probe found missing, invalid or full.
    fn on_loaded(&mut self, index: usize, work: Work) {
        let known = self.known[index];
        self.accounts[index].fill(index, work, known);
        match known {
            Known::Missing => self.account_gone(index, Gone::Missing),
            Known::Invalid => self.account_gone(index, Gone::Invalid),
            _ if self.accounts[index].mode == Mode::Full => {
                let left_out = self.accounts[index].drain_adds();
                self.count_limit(index, left_out);
            }
            _ => {}
        }
    }

    fn on_event(&mut self, event: BatchEvent) {
        match event {
            BatchEvent::Sent(batch, answer) => {
                self.release(&batch);
                self.calls.requests += 1;
                self.on_answer(batch, answer);
            }
            BatchEvent::Unrecorded(batch, e) => {
                self.release(&batch);
                self.cannot_record(e);
            }
            BatchEvent::Unsent(batch) => {
                self.release(&batch);
                // A retry's earlier call may have been applied without an answer.
                if batch.attempt > 0 {
                    self.doubt(batch.account, batch.op, batch.members);
                }
            }
            BatchEvent::Dropped(batch) => self.doubt(batch.account, batch.op, batch.members),
            BatchEvent::Ready(batch) => self.requeue(batch),
            BatchEvent::Own(index, call, attempt, answer) => {
                self.on_own(index, call, attempt, answer)
            }
            BatchEvent::OwnReady(index, call, attempt) => self.own_again(index, call, attempt),
            BatchEvent::OwnUnsent(index, in_flight) => self.own_unsent(index, in_flight),
        }
    }

    /// `members` may or may not have been changed remotely: their intents stay.
    fn doubt(&mut self, index: usize, op: Op, members: Vec<String>) {
        let account = self.accounts[index].id.to_string();
        self.in_doubt.push((account, op, members));
    }

    /// Starts own calls, then batches, up to the concurrency limit, round-robin across
    /// accounts.
    fn dispatch(&mut self) {
        self.dispatch_own();
        while !self.stop.is_cancelled() && self.in_flight < self.ctx.concurrency {
            let Some(batch) = self.next_batch() else {
                return;
            };
            self.in_flight += 1;
            self.accounts[batch.account].in_flight += 1;
            let api = self.ctx.api.clone();
            let pacer = self.ctx.pacer.clone();
            let stop = self.stop.clone();
            let account = self.accounts[batch.account].id.clone();
            let members = (batch.account, batch.op, batch.members.clone());
            let recorder = self.ctx.recorder.clone();
            let handle = self.api.spawn(async move {
                // A retry's intent is on record since its first attempt.
                if batch.attempt == 0 {
                    let intent = Record::Intend {
                        account: account.to_string(),
                        op: batch.op,
                        subscribers: batch.members.clone(),
                    };
                    if let Err(e) = recorder.record(vec![intent]).await {
                        return BatchEvent::Unrecorded(batch, e);
                    }
                }
                tokio::select! {
                    biased;
                    () = stop.cancelled() => return BatchEvent::Unsent(batch),
                    () = pacer.of(command(batch.op)).acquire() => {}
                }
                let answer = match batch.op {
                    Op::Add => api.add_subscriber(&account, &batch.members).await,
                    Op::Remove => api.delete_subscriber(&account, &batch.members).await,
                };
                BatchEvent::Sent(batch, answer)
            });
            self.tasks.insert(handle.id(), members);
        }
    }

    fn next_batch(&mut self) -> Option<Batch> {
        let n = self.accounts.len();
        for k in 0..n {
            let i = (self.cursor + k) % n;
            if let Some(batch) = self.accounts[i].next() {
                self.cursor = (i + 1) % n;
                return Some(batch);
            }
        }
        None
    }

    fn release(&mut self, batch: &Batch) {
        self.in_flight -= 1;
        self.accounts[batch.account].in_flight -= 1;
    }

    fn requeue(&mut self, batch: Batch) {
        let index = batch.account;
        match (self.accounts[index].mode, batch.op) {
            (Mode::Stopped(end), _) => self.settle_stopped(index, end, batch),
            (Mode::Full, Op::Add) => self.count_limit(index, batch.members.len() as u64),
            _ => self.accounts[index].push_front(batch),
        }
    }

    /// Accounts for a batch that will not be sent because its account was stopped.
    fn settle_stopped(&mut self, index: usize, end: End, batch: Batch) {
        let code = match end {
            End::Missing => Gone::Missing.code(),
            End::Invalid => Gone::Invalid.code(),
            End::Done | End::Full | End::Unfinished => return,
        };
        self.fail_all(index, batch.op, batch.members, code);
    }

    fn on_answer(&mut self, batch: Batch, answer: Result<Vec<SubscriberResult>, ApiError>) {
        let reached = self.ctx.api.has_answered();
        let policy = &self.ctx.policy;
        let decision = decide(
            batch.op,
            &batch.members,
            &answer,
            batch.attempt,
            reached,
            policy,
            rand::random(),
        );
        let index = batch.account;
        match decision {
            Decision::Record {
                done,
                unchanged,
                failed,
                limit,
            } => {
                let mut delta = Delta::default();
                // "Already subscribed" to an add an interrupted run of ours sent is that
                // run's add, recovered: recorded as done, not as drift.
                let (recovered, unchanged) = match batch.op {
                    Op::Add => self.accounts[index].split_intended(unchanged),
                    Op::Remove => (Vec::new(), unchanged),
                };
                let mut done = done;
                delta.counts.recovered = recovered.len() as u64;
                done.extend(recovered);
                match batch.op {
                    Op::Add => {
                        delta.counts.added = done.len() as u64 - delta.counts.recovered;
                        delta.counts.already = unchanged.len() as u64;
                        delta.count_change = delta.counts.added as i64;
                        delta.counts.not_added_limit = limit.len() as u64;
                        delta.failed = failed.clone();
                    }
                    Op::Remove => {
                        delta.counts.removed = (done.len() + unchanged.len()) as u64;
                        delta.count_change = -(done.len() as i64);
                        delta.remove_failed = failed.clone();
                    }
                }
                delta.counts.failed = failed.len() as u64;
                let record = Record::Batch {
                    account: self.accounts[index].id.to_string(),
                    op: batch.op,
                    done,
                    unchanged,
                    failed,
                };
                self.commit(index, vec![record], delta);
                if !limit.is_empty() {
                    self.account_full(index);
                }
            }
            Decision::Retry { delay, slow_down } => {
                self.calls.retries += 1;
                if slow_down {
                    self.rate_limited += 1;
                    self.ctx
                        .pacer
                        .of(command(batch.op))
                        .slow_down(SLOW_DOWN_FOR);
                }
                let batch = Batch {
                    attempt: batch.attempt + 1,
                    ..batch
                };
                let stop = self.stop.clone();
                let members = (batch.account, batch.op, batch.members.clone());
                let handle = self.api.spawn(async move {
                    tokio::select! {
                        () = tokio::time::sleep(delay) => BatchEvent::Ready(batch),
                        () = stop.cancelled() => BatchEvent::Dropped(batch),
                    }
                });
                self.tasks.insert(handle.id(), members);
            }
            Decision::Split => self.split(batch, answer.err().map(|e| e.code())),
            Decision::FailAll { code } => self.fail_all(index, batch.op, batch.members, code),
            Decision::AccountFull => {
                self.count_limit(index, 1);
                self.account_full(index);
            }
            Decision::AccountGone(gone) => {
                self.account_gone(index, gone);
                self.fail_all(index, batch.op, batch.members, gone.code());
            }
            Decision::Fatal => {
                if self.fatal.is_none() {
                    self.fatal = answer.err();
                }
                self.stop.cancel();
            }
        }
    }

    /// The account is missing or invalid: nothing more is sent; what is queued fails with its
    /// code.
    fn account_gone(&mut self, index: usize, gone: Gone) {
        if matches!(self.accounts[index].mode, Mode::Stopped(_)) {
            return;
        }
        let (end, fact, what) = match gone {
            Gone::Missing => (End::Missing, AccountFact::Missing, "missing"),
            Gone::Invalid => (End::Invalid, AccountFact::Invalid, "invalid"),
        };
        let code = gone.code();
        tracing::warn!(account = %self.accounts[index].id, code, "official account is {what}; skipping it");
        self.accounts[index].mode = Mode::Stopped(end);
        if self.accounts[index].own.take().is_some() {
            self.own_waiting -= 1;
        }
        let account = self.accounts[index].id.to_string();
        self.commit(
            index,
            vec![Record::Account { account, fact }],
            Delta::default(),
        );
        let (adds, removes) = self.accounts[index].drain_all();
        self.fail_all(index, Op::Add, adds, code);
        self.fail_all(index, Op::Remove, removes, code);
    }

    fn split(&mut self, batch: Batch, code: Option<i64>) {
        let index = batch.account;
        let account = &mut self.accounts[index];
        match (account.mode, batch.op) {
            (Mode::Stopped(end), _) => return self.settle_stopped(index, end, batch),
            (Mode::Full, Op::Add) => return self.count_limit(index, batch.members.len() as u64),
            (Mode::Normal, Op::Add) if code == Some(ACCOUNT_FULL) => {
                tracing::info!(account = %account.id, "official account is nearly full; filling what capacity is left");
                account.mode = Mode::Filling;
            }
            _ => {}
        }
        let mut first = batch.members;
        let second = first.split_off(first.len() / 2);
        for members in [second, first] {
            account.push_front(Batch {
                account: index,
                op: batch.op,
                members,
                attempt: 0,
            });
        }
    }
}
