//! Quoting untrusted values for messages.
//!
//! Manifests, subscriber files and saved plans come from pull requests, and what subsync prints
//! about them lands in terminals, CI logs and PR comments. Every value quoted in an error or a
//! warning therefore goes through [`quote`]: control characters and anything outside printable
//! ASCII are escaped (so no escape sequence reaches a terminal), and long values are cut (so a
//! 200 MB UserID gives a one-line message, not a 200 MB one).

/// Characters of a value shown before it is cut.
pub(crate) const SHOWN: usize = 64;

/// `value` in double quotes, escaped, and cut after [`SHOWN`] characters with the count of the
/// rest: `"abc\u{1b}[31m"`, `"xxxx…" (+199999936 more bytes)`.
pub(crate) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(SHOWN * 2) + 2);
    out.push('"');
    for (shown, (i, c)) in value.char_indices().enumerate() {
        if shown == SHOWN {
            out.push_str("…\"");
            out.push_str(&format!(" (+{})", more_bytes(value.len() - i)));
            return out;
        }
        push_escaped(&mut out, c);
    }
    out.push('"');
    out
}

/// Text from outside (a server's error message, a database's) made safe to print, log and
/// store: escaped as [`quote`] escapes, without the quotes, and cut after `max` characters with
/// the count of the rest.
pub(crate) fn clean(value: &str, max: usize) -> String {
    let mut out = String::with_capacity(value.len().min(max * 2));
    for (shown, (i, c)) in value.char_indices().enumerate() {
        if shown == max {
            out.push_str(&format!("… (+{})", more_bytes(value.len() - i)));
            return out;
        }
        if c == '"' {
            out.push('"');
        } else {
            push_escaped(&mut out, c);
        }
    }
    out
}

/// `value` as it is when it is printable ASCII (a valid UserID always is), else cleaned and cut
/// like [`clean`]: for values shown bare, in lists.
pub(crate) fn safe(value: &str) -> std::borrow::Cow<'_, str> {
    if value.len() <= SHOWN && value.chars().all(|c| (' '..='~').contains(&c)) {
        std::borrow::Cow::Borrowed(value)
    } else {
        std::borrow::Cow::Owned(clean(value, SHOWN))
    }
}

/// Like [`quote`] for bytes that may not be UTF-8 (a subscriber file's line).
pub(crate) fn quote_bytes(value: &[u8]) -> String {
    quote(&String::from_utf8_lossy(value))
}

fn more_bytes(n: usize) -> String {
    crate::words::count(n as u64, "more byte", "more bytes")
}

/// `text`, a URL or something shaped like one, without a password: neither the userinfo's
/// nor a `password` parameter's. Text that does not parse as a URL is shown only up to its
/// host (anything before an `@` may be a password).
pub(crate) fn without_password(text: &str) -> String {
    let Ok(mut url) = url::Url::parse(text) else {
        if !text.contains('@') && !text.contains("password") {
            return text.to_owned();
        }
        let scheme_end = text.find("://").map_or(0, |i| i + 3);
        let rest = &text[scheme_end..];
        let after_at = rest.rfind('@').map_or(rest, |i| &rest[i + 1..]);
        let host: String = after_at
            .chars()
            .take_while(|c| !matches!(c, '/' | '?'))
            .take(100)
            .collect();
        let cut = if host.len() < after_at.len() {
            "/…"
        } else {
            ""
        };
        return format!("{}{host}{cut}", &text[..scheme_end]);
    };
    if url.password().is_some() {
        let _ = url.set_password(None);
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "password")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if pairs.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
    }
    url.to_string()
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        ' '..='~' => out.push(c),
        c => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ascii_is_shown_as_is() {
        assert_eq!(quote("107867"), "\"107867\"");
        assert_eq!(quote("a \"b\""), "\"a \\\"b\\\"\"");
    }

    #[test]
    fn control_characters_and_non_ascii_are_escaped() {
        assert_eq!(quote("\u{1b}[31mred"), "\"\\u{1b}[31mred\"");
        assert_eq!(quote("zoë\n"), "\"zo\\u{eb}\\n\"");
        assert!(!quote("\u{7}\u{9b}").chars().any(char::is_control));
    }

    #[test]
    fn long_values_are_cut_with_the_count_of_the_rest() {
        let long = "x".repeat(200_000);
        let q = quote(&long);
        assert_eq!(q, format!("\"{}…\" (+199936 more bytes)", "x".repeat(64)));
        assert_eq!(quote(&"y".repeat(64)), format!("\"{}\"", "y".repeat(64)));
    }

    #[test]
    fn cleaned_text_keeps_quotes_but_no_control_characters_and_is_cut() {
        assert_eq!(clean("say \"hi\"", 80), "say \"hi\"");
        assert_eq!(
            clean("\u{1b}]8;;http://x\u{7}link\r\nFORGED", 80),
            "\\u{1b}]8;;http://x\\u{7}link\\r\\nFORGED"
        );
        assert_eq!(clean(&"z".repeat(10), 4), "zzzz… (+6 more bytes)");
    }

    #[test]
    fn safe_leaves_valid_ids_alone_and_cleans_anything_else() {
        assert_eq!(safe("107867"), "107867");
        assert_eq!(safe("a\\b"), "a\\b");
        assert_eq!(safe("x\ny"), "x\\ny");
        assert!(safe(&"q".repeat(1000)).len() < 100);
    }

    #[test]
    fn a_url_is_shown_without_its_password() {
        assert_eq!(
            without_password("postgres://u:hunter2@db:5/x?sslmode=require&password=hunter3"),
            "postgres://u@db:5/x?sslmode=require"
        );
        assert_eq!(
            without_password("postgres://u:hunter2@db:notaport/x"),
            "postgres://db:notaport/…"
        );
        assert_eq!(without_password("plain/dir"), "plain/dir");
    }

    #[test]
    fn invalid_utf8_is_replaced_not_passed_through() {
        assert_eq!(quote_bytes(b"a\xffb"), "\"a\\u{fffd}b\"");
    }
}
