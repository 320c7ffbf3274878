//! What other YAML tools read an unquoted (plain) scalar as.
//!
//! A GitOps repository is read by many tools: yq, kustomize, PyYAML scripts, editors with the
//! JSON Schema. YAML 1.1 tools (PyYAML, older Go libraries) and YAML 1.2 core-schema tools turn
//! some plain scalars into nulls, booleans, numbers or dates. subsync wants text, so a plain
//! scalar that either version would read as anything else must be quoted, or the file would
//! mean one thing to subsync and another to the reviewer's tools. The one exception is a
//! canonical decimal integer small enough for every tool to keep exact ([`is_safe_integer`]):
//! numeric UserIDs are common and reading them as numbers changes nothing.
//!
//! The rules are the union of the YAML 1.2 core schema and the YAML 1.1 type repository as
//! PyYAML implements it (plus the 1.1 spec's `y`/`n`), written out without regular expressions.

/// What a plain scalar resolves to under YAML 1.1 or 1.2, whichever is not text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolved {
    Null,
    Bool,
    Int,
    Float,
    Timestamp,
    /// `<<` (merge) or `=` (value): special keys in YAML 1.1.
    Special,
    Str,
}

impl Resolved {
    /// In words, for messages.
    pub(crate) fn described(self) -> &'static str {
        match self {
            Resolved::Null => "null (no value)",
            Resolved::Bool => "a boolean",
            Resolved::Int => "a number",
            Resolved::Float => "a floating-point number",
            Resolved::Timestamp => "a date",
            Resolved::Special => "a YAML 1.1 merge or value key",
            Resolved::Str => "text",
        }
    }
}

/// The largest integer every tool keeps exact (JavaScript's `Number.MAX_SAFE_INTEGER`).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

pub(crate) fn resolve(s: &str) -> Resolved {
    if is_null(s) {
        Resolved::Null
    } else if is_bool(s) {
        Resolved::Bool
    } else if is_int(s) {
        Resolved::Int
    } else if is_float(s) {
        Resolved::Float
    } else if is_timestamp(s) {
        Resolved::Timestamp
    } else if s == "<<" || s == "=" {
        Resolved::Special
    } else {
        Resolved::Str
    }
}

/// `0` or `[1-9][0-9]*` up to 2^53 - 1: read as the same number by every tool, and written
/// back as the same text.
pub(crate) fn is_safe_integer(s: &str) -> bool {
    let canonical = s == "0" || (s.starts_with(|c: char| matches!(c, '1'..='9')) && digits(s));
    canonical && s.parse::<u64>().is_ok_and(|n| n <= MAX_SAFE_INTEGER)
}

/// The 1.2 core booleans, which both versions agree on.
pub(crate) fn core_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

pub(crate) fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

fn is_bool(s: &str) -> bool {
    core_bool(s).is_some()
        || matches!(
            s,
            "y" | "Y"
                | "yes"
                | "Yes"
                | "YES"
                | "n"
                | "N"
                | "no"
                | "No"
                | "NO"
                | "on"
                | "On"
                | "ON"
                | "off"
                | "Off"
                | "OFF"
        )
}

fn strip_sign(s: &str) -> &str {
    s.strip_prefix(['-', '+']).unwrap_or(s)
}

fn all(s: &str, ok: impl Fn(u8) -> bool) -> bool {
    !s.is_empty() && s.bytes().all(ok)
}

fn digits(s: &str) -> bool {
    all(s, |b| b.is_ascii_digit())
}

fn is_int(s: &str) -> bool {
    let t = strip_sign(s);
    // 1.2 core: [-+]?[0-9]+, 0o[0-7]+, 0x[0-9a-fA-F]+
    if digits(t) {
        return true;
    }
    if let Some(rest) = s.strip_prefix("0o") {
        return all(rest, |b| matches!(b, b'0'..=b'7'));
    }
    // 1.1: binary, hexadecimal, octal, decimal with underscores, sexagesimal
    if let Some(rest) = t.strip_prefix("0b") {
        return all(rest, |b| matches!(b, b'0' | b'1' | b'_'));
    }
    if let Some(rest) = t.strip_prefix("0x") {
        return all(rest, |b| b.is_ascii_hexdigit() || b == b'_');
    }
    if let Some(rest) = t.strip_prefix('0') {
        return all(rest, |b| matches!(b, b'0'..=b'7' | b'_'));
    }
    if !t.starts_with(|c: char| matches!(c, '1'..='9')) {
        return false;
    }
    match t.split_once(':') {
        None => all(t, |b| b.is_ascii_digit() || b == b'_'),
        Some((head, tail)) => all(head, |b| b.is_ascii_digit() || b == b'_') && sexagesimal(tail),
    }
}

/// `[0-5]?[0-9](:[0-5]?[0-9])*`, the part after the first colon of a base-60 number.
fn sexagesimal(tail: &str) -> bool {
    tail.split(':').all(|part| match part.as_bytes() {
        [d] => d.is_ascii_digit(),
        [a, b] => matches!(a, b'0'..=b'5') && b.is_ascii_digit(),
        _ => false,
    })
}

fn is_float(s: &str) -> bool {
    let t = strip_sign(s);
    if matches!(t, ".inf" | ".Inf" | ".INF") || matches!(s, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    core_float(t) || yaml11_float(t)
}

/// 1.2 core: (\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, sign already stripped.
fn core_float(t: &str) -> bool {
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(strip_sign(e)));
    mantissa_ok && exponent_ok
}

/// 1.1 (PyYAML): [0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)?, \.[0-9][0-9_]*([eE][-+][0-9]+)?,
/// and base 60 with a fraction, [0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*; sign already stripped.
fn yaml11_float(t: &str) -> bool {
    let (body, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let exponent_ok = exponent
        .is_none_or(|e| matches!(e.as_bytes().first(), Some(b'-' | b'+')) && digits(&e[1..]));
    let Some((int, frac)) = body.rsplit_once('.') else {
        return false;
    };
    let frac_ok = frac.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    let int_ok = if int.is_empty() {
        frac.starts_with(|c: char| c.is_ascii_digit())
    } else if let Some((head, tail)) = int.split_once(':') {
        exponent.is_none()
            && head.starts_with(|c: char| c.is_ascii_digit())
            && all(head, |b| b.is_ascii_digit() || b == b'_')
            && sexagesimal(tail)
    } else {
        int.starts_with(|c: char| c.is_ascii_digit())
            && all(int, |b| b.is_ascii_digit() || b == b'_')
    };
    int_ok && frac_ok && exponent_ok
}

/// YYYY-MM-DD, optionally followed by a time (`T` or spaces, hh:mm:ss, fraction, zone).
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let n = |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if !(n(0..4) && b.get(4) == Some(&b'-')) {
        return false;
    }
    if s.len() == 10 && n(5..7) && b[7] == b'-' && n(8..10) {
        return true;
    }
    // The long form allows one-digit months and days and needs a time.
    let rest = &s[5..];
    let Some((month, rest)) = rest.split_once('-') else {
        return false;
    };
    let day_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let two = |p: &str| (1..=2).contains(&p.len()) && digits(p);
    if !two(month) || !(1..=2).contains(&day_len) {
        return false;
    }
    let time = rest[day_len..].trim_start_matches([' ', '\t']);
    let separated = rest[day_len..].starts_with(['T', 't', ' ', '\t']);
    let time = time.strip_prefix(['T', 't']).unwrap_or(time);
    let time_b = time.as_bytes();
    separated
        && time.len() >= 7
        && two(time.split(':').next().unwrap_or(""))
        && time.split(':').count() >= 3
        && time_b
            .iter()
            .take_while(|c| c.is_ascii_digit() || **c == b':')
            .count()
            >= 7
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_examples_resolve_to_what_other_tools_read() {
        for (s, r) in [
            ("0123", Resolved::Int),
            ("0x1F", Resolved::Int),
            ("1e3", Resolved::Float),
            ("true", Resolved::Bool),
            ("yes", Resolved::Bool),
            ("~", Resolved::Null),
            ("null", Resolved::Null),
            ("12:30", Resolved::Int),
            ("1_000", Resolved::Int),
            ("2024-01-01", Resolved::Timestamp),
        ] {
            assert_eq!(resolve(s), r, "{s}");
        }
    }

    #[test]
    fn every_family_of_non_text_is_recognised() {
        for s in ["", "Null", "NULL"] {
            assert_eq!(resolve(s), Resolved::Null, "{s:?}");
        }
        for s in ["True", "FALSE", "no", "On", "OFF", "y", "N"] {
            assert_eq!(resolve(s), Resolved::Bool, "{s}");
        }
        for s in [
            "0",
            "-12",
            "+7",
            "0o17",
            "0b1010",
            "-0b1_0",
            "0x_ff",
            "017",
            "190:20:30",
            "1_2_3",
        ] {
            assert_eq!(resolve(s), Resolved::Int, "{s}");
        }
        for s in [
            "1.5",
            ".5",
            "-.5e3",
            "1.",
            "1e-3",
            "6.8523015e+5",
            "685.230_15e+03",
            "190:20:30.15",
            ".inf",
            "-.Inf",
            ".NaN",
        ] {
            assert_eq!(resolve(s), Resolved::Float, "{s}");
        }
        for s in [
            "2001-12-14t21:59:43.10-05:00",
            "2001-12-14 21:59:43.10 -5",
            "2002-1-1 1:00:00",
        ] {
            assert_eq!(resolve(s), Resolved::Timestamp, "{s}");
        }
        assert_eq!(resolve("<<"), Resolved::Special);
    }

    #[test]
    fn ordinary_user_ids_are_text() {
        for s in [
            "alice",
            "vip-001",
            "user_42",
            "12a",
            "1.2.3",
            "0x",
            "0b2",
            "12:61",
            "1-2",
            "2024-01-01x",
            ".",
            "e3",
            "yess",
            "-",
            "#tag",
            "@TOA#_news",
            "+",
            "1__:",
        ] {
            assert_eq!(resolve(s), Resolved::Str, "{s}");
        }
    }

    #[test]
    fn only_canonical_integers_that_every_tool_keeps_exact_pass_unquoted() {
        for s in ["0", "107867", "966582476", "9007199254740991"] {
            assert!(is_safe_integer(s), "{s}");
        }
        for s in [
            "0123",
            "+1",
            "-1",
            "1_000",
            "9007199254740992",
            "1e3",
            "",
            "12a",
        ] {
            assert!(!is_safe_integer(s), "{s}");
        }
    }
}
