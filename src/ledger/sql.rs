//! The statements every backend runs, written once in the SQL that SQLite and PostgreSQL share.
//!
//! Parameters are `$1`, `$2`, … and every statement uses all of `$1..$N`, so that PostgreSQL
//! can type each one and SQLite (whose `?N` they become, see [`for_sqlite`]) counts them the
//! same way. Parameters whose type the statement does not fix are cast. `observed` is each
//! backend's session-private staging table (TEMP in both).

use std::borrow::Cow;

use super::AccountFact;

/// SQLite's spelling of a statement written with `$N` parameters.
pub fn for_sqlite(sql: &str) -> Cow<'_, str> {
    if sql.contains('$') {
        Cow::Owned(sql.replace('$', "?"))
    } else {
        Cow::Borrowed(sql)
    }
}

pub const META_GET: &str = "SELECT value FROM meta WHERE key = $1";
pub const META_SET: &str = "UPDATE meta SET value = $2 WHERE key = $1";

/// The serial bump every write transaction ends with (PostgreSQL adds its fence).
pub const BUMP_SERIAL: &str =
    "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE key = 'serial'";

/// `$1` official account, `$2` now.
pub const ACCOUNT_ENSURE: &str = "INSERT INTO accounts (official_account, updated_at) VALUES ($1, $2) ON CONFLICT (official_account) DO NOTHING";
pub const ACCOUNT_ID: &str = "SELECT id FROM accounts WHERE official_account = $1";

/// `$1` command, `$2` now, `$3` revision, `$4` pid, `$5` version. Ids are numbered here, not by
/// the database, so that a copied audit log goes on numbering after its last run everywhere.
pub const RUN_BEGIN: &str = "INSERT INTO runs (id, command, started_at, revision, pid, version)
    VALUES ((SELECT coalesce(max(id), 0) + 1 FROM runs), $1, $2, $3, $4, $5) RETURNING id";
/// `$1` run, `$2` now, `$3` result, `$4` summary.
pub const RUN_FINISH: &str =
    "UPDATE runs SET finished_at = $2, result = $3, summary = $4 WHERE id = $1";
pub const RUNS_LATEST: &str = "SELECT id, command, started_at, finished_at, revision, result, summary, pid FROM runs ORDER BY id DESC LIMIT $1";
pub const RUNS_ALL: &str = "SELECT id, command, started_at, finished_at, revision, result, summary, pid, version FROM runs ORDER BY id";
/// `$1` id … `$9` version.
pub const RUN_INSERT: &str = "INSERT INTO runs (id, command, started_at, finished_at, revision, result, summary, pid, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// Counts and facts per account, for `status` and the metrics. Columns: name, confirmed,
/// failed, the six facts, refreshed_at, drift added, drift removed.
pub const SUMMARIES: &str = "SELECT a.official_account,
        (SELECT count(*) FROM confirmed c WHERE c.account_id = a.id),
        (SELECT count(*) FROM failed f WHERE f.account_id = a.id),
        a.max_subscribers, a.subscriber_num, a.limit_reached_at, a.missing_since, a.invalid_since,
        a.counted_at, a.refreshed_at,
        (SELECT count(*) FROM drift d WHERE d.account_id = a.id AND d.direction = 'added'),
        (SELECT count(*) FROM drift d WHERE d.account_id = a.id AND d.direction = 'removed')
    FROM accounts a ORDER BY a.official_account";
/// Columns: id, name, the six facts, refreshed_at, updated_at.
pub const ACCOUNTS: &str = "SELECT id, official_account, max_subscribers, subscriber_num, limit_reached_at, missing_since, invalid_since, counted_at, refreshed_at, updated_at FROM accounts ORDER BY official_account";
pub const ACCOUNT_BY_NAME: &str = "SELECT id, official_account, max_subscribers, subscriber_num, limit_reached_at, missing_since, invalid_since, counted_at, refreshed_at, updated_at FROM accounts WHERE official_account = $1";
/// `$1` account id. The primary keys hand rows back in byte order (PostgreSQL's columns are
/// `COLLATE "C"`).
pub const CONFIRMED_OF: &str =
    "SELECT subscriber FROM confirmed WHERE account_id = $1 ORDER BY subscriber";
/// The accounts holding confirmed subscribers, by name.
pub const ACCOUNTS_HELD: &str = "SELECT official_account FROM accounts a WHERE EXISTS (SELECT 1 FROM confirmed c WHERE c.account_id = a.id) ORDER BY official_account";
pub const FAILED_OF: &str = "SELECT subscriber, code, attempts, last_at, op FROM failed WHERE account_id = $1 ORDER BY subscriber";
/// `$1` account id, `$2` direction.
pub const DRIFT_OF: &str =
    "SELECT subscriber FROM drift WHERE account_id = $1 AND direction = $2 ORDER BY subscriber";
/// `$1` account id: the confirmed subscribers subsync does not manage (seen in a refresh,
/// never added, imported or listed).
pub const OUT_OF_BAND_OF: &str = "SELECT subscriber FROM confirmed WHERE managed = false AND account_id = $1 ORDER BY subscriber";
/// `$1` account id: changes an earlier run was about to send.
pub const INTENTS_OF: &str =
    "SELECT subscriber FROM intents WHERE account_id = $1 ORDER BY subscriber";
pub const CONFIRMED_ROWS: &str = "SELECT subscriber, confirmed_at, run_id, already, observed, managed FROM confirmed WHERE account_id = $1 ORDER BY subscriber";
pub const INTENT_ROWS: &str =
    "SELECT subscriber, op, run_id FROM intents WHERE account_id = $1 ORDER BY subscriber";
pub const FAILED_ROWS: &str = "SELECT subscriber, op, code, attempts, first_at, last_at, run_id FROM failed WHERE account_id = $1 ORDER BY subscriber";
pub const DRIFT_ROWS: &str = "SELECT direction, subscriber, observed_at FROM drift WHERE account_id = $1 ORDER BY direction, subscriber";

/// Whether anything is there yet (`ledger copy` writes only into an empty ledger).
pub const ROWS_EXISTING: &str =
    "SELECT (SELECT count(*) FROM accounts) + (SELECT count(*) FROM runs)";
/// `$1` official account, `$2` updated_at, then the six facts and refreshed_at.
pub const ACCOUNT_INSERT: &str = "INSERT INTO accounts (official_account, updated_at, max_subscribers, subscriber_num, limit_reached_at, missing_since, invalid_since, counted_at, refreshed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id";
/// `$1` account id, `$2` subscriber, `$3` op, `$4` run: an intent, replacing an earlier one.
pub const INTENT_INSERT: &str =
    "INSERT INTO intents (account_id, subscriber, op, run_id) VALUES ($1, $2, $3, $4)
    ON CONFLICT (account_id, subscriber) DO NOTHING";
/// `$1` run: forgets the run's intents.
pub const INTENTS_CLEAR_RUN: &str = "DELETE FROM intents WHERE run_id = $1";
/// `$1` account id: a row when any change to the account is in doubt.
pub const INTENTS_ANY: &str = "SELECT 1 FROM intents WHERE account_id = $1 LIMIT 1";
/// `$1` account id: a refresh learnt the live list, so nothing of the account is in doubt.
pub const INTENTS_CLEAR_ACCOUNT: &str = "DELETE FROM intents WHERE account_id = $1";
/// `$1` account id … `$8` op.
pub const FAILED_INSERT: &str = "INSERT INTO failed (account_id, subscriber, code, attempts, first_at, last_at, run_id, op) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
/// `$1` account id, `$2` direction, `$3` subscriber, `$4` observed_at.
pub const DRIFT_INSERT: &str =
    "INSERT INTO drift (account_id, direction, subscriber, observed_at) VALUES ($1, $2, $3, $4)";

/// The staged live list's size: `$1` official account.
pub const STAGE_COUNT: &str = "SELECT count(*) FROM observed WHERE account = $1";

/// Making an account match its staged live list: `$1` account id, `$2` official account,
/// `$3` now, in this order (see `write::refresh_finish`).
pub const REFRESH_DRIFT_CLEAR: &str = "DELETE FROM drift WHERE account_id = $1";
pub const REFRESH_DRIFT_ADDED: &str = "INSERT INTO drift (account_id, direction, subscriber, observed_at)
    SELECT CAST($1 AS BIGINT), 'added', o.subscriber, CAST($3 AS BIGINT) FROM observed o
    WHERE o.account = $2 AND NOT EXISTS (SELECT 1 FROM confirmed c WHERE c.account_id = $1 AND c.subscriber = o.subscriber)
    AND NOT EXISTS (SELECT 1 FROM intents i WHERE i.account_id = $1 AND i.subscriber = o.subscriber)";
pub const REFRESH_DRIFT_REMOVED: &str = "INSERT INTO drift (account_id, direction, subscriber, observed_at)
    SELECT CAST($1 AS BIGINT), 'removed', c.subscriber, CAST($3 AS BIGINT) FROM confirmed c
    WHERE c.account_id = $1 AND NOT EXISTS (SELECT 1 FROM observed o WHERE o.account = $2 AND o.subscriber = c.subscriber)
    AND NOT EXISTS (SELECT 1 FROM intents i WHERE i.account_id = $1 AND i.subscriber = c.subscriber)";
/// What an interrupted run of subsync's own did after all: intended, seen live, not yet
/// confirmed. Confirmed and managed, never drift. `$1` account id, `$2` official account,
/// `$3` now, `$4` run.
pub const REFRESH_RECOVER: &str = "INSERT INTO confirmed (account_id, subscriber, confirmed_at, run_id, already, observed, managed)
    SELECT CAST($1 AS BIGINT), o.subscriber, CAST($3 AS BIGINT), CAST($4 AS BIGINT), false, true, true FROM observed o
    WHERE o.account = $2
    AND EXISTS (SELECT 1 FROM intents i WHERE i.account_id = $1 AND i.subscriber = o.subscriber)
    AND NOT EXISTS (SELECT 1 FROM confirmed c WHERE c.account_id = $1 AND c.subscriber = o.subscriber)";
/// What a refresh found out of band: recorded as confirmed, not managed (prune leaves it).
/// `$1` account id, `$2` now, `$3` run.
pub const REFRESH_ADOPT: &str = "INSERT INTO confirmed (account_id, subscriber, confirmed_at, run_id, already, observed, managed)
    SELECT CAST($1 AS BIGINT), subscriber, CAST($2 AS BIGINT), CAST($3 AS BIGINT), false, true, false FROM drift WHERE account_id = $1 AND direction = 'added'";
/// `import`: everything seen live that was not confirmed is adopted, managed from now on.
/// `$1` account id, `$2` official account, `$3` now, `$4` run.
pub const REFRESH_ADOPT_ALL: &str = "INSERT INTO confirmed (account_id, subscriber, confirmed_at, run_id, already, observed, managed)
    SELECT CAST($1 AS BIGINT), o.subscriber, CAST($3 AS BIGINT), CAST($4 AS BIGINT), false, true, true FROM observed o
    WHERE o.account = $2 AND NOT EXISTS (SELECT 1 FROM confirmed c WHERE c.account_id = $1 AND c.subscriber = o.subscriber)";
/// Confirmed but not seen live (drift, or an interrupted removal of subsync's own): no longer
/// confirmed. `$1` account id, `$2` official account.
pub const REFRESH_DROP: &str = "DELETE FROM confirmed WHERE account_id = $1
    AND NOT EXISTS (SELECT 1 FROM observed o WHERE o.account = $2 AND o.subscriber = confirmed.subscriber)";
/// Failures the live list has since settled: subscribed after all, or gone already.
/// `$1` account id, `$2` official account.
pub const REFRESH_SETTLE: &str = "DELETE FROM failed WHERE account_id = $1 AND (
    (op = 'add' AND subscriber IN (SELECT subscriber FROM observed WHERE account = $2))
    OR (op = 'remove' AND subscriber NOT IN (SELECT subscriber FROM observed WHERE account = $2)))";
/// `$1` account id, `$2` now, `$3` subscriber_num, `$4` max_subscribers.
pub const REFRESH_FACTS: &str = "UPDATE accounts SET refreshed_at = $2, subscriber_num = coalesce(CAST($3 AS BIGINT), subscriber_num),
    counted_at = $2, max_subscribers = coalesce(CAST($4 AS BIGINT), max_subscribers), missing_since = NULL, invalid_since = NULL,
    updated_at = $2 WHERE id = $1";
/// `$1` official account.
pub const STAGE_CLEAR: &str = "DELETE FROM observed WHERE account = $1";

/// The statement recording each account fact: `$1` the account id, `$2` now, `$3`/`$4` the
/// counts of an `Info` (NULL for every other fact, which requires them so).
pub fn fact(fact: &AccountFact) -> &'static str {
    match fact {
        AccountFact::Info { .. } => {
            "UPDATE accounts SET max_subscribers = $3, subscriber_num = $4, counted_at = $2, missing_since = NULL, invalid_since = NULL, updated_at = $2 WHERE id = $1"
        }
        AccountFact::Counted { .. } => {
            "UPDATE accounts SET subscriber_num = $4, counted_at = $2, updated_at = $2 WHERE id = $1 AND CAST($3 AS BIGINT) IS NULL"
        }
        AccountFact::LimitReached => {
            "UPDATE accounts SET limit_reached_at = coalesce(limit_reached_at, $2), updated_at = $2 WHERE id = $1 AND CAST($3 AS BIGINT) IS NULL AND CAST($4 AS BIGINT) IS NULL"
        }
        AccountFact::Missing => {
            "UPDATE accounts SET missing_since = coalesce(missing_since, $2), updated_at = $2 WHERE id = $1 AND CAST($3 AS BIGINT) IS NULL AND CAST($4 AS BIGINT) IS NULL"
        }
        AccountFact::Invalid => {
            "UPDATE accounts SET invalid_since = coalesce(invalid_since, $2), updated_at = $2 WHERE id = $1 AND CAST($3 AS BIGINT) IS NULL AND CAST($4 AS BIGINT) IS NULL"
        }
        AccountFact::Healthy => {
            "UPDATE accounts SET limit_reached_at = NULL, missing_since = NULL, invalid_since = NULL, updated_at = $2 WHERE id = $1 AND CAST($3 AS BIGINT) IS NULL AND CAST($4 AS BIGINT) IS NULL"
        }
    }
}

/// The counts an `Info` or `Counted` fact carries, bound as `$3` and `$4` of [`fact`].
pub fn fact_counts(fact: &AccountFact) -> (Option<i64>, Option<i64>) {
    let count = |v: &Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    match fact {
        AccountFact::Info {
            max_subscribers,
            subscriber_num,
        } => (count(max_subscribers), count(subscriber_num)),
        AccountFact::Counted { subscriber_num } => (None, count(&Some(*subscriber_num))),
        _ => (None, None),
    }
}
