//! The executor: sends the planned adds in batches of at most 100, many in flight across and
//! within accounts, paced by the rate limiter, and carries out [`decide`]'s decisions.
//!
//! Idempotency and crash safety: add_subscriber is idempotent (a repeat answers `Result: 2`),
//! and an outcome counts as done only after the ledger has committed it. A crash at any point
//! therefore loses at most the outcomes of the batches in flight; the next run plans them again
//! and converges. On a stop signal no new batch starts, batches already sent get `drain` to
//! finish and be recorded, and the rest are abandoned (and re-sent by the next run).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::decide::{ACCOUNT_FULL, Decision, RetryPolicy, decide};
use super::observe::{Counts, Observer};
use super::work::{End, Known, Report, Tally, Work};
use crate::ledger::{AccountFact, Record, RecordError, Recorder};
use crate::tencent::api::{MAX_BATCH, SubscriberResult};
use crate::tencent::ratelimit::RateLimiter;
use crate::tencent::{ApiError, Client};

/// How long the limiter stays slowed after a rate-limit answer.
const SLOW_DOWN_FOR: Duration = Duration::from_secs(10);

pub struct Context {
    pub client: Arc<Client>,
    pub limiter: Arc<RateLimiter>,
    pub recorder: Recorder,
    pub policy: RetryPolicy,
    /// Most add_subscriber calls in flight at once.
    pub concurrency: usize,
    /// How long batches already sent may take to finish after a stop.
    pub drain: Duration,
    /// Told about every outcome once it is recorded.
    pub observer: Arc<dyn Observer>,
}

#[derive(Debug)]
struct Batch {
    account: usize,
    members: Vec<String>,
    attempt: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    /// After a 130006: one batch at a time, split down to fill exactly what capacity is left.
    Filling,
    Stopped(End),
}

struct AccountRun {
    id: Arc<str>,
    queue: VecDeque<Batch>,
    in_flight: usize,
    mode: Mode,
    tally: Tally,
}

impl AccountRun {
    fn new(index: usize, work: Work, observer: &dyn Observer) -> AccountRun {
        let planned = work.add.len() as u64;
        let mut tally = Tally {
            planned,
            added: 0,
            already: 0,
            failed: Vec::new(),
            not_added_limit: 0,
            end: End::Done,
        };
        let mut queue = VecDeque::new();
        let mode = if work.known == Known::Full {
            tally.not_added_limit = planned;
            let counts = Counts {
                not_added_limit: planned,
                ..Counts::default()
            };
            observer.committed(&work.official_account, &counts);
            Mode::Stopped(End::Full)
        } else {
            let mut members = work.add.into_iter().peekable();
            while members.peek().is_some() {
                queue.push_back(Batch {
                    account: index,
                    members: members.by_ref().take(MAX_BATCH).collect(),
                    attempt: 0,
                });
            }
            Mode::Normal
        };
        AccountRun {
            id: Arc::from(work.official_account),
            queue,
            in_flight: 0,
            mode,
            tally,
        }
    }
}

enum Event {
    Sent(Batch, Result<Vec<SubscriberResult>, ApiError>),
    /// Stopped before it was sent.
    Unsent,
    /// A retry dropped while waiting for its backoff.
    Dropped,
    /// A retry's backoff elapsed.
    Ready(Batch),
}

/// Outcomes to commit and, once committed, to count.
#[derive(Default)]
struct Delta {
    added: u64,
    already: u64,
    failed: Vec<(String, i64)>,
    limit: u64,
}

struct Committed {
    account: usize,
    delta: Delta,
    result: Result<(), RecordError>,
}

struct Exec<'a> {
    ctx: &'a Context,
    accounts: Vec<AccountRun>,
    cursor: usize,
    stop: CancellationToken,
    api: JoinSet<Event>,
    commits: JoinSet<Committed>,
    in_flight: usize,
    requests: u64,
    retries: u64,
    rate_limited: u64,
    fatal: Option<ApiError>,
    record_error: Option<RecordError>,
}

/// Sends every planned add; returns when all are accounted for or the run was stopped.
pub async fn execute(work: Vec<Work>, ctx: &Context, cancel: &CancellationToken) -> Report {
    let missing: Vec<usize> = work
        .iter()
        .enumerate()
        .filter(|(_, w)| w.known == Known::Missing)
        .map(|(i, _)| i)
        .collect();
    let accounts = work
        .into_iter()
        .enumerate()
        .map(|(index, w)| AccountRun::new(index, w, ctx.observer.as_ref()))
        .collect();
    let mut exec = Exec {
        ctx,
        accounts,
        cursor: 0,
        stop: cancel.child_token(),
        api: JoinSet::new(),
        commits: JoinSet::new(),
        in_flight: 0,
        requests: 0,
        retries: 0,
        rate_limited: 0,
        fatal: None,
        record_error: None,
    };
    for index in missing {
        exec.account_gone(index, 130004, true);
    }
    exec.run().await;
    exec.report(cancel.is_cancelled())
}

impl Exec<'_> {
    async fn run(&mut self) {
        let mut deadline: Option<Instant> = None;
        let mut abandoned = false;
        loop {
            self.dispatch();
            if self.api.is_empty() && self.commits.is_empty() {
                return;
            }
            tokio::select! {
                biased;
                Some(done) = self.commits.join_next() => match done {
                    Ok(committed) => self.on_committed(committed),
                    Err(e) => {
                        self.record_error = Some(RecordError::new(format!("the recording task failed: {e}")));
                        self.stop.cancel();
                    }
                },
                () = self.stop.cancelled(), if deadline.is_none() => {
                    deadline = Some(Instant::now() + self.ctx.drain);
                }
                () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() && !abandoned => {
                    tracing::warn!("{} requests still in flight after {:?}; abandoning them (the next run re-sends them)", self.in_flight, self.ctx.drain);
                    self.api.abort_all();
                    abandoned = true;
                }
                Some(event) = self.api.join_next() => match event {
                    Ok(Event::Sent(batch, answer)) => {
                        self.release(&batch);
                        self.requests += 1;
                        self.on_answer(batch, answer);
                    }
                    Ok(Event::Unsent) => self.in_flight -= 1,
                    Ok(Event::Dropped) => {}
                    Ok(Event::Ready(batch)) => self.requeue(batch),
                    // Aborted at the drain deadline: its outcome is unknown and not recorded.
                    Err(_) => {}
                },
            }
        }
    }

    /// Starts batches up to the concurrency limit, round-robin across accounts.
    fn dispatch(&mut self) {
        while !self.stop.is_cancelled() && self.in_flight < self.ctx.concurrency {
            let Some(batch) = self.next_batch() else {
                return;
            };
            self.in_flight += 1;
            self.accounts[batch.account].in_flight += 1;
            let (client, limiter, stop) = (
                self.ctx.client.clone(),
                self.ctx.limiter.clone(),
                self.stop.clone(),
            );
            let account = self.accounts[batch.account].id.clone();
            self.api.spawn(async move {
                tokio::select! {
                    biased;
                    () = stop.cancelled() => return Event::Unsent,
                    () = limiter.acquire() => {}
                }
                let answer = client.add_subscriber(&account, &batch.members).await;
                Event::Sent(batch, answer)
            });
        }
    }

    fn next_batch(&mut self) -> Option<Batch> {
        let n = self.accounts.len();
        for k in 0..n {
            let i = (self.cursor + k) % n;
            let account = &mut self.accounts[i];
            let ready = match account.mode {
                Mode::Normal => true,
                Mode::Filling => account.in_flight == 0,
                Mode::Stopped(_) => false,
            };
            if ready && let Some(batch) = account.queue.pop_front() {
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
        match self.accounts[batch.account].mode {
            Mode::Stopped(end) => self.settle_stopped(batch.account, end, batch.members),
            _ => self.accounts[batch.account].queue.push_front(batch),
        }
    }

    /// Accounts for members that will not be sent because their account was stopped.
    fn settle_stopped(&mut self, index: usize, end: End, members: Vec<String>) {
        match end {
            End::Full => {
                let delta = Delta {
                    limit: members.len() as u64,
                    ..Delta::default()
                };
                self.commit(index, Vec::new(), delta);
            }
            End::Missing => self.fail_all(index, members, 130004),
            End::Invalid => self.fail_all(index, members, 130007),
            End::Done | End::Unfinished => {}
        }
    }

    fn on_answer(&mut self, batch: Batch, answer: Result<Vec<SubscriberResult>, ApiError>) {
        let decision = decide(
            &batch.members,
            &answer,
            batch.attempt,
            self.ctx.client.has_answered(),
            &self.ctx.policy,
            rand::random(),
        );
        let index = batch.account;
        let account = self.accounts[index].id.to_string();
        match decision {
            Decision::Record {
                added,
                already,
                failed,
                limit,
            } => {
                let delta = Delta {
                    added: added.len() as u64,
                    already: already.len() as u64,
                    failed: failed.clone(),
                    limit: limit.len() as u64,
                };
                let records = vec![Record::Batch {
                    account,
                    added,
                    already,
                    failed,
                }];
                self.commit(index, records, delta);
                if !limit.is_empty() {
                    self.account_full(index);
                }
            }
            Decision::Retry { delay, slow_down } => {
                self.retries += 1;
                if slow_down {
                    self.rate_limited += 1;
                    self.ctx.limiter.slow_down(SLOW_DOWN_FOR);
                }
                let batch = Batch {
                    attempt: batch.attempt + 1,
                    ..batch
                };
                let stop = self.stop.clone();
                self.api.spawn(async move {
                    tokio::select! {
                        () = tokio::time::sleep(delay) => Event::Ready(batch),
                        () = stop.cancelled() => Event::Dropped,
                    }
                });
            }
            Decision::Split => self.split(batch, answer.err().map(|e| e.code())),
            Decision::FailAll { code } => self.fail_all(index, batch.members, code),
            Decision::AccountFull => {
                self.commit(
                    index,
                    Vec::new(),
                    Delta {
                        limit: 1,
                        ..Delta::default()
                    },
                );
                self.account_full(index);
            }
            Decision::AccountGone { code, missing } => {
                self.account_gone(index, code, missing);
                self.fail_all(index, batch.members, code);
            }
            Decision::Fatal => {
                if self.fatal.is_none() {
                    self.fatal = answer.err();
                }
                self.stop.cancel();
            }
        }
    }

    /// The account is missing or invalid: nothing more is sent; what is queued fails with `code`.
    fn account_gone(&mut self, index: usize, code: i64, missing: bool) {
        if matches!(self.accounts[index].mode, Mode::Stopped(_)) {
            return;
        }
        let (end, fact, what) = if missing {
            (End::Missing, AccountFact::Missing, "missing")
        } else {
            (End::Invalid, AccountFact::Invalid, "invalid")
        };
        tracing::warn!(account = %self.accounts[index].id, code, "official account is {what}; skipping it");
        self.accounts[index].mode = Mode::Stopped(end);
        let account = self.accounts[index].id.to_string();
        self.commit(
            index,
            vec![Record::Account { account, fact }],
            Delta::default(),
        );
        let queued: Vec<String> = self.accounts[index]
            .queue
            .drain(..)
            .flat_map(|b| b.members)
            .collect();
        self.fail_all(index, queued, code);
    }

    fn split(&mut self, batch: Batch, code: Option<i64>) {
        let index = batch.account;
        let account = &mut self.accounts[index];
        match account.mode {
            Mode::Stopped(end) => return self.settle_stopped(index, end, batch.members),
            Mode::Normal if code == Some(ACCOUNT_FULL) => {
                tracing::info!(account = %account.id, "official account is nearly full; filling what capacity is left");
                account.mode = Mode::Filling;
            }
            _ => {}
        }
        let mut first = batch.members;
        let second = first.split_off(first.len() / 2);
        account.queue.push_front(Batch {
            account: index,
            members: second,
            attempt: 0,
        });
        account.queue.push_front(Batch {
            account: index,
            members: first,
            attempt: 0,
        });
    }

    fn fail_all(&mut self, index: usize, members: Vec<String>, code: i64) {
        if members.is_empty() {
            return;
        }
        let failed: Vec<(String, i64)> = members.into_iter().map(|m| (m, code)).collect();
        let account = self.accounts[index].id.to_string();
        let delta = Delta {
            failed: failed.clone(),
            ..Delta::default()
        };
        self.commit(
            index,
            vec![Record::Batch {
                account,
                added: vec![],
                already: vec![],
                failed,
            }],
            delta,
        );
    }

    /// The account is full: nothing more is sent to it; what is queued is not added.
    fn account_full(&mut self, index: usize) {
        let account = &mut self.accounts[index];
        if account.mode == Mode::Stopped(End::Full) {
            return;
        }
        tracing::warn!(account = %account.id, "official account reached its subscriber limit (130006); no more adds are sent to it");
        account.mode = Mode::Stopped(End::Full);
        let queued: u64 = account
            .queue
            .drain(..)
            .map(|b| b.members.len() as u64)
            .sum();
        let record = Record::Account {
            account: account.id.to_string(),
            fact: AccountFact::LimitReached,
        };
        self.commit(
            index,
            vec![record],
            Delta {
                limit: queued,
                ..Delta::default()
            },
        );
    }

    /// Counts `delta` once `records` are committed (at once when there is nothing to commit).
    fn commit(&mut self, account: usize, records: Vec<Record>, delta: Delta) {
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

    fn on_committed(&mut self, committed: Committed) {
        if let Err(e) = committed.result {
            tracing::error!(error = %e, "stopping: outcomes can no longer be recorded");
            self.record_error.get_or_insert(e);
            self.stop.cancel();
            return;
        }
        let account = &mut self.accounts[committed.account];
        let counts = Counts {
            added: committed.delta.added,
            already: committed.delta.already,
            failed: committed.delta.failed.len() as u64,
            not_added_limit: committed.delta.limit,
        };
        let tally = &mut account.tally;
        tally.added += counts.added;
        tally.already += counts.already;
        tally.not_added_limit += counts.not_added_limit;
        tally.failed.extend(committed.delta.failed);
        self.ctx.observer.committed(&account.id, &counts);
    }

    fn report(self, interrupted: bool) -> Report {
        let tallies = self
            .accounts
            .into_iter()
            .map(|a| {
                let mut tally = a.tally;
                tally.end = match a.mode {
                    Mode::Stopped(end) => end,
                    _ if tally.accounted() < tally.planned => End::Unfinished,
                    _ => End::Done,
                };
                tally
            })
            .collect();
        Report {
            tallies,
            requests: self.requests,
            retries: self.retries,
            rate_limited: self.rate_limited,
            fatal: self.fatal,
            record_error: self.record_error,
            interrupted,
        }
    }
}
