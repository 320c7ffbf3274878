//! The official-account API in-process: the emulator's rules ([`RemoteState`]) without HTTP,
//! so that the core runs under tokio's paused clock. Every call is logged with the (virtual)
//! instant it was made; a script may answer any call in its place.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::emulator::{RemoteState, Rules};
use crate::tencent::answer::Page;
use crate::tencent::api::{self, Command, SubscriberResult};
use crate::tencent::service::{Api, Call};
use crate::tencent::{AccountInfo, ApiError, answer};

/// A call as the script sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    pub command: Command,
    /// The official account (or the first of those asked about).
    pub account: String,
    /// The batch's members (add, delete).
    pub members: Vec<String>,
    /// The account's own fields a create or a modify sends.
    pub fields: Option<crate::properties::Properties>,
    /// This call's number among all calls, from 0.
    pub index: usize,
}

type Script = Box<dyn FnMut(&RecordedCall) -> Option<ApiError> + Send>;

/// An in-process API; clones share it.
#[derive(Clone)]
pub struct FakeApi {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<RemoteState>,
    rules: Rules,
    latency: Duration,
    script: Mutex<Option<Script>>,
    calls: Mutex<Vec<(Command, Instant)>>,
    answered: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeApi {
    /// The API of an app holding `state`, applying `rules`, answering at once.
    pub fn new(state: RemoteState, rules: Rules) -> FakeApi {
        FakeApi::build(state, rules, Duration::ZERO, None)
    }

    /// The same, every call taking `latency` (on tokio's clock).
    pub fn with_latency(self, latency: Duration) -> FakeApi {
        let state = self.state();
        FakeApi::build(state, self.inner.rules, latency, None)
    }

    /// The same, `script` answering a call in the service's place whenever it returns an
    /// error (nothing changes then), and the service answering otherwise.
    pub fn scripted(
        self,
        script: impl FnMut(&RecordedCall) -> Option<ApiError> + Send + 'static,
    ) -> FakeApi {
        let state = self.state();
        FakeApi::build(
            state,
            self.inner.rules,
            self.inner.latency,
            Some(Box::new(script)),
        )
    }

    fn build(
        state: RemoteState,
        rules: Rules,
        latency: Duration,
        script: Option<Script>,
    ) -> FakeApi {
        let mut state = state;
        state.reindex();
        FakeApi {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                rules,
                latency,
                script: Mutex::new(script),
                calls: Mutex::new(Vec::new()),
                answered: AtomicBool::new(false),
            }),
        }
    }

    /// An app with `accounts` (id, MaxSubscriberNum, subscribers).
    pub fn with_accounts(accounts: &[(&str, u64, &[&str])]) -> FakeApi {
        let mut state = RemoteState::default();
        for (id, max, subscribers) in accounts {
            let subscribers: Vec<String> = subscribers.iter().map(|s| s.to_string()).collect();
            state.seed_account(id, *max, &subscribers, 0);
        }
        FakeApi::new(state, Rules::default())
    }

    /// The remote state now.
    pub fn state(&self) -> RemoteState {
        lock(&self.inner.state).clone()
    }

    /// The subscribers of `account` now, sorted.
    pub fn subscribers(&self, account: &str) -> Vec<String> {
        lock(&self.inner.state)
            .accounts
            .get(account)
            .map(|a| a.subscribers.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The instants `command` was called at.
    pub fn calls(&self, command: Command) -> Vec<Instant> {
        lock(&self.inner.calls)
            .iter()
            .filter(|(c, _)| *c == command)
            .map(|(_, at)| *at)
            .collect()
    }

    /// Every call made, in order.
    pub fn all_calls(&self) -> usize {
        lock(&self.inner.calls).len()
    }

    /// Logs the call, waits the latency, and asks the script.
    async fn begin(&self, command: Command, account: &str, members: &[String]) -> Option<ApiError> {
        self.begin_with(command, account, members, None).await
    }

    /// [`FakeApi::begin`] for a call that carries the account's own fields.
    async fn begin_with(
        &self,
        command: Command,
        account: &str,
        members: &[String],
        fields: Option<crate::properties::Properties>,
    ) -> Option<ApiError> {
        let index = {
            let mut calls = lock(&self.inner.calls);
            calls.push((command, Instant::now()));
            calls.len() - 1
        };
        if !self.inner.latency.is_zero() {
            tokio::time::sleep(self.inner.latency).await;
        }
        let request = RecordedCall {
            command,
            account: account.to_owned(),
            members: members.to_vec(),
            fields,
            index,
        };
        let scripted = lock(&self.inner.script)
            .as_mut()
            .and_then(|script| script(&request));
        if !matches!(scripted, Some(ApiError::Unreachable { .. })) {
            self.inner.answered.store(true, Ordering::Relaxed);
        }
        scripted
    }

    fn service_error(command: Command, failure: crate::emulator::Rejection) -> ApiError {
        ApiError::Service {
            command,
            code: failure.code,
            info: failure.info,
        }
    }

    /// An add or a delete: `change` applies it to the state, per-member results or a failure.
    async fn batch(
        &self,
        command: Command,
        account: &str,
        members: &[String],
        change: impl FnOnce(&mut RemoteState) -> Result<Vec<i64>, crate::emulator::Rejection>,
    ) -> Result<Vec<SubscriberResult>, ApiError> {
        if let Some(e) = self.begin(command, account, members).await {
            return Err(e);
        }
        let codes =
            change(&mut lock(&self.inner.state)).map_err(|f| Self::service_error(command, f))?;
        Ok(members
            .iter()
            .zip(codes)
            .map(|(id, result)| SubscriberResult {
                subscriber_account: id.clone(),
                result,
                error_code: None,
            })
            .collect())
    }
}

impl Api for FakeApi {
    fn add_subscriber<'a>(
        &'a self,
        account: &'a str,
        members: &'a [String],
    ) -> Call<'a, Vec<SubscriberResult>> {
        let (rules, now) = (self.inner.rules, crate::clock::unix_now() as i64);
        Box::pin(
            self.batch(Command::AddSubscriber, account, members, move |state| {
                state.add(account, members, rules, now)
            }),
        )
    }

    fn delete_subscriber<'a>(
        &'a self,
        account: &'a str,
        members: &'a [String],
    ) -> Call<'a, Vec<SubscriberResult>> {
        Box::pin(
            self.batch(Command::DeleteSubscriber, account, members, move |state| {
                state.delete(account, members)
            }),
        )
    }

    fn subscriber_page<'a>(&'a self, account: &'a str, next: &'a str) -> Call<'a, Page> {
        Box::pin(async move {
            let command = Command::GetSubscriberInfo;
            if let Some(e) = self.begin(command, account, &[]).await {
                return Err(e);
            }
            let page = lock(&self.inner.state)
                .page(account, api::MAX_PAGE, next, self.inner.rules.cursor_fault)
                .map_err(|f| Self::service_error(command, f))?;
            answer::page(api::MAX_PAGE, page)
                .map_err(|detail| ApiError::Protocol { command, detail })
        })
    }

    fn account_info<'a>(&'a self, accounts: &'a [String]) -> Call<'a, Vec<(String, AccountInfo)>> {
        Box::pin(async move {
            let command = Command::GetOfficialAccountInfo;
            let first = accounts.first().map(String::as_str).unwrap_or_default();
            if let Some(e) = self.begin(command, first, &[]).await {
                return Err(e);
            }
            let items = lock(&self.inner.state)
                .info(accounts)
                .map_err(|f| Self::service_error(command, f))?;
            answer::info(accounts, items).map_err(|detail| ApiError::Protocol { command, detail })
        })
    }

    fn create_account<'a>(
        &'a self,
        request: &'a api::CreateOfficialAccountRequest,
    ) -> Call<'a, String> {
        Box::pin(async move {
            let command = Command::CreateOfficialAccount;
            let id = request.official_account_user_id.as_deref().unwrap_or("");
            let fields = Some(request.fields.clone().into());
            if let Some(e) = self.begin_with(command, id, &[], fields).await {
                return Err(e);
            }
            let now = crate::clock::unix_now() as i64;
            let created = lock(&self.inner.state)
                .create(request, now, "fake")
                .map_err(|f| Self::service_error(command, f))?;
            answer::created(request.official_account_user_id.as_deref(), created)
                .map_err(|detail| ApiError::Protocol { command, detail })
        })
    }

    fn modify_account<'a>(
        &'a self,
        account: &'a str,
        changes: &'a crate::properties::Properties,
    ) -> Call<'a, ()> {
        Box::pin(async move {
            let command = Command::ModifyOfficialAccountBaseInfo;
            let fields = Some(changes.clone());
            if let Some(e) = self.begin_with(command, account, &[], fields).await {
                return Err(e);
            }
            lock(&self.inner.state)
                .modify(account, &changes.into())
                .map_err(|f| Self::service_error(command, f))
        })
    }

    fn has_answered(&self) -> bool {
        self.inner.answered.load(Ordering::Relaxed)
    }
}
