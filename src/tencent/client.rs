//! The REST client: signing, request building, bounded reading and checking of answers.
//!
//! Invariants: one pooled HTTP client per `Client`; a fresh `random` per request; the UserSig
//! is cached and renewed at half its lifetime (and once more on 70001); redirects are never
//! followed, because a redirect would carry the UserSig in its query string to another host;
//! no URL, key or UserSig ever reaches a log line, an error or `Debug` output.
//!
//! Everything read from the network is bounded: connecting, the first byte and the whole
//! answer each have a deadline; an answer is read only up to its command's size cap
//! ([`answer::max_answer_bytes`]); the server's text is cleaned and cut; and an answer is used
//! only once it passed the protocol checks of [`answer`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::answer::{self, AccountInfo, Page};
use super::api::{self, AnswerStatus, Command};
use super::codes::{self, ErrorClass};
use super::endpoint::Endpoint;
use super::error::{ApiError, SERVER_TEXT};
use super::service::{Api, Call};
use super::usersig::{self, SecretKey, UserSig};

/// How long each part of a call may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    /// For the answer to start, and between any two reads of it.
    pub(crate) first_byte: Duration,
    /// For the whole call, answer included.
    pub(crate) whole: Duration,
}

impl Timeouts {
    /// Waiting `first_byte` for an answer to start, half as long again for the rest of it, and
    /// at most 5 s for a connection.
    pub(crate) fn answering_within(first_byte: Duration) -> Timeouts {
        Timeouts {
            connect: first_byte.min(Duration::from_secs(5)),
            first_byte,
            whole: first_byte + first_byte / 2,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        // The server gives up on a request after about 3 s: 10 s without a byte is a server
        // (or a path) that is not answering.
        Timeouts::answering_within(Duration::from_secs(10))
    }
}

/// Everything needed to talk to one app.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub(crate) endpoint: Endpoint,
    pub(crate) sdkappid: u64,
    pub(crate) identifier: String,
    pub(crate) key: SecretKey,
    pub(crate) timeouts: Timeouts,
    /// Validity of the UserSigs the client signs for itself.
    pub(crate) usersig_lifetime: Duration,
    /// Most idle connections kept: the calls in flight, which the open-file limit bounds
    /// (see `descriptors`).
    pub(crate) pool: usize,
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
            timeouts: Timeouts::default(),
            usersig_lifetime: Duration::from_secs(86_400),
            pool: 256,
        }
    }
}

/// Told the outcome of every call the client makes: the daemon's metrics count them.
pub(crate) trait CallObserver: Send + Sync {
    /// `code` is 0 for success, the service's code, or a negative pseudo-code; `took` is the
    /// call's whole time.
    fn called(&self, command: Command, code: i64, took: std::time::Duration);
}

/// Failure to build a client at all (not a call failure).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the HTTP client: {0}")]
pub struct BuildError(String);

impl BuildError {
    /// The build never finished: its blocking task failed or the runtime is shutting down.
    pub(crate) fn interrupted(cause: &dyn std::fmt::Display) -> BuildError {
        BuildError(cause.to_string())
    }
}

pub struct Client {
    http: reqwest::Client,
    config: ClientConfig,
    sig: Mutex<Option<CachedSig>>,
    /// Set by the first HTTP answer of any kind.
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

/// Longest Retry-After honoured as it is; callers cap it further.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

impl Client {
    pub fn new(config: ClientConfig) -> Result<Client, BuildError> {
        let t = config.timeouts;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(t.connect)
            .read_timeout(t.first_byte)
            .timeout(t.whole)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(config.pool)
            // An idle connection holds a descriptor: close it soon (a resync is minutes away).
            .pool_idle_timeout(crate::descriptors::IDLE_CONNECTION)
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
    pub(crate) fn observed(mut self, observer: std::sync::Arc<dyn CallObserver>) -> Client {
        self.observer = Some(observer);
        self
    }

    async fn call<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        command: Command,
        body: &Req,
    ) -> Result<Resp, ApiError> {
        let body = serde_json::to_vec(body).map_err(|e| ApiError::Encode {
            command,
            detail: e.to_string(),
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
        let started = tokio::time::Instant::now();
        let result = self.send_once(command, body).await;
        if let Some(observer) = &self.observer {
            let code = result.as_ref().map_or_else(ApiError::code, |_| 0);
            observer.called(command, code, started.elapsed());
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
            let retry_after = (status == reqwest::StatusCode::TOO_MANY_REQUESTS)
                .then(|| retry_after(response.headers()))
                .flatten();
            return Err(ApiError::Http {
                command,
                status: status.as_u16(),
                retry_after,
            });
        }
        let bytes = self.read_capped(command, response).await?;
        let broken = |e: serde_json::Error| ApiError::Protocol {
            command,
            detail: format!(
                "not the documented JSON: {}",
                crate::quote::clean(&e.to_string(), SERVER_TEXT)
            ),
        };
        let envelope: AnswerStatus = serde_json::from_slice(&bytes).map_err(broken)?;
        if envelope.error_code != 0 || envelope.action_status != "OK" {
            tracing::debug!(%command, code = envelope.error_code, "error answer");
            return Err(ApiError::Service {
                command,
                code: envelope.error_code,
                info: crate::quote::clean(&envelope.error_info, SERVER_TEXT),
            });
        }
        serde_json::from_slice(&bytes).map_err(broken)
    }

    /// The answer's body, read only up to the command's cap.
    async fn read_capped(
        &self,
        command: Command,
        mut response: reqwest::Response,
    ) -> Result<Vec<u8>, ApiError> {
        let cap = answer::max_answer_bytes(command);
        let too_large = || ApiError::Protocol {
            command,
            detail: format!("an answer larger than {} KiB", cap >> 10),
        };
        if response.content_length().is_some_and(|n| n > cap as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport(command, e))?
        {
            if body.len() + chunk.len() > cap {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn transport(&self, command: Command, error: reqwest::Error) -> ApiError {
        let (connect, timeout) = (error.is_connect(), error.is_timeout());
        // without_url: reqwest's messages otherwise quote the URL, query string (UserSig) included.
        let error = error.without_url();
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        let message = crate::quote::clean(&message, SERVER_TEXT);
        // An endpoint that never answered and now will not connect, or says nothing at all, is
        // a wrong endpoint or a closed path, whatever form the silence takes.
        if connect || (timeout && !self.has_answered()) {
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

/// A 429's Retry-After: delta-seconds, or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let secs = match value.parse::<u64>() {
        Ok(secs) => secs,
        Err(_) => {
            let at = crate::clock::parse_http_date(value)?;
            u64::try_from(at - crate::clock::unix_now() as i64).unwrap_or(0)
        }
    };
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

impl Api for Client {
    fn add_subscriber<'a>(
        &'a self,
        account: &'a str,
        members: &'a [String],
    ) -> Call<'a, Vec<api::SubscriberResult>> {
        Box::pin(async move {
            let body = api::AddSubscriberRequest {
                official_account: account.to_owned(),
                subscriber_list: members
                    .iter()
                    .map(|s| api::SubscriberRef {
                        subscriber_account: s.clone(),
                    })
                    .collect(),
            };
            let command = Command::AddSubscriber;
            let answer: api::SubscriberResults = self.call(command, &body).await?;
            answer::batch(members, answer.subscriber_list)
                .map_err(|detail| ApiError::Protocol { command, detail })
        })
    }

    fn delete_subscriber<'a>(
        &'a self,
        account: &'a str,
        members: &'a [String],
    ) -> Call<'a, Vec<api::SubscriberResult>> {
        Box::pin(async move {
            let body = api::DeleteSubscriberRequest {
                official_account: account.to_owned(),
                subscriber_to_del_account: members.to_vec(),
            };
            let command = Command::DeleteSubscriber;
            let answer: api::SubscriberResults = self.call(command, &body).await?;
            answer::batch(members, answer.subscriber_list)
                .map_err(|detail| ApiError::Protocol { command, detail })
        })
    }

    fn subscriber_page<'a>(&'a self, account: &'a str, next: &'a str) -> Call<'a, Page> {
        Box::pin(async move {
            let body = api::GetSubscriberInfoRequest {
                official_account: account.to_owned(),
                limit: api::MAX_PAGE,
                next: next.to_owned(),
            };
            let command = Command::GetSubscriberInfo;
            let page: api::GetSubscriberInfoResponse = self.call(command, &body).await?;
            answer::page(api::MAX_PAGE, page)
                .map_err(|detail| ApiError::Protocol { command, detail })
        })
    }

    fn account_info<'a>(&'a self, accounts: &'a [String]) -> Call<'a, Vec<(String, AccountInfo)>> {
        Box::pin(async move {
            let command = Command::GetOfficialAccountInfo;
            if accounts.len() > api::MAX_INFO_IDS {
                return Err(ApiError::Encode {
                    command,
                    detail: format!("{} ids in one call", accounts.len()),
                });
            }
            let body = api::GetOfficialAccountInfoRequest {
                official_account_id_list: accounts
                    .iter()
                    .map(|id| api::AccountRef {
                        official_account: id.clone(),
                    })
                    .collect(),
            };
            let answer: api::GetOfficialAccountInfoResponse = self.call(command, &body).await?;
            answer::info(accounts, answer.official_account_info_list)
                .map_err(|detail| ApiError::Protocol { command, detail })
        })
    }

    fn create_account<'a>(
        &'a self,
        request: &'a api::CreateOfficialAccountRequest,
    ) -> Call<'a, String> {
        Box::pin(async move {
            let command = Command::CreateOfficialAccount;
            let answer: api::CreateOfficialAccountResponse = self.call(command, request).await?;
            let asked = request.official_account_user_id.as_deref();
            answer::created(asked, answer.official_account_user_id)
                .map_err(|detail| ApiError::Protocol { command, detail })
        })
    }

    fn modify_account<'a>(
        &'a self,
        account: &'a str,
        changes: &'a crate::properties::Properties,
    ) -> Call<'a, ()> {
        Box::pin(async move {
            let body = api::ModifyOfficialAccountBaseInfoRequest {
                official_account: account.to_owned(),
                fields: changes.into(),
            };
            let command = Command::ModifyOfficialAccountBaseInfo;
            let _: serde::de::IgnoredAny = self.call(command, &body).await?;
            Ok(())
        })
    }

    fn has_answered(&self) -> bool {
        self.answered.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date_and_is_capped() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(reqwest::header::RETRY_AFTER, "99999999".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        headers.insert(
            reqwest::header::RETRY_AFTER,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }
}
