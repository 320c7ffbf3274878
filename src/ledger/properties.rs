//! The account's own properties in the ledger (`account_properties`, schema version 4): what
//! they mean, for every backend. They are read with an account's rows and for `status`,
//! written from the probe, a refresh and the executor's create and modify calls, copied by
//! `ledger copy`. Each set of fields is stored as one JSON object, so a field added later needs
//! no migration; each backend spells the statements in its own SQL.

use std::collections::HashMap;

use super::changes::{Statement, Step};
use super::rows::{Decode, Row};
use super::{KnownProperties, LedgerError, PropertyRecord};
use crate::properties::Properties;

/// A set of fields as stored.
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

/// An `account_properties` row (columns `live`, `owner`, `learnt_at`, `declared`, `kept`).
impl Decode for KnownProperties {
    fn decode(r: &impl Row) -> Result<Self, LedgerError> {
        Ok(KnownProperties {
            live: parse(&r.text("live")?),
            owner: r.opt_text("owner")?,
            learnt_at: r.opt_int("learnt_at")?,
            declared: parse(&r.text("declared")?),
            kept: parse(&r.text("kept")?),
        })
    }
}

/// The same columns from an outer join: `None` when the account has no row.
pub(crate) fn joined(r: &impl Row) -> Result<Option<KnownProperties>, LedgerError> {
    match r.opt_text("live")? {
        None => Ok(None),
        Some(_) => KnownProperties::decode(r).map(Some),
    }
}

/// An account's properties as a step binds them (every set of fields as its JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StoredProperties {
    pub(crate) live: String,
    pub(crate) owner: Option<String>,
    pub(crate) learnt_at: Option<i64>,
    pub(crate) declared: String,
    pub(crate) kept: String,
}

impl From<&KnownProperties> for StoredProperties {
    fn from(known: &KnownProperties) -> StoredProperties {
        StoredProperties {
            live: json(&known.live),
            owner: known.owner.clone(),
            learnt_at: known.learnt_at,
            declared: json(&known.declared),
            kept: json(&known.kept),
        }
    }
}

/// What a probe, a refresh or a create or modify call learnt at `now`, over what was `known`:
/// `live` merged over it (a field the service left out keeps the value last known, as
/// MaxSubscriberNum must), the owner when said, and the declaration and what of it is in force
/// when given.
pub(crate) fn merged(known: KnownProperties, learnt: &PropertyRecord, now: i64) -> KnownProperties {
    let live = &learnt.live;
    let said = !live.is_empty() || learnt.owner.is_some();
    KnownProperties {
        live: known.live.merged(live),
        owner: learnt.owner.clone().or(known.owner),
        learnt_at: if said { Some(now) } else { known.learnt_at },
        declared: learnt.declared.clone().unwrap_or(known.declared),
        kept: learnt.kept.clone().unwrap_or(known.kept),
    }
}

/// The steps that record `learnt` for `account`, given what is known (`known`, which they
/// update: a later record of the same account merges over this one): the properties stored,
/// and a MaxSubscriberNum subsync learnt or set made the account's limit.
pub(crate) fn steps(
    account: i64,
    learnt: &PropertyRecord,
    known: &mut HashMap<i64, KnownProperties>,
    now: i64,
) -> Vec<Step> {
    let next = merged(known.remove(&account).unwrap_or_default(), learnt, now);
    let mut out = vec![Step {
        properties: Some(Box::new(StoredProperties::from(&next))),
        ..Step::new(Statement::PutProperties, account)
    }];
    if let Some(max) = learnt.live.max_subscribers {
        out.push(Step {
            max: Some(i64::try_from(max).unwrap_or(i64::MAX)),
            ..Step::new(Statement::SetMax, account)
        });
    }
    known.insert(account, next);
    out
}

/// The step that stores a copied account's properties as they are (`ledger copy`), when it
/// has any.
pub(crate) fn copied(account: i64, known: &KnownProperties) -> Option<Step> {
    (*known != KnownProperties::default()).then(|| Step {
        properties: Some(Box::new(StoredProperties::from(known))),
        ..Step::new(Statement::PutProperties, account)
    })
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

    #[test]
    fn what_is_learnt_merges_and_a_declaration_replaces() {
        let live = Properties {
            name: Some("Old".into()),
            max_subscribers: Some(50),
            ..Default::default()
        };
        let known = KnownProperties {
            live,
            ..Default::default()
        };
        let learnt = PropertyRecord {
            account: "@TOA#_a".into(),
            live: Properties {
                name: Some("New".into()),
                ..Default::default()
            },
            owner: None,
            declared: Some(Properties::default()),
            kept: None,
        };
        let next = merged(known, &learnt, 7);
        assert_eq!(next.live.name.as_deref(), Some("New"));
        assert_eq!(next.live.max_subscribers, Some(50));
        assert_eq!(next.learnt_at, Some(7));
    }
}
