//! An account's own call in a run: create_official_account for a missing account whose
//! manifest (and deployment) allow it, or one modify_official_account_base_info with exactly
//! the declared fields that differ from what the probe just learnt. Decided here, purely, from
//! the outline and the probe; carried out by the executor (create before anything else;
//! modify after the account's removals and before its adds, so that a raised limit lets the
//! adds in and a lowered one is set only once the removals made room).

use serde::{Deserialize, Serialize};

use super::outline::Outlined;
use super::probe::Info;
use super::work::Known;
use crate::ledger::{PropertyRecord, Record};
use crate::plan::properties::{self as planned, Held};
use crate::plan::{Creation, PropertyChange};
use crate::properties::Properties;
use crate::tencent::api::CreateOfficialAccountRequest;

/// What one account's own call is to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OwnWork {
    /// The account is missing: create it first (with `create.owner`), unless refused.
    pub(crate) create: Option<Creation>,
    /// Every declared field that differs (or, for a creation, every declared field); the
    /// refused ones are reported, never sent.
    pub(crate) changes: Vec<PropertyChange>,
    /// The declaration, the live values as the run found them, and the declared values known
    /// to be in force before the run.
    pub(crate) declared: Properties,
    pub(crate) live: Properties,
    pub(crate) kept: Properties,
}

/// What became of an account's own call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OwnResult {
    /// Made: the account was created, or its fields set.
    Done,
    /// The service refused it, or retries were spent; `code` says why.
    Failed,
    /// Not sent: the run stopped first, or everything in it was refused.
    NotSent,
}

impl OwnWork {
    /// The call to make, if any.
    pub(crate) fn call(&self, account: &str) -> Option<OwnCall> {
        if let Some(create) = self.create.as_ref().filter(|c| c.refused.is_none()) {
            return Some(OwnCall::Create(CreateOfficialAccountRequest {
                owner_account: create.owner.clone(),
                official_account_user_id: Some(account.to_owned()),
                fields: (&self.declared).into(),
            }));
        }
        let send = self.sendable();
        (!send.is_empty()).then_some(OwnCall::Modify(send))
    }

    /// The fields a modify sends: those that differ and are not refused.
    pub(crate) fn sendable(&self) -> Properties {
        let mut send = Properties::default();
        for c in self.changes.iter().filter(|c| c.refused.is_none()) {
            send.set(c.field, Some(c.to.clone()));
        }
        send
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.create.is_none() && self.changes.is_empty()
    }

    /// The ledger's record once the call succeeded: the fields it set are live and in force.
    pub(crate) fn done(&self, account: &str, call: &OwnCall) -> Vec<Record> {
        let (live, owner) = match call {
            OwnCall::Create(request) => {
                (self.declared.clone(), Some(request.owner_account.clone()))
            }
            OwnCall::Modify(sent) => (sent.clone(), None),
        };
        // In force now: what was live already and what the call set.
        let now = self.live.merged(&live);
        vec![Record::Properties(Box::new(PropertyRecord {
            account: account.to_owned(),
            kept: Some(planned::in_force(&self.declared, &now, &self.kept)),
            live,
            owner,
            declared: None,
        }))]
    }
}

/// An account's own call, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OwnCall {
    Create(CreateOfficialAccountRequest),
    /// The fields to set.
    Modify(Properties),
}

impl OwnCall {
    /// The new limit this call sets, if it sets one.
    pub(crate) fn max_subscribers(&self) -> Option<u64> {
        match self {
            OwnCall::Create(r) => r.fields.max_subscriber_num,
            OwnCall::Modify(p) => p.max_subscribers,
        }
    }
}

/// What the run does about `account`'s own properties, now that the probe said what it is
/// (`info`: nothing when the probe did not answer for it), with `removes` planned.
pub(super) fn work(account: &Outlined, info: Option<&Info>) -> OwnWork {
    let mut own = OwnWork {
        declared: account.declared.clone(),
        kept: account.kept.clone(),
        ..OwnWork::default()
    };
    match info.map(|i| i.known) {
        Some(Known::Missing) => {
            let options = crate::plan::PlanOptions {
                allow_create: account.may_create,
                ..Default::default()
            };
            let (create, changes, _) =
                planned::missing(account.create.as_deref(), &account.declared, &options);
            (own.create, own.changes) = (create, changes);
        }
        Some(Known::Invalid) => {}
        // Usable or full; or not described (the probe failed for it): then what the ledger
        // knew, as the plan did.
        Some(Known::Usable | Known::Full) | None => {
            let described = info.map(|i| i.properties.clone()).unwrap_or_default();
            own.live = account.live.merged(&described);
            let held = Held {
                now: info.and_then(|i| i.num).unwrap_or(0).max(account.confirmed),
                removed: account.remove,
            };
            own.changes = planned::diff(&account.declared, &own.live, &account.kept, held);
        }
    }
    own
}

/// What the probe says about an account once its own call is made: a created account is
/// usable, and so is a full one whose limit the call raises above its count.
pub(super) fn known_after(known: Known, own: &OwnWork, account: &str, num: Option<u64>) -> Known {
    match (known, own.call(account)) {
        (Known::Missing, Some(OwnCall::Create(_))) => Known::Usable,
        (Known::Full, Some(call)) => match (call.max_subscribers(), num) {
            (Some(max), Some(num)) if max > num => Known::Usable,
            _ => known,
        },
        _ => known,
    }
}

/// The ledger's record of a declared account the probe described: the declaration now, and
/// which of it is in force.
pub(super) fn declared_record(account: &Outlined, info: &Info) -> Record {
    let live = account.live.merged(&info.properties);
    Record::Properties(Box::new(PropertyRecord {
        account: account.official_account.clone(),
        live: Properties::default(),
        owner: None,
        declared: Some(account.declared.clone()),
        kept: Some(planned::in_force(&account.declared, &live, &account.kept)),
    }))
}

#[cfg(test)]
mod tests;
