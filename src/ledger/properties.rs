//! The account's own properties in the ledger (`account_properties`, schema version 4): read
//! with an account's view and for `status`, written from the probe, a refresh and the
//! executor's create and modify calls, copied by `ledger copy`. Kept apart from the rest of the
//! ledger's meaning: each set of fields is one JSON object, so a field added later needs no
//! migration.

use super::backend::{Param, Tx};
use super::{KnownProperties, LedgerError, PropertyRecord};
use crate::properties::Properties;

/// `$1` account id. Columns: live, owner, learnt_at, declared, kept.
const OF: &str =
    "SELECT live, owner, learnt_at, declared, kept FROM account_properties WHERE account_id = $1";
/// Every account's, by name. Columns: official account, then as [`OF`].
const ALL: &str = "SELECT a.official_account, p.live, p.owner, p.learnt_at, p.declared, p.kept
    FROM account_properties p JOIN accounts a ON a.id = p.account_id ORDER BY a.official_account";
/// `$1` account id, `$2` live, `$3` owner, `$4` learnt_at, `$5` declared, `$6` kept.
const PUT: &str =
    "INSERT INTO account_properties (account_id, live, owner, learnt_at, declared, kept)
    VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_id) DO UPDATE
    SET live = $2, owner = $3, learnt_at = $4, declared = $5, kept = $6";
/// A MaxSubscriberNum subsync set is the account's limit from now on: `$1` account id, `$2`
/// the limit.
const SET_MAX: &str = "UPDATE accounts SET max_subscribers = $2 WHERE id = $1";

fn parse(text: &str) -> Properties {
    // Written by this module only; a row a newer subsync wrote with fields this one does not
    // know reads as what it can understand, never as an error that blocks every plan.
    serde_json::from_str(text)
        .or_else(|_| {
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text).map(|m| {
                m.into_iter()
                    .filter_map(|(k, v)| {
                        let one = serde_json::json!({ k: v });
                        serde_json::from_value::<Properties>(one).ok()
                    })
                    .fold(Properties::default(), |all, p| all.merged(&p))
            })
        })
        .unwrap_or_default()
}

fn json(p: &Properties) -> String {
    serde_json::to_string(p).unwrap_or_else(|_| "{}".into())
}

fn row(r: &dyn super::backend::Row, first: usize) -> Result<KnownProperties, LedgerError> {
    Ok(KnownProperties {
        live: parse(&r.text(first)?),
        owner: r.opt_text(first + 1)?,
        learnt_at: r.opt_int(first + 2)?,
        declared: parse(&r.text(first + 3)?),
        kept: parse(&r.text(first + 4)?),
    })
}

/// What the ledger knows of account `id`'s properties (nothing yet reads as empty).
pub fn of(tx: &mut dyn Tx, id: i64) -> Result<KnownProperties, LedgerError> {
    let mut found = KnownProperties::default();
    tx.query(OF, &[Param::Int(id)], &mut |r| {
        found = row(r, 0)?;
        Ok(())
    })?;
    Ok(found)
}

/// Every account's, by official account, sorted.
pub fn all(tx: &mut dyn Tx) -> Result<Vec<(String, KnownProperties)>, LedgerError> {
    let mut out = Vec::new();
    tx.query(ALL, &[], &mut |r| {
        out.push((r.text(0)?, row(r, 1)?));
        Ok(())
    })?;
    Ok(out)
}

/// Stores `known` for account `id` as it is (`ledger copy`).
pub fn put(tx: &mut dyn Tx, id: i64, known: &KnownProperties) -> Result<(), LedgerError> {
    let (live, declared, kept) = (json(&known.live), json(&known.declared), json(&known.kept));
    tx.execute(
        PUT,
        &[
            Param::Int(id),
            Param::Text(&live),
            Param::OptText(known.owner.as_deref()),
            Param::OptInt(known.learnt_at),
            Param::Text(&declared),
            Param::Text(&kept),
        ],
    )?;
    Ok(())
}

/// Records what a probe, a refresh or a create or modify call learnt about account `id` at
/// `now`: `live` merged over what was known (a field the service left out keeps the value
/// last known, as MaxSubscriberNum must), the owner when said, and the declaration and what of
/// it is in force when given.
pub fn record(
    tx: &mut dyn Tx,
    id: i64,
    now: i64,
    learnt: &PropertyRecord,
) -> Result<(), LedgerError> {
    let known = of(tx, id)?;
    let live = &learnt.live;
    let said = !live.is_empty() || learnt.owner.is_some();
    let next = KnownProperties {
        live: known.live.merged(live),
        owner: learnt.owner.clone().or(known.owner),
        learnt_at: if said { Some(now) } else { known.learnt_at },
        declared: learnt.declared.clone().unwrap_or(known.declared),
        kept: learnt.kept.clone().unwrap_or(known.kept),
    };
    put(tx, id, &next)?;
    if let Some(max) = live.max_subscribers {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        tx.execute(SET_MAX, &[Param::Int(id), Param::Int(max)])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_a_newer_subsync_read_as_far_as_they_are_understood() {
        let p = parse(r#"{"name":"N","mascot":"cat","maxSubscribers":9}"#);
        assert_eq!(p.name.as_deref(), Some("N"));
        assert_eq!(p.max_subscribers, Some(9));
        assert_eq!(parse("not json"), Properties::default());
    }
}
