//! Saved plans: `plan --out FILE` writes the JSON plan; `apply --plan FILE` executes it only if
//! neither the ledger nor the manifests changed since, so that what runs is what was reviewed.
//!
//! A saved plan is a claim, not an instruction: the file may have been edited between review
//! and apply. [`load_saved`] validates every id in it as a manifest's would be, and [`verify`]
//! recomputes the plan from the manifests and the ledger and accepts the saved one only when
//! the two are identical; apply then executes the recomputed plan.

use std::path::{Path, PathBuf};

use super::{FORMAT_VERSION, Plan};
use crate::manifest::{check_account_id, check_name, check_user_id};
use crate::quote::quote;

#[derive(Debug, thiserror::Error)]
pub enum StalePlan {
    #[error("cannot read the saved plan {path}: {detail}")]
    Unreadable { path: PathBuf, detail: String },
    #[error(
        "the saved plan {path} has format_version {found}; this subsync reads {FORMAT_VERSION:?}; make a new plan"
    )]
    Format { path: PathBuf, found: String },
    #[error(
        "the saved plan was made against another ledger (lineage {planned}, now {current}); make a new plan with this --state"
    )]
    Lineage { planned: String, current: String },
    #[error(
        "the ledger changed since the plan was made (serial {planned}, now {current}); run `subsync plan --out` again and review it"
    )]
    Serial { planned: u64, current: u64 },
    #[error(
        "the manifests changed since the plan was made ({planned}, now {current}); run `subsync plan --out` again and review it"
    )]
    Manifests { planned: String, current: String },
    #[error(
        "the saved plan {path} is not a valid plan: {detail}; make a new one with `subsync plan --out`"
    )]
    Invalid { path: PathBuf, detail: String },
    #[error(
        "the saved plan differs from what the manifests and the ledger call for ({detail}); it was edited or made by another subsync version; run `subsync plan --out` again and review it"
    )]
    Edited { detail: String },
}

/// Largest saved plan read: a plan of a million changes is about 30 MB of JSON.
const MAX_PLAN_BYTES: u64 = 256 << 20;

pub fn load_saved(path: &Path) -> Result<Plan, StalePlan> {
    let unreadable = |detail: String| StalePlan::Unreadable {
        path: path.to_owned(),
        detail,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| unreadable(e.to_string()))?
        .len();
    if size > MAX_PLAN_BYTES {
        return Err(unreadable(format!(
            "it is {size} bytes, more than a plan can be"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| unreadable(format!("not JSON: {e}")))?;
    let found = value
        .get("format_version")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned();
    if found != FORMAT_VERSION {
        return Err(StalePlan::Format {
            path: path.to_owned(),
            found: quote(&found),
        });
    }
    let plan: Plan = serde_json::from_value(value)
        .map_err(|e| unreadable(format!("not a subsync plan: {e}")))?;
    validate(&plan).map_err(|detail| StalePlan::Invalid {
        path: path.to_owned(),
        detail,
    })?;
    Ok(plan)
}

/// Every id in `plan` must pass the checks a manifest's would.
fn validate(plan: &Plan) -> Result<(), String> {
    let printable = |what: &str, s: &str, max: usize| {
        if s.is_empty() || s.len() > max || s.chars().any(|c| !(' '..='~').contains(&c)) {
            Err(format!(
                "{what} {} is not printable text of at most {max} bytes",
                quote(s)
            ))
        } else {
            Ok(())
        }
    };
    if let Some(lineage) = &plan.lineage {
        printable("lineage", lineage, 64)?;
    }
    printable("manifest_digest", &plan.manifest_digest, 80)?;
    for p in &plan.manifest_paths {
        printable("a manifest path", p, 4096)?;
    }
    for (i, a) in plan.accounts.iter().enumerate() {
        let at = |field: &str, e: String| format!("accounts[{i}].{field}: {e}");
        check_account_id(&a.official_account).map_err(|e| at("official_account", e))?;
        if let Some(name) = &a.name {
            check_name(name).map_err(|e| at("name", e))?;
        }
        let retried = a.retry.iter().map(|r| &r.subscriber);
        let drift = &a.drift;
        for (field, ids) in [
            ("add", &a.add),
            ("remove", &a.remove),
            ("unmanaged", &a.unmanaged),
            ("drift.out_of_band_added", &drift.out_of_band_added),
            ("drift.out_of_band_removed", &drift.out_of_band_removed),
        ] {
            for (j, id) in ids.iter().enumerate() {
                check_user_id(id).map_err(|e| at(&format!("{field}[{j}]"), e))?;
            }
        }
        for (j, id) in retried.enumerate() {
            check_user_id(id).map_err(|e| at(&format!("retry[{j}].subscriber"), e))?;
        }
    }
    Ok(())
}

/// Accepts `saved` only if it was made against this ledger and these manifests and says
/// exactly what `current`, the plan computed now, says.
pub fn verify(saved: &Plan, current: &Plan) -> Result<(), StalePlan> {
    check_fresh(
        saved,
        current.lineage.as_deref(),
        current.serial,
        &current.manifest_digest,
    )?;
    match first_difference(saved, current) {
        None => Ok(()),
        Some(detail) => Err(StalePlan::Edited { detail }),
    }
}

/// Where two plans for the same ledger and manifests part, in words.
fn first_difference(saved: &Plan, current: &Plan) -> Option<String> {
    for (i, now) in current.accounts.iter().enumerate() {
        let id = quote(&now.official_account);
        let Some(then) = saved.accounts.get(i) else {
            return Some(format!("account {id} is missing from the saved plan"));
        };
        if then.official_account != now.official_account {
            return Some(format!(
                "the saved plan has account {} where {id} belongs",
                quote(&then.official_account)
            ));
        }
        let fields: [(&str, bool); 16] = [
            ("name", then.name == now.name),
            ("desired", then.desired == now.desired),
            ("confirmed", then.confirmed == now.confirmed),
            ("prune", then.prune == now.prune),
            ("remove", then.remove == now.remove),
            ("add", then.add == now.add),
            ("unmanaged", then.unmanaged == now.unmanaged),
            ("retry", then.retry == now.retry),
            ("held_back", then.held_back == now.held_back),
            ("held", then.held == now.held),
            (
                "out_of_band_kept",
                then.out_of_band_kept == now.out_of_band_kept,
            ),
            ("over_limit", then.over_limit == now.over_limit),
            (
                "accept_shortfall",
                then.accept_shortfall == now.accept_shortfall,
            ),
            ("drift", then.drift == now.drift),
            ("refreshed_at", then.refreshed_at == now.refreshed_at),
            ("warnings", then.warnings == now.warnings),
        ];
        if let Some((field, _)) = fields.iter().find(|(_, same)| !same) {
            return Some(format!("account {id}: `{field}` differs"));
        }
    }
    if let Some(extra) = saved.accounts.get(current.accounts.len()) {
        return Some(format!(
            "the saved plan has an extra account {}",
            quote(&extra.official_account)
        ));
    }
    (saved.summary != current.summary).then(|| "the summary differs".to_owned())
}

/// Refuses a plan made against another ledger state or other manifests.
pub fn check_fresh(
    plan: &Plan,
    lineage: Option<&str>,
    serial: u64,
    manifest_digest: &str,
) -> Result<(), StalePlan> {
    match (plan.lineage.as_deref(), lineage) {
        (Some(planned), Some(current)) if planned != current => {
            return Err(StalePlan::Lineage {
                planned: planned.into(),
                current: current.into(),
            });
        }
        (Some(planned), None) => {
            return Err(StalePlan::Lineage {
                planned: planned.into(),
                current: "no ledger".into(),
            });
        }
        // Planned before the ledger existed: only a ledger nobody has written to yet matches.
        _ => {}
    }
    if plan.serial != serial {
        return Err(StalePlan::Serial {
            planned: plan.serial,
            current: serial,
        });
    }
    if plan.manifest_digest != manifest_digest {
        return Err(StalePlan::Manifests {
            planned: plan.manifest_digest.clone(),
            current: manifest_digest.into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PlanSummary;

    fn plan(lineage: Option<&str>, serial: u64) -> Plan {
        Plan {
            format_version: FORMAT_VERSION.into(),
            lineage: lineage.map(str::to_owned),
            serial,
            manifest_digest: "sha256:a".into(),
            manifest_paths: vec![],
            accounts: vec![],
            summary: PlanSummary::default(),
        }
    }

    #[test]
    fn a_plan_is_fresh_only_against_the_same_ledger_serial_and_manifests() {
        assert!(check_fresh(&plan(Some("l"), 3), Some("l"), 3, "sha256:a").is_ok());
        assert!(matches!(
            check_fresh(&plan(Some("l"), 3), Some("l"), 4, "sha256:a"),
            Err(StalePlan::Serial { .. })
        ));
        assert!(matches!(
            check_fresh(&plan(Some("l"), 3), Some("m"), 3, "sha256:a"),
            Err(StalePlan::Lineage { .. })
        ));
        assert!(matches!(
            check_fresh(&plan(Some("l"), 3), Some("l"), 3, "sha256:b"),
            Err(StalePlan::Manifests { .. })
        ));
        assert!(check_fresh(&plan(None, 0), Some("new"), 0, "sha256:a").is_ok());
        assert!(matches!(
            check_fresh(&plan(None, 0), Some("new"), 2, "sha256:a"),
            Err(StalePlan::Serial { .. })
        ));
    }

    fn account(id: &str, add: &[&str]) -> crate::plan::AccountPlan {
        crate::plan::AccountPlan {
            name: Some("a".into()),
            official_account: id.into(),
            desired: add.len() as u64,
            confirmed: 0,
            prune: false,
            add: add.iter().map(|s| s.to_string()).collect(),
            remove: vec![],
            unmanaged: vec![],
            retry: vec![],
            warnings: vec![],
            drift: Default::default(),
            refreshed_at: None,
            held_back: 0,
            held: vec![],
            out_of_band_kept: 0,
            over_limit: 0,
            accept_shortfall: false,
        }
    }

    #[test]
    fn a_saved_plan_must_say_exactly_what_the_current_one_says() {
        let mut current = plan(Some("l"), 3);
        current.accounts = vec![account("@TOA#_a", &["1", "2"])];
        assert!(verify(&current.clone(), &current).is_ok());
        let mut edited = current.clone();
        edited.accounts[0].add.push("3".into());
        let err = verify(&edited, &current).unwrap_err().to_string();
        assert!(err.contains("account \"@TOA#_a\": `add` differs"), "{err}");
        let mut swapped = current.clone();
        swapped.accounts[0].official_account = "@TOA#_b".into();
        let err = verify(&swapped, &current).unwrap_err().to_string();
        assert!(
            err.contains("\"@TOA#_b\" where \"@TOA#_a\" belongs"),
            "{err}"
        );
        let mut extra = current.clone();
        extra.accounts.push(account("@TOA#_z", &["1"]));
        assert!(matches!(
            verify(&extra, &current),
            Err(StalePlan::Edited { .. })
        ));
        let stale = plan(Some("l"), 2);
        assert!(matches!(
            verify(&stale, &current),
            Err(StalePlan::Serial { .. })
        ));
    }

    #[test]
    fn ids_in_a_saved_plan_are_validated_and_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        let mut p = plan(Some("l"), 1);
        p.accounts = vec![account("@TOA#_a", &["ok", "\u{1b}[2J\u{1b}[31mboom"])];
        std::fs::write(&path, serde_json::to_string(&p).unwrap()).unwrap();
        let err = load_saved(&path).unwrap_err().to_string();
        assert!(
            err.contains("accounts[0].add[1]: UserID \"\\u{1b}[2J"),
            "{err}"
        );
        assert!(!err.contains('\u{1b}'), "{err}");
        p.accounts = vec![account("weekly", &["ok"])];
        std::fs::write(&path, serde_json::to_string(&p).unwrap()).unwrap();
        let err = load_saved(&path).unwrap_err().to_string();
        assert!(err.contains("accounts[0].official_account"), "{err}");
    }

    #[test]
    fn saved_plans_round_trip_and_other_versions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(&path, serde_json::to_string(&plan(Some("l"), 1)).unwrap()).unwrap();
        assert_eq!(load_saved(&path).unwrap(), plan(Some("l"), 1));
        std::fs::write(&path, r#"{"format_version":"9"}"#).unwrap();
        assert!(matches!(load_saved(&path), Err(StalePlan::Format { .. })));
    }
}
