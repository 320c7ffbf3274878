//! The lines every format shows for an account's own properties: `~ name: "Old" -> "New"`,
//! `+ create (owner "admin")`, each with why it will not happen when it will not. Values come
//! from manifests and from the service (console edits), so they are always quoted, escaped and
//! cut ([`crate::properties::Value`]'s `Display`).

use crate::plan::{Creation, PropertyChange};
use crate::quote::quote;

/// `~ name: "Old" -> "New"`, marked when it sets back a change made outside subsync or will
/// not be made.
pub(super) fn change(c: &PropertyChange) -> String {
    let from = c
        .from
        .as_ref()
        .map_or_else(|| "(unknown)".to_owned(), ToString::to_string);
    let mut line = format!("~ {}: {from} -> {}", c.field, c.to);
    if c.drift {
        line.push_str("   (changed outside subsync)");
    }
    if let Some(why) = &c.refused {
        line.push_str(&format!("   (not changed: {why})"));
    }
    line
}

/// `+ create (owner "admin")`, with why it will not happen when it will not.
pub(super) fn creation(c: &Creation) -> String {
    let mut line = format!("+ create (owner {})", quote(&c.owner));
    if let Some(why) = &c.refused {
        line.push_str(&format!("   (not created: {why})"));
    }
    line
}

/// `, 2 account properties set`: a total's part, empty for none.
pub(super) fn counted(n: u64, done: &str) -> String {
    match n {
        0 => String::new(),
        n => format!(
            ", {} {done}",
            crate::words::count(n, "account property", "account properties")
        ),
    }
}

/// `, 1 account created`: a total's part, empty for none.
pub(super) fn created(n: u64, done: &str) -> String {
    match n {
        0 => String::new(),
        n => format!(", {} {done}", crate::words::count(n, "account", "accounts")),
    }
}

/// The account's lines, creation first.
pub(super) fn lines(create: Option<&Creation>, changes: &[PropertyChange]) -> Vec<String> {
    create
        .map(creation)
        .into_iter()
        .chain(changes.iter().map(change))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::properties::{Field, Value};

    #[test]
    fn values_from_the_service_are_escaped_and_cut() {
        let c = PropertyChange {
            field: Field::Name,
            from: Some(Value::Text(format!(
                "\u{1b}]8;;evil\u{7}{}",
                "x".repeat(500)
            ))),
            to: Value::Text("Weekly".into()),
            drift: true,
            refused: None,
        };
        let line = change(&c);
        assert!(
            line.starts_with("~ name: \"\\u{1b}]8;;evil\\u{7}xxx"),
            "{line}"
        );
        assert!(
            line.contains("more bytes) -> \"Weekly\"   (changed outside subsync)"),
            "{line}"
        );
        assert!(!line.contains('\u{1b}') && line.len() < 200, "{line}");
        let limit = PropertyChange {
            field: Field::MaxSubscribers,
            from: Some(Value::Number(50)),
            to: Value::Number(80),
            drift: false,
            refused: None,
        };
        assert_eq!(change(&limit), "~ maxSubscribers: 50 -> 80");
    }
}
