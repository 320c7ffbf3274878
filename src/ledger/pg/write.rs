//! Writing a PostgreSQL ledger: every write one transaction on the lock's connection that
//! bumps the serial only while the fencing epoch is still this writer's, and commits; a
//! fenced write rolls back whole. Subscriber lists go in as arrays, one statement per list,
//! so a batch costs a few round trips however many subscribers it holds.

use std::collections::HashMap;
use std::time::Duration;

use ::postgres::{Client, Statement, Transaction};

use super::{Postgres, lock, schema};
use crate::ledger::backend::{Copied, Store, View};
use crate::ledger::{AccountFact, LedgerError, Op, Record, Refreshed, sql};

/// The writer's hold on the ledger: the epoch it took the lock at, and its prepared statements.
pub struct Lease {
    epoch: i64,
    stmts: Prepared,
}

struct Prepared {
    bump: Statement,
    confirm: Statement,
    unconfirm: Statement,
    clear_failed: Statement,
    fail: Statement,
    ensure_account: Statement,
    account_id: Statement,
    observe: Statement,
}

/// The serial bump, fenced: it matches no row once another writer took over.
const BUMP_FENCED: &str = "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE key = 'serial' AND (SELECT epoch FROM holder WHERE id = 1) = $1";

/// How long a liveness probe of the session may take.
const PROBE: Duration = Duration::from_secs(5);

impl Lease {
    /// Takes the advisory lock (or reports who holds it), upgrades the schema under it and
    /// records this session as the holder with a new epoch.
    pub fn take(client: &mut Client, at: &str, command: &str) -> Result<Lease, LedgerError> {
        let error = |e: ::postgres::Error| super::error(at, &e);
        if let schema::Identity::NoSchema = schema::identify(client).map_err(error)? {
            return Err(schema::Identity::NoSchema.refusal(at));
        }
        if !lock::try_take(client).map_err(error)? {
            return Err(LedgerError::Locked {
                at: at.to_owned(),
                holder: lock::describe_holder(client),
            });
        }
        // The server ends a dead writer's session (and frees the lock) within about 30 s.
        if let Err(e) = client.batch_execute(
            "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3; SET tcp_user_timeout = 30000",
        ) {
            tracing::warn!(error = %super::describe(&e), "cannot set the server's keepalives for this session; a dead writer may hold the lock longer");
        }
        schema::migrate(client, at)?;
        let epoch = lock::record_holder(client, command).map_err(error)?;
        let stmts = Prepared::new(client).map_err(error)?;
        tracing::debug!(ledger = at, epoch, "took the ledger's writer lock");
        Ok(Lease { epoch, stmts })
    }
}

impl Prepared {
    fn new(client: &mut Client) -> Result<Prepared, ::postgres::Error> {
        Ok(Prepared {
            bump: client.prepare(BUMP_FENCED)?,
            confirm: client.prepare(
                "INSERT INTO confirmed (account_id, subscriber, confirmed_at, run_id, already)
                 SELECT CAST($1 AS BIGINT), s, CAST($3 AS BIGINT), CAST($4 AS BIGINT), CAST($5 AS BOOLEAN)
                 FROM (SELECT DISTINCT unnest(CAST($2 AS TEXT[])) AS s) AS l
                 ON CONFLICT (account_id, subscriber) DO UPDATE SET confirmed_at = excluded.confirmed_at,
                   run_id = excluded.run_id, already = excluded.already, observed = false",
            )?,
            unconfirm: client.prepare(
                "DELETE FROM confirmed WHERE account_id = $1 AND subscriber = ANY(CAST($2 AS TEXT[]))",
            )?,
            clear_failed: client.prepare(
                "DELETE FROM failed WHERE account_id = $1 AND subscriber = ANY(CAST($2 AS TEXT[]))",
            )?,
            fail: client.prepare(
                "INSERT INTO failed (account_id, subscriber, code, attempts, first_at, last_at, run_id, op)
                 SELECT CAST($1 AS BIGINT), s, c, 1, CAST($4 AS BIGINT), CAST($4 AS BIGINT), CAST($5 AS BIGINT), CAST($6 AS TEXT)
                 FROM unnest(CAST($2 AS TEXT[]), CAST($3 AS BIGINT[])) AS t(s, c)
                 ON CONFLICT (account_id, subscriber) DO UPDATE SET code = excluded.code,
                   attempts = CASE WHEN failed.op = excluded.op THEN failed.attempts + 1 ELSE 1 END,
                   last_at = excluded.last_at, run_id = excluded.run_id, op = excluded.op",
            )?,
            ensure_account: client.prepare(sql::ACCOUNT_ENSURE)?,
            account_id: client.prepare(sql::ACCOUNT_ID)?,
            observe: client.prepare(
                "INSERT INTO observed (account, subscriber) SELECT CAST($1 AS TEXT), unnest(CAST($2 AS TEXT[])) ON CONFLICT DO NOTHING",
            )?,
        })
    }
}

impl Postgres {
    pub(super) fn lease(&self) -> Result<&Lease, LedgerError> {
        self.lease.as_ref().ok_or_else(|| not_writer(&self.at))
    }

    /// Runs `f` in a transaction that ends with the fenced serial bump, and commits.
    fn write<T>(
        &mut self,
        f: impl FnOnce(
            &mut Transaction<'_>,
            &Prepared,
            &mut HashMap<String, i64>,
        ) -> Result<T, ::postgres::Error>,
    ) -> Result<T, LedgerError> {
        let Some(lease) = self.lease.as_ref() else {
            return Err(not_writer(&self.at));
        };
        let epoch = lease.epoch;
        let outcome = (|| {
            let mut tx = self.client.transaction()?;
            let out = f(&mut tx, &lease.stmts, &mut self.ids)?;
            let bumped = tx.execute(&lease.stmts.bump, &[&epoch])?;
            if bumped != 1 {
                return Ok(Err(()));
            }
            tx.commit()?;
            Ok(Ok(out))
        })();
        match outcome {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(())) => {
                self.ids.clear();
                Err(LedgerError::LockLost {
                    at: self.at.clone(),
                    detail: "fenced: another replica took the lock over".into(),
                })
            }
            Err(e) => {
                // Ids created inside the rolled-back transaction no longer exist.
                self.ids.clear();
                Err(self.error(&e))
            }
        }
    }
}

fn not_writer(at: &str) -> LedgerError {
    LedgerError::Postgres {
        at: at.to_owned(),
        detail: "this connection does not hold the writer lock".into(),
    }
}

fn account_id(
    tx: &mut Transaction<'_>,
    stmts: &Prepared,
    ids: &mut HashMap<String, i64>,
    account: &str,
    now: i64,
) -> Result<i64, ::postgres::Error> {
    if let Some(id) = ids.get(account) {
        return Ok(*id);
    }
    tx.execute(&stmts.ensure_account, &[&account, &now])?;
    let id: i64 = tx.query_one(&stmts.account_id, &[&account])?.try_get(0)?;
    ids.insert(account.to_owned(), id);
    Ok(id)
}

/// Records one `Record::Batch`; anything else is not a batch and records nothing.
fn record_batch(
    tx: &mut Transaction<'_>,
    stmts: &Prepared,
    (id, run, now): (i64, i64, i64),
    batch: &Record,
) -> Result<(), ::postgres::Error> {
    let Record::Batch {
        op,
        done,
        unchanged,
        failed,
        ..
    } = batch
    else {
        return Ok(());
    };
    match op {
        Op::Add => {
            for (list, already) in [(done, false), (unchanged, true)] {
                if !list.is_empty() {
                    tx.execute(&stmts.confirm, &[&id, &list, &now, &run, &already])?;
                    tx.execute(&stmts.clear_failed, &[&id, &list])?;
                }
            }
        }
        Op::Remove => {
            for list in [done, unchanged] {
                if !list.is_empty() {
                    tx.execute(&stmts.unconfirm, &[&id, &list])?;
                    tx.execute(&stmts.clear_failed, &[&id, &list])?;
                }
            }
        }
    }
    if !failed.is_empty() {
        // One row per subscriber: the last code wins, as one statement per row would have it.
        let mut last: HashMap<&str, i64> = HashMap::with_capacity(failed.len());
        for (s, code) in failed {
            last.insert(s, *code);
        }
        let (subs, codes): (Vec<&str>, Vec<i64>) = last.into_iter().unzip();
        tx.execute(&stmts.fail, &[&id, &subs, &codes, &now, &run, &op.as_str()])?;
    }
    Ok(())
}

impl Store for Postgres {
    fn location(&self) -> &str {
        &self.at
    }

    fn begin_run(&mut self, command: &str, revision: Option<&str>) -> Result<i64, LedgerError> {
        self.write(|tx, _, _| {
            tx.query_one(
                sql::RUN_BEGIN,
                &[
                    &command,
                    &crate::clock::unix_millis(),
                    &revision,
                    &i64::from(std::process::id()),
                    &env!("CARGO_PKG_VERSION"),
                ],
            )?
            .try_get(0)
        })
    }

    fn finish_run(
        &mut self,
        run: i64,
        result: &str,
        summary: &serde_json::Value,
    ) -> Result<(), LedgerError> {
        self.write(|tx, _, _| {
            tx.execute(
                sql::RUN_FINISH,
                &[
                    &run,
                    &crate::clock::unix_millis(),
                    &result,
                    &summary.to_string(),
                ],
            )
            .map(drop)
        })
    }

    fn record(&mut self, run: i64, records: &[Record]) -> Result<(), LedgerError> {
        self.write(|tx, stmts, ids| {
            let now = crate::clock::unix_millis();
            for record in records {
                match record {
                    Record::Batch { account, .. } => {
                        let id = account_id(tx, stmts, ids, account, now)?;
                        record_batch(tx, stmts, (id, run, now), record)?;
                    }
                    Record::Account { account, fact } => {
                        let id = account_id(tx, stmts, ids, account, now)?;
                        record_fact(tx, id, now, fact)?;
                    }
                }
            }
            Ok(())
        })
    }

    fn refresh_start(&mut self, account: &str) -> Result<(), LedgerError> {
        self.lease()?;
        self.client
            .execute(sql::STAGE_CLEAR, &[&account])
            .map(drop)
            .map_err(|e| self.error(&e))
    }

    fn observe(&mut self, account: &str, page: &[String]) -> Result<(), LedgerError> {
        let stmt = self.lease()?.stmts.observe.clone();
        self.client
            .execute(&stmt, &[&account, &page])
            .map(drop)
            .map_err(|e| self.error(&e))
    }

    fn refresh_finish(
        &mut self,
        run: i64,
        account: &str,
        subscriber_num: Option<u64>,
        max_subscribers: Option<u64>,
    ) -> Result<Refreshed, LedgerError> {
        let num = subscriber_num.map(|v| v as i64);
        let max = max_subscribers.map(|v| v as i64);
        self.write(|tx, stmts, ids| {
            let now = crate::clock::unix_millis();
            let id = account_id(tx, stmts, ids, account, now)?;
            let seen: i64 = tx.query_one(sql::STAGE_COUNT, &[&account])?.try_get(0)?;
            tx.execute(sql::REFRESH_DRIFT_CLEAR, &[&id])?;
            tx.execute(sql::REFRESH_DRIFT_ADDED, &[&id, &account, &now])?;
            tx.execute(sql::REFRESH_DRIFT_REMOVED, &[&id, &account, &now])?;
            let added = tx.execute(sql::REFRESH_ADOPT, &[&id, &now, &run])?;
            let removed = tx.execute(sql::REFRESH_DROP, &[&id])?;
            tx.execute(sql::REFRESH_SETTLE, &[&id, &account])?;
            tx.execute(sql::REFRESH_FACTS, &[&id, &now, &num, &max])?;
            tx.execute(sql::STAGE_CLEAR, &[&account])?;
            Ok(Refreshed {
                seen: seen as u64,
                added,
                removed,
            })
        })
    }

    fn check_lock(&mut self) -> Result<(), LedgerError> {
        let epoch = self.lease()?.epoch;
        let lost = |detail: String| LedgerError::LockLost {
            at: self.at.clone(),
            detail,
        };
        if let Err(e) = self.client.is_valid(PROBE) {
            return Err(lost(format!(
                "the database session ended: {}",
                super::describe(&e)
            )));
        }
        match lock::still_held(&mut self.client, epoch) {
            Ok(None) => Ok(()),
            Ok(Some(why)) => Err(lost(why)),
            Err(e) => Err(self.error(&e)),
        }
    }

    fn import(&mut self, from: &mut dyn View) -> Result<Copied, LedgerError> {
        super::read::import(self, from)
    }
}

fn record_fact(
    tx: &mut Transaction<'_>,
    id: i64,
    now: i64,
    fact: &AccountFact,
) -> Result<(), ::postgres::Error> {
    let (max, num) = sql::fact_counts(fact);
    tx.execute(sql::fact(fact), &[&id, &now, &max, &num])
        .map(drop)
}
