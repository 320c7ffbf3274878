//! Saved plans: `plan --out FILE` writes the JSON plan; `apply --plan FILE` executes it only if
//! neither the ledger nor the manifests changed since, so that what runs is what was reviewed.

use std::path::{Path, PathBuf};

use super::{FORMAT_VERSION, Plan};

#[derive(Debug, thiserror::Error)]
pub enum StalePlan {
    #[error("cannot read the saved plan {path}: {detail}")]
    Unreadable { path: PathBuf, detail: String },
    #[error(
        "the saved plan {path} has format_version {found:?}; this subsync reads {FORMAT_VERSION:?}; make a new plan"
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
}

pub fn load_saved(path: &Path) -> Result<Plan, StalePlan> {
    let unreadable = |detail: String| StalePlan::Unreadable {
        path: path.to_owned(),
        detail,
    };
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
            found,
        });
    }
    serde_json::from_value(value).map_err(|e| unreadable(format!("not a subsync plan: {e}")))
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
