//! An official account's own properties, as a manifest declares them (`spec.account`) and as
//! the service describes them: the fields subsync can manage, their documented limits, and the
//! checks a declared value passes before anything is planned or sent.
//!
//! One type, [`Properties`], serves every side: the declaration (a field left out is not
//! managed: never sent, never reported), what get_official_account_info said (a field left out
//! was not said), and what subsync last knew to be in force. The limits are the service's
//! (doc 60813: "cannot be adjusted"); they are bytes of UTF-8, not characters.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::quote::quote;

/// MaxSubscriberNum of an account created without one.
pub(crate) const DEFAULT_MAX_SUBSCRIBERS: u64 = 100_000;

/// The largest MaxSubscriberNum the API's integer field carries (an unsigned 32-bit integer).
pub(crate) const MAX_SUBSCRIBERS_RANGE: u64 = u32::MAX as u64;

/// A field of the account subsync can manage.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Field {
    Name,
    Introduction,
    FaceUrl,
    Organization,
    CustomString,
    MaxSubscribers,
}

impl Field {
    /// Every field, in the order they are shown and sent.
    pub(crate) const ALL: [Field; 6] = [
        Field::Name,
        Field::Introduction,
        Field::FaceUrl,
        Field::Organization,
        Field::CustomString,
        Field::MaxSubscribers,
    ];

    /// The key in a manifest (`spec.account.<key>`) and in JSON.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Introduction => "introduction",
            Field::FaceUrl => "faceUrl",
            Field::Organization => "organization",
            Field::CustomString => "customString",
            Field::MaxSubscribers => "maxSubscribers",
        }
    }

    /// The documented byte limit of a text field; `None` for the number.
    pub(crate) fn max_bytes(self) -> Option<usize> {
        match self {
            Field::Name => Some(150),
            Field::Introduction => Some(400),
            Field::FaceUrl | Field::Organization => Some(500),
            Field::CustomString => Some(3000),
            Field::MaxSubscribers => None,
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// One field's value: text, or MaxSubscriberNum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum Value {
    Number(u64),
    Text(String),
}

/// As people read it: text quoted and escaped (values from the service are untrusted), numbers
/// bare.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(n) => write!(f, "{n}"),
            Value::Text(t) => f.write_str(&quote(t)),
        }
    }
}

/// The account's own fields; each `None` is not declared (or not said, or not known).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(
    description = "The official account's own properties. Only the fields given are managed: the others are never sent or reported."
)]
pub struct Properties {
    /// The account's name: 1 to 150 bytes of UTF-8 (a CJK character is 3 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", length(min = 1, max = 150))]
    pub name: Option<String>,
    /// At most 400 bytes of UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", length(max = 400))]
    pub introduction: Option<String>,
    /// The avatar: an http(s) URL of at most 500 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        with = "String",
        length(max = 500),
        pattern(r"^[hH][tT][tT][pP][sS]?://")
    )]
    pub face_url: Option<String>,
    /// At most 500 bytes of UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", length(max = 500))]
    pub organization: Option<String>,
    /// At most 3000 bytes of UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", length(max = 3000))]
    pub custom_string: Option<String>,
    /// MaxSubscriberNum: how many subscribers the account may hold (1 to 4294967295; the
    /// service's default is 100000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "u64", range(min = 1, max = 4_294_967_295u64))]
    pub max_subscribers: Option<u64>,
}

impl Properties {
    pub(crate) fn get(&self, field: Field) -> Option<Value> {
        let text = |t: &Option<String>| t.clone().map(Value::Text);
        match field {
            Field::Name => text(&self.name),
            Field::Introduction => text(&self.introduction),
            Field::FaceUrl => text(&self.face_url),
            Field::Organization => text(&self.organization),
            Field::CustomString => text(&self.custom_string),
            Field::MaxSubscribers => self.max_subscribers.map(Value::Number),
        }
    }

    /// Sets `field` to `value` (a value of the other kind clears it: it cannot be that field's).
    pub(crate) fn set(&mut self, field: Field, value: Option<Value>) {
        let text = match &value {
            Some(Value::Text(t)) => Some(t.clone()),
            _ => None,
        };
        match field {
            Field::Name => self.name = text,
            Field::Introduction => self.introduction = text,
            Field::FaceUrl => self.face_url = text,
            Field::Organization => self.organization = text,
            Field::CustomString => self.custom_string = text,
            Field::MaxSubscribers => {
                self.max_subscribers = match value {
                    Some(Value::Number(n)) => Some(n),
                    _ => None,
                }
            }
        }
    }

    /// The fields present, with their values, in [`Field::ALL`]'s order.
    pub(crate) fn fields(&self) -> impl Iterator<Item = (Field, Value)> + '_ {
        Field::ALL
            .into_iter()
            .filter_map(|f| self.get(f).map(|v| (f, v)))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.fields().next().is_none()
    }

    /// `self` with every field `newer` has taken from `newer`.
    pub(crate) fn merged(&self, newer: &Properties) -> Properties {
        let mut out = self.clone();
        for (field, value) in newer.fields() {
            out.set(field, Some(value));
        }
        out
    }

    /// Only the fields `declared` has.
    pub(crate) fn restricted_to(&self, declared: &Properties) -> Properties {
        let mut out = Properties::default();
        for (field, _) in declared.fields() {
            out.set(field, self.get(field));
        }
        out
    }
}

/// The `spec.create` block: subsync may create the account when it is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(
    description = "Create the account when it does not exist (only with --allow-create / SUBSYNC_ALLOW_CREATE). Needs spec.account.name."
)]
pub(crate) struct Create {
    /// Owner_Account: the UserID that owns the new account (1 to 32 bytes of printable ASCII).
    #[schemars(length(min = 1, max = 32), pattern(r"^[!-~]([ -~]{0,30}[!-~])?$"))]
    pub(crate) owner: String,
}

/// Why `value` cannot be declared for `field`, in words for the manifest author.
pub(crate) fn check(field: Field, value: &Value) -> Result<(), String> {
    let key = field.key();
    match (field, value) {
        (Field::MaxSubscribers, Value::Number(n)) => match *n {
            0 => Err(format!(
                "spec.account.{key} must be at least 1 (the service's default is 100000)"
            )),
            n if n > MAX_SUBSCRIBERS_RANGE => Err(format!(
                "spec.account.{key} {n} is beyond the API's range; the most is {MAX_SUBSCRIBERS_RANGE}"
            )),
            _ => Ok(()),
        },
        (Field::MaxSubscribers, Value::Text(_)) => {
            Err(format!("spec.account.{key} must be a whole number"))
        }
        (_, Value::Number(_)) => Err(format!("spec.account.{key} must be text")),
        (_, Value::Text(text)) => check_text(field, text),
    }
}

fn check_text(field: Field, text: &str) -> Result<(), String> {
    let key = field.key();
    let max = field.max_bytes().unwrap_or(usize::MAX);
    if text.len() > max {
        return Err(format!(
            "spec.account.{key} is {} bytes of UTF-8; the service allows at most {max} (a CJK character takes 3)",
            text.len()
        ));
    }
    // Tabs and line breaks are text; other control characters are a paste gone wrong, and
    // would reach every terminal and chat message that shows the account.
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(format!(
            "spec.account.{key} {} contains the control character {}; remove it",
            quote(text),
            quote(&c.to_string())
        ));
    }
    match field {
        Field::Name if text.trim().is_empty() => Err(format!(
            "spec.account.{key} must not be empty; the service requires a name"
        )),
        Field::FaceUrl => check_face_url(text),
        _ => Ok(()),
    }
}

/// An avatar is fetched by every client that shows the account: an absolute http(s) URL with
/// a host, and no user name or password in it (a manifest is no place for a secret).
fn check_face_url(text: &str) -> Result<(), String> {
    let refuse = |shown: &str, why: &str| {
        Err(format!(
            "spec.account.faceUrl {} {why}; give an http:// or https:// URL",
            quote(shown)
        ))
    };
    let mut url = match url::Url::parse(text) {
        Ok(url) => url,
        Err(e) => return refuse(text, &format!("is not a URL ({e})")),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return refuse(text, &format!("has the scheme {}", quote(url.scheme())));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return refuse(text, "has no host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Shown without them: the message goes to CI logs and PR comments.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        return refuse(url.as_str(), "carries a user name or password");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(field: Field, t: &str) -> Result<(), String> {
        check(field, &Value::Text(t.into()))
    }

    #[test]
    fn byte_limits_count_utf8_bytes_not_characters() {
        assert!(text(Field::Name, &"x".repeat(150)).is_ok());
        let err = text(Field::Name, &"x".repeat(151)).unwrap_err();
        assert!(
            err.contains("151 bytes") && err.contains("at most 150"),
            "{err}"
        );
        // 50 CJK characters are 150 bytes; 51 are too many.
        assert!(text(Field::Name, &"周".repeat(50)).is_ok());
        assert!(text(Field::Name, &"周".repeat(51)).is_err());
        assert!(text(Field::Introduction, &"x".repeat(400)).is_ok());
        assert!(text(Field::Introduction, &"x".repeat(401)).is_err());
        assert!(text(Field::Organization, &"x".repeat(501)).is_err());
        assert!(text(Field::CustomString, &"x".repeat(3000)).is_ok());
        assert!(text(Field::CustomString, &"x".repeat(3001)).is_err());
    }

    #[test]
    fn max_subscribers_is_a_positive_32_bit_count() {
        let n = |n: u64| check(Field::MaxSubscribers, &Value::Number(n));
        assert!(n(1).is_ok() && n(100_000).is_ok() && n(4_294_967_295).is_ok());
        assert!(n(0).unwrap_err().contains("at least 1"));
        assert!(
            n(4_294_967_296)
                .unwrap_err()
                .contains("beyond the API's range")
        );
    }

    #[test]
    fn a_face_url_is_an_http_url_with_a_host_and_no_credentials() {
        assert!(text(Field::FaceUrl, "https://cdn.example.com/a.png").is_ok());
        assert!(text(Field::FaceUrl, "http://cdn.example.com/a.png").is_ok());
        for bad in [
            "cdn.example.com/a.png",
            "ftp://cdn.example.com/a.png",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "https://user:secret@cdn.example.com/a.png",
            "",
        ] {
            let err = text(Field::FaceUrl, bad).unwrap_err();
            assert!(err.contains("http:// or https://"), "{bad}: {err}");
            assert!(!err.contains("secret@"), "{err}");
        }
        assert!(text(Field::FaceUrl, &format!("https://x.io/{}", "a".repeat(490))).is_err());
    }

    #[test]
    fn control_characters_are_refused_escaped_but_line_breaks_are_text() {
        assert!(text(Field::Introduction, "line one\nline two\tend").is_ok());
        let err = text(Field::Name, "a\u{1b}[31mred").unwrap_err();
        assert!(err.contains("\\u{1b}") && !err.contains('\u{1b}'), "{err}");
        assert!(
            text(Field::Name, " ")
                .unwrap_err()
                .contains("must not be empty")
        );
    }

    #[test]
    fn merging_and_restricting_keep_to_the_fields_given() {
        let live = Properties {
            name: Some("Old".into()),
            max_subscribers: Some(50),
            ..Properties::default()
        };
        let set = Properties {
            max_subscribers: Some(80),
            ..Properties::default()
        };
        let merged = live.merged(&set);
        assert_eq!(merged.name.as_deref(), Some("Old"));
        assert_eq!(merged.max_subscribers, Some(80));
        assert_eq!(live.restricted_to(&set).name, None);
        assert_eq!(
            serde_json::to_string(&merged).unwrap(),
            r#"{"name":"Old","maxSubscribers":80}"#
        );
    }
}
