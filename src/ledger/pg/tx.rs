//! One PostgreSQL transaction: the ledger's reads and writes in PostgreSQL's SQL (`sql.rs`),
//! each within the session's answer deadline, statements prepared once per connection.

use std::collections::HashMap;

use futures_util::StreamExt;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Statement, Transaction};

use super::copy_text::CopyLines;
use super::fault::Session;
use super::{lock, sql};
use crate::ledger::changes::Step;
use crate::ledger::model::Stored;
use crate::ledger::rows::{AccountRow, ConfirmedRow, Decode, Identity, Name, Pair, RunRow};
use crate::ledger::store::{
    AccountDump, AccountRows, Chunk, Chunks, Fut, NewRun, ReadTx, RefreshEnd, WriteTx,
};
use crate::ledger::write::RefreshStep;
use crate::ledger::{
    AccountOverview, Cause, Hint, KnownProperties, LedgerError, LockLoss, RunOutcome,
};

type Params<'p> = [&'p (dyn ToSql + Sync)];

/// The types of a refresh statement's five parameters (see `sql::refresh`).
const REFRESH_TYPES: &[Type] = &[Type::INT8, Type::TEXT, Type::INT8, Type::INT8, Type::INT8];

/// A transaction on one session, and what the session knows.
pub(super) struct PgTx<'c> {
    tx: Transaction<'c>,
    session: &'c Session,
    prepared: &'c mut HashMap<&'static str, Statement>,
    /// The fencing epoch of a write transaction.
    epoch: Option<i64>,
    /// The session's count of rows written and committed since its last vacuum, and this
    /// transaction's share, added to it on commit.
    written: &'c mut u64,
    writing: u64,
}

/// A row as `rows.rs` reads it.
struct PgRow<'r> {
    row: &'r tokio_postgres::Row,
    at: &'r str,
}

impl PgRow<'_> {
    fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
        &'a self,
        column: &str,
    ) -> Result<T, LedgerError> {
        self.row.try_get(column).map_err(|e| LedgerError::Database {
            at: self.at.to_owned(),
            hint: Hint::default(),
            cause: Cause::new(e),
        })
    }
}

crate::ledger::rows::row_by_get!(PgRow<'_>);

impl<'c> PgTx<'c> {
    pub(super) fn new(
        tx: Transaction<'c>,
        session: &'c Session,
        prepared: &'c mut HashMap<&'static str, Statement>,
        epoch: Option<i64>,
        written: &'c mut u64,
    ) -> PgTx<'c> {
        PgTx {
            tx,
            session,
            prepared,
            epoch,
            written,
            writing: 0,
        }
    }

    /// `text` prepared (once per connection) with parameter `types` (empty: inferred).
    async fn statement(
        &mut self,
        text: &'static str,
        types: &[Type],
    ) -> Result<Statement, LedgerError> {
        if let Some(s) = self.prepared.get(text) {
            return Ok(s.clone());
        }
        let statement = self
            .session
            .within(self.tx.prepare_typed(text, types))
            .await?;
        self.prepared.insert(text, statement.clone());
        Ok(statement)
    }

    async fn rows<R: Decode>(
        &mut self,
        text: &'static str,
        params: &Params<'_>,
    ) -> Result<Vec<R>, LedgerError> {
        let statement = self.statement(text, &[]).await?;
        let rows = self
            .session
            .within(self.tx.query(&statement, params))
            .await?;
        let at = self.session.at.as_str();
        rows.iter()
            .map(|row| R::decode(&PgRow { row, at }))
            .collect()
    }

    async fn execute_typed(
        &mut self,
        text: &'static str,
        types: &[Type],
        params: &Params<'_>,
    ) -> Result<u64, LedgerError> {
        let statement = self.statement(text, types).await?;
        let rows = self
            .session
            .within(self.tx.execute(&statement, params))
            .await?;
        self.writing += rows;
        Ok(rows)
    }

    async fn execute(
        &mut self,
        text: &'static str,
        params: &Params<'_>,
    ) -> Result<u64, LedgerError> {
        self.execute_typed(text, &[], params).await
    }

    async fn confirmed_chunks(&mut self, account: i64, out: Chunks) -> Result<(), LedgerError> {
        let tx = &self.tx;
        let session = self.session;
        // The rows must come off the primary key in order. Right after a bulk load the
        // planner has no statistics yet and would sort the account's rows instead (on disk,
        // for a large one); reading transactions change nothing, so sorting is ruled out in
        // them.
        session
            .within(tx.batch_execute("SET LOCAL enable_sort = off"))
            .await?;
        // COPY sends the rows as lines of text in large chunks: no message, no row object and
        // no per-row decode. The account id is a number: it cannot change the statement.
        let copy = sql::confirmed_copy(account);
        let stream = session.within(tx.copy_out(copy.as_str())).await?;
        futures_util::pin_mut!(stream);
        let mut lines = CopyLines::default();
        let mut batch = Chunk::new();
        // The deadline is for the server's silence between chunks, not the whole answer.
        loop {
            let next = match futures_util::FutureExt::now_or_never(stream.next()) {
                Some(next) => next,
                None => tokio::time::timeout(session.deadline, stream.next())
                    .await
                    .map_err(|_| session.silent(session.deadline))?,
            };
            let Some(chunk) = next else { break };
            let chunk = chunk.map_err(|e| session.error(e))?;
            lines
                .feed(&chunk, &mut |s| batch.push(s))
                .map_err(|e| self.unreadable(e))?;
            if batch.is_full() && out.send(std::mem::take(&mut batch)).await.is_err() {
                // The reader stopped listening: nothing more is wanted.
                return Ok(());
            }
        }
        lines.finish().map_err(|e| self.unreadable(e))?;
        if !batch.is_empty() {
            let _ = out.send(batch).await;
        }
        Ok(())
    }

    fn unreadable(&self, e: super::copy_text::CopyError) -> LedgerError {
        LedgerError::Database {
            at: self.session.at.clone(),
            hint: Hint::default(),
            cause: Cause::new(e),
        }
    }

    async fn step(&mut self, run: i64, now: i64, step: Step) -> Result<(), LedgerError> {
        let op = step.op.as_str();
        let stored = step.properties.as_deref().cloned().unwrap_or_default();
        let params: [&(dyn ToSql + Sync); 14] = [
            &step.account,
            &step.subscribers,
            &step.codes,
            &now,
            &run,
            &step.already,
            &op,
            &step.max,
            &step.num,
            &stored.live,
            &stored.owner,
            &stored.learnt_at,
            &stored.declared,
            &stored.kept,
        ];
        let text = sql::step(step.statement);
        self.execute_typed(text, sql::STEP_TYPES, &params)
            .await
            .map(drop)
    }
}

impl<'c> ReadTx<'c> for PgTx<'c> {
    fn identity(&mut self) -> Fut<'_, Identity> {
        Box::pin(async move {
            let pairs: Vec<Pair> = self.rows(sql::META, &[]).await?;
            Identity::from_pairs(&self.session.at, &pairs)
        })
    }

    fn held(&mut self) -> Fut<'_, Vec<String>> {
        Box::pin(async move {
            let names: Vec<Name> = self.rows(sql::HELD, &[]).await?;
            Ok(names.into_iter().map(|n| n.0).collect())
        })
    }

    fn accounts(&mut self) -> Fut<'_, Vec<AccountRow>> {
        Box::pin(self.rows(sql::ACCOUNTS, &[]))
    }

    fn account(&mut self, name: String) -> Fut<'_, Option<AccountRows>> {
        Box::pin(async move {
            let found: Option<AccountRow> = self.rows(sql::ACCOUNT, &[&name]).await?.pop();
            let Some(account) = found else {
                return Ok(None);
            };
            let id = &account.id;
            let out_of_band: Vec<Name> = self.rows(sql::OUT_OF_BAND, &[id]).await?;
            let properties: Option<KnownProperties> =
                self.rows(sql::PROPERTIES, &[id]).await?.pop();
            Ok(Some(AccountRows {
                properties: properties.unwrap_or_default(),
                failed: self.rows(sql::FAILED, &[id]).await?,
                drift: self.rows(sql::DRIFT, &[id]).await?,
                intents: self.rows(sql::INTENTS, &[id]).await?,
                out_of_band: out_of_band.into_iter().map(|n| n.0).collect(),
                account,
            }))
        })
    }

    fn properties(&mut self, account: i64) -> Fut<'_, KnownProperties> {
        Box::pin(async move {
            let found: Option<KnownProperties> =
                self.rows(sql::PROPERTIES, &[&account]).await?.pop();
            Ok(found.unwrap_or_default())
        })
    }

    fn confirmed(&mut self, account: i64, out: Chunks) -> Fut<'_, ()> {
        Box::pin(self.confirmed_chunks(account, out))
    }

    fn confirmed_rows(&mut self, account: i64) -> Fut<'_, Vec<ConfirmedRow>> {
        Box::pin(async move { self.rows(sql::CONFIRMED_ROWS, &[&account]).await })
    }

    fn overviews(&mut self) -> Fut<'_, Vec<AccountOverview>> {
        Box::pin(self.rows(sql::OVERVIEWS, &[]))
    }

    fn runs(&mut self, limit: Option<u64>) -> Fut<'_, Vec<RunRow>> {
        Box::pin(async move {
            match limit {
                Some(limit) => {
                    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                    self.rows(sql::RUNS, &[&limit]).await
                }
                None => self.rows(sql::RUNS_ALL, &[]).await,
            }
        })
    }

    fn end(self: Box<Self>) -> Fut<'c, ()> {
        // A read changes nothing; a write that is ended instead of committed leaves nothing.
        match self.epoch {
            Some(_) => self.rollback(),
            None => Box::pin(async move { self.session.within(self.tx.commit()).await }),
        }
    }
}

impl<'c> WriteTx<'c> for PgTx<'c> {
    fn account_id(&mut self, name: String, now: i64) -> Fut<'_, i64> {
        Box::pin(async move {
            let statement = self.statement(sql::ACCOUNT_ID, &[]).await?;
            let row = self
                .session
                .within(self.tx.query_one(&statement, &[&name, &now]))
                .await?;
            row.try_get(0).map_err(|e| self.session.error(e))
        })
    }

    fn apply(&mut self, run: i64, now: i64, steps: Vec<Step>) -> Fut<'_, ()> {
        Box::pin(async move {
            for step in steps {
                self.step(run, now, step).await?;
            }
            Ok(())
        })
    }

    fn begin_run(&mut self, run: NewRun) -> Fut<'_, i64> {
        Box::pin(async move {
            let statement = self.statement(sql::RUN_BEGIN, &[]).await?;
            let params: [&(dyn ToSql + Sync); 5] = [
                &run.command,
                &run.started_at,
                &run.revision,
                &run.pid,
                &run.version,
            ];
            let row = self
                .session
                .within(self.tx.query_one(&statement, &params))
                .await?;
            row.try_get(0).map_err(|e| self.session.error(e))
        })
    }

    fn finish_run(
        &mut self,
        run: i64,
        now: i64,
        result: RunOutcome,
        summary: String,
    ) -> Fut<'_, ()> {
        Box::pin(async move {
            let result = result.as_str();
            self.execute(sql::RUN_FINISH, &[&run, &now, &result, &summary])
                .await
                .map(drop)
        })
    }

    fn refresh_step<'a>(&'a mut self, step: RefreshStep, end: &'a RefreshEnd) -> Fut<'a, u64> {
        Box::pin(async move {
            let params: [&(dyn ToSql + Sync); 5] = [
                &end.account,
                &end.official_account,
                &end.now,
                &end.run,
                &end.max_subscribers,
            ];
            let text = sql::refresh(step);
            if step != RefreshStep::Seen {
                return self.execute_typed(text, REFRESH_TYPES, &params).await;
            }
            let statement = self.statement(text, REFRESH_TYPES).await?;
            let row = self
                .session
                .within(self.tx.query_one(&statement, &params))
                .await?;
            let seen: i64 = row.try_get(0).map_err(|e| self.session.error(e))?;
            Ok(u64::try_from(seen).unwrap_or(0))
        })
    }

    fn is_empty(&mut self) -> Fut<'_, bool> {
        Box::pin(async move {
            let accounts = self.accounts().await?;
            let runs = self.runs(Some(1)).await?;
            Ok(accounts.is_empty() && runs.is_empty())
        })
    }

    fn insert_runs(&mut self, runs: Vec<RunRow>) -> Fut<'_, ()> {
        Box::pin(async move {
            for r in runs {
                let result = r.result.map(|o| o.as_str());
                self.execute(
                    sql::RUN_INSERT,
                    &[
                        &r.id,
                        &r.command,
                        &r.started_at,
                        &r.finished_at,
                        &r.revision,
                        &result,
                        &r.summary,
                        &r.pid,
                        &r.version,
                    ],
                )
                .await?;
            }
            Ok(())
        })
    }

    fn insert_account(&mut self, dump: AccountDump) -> Fut<'_, ()> {
        Box::pin(async move {
            let a = &dump.rows.account;
            let f = &a.facts;
            let count = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
            let (max, num) = (count(f.max_subscribers), count(f.subscriber_num));
            let statement = self.statement(sql::ACCOUNT_INSERT, &[]).await?;
            let params: [&(dyn ToSql + Sync); 9] = [
                &a.official_account,
                &a.updated_at,
                &max,
                &num,
                &f.limit_reached_at,
                &f.missing_since,
                &f.invalid_since,
                &f.counted_at,
                &a.refreshed_at,
            ];
            let row = self
                .session
                .within(self.tx.query_one(&statement, &params))
                .await?;
            let id: i64 = row.try_get(0).map_err(|e| self.session.error(e))?;
            if let Some(put) = crate::ledger::properties::copied(id, &dump.rows.properties) {
                self.step(0, 0, put).await?;
            }
            // In slices, so that one statement never carries an unbounded list.
            for rows in dump.confirmed.chunks(50_000) {
                let subs: Vec<&str> = rows.iter().map(|c| c.subscriber.as_str()).collect();
                let at: Vec<i64> = rows.iter().map(|c| c.confirmed_at).collect();
                let runs: Vec<i64> = rows.iter().map(|c| c.run_id).collect();
                let already: Vec<bool> = rows.iter().map(|c| c.already).collect();
                let observed: Vec<bool> = rows.iter().map(|c| c.observed).collect();
                let managed: Vec<bool> = rows.iter().map(|c| c.managed).collect();
                self.execute(
                    sql::CONFIRMED_INSERT,
                    &[&id, &subs, &at, &runs, &already, &observed, &managed],
                )
                .await?;
            }
            for r in &dump.rows.failed {
                let (attempts, op) = (i64::from(r.attempts), r.op.as_str());
                self.execute(
                    sql::FAILED_INSERT,
                    &[
                        &id,
                        &r.subscriber,
                        &r.code,
                        &attempts,
                        &r.first_at,
                        &r.last_at,
                        &r.run_id,
                        &op,
                    ],
                )
                .await?;
            }
            for d in &dump.rows.drift {
                let direction = d.direction.as_str();
                self.execute(
                    sql::DRIFT_INSERT,
                    &[&id, &direction, &d.subscriber, &d.observed_at],
                )
                .await?;
            }
            for i in &dump.rows.intents {
                let op = i.op.as_str();
                self.execute(sql::INTENT_INSERT, &[&id, &i.subscriber, &op, &i.run_id])
                    .await?;
            }
            Ok(())
        })
    }

    fn set_identity(&mut self, identity: Identity) -> Fut<'_, ()> {
        Box::pin(async move {
            for (key, value) in [
                ("lineage", identity.lineage.clone()),
                ("serial", identity.serial.to_string()),
                ("created_at", identity.created_at.to_string()),
            ] {
                self.execute(sql::META_SET, &[&key, &value]).await?;
            }
            Ok(())
        })
    }

    fn commit(self: Box<Self>) -> Fut<'c, ()> {
        Box::pin(async move {
            let PgTx {
                tx,
                session,
                epoch,
                written,
                writing,
                ..
            } = *self;
            if let Some(epoch) = epoch {
                let bumped = session
                    .within(tx.execute(lock::BUMP_FENCED, &[&epoch]))
                    .await?;
                if bumped != 1 {
                    return Err(LedgerError::LockLost {
                        at: session.at.clone(),
                        loss: LockLoss::Fenced,
                    });
                }
            }
            session.within(tx.commit()).await?;
            *written += writing;
            Ok(())
        })
    }

    fn rollback(self: Box<Self>) -> Fut<'c, ()> {
        Box::pin(async move { self.session.within(self.tx.rollback()).await })
    }
}
