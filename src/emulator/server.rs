//! The emulator's HTTP side: query and UserSig checks, rate limits, latency, injected faults,
//! command dispatch, persistence and statistics.
//!
//! Invariants: every check that can refuse a call runs before the state changes; an injected
//! fault never changes anything; with a state file, every change is on disk before it is answered.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::{Faults, Latency};
use super::journal::{Change, Journal};
use super::state::{Rejection, RemoteState, Rules};
use crate::tencent::api::{self, AnswerStatus, Command};
use crate::tencent::usersig::Credentials;
use crate::tencent::usersig::{self, VerifyError};

/// Everything the server needs to run.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    pub credentials: Credentials,
    pub qps: u32,
    pub rules: Rules,
    pub latency: Latency,
    pub faults: Faults,
    pub state: RemoteState,
    /// Where changes are persisted across restarts (the sandbox, `--state-file`).
    pub journal: Option<Journal>,
    /// Seconds the emulator's clock runs ahead of this machine's, to test UserSig expiry.
    pub clock_skew_secs: i64,
}

/// Request counts, as served at `GET /emulator/stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    /// API calls received.
    pub requests: u64,
    /// Per command, the number of answers by error code ("0" for success), plus `http_502`
    /// and `dropped` for injected transport faults.
    pub by_command: BTreeMap<String, BTreeMap<String, u64>>,
    pub in_flight: u64,
    pub peak_in_flight: u64,
}

impl Stats {
    /// Answers to `command` with `outcome` ("0", "130006", "http_502", ...).
    pub fn count(&self, command: Command, outcome: &str) -> u64 {
        self.by_command
            .get(command.as_str())
            .and_then(|m| m.get(outcome))
            .copied()
            .unwrap_or(0)
    }

    /// All calls to `command`, whatever the answer.
    pub fn calls(&self, command: Command) -> u64 {
        self.by_command
            .get(command.as_str())
            .map_or(0, |m| m.values().sum())
    }
}

pub(super) struct Shared {
    options: EmulatorOptions,
    state: Mutex<RemoteState>,
    windows: Mutex<HashMap<Command, VecDeque<Instant>>>,
    rng: Mutex<StdRng>,
    counts: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
    requests: AtomicU64,
    in_flight: AtomicU64,
    peak: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(super) fn new(mut options: EmulatorOptions) -> Shared {
        let mut state = std::mem::take(&mut options.state);
        state.reindex();
        let rng = match options.faults.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Shared {
            options,
            state: Mutex::new(state),
            windows: Mutex::new(HashMap::new()),
            rng: Mutex::new(rng),
            counts: Mutex::new(BTreeMap::new()),
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            peak: AtomicU64::new(0),
        }
    }

    pub(super) fn state(&self) -> RemoteState {
        lock(&self.state).clone()
    }

    pub(super) fn stats(&self) -> Stats {
        Stats {
            requests: self.requests.load(Ordering::Relaxed),
            by_command: lock(&self.counts).clone(),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            peak_in_flight: self.peak.load(Ordering::Relaxed),
        }
    }

    pub(super) fn seed_subscribers(&self, account: &str, subscribers: &[String]) {
        let mut state = lock(&self.state);
        let max = state
            .accounts
            .get(account)
            .map_or(super::DEFAULT_MAX_SUBSCRIBERS, |a| a.max_subscribers);
        state.seed_account(account, max, subscribers, 0);
    }

    pub(super) async fn ensure_accounts(&self, ids: &[String]) {
        let now = crate::clock::unix_now() as i64;
        let written: Vec<Written> = {
            let mut state = lock(&self.state);
            let mut written = Vec::new();
            for id in ids {
                if state.accounts.contains_key(id) {
                    continue;
                }
                state.seed_account(id, super::DEFAULT_MAX_SUBSCRIBERS, &[], now);
                if let Some(journal) = &self.options.journal {
                    let account = state.accounts[id].clone();
                    let change = Change::Create {
                        id: id.clone(),
                        account,
                    };
                    written.push(journal.append(&change));
                }
            }
            written
        };
        for w in written {
            if !matches!(w.await, Ok(Ok(()))) {
                tracing::error!("cannot write the emulator journal");
            }
        }
    }

    fn count(&self, command: &str, outcome: &str) {
        *lock(&self.counts)
            .entry(command.to_owned())
            .or_default()
            .entry(outcome.to_owned())
            .or_default() += 1;
    }
}

/// Accepts connections until `cancel` fires, then lets open connections finish their request.
pub(super) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "emulator accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            let service = service_fn(move |req| handle(req, shared.clone()));
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

/// Returned by the service to make hyper drop the connection without answering.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected fault: connection dropped")
    }
}

impl std::error::Error for DropConnection {}

type Answer = Result<Response<Full<Bytes>>, DropConnection>;

fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn api_fail(code: i64, info: impl Into<String>) -> Response<Full<Bytes>> {
    json_response(StatusCode::OK, &AnswerStatus::fail(code, info))
}

/// Answers OK with `fields` merged after the status fields.
fn api_ok(fields: Value) -> Response<Full<Bytes>> {
    let mut body = serde_json::to_value(AnswerStatus::ok()).unwrap_or(Value::Null);
    if let (Value::Object(out), Value::Object(extra)) = (&mut body, fields) {
        out.extend(extra);
    }
    json_response(StatusCode::OK, &body)
}

struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        shared.peak.fetch_max(now, Ordering::Relaxed);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn handle(req: Request<Incoming>, shared: Arc<Shared>) -> Answer {
    let path = req.uri().path().to_owned();
    if req.method() == Method::GET {
        return Ok(match path.as_str() {
            "/emulator/state" => json_response(StatusCode::OK, &state_view(&shared.state())),
            "/emulator/stats" => json_response(StatusCode::OK, &shared.stats()),
            _ => json_response(
                StatusCode::NOT_FOUND,
                &serde_json::json!({"error": "not found"}),
            ),
        });
    }
    let name = match path
        .strip_prefix("/v4/")
        .and_then(|rest| rest.split_once('/'))
    {
        Some((service, command)) if service == api::SERVICE => command.to_owned(),
        _ => return Ok(api_fail(60009, format!("no such resource {path}"))),
    };
    let query = req.uri().query().unwrap_or("").to_owned();
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(DropConnection),
    };

    let _in_flight = InFlight::enter(&shared);
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let latency = shared.options.latency;
    let delay = (latency.max > 0).then(|| {
        let ms = lock(&shared.rng).random_range(latency.min..=latency.max);
        Duration::from_millis(ms)
    });
    if let Some(delay) = delay.filter(|_| !latency.after_change) {
        tokio::time::sleep(delay).await;
    }
    let mut reply = answer(&shared, &name, &query, &body);
    if let Some(delay) = delay.filter(|_| latency.after_change) {
        tokio::time::sleep(delay).await;
    }
    if let Ok(ToSend::Written(response, code, written)) = reply {
        // The change is in memory; it is answered only once it is also on disk.
        reply = Ok(match written.await {
            Ok(Ok(())) => ToSend::Api(response, code),
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot write the emulator journal");
                ToSend::Api(api_fail(10004, "cannot persist state"), 10004)
            }
            Err(_) => ToSend::Api(api_fail(10004, "cannot persist state"), 10004),
        });
    }
    let (outcome, result) = match reply {
        Ok(ToSend::Api(response, code) | ToSend::Written(response, code, _)) => {
            (code.to_string(), Ok(response))
        }
        Ok(ToSend::Http(status)) => (
            format!("http_{}", status.as_u16()),
            Ok(json_response(status, &serde_json::json!({}))),
        ),
        Err(DropConnection) => ("dropped".to_owned(), Err(DropConnection)),
    };
    shared.count(&name, &outcome);
    result
}

enum ToSend {
    /// An HTTP 200 answer and the ErrorCode it carries.
    Api(Response<Full<Bytes>>, i64),
    /// The same, to be sent once the change it reports is in the journal.
    Written(Response<Full<Bytes>>, i64, Written),
    /// A gateway fault.
    Http(StatusCode),
}

type Written = tokio::sync::oneshot::Receiver<Result<(), String>>;

fn reply(result: Result<(Value, Option<Written>), Rejection>) -> ToSend {
    match result {
        Ok((fields, None)) => ToSend::Api(api_ok(fields), 0),
        Ok((fields, Some(written))) => ToSend::Written(api_ok(fields), 0, written),
        Err(f) => ToSend::Api(api_fail(f.code, f.info.clone()), f.code),
    }
}

fn refuse(code: i64, info: impl Into<String>) -> ToSend {
    ToSend::Api(api_fail(code, info), code)
}

fn answer(shared: &Shared, name: &str, query: &str, body: &[u8]) -> Result<ToSend, DropConnection> {
    if let Some(fault) = roll_fault(shared) {
        return fault;
    }
    if let Err(f) = check_caller(shared, query) {
        return Ok(refuse(f.code, f.info));
    }
    let Some(command) = Command::from_name(name) else {
        return Ok(refuse(60009, format!("unknown command {name}")));
    };
    if !admit(shared, command) {
        return Ok(refuse(60007, "REST API call frequency over the limit"));
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Ok(refuse(60003, format!("body is not JSON: {e}"))),
    };
    Ok(reply(execute(shared, command, value)))
}

fn roll_fault(shared: &Shared) -> Option<Result<ToSend, DropConnection>> {
    let rate = shared.options.faults.rate;
    if rate <= 0.0 {
        return None;
    }
    let mut rng = lock(&shared.rng);
    if !rng.random_bool(rate) {
        return None;
    }
    Some(match rng.random_range(0..4) {
        0 => Ok(refuse(10004, "internal server error (injected)")),
        1 => Ok(refuse(20005, "internal server error (injected)")),
        2 => Ok(ToSend::Http(StatusCode::BAD_GATEWAY)),
        _ => Err(DropConnection),
    })
}

fn check_caller(shared: &Shared, query: &str) -> Result<(), Rejection> {
    let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let param = |name: &str| {
        params.get(name).ok_or_else(|| Rejection {
            code: 60002,
            info: format!("missing query parameter {name}"),
        })
    };
    let creds = &shared.options.credentials;
    let sdkappid: u64 = param("sdkappid")?.parse().map_err(|_| Rejection {
        code: 60002,
        info: "sdkappid is not a number".into(),
    })?;
    param("random")?.parse::<u32>().map_err(|_| Rejection {
        code: 60002,
        info: "random must be 0..=4294967295".into(),
    })?;
    if param("contenttype")? != "json" {
        return Err(Rejection {
            code: 60002,
            info: "contenttype must be json".into(),
        });
    }
    let identifier = param("identifier")?;
    let sig = param("usersig")?;
    if sdkappid != creds.sdkappid {
        return Err(Rejection {
            code: 60006,
            info: format!("SDKAppID {sdkappid} is invalid"),
        });
    }
    let now = crate::clock::unix_now() as i64 + shared.options.clock_skew_secs;
    usersig::verify(sig, &creds.key, sdkappid, identifier, now).map_err(|e| {
        let code = match e {
            VerifyError::Decode(_) => 70003,
            VerifyError::AppId { .. } => 70014,
            VerifyError::Identifier { .. } => 70013,
            VerifyError::Expired { .. } => 70001,
            VerifyError::Signature => 70009,
        };
        Rejection {
            code,
            info: e.to_string(),
        }
    })?;
    if *identifier != creds.identifier {
        return Err(Rejection {
            code: 60010,
            info: format!("{identifier} is not an App administrator"),
        });
    }
    Ok(())
}

/// Sliding one-second window per command; refused calls do not count.
fn admit(shared: &Shared, command: Command) -> bool {
    let qps = shared.options.qps;
    if qps == 0 {
        return true;
    }
    let now = Instant::now();
    let mut windows = lock(&shared.windows);
    let window = windows.entry(command).or_default();
    while window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
    {
        window.pop_front();
    }
    if window.len() >= qps as usize {
        return false;
    }
    window.push_back(now);
    true
}

fn parse<T: for<'de> Deserialize<'de>>(value: Value) -> Result<T, Rejection> {
    serde_json::from_value(value).map_err(|e| Rejection {
        code: 6017,
        info: format!("invalid request parameter: {e}"),
    })
}

/// Runs `command`; a change to the state comes back with the receipt of its journal write.
fn execute(
    shared: &Shared,
    command: Command,
    body: Value,
) -> Result<(Value, Option<Written>), Rejection> {
    let now = crate::clock::unix_now() as i64;
    let rules = shared.options.rules;
    let results = |ids: &[String], codes: &[i64]| {
        let list: Vec<api::SubscriberResult> = ids
            .iter()
            .zip(codes)
            .map(|(id, result)| api::SubscriberResult {
                subscriber_account: id.clone(),
                result: *result,
                error_code: None,
            })
            .collect();
        serde_json::json!({ "SubscriberList": list })
    };
    // The subscribers whose result is 1: the ones this call changed.
    let changed = |ids: &[String], codes: &[i64]| -> Vec<String> {
        ids.iter()
            .zip(codes)
            .filter(|(_, c)| **c == api::result::DONE)
            .map(|(id, _)| id.clone())
            .collect()
    };
    match command {
        Command::AddSubscriber => {
            let req: api::AddSubscriberRequest = parse(body)?;
            let account = req.official_account;
            let ids: Vec<String> = req
                .subscriber_list
                .into_iter()
                .map(|s| s.subscriber_account)
                .collect();
            let (codes, written) = mutate(shared, |s| {
                let codes = s.add(&account, &ids, rules, now)?;
                let ids = changed(&ids, &codes);
                Ok((
                    codes,
                    Change::Add {
                        account: account.clone(),
                        ids,
                        at: now,
                    },
                ))
            })?;
            Ok((results(&ids, &codes), written))
        }
        Command::DeleteSubscriber => {
            let req: api::DeleteSubscriberRequest = parse(body)?;
            let account = req.official_account;
            let ids = req.subscriber_to_del_account;
            let (codes, written) = mutate(shared, |s| {
                let codes = s.delete(&account, &ids)?;
                let ids = changed(&ids, &codes);
                Ok((
                    codes,
                    Change::Delete {
                        account: account.clone(),
                        ids,
                    },
                ))
            })?;
            Ok((results(&ids, &codes), written))
        }
        Command::GetSubscriberInfo => {
            let req: api::GetSubscriberInfoRequest = parse(body)?;
            let fault = rules.cursor_fault;
            let page =
                lock(&shared.state).page(&req.official_account, req.limit, &req.next, fault)?;
            let page = serde_json::to_value(page).map_err(|e| Rejection {
                code: 10004,
                info: e.to_string(),
            })?;
            Ok((page, None))
        }
        Command::GetOfficialAccountInfo => {
            let req: api::GetOfficialAccountInfoRequest = parse(body)?;
            let ids: Vec<String> = req
                .official_account_id_list
                .into_iter()
                .map(|a| a.official_account)
                .collect();
            let items = lock(&shared.state).info(&ids)?;
            Ok((
                serde_json::json!({ "OfficialAccountInfoList": items }),
                None,
            ))
        }
        Command::CreateOfficialAccount => {
            let req: api::CreateOfficialAccountRequest = parse(body)?;
            let suffix: String = (0..8)
                .map(|_| char::from(lock(&shared.rng).sample(rand::distr::Alphanumeric)))
                .collect();
            let (id, written) = mutate(shared, |s| {
                let id = s.create(&req, now, &suffix)?;
                let account = s.accounts[&id].clone();
                Ok((id.clone(), Change::Create { id, account }))
            })?;
            Ok((serde_json::json!({ "OfficialAccountUserID": id }), written))
        }
        Command::ModifyOfficialAccountBaseInfo => {
            let req: api::ModifyOfficialAccountBaseInfoRequest = parse(body)?;
            let ((), written) = mutate(shared, |s| {
                s.modify(&req.official_account, &req.fields)?;
                Ok((
                    (),
                    Change::Modify {
                        account: req.official_account.clone(),
                        fields: req.fields.clone(),
                    },
                ))
            })?;
            Ok((serde_json::json!({}), written))
        }
    }
}

/// Applies a change and, with a journal, queues it for writing in the order of the changes.
fn mutate<T>(
    shared: &Shared,
    change: impl FnOnce(&mut RemoteState) -> Result<(T, Change), Rejection>,
) -> Result<(T, Option<Written>), Rejection> {
    let mut state = lock(&shared.state);
    let (out, change) = change(&mut state)?;
    let written = match &shared.options.journal {
        Some(journal) if !change.is_empty() => Some(journal.append(&change)),
        _ => None,
    };
    Ok((out, written))
}

/// The body of `GET /emulator/state`.
pub(crate) fn state_view(state: &RemoteState) -> Value {
    let accounts: serde_json::Map<String, Value> = state
        .accounts
        .iter()
        .map(|(id, acc)| {
            (
                id.clone(),
                serde_json::json!({
                    "name": acc.name,
                    "owner": acc.owner,
                    "maxSubscribers": acc.max_subscribers,
                    "subscribers": acc.subscribers.keys().collect::<Vec<_>>(),
                }),
            )
        })
        .collect();
    serde_json::json!({ "accounts": accounts })
}
