//! Typed reading of a [`Node`] through serde, with strict scalars and located errors.
//!
//! Strict means: a string field takes quoted text, or a plain scalar that every YAML tool reads
//! as text (see [`super::resolve`]); a boolean takes `true` or `false`; numbers take decimal
//! digits; the only explicit tag accepted is the one matching the field (`!!str` on text).
//! Every error carries the position and dotted path of the node it is about, and quotes
//! values through [`crate::quote`], never whole.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Unexpected, Visitor};

use super::resolve::{self, Resolved};
use super::tree::{Node, Position, Style};
use crate::quote::quote;

/// A value that does not fit the type it is read into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub(crate) message: String,
    pub(crate) at: Option<Position>,
    /// Dotted path of the value (`spec.subscribers[3]`); empty at the top.
    pub(crate) path: String,
    /// What serde named, when the problem is a field or a variant name: a caller can then
    /// say which field to use instead, or locate the key itself.
    pub(crate) detail: Option<Detail>,
}

/// A problem with a name rather than a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Detail {
    UnknownField {
        field: String,
        expected: &'static [&'static str],
    },
    MissingField(&'static str),
    UnknownVariant {
        variant: String,
        expected: &'static [&'static str],
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for Error {}

fn unexpected(u: &Unexpected<'_>) -> String {
    match u {
        Unexpected::Str(s) => format!("text {}", quote(s)),
        Unexpected::Char(c) => format!("character {}", quote(&c.to_string())),
        Unexpected::Bytes(b) => format!("bytes {}", crate::quote::quote_bytes(b)),
        other => other.to_string(),
    }
}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error {
            message: msg.to_string(),
            at: None,
            path: String::new(),
            detail: None,
        }
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!(
            "invalid type: {}, expected {exp}",
            unexpected(&unexp)
        ))
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!(
            "invalid value: {}, expected {exp}",
            unexpected(&unexp)
        ))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Error {
            detail: Some(Detail::UnknownVariant {
                variant: variant.to_owned(),
                expected,
            }),
            ..Self::custom(format_args!(
                "unknown value {}, expected {}",
                quote(variant),
                one_of(expected)
            ))
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Error {
            detail: Some(Detail::UnknownField {
                field: field.to_owned(),
                expected,
            }),
            ..Self::custom(format_args!(
                "unknown field {}, expected {}; check its spelling",
                quote(field),
                one_of(expected)
            ))
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Error {
            detail: Some(Detail::MissingField(field)),
            ..Self::custom(format_args!("missing field `{field}`"))
        }
    }
}

fn one_of(names: &[&str]) -> String {
    match names {
        [] => "nothing".into(),
        [one] => format!("`{one}`"),
        _ => format!(
            "one of {}",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Reads `node` as a `T`.
pub fn from_node<T: de::DeserializeOwned>(node: &Node<'_>) -> Result<T, Error> {
    T::deserialize(De {
        node,
        path: &Path::Root,
    })
}

/// Reads `item`, entry `index` of a list, as text: by the rules, and with the error, that
/// `from_node::<Vec<String>>` applies to that entry (located at `[index]`), but borrowed
/// rather than copied.
pub(crate) fn text_item<'n>(item: &'n Node<'_>, index: usize) -> Result<&'n str, Error> {
    let at_root = De {
        node: item,
        path: &Path::Root,
    };
    // Every error of `text` is located by `fail`, with the path it was given: the entry's.
    at_root.text().map_err(|mut e| {
        e.path = Path::Index(&Path::Root, index).to_string();
        e
    })
}

/// Where a node sits, for messages.
enum Path<'p> {
    Root,
    Key(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Key(parent, key) => {
                let simple = key.len() <= 64
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
                match (matches!(parent, Path::Root), simple) {
                    (true, true) => write!(f, "{key}"),
                    (true, false) => write!(f, "{}", quote(key)),
                    (false, true) => write!(f, "{parent}.{key}"),
                    (false, false) => write!(f, "{parent}[{}]", quote(key)),
                }
            }
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

struct De<'n, 'a> {
    node: &'n Node<'a>,
    path: &'n Path<'n>,
}

impl<'n> De<'n, '_> {
    /// Gives an error without a place this node's position and path.
    fn locate(&self, mut e: Error) -> Error {
        if e.at.is_none() {
            e.at = Some(self.node.position());
            e.path = self.path.to_string();
        }
        e
    }

    fn fail(&self, message: String) -> Error {
        self.locate(<Error as de::Error>::custom(message))
    }

    /// The scalar's text, its style, and whether its tag (if any) is `expected_tag`.
    fn scalar(&self, expected_tag: &str) -> Result<(&'n str, Style), Error> {
        let Node::Scalar {
            value, style, tag, ..
        } = self.node.resolved()
        else {
            return Err(self.fail(format!(
                "expected {}, found {}",
                describe_tag(expected_tag),
                self.node.kind()
            )));
        };
        if let Some(tag) = tag
            && **tag != *expected_tag
        {
            return Err(self.fail(format!(
                "the tag {} is not accepted here; remove it (only {expected_tag} is)",
                quote(tag)
            )));
        }
        Ok((value, *style))
    }

    fn text(&self) -> Result<&'n str, Error> {
        let (value, style) = self.scalar("!!str")?;
        if style == Style::Plain && self.node.tag().is_none() {
            let resolved = resolve::resolve(value);
            if resolved != Resolved::Str && !resolve::is_safe_integer(value) {
                return Err(self.fail(format!(
                    "{} is read as {} by other YAML tools (yq, kustomize, PyYAML); quote it: {}",
                    as_written(value, style),
                    resolved.described(),
                    quote(value)
                )));
            }
        }
        Ok(value)
    }

    fn is_null(&self) -> bool {
        match self.node.resolved() {
            Node::Scalar {
                value, style, tag, ..
            } => match tag.as_deref() {
                Some("!!null") => true,
                Some(_) => false,
                None => *style == Style::Plain && resolve::is_null(value),
            },
            _ => false,
        }
    }

    fn integer<T: std::str::FromStr>(&self, signed: bool) -> Result<T, Error> {
        let (value, style) = self.scalar("!!int")?;
        let digits = if signed {
            value.strip_prefix('-').unwrap_or(value)
        } else {
            value
        };
        let is_digits = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        if style != Style::Plain || !is_digits {
            return Err(self.fail(format!(
                "expected a whole number, found {}{}",
                as_written(value, style),
                if is_digits {
                    "; write it without quotes"
                } else {
                    ""
                }
            )));
        }
        value
            .parse()
            .map_err(|_| self.fail(format!("{} is out of range", as_written(value, style))))
    }

    fn float(&self) -> Result<f64, Error> {
        let (value, style) = self.scalar("!!float")?;
        let ok = style == Style::Plain
            && value
                .bytes()
                .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
        match value.parse::<f64>() {
            Ok(v) if ok && v.is_finite() => Ok(v),
            _ => Err(self.fail(format!(
                "expected a number, found {}",
                as_written(value, style)
            ))),
        }
    }
}

/// A scalar in a message as the input wrote it: a plain one bare, a quoted one in quotes (both
/// escaped and cut as every untrusted value is), so that no message shows quotes the input
/// did not have.
fn as_written(value: &str, style: Style) -> String {
    match style {
        Style::Plain => crate::quote::safe(value).into_owned(),
        Style::Quoted | Style::Block => quote(value),
    }
}

fn describe_tag(tag: &str) -> &'static str {
    match tag {
        "!!bool" => "true or false",
        "!!int" => "a whole number",
        "!!float" => "a number",
        _ => "text",
    }
}

macro_rules! integers {
    ($($method:ident $visit:ident $ty:ty, $signed:expr;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let n: $ty = self.integer($signed)?;
            visitor.$visit(n).map_err(|e| self.locate(e))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for De<'_, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match self.node.resolved() {
            Node::Seq { .. } => return self.deserialize_seq(visitor),
            Node::Map { .. } => return self.deserialize_map(visitor),
            Node::Scalar { .. } if self.is_null() => visitor.visit_unit(),
            Node::Scalar {
                value,
                style: Style::Plain,
                tag: None,
                ..
            } => match resolve::core_bool(value) {
                Some(b) => visitor.visit_bool(b),
                None => match value.parse::<i64>() {
                    Ok(n) if resolve::resolve(value) == Resolved::Int => visitor.visit_i64(n),
                    _ => visitor.visit_str(value),
                },
            },
            Node::Scalar { value, .. } => visitor.visit_str(value),
            Node::Shared(_) => visitor.visit_unit(),
        };
        result.map_err(|e| self.locate(e))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let (value, style) = self.scalar("!!bool")?;
        match resolve::core_bool(value) {
            Some(b) if style == Style::Plain => visitor.visit_bool(b).map_err(|e| self.locate(e)),
            _ => Err(self.fail(format!(
                "expected true or false, found {}; write true or false{}",
                as_written(value, style),
                if style == Style::Plain {
                    ""
                } else {
                    " without quotes"
                }
            ))),
        }
    }

    integers! {
        deserialize_i8 visit_i8 i8, true;
        deserialize_i16 visit_i16 i16, true;
        deserialize_i32 visit_i32 i32, true;
        deserialize_i64 visit_i64 i64, true;
        deserialize_u8 visit_u8 u8, false;
        deserialize_u16 visit_u16 u16, false;
        deserialize_u32 visit_u32 u32, false;
        deserialize_u64 visit_u64 u64, false;
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let v = self.float()?;
        visitor.visit_f64(v).map_err(|e| self.locate(e))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let text = self.text()?;
        visitor.visit_str(text).map_err(|e| self.locate(e))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.is_null() {
            visitor.visit_none().map_err(|e| self.locate(e))
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.is_null() {
            visitor.visit_unit().map_err(|e| self.locate(e))
        } else {
            Err(self.fail(format!("expected no value, found {}", self.node.kind())))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node.resolved() {
            Node::Seq { items, tag, .. } => {
                if let Some(tag) = tag.as_deref().filter(|t| *t != "!!seq") {
                    return Err(self.fail(format!("the tag {} is not accepted here", quote(tag))));
                }
                let access = Seq {
                    items: items.iter().enumerate(),
                    path: self.path,
                };
                visitor.visit_seq(access).map_err(|e| self.locate(e))
            }
            _ => Err(self.fail(format!("expected a list, found {}", self.node.kind()))),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node.resolved() {
            Node::Map { entries, tag, .. } => {
                if let Some(tag) = tag.as_deref().filter(|t| *t != "!!map") {
                    return Err(self.fail(format!("the tag {} is not accepted here", quote(tag))));
                }
                let access = Map {
                    entries: entries.iter(),
                    value: None,
                    path: self.path,
                };
                visitor.visit_map(access).map_err(|e| self.locate(e))
            }
            _ => Err(self.fail(format!("expected a mapping, found {}", self.node.kind()))),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        // Only unit variants written as a scalar: `kind: SubscriberSet`.
        let (value, _) = self.scalar("!!str")?;
        let access: de::value::StrDeserializer<'_, Error> = value.into_deserializer();
        visitor.visit_enum(access).map_err(|e| self.locate(e))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // Field names are matched by text: an unknown one is reported as such, not as a type.
        let (value, _) = self.scalar("!!str")?;
        visitor.visit_str(value).map_err(|e| self.locate(e))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

struct Seq<'n, 'a> {
    items: std::iter::Enumerate<std::slice::Iter<'n, Node<'a>>>,
    path: &'n Path<'n>,
}

impl<'de> de::SeqAccess<'de> for Seq<'_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some((i, node)) = self.items.next() else {
            return Ok(None);
        };
        let path = Path::Index(self.path, i);
        seed.deserialize(De { node, path: &path }).map(Some)
    }
}

struct Map<'n, 'a> {
    entries: std::slice::Iter<'n, (Node<'a>, Node<'a>)>,
    value: Option<&'n (Node<'a>, Node<'a>)>,
    path: &'n Path<'n>,
}

impl<'de> de::MapAccess<'de> for Map<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(entry);
        seed.deserialize(De {
            node: &entry.0,
            path: self.path,
        })
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let Some((key, value)) = self.value.take() else {
            return Err(<Error as de::Error>::custom("a value without a key"));
        };
        let path = Path::Key(self.path, key.as_scalar().unwrap_or("?"));
        seed.deserialize(De {
            node: value,
            path: &path,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;
    use crate::yaml::{TreeLimits, parse};

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Doc {
        name: String,
        #[serde(default)]
        list: Vec<String>,
        #[serde(default)]
        flag: bool,
        count: Option<u32>,
        #[serde(default)]
        labels: BTreeMap<String, String>,
        #[serde(default)]
        kind: Option<Kind>,
        #[serde(default)]
        rate: f64,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    enum Kind {
        SubscriberSet,
    }

    fn read(text: &str) -> Result<Doc, Error> {
        let limits = TreeLimits {
            max_depth: 8,
            max_nodes: 1000,
        };
        let docs = parse(text, &limits).unwrap();
        from_node(docs[0].root.as_ref().unwrap())
    }

    #[test]
    fn text_fields_take_quoted_text_and_safe_plain_scalars() {
        let d = read("name: alice\nlist: [\"0123\", 107867, 'yes', !!str 0x1F, b-2]\ncount: 3\nflag: true\nrate: 0.5\nkind: SubscriberSet\n").unwrap();
        assert_eq!(d.name, "alice");
        assert_eq!(d.list, ["0123", "107867", "yes", "0x1F", "b-2"]);
        assert_eq!((d.count, d.flag, d.rate), (Some(3), true, 0.5));
        assert_eq!(d.kind, Some(Kind::SubscriberSet));
    }

    #[test]
    fn plain_scalars_other_tools_read_as_non_text_are_refused_with_the_fix() {
        for (value, what) in [
            ("0123", "a number"),
            ("yes", "a boolean"),
            ("~", "null"),
            ("2024-01-01", "a date"),
            ("1e3", "floating-point"),
        ] {
            let err = read(&format!("name: x\nlist:\n  - ok\n  - {value}\n")).unwrap_err();
            assert_eq!(err.at, Some(Position { line: 4, column: 5 }), "{value}");
            assert_eq!(err.path, "list[1]");
            assert!(
                err.message.contains(what)
                    && err.message.contains(&format!("quote it: \"{value}\"")),
                "{value}: {err}"
            );
        }
    }

    #[test]
    fn tags_other_than_the_fields_own_are_refused() {
        let err = read("name: !!int 12\n").unwrap_err();
        assert!(
            err.message.contains("the tag \"!!int\" is not accepted"),
            "{err}"
        );
        let err = read("name: !custom x\n").unwrap_err();
        assert!(err.message.contains("\"!custom\""), "{err}");
    }

    #[test]
    fn a_wrong_boolean_is_shown_as_written_and_quotes_are_mentioned_only_when_there_were_some() {
        let plain = read("name: x\nflag: yes\n").unwrap_err();
        assert_eq!(
            plain.message,
            "expected true or false, found yes; write true or false"
        );
        let quoted = read("name: x\nflag: \"true\"\n").unwrap_err();
        assert_eq!(
            quoted.message,
            "expected true or false, found \"true\"; write true or false without quotes"
        );
    }

    #[test]
    fn booleans_are_true_or_false_only() {
        for value in ["yes", "on", "\"true\"", "1"] {
            let err = read(&format!("name: x\nflag: {value}\n")).unwrap_err();
            assert!(
                err.message.contains("expected true or false"),
                "{value}: {err}"
            );
            assert_eq!(err.path, "flag");
        }
    }

    #[test]
    fn unknown_fields_are_located_at_the_key_and_quoted() {
        let err = read("name: x\nlsit: []\n").unwrap_err();
        assert_eq!(err.at, Some(Position { line: 2, column: 1 }));
        assert!(
            err.message
                .starts_with("unknown field \"lsit\", expected one of `name`"),
            "{err}"
        );
        let long = "k".repeat(1_000);
        let err = read(&format!("name: x\n{long}: 1\n")).unwrap_err();
        assert!(err.to_string().len() < 400, "{err}");
    }

    #[test]
    fn type_errors_name_the_path_and_what_was_found() {
        let err = read("name: x\nlabels:\n  team: [a]\n").unwrap_err();
        assert_eq!(err.to_string(), "labels.team: expected text, found a list");
        let err = read("name: x\ncount: -1\n").unwrap_err();
        assert!(err.message.contains("whole number"), "{err}");
        let err = read("list: []\n").unwrap_err();
        assert_eq!(err.message, "missing field `name`");
        assert_eq!(err.at, Some(Position { line: 1, column: 1 }));
        let err = read("name: x\nkind: Other\n").unwrap_err();
        assert!(
            err.message
                .contains("unknown value \"Other\", expected `SubscriberSet`"),
            "{err}"
        );
    }
}
