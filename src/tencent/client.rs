//! The REST client: signing, request building, answer decoding and error classification.
//!
//! Invariants: one pooled HTTP client per `Client`; a fresh `random` per request; the UserSig is
//! cached and renewed at half its lifetime (and once more on 70001); redirects are never followed,
//! because a redirect would carry the UserSig in its query string to another host; no URL, key
//! or UserSig ever reaches a log line, an error or `Debug` output.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::api::{self, Command, Status};
use super::codes::{self, ErrorClass};
use super::endpoint::Endpoint;
use super::usersig::{self, SecretKey, UserSig};

/// Everything needed to talk to one app.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub endpoint: Endpoint,
    pub sdkappid: u64,
    pub identifier: String,
    pub key: SecretKey,
    /// Per-request timeout; the server gives up after about 3 s, so this must be longer.
    pub timeout: Duration,
    /// Validity of the UserSigs the client signs for itself.
    pub usersig_lifetime: Duration,
}

impl ClientConfig {
    pub fn new(
        endpoint: Endpoint,
        sdkappid: u64,
        identifier: String,
        key: SecretKey,
    ) -> ClientConfig {
        ClientConfig {
            endpoint,
            sdkappid,
            identifier,
            key,
            timeout: Duration::from_secs(10),
            usersig_lifetime: Duration::from_secs(86_400),
        }
    }
}

/// A failed call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{command} failed with error {code} ({}): {info}{}", meaning(*code), hint(*code))]
    Service {
        command: Command,
        code: i64,
        info: String,
    },
    #[error("{command} got HTTP {status} (a network or gateway fault)")]
    Http { command: Command, status: u16 },
    #[error("{command} request failed: {message}")]
    Transport {
        command: Command,
        message: String,
        timeout: bool,
    },
    #[error(
        "cannot reach the API at {endpoint} ({command}): {message}; check --region or --endpoint, DNS, the network path (proxy, firewall) and TLS"
    )]
    Unreachable {
        command: Command,
        /// The base URL (no query string, so no UserSig).
        endpoint: String,
        message: String,
    },
    #[error("{command} answer could not be read: {message}")]
    Decode { command: Command, message: String },
}

fn meaning(code: i64) -> &'static str {
    codes::describe(code).map_or("undocumented code", |i| i.meaning)
}

fn hint(code: i64) -> String {
    match codes::describe(code) {
        Some(info) if !info.hint.is_empty() => format!("; {}", info.hint),
        _ => String::new(),
    }
}

/// Pseudo-codes recorded for failures outside the service's own codes.
pub mod pseudo_code {
    /// The connection failed, dropped or timed out.
    pub const TRANSPORT: i64 = -1;
    /// The answer was not the documented JSON.
    pub const UNREADABLE: i64 = -2;
    // An HTTP status other than 200 is recorded as its negative, e.g. -502.
}

impl ApiError {
    /// The class the executor and other callers act on. Faults outside the API are retryable.
    pub fn class(&self) -> ErrorClass {
        match self {
            ApiError::Service { code, .. } => codes::classify(*code),
            ApiError::Http { .. } | ApiError::Transport { .. } | ApiError::Decode { .. } => {
                ErrorClass::Retryable
            }
            ApiError::Unreachable { .. } => ErrorClass::Unreachable,
        }
    }

    /// True when the service itself answered (as opposed to the network failing).
    pub fn is_answer(&self) -> bool {
        matches!(self, ApiError::Service { .. })
    }

    /// The number recorded in the ledger: the service's code or a negative pseudo-code.
    pub fn code(&self) -> i64 {
        match self {
            ApiError::Service { code, .. } => *code,
            ApiError::Http { status, .. } => -i64::from(*status),
            ApiError::Transport { .. } | ApiError::Unreachable { .. } => pseudo_code::TRANSPORT,
            ApiError::Decode { .. } => pseudo_code::UNREADABLE,
        }
    }
}

/// Told the outcome of every call the client makes: the daemon's metrics count them.
pub trait CallObserver: Send + Sync {
    /// `code` is 0 for success, the service's code, or a negative pseudo-code.
    fn called(&self, command: Command, code: i64);
}

/// Failure to build a client at all (not a call failure).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the HTTP client: {0}")]
pub struct BuildError(String);

pub struct Client {
    http: reqwest::Client,
    config: ClientConfig,
    sig: Mutex<Option<CachedSig>>,
    /// Set by the first HTTP answer of any kind: from then on a failed connection is a blip,
    /// before it a wrong endpoint or a closed network path.
    answered: AtomicBool,
    observer: Option<std::sync::Arc<dyn CallObserver>>,
}

struct CachedSig {
    sig: UserSig,
    renew_at: i64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.config.endpoint)
            .field("sdkappid", &self.config.sdkappid)
            .field("identifier", &self.config.identifier)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Client, BuildError> {
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(256)
            .user_agent(concat!("subsync/", env!("CARGO_PKG_VERSION")));
        if config.endpoint.is_loopback() {
            // A proxy from the environment must never see emulator traffic.
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|e| BuildError(e.without_url().to_string()))?;
        Ok(Client {
            http,
            config,
            sig: Mutex::new(None),
            answered: AtomicBool::new(false),
            observer: None,
        })
    }

    /// The same client, reporting every call's outcome to `observer`.
    pub fn observed(mut self, observer: std::sync::Arc<dyn CallObserver>) -> Client {
        self.observer = Some(observer);
        self
    }

    pub fn sdkappid(&self) -> u64 {
        self.config.sdkappid
    }

    /// True once the endpoint has answered anything at all.
    pub fn has_answered(&self) -> bool {
        self.answered.load(Ordering::Relaxed)
    }

    /// add_subscriber for at most 100 subscribers.
    pub async fn add_subscriber(
        &self,
        account: &str,
        subscribers: &[String],
    ) -> Result<Vec<api::SubscriberResult>, ApiError> {
        let body = api::AddSubscriberRequest {
            official_account: account.to_owned(),
            subscriber_list: subscribers
                .iter()
                .map(|s| api::SubscriberRef {
                    subscriber_account: s.clone(),
                })
                .collect(),
        };
        let answer: api::SubscriberResults = self.call(Command::AddSubscriber, &body).await?;
        Ok(answer.subscriber_list)
    }

    /// delete_subscriber for at most 100 subscribers.
    pub async fn delete_subscriber(
        &self,
        account: &str,
        subscribers: &[String],
    ) -> Result<Vec<api::SubscriberResult>, ApiError> {
        let body = api::DeleteSubscriberRequest {
            official_account: account.to_owned(),
            subscriber_to_del_account: subscribers.to_vec(),
        };
        let answer: api::SubscriberResults = self.call(Command::DeleteSubscriber, &body).await?;
        Ok(answer.subscriber_list)
    }

    /// One page of `account`'s subscribers after the cursor `next` (`""` for the first).
    /// Paging, pacing and retries belong to the caller.
    pub async fn subscriber_page(
        &self,
        account: &str,
        next: &str,
    ) -> Result<api::GetSubscriberInfoResponse, ApiError> {
        let body = api::GetSubscriberInfoRequest {
            official_account: account.to_owned(),
            limit: api::MAX_PAGE,
            next: next.to_owned(),
        };
        self.call(Command::GetSubscriberInfo, &body).await
    }

    /// get_official_account_info for any number of ids, in calls of at most 50.
    /// Each id is paired with its item; items are matched by id when echoed, else by order.
    pub async fn account_info(
        &self,
        accounts: &[String],
    ) -> Result<Vec<(String, api::OfficialAccountInfo)>, ApiError> {
        let mut out = Vec::with_capacity(accounts.len());
        for chunk in accounts.chunks(api::MAX_INFO_IDS) {
            let body = api::GetOfficialAccountInfoRequest {
                official_account_id_list: chunk
                    .iter()
                    .map(|id| api::AccountRef {
                        official_account: id.clone(),
                    })
                    .collect(),
            };
            let answer: api::GetOfficialAccountInfoResponse =
                self.call(Command::GetOfficialAccountInfo, &body).await?;
            out.extend(match_items(chunk, answer.official_account_info_list));
        }
        Ok(out)
    }

    /// create_official_account; returns the new account's id.
    pub async fn create_official_account(
        &self,
        request: &api::CreateOfficialAccountRequest,
    ) -> Result<String, ApiError> {
        let answer: api::CreateOfficialAccountResponse =
            self.call(Command::CreateOfficialAccount, request).await?;
        Ok(answer.official_account_user_id)
    }

    async fn call<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        command: Command,
        body: &Req,
    ) -> Result<Resp, ApiError> {
        let body = serde_json::to_vec(body).map_err(|e| ApiError::Decode {
            command,
            message: format!("cannot encode request: {e}"),
        })?;
        let first = self.send(command, body.clone()).await;
        match first {
            Err(ApiError::Service { code, .. })
                if codes::classify(code) == ErrorClass::ExpiredSig =>
            {
                // The cached UserSig may have outlived a clock jump: sign a new one, once.
                tracing::info!(%command, "UserSig expired; renewing it and retrying once");
                self.forget_usersig();
                self.send(command, body).await
            }
            other => other,
        }
    }

    async fn send<Resp: DeserializeOwned>(
        &self,
        command: Command,
        body: Vec<u8>,
    ) -> Result<Resp, ApiError> {
        let result = self.send_once(command, body).await;
        if let Some(observer) = &self.observer {
            observer.called(command, result.as_ref().map_or_else(ApiError::code, |_| 0));
        }
        result
    }

    async fn send_once<Resp: DeserializeOwned>(
        &self,
        command: Command,
        body: Vec<u8>,
    ) -> Result<Resp, ApiError> {
        let mut url = self
            .config
            .endpoint
            .command_url(api::SERVICE, command.as_str());
        let sig = self.usersig();
        url.query_pairs_mut()
            .append_pair("sdkappid", &self.config.sdkappid.to_string())
            .append_pair("identifier", &self.config.identifier)
            .append_pair("usersig", sig.as_str())
            .append_pair("random", &rand::random::<u32>().to_string())
            .append_pair("contenttype", "json");
        tracing::debug!(%command, bytes = body.len(), "sending");
        let response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport(command, e))?;
        self.answered.store(true, Ordering::Relaxed);
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            tracing::debug!(%command, status = status.as_u16(), "non-200 answer");
            return Err(ApiError::Http {
                command,
                status: status.as_u16(),
            });
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport(command, e))?;
        let decode = |e: serde_json::Error| ApiError::Decode {
            command,
            message: e.to_string(),
        };
        let envelope: Status = serde_json::from_slice(&bytes).map_err(decode)?;
        if envelope.error_code != 0 || envelope.action_status != "OK" {
            tracing::debug!(%command, code = envelope.error_code, "error answer");
            return Err(ApiError::Service {
                command,
                code: envelope.error_code,
                info: envelope.error_info,
            });
        }
        serde_json::from_slice(&bytes).map_err(decode)
    }

    fn transport(&self, command: Command, error: reqwest::Error) -> ApiError {
        let connect = error.is_connect();
        let timeout = error.is_timeout();
        // without_url: reqwest's messages otherwise quote the URL, query string (UserSig) included.
        let error = error.without_url();
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        if connect {
            return ApiError::Unreachable {
                command,
                endpoint: self.config.endpoint.to_string(),
                message,
            };
        }
        ApiError::Transport {
            command,
            message,
            timeout,
        }
    }

    fn usersig(&self) -> UserSig {
        let now = crate::clock::unix_now() as i64;
        let mut cached = self.sig.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cached.as_ref().filter(|c| now < c.renew_at) {
            return c.sig.clone();
        }
        let lifetime = self.config.usersig_lifetime.as_secs() as i64;
        let sig = usersig::generate(
            &self.config.key,
            self.config.sdkappid,
            &self.config.identifier,
            now,
            lifetime,
        );
        // Renewing at half-life leaves ample margin for clock skew between here and the server.
        *cached = Some(CachedSig {
            sig: sig.clone(),
            renew_at: now + lifetime / 2,
        });
        sig
    }

    fn forget_usersig(&self) {
        *self.sig.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

fn match_items(
    ids: &[String],
    items: Vec<api::OfficialAccountInfo>,
) -> Vec<(String, api::OfficialAccountInfo)> {
    let echoed = items.iter().all(|i| i.official_account.is_some());
    if echoed {
        items
            .into_iter()
            .filter_map(|i| i.official_account.clone().map(|id| (id, i)))
            .collect()
    } else {
        ids.iter().cloned().zip(items).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: Option<&str>, num: u64) -> api::OfficialAccountInfo {
        api::OfficialAccountInfo {
            status: Status::ok(),
            official_account: id.map(str::to_owned),
            name: None,
            owner_account: None,
            subscriber_num: Some(num),
            max_subscriber_num: None,
            create_time: None,
            last_msg_time: None,
        }
    }

    #[test]
    fn account_info_items_match_by_id_when_echoed() {
        let ids = vec!["@TOA#_a".to_owned(), "@TOA#_b".to_owned()];
        let matched = match_items(
            &ids,
            vec![info(Some("@TOA#_b"), 2), info(Some("@TOA#_a"), 1)],
        );
        assert_eq!(matched[0].0, "@TOA#_b");
        assert_eq!(matched[0].1.subscriber_num, Some(2));
    }

    #[test]
    fn account_info_items_match_by_order_when_not_echoed() {
        let ids = vec!["@TOA#_a".to_owned(), "@TOA#_b".to_owned()];
        let matched = match_items(&ids, vec![info(None, 1), info(None, 2)]);
        assert_eq!(matched[1], ("@TOA#_b".to_owned(), info(None, 2)));
    }

    #[test]
    fn faults_outside_the_api_are_retryable_with_pseudo_codes() {
        let http = ApiError::Http {
            command: Command::AddSubscriber,
            status: 502,
        };
        assert_eq!((http.class(), http.code()), (ErrorClass::Retryable, -502));
        let t = ApiError::Transport {
            command: Command::AddSubscriber,
            message: "reset".into(),
            timeout: false,
        };
        assert_eq!(
            (t.class(), t.code()),
            (ErrorClass::Retryable, pseudo_code::TRANSPORT)
        );
    }

    #[test]
    fn service_errors_say_what_the_code_means_and_what_to_check() {
        let e = ApiError::Service {
            command: Command::AddSubscriber,
            code: 70009,
            info: "bad sig".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("70009")
                && text.contains("wrong secret key")
                && text.contains("check the secret key"),
            "{text}"
        );
    }
}
