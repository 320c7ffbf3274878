//! Manifests: the YAML documents that declare each official account's desired subscribers.
//!
//! Owns the document format (and so the JSON Schema, generated from these types), discovery of
//! manifest files, and validation. Loading is all-or-nothing: [`load`] returns either a
//! complete, valid [`ManifestSet`] or every problem found, each with its file and, where it
//! has one, line and column.

pub(crate) mod confine;
mod discover;
mod ids;
mod load;
mod revision;
mod shape;
mod stamp;
pub(crate) mod subscriber_file;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::properties::{Create, Properties};
use crate::quote::quote;
use crate::tencent::api;
use crate::yaml::Position;

pub(crate) use discover::kernel_tree;
pub(crate) use ids::IdList;
use load::FileRecord;
pub(crate) use load::{load, reload};
pub(crate) use revision::{git_revision, is_commit_id};
pub(crate) use stamp::{Stamp, unchanged};

/// What loading manifests may cost at most. The defaults fit the service's scale (an account
/// holds 100,000 subscribers unless its MaxSubscriberNum was raised); each is a flag and a
/// `SUBSYNC_*` variable (see `settings`), never something a manifest can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Largest manifest file, in bytes.
    pub(crate) max_manifest_bytes: u64,
    /// Largest subscriber file, in bytes after gunzipping.
    pub(crate) max_list_bytes: u64,
    /// Longest line in a subscriber file, in bytes.
    pub(crate) max_line_bytes: usize,
    /// Deepest nesting of lists and mappings in a manifest.
    pub(crate) max_depth: usize,
    /// Most distinct subscribers one account may list.
    pub(crate) max_subscribers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_manifest_bytes: 16 << 20,
            max_list_bytes: 32 << 20,
            max_line_bytes: 4096,
            max_depth: 32,
            max_subscribers: 100_000,
        }
    }
}

impl Limits {
    /// The YAML budgets for one manifest file: room for one or two full inline lists.
    pub(crate) fn yaml(&self) -> crate::yaml::TreeLimits {
        crate::yaml::TreeLimits {
            max_depth: self.max_depth,
            max_nodes: self
                .max_subscribers
                .saturating_mul(2)
                .saturating_add(10_000),
        }
    }
}

/// One `SubscriberSet` document, exactly as written.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(
    title = "SubscriberSet",
    description = "The desired subscribers of one Tencent Cloud Chat official account (subsync manifest)."
)]
pub(crate) struct ManifestDocument {
    pub(crate) api_version: ApiVersion,
    pub(crate) kind: Kind,
    pub(crate) metadata: Metadata,
    pub(crate) spec: Spec,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub(crate) enum ApiVersion {
    #[serde(rename = "subsync/v1")]
    V1,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub(crate) enum Kind {
    SubscriberSet,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Metadata {
    /// Unique across all manifests: lowercase letters, digits, `-` and `.`, as Kubernetes names.
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub(crate) name: String,
    /// Free-form labels (kept for tools such as kustomize; subsync ignores them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) labels: BTreeMap<String, String>,
    /// Free-form annotations (subsync ignores them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Spec {
    /// The official account's id (`@TOA#_...`, at most 48 bytes).
    #[schemars(length(min = 7, max = 48), pattern(r"^@TOA#_[!-~]+$"))]
    pub(crate) official_account: String,
    /// Desired subscribers' UserIDs: 1 to 32 bytes of printable ASCII, no space at either end.
    /// Quote them; a plain decimal number such as 107867 is also accepted as its digits.
    #[serde(default)]
    pub(crate) subscribers: Vec<Listed>,
    /// Files listing more subscribers, one UserID a line (`#` comment lines; `.gz` is gunzipped),
    /// relative to this manifest.
    #[serde(default)]
    #[schemars(inner(length(min = 1)))]
    pub(crate) subscriber_files: Vec<String>,
    /// Remove subscribers the ledger (or, after a refresh, the live list) holds and this
    /// manifest does not list; within the prune guards.
    #[serde(default)]
    pub(crate) prune: bool,
    /// Let prune empty the account entirely.
    #[serde(default)]
    pub(crate) allow_empty: bool,
    /// Let prune also remove subscribers that appeared out of band (seen by a refresh, never
    /// added, imported or listed by subsync). Without it prune removes only what subsync
    /// manages.
    #[serde(default)]
    pub(crate) prune_out_of_band: bool,
    /// Accept that the account's MaxSubscriberNum leaves some listed subscribers out: a known
    /// shortfall then makes neither `plan --detailed-exitcode` nor `apply` exit 2.
    #[serde(default)]
    pub(crate) accept_shortfall: bool,
    /// The official account's own properties, reconciled like the subscribers: only the fields
    /// given are managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Properties")]
    pub(crate) account: Option<Properties>,
    /// Create the account when it does not exist, owned by this UserID (and only when the
    /// deployment passes `--allow-create`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Create")]
    pub(crate) create: Option<Create>,
}

/// One `subscribers` entry. Typing a document checks only that the entries form a list: each
/// entry is judged by the shape check and read from the positioned tree, where it keeps its
/// place and is borrowed rather than copied (a manifest may list 100,000 of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Listed;

impl<'de> Deserialize<'de> for Listed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_ignored_any(serde::de::IgnoredAny)
            .map(|_| Listed)
    }
}

/// An entry's text is not kept here, so there is nothing to write: only the schema writes a
/// list of entries, its empty default.
impl Serialize for Listed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_none()
    }
}

/// Quoted text, or a plain decimal number that every YAML tool keeps exact (see `yaml::resolve`).
impl JsonSchema for Listed {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "UserId".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A UserID: 1 to 32 bytes of printable ASCII, no space at either end.",
            "anyOf": [
                {"type": "string", "pattern": r"^[!-~]([ -~]{0,30}[!-~])?$"},
                {"type": "integer", "minimum": 0, "maximum": 9_007_199_254_740_991_u64}
            ]
        })
    }
}

/// A validated set: what the plan works from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SubscriberSet {
    pub(crate) name: String,
    pub(crate) official_account: String,
    /// Sorted, without duplicates.
    pub(crate) subscribers: IdList,
    pub(crate) prune: bool,
    pub(crate) allow_empty: bool,
    pub(crate) prune_out_of_band: bool,
    pub(crate) accept_shortfall: bool,
    /// The account's declared properties (`spec.account`); empty when it declares none.
    pub(crate) account: Properties,
    /// The owner to create the account with when it is missing (`spec.create.owner`).
    pub(crate) create: Option<String>,
    /// The manifest file that declared it.
    pub(crate) source: PathBuf,
}

/// Every set from every manifest, sorted by official account.
#[derive(Debug, Clone, Default)]
pub(crate) struct ManifestSet {
    pub(crate) sets: Vec<SubscriberSet>,
    pub(crate) files: Vec<PathBuf>,
    /// `sha256:<hex>` over the sets' content: a saved plan is stale when it changes.
    pub(crate) digest: String,
    pub(crate) warnings: Vec<Diagnostic>,
    /// Every file read (manifests and subscriber files), as it was when opened.
    pub(crate) inputs: Vec<(PathBuf, Stamp)>,
    /// What each manifest file yielded, for [`reload`] to take again while it is unchanged.
    pub(crate) records: Vec<FileRecord>,
    /// The limits the files were read within; `None` for a set not read from files.
    pub(crate) limits: Option<Limits>,
}

impl ManifestSet {
    /// The official accounts the set declares, in the set's order.
    pub(crate) fn accounts(&self) -> Vec<String> {
        self.sets
            .iter()
            .map(|s| s.official_account.clone())
            .collect()
    }

    pub(crate) fn desired_total(&self) -> usize {
        self.sets.iter().map(|s| s.subscribers.len()).sum()
    }
}

/// A problem (or warning) with its place.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Diagnostic {
    pub(crate) path: PathBuf,
    pub(crate) line: Option<usize>,
    pub(crate) column: Option<usize>,
    pub(crate) message: String,
    /// The problem is this machine's (out of file descriptors or memory), not the manifests'.
    pub(crate) local: bool,
}

impl Diagnostic {
    pub(crate) fn file(path: &Path, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            path: path.to_owned(),
            line: None,
            column: None,
            message: message.into(),
            local: false,
        }
    }

    pub(crate) fn at(
        path: &Path,
        position: Option<Position>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            path: path.to_owned(),
            line: position.map(|p| p.line),
            column: position.map(|p| p.column),
            message: message.into(),
            local: false,
        }
    }

    /// Marks the problem as this machine's when `error` is a shortage of resources.
    pub(crate) fn caused_by(mut self, error: Option<&std::io::Error>) -> Diagnostic {
        self.local = error.is_some_and(is_local);
        self
    }
}

/// True for a read failure that says nothing about the file: the process or the machine ran
/// out of something.
pub(crate) fn is_local(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS)
    )
}

impl Diagnostic {
    /// As a log event: the place as fields for JSON logs, the usual `FILE:LINE:COLUMN:
    /// message` for people.
    pub(crate) fn log(&self, level: tracing::Level, json: bool) {
        let file = self.path.display().to_string();
        let (line, column) = (self.line.unwrap_or(0), self.column.unwrap_or(0));
        match (level == tracing::Level::ERROR, json) {
            (true, true) => tracing::error!(file, line, column, "{}", self.message),
            (false, true) => tracing::warn!(file, line, column, "{}", self.message),
            (true, false) => tracing::error!("{self}"),
            (false, false) => tracing::warn!("{self}"),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

/// The manifests could not be loaded; nothing may be planned or applied.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) struct ManifestError {
    pub(crate) problems: Vec<Diagnostic>,
}

impl ManifestError {
    /// True when this machine, not the manifests, kept them from being read (a daemon out of
    /// file descriptors must not call its manifests invalid).
    pub(crate) fn is_local(&self) -> bool {
        self.problems.iter().any(|p| p.local)
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "the manifests have {n} problem{}; fix {} and run again (nothing was planned or changed)",
            if n == 1 { "" } else { "s" },
            if n == 1 { "it" } else { "them" }
        )?;
        for p in &self.problems {
            write!(f, "\n{p}")?;
        }
        Ok(())
    }
}

/// Why a UserID is invalid, in words for the manifest author: the service's rule, plus no space
/// at either end (an edge space in YAML is almost always a slip, and list-file lines are trimmed).
pub fn check_user_id(id: &str) -> Result<(), String> {
    api::check_user_id(id)?;
    if id.starts_with(' ') || id.ends_with(' ') {
        return Err(format!(
            "UserID {} starts or ends with a space; remove it",
            quote(id)
        ));
    }
    Ok(())
}

pub(crate) use api::check_account_id;

/// Why a metadata name is invalid.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let ok_end = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty()
        || name.len() > 253
        || !name.chars().all(ok_char)
        || !ok_end(name.chars().next())
        || !ok_end(name.chars().last())
    {
        return Err(format!(
            "metadata.name {} must be 1 to 253 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit",
            quote(name)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_rules_match_the_service_and_the_schema() {
        let re_ok = |s: &str| check_user_id(s).is_ok();
        assert!(re_ok("107867") && re_ok("a b") && re_ok(&"x".repeat(32)) && re_ok("#hash"));
        assert!(
            !re_ok("") && !re_ok(" a") && !re_ok("a ") && !re_ok(&"x".repeat(33)) && !re_ok("é")
        );
    }

    #[test]
    fn account_ids_need_prefix_and_length() {
        assert!(check_account_id("@TOA#_weekly").is_ok());
        assert!(check_account_id("@TOA#_@TOA#dOEF").is_ok());
        assert!(check_account_id("weekly").unwrap_err().contains("@TOA#_"));
        assert!(
            check_account_id(&format!("@TOA#_{}", "x".repeat(43)))
                .unwrap_err()
                .contains("49 bytes")
        );
    }

    #[test]
    fn names_follow_kubernetes_rules() {
        assert!(check_name("weekly-digest").is_ok());
        assert!(check_name("Weekly").is_err());
        assert!(check_name("-x").is_err());
        assert!(check_name("").is_err());
    }

    #[test]
    fn diagnostics_render_as_file_line_column() {
        let d = Diagnostic::at(
            Path::new("m.yaml"),
            Some(Position { line: 3, column: 5 }),
            "bad",
        );
        assert_eq!(d.to_string(), "m.yaml:3:5: bad");
        assert_eq!(
            Diagnostic::file(Path::new("m.yaml"), "gone").to_string(),
            "m.yaml: gone"
        );
    }
}
