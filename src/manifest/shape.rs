//! The shape of a manifest document, checked in full before it is typed: every unknown key at
//! any depth (with the key it was probably meant to be), every value of the wrong type, every
//! bad name, account id or UserID, so that one `validate` run lists every problem of every
//! document. Typing through serde stops at the first problem of a struct; this walk does not.
//!
//! Leaves are still read by [`yaml::from_node`], so a value is judged by the same strict rules
//! here as when it is typed. The table below mirrors [`super::ManifestDocument`]; a test keeps
//! the two (through the generated JSON Schema) from drifting apart.

use super::{ApiVersion, Kind, Listed};
use crate::properties::{self, Value};
use crate::quote::quote;
use crate::yaml::{self, Node, Position, closest};

/// Problems reported per list before the rest are summarised in one line.
pub(super) const MAX_REPORTED_PER_LIST: usize = 20;

#[derive(Clone, Copy)]
enum ValueRule {
    Version,
    Kind,
    Name,
    Account,
    Flag,
    Labels,
    Subscribers,
    Files,
    /// A field of `spec.account`.
    Property(properties::Field),
    /// `spec.create.owner`: a UserID.
    Owner,
    Section(&'static [KeySpec]),
}

/// A key, what its value must be, and whether it is required.
type KeySpec = (&'static str, ValueRule, bool);

const METADATA: &[KeySpec] = &[
    ("name", ValueRule::Name, true),
    ("labels", ValueRule::Labels, false),
    ("annotations", ValueRule::Labels, false),
];

const SPEC: &[KeySpec] = &[
    ("officialAccount", ValueRule::Account, true),
    ("subscribers", ValueRule::Subscribers, false),
    ("subscriberFiles", ValueRule::Files, false),
    ("prune", ValueRule::Flag, false),
    ("allowEmpty", ValueRule::Flag, false),
    ("pruneOutOfBand", ValueRule::Flag, false),
    ("acceptShortfall", ValueRule::Flag, false),
    ("account", ValueRule::Section(ACCOUNT), false),
    ("create", ValueRule::Section(CREATE), false),
];

const ACCOUNT: &[KeySpec] = &[
    ("name", ValueRule::Property(properties::Field::Name), false),
    (
        "introduction",
        ValueRule::Property(properties::Field::Introduction),
        false,
    ),
    (
        "faceUrl",
        ValueRule::Property(properties::Field::FaceUrl),
        false,
    ),
    (
        "organization",
        ValueRule::Property(properties::Field::Organization),
        false,
    ),
    (
        "customString",
        ValueRule::Property(properties::Field::CustomString),
        false,
    ),
    (
        "maxSubscribers",
        ValueRule::Property(properties::Field::MaxSubscribers),
        false,
    ),
];

const CREATE: &[KeySpec] = &[("owner", ValueRule::Owner, true)];

const ROOT: &[KeySpec] = &[
    ("apiVersion", ValueRule::Version, true),
    ("kind", ValueRule::Kind, true),
    ("metadata", ValueRule::Section(METADATA), true),
    ("spec", ValueRule::Section(SPEC), true),
];

/// Every problem of one document's shape, each at its place.
pub(super) fn check(root: &Node<'_>) -> Vec<(Position, String)> {
    let mut problems = Vec::new();
    section(root, "", ROOT, &mut problems);
    problems
}

fn section(node: &Node<'_>, path: &str, entries: &[KeySpec], out: &mut Vec<(Position, String)>) {
    let Node::Map { entries: found, .. } = node.resolved() else {
        let what = if path.is_empty() {
            "the document"
        } else {
            path
        };
        out.push((
            node.position(),
            format!("{what} must be a mapping, found {}", node.kind()),
        ));
        return;
    };
    for (key, value) in found {
        let Some(name) = key.as_scalar() else {
            out.push((
                key.position(),
                format!("{}: keys must be text", shown(path)),
            ));
            continue;
        };
        match entries.iter().find(|(known, _, _)| *known == name) {
            Some((_, field, _)) => leaf(value, &join(path, name), *field, out),
            None => out.push((key.position(), unknown(path, name, entries))),
        }
    }
    for (name, _, required) in entries {
        if *required && node.get(name).is_none() {
            out.push((
                node.position(),
                format!("{}: `{name}` is missing; add it", shown(path)),
            ));
        }
    }
}

fn leaf(node: &Node<'_>, path: &str, field: ValueRule, out: &mut Vec<(Position, String)>) {
    let at = node.position();
    let mut typed = |result: Result<(), yaml::Error>| {
        if let Err(e) = result {
            out.push((e.at.unwrap_or(at), located(path, &e)));
        }
    };
    match field {
        ValueRule::Section(entries) => section(node, path, entries, out),
        ValueRule::Version => typed(yaml::from_node::<ApiVersion>(node).map(drop)),
        ValueRule::Kind => typed(yaml::from_node::<Kind>(node).map(drop)),
        ValueRule::Flag => typed(yaml::from_node::<bool>(node).map(drop)),
        ValueRule::Labels => {
            typed(yaml::from_node::<std::collections::BTreeMap<String, String>>(node).map(drop))
        }
        ValueRule::Files => typed(yaml::from_node::<Vec<String>>(node).map(drop)),
        ValueRule::Name | ValueRule::Account => match yaml::from_node::<String>(node) {
            Err(e) => out.push((e.at.unwrap_or(at), located(path, &e))),
            Ok(text) => {
                let checked = if matches!(field, ValueRule::Name) {
                    super::check_name(&text)
                } else {
                    super::check_account_id(&text)
                };
                if let Err(m) = checked {
                    out.push((at, m));
                }
            }
        },
        ValueRule::Property(field) => {
            let value = if field == properties::Field::MaxSubscribers {
                yaml::from_node::<u64>(node).map(Value::Number)
            } else {
                yaml::from_node::<String>(node).map(Value::Text)
            };
            match value {
                Err(e) => out.push((e.at.unwrap_or(at), located(path, &e))),
                Ok(value) => {
                    if let Err(m) = properties::check(field, &value) {
                        out.push((at, m));
                    }
                }
            }
        }
        ValueRule::Owner => match yaml::from_node::<String>(node) {
            Err(e) => out.push((e.at.unwrap_or(at), located(path, &e))),
            Ok(owner) => {
                if let Err(m) = super::check_user_id(&owner) {
                    out.push((at, format!("{path}: {m}")));
                }
            }
        },
        ValueRule::Subscribers => match yaml::from_node::<Vec<Listed>>(node) {
            Err(e) => out.push((e.at.unwrap_or(at), located(path, &e))),
            Ok(_) => subscribers(node, out),
        },
    }
}

/// The inline UserIDs: each bad one at its entry, the first [`MAX_REPORTED_PER_LIST`] of them.
fn subscribers(node: &Node<'_>, out: &mut Vec<(Position, String)>) {
    let Node::Seq { items, .. } = node.resolved() else {
        return;
    };
    let mut bad = 0usize;
    for (i, item) in items.iter().enumerate() {
        let problem = match yaml::text_item(item, i) {
            // Read on its own, the entry's error is located from the list: `[3]: ...`.
            Err(e) => Some(format!("spec.subscribers{e}")),
            Ok(id) => super::check_user_id(id).err(),
        };
        if let Some(m) = problem {
            bad += 1;
            if bad <= MAX_REPORTED_PER_LIST {
                out.push((item.position(), m));
            }
        }
    }
    if bad > MAX_REPORTED_PER_LIST {
        out.push((
            node.position(),
            format!(
                "{} more invalid UserIDs in spec.subscribers",
                bad - MAX_REPORTED_PER_LIST
            ),
        ));
    }
}

fn unknown(path: &str, name: &str, entries: &[KeySpec]) -> String {
    let here = shown(path);
    if let Some(close) = closest(name, entries.iter().map(|(known, _, _)| *known)) {
        return format!(
            "{here}: unknown field {}; did you mean `{close}`?",
            quote(name)
        );
    }
    // A known key one level off (`prune` beside `spec` instead of in it).
    for (section, within) in [
        ("metadata", METADATA),
        ("spec", SPEC),
        ("spec.account", ACCOUNT),
        ("spec.create", CREATE),
    ] {
        if path != section && within.iter().any(|(known, _, _)| *known == name) {
            return format!(
                "{here}: unknown field {}; it belongs under `{section}`",
                quote(name)
            );
        }
    }
    let expected: Vec<String> = entries.iter().map(|(k, _, _)| format!("`{k}`")).collect();
    format!(
        "{here}: unknown field {}, expected one of {}; check its spelling",
        quote(name),
        expected.join(", ")
    )
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn shown(path: &str) -> &str {
    if path.is_empty() {
        "the document"
    } else {
        path
    }
}

/// A leaf's error with the leaf's own path in front of the error's inner path.
fn located(path: &str, e: &yaml::Error) -> String {
    match e.path.as_str() {
        "" => format!("{path}: {}", e.message),
        inner if inner.starts_with('[') => format!("{path}{inner}: {}", e.message),
        inner => format!("{path}.{inner}: {}", e.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        let docs = yaml::parse(text, &crate::manifest::Limits::default().yaml()).unwrap();
        let root = docs[0].root.as_ref().unwrap();
        check(root)
            .into_iter()
            .map(|(at, m)| format!("{}:{} {m}", at.line, at.column))
            .collect()
    }

    #[test]
    fn every_problem_of_a_document_is_listed_at_once() {
        let found = problems(
            "apiVersion: subsync/v1\nkind: SubscriberSet\nmetadata:\n  name: Weekly\n  labelz: {}\nspec:\n  officialAccount: \"@TOA#_w\"\n  subscribersFile: [a.txt]\n  prune: maybe\n",
        );
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(
            found[0].starts_with("4:9 metadata.name \"Weekly\""),
            "{found:?}"
        );
        assert!(
            found[1].contains("metadata: unknown field \"labelz\"; did you mean `labels`?"),
            "{found:?}"
        );
        assert!(
            found[2].starts_with(
                "8:3 spec: unknown field \"subscribersFile\"; did you mean `subscriberFiles`?"
            ),
            "{found:?}"
        );
        assert!(found[3].starts_with("9:10 spec.prune:"), "{found:?}");
    }

    #[test]
    fn missing_sections_and_misplaced_keys_are_named() {
        let found = problems("apiVersion: subsync/v1\nkind: SubscriberSet\nprune: true\n");
        assert!(
            found.iter().any(|p| p.contains("it belongs under `spec`")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|p| p.contains("`metadata` is missing")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|p| p.contains("`spec` is missing")),
            "{found:?}"
        );
    }

    #[test]
    fn the_table_has_every_field_the_schema_has() {
        let schema =
            serde_json::to_value(schemars::schema_for!(super::super::ManifestDocument)).unwrap();
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            k.sort();
            k
        };
        let table = |entries: &[KeySpec]| -> Vec<String> {
            let mut k: Vec<String> = entries.iter().map(|(n, _, _)| n.to_string()).collect();
            k.sort();
            k
        };
        assert_eq!(keys(&schema), table(ROOT));
        assert_eq!(keys(&schema["$defs"]["Metadata"]), table(METADATA));
        assert_eq!(keys(&schema["$defs"]["Spec"]), table(SPEC));
        assert_eq!(keys(&schema["$defs"]["Properties"]), table(ACCOUNT));
        assert_eq!(keys(&schema["$defs"]["Create"]), table(CREATE));
    }

    #[test]
    fn a_declared_account_is_checked_field_by_field_at_each_value() {
        let found = problems(
            "apiVersion: subsync/v1\nkind: SubscriberSet\nmetadata:\n  name: w\nspec:\n  officialAccount: \"@TOA#_w\"\n  account:\n    name: \"\"\n    faceUrl: \"ftp://x/a.png\"\n    maxSubscribers: 0\n    introduction: 12\n    mascot: cat\n  create:\n    owner: \"a b \"\n",
        );
        let joined = found.join("\n");
        assert!(
            joined.contains("8:11 spec.account.name must not be empty"),
            "{joined}"
        );
        assert!(
            joined.contains("9:14 spec.account.faceUrl \"ftp://x/a.png\""),
            "{joined}"
        );
        assert!(
            joined.contains("10:21 spec.account.maxSubscribers must be at least 1"),
            "{joined}"
        );
        assert!(
            joined.contains("12:5 spec.account: unknown field \"mascot\""),
            "{joined}"
        );
        assert!(
            joined.contains("14:12 spec.create.owner: UserID \"a b \""),
            "{joined}"
        );
        // A plain 12 is text to every YAML tool.
        assert!(!found.iter().any(|p| p.starts_with("11:")), "{joined}");
    }

    #[test]
    fn max_subscribers_must_be_a_whole_number_in_range() {
        for (value, expected) in [
            ("-5", "expected a whole number"),
            ("1.5", "expected a whole number"),
            ("\"80\"", "expected a whole number"),
            ("99999999999999999999", "out of range"),
            ("4294967296", "beyond the API's range"),
        ] {
            let found = problems(&format!(
                "apiVersion: subsync/v1\nkind: SubscriberSet\nmetadata:\n  name: w\nspec:\n  officialAccount: \"@TOA#_w\"\n  account:\n    maxSubscribers: {value}\n"
            ));
            assert_eq!(found.len(), 1, "{value}: {found:?}");
            assert!(found[0].starts_with("8:21 "), "{value}: {found:?}");
            assert!(found[0].contains(expected), "{value}: {found:?}");
        }
    }
}
