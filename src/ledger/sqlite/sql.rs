//! SQLite's statements: named parameters (`:account`), lists written a row at a time through
//! a cached statement (SQLite runs in-process: a row costs no round trip). Result columns are
//! named as `rows.rs` decodes them. `observed` is the writer connection's TEMP staging table.

use crate::ledger::changes::Statement;
use crate::ledger::write::RefreshStep;

pub(super) const META: &str = "SELECT key, value FROM meta";
pub(super) const META_SET: &str = "UPDATE meta SET value = :value WHERE key = :key";

pub(super) const ACCOUNTS: &str = "SELECT * FROM accounts ORDER BY official_account";
pub(super) const ACCOUNT: &str = "SELECT * FROM accounts WHERE official_account = :name";
/// One probe of the primary key per account (not a scan of `confirmed`).
pub(super) const HELD: &str = "SELECT official_account AS name FROM accounts AS a
    WHERE EXISTS (SELECT 1 FROM confirmed WHERE account_id = a.id)";
pub(super) const ACCOUNT_ENSURE: &str = "INSERT INTO accounts (official_account, updated_at)
    VALUES (:name, :now) ON CONFLICT (official_account) DO NOTHING";
pub(super) const ACCOUNT_ID: &str = "SELECT id FROM accounts WHERE official_account = :name";

pub(super) const FAILED: &str =
    "SELECT * FROM failed WHERE account_id = :account ORDER BY subscriber";
pub(super) const DRIFT: &str =
    "SELECT * FROM drift WHERE account_id = :account ORDER BY direction, subscriber";
pub(super) const INTENTS: &str =
    "SELECT * FROM intents WHERE account_id = :account ORDER BY subscriber";
/// `managed` leads the partial index, so that the few out-of-band rows are read alone.
pub(super) const OUT_OF_BAND: &str = "SELECT subscriber AS name FROM confirmed
    WHERE managed = false AND account_id = :account ORDER BY subscriber";
pub(super) const PROPERTIES: &str = "SELECT * FROM account_properties WHERE account_id = :account";
pub(super) const CONFIRMED_ROWS: &str =
    "SELECT * FROM confirmed WHERE account_id = :account ORDER BY subscriber";
/// The primary key hands the rows over in byte order (BINARY collation).
pub(super) const CONFIRMED: &str =
    "SELECT subscriber FROM confirmed WHERE account_id = :account ORDER BY subscriber";

/// With the account's properties, when it has any (`live` is NULL when not).
pub(super) const OVERVIEWS: &str = "SELECT a.*, p.live, p.owner, p.learnt_at, p.declared, p.kept,
        (SELECT count(*) FROM confirmed WHERE account_id = a.id) AS confirmed,
        (SELECT count(*) FROM failed WHERE account_id = a.id) AS failed,
        (SELECT count(*) FROM drift WHERE account_id = a.id AND direction = 'added') AS drift_added,
        (SELECT count(*) FROM drift WHERE account_id = a.id AND direction = 'removed') AS drift_removed
    FROM accounts AS a LEFT JOIN account_properties AS p ON p.account_id = a.id
    ORDER BY a.official_account";
pub(super) const RUNS: &str = "SELECT * FROM runs ORDER BY id DESC LIMIT :limit";
pub(super) const RUNS_ALL: &str = "SELECT * FROM runs ORDER BY id DESC";
pub(super) const ANYTHING: &str =
    "SELECT EXISTS (SELECT 1 FROM accounts) OR EXISTS (SELECT 1 FROM runs)";

/// Ids are numbered here, not by the database, so that a copied audit log goes on numbering
/// after its last run everywhere.
pub(super) const RUN_BEGIN: &str =
    "INSERT INTO runs (id, command, started_at, revision, pid, version)
    SELECT coalesce(max(id), 0) + 1, :command, :started_at, :revision, :pid, :version FROM runs
    RETURNING id";
pub(super) const RUN_FINISH: &str =
    "UPDATE runs SET finished_at = :now, result = :result, summary = :summary WHERE id = :run";
pub(super) const RUN_INSERT: &str = "INSERT INTO runs (id, command, started_at, finished_at, revision, result, summary, pid, version)
    VALUES (:id, :command, :started_at, :finished_at, :revision, :result, :summary, :pid, :version)";
pub(super) const ACCOUNT_INSERT: &str =
    "INSERT INTO accounts (official_account, updated_at, max_subscribers, subscriber_num,
        limit_reached_at, missing_since, invalid_since, counted_at, refreshed_at)
    VALUES (:name, :updated_at, :max, :num, :limit_reached_at, :missing_since, :invalid_since,
        :counted_at, :refreshed_at)
    RETURNING id";
pub(super) const CONFIRMED_INSERT: &str = "INSERT INTO confirmed (account_id, subscriber, confirmed_at, run_id, already, observed, managed)
    VALUES (:account, :subscriber, :at, :run, :already, :observed, :managed)";
pub(super) const FAILED_INSERT: &str =
    "INSERT INTO failed (account_id, subscriber, code, attempts, first_at, last_at, run_id, op)
    VALUES (:account, :subscriber, :code, :attempts, :first_at, :last_at, :run, :op)";
pub(super) const DRIFT_INSERT: &str =
    "INSERT INTO drift (account_id, direction, subscriber, observed_at)
    VALUES (:account, :direction, :subscriber, :at)";

/// A step of recording a run, over whichever of these it names: `:account`, `:now`, `:run`,
/// `:already`, `:op`, `:max`, `:num`, and, run once per subscriber, `:subscriber` (with its
/// `:code`).
pub(super) fn step(statement: Statement) -> &'static str {
    match statement {
        Statement::ClearIntents => FORGET[0],
        Statement::Confirm => {
            "INSERT INTO confirmed (account_id, subscriber, confirmed_at, run_id, already, managed)
            VALUES (:account, :subscriber, :now, :run, :already, true)
            ON CONFLICT (account_id, subscriber) DO UPDATE
            SET (confirmed_at, run_id, already, observed, managed) = (:now, :run, :already, false, true)"
        }
        Statement::Unconfirm => FORGET[1],
        Statement::ClearFailed => FORGET[2],
        Statement::Fail => {
            "INSERT INTO failed (account_id, subscriber, code, attempts, first_at, last_at, run_id, op)
            VALUES (:account, :subscriber, :code, 1, :now, :now, :run, :op)
            ON CONFLICT (account_id, subscriber) DO UPDATE SET code = excluded.code,
                attempts = CASE WHEN failed.op = excluded.op THEN failed.attempts + 1 ELSE 1 END,
                last_at = excluded.last_at, run_id = excluded.run_id, op = excluded.op"
        }
        Statement::Manage => {
            "UPDATE confirmed SET managed = true WHERE (account_id, subscriber) = (:account, :subscriber)"
        }
        Statement::Intend => INTEND,
        Statement::EndRun => "DELETE FROM intents WHERE run_id = :run",
        Statement::Info => {
            "UPDATE accounts SET max_subscribers = :max, subscriber_num = :num, counted_at = :now,
                missing_since = NULL, invalid_since = NULL, updated_at = :now WHERE id = :account"
        }
        Statement::Counted => {
            "UPDATE accounts SET subscriber_num = :num, counted_at = :now, updated_at = :now
                WHERE id = :account"
        }
        Statement::LimitReached => {
            "UPDATE accounts SET limit_reached_at = ifnull(limit_reached_at, :now),
                updated_at = :now WHERE id = :account"
        }
        Statement::Missing => {
            "UPDATE accounts SET missing_since = ifnull(missing_since, :now), updated_at = :now
                WHERE id = :account"
        }
        Statement::Invalid => {
            "UPDATE accounts SET invalid_since = ifnull(invalid_since, :now), updated_at = :now
                WHERE id = :account"
        }
        Statement::Healthy => {
            "UPDATE accounts SET updated_at = :now, limit_reached_at = NULL,
                missing_since = NULL, invalid_since = NULL WHERE id = :account"
        }
        Statement::PutProperties => {
            "INSERT INTO account_properties (account_id, live, owner, learnt_at, declared, kept)
            VALUES (:account, :live, :owner, :learnt_at, :declared, :kept)
            ON CONFLICT (account_id) DO UPDATE SET (live, owner, learnt_at, declared, kept)
                = (:live, :owner, :learnt_at, :declared, :kept)"
        }
        Statement::SetMax => "UPDATE accounts SET max_subscribers = :max WHERE id = :account",
    }
}

/// A subscriber no longer subscribed: gone from `intents`, `confirmed` and `failed`.
const FORGET: [&str; 3] = [
    "DELETE FROM intents WHERE (account_id, subscriber) = (:account, :subscriber)",
    "DELETE FROM confirmed WHERE (account_id, subscriber) = (:account, :subscriber)",
    "DELETE FROM failed WHERE (account_id, subscriber) = (:account, :subscriber)",
];

/// An intent an earlier run recorded stays that run's (also a copied intent).
pub(super) const INTEND: &str = "INSERT INTO intents (account_id, subscriber, op, run_id)
    VALUES (:account, :subscriber, :op, :run) ON CONFLICT (account_id, subscriber) DO NOTHING";

/// The staging area: the live lists being read, a page at a time.
pub(super) const STAGE: &str =
    "INSERT OR IGNORE INTO observed (account, subscriber) VALUES (:name, :subscriber)";
pub(super) const UNSTAGE: &str = "DELETE FROM observed WHERE account = :name";

/// One statement of the end of a refresh, over whichever of `:account` (the id), `:name`
/// (the official account), `:now`, `:run` and `:max` (NULL: unchanged) it names.
pub(super) fn refresh(step: RefreshStep) -> &'static str {
    match step {
        RefreshStep::Seen => "SELECT count(*) FROM observed WHERE account = :name",
        RefreshStep::ClearDrift => "DELETE FROM drift WHERE account_id = :account",
        RefreshStep::DriftRemoved => {
            "INSERT INTO drift (account_id, direction, subscriber, observed_at)
            SELECT :account, 'removed', c.subscriber, :now FROM confirmed AS c
            WHERE c.account_id = :account
            AND NOT EXISTS (SELECT 1 FROM observed AS o
                WHERE o.account = :name AND o.subscriber = c.subscriber)
            AND NOT EXISTS (SELECT 1 FROM intents AS i
                WHERE i.account_id = :account AND i.subscriber = c.subscriber)"
        }
        RefreshStep::Drop => {
            "DELETE FROM confirmed WHERE account_id = :account
            AND NOT EXISTS (SELECT 1 FROM observed AS o
                WHERE o.account = :name AND o.subscriber = confirmed.subscriber)"
        }
        RefreshStep::AdoptAll => {
            "INSERT INTO confirmed (account_id, subscriber, confirmed_at, run_id, already, observed, managed)
            SELECT :account, o.subscriber, :now, :run, false, true, true FROM observed AS o
            WHERE o.account = :name
            AND NOT EXISTS (SELECT 1 FROM confirmed AS c
                WHERE c.account_id = :account AND c.subscriber = o.subscriber)"
        }
        RefreshStep::DriftAdded => {
            "INSERT INTO drift (account_id, direction, subscriber, observed_at)
            SELECT :account, 'added', o.subscriber, :now FROM observed AS o
            WHERE o.account = :name
            AND NOT EXISTS (SELECT 1 FROM confirmed AS c
                WHERE c.account_id = :account AND c.subscriber = o.subscriber)
            AND NOT EXISTS (SELECT 1 FROM intents AS i
                WHERE i.account_id = :account AND i.subscriber = o.subscriber)"
        }
        RefreshStep::Adopt => {
            "INSERT INTO confirmed (account_id, subscriber, confirmed_at, run_id, already, observed, managed)
            SELECT :account, subscriber, :now, :run, false, true, false FROM drift
            WHERE account_id = :account AND direction = 'added'"
        }
        // Driven by the account's intents (almost always none), not by the whole live list:
        // each is one subscriber at most (both keys are the subscriber).
        RefreshStep::Recover => {
            "INSERT INTO confirmed (account_id, subscriber, confirmed_at, run_id, already, observed, managed)
            SELECT :account, i.subscriber, :now, :run, false, true, true FROM intents AS i
            WHERE i.account_id = :account
            AND EXISTS (SELECT 1 FROM observed AS o
                WHERE o.account = :name AND o.subscriber = i.subscriber)
            AND NOT EXISTS (SELECT 1 FROM confirmed AS c
                WHERE c.account_id = :account AND c.subscriber = i.subscriber)"
        }
        RefreshStep::ClearIntents => "DELETE FROM intents WHERE account_id = :account",
        RefreshStep::Settle => {
            "DELETE FROM failed WHERE account_id = :account AND CASE op
                WHEN 'add' THEN subscriber IN (SELECT subscriber FROM observed WHERE account = :name)
                ELSE subscriber NOT IN (SELECT subscriber FROM observed WHERE account = :name) END"
        }
        RefreshStep::Facts => {
            "UPDATE accounts SET refreshed_at = :now, counted_at = :now, updated_at = :now,
                subscriber_num = (SELECT count(*) FROM observed WHERE account = :name),
                max_subscribers = ifnull(:max, max_subscribers),
                missing_since = NULL, invalid_since = NULL
            WHERE id = :account"
        }
        RefreshStep::Unstage => "DELETE FROM observed WHERE account = :name",
    }
}
