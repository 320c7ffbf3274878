//! Saved plans: `plan --out FILE` writes the JSON plan; `apply --plan FILE` executes it only if
//! neither the ledger nor the manifests changed since, so that what runs is what was reviewed.
//!
//! A saved plan is a claim, not an instruction: the file may have been edited between review
//! and apply. [`load_saved`] validates every id in it as a manifest's would be, and apply
//! recomputes the plan from the manifests and the ledger, account by account, and accepts the
//! saved one only when the two are identical ([`SavedPlan::check_account`]); what runs is the
//! recomputed plan.
//!
//! A saved plan can list millions of subscribers, so it is read as a stream: each account is
//! validated and reduced to a fingerprint of each field (SHA-256 of its JSON) as it is read,
//! and only the fingerprints are kept.

use std::fmt;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use sha2::{Digest, Sha256};

#[cfg(test)]
use super::Plan;
use super::{AccountPlan, FORMAT_VERSION, PlanHeader, PlanSummary};
use crate::manifest::{check_account_id, check_name, check_user_id};
use crate::quote::quote;

#[derive(Debug, thiserror::Error)]
pub(crate) enum StalePlan {
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

/// Largest saved plan read: a plan of ten million changes is about 250 MB of JSON. It is read
/// as a stream, so the bound is on time, not memory.
const MAX_PLAN_BYTES: u64 = 1 << 30;

/// The account fields a saved plan must match, in the order a difference is reported.
const FIELDS: [&str; 18] = [
    "name",
    "desired",
    "confirmed",
    "prune",
    "remove",
    "add",
    "unmanaged",
    "retry",
    "held_back",
    "held",
    "out_of_band_kept",
    "over_limit",
    "accept_shortfall",
    "drift",
    "refreshed_at",
    "warnings",
    "create",
    "properties",
];

type Fingerprint = [u8; 32];

fn fingerprint(value: &impl serde::Serialize) -> Fingerprint {
    let json = serde_json::to_vec(value).unwrap_or_default();
    Sha256::digest(json).into()
}

/// One account of a saved plan: its id and a fingerprint of each of [`FIELDS`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct SavedAccount {
    official_account: String,
    fields: [Fingerprint; 18],
}

impl SavedAccount {
    fn of(a: &AccountPlan) -> SavedAccount {
        SavedAccount {
            official_account: a.official_account.clone(),
            fields: [
                fingerprint(&a.name),
                fingerprint(&a.desired),
                fingerprint(&a.confirmed),
                fingerprint(&a.prune),
                fingerprint(&a.remove),
                fingerprint(&a.add),
                fingerprint(&a.unmanaged),
                fingerprint(&a.retry),
                fingerprint(&a.held_back),
                fingerprint(&a.held),
                fingerprint(&a.out_of_band_kept),
                fingerprint(&a.over_limit),
                fingerprint(&a.accept_shortfall),
                fingerprint(&a.drift),
                fingerprint(&a.refreshed_at),
                fingerprint(&a.warnings),
                fingerprint(&a.create),
                fingerprint(&a.properties),
            ],
        }
    }
}

/// A saved plan as apply checks it: what it was made against, its summary, and each account
/// as fingerprints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SavedPlan {
    pub header: PlanHeader,
    accounts: Vec<SavedAccount>,
    summary: PlanSummary,
}

impl SavedPlan {
    /// The saved form of a plan in memory (tests: what ships streams a saved plan in).
    #[cfg(test)]
    pub(crate) fn of(plan: &Plan) -> SavedPlan {
        SavedPlan {
            header: plan.header(),
            accounts: plan.accounts.iter().map(SavedAccount::of).collect(),
            summary: plan.summary,
        }
    }

    /// Refuses a plan made against another ledger state or other manifests.
    pub(crate) fn check_fresh(
        &self,
        lineage: Option<&str>,
        serial: u64,
        manifest_digest: &str,
    ) -> Result<(), StalePlan> {
        check_fresh(&self.header, lineage, serial, manifest_digest)
    }

    /// Accepts the plan made now for the `index`th account only if the saved plan says
    /// exactly the same there.
    pub(crate) fn check_account(&self, index: usize, now: &AccountPlan) -> Result<(), StalePlan> {
        let edited = |detail: String| Err(StalePlan::Edited { detail });
        let id = quote(&now.official_account);
        let Some(then) = self.accounts.get(index) else {
            return edited(format!("account {id} is missing from the saved plan"));
        };
        if then.official_account != now.official_account {
            return edited(format!(
                "the saved plan has account {} where {id} belongs",
                quote(&then.official_account)
            ));
        }
        let now = SavedAccount::of(now);
        match FIELDS
            .iter()
            .zip(then.fields.iter().zip(&now.fields))
            .find(|(_, (a, b))| a != b)
        {
            Some((field, _)) => edited(format!("account {id}: `{field}` differs")),
            None => Ok(()),
        }
    }

    /// After the last of `count` accounts: no account more, the same summary.
    pub(crate) fn check_end(&self, count: usize, summary: &PlanSummary) -> Result<(), StalePlan> {
        if let Some(extra) = self.accounts.get(count) {
            return Err(StalePlan::Edited {
                detail: format!(
                    "the saved plan has an extra account {}",
                    quote(&extra.official_account)
                ),
            });
        }
        if &self.summary != summary {
            return Err(StalePlan::Edited {
                detail: "the summary differs".into(),
            });
        }
        Ok(())
    }
}

/// Reads, validates and fingerprints the saved plan at `path`, one account at a time.
pub(crate) fn load_saved(path: &Path) -> Result<SavedPlan, StalePlan> {
    let unreadable = |detail: String| StalePlan::Unreadable {
        path: path.to_owned(),
        detail,
    };
    let file = std::fs::File::open(path).map_err(|e| unreadable(e.to_string()))?;
    let size = file
        .metadata()
        .map_err(|e| unreadable(e.to_string()))?
        .len();
    if size > MAX_PLAN_BYTES {
        return Err(unreadable(format!(
            "it is {size} bytes, more than a plan can be"
        )));
    }
    let reader = BufReader::new(std::io::Read::take(file, MAX_PLAN_BYTES));
    let mut json = serde_json::Deserializer::from_reader(reader);
    let mut refused = None;
    let read = PlanSeed {
        refused: &mut refused,
    }
    .deserialize(&mut json);
    let read = read.and_then(|plan| json.end().map(|()| plan));
    match (refused, read) {
        (Some(Refused::Format(found)), _) => Err(StalePlan::Format {
            path: path.to_owned(),
            found: quote(&found),
        }),
        (Some(Refused::Invalid(detail)), _) => Err(StalePlan::Invalid {
            path: path.to_owned(),
            detail,
        }),
        (None, Err(e)) if e.is_syntax() || e.is_eof() || e.is_io() => {
            Err(unreadable(format!("not JSON: {e}")))
        }
        (None, Err(e)) => Err(unreadable(format!("not a subsync plan: {e}"))),
        (None, Ok(plan)) => Ok(plan),
    }
}

/// Why reading stopped, beyond what serde reports.
enum Refused {
    Format(String),
    Invalid(String),
}

/// Reads the plan object: the header fields, the accounts (each validated and fingerprinted,
/// then dropped) and the summary.
struct PlanSeed<'r> {
    refused: &'r mut Option<Refused>,
}

impl<'de> DeserializeSeed<'de> for PlanSeed<'_> {
    type Value = SavedPlan;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<SavedPlan, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PlanSeed<'_> {
    type Value = SavedPlan;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a subsync plan (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SavedPlan, A::Error> {
        let mut version: Option<String> = None;
        let (mut lineage, mut serial, mut digest, mut paths) = (None, None, None, None);
        let (mut accounts, mut summary) = (None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "format_version" => {
                    let found: String = map.next_value()?;
                    if found != FORMAT_VERSION {
                        *self.refused = Some(Refused::Format(found));
                        return Err(de::Error::custom("another format version"));
                    }
                    version = Some(found);
                }
                "lineage" => lineage = Some(map.next_value::<Option<String>>()?),
                "serial" => serial = Some(map.next_value::<u64>()?),
                "manifest_digest" => digest = Some(map.next_value::<String>()?),
                "manifest_paths" => paths = Some(map.next_value::<Vec<String>>()?),
                "accounts" => {
                    accounts = Some(map.next_value_seed(AccountsSeed {
                        refused: &mut *self.refused,
                    })?)
                }
                "summary" => summary = Some(map.next_value::<PlanSummary>()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let missing = |field: &'static str| de::Error::missing_field(field);
        let header = PlanHeader {
            format_version: match version {
                Some(v) => v,
                None => {
                    *self.refused = Some(Refused::Format(String::new()));
                    return Err(missing("format_version"));
                }
            },
            lineage: lineage.ok_or_else(|| missing("lineage"))?,
            serial: serial.ok_or_else(|| missing("serial"))?,
            manifest_digest: digest.ok_or_else(|| missing("manifest_digest"))?,
            manifest_paths: paths.ok_or_else(|| missing("manifest_paths"))?,
        };
        if let Err(detail) = validate_header(&header) {
            *self.refused = Some(Refused::Invalid(detail));
            return Err(de::Error::custom("invalid"));
        }
        Ok(SavedPlan {
            header,
            accounts: accounts.ok_or_else(|| missing("accounts"))?,
            summary: summary.ok_or_else(|| missing("summary"))?,
        })
    }
}

struct AccountsSeed<'r> {
    refused: &'r mut Option<Refused>,
}

impl<'de> DeserializeSeed<'de> for AccountsSeed<'_> {
    type Value = Vec<SavedAccount>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for AccountsSeed<'_> {
    type Value = Vec<SavedAccount>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of accounts")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(account) = seq.next_element::<AccountPlan>()? {
            if let Err(detail) = validate_account(out.len(), &account) {
                *self.refused = Some(Refused::Invalid(detail));
                return Err(de::Error::custom("invalid"));
            }
            out.push(SavedAccount::of(&account));
        }
        Ok(out)
    }
}

fn printable(what: &str, s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() || s.len() > max || s.chars().any(|c| !(' '..='~').contains(&c)) {
        Err(format!(
            "{what} {} is not printable text of at most {max} bytes",
            quote(s)
        ))
    } else {
        Ok(())
    }
}

fn validate_header(header: &PlanHeader) -> Result<(), String> {
    if let Some(lineage) = &header.lineage {
        printable("lineage", lineage, 64)?;
    }
    printable("manifest_digest", &header.manifest_digest, 80)?;
    for p in &header.manifest_paths {
        printable("a manifest path", p, 4096)?;
    }
    Ok(())
}

/// Every id in the `i`th account must pass the checks a manifest's would.
fn validate_account(i: usize, a: &AccountPlan) -> Result<(), String> {
    let at = |field: &str, e: String| format!("accounts[{i}].{field}: {e}");
    check_account_id(&a.official_account).map_err(|e| at("official_account", e))?;
    if let Some(name) = &a.name {
        check_name(name).map_err(|e| at("name", e))?;
    }
    let drift = &a.drift;
    for (field, ids) in [
        ("add", &a.add),
        ("remove", &a.remove),
        ("unmanaged", &a.unmanaged),
        ("held", &a.held),
        ("drift.out_of_band_added", &drift.out_of_band_added),
        ("drift.out_of_band_removed", &drift.out_of_band_removed),
        ("drift.repaired", &drift.repaired),
    ] {
        for (j, id) in ids.iter().enumerate() {
            check_user_id(id).map_err(|e| at(&format!("{field}[{j}]"), e))?;
        }
    }
    for (j, r) in a.retry.iter().enumerate() {
        check_user_id(&r.subscriber).map_err(|e| at(&format!("retry[{j}].subscriber"), e))?;
    }
    Ok(())
}

/// Refuses a plan made against another ledger state or other manifests.
pub(super) fn check_fresh(
    plan: &PlanHeader,
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
        let h = |lineage: Option<&str>, serial| plan(lineage, serial).header();
        assert!(check_fresh(&h(Some("l"), 3), Some("l"), 3, "sha256:a").is_ok());
        assert!(matches!(
            check_fresh(&h(Some("l"), 3), Some("l"), 4, "sha256:a"),
            Err(StalePlan::Serial { .. })
        ));
        assert!(matches!(
            check_fresh(&h(Some("l"), 3), Some("m"), 3, "sha256:a"),
            Err(StalePlan::Lineage { .. })
        ));
        assert!(matches!(
            check_fresh(&h(Some("l"), 3), Some("l"), 3, "sha256:b"),
            Err(StalePlan::Manifests { .. })
        ));
        assert!(check_fresh(&h(None, 0), Some("new"), 0, "sha256:a").is_ok());
        assert!(matches!(
            check_fresh(&h(None, 0), Some("new"), 2, "sha256:a"),
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
            create: None,
            properties: vec![],
        }
    }

    /// The streaming checks over a whole plan in memory: accepts `saved` only if it was made against this ledger and these manifests and says
    /// exactly what `current`, the plan computed now, says.
    fn verify(saved: &Plan, current: &Plan) -> Result<(), StalePlan> {
        let saved = SavedPlan::of(saved);
        saved.check_fresh(
            current.lineage.as_deref(),
            current.serial,
            &current.manifest_digest,
        )?;
        for (i, a) in current.accounts.iter().enumerate() {
            saved.check_account(i, a)?;
        }
        saved.check_end(current.accounts.len(), &current.summary)
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
        let mut p = plan(Some("l"), 1);
        p.accounts = vec![account("@TOA#_a", &["1", "2"])];
        std::fs::write(&path, serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(load_saved(&path).unwrap(), SavedPlan::of(&p));
        std::fs::write(&path, r#"{"format_version":"9"}"#).unwrap();
        assert!(matches!(load_saved(&path), Err(StalePlan::Format { .. })));
    }
}
