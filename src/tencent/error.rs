//! A failed call, and what it means: one variant per way a call can fail, each mapped to the
//! one classification ([`ErrorClass`]) every caller acts on.
//!
//! Text that came from the server (an `ErrorInfo`, a malformed answer) is cleaned and cut when
//! the error is made, so that whatever prints, logs or stores an `ApiError` shows no control
//! character and no unbounded text.

use std::time::Duration;

use super::api::Command;
use super::codes::{self, ErrorClass};

/// Longest piece of server text kept in an error.
pub(crate) const SERVER_TEXT: usize = 200;

/// A failed call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{command} failed with error {code} ({}): {info}{}", meaning(*code), hint(*code))]
    Service {
        command: Command,
        code: i64,
        /// The server's ErrorInfo, cleaned and cut.
        info: String,
    },
    #[error("{command} got HTTP {status} ({})", codes::http(*status).meaning)]
    Http {
        command: Command,
        status: u16,
        /// What a 429 answer's Retry-After asked for.
        retry_after: Option<Duration>,
    },
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
    #[error("{command} answer broke the protocol ({detail}); nothing in it was used")]
    Protocol { command: Command, detail: String },
    #[error("{command} request could not be encoded ({detail}); this is a bug in subsync")]
    Encode { command: Command, detail: String },
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

/// Pseudo-codes recorded for failures outside the service's own codes (in the codes table).
pub(crate) use codes::{TRANSPORT, UNREADABLE, UNSENT};

impl ApiError {
    /// The class every caller acts on: the codes table's for the code recorded, except for an
    /// endpoint that never answered.
    pub fn class(&self) -> ErrorClass {
        match self {
            ApiError::Unreachable { .. } => ErrorClass::Unreachable,
            other => codes::classify(other.code()),
        }
    }

    /// True when the service itself answered (as opposed to the network failing).
    pub(crate) fn is_answer(&self) -> bool {
        matches!(self, ApiError::Service { .. })
    }

    /// The number recorded in the ledger: the service's code or a negative pseudo-code.
    pub fn code(&self) -> i64 {
        match self {
            ApiError::Service { code, .. } => *code,
            ApiError::Http { status, .. } => -i64::from(*status),
            ApiError::Transport { .. } | ApiError::Unreachable { .. } => TRANSPORT,
            ApiError::Protocol { .. } => UNREADABLE,
            ApiError::Encode { .. } => UNSENT,
        }
    }

    /// How long the server asked to be left alone (a 429's Retry-After), if it did.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_outside_the_api_are_retryable_with_pseudo_codes() {
        let http = ApiError::Http {
            command: Command::AddSubscriber,
            status: 502,
            retry_after: None,
        };
        assert_eq!((http.class(), http.code()), (ErrorClass::Retryable, -502));
        let t = ApiError::Transport {
            command: Command::AddSubscriber,
            message: "reset".into(),
            timeout: false,
        };
        assert_eq!((t.class(), t.code()), (ErrorClass::Retryable, TRANSPORT));
        let p = ApiError::Protocol {
            command: Command::AddSubscriber,
            detail: "extra items".into(),
        };
        assert_eq!((p.class(), p.code()), (ErrorClass::Malformed, UNREADABLE));
    }

    #[test]
    fn http_429_is_rate_limiting_not_a_network_fault() {
        let e = ApiError::Http {
            command: Command::GetSubscriberInfo,
            status: 429,
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(e.class(), ErrorClass::RateLimited);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert!(e.to_string().contains("too many requests"), "{e}");
        assert_eq!(e.code(), -429);
    }

    #[test]
    fn an_unencodable_request_is_never_retried() {
        let e = ApiError::Encode {
            command: Command::AddSubscriber,
            detail: "x".into(),
        };
        assert_eq!(e.class(), ErrorClass::InvalidRequest);
        assert_eq!(e.code(), UNSENT);
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
