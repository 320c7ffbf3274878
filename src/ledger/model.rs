//! What the ledger holds, as the rest of subsync sees it: independent of any database.
//!
//! Values stored as text (operations, drift directions, run outcomes) are enums here
//! ([`Stored`]); the run summary is the caller's own type, stored as JSON.

use std::collections::BTreeMap;

use crate::properties::Properties;

/// A value the ledger stores as text. Parsing is strict: text this build does not know is
/// `None`, which the reader reports ([`super::LedgerError::Unknown`]), never a default.
pub(crate) trait Stored: Sized + Copy + 'static {
    /// Every value, each with its text.
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == text)
    }
}

/// What a batch does to its subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// add_subscriber.
    Add,
    /// delete_subscriber (prune).
    Remove,
}

impl Stored for Op {
    const ALL: &'static [Op] = &[Op::Add, Op::Remove];

    fn as_str(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Remove => "remove",
        }
    }
}

/// Which way an account's live list differed from the ledger at its last refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Direction {
    /// Subscribed remotely, unknown to the ledger.
    Added,
    /// Confirmed in the ledger, gone remotely.
    Removed,
}

impl Stored for Direction {
    const ALL: &'static [Direction] = &[Direction::Added, Direction::Removed];

    fn as_str(self) -> &'static str {
        match self {
            Direction::Added => "added",
            Direction::Removed => "removed",
        }
    }
}

/// How a run ended, as its audit-log entry records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Every desired subscriber is confirmed.
    Converged,
    /// Finished, but the service does not match the manifests everywhere.
    Partial,
    /// Stopped by a fatal answer, an unreachable endpoint or the ledger.
    Failed,
    /// A stop signal ended it early.
    Interrupted,
    /// A refresh (`import`, `plan --refresh`) that read every account's live list.
    Refreshed,
}

impl Stored for RunOutcome {
    const ALL: &'static [RunOutcome] = &[
        RunOutcome::Converged,
        RunOutcome::Partial,
        RunOutcome::Failed,
        RunOutcome::Interrupted,
        RunOutcome::Refreshed,
    ];

    fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Converged => "converged",
            RunOutcome::Partial => "partial",
            RunOutcome::Failed => "failed",
            RunOutcome::Interrupted => "interrupted",
            RunOutcome::Refreshed => "refreshed",
        }
    }
}

/// A subscriber whose last add (or removal) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    pub(crate) subscriber: String,
    pub(crate) op: Op,
    /// The service's code, or a negative pseudo-code (see `tencent::client::pseudo_code`).
    pub(crate) code: i64,
    pub(crate) attempts: u32,
    /// Milliseconds since the epoch.
    pub(crate) last_at: i64,
}

/// What the last refresh of an account found: subscribers present remotely that the ledger did
/// not know (now adopted as confirmed), and confirmed ones gone remotely (now dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshDrift {
    /// Sorted.
    pub added: Vec<String>,
    /// Sorted.
    pub removed: Vec<String>,
    /// When that refresh was recorded (milliseconds since the epoch).
    pub at: Option<i64>,
}

/// The counts of one account's refresh, as recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Refreshed {
    /// Subscribers seen in the live list.
    pub(crate) seen: u64,
    pub(crate) added: u64,
    pub(crate) removed: u64,
}

/// What the API told us about an account. Times are milliseconds since the epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountFacts {
    pub(crate) max_subscribers: Option<u64>,
    /// The account's remote count, as learned at `counted_at`.
    pub(crate) subscriber_num: Option<u64>,
    pub(crate) limit_reached_at: Option<i64>,
    pub(crate) missing_since: Option<i64>,
    pub(crate) invalid_since: Option<i64>,
    /// When `subscriber_num` was learned.
    pub(crate) counted_at: Option<i64>,
}

/// One account as the ledger knows it, but for its confirmed subscribers: those can number a
/// million, so planning reads them in order, a page at a time (see [`super::AccountSource`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountView {
    /// Sorted by subscriber.
    pub failed: Vec<FailedEntry>,
    pub facts: AccountFacts,
    pub drift: RefreshDrift,
    /// The confirmed subscribers subsync does not manage: seen in a refresh, never added,
    /// imported or listed in a manifest. Prune leaves them alone unless told. Sorted.
    pub out_of_band: Vec<String>,
    /// Changes an earlier run was about to send when it ended (a crash, a lost lead): their
    /// "already subscribed" answers are that run's own, recovered. Sorted.
    pub intents: Vec<String>,
    /// The account's own properties, as far as they are known.
    pub properties: KnownProperties,
}

/// An account's own properties (`spec.account`) as the ledger knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownProperties {
    /// As the service last described them, or as subsync set them since (MaxSubscriberNum is
    /// not always described: then the value subsync last set is what is known).
    pub(crate) live: Properties,
    /// Owner_Account, as the service described it.
    pub(crate) owner: Option<String>,
    /// When `live` was last learnt or set (milliseconds since the epoch).
    pub(crate) learnt_at: Option<i64>,
    /// What the manifests declared at the last run that checked the account.
    pub(crate) declared: Properties,
    /// The declared values subsync last knew to be in force (it set them, or found them so):
    /// a live value that differs from one of these was changed outside subsync.
    pub(crate) kept: Properties,
}

/// One account as the ledger knows it, whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountState {
    /// Believed subscribed remotely: added or found already subscribed by subsync, or seen in
    /// a refresh. Sorted (byte order).
    pub confirmed: Vec<String>,
    pub view: AccountView,
}

/// A consistent view of the whole ledger, as of one serial: for tests, `ledger copy` and other
/// small uses (planning reads one account at a time instead).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// `None` when no ledger exists yet.
    pub lineage: Option<String>,
    pub serial: u64,
    pub accounts: BTreeMap<String, AccountState>,
}

/// One account at a glance, as the ledger sums it up: its counts, facts, last refresh and
/// properties, for `status` and the daemon's metrics. (A run's own per-account result is
/// `apply::AccountSummary`.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccountOverview {
    pub(crate) official_account: String,
    pub(crate) confirmed: u64,
    pub(crate) failed: u64,
    pub(crate) facts: AccountFacts,
    /// When the live list was last refreshed (milliseconds since the epoch), and what that
    /// refresh found.
    pub(crate) refreshed_at: Option<i64>,
    pub(crate) drift_added: u64,
    pub(crate) drift_removed: u64,
    /// The account's own properties, when any were ever learnt or declared.
    pub(crate) properties: Option<KnownProperties>,
}

/// One entry of the audit log, with the summary the run left (`S`, decoded by whoever reads
/// it: see [`super::Reader::runs`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Run<S> {
    pub id: i64,
    pub command: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub revision: Option<String>,
    /// `None` while running, or when the run was killed before it could finish.
    pub result: Option<RunOutcome>,
    pub summary: Option<S>,
    pub pid: i64,
}

/// A fact to record about an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountFact {
    /// From get_official_account_info; clears `missing`.
    Info {
        max_subscribers: Option<u64>,
        subscriber_num: Option<u64>,
    },
    /// 130006 seen for a single subscriber: the account is full.
    LimitReached,
    /// 130004.
    Missing,
    /// 130007.
    Invalid,
    /// Every planned subscriber was sent without a limit error: clears the flags.
    Healthy,
    /// The account's remote count after a run (what it was, and what the run changed).
    Counted { subscriber_num: u64 },
}

/// One durable fact about the remote side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The outcome of one add_subscriber or delete_subscriber batch.
    Batch {
        account: String,
        op: Op,
        /// Result 1: added, or removed.
        done: Vec<String>,
        /// Result 2: already subscribed (drift: the ledger did not know), or was not
        /// subscribed. Either way the remote side now matches.
        unchanged: Vec<String>,
        /// Result 0 or an isolated per-subscriber error, with its code.
        failed: Vec<(String, i64)>,
    },
    Account {
        account: String,
        fact: AccountFact,
    },
    /// Subscribers a manifest lists that the ledger confirms without managing them: from now on
    /// subsync manages them.
    Adopt {
        account: String,
        subscribers: Vec<String>,
    },
    /// Changes about to be sent, recorded before they are.
    Intend {
        account: String,
        op: Op,
        subscribers: Vec<String>,
    },
    /// The run is over: its intents are forgotten, except those of batches whose outcome is
    /// unknown (abandoned in flight), which stay for the next run to recognise.
    Settle {
        in_doubt: Vec<(String, Op, Vec<String>)>,
    },
    /// The account's own properties (boxed: rare, and larger than every other record).
    Properties(Box<PropertyRecord>),
}

/// What the service described of an account's own properties (or a create or modify set),
/// merged over what was known, and, when given, the declaration and what of it is in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyRecord {
    pub(crate) account: String,
    pub(crate) live: Properties,
    pub(crate) owner: Option<String>,
    /// Replaces the stored declaration.
    pub(crate) declared: Option<Properties>,
    /// Replaces the declared values known to be in force.
    pub(crate) kept: Option<Properties>,
}
