//! Writing a ledger, on any backend: the audit log, batch outcomes and account facts, the end
//! of a refresh, and filling an empty ledger with a copy. Each function runs inside the
//! caller's write transaction; [`Ids`] remembers account ids across transactions of one
//! writer and forgets them when a transaction fails.

use std::collections::HashMap;

use super::backend::{AccountDump, Meta, Param, RunRow, Tx};
use super::{LedgerError, Op, Record, Refreshed, sql};

/// Account ids looked up (or created) by this writer.
#[derive(Default)]
pub struct Ids(HashMap<String, i64>);

impl Ids {
    /// The id of `account`, creating the account's row when it has none.
    pub fn of(&mut self, tx: &mut dyn Tx, account: &str, now: i64) -> Result<i64, LedgerError> {
        if let Some(id) = self.0.get(account) {
            return Ok(*id);
        }
        tx.execute(
            sql::ACCOUNT_ENSURE,
            &[Param::Text(account), Param::Int(now)],
        )?;
        let mut id = None;
        tx.query(sql::ACCOUNT_ID, &[Param::Text(account)], &mut |r| {
            id = Some(r.int(0)?);
            Ok(())
        })?;
        let id = id.ok_or_else(|| LedgerError::Database {
            at: String::new(),
            detail: format!("the account row of {account} vanished while it was written"),
        })?;
        self.0.insert(account.to_owned(), id);
        Ok(id)
    }

    /// Ids created inside a transaction that rolled back no longer exist.
    pub fn forget(&mut self) {
        self.0.clear();
    }
}

/// Opens an audit-log entry; returns its id.
pub fn begin_run(
    tx: &mut dyn Tx,
    command: &str,
    revision: Option<&str>,
) -> Result<i64, LedgerError> {
    let pid = i64::from(std::process::id());
    let params = [
        Param::Text(command),
        Param::Int(crate::clock::unix_millis()),
        Param::OptText(revision),
        Param::Int(pid),
        Param::Text(env!("CARGO_PKG_VERSION")),
    ];
    let mut id = None;
    tx.query(sql::RUN_BEGIN, &params, &mut |r| {
        id = Some(r.int(0)?);
        Ok(())
    })?;
    id.ok_or_else(|| LedgerError::Database {
        at: String::new(),
        detail: "opening an audit-log entry returned no id".into(),
    })
}

/// Closes an audit-log entry with its result and summary.
pub fn finish_run(
    tx: &mut dyn Tx,
    run: i64,
    result: &str,
    summary: &serde_json::Value,
) -> Result<(), LedgerError> {
    let summary = summary.to_string();
    tx.execute(
        sql::RUN_FINISH,
        &[
            Param::Int(run),
            Param::Int(crate::clock::unix_millis()),
            Param::Text(result),
            Param::Text(&summary),
        ],
    )?;
    Ok(())
}

/// Records outcomes of `run`.
pub fn record(
    tx: &mut dyn Tx,
    ids: &mut Ids,
    run: i64,
    records: &[Record],
) -> Result<(), LedgerError> {
    let now = crate::clock::unix_millis();
    for record in records {
        match record {
            Record::Batch {
                account,
                op,
                done,
                unchanged,
                failed,
            } => {
                let id = ids.of(tx, account, now)?;
                // The outcome of every member is known now: none is in doubt any more.
                for list in [done, unchanged] {
                    if !list.is_empty() {
                        tx.clear_intents(id, list)?;
                    }
                }
                // A network fault (a negative code) leaves the outcome unknown: still in doubt.
                let settled: Vec<String> = failed
                    .iter()
                    .filter(|(_, code)| *code >= 0)
                    .map(|(s, _)| s.clone())
                    .collect();
                if !settled.is_empty() {
                    tx.clear_intents(id, &settled)?;
                }
                match op {
                    Op::Add => {
                        for (list, already) in [(done, false), (unchanged, true)] {
                            if !list.is_empty() {
                                tx.confirm(id, list, now, run, already)?;
                                tx.clear_failed(id, list)?;
                            }
                        }
                    }
                    Op::Remove => {
                        for list in [done, unchanged] {
                            if !list.is_empty() {
                                tx.unconfirm(id, list)?;
                                tx.clear_failed(id, list)?;
                            }
                        }
                    }
                }
                if !failed.is_empty() {
                    tx.fail(id, failed, *op, now, run)?;
                }
            }
            Record::Account { account, fact } => {
                let id = ids.of(tx, account, now)?;
                let (max, num) = sql::fact_counts(fact);
                tx.execute(
                    sql::fact(fact),
                    &[
                        Param::Int(id),
                        Param::Int(now),
                        Param::OptInt(max),
                        Param::OptInt(num),
                    ],
                )?;
            }
            Record::Adopt {
                account,
                subscribers,
            } => {
                let id = ids.of(tx, account, now)?;
                tx.manage(id, subscribers)?;
            }
            // An intent already recorded by an earlier run stays that run's: if this run
            // settles without sending it, it is still in doubt.
            Record::Intend {
                account,
                op,
                subscribers,
            } => {
                let id = ids.of(tx, account, now)?;
                tx.intend(id, subscribers, *op, run)?;
            }
            Record::Properties(p) => {
                let id = ids.of(tx, &p.account, now)?;
                super::properties::record(tx, id, now, p)?;
            }
            Record::Settle { in_doubt } => {
                tx.execute(sql::INTENTS_CLEAR_RUN, &[Param::Int(run)])?;
                for (account, op, subscribers) in in_doubt {
                    let id = ids.of(tx, account, now)?;
                    tx.intend(id, subscribers, *op, run)?;
                }
            }
        }
    }
    Ok(())
}

/// Makes the ledger match `account`'s staged live list: subscribers seen but unknown are
/// adopted as confirmed, confirmed ones not seen are dropped, both are kept as the account's
/// drift (unless an interrupted run of subsync's own intended them: those are recovered and
/// the intents cleared), failures the live list settled are cleared, and the staging area is
/// emptied. The
/// account's subscriber count becomes the count seen (never what an answer claimed). With
/// `adopt` (an `import`), subsync manages what it adopted from now on.
pub fn refresh_finish(
    tx: &mut dyn Tx,
    ids: &mut Ids,
    run: i64,
    account: &str,
    max_subscribers: Option<u64>,
    adopt: bool,
) -> Result<Refreshed, LedgerError> {
    let now = crate::clock::unix_millis();
    let id = ids.of(tx, account, now)?;
    let (id, name, at) = (Param::Int(id), Param::Text(account), Param::Int(now));
    let mut seen = 0;
    tx.query(sql::STAGE_COUNT, &[name], &mut |r| {
        seen = r.int(0)?;
        Ok(())
    })?;
    tx.execute(sql::REFRESH_DRIFT_CLEAR, &[id])?;
    // Drift is what changed without subsync: its own interrupted sends (still intended) are
    // recovered, not drift. What `import` finds is adopted on purpose: not drift either.
    let removed = tx.execute(sql::REFRESH_DRIFT_REMOVED, &[id, name, at])?;
    // Dropped first: then it scans only what was confirmed before, not what is adopted now.
    tx.execute(sql::REFRESH_DROP, &[id, name])?;
    let added = if adopt {
        tx.execute(sql::REFRESH_ADOPT_ALL, &[id, name, at, Param::Int(run)])?
    } else {
        let added = tx.execute(sql::REFRESH_DRIFT_ADDED, &[id, name, at])?;
        tx.execute(sql::REFRESH_ADOPT, &[id, at, Param::Int(run)])?;
        added
    };
    let mut in_doubt = false;
    tx.query(sql::INTENTS_ANY, &[id], &mut |_| {
        in_doubt = true;
        Ok(())
    })?;
    if in_doubt {
        tx.execute(sql::REFRESH_RECOVER, &[id, name, at, Param::Int(run)])?;
        tx.execute(sql::INTENTS_CLEAR_ACCOUNT, &[id])?;
    }
    tx.execute(sql::REFRESH_SETTLE, &[id, name])?;
    let count = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    tx.execute(
        sql::REFRESH_FACTS,
        &[
            id,
            at,
            Param::OptInt(Some(seen)),
            Param::OptInt(count(max_subscribers)),
        ],
    )?;
    tx.execute(sql::STAGE_CLEAR, &[name])?;
    Ok(Refreshed {
        seen: u64::try_from(seen).unwrap_or(0),
        added,
        removed,
    })
}

/// Refuses to copy into a ledger that already holds something.
pub fn check_empty(tx: &mut dyn Tx, at: &str) -> Result<(), LedgerError> {
    let mut existing = 0;
    tx.query(sql::ROWS_EXISTING, &[], &mut |r| {
        existing = r.int(0)?;
        Ok(())
    })?;
    if existing > 0 {
        return Err(LedgerError::NotEmpty { at: at.to_owned() });
    }
    Ok(())
}

/// Copies the audit log, row for row.
pub fn copy_runs(tx: &mut dyn Tx, runs: &[RunRow]) -> Result<(), LedgerError> {
    for row in runs {
        let r = &row.run;
        let summary = r.summary.as_ref().map(ToString::to_string);
        tx.execute(
            sql::RUN_INSERT,
            &[
                Param::Int(r.id),
                Param::Text(&r.command),
                Param::Int(r.started_at),
                Param::OptInt(r.finished_at),
                Param::OptText(r.revision.as_deref()),
                Param::OptText(r.result.as_deref()),
                Param::OptText(summary.as_deref()),
                Param::Int(r.pid),
                Param::Text(&row.version),
            ],
        )?;
    }
    Ok(())
}

/// Copies one account, row for row.
pub fn copy_account(tx: &mut dyn Tx, a: &AccountDump) -> Result<(), LedgerError> {
    let f = &a.facts;
    let count = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    let mut id = None;
    tx.query(
        sql::ACCOUNT_INSERT,
        &[
            Param::Text(&a.official_account),
            Param::Int(a.updated_at),
            Param::OptInt(count(f.max_subscribers)),
            Param::OptInt(count(f.subscriber_num)),
            Param::OptInt(f.limit_reached_at),
            Param::OptInt(f.missing_since),
            Param::OptInt(f.invalid_since),
            Param::OptInt(f.counted_at),
            Param::OptInt(a.refreshed_at),
        ],
        &mut |r| {
            id = Some(r.int(0)?);
            Ok(())
        },
    )?;
    let id = id.ok_or_else(|| LedgerError::Database {
        at: String::new(),
        detail: format!("copying {} returned no account id", a.official_account),
    })?;
    if a.properties != super::KnownProperties::default() {
        super::properties::put(tx, id, &a.properties)?;
    }
    // In slices, so that one statement never carries an unbounded list.
    for chunk in a.confirmed.chunks(50_000) {
        tx.copy_confirmed(id, chunk)?;
    }
    for r in &a.failed {
        tx.execute(
            sql::FAILED_INSERT,
            &[
                Param::Int(id),
                Param::Text(&r.subscriber),
                Param::Int(r.code),
                Param::Int(i64::from(r.attempts)),
                Param::Int(r.first_at),
                Param::Int(r.last_at),
                Param::Int(r.run_id),
                Param::Text(r.op.as_str()),
            ],
        )?;
    }
    for d in &a.drift {
        tx.execute(
            sql::DRIFT_INSERT,
            &[
                Param::Int(id),
                Param::Text(&d.direction),
                Param::Text(&d.subscriber),
                Param::Int(d.observed_at),
            ],
        )?;
    }
    for i in &a.intents {
        tx.execute(
            sql::INTENT_INSERT,
            &[
                Param::Int(id),
                Param::Text(&i.subscriber),
                Param::Text(i.op.as_str()),
                Param::Int(i.run_id),
            ],
        )?;
    }
    Ok(())
}

/// Takes over the copied ledger's identity: lineage, serial and creation time.
pub fn copy_meta(tx: &mut dyn Tx, meta: &Meta) -> Result<(), LedgerError> {
    for (key, value) in [
        ("lineage", meta.lineage.clone()),
        // The closing serial bump of this very write adds one: start one lower.
        ("serial", meta.serial.saturating_sub(1).to_string()),
        ("created_at", meta.created_at.to_string()),
    ] {
        tx.execute(sql::META_SET, &[Param::Text(key), Param::Text(&value)])?;
    }
    Ok(())
}
