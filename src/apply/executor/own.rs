//! Carrying out an account's own call: create_official_account before anything else is sent
//! to a missing account, modify_official_account_base_info after its removals and before its
//! adds. One call per account, paced like every other, retried only as
//! [`decide::on_own_error`] says; its outcome counts once the ledger has it.

use super::record::Delta;
use super::{BatchEvent, Exec};
use crate::apply::decide::{self, OwnDecision};
use crate::apply::own::{OwnCall, OwnResult};
use crate::apply::read::SLOW_DOWN_FOR;
use crate::ledger::{AccountFact, Record};
use crate::tencent::ApiError;
use crate::tencent::api::Command;
use crate::tencent::codes::{ACCOUNT_MISSING, Gone};

impl OwnCall {
    pub(super) fn command(&self) -> Command {
        match self {
            OwnCall::Create(_) => Command::CreateOfficialAccount,
            OwnCall::Modify(_) => Command::ModifyOfficialAccountBaseInfo,
        }
    }
}

impl Exec<'_> {
    /// Starts the own calls that may go now, within the concurrency limit.
    pub(super) fn dispatch_own(&mut self) {
        if self.own_waiting == 0 {
            return;
        }
        for index in 0..self.accounts.len() {
            if self.stop.is_cancelled() || self.in_flight >= self.ctx.concurrency {
                return;
            }
            let Some((call, attempt)) = self.accounts[index].take_own_call() else {
                continue;
            };
            self.own_waiting -= 1;
            self.send_own(index, call, attempt);
        }
    }

    fn send_own(&mut self, index: usize, call: OwnCall, attempt: u32) {
        self.in_flight += 1;
        let (api, pacer, stop) = (
            self.ctx.api.clone(),
            self.ctx.pacer.clone(),
            self.stop.clone(),
        );
        let account = self.accounts[index].id.clone();
        self.api.spawn(async move {
            tokio::select! {
                biased;
                () = stop.cancelled() => return BatchEvent::OwnUnsent(index, true),
                () = pacer.of(call.command()).acquire() => {}
            }
            let answer = match &call {
                OwnCall::Create(request) => api.create_account(request).await.map(drop),
                OwnCall::Modify(fields) => api.modify_account(&account, fields).await,
            };
            BatchEvent::Own(index, call, attempt, answer)
        });
    }

    /// The own call will not be made in this run: it was stopped before it was sent
    /// (`in_flight`), or while it waited to be sent again.
    pub(super) fn own_unsent(&mut self, index: usize, in_flight: bool) {
        if in_flight {
            self.in_flight -= 1;
        }
        self.accounts[index].own_settled();
    }

    pub(super) fn on_own(
        &mut self,
        index: usize,
        call: OwnCall,
        attempt: u32,
        answer: Result<(), ApiError>,
    ) {
        self.in_flight -= 1;
        self.calls.requests += 1;
        let error = match answer {
            Ok(()) => return self.own_done(index, &call),
            Err(e) => e,
        };
        let reached = self.ctx.api.has_answered();
        match decide::on_own_error(&error, attempt, reached, &self.ctx.policy, rand::random()) {
            OwnDecision::Retry { delay, slow_down } => {
                self.calls.retries += 1;
                if slow_down {
                    self.rate_limited += 1;
                    self.ctx.pacer.of(call.command()).slow_down(SLOW_DOWN_FOR);
                }
                // Still busy: what waits for the call keeps waiting through the pause.
                let stop = self.stop.clone();
                self.api.spawn(async move {
                    tokio::select! {
                        () = tokio::time::sleep(delay) => BatchEvent::OwnReady(index, call, attempt + 1),
                        () = stop.cancelled() => BatchEvent::OwnUnsent(index, false),
                    }
                });
            }
            OwnDecision::Failed { code } => self.own_failed(index, &call, code, &error),
            OwnDecision::Fatal => {
                self.accounts[index].own_settled();
                self.fatal.get_or_insert(error);
                self.stop.cancel();
            }
        }
    }

    /// A retry's pause is over: send the call again.
    pub(super) fn own_again(&mut self, index: usize, call: OwnCall, attempt: u32) {
        if self.stop.is_cancelled() {
            return self.own_unsent(index, false);
        }
        self.send_own(index, call, attempt);
    }

    fn own_done(&mut self, index: usize, call: &OwnCall) {
        let account = self.accounts[index].id.to_string();
        let own = &self.accounts[index].tally.own;
        let mut records = own.done(&account, call);
        let mut delta = Delta::default();
        let sent = own.sendable();
        delta.counts.properties_set = sent.fields().count() as u64;
        delta.counts.property_drift = own
            .changes
            .iter()
            .filter(|c| c.drift && c.refused.is_none())
            .count() as u64;
        if let OwnCall::Create(request) = call {
            tracing::info!(%account, "created the official account");
            delta.counts.created = 1;
            delta.counts.properties_set = own.declared.fields().count() as u64;
            let max = request
                .fields
                .max_subscriber_num
                .unwrap_or(crate::properties::DEFAULT_MAX_SUBSCRIBERS);
            records.push(Record::Account {
                account: account.clone(),
                fact: AccountFact::Info {
                    max_subscribers: Some(max),
                    subscriber_num: Some(0),
                },
            });
        } else {
            tracing::info!(%account, fields = delta.counts.properties_set, "set the official account's properties");
        }
        delta.own = Some((OwnResult::Done, None));
        self.accounts[index].own_settled();
        self.commit(index, records, delta);
    }

    fn own_failed(&mut self, index: usize, call: &OwnCall, code: i64, error: &ApiError) {
        let account = self.accounts[index].id.to_string();
        let what = match call {
            OwnCall::Create(_) => "cannot create the official account",
            OwnCall::Modify(_) => "cannot set the official account's properties",
        };
        tracing::warn!(%account, code, error = %error, "{what}");
        let delta = Delta {
            own: Some((OwnResult::Failed, Some(code))),
            ..Delta::default()
        };
        self.accounts[index].own_settled();
        self.commit(index, Vec::new(), delta);
        // An account that is not there (never created, or gone meanwhile) takes nothing else.
        if matches!(call, OwnCall::Create(_)) || code == ACCOUNT_MISSING {
            self.account_gone(index, Gone::Missing);
        }
    }
}
