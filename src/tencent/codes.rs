//! Every documented error code, mapped to the one classification all callers use.
//!
//! The table is the single source of truth: the client decides UserSig renewal from it, the
//! executor decides retry, split, skip or stop from it, and messages take their names, meaning
//! and advice from it. Codes the table does not know are `Unknown`, which callers treat as a
//! permanent failure of that one request (never a retry loop, never a silent success).
//!
//! Failures outside the service's own codes are recorded as negative pseudo-codes, and they
//! are in the table too ([`PSEUDO`], [`http`]): `-1` a network fault, `-2` an unreadable
//! answer, `-3` a request never sent, and an HTTP status other than 200 as its negative
//! (`-502`). Nothing else decides what a negative code means.

/// The official account does not exist, or was terminated.
pub(crate) const ACCOUNT_MISSING: i64 = 130004;
/// The official account's subscriber count reached MaxSubscriberNum; also looked for on
/// individual result items.
pub(crate) const ACCOUNT_FULL: i64 = 130006;
/// The official account id is malformed.
pub(crate) const ACCOUNT_INVALID: i64 = 130007;

/// What kind of failure an error code reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Transient server or network fault: retry the same request with backoff.
    Retryable,
    /// An answer that broke the protocol (too large, garbled, about things nobody asked): maybe
    /// a passing fault of a proxy, maybe not; tried again briefly, and never used.
    Malformed,
    /// No connection could be made (DNS, refused, TLS, connect timeout): transient once the
    /// endpoint has answered, a configuration problem before that.
    Unreachable,
    /// Too many requests (the rate-limit codes, HTTP 429): slow down, then retry.
    RateLimited,
    /// The official account reached MaxSubscriberNum (130006).
    AccountFull,
    /// A subscriber already follows the maximum number of official accounts (130010).
    FollowLimit,
    /// The official account does not exist or was terminated (130004).
    AccountMissing,
    /// The official account id is malformed (130007).
    AccountInvalid,
    /// The request itself is wrong; sending it again cannot help.
    InvalidRequest,
    /// The UserSig expired (70001): renew it once, then treat as fatal.
    ExpiredSig,
    /// Credentials, permission, app or service problem: nothing else will work either.
    Fatal,
    /// Not in the table.
    Unknown,
}

impl ErrorClass {
    /// Every class, in the order the reference lists them.
    pub const ALL: [ErrorClass; 12] = [
        Retryable,
        Malformed,
        Unreachable,
        RateLimited,
        AccountFull,
        FollowLimit,
        AccountMissing,
        AccountInvalid,
        InvalidRequest,
        ExpiredSig,
        Fatal,
        Unknown,
    ];

    /// What subsync does with an answer of this class, for the reference
    /// (`docs/reference/codes.md`); the numbers of attempts come from the retry policy.
    pub fn description(self) -> &'static str {
        match self {
            Retryable => {
                "a transient server or network fault: the same batch again after a capped exponential backoff with jitter"
            }
            Malformed => {
                "an answer that broke the protocol (too large, not the documented JSON, items nobody sent or asked for): nothing in it is used; the same call again briefly, then its subscribers are recorded as failed with -2"
            }
            Unreachable => {
                "no connection (DNS, refused, TLS, connect timeout) or silence: before the endpoint ever answered, fatal after a few attempts, naming the endpoint; after that, retried like a transient fault"
            }
            RateLimited => {
                "too many requests: the same batch again after the backoff, or as long as a 429's Retry-After asks, and the sending rate is halved for 10 s"
            }
            AccountFull => {
                "the account reached MaxSubscriberNum: the batch is split to fill the room left exactly, then nothing more is sent to the account; the rest count as not added because of the limit"
            }
            FollowLimit => {
                "a subscriber follows too many accounts: the batch is split until the culprits are isolated; they are recorded as failed, the rest added"
            }
            AccountMissing => {
                "the account is marked missing and skipped (never pruned); its subscribers are recorded as failed with this code, or it is created where the manifest and --allow-create say so"
            }
            AccountInvalid => {
                "the account is marked invalid and skipped; its subscribers are recorded as failed with this code"
            }
            InvalidRequest => {
                "the request is wrong and sending it again cannot help: its subscribers (or the account's own call) are recorded as failed with the code, once; codes one member can cause split the batch first"
            }
            ExpiredSig => "the UserSig is renewed once; if it happens again, fatal",
            Fatal => {
                "credentials, permission, app or service: stop sending, keep what was recorded, exit 1 naming the code, the server's text and what to check"
            }
            Unknown => {
                "a code not in the table: the batch's subscribers are recorded as failed with the code, once (never retried in a loop, never taken for success)"
            }
        }
    }

    /// What an account-level code says about the account itself (missing, or an invalid id),
    /// if anything: the probe, a refresh and the executor record it the same way.
    pub(crate) fn account_gone(self) -> Option<Gone> {
        match self {
            AccountMissing => Some(Gone::Missing),
            AccountInvalid => Some(Gone::Invalid),
            _ => None,
        }
    }
}

/// Why an official account cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gone {
    /// 130004: it does not exist, or was terminated.
    Missing,
    /// 130007: its id is malformed.
    Invalid,
}

impl Gone {
    /// The code the service uses for it, recorded on the subscribers that could not be sent.
    pub(crate) fn code(self) -> i64 {
        match self {
            Gone::Missing => ACCOUNT_MISSING,
            Gone::Invalid => ACCOUNT_INVALID,
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CodeInfo {
    pub(crate) code: i64,
    pub(crate) class: ErrorClass,
    pub(crate) meaning: &'static str,
    /// What the operator should check or do; empty when there is nothing to do.
    pub(crate) hint: &'static str,
    /// One bad member of a batch can cause it for the whole batch: the batch is split in
    /// halves until the members responsible are isolated.
    pub(crate) member_caused: bool,
}

use ErrorClass::*;

const fn row(code: i64, class: ErrorClass, meaning: &'static str, hint: &'static str) -> CodeInfo {
    CodeInfo {
        code,
        class,
        meaning,
        hint,
        member_caused: false,
    }
}

/// `info`, marked as a code that one member can cause for a whole batch.
const fn by_member(info: CodeInfo) -> CodeInfo {
    CodeInfo {
        member_caused: true,
        ..info
    }
}

const CREDENTIALS: &str =
    "check --sdkappid, the secret key and --identifier against the console, and --region";

/// The documented codes (fact sheet: official-account commands and the REST public range).
pub(crate) const TABLE: &[CodeInfo] = &[
    by_member(row(
        6017,
        InvalidRequest,
        "invalid request parameter",
        "one member of the batch may be malformed",
    )),
    row(10004, Retryable, "internal server error", ""),
    by_member(row(20001, InvalidRequest, "invalid request packet", "")),
    row(20005, Retryable, "internal server error", ""),
    row(
        20006,
        InvalidRequest,
        "refused by the app's \"before create\" callback",
        "the app's own callback refused to create the account; check its logs",
    ),
    row(
        130002,
        Fatal,
        "insufficient operation permissions",
        "the identifier must be an App administrator",
    ),
    row(
        ACCOUNT_MISSING,
        AccountMissing,
        "official account does not exist, or was terminated",
        "check officialAccount in the manifest",
    ),
    row(
        ACCOUNT_FULL,
        AccountFull,
        "the official account's subscriber count reached its limit",
        "raise MaxSubscriberNum with modify_official_account_base_info",
    ),
    row(
        ACCOUNT_INVALID,
        AccountInvalid,
        "incorrect official account user ID",
        "check officialAccount in the manifest",
    ),
    row(
        130008,
        InvalidRequest,
        "official account user ID already in use",
        "another account holds the id; choose another officialAccount",
    ),
    by_member(row(
        130010,
        FollowLimit,
        "the subscriber already follows the maximum number of official accounts",
        "",
    )),
    row(
        131000,
        Fatal,
        "the app has not enabled the official account service",
        "enable official accounts for this app in the console",
    ),
    row(
        60002,
        InvalidRequest,
        "HTTP parse error (bad URL)",
        "check --endpoint",
    ),
    row(60003, InvalidRequest, "request body is not valid JSON", ""),
    row(
        60004,
        Fatal,
        "account or signature error in the request",
        CREDENTIALS,
    ),
    row(
        60005,
        Fatal,
        "account or signature error in the request",
        CREDENTIALS,
    ),
    row(
        60006,
        Fatal,
        "SDKAppID invalid",
        "check --sdkappid and --region",
    ),
    row(
        60007,
        RateLimited,
        "REST API call frequency over the limit",
        "lower --qps",
    ),
    row(
        60008,
        Retryable,
        "service timeout or malformed HTTP request",
        "",
    ),
    row(
        60009,
        InvalidRequest,
        "request resource error",
        "check --endpoint",
    ),
    row(
        60010,
        Fatal,
        "the request needs App admin permission",
        "--identifier must be an App administrator",
    ),
    row(
        60011,
        RateLimited,
        "SDKAppID request frequency over the limit",
        "lower --qps",
    ),
    row(
        60016,
        Fatal,
        "SDKAppID disabled",
        "re-enable the app in the console",
    ),
    row(60018, RateLimited, "requests too frequent", "lower --qps"),
    row(60019, RateLimited, "requests too frequent", "lower --qps"),
    row(
        60020,
        Fatal,
        "package expired or stopped",
        "renew the Chat package in the console",
    ),
    row(
        60021,
        Fatal,
        "caller IP not allowed",
        "add this host's IP to the app's allow list",
    ),
    row(
        70001,
        ExpiredSig,
        "UserSig expired",
        "check this host's clock",
    ),
    row(70003, Fatal, "UserSig could not be parsed", CREDENTIALS),
    row(
        70009,
        Fatal,
        "UserSig verification failed (wrong secret key)",
        "check the secret key",
    ),
    row(
        70013,
        Fatal,
        "identifier in the request differs from the UserSig's",
        CREDENTIALS,
    ),
    row(
        70014,
        Fatal,
        "SDKAppID in the request differs from the UserSig's",
        CREDENTIALS,
    ),
    row(
        70016,
        Fatal,
        "secret key or SDKAppID unknown",
        "check --sdkappid and --region",
    ),
    row(
        70020,
        Fatal,
        "secret key or SDKAppID unknown",
        "check --sdkappid and --region",
    ),
    row(
        70050,
        Fatal,
        "UserSig failures are rate-limited",
        "fix the credentials, then wait a minute",
    ),
];

/// The connection failed, dropped or timed out (or none could be made).
pub(crate) const TRANSPORT: i64 = -1;
/// The answer was not the documented JSON, or broke the protocol.
pub(crate) const UNREADABLE: i64 = -2;
/// The request could not be built, so it was never sent.
pub(crate) const UNSENT: i64 = -3;

/// The pseudo-codes; each one's meaning is also its name in reports.
pub(crate) const PSEUDO: &[CodeInfo] = &[
    row(
        TRANSPORT,
        Retryable,
        "a network fault",
        "the connection failed, dropped or timed out; check the network path to --endpoint",
    ),
    row(
        UNREADABLE,
        Malformed,
        "an unreadable answer",
        "not the documented JSON: a proxy or gateway may be answering instead of the service",
    ),
    row(
        UNSENT,
        InvalidRequest,
        "a request never sent",
        "it could not be encoded; this is a bug in subsync",
    ),
];

/// The row of an HTTP status other than 200, recorded as its negative.
pub(crate) const fn http(status: u16) -> CodeInfo {
    let code = -(status as i64);
    match status {
        429 => row(code, RateLimited, "too many requests", "lower --qps"),
        500..=599 => row(code, Retryable, "a network or gateway fault", ""),
        _ => row(
            code,
            Retryable,
            "not the documented answer",
            "check --endpoint",
        ),
    }
}

/// The table row for `code`, if documented: a service code, a pseudo-code or an HTTP status.
pub(crate) fn describe(code: i64) -> Option<CodeInfo> {
    match code {
        -599..=-100 => Some(http(code.unsigned_abs() as u16)),
        _ => TABLE
            .iter()
            .chain(PSEUDO)
            .find(|info| info.code == code)
            .copied(),
    }
}

/// What reports call `code`: `Result 0`, `error 130010`, `HTTP 502`, or a pseudo-code's
/// name (`a network fault`).
pub(crate) fn name(code: i64) -> String {
    match code {
        0 => "Result 0".into(),
        -599..=-100 => format!("HTTP {}", -code),
        c if c > 0 => format!("error {c}"),
        c => match PSEUDO.iter().find(|info| info.code == c) {
            Some(info) => info.meaning.into(),
            None => format!("code {c}"),
        },
    }
}

/// [`name`] with the meaning after it where the name does not say it already:
/// `error 130010 (the subscriber already follows ...)`, `HTTP 502 (a network or gateway
/// fault)`, `a network fault`.
pub(crate) fn explained(code: i64) -> String {
    let name = name(code);
    match describe(code) {
        Some(info) if !PSEUDO.iter().any(|p| p.code == code) => {
            format!("{name} ({})", info.meaning)
        }
        _ => name,
    }
}

/// The class of `code`.
pub(crate) fn classify(code: i64) -> ErrorClass {
    describe(code).map_or(Unknown, |info| info.class)
}

/// Whether one member of a batch can cause `code` for the whole batch.
pub(crate) fn member_caused(code: i64) -> bool {
    describe(code).is_some_and(|info| info.member_caused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_code_has_its_class() {
        let expected: &[(i64, ErrorClass)] = &[
            (6017, InvalidRequest),
            (10004, Retryable),
            (20001, InvalidRequest),
            (20005, Retryable),
            (20006, InvalidRequest),
            (130002, Fatal),
            (130004, AccountMissing),
            (130006, AccountFull),
            (130007, AccountInvalid),
            (130008, InvalidRequest),
            (130010, FollowLimit),
            (131000, Fatal),
            (60002, InvalidRequest),
            (60003, InvalidRequest),
            (60004, Fatal),
            (60005, Fatal),
            (60006, Fatal),
            (60007, RateLimited),
            (60008, Retryable),
            (60009, InvalidRequest),
            (60010, Fatal),
            (60011, RateLimited),
            (60016, Fatal),
            (60018, RateLimited),
            (60019, RateLimited),
            (60020, Fatal),
            (60021, Fatal),
            (70001, ExpiredSig),
            (70003, Fatal),
            (70009, Fatal),
            (70013, Fatal),
            (70014, Fatal),
            (70016, Fatal),
            (70020, Fatal),
            (70050, Fatal),
        ];
        for &(code, class) in expected {
            assert_eq!(classify(code), class, "code {code}");
        }
        assert_eq!(
            expected.len(),
            TABLE.len(),
            "a code was added to the table without a test row"
        );
    }

    #[test]
    fn pseudo_codes_and_http_statuses_are_named_by_the_table() {
        assert_eq!(name(0), "Result 0");
        assert_eq!(name(130010), "error 130010");
        assert_eq!(name(TRANSPORT), "a network fault");
        assert_eq!(name(UNREADABLE), "an unreadable answer");
        assert_eq!(name(UNSENT), "a request never sent");
        assert_eq!(name(-502), "HTTP 502");
        assert_eq!(name(-7), "code -7");
        assert_eq!(explained(-502), "HTTP 502 (a network or gateway fault)");
        assert_eq!(explained(UNSENT), "a request never sent");
        assert_eq!(classify(TRANSPORT), Retryable);
        assert_eq!(classify(UNREADABLE), Malformed);
        assert_eq!(classify(UNSENT), InvalidRequest);
        assert_eq!(classify(-429), RateLimited);
        assert_eq!(classify(-503), Retryable);
        assert!(describe(UNSENT).unwrap().hint.contains("bug"));
    }

    #[test]
    fn undocumented_codes_are_unknown() {
        assert_eq!(classify(0), Unknown);
        assert_eq!(classify(99999), Unknown);
    }

    #[test]
    fn codes_appear_once() {
        for (i, a) in TABLE.iter().enumerate() {
            assert!(
                TABLE[i + 1..].iter().all(|b| b.code != a.code),
                "{} twice",
                a.code
            );
        }
    }
}
