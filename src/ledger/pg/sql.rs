//! PostgreSQL's statements: `$N` parameters, cast where the statement does not fix their
//! type, lists bound as arrays (`unnest`, `= ANY`) so that one statement serves a whole
//! batch. Result columns are named as `rows.rs` decodes them.

use tokio_postgres::types::Type;

use crate::ledger::changes::Statement;
use crate::ledger::write::RefreshStep;

pub(super) const META: &str = "SELECT key, value FROM meta";
pub(super) const META_SET: &str = "UPDATE meta SET value = $2 WHERE key = $1";

pub(super) const ACCOUNTS: &str = "SELECT id, official_account, max_subscribers, subscriber_num, limit_reached_at, missing_since, invalid_since, counted_at, refreshed_at, updated_at
    FROM accounts ORDER BY official_account";
pub(super) const ACCOUNT: &str = "SELECT id, official_account, max_subscribers, subscriber_num, limit_reached_at, missing_since, invalid_since, counted_at, refreshed_at, updated_at
    FROM accounts WHERE official_account = $1";
pub(super) const HELD: &str = "SELECT official_account AS name FROM accounts a
    WHERE EXISTS (SELECT 1 FROM confirmed c WHERE c.account_id = a.id)";
/// The account's row, made if missing; one round trip either way.
pub(super) const ACCOUNT_ID: &str = "WITH made AS (
        INSERT INTO accounts (official_account, updated_at) VALUES ($1, $2)
        ON CONFLICT (official_account) DO NOTHING RETURNING id)
    SELECT id FROM made UNION ALL SELECT id FROM accounts WHERE official_account = $1";

pub(super) const FAILED: &str = "SELECT subscriber, op, code, attempts, first_at, last_at, run_id
    FROM failed WHERE account_id = $1 ORDER BY subscriber";
pub(super) const DRIFT: &str = "SELECT direction, subscriber, observed_at FROM drift
    WHERE account_id = $1 ORDER BY direction, subscriber";
pub(super) const INTENTS: &str =
    "SELECT subscriber, op, run_id FROM intents WHERE account_id = $1 ORDER BY subscriber";
pub(super) const OUT_OF_BAND: &str = "SELECT subscriber AS name FROM confirmed
    WHERE managed = false AND account_id = $1 ORDER BY subscriber";
pub(super) const PROPERTIES: &str = "SELECT live, owner, learnt_at, declared, kept
    FROM account_properties WHERE account_id = $1";
pub(super) const CONFIRMED_ROWS: &str =
    "SELECT subscriber, confirmed_at, run_id, already, observed, managed
    FROM confirmed WHERE account_id = $1 ORDER BY subscriber";
/// Streamed with COPY: the primary key hands the rows over in byte order (`COLLATE "C"`).
pub(super) fn confirmed_copy(account: i64) -> String {
    format!(
        "COPY (SELECT subscriber FROM confirmed WHERE account_id = {account} ORDER BY subscriber) TO STDOUT"
    )
}

pub(super) const OVERVIEWS: &str = "SELECT a.official_account,
        (SELECT count(*) FROM confirmed c WHERE c.account_id = a.id) AS confirmed,
        (SELECT count(*) FROM failed f WHERE f.account_id = a.id) AS failed,
        a.max_subscribers, a.subscriber_num, a.limit_reached_at, a.missing_since, a.invalid_since,
        a.counted_at, a.refreshed_at,
        (SELECT count(*) FROM drift d WHERE d.account_id = a.id AND d.direction = 'added') AS drift_added,
        (SELECT count(*) FROM drift d WHERE d.account_id = a.id AND d.direction = 'removed') AS drift_removed,
        p.live, p.owner, p.learnt_at, p.declared, p.kept
    FROM accounts a LEFT JOIN account_properties p ON p.account_id = a.id
    ORDER BY a.official_account";
pub(super) const RUNS: &str =
    "SELECT id, command, started_at, finished_at, revision, result, summary, pid, version
    FROM runs ORDER BY id DESC LIMIT $1";
pub(super) const RUNS_ALL: &str =
    "SELECT id, command, started_at, finished_at, revision, result, summary, pid, version
    FROM runs ORDER BY id DESC";

pub(super) const ACCOUNT_INSERT: &str = "INSERT INTO accounts (official_account, updated_at, max_subscribers, subscriber_num, limit_reached_at, missing_since, invalid_since, counted_at, refreshed_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id";
pub(super) const CONFIRMED_INSERT: &str = "INSERT INTO confirmed (account_id, subscriber, confirmed_at, run_id, already, observed, managed)
    SELECT CAST($1 AS BIGINT), * FROM unnest(CAST($2 AS TEXT[]), CAST($3 AS BIGINT[]), CAST($4 AS BIGINT[]), CAST($5 AS BOOLEAN[]), CAST($6 AS BOOLEAN[]), CAST($7 AS BOOLEAN[]))";
pub(super) const FAILED_INSERT: &str =
    "INSERT INTO failed (account_id, subscriber, code, attempts, first_at, last_at, run_id, op)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub(super) const DRIFT_INSERT: &str =
    "INSERT INTO drift (account_id, direction, subscriber, observed_at) VALUES ($1, $2, $3, $4)";
pub(super) const INTENT_INSERT: &str =
    "INSERT INTO intents (account_id, subscriber, op, run_id) VALUES ($1, $2, $3, $4)";

/// Ids are numbered here, not by the database, so that a copied audit log goes on numbering
/// after its last run everywhere.
pub(super) const RUN_BEGIN: &str =
    "INSERT INTO runs (id, command, started_at, revision, pid, version)
    VALUES ((SELECT coalesce(max(id), 0) + 1 FROM runs), $1, $2, $3, $4, $5) RETURNING id";
pub(super) const RUN_FINISH: &str =
    "UPDATE runs SET finished_at = $2, result = $3, summary = $4 WHERE id = $1";
pub(super) const RUN_INSERT: &str = "INSERT INTO runs (id, command, started_at, finished_at, revision, result, summary, pid, version)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// The types of every step's fourteen parameters (see [`step`]).
pub(super) const STEP_TYPES: &[Type] = &[
    Type::INT8,
    Type::TEXT_ARRAY,
    Type::INT8_ARRAY,
    Type::INT8,
    Type::INT8,
    Type::BOOL,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
];

/// A step of recording a run, over the same parameters for all: `$1` the account, `$2` the
/// subscribers, `$3` their codes, `$4` now, `$5` the run, `$6` already, `$7` the operation,
/// `$8` MaxSubscriberNum, `$9` the count, `$10` to `$14` the account's properties (live,
/// owner, learnt_at, declared, kept). Lists are arrays: one statement serves a batch.
pub(super) fn step(statement: Statement) -> &'static str {
    match statement {
        Statement::ClearIntents => {
            "DELETE FROM intents WHERE account_id = $1 AND subscriber = ANY($2)"
        }
        Statement::Confirm => {
            "INSERT INTO confirmed (account_id, subscriber, confirmed_at, run_id, already, managed)
            SELECT $1, s, $4, $5, $6, true FROM (SELECT DISTINCT unnest($2) AS s) AS l
            ON CONFLICT (account_id, subscriber) DO UPDATE SET confirmed_at = excluded.confirmed_at,
              run_id = excluded.run_id, already = excluded.already, observed = false, managed = true"
        }
        Statement::Unconfirm => {
            "DELETE FROM confirmed WHERE account_id = $1 AND subscriber = ANY($2)"
        }
        Statement::ClearFailed => "DELETE FROM failed WHERE account_id = $1 AND subscriber = ANY($2)",
        // The array names each subscriber once (one statement may not touch a row twice).
        Statement::Fail => {
            "INSERT INTO failed (account_id, subscriber, code, attempts, first_at, last_at, run_id, op)
            SELECT $1, s, c, 1, $4, $4, $5, $7 FROM unnest($2, $3) AS t(s, c)
            ON CONFLICT (account_id, subscriber) DO UPDATE SET code = excluded.code,
              attempts = CASE WHEN failed.op = excluded.op THEN failed.attempts + 1 ELSE 1 END,
              last_at = excluded.last_at, run_id = excluded.run_id, op = excluded.op"
        }
        Statement::Manage => {
            "UPDATE confirmed SET managed = true WHERE account_id = $1 AND subscriber = ANY($2)"
        }
        Statement::Intend => {
            "INSERT INTO intents (account_id, subscriber, op, run_id)
            SELECT $1, s, $7, $5 FROM (SELECT DISTINCT unnest($2) AS s) AS l
            ON CONFLICT (account_id, subscriber) DO NOTHING"
        }
        Statement::EndRun => "DELETE FROM intents WHERE run_id = $5",
        Statement::Info => {
            "UPDATE accounts SET max_subscribers = $8, subscriber_num = $9, counted_at = $4,
                missing_since = NULL, invalid_since = NULL, updated_at = $4 WHERE id = $1"
        }
        Statement::Counted => {
            "UPDATE accounts SET subscriber_num = $9, counted_at = $4, updated_at = $4 WHERE id = $1"
        }
        Statement::LimitReached => {
            "UPDATE accounts SET limit_reached_at = coalesce(limit_reached_at, $4), updated_at = $4
                WHERE id = $1"
        }
        Statement::Missing => {
            "UPDATE accounts SET missing_since = coalesce(missing_since, $4), updated_at = $4
                WHERE id = $1"
        }
        Statement::Invalid => {
            "UPDATE accounts SET invalid_since = coalesce(invalid_since, $4), updated_at = $4
                WHERE id = $1"
        }
        Statement::Healthy => {
            "UPDATE accounts SET limit_reached_at = NULL, missing_since = NULL,
                invalid_since = NULL, updated_at = $4 WHERE id = $1"
        }
        Statement::PutProperties => {
            "INSERT INTO account_properties (account_id, live, owner, learnt_at, declared, kept)
            VALUES ($1, $10, $11, $12, $13, $14) ON CONFLICT (account_id) DO UPDATE
            SET live = $10, owner = $11, learnt_at = $12, declared = $13, kept = $14"
        }
        Statement::SetMax => "UPDATE accounts SET max_subscribers = $8 WHERE id = $1",
    }
}

/// The staging area: the live lists being read, a page at a time.
pub(super) const STAGE: &str = "INSERT INTO observed (account, subscriber)
    SELECT CAST($1 AS TEXT), unnest(CAST($2 AS TEXT[])) ON CONFLICT DO NOTHING";
pub(super) const UNSTAGE: &str = "DELETE FROM observed WHERE account = $1";

/// One statement of the end of a refresh. Every one is prepared with the same five typed
/// parameters (see `PARAMS_REFRESH`): `$1` the account id, `$2` the official account, `$3` now, `$4` the run, `$5`
/// MaxSubscriberNum (NULL: unchanged).
pub(super) fn refresh(step: RefreshStep) -> &'static str {
    match step {
        RefreshStep::Seen => "SELECT count(*) FROM observed WHERE account = $2",
        RefreshStep::ClearDrift => "DELETE FROM drift WHERE account_id = $1",
        RefreshStep::DriftRemoved => "INSERT INTO drift (account_id, direction, subscriber, observed_at)
            SELECT CAST($1 AS BIGINT), 'removed', c.subscriber, CAST($3 AS BIGINT) FROM confirmed c
            WHERE c.account_id = $1
            AND NOT EXISTS (SELECT 1 FROM observed o WHERE o.account = $2 AND o.subscriber = c.subscriber)
            AND NOT EXISTS (SELECT 1 FROM intents i WHERE i.account_id = $1 AND i.subscriber = c.subscriber)",
        RefreshStep::Drop => "DELETE FROM confirmed WHERE account_id = $1
            AND NOT EXISTS (SELECT 1 FROM observed o WHERE o.account = $2 AND o.subscriber = confirmed.subscriber)",
        RefreshStep::AdoptAll => "INSERT INTO confirmed (account_id, subscriber, confirmed_at, run_id, already, observed, managed)
            SELECT CAST($1 AS BIGINT), o.subscriber, CAST($3 AS BIGINT), CAST($4 AS BIGINT), false, true, true
            FROM observed o WHERE o.account = $2
            AND NOT EXISTS (SELECT 1 FROM confirmed c WHERE c.account_id = $1 AND c.subscriber = o.subscriber)",
        RefreshStep::DriftAdded => "INSERT INTO drift (account_id, direction, subscriber, observed_at)
            SELECT CAST($1 AS BIGINT), 'added', o.subscriber, CAST($3 AS BIGINT) FROM observed o
            WHERE o.account = $2
            AND NOT EXISTS (SELECT 1 FROM confirmed c WHERE c.account_id = $1 AND c.subscriber = o.subscriber)
            AND NOT EXISTS (SELECT 1 FROM intents i WHERE i.account_id = $1 AND i.subscriber = o.subscriber)",
        RefreshStep::Adopt => "INSERT INTO confirmed (account_id, subscriber, confirmed_at, run_id, already, observed, managed)
            SELECT CAST($1 AS BIGINT), subscriber, CAST($3 AS BIGINT), CAST($4 AS BIGINT), false, true, false
            FROM drift WHERE account_id = $1 AND direction = 'added'",
        RefreshStep::Recover => "INSERT INTO confirmed (account_id, subscriber, confirmed_at, run_id, already, observed, managed)
            SELECT CAST($1 AS BIGINT), o.subscriber, CAST($3 AS BIGINT), CAST($4 AS BIGINT), false, true, true
            FROM observed o WHERE o.account = $2
            AND EXISTS (SELECT 1 FROM intents WHERE account_id = $1)
            AND EXISTS (SELECT 1 FROM intents i WHERE i.account_id = $1 AND i.subscriber = o.subscriber)
            AND NOT EXISTS (SELECT 1 FROM confirmed c WHERE c.account_id = $1 AND c.subscriber = o.subscriber)",
        RefreshStep::ClearIntents => "DELETE FROM intents WHERE account_id = $1",
        RefreshStep::Settle => "DELETE FROM failed WHERE account_id = $1 AND (
            (op = 'add' AND subscriber IN (SELECT subscriber FROM observed WHERE account = $2))
            OR (op = 'remove' AND subscriber NOT IN (SELECT subscriber FROM observed WHERE account = $2)))",
        RefreshStep::Facts => "UPDATE accounts SET refreshed_at = $3,
            subscriber_num = (SELECT count(*) FROM observed WHERE account = $2), counted_at = $3,
            max_subscribers = coalesce(CAST($5 AS BIGINT), max_subscribers),
            missing_since = NULL, invalid_since = NULL, updated_at = $3 WHERE id = $1",
        RefreshStep::Unstage => "DELETE FROM observed WHERE account = $2",
    }
}
