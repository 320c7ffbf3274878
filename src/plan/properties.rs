//! The account's own properties in a plan (`spec.account`, `spec.create`): a pure function of
//! the declaration, what is known live, what subsync last knew to be in force, and the
//! account's count.
//!
//! Invariants: only declared fields appear; a change is `drift` exactly when the live value
//! differs from a declared value subsync had in force (someone changed it elsewhere); a limit
//! below what the account holds after this run's removals is refused, never sent; a missing
//! account is created only when the manifest says `spec.create` and the deployment allows it.
//! The executor calls [`diff`] again with what its probe learnt, so that what it sends is
//! exactly what differs then.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::PlanOptions;
use crate::ledger::AccountView;
use crate::manifest::SubscriberSet;
use crate::properties::{Field, Properties, Value};
use crate::quote::quote;

/// One declared field whose live value differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct PropertyChange {
    pub field: Field,
    /// The live value as last learnt; null when it is not known (never learnt, or the
    /// account is to be created).
    pub from: Option<Value>,
    /// The declared value apply sets.
    pub to: Value,
    /// The live value differs from a declared value subsync had in force: it was changed
    /// outside subsync (the console), and apply sets it back.
    #[serde(default)]
    pub drift: bool,
    /// Why apply will not make this change, when it will not (the run then ends short).
    #[serde(default)]
    pub refused: Option<String>,
}

/// The account does not exist and apply creates it (create_official_account) with its
/// declared properties, or would if it were allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Creation {
    /// Owner_Account of the new account (`spec.create.owner`).
    pub owner: String,
    /// Why apply will not create it, when it will not (`--allow-create` not given).
    #[serde(default)]
    pub refused: Option<String>,
}

/// How many subscribers an account holds, for a lowered limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Held {
    /// What it holds now, as far as is known.
    pub now: u64,
    /// What this run removes before the limit is set.
    pub removed: u64,
}

/// The flag that allows creation, as the hints name it.
pub(crate) const ALLOW_CREATE: &str = "--allow-create (SUBSYNC_ALLOW_CREATE)";

/// The declared fields whose live value differs, in [`Field::ALL`]'s order.
pub(crate) fn diff(
    declared: &Properties,
    live: &Properties,
    kept: &Properties,
    held: Held,
) -> Vec<PropertyChange> {
    declared
        .fields()
        .filter_map(|(field, to)| {
            let from = live.get(field);
            if from.as_ref() == Some(&to) {
                return None;
            }
            let drift = from.is_some() && kept.get(field).as_ref() == Some(&to);
            let refused = match (&to, field) {
                (Value::Number(max), Field::MaxSubscribers) => lowered_below(*max, held),
                _ => None,
            };
            Some(PropertyChange {
                field,
                from,
                to,
                drift,
                refused,
            })
        })
        .collect()
}

/// The declared values known to be in force: those `live` holds, and those `kept` already
/// knew (a field changed outside subsync stays kept, so that it reads as drift until it is
/// set back).
pub(crate) fn in_force(declared: &Properties, live: &Properties, kept: &Properties) -> Properties {
    let mut out = Properties::default();
    for (field, value) in declared.fields() {
        let known = Some(&value);
        if live.get(field).as_ref() == known || kept.get(field).as_ref() == known {
            out.set(field, Some(value));
        }
    }
    out
}

/// Why a limit of `max` cannot be set on an account that holds `held`, if it cannot.
fn lowered_below(max: u64, held: Held) -> Option<String> {
    let after = held.now.saturating_sub(held.removed);
    if max >= after {
        return None;
    }
    let removals = if held.removed > 0 {
        format!(" ({after} after this run's {} removals)", held.removed)
    } else {
        String::new()
    };
    Some(format!(
        "maxSubscribers {max} is below the {} subscribers the account holds{removals}; remove subscribers first (prune), then lower the limit; it is not changed",
        held.now
    ))
}

/// The account's own part of its plan: what to create, what to change, what to warn about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OwnPlan {
    pub create: Option<Creation>,
    pub changes: Vec<PropertyChange>,
    pub warnings: Vec<String>,
}

/// Plans the declared properties of `set`'s account against what the ledger knows of it.
pub(crate) fn plan(
    set: &SubscriberSet,
    ledger: &AccountView,
    held: Held,
    options: &PlanOptions,
) -> OwnPlan {
    let mut planned = OwnPlan::default();
    let known = &ledger.properties;
    if let (Some(wanted), Some(owner)) = (&set.create, &known.owner)
        && wanted != owner
    {
        planned.warnings.push(format!(
            "spec.create.owner {} differs from the account's owner {}; an owner cannot change, and spec.create only matters while the account does not exist",
            quote(wanted),
            quote(owner)
        ));
    }
    if ledger.facts.missing_since.is_none() {
        planned.changes = diff(&set.account, &known.live, &known.kept, held);
        return planned;
    }
    let (create, changes, warning) = missing(set.create.as_deref(), &set.account, options);
    planned.create = create;
    planned.changes = changes;
    planned.warnings.extend(warning);
    planned
}

/// What a missing account gets: nothing to modify, so it is created with every declared
/// field (when `spec.create` names an owner and the deployment allows it), or none of its
/// declared fields can be set; and the warning that says why not.
pub(crate) fn missing(
    owner: Option<&str>,
    declared: &Properties,
    options: &PlanOptions,
) -> (Option<Creation>, Vec<PropertyChange>, Option<String>) {
    let create = owner.map(|owner| Creation {
        owner: owner.to_owned(),
        refused: (!options.allow_create).then(|| {
            format!(
                "the account does not exist and the manifest declares spec.create; pass {ALLOW_CREATE} to create it"
            )
        }),
    });
    let why = match &create {
        Some(c) => c.refused.clone(),
        None => Some(
            "the account does not exist; to create it, declare spec.create.owner and pass --allow-create, or fix officialAccount".to_owned(),
        ),
    };
    let changes = declared
        .fields()
        .map(|(field, to)| PropertyChange {
            field,
            from: None,
            to,
            drift: false,
            refused: why
                .as_ref()
                .map(|_| "the account does not exist".to_owned()),
        })
        .collect();
    (create, changes, why)
}

/// The limit the plan counts with: the declared one, unless setting it is refused; else the
/// last one the service said (or subsync set).
pub(crate) fn effective_max(
    set: &SubscriberSet,
    ledger: &AccountView,
    changes: &[PropertyChange],
) -> Option<u64> {
    let refused = changes
        .iter()
        .any(|c| c.field == Field::MaxSubscribers && c.refused.is_some());
    match set.account.max_subscribers {
        Some(max) if !refused => Some(max),
        _ => ledger
            .facts
            .max_subscribers
            .or(ledger.properties.live.max_subscribers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::KnownProperties;

    fn props(name: Option<&str>, max: Option<u64>) -> Properties {
        Properties {
            name: name.map(str::to_owned),
            max_subscribers: max,
            ..Properties::default()
        }
    }

    #[test]
    fn only_declared_fields_that_differ_are_changes() {
        let declared = props(Some("New"), None);
        let live = Properties {
            introduction: Some("not declared, never reported".into()),
            ..props(Some("Old"), Some(50))
        };
        let changes = diff(&declared, &live, &Properties::default(), Held::default());
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].field, Field::Name);
        assert_eq!(changes[0].from, Some(Value::Text("Old".into())));
        assert!(!changes[0].drift);
        assert!(
            diff(
                &declared,
                &props(Some("New"), None),
                &declared,
                Held::default()
            )
            .is_empty()
        );
    }

    #[test]
    fn a_live_value_that_left_a_kept_one_is_drift() {
        let declared = props(Some("Weekly"), None);
        let console = props(Some("Console edit"), None);
        let changes = diff(&declared, &console, &declared, Held::default());
        assert!(changes[0].drift);
        // A new declaration is a change, not drift; an unknown live value is neither.
        assert!(
            !diff(
                &props(Some("Renamed"), None),
                &console,
                &declared,
                Held::default()
            )[0]
            .drift
        );
        assert!(
            !diff(
                &declared,
                &Properties::default(),
                &declared,
                Held::default()
            )[0]
            .drift
        );
    }

    #[test]
    fn a_limit_below_what_the_account_holds_after_removals_is_refused_with_the_numbers() {
        let live = props(None, Some(100));
        let lower = |max, now, removed| {
            diff(
                &props(None, Some(max)),
                &live,
                &Properties::default(),
                Held { now, removed },
            )
            .remove(0)
            .refused
        };
        assert_eq!(lower(60, 60, 0), None);
        assert_eq!(lower(50, 60, 10), None);
        let refused = lower(40, 60, 10).unwrap();
        assert!(
            refused.contains("maxSubscribers 40 is below the 60 subscribers the account holds (50 after this run's 10 removals); remove subscribers first"),
            "{refused}"
        );
        assert!(
            lower(59, 60, 0)
                .unwrap()
                .contains("below the 60 subscribers")
        );
    }

    fn missing_view() -> AccountView {
        let mut view = AccountView::default();
        view.facts.missing_since = Some(1);
        view
    }

    fn declaring(create: Option<&str>) -> SubscriberSet {
        SubscriberSet {
            official_account: "@TOA#_new".into(),
            account: props(Some("New"), Some(10)),
            create: create.map(str::to_owned),
            ..SubscriberSet::default()
        }
    }

    #[test]
    fn a_missing_account_is_created_only_when_the_manifest_and_the_flag_allow_it() {
        let allowed = PlanOptions {
            allow_create: true,
            ..PlanOptions::default()
        };
        let p = plan(
            &declaring(Some("admin")),
            &missing_view(),
            Held::default(),
            &allowed,
        );
        assert_eq!(
            p.create,
            Some(Creation {
                owner: "admin".into(),
                refused: None
            })
        );
        assert_eq!(p.changes.len(), 2);
        assert!(
            p.changes
                .iter()
                .all(|c| c.from.is_none() && c.refused.is_none())
        );
        let p = plan(
            &declaring(Some("admin")),
            &missing_view(),
            Held::default(),
            &PlanOptions::default(),
        );
        let refused = p.create.unwrap().refused.unwrap();
        assert!(
            refused.contains("--allow-create (SUBSYNC_ALLOW_CREATE)"),
            "{refused}"
        );
        assert!(p.warnings[0].contains("--allow-create"));
        let p = plan(&declaring(None), &missing_view(), Held::default(), &allowed);
        assert_eq!(p.create, None);
        assert!(p.changes.iter().all(|c| c.refused.is_some()));
    }

    #[test]
    fn an_owner_that_differs_from_the_live_one_is_a_warning_only() {
        let view = AccountView {
            properties: KnownProperties {
                owner: Some("someone".into()),
                live: props(Some("New"), Some(10)),
                ..KnownProperties::default()
            },
            ..AccountView::default()
        };
        let p = plan(
            &declaring(Some("admin")),
            &view,
            Held::default(),
            &PlanOptions::default(),
        );
        assert!(p.changes.is_empty() && p.create.is_none());
        assert!(p.warnings[0].contains("\"admin\" differs from the account's owner \"someone\""));
    }

    #[test]
    fn the_plan_counts_with_the_declared_limit_unless_it_is_refused() {
        let mut view = AccountView::default();
        view.facts.max_subscribers = Some(50);
        let set = declaring(None);
        assert_eq!(effective_max(&set, &view, &[]), Some(10));
        let refused = diff(
            &set.account,
            &props(Some("New"), Some(50)),
            &Properties::default(),
            Held {
                now: 30,
                removed: 0,
            },
        );
        assert_eq!(effective_max(&set, &view, &refused), Some(50));
        assert_eq!(
            effective_max(&SubscriberSet::default(), &view, &[]),
            Some(50)
        );
    }
}
