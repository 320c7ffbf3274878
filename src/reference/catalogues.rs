//! The pages that list what the code enumerates: the metrics (from the registry), the
//! notification events (`notifications::event::Kind`), the API's error codes
//! (`tencent::codes`) and the JSON Schemas (`schema`).

use std::fmt::Write as _;

use serde_json::Value;

use super::{cell, code};
use crate::apply::RetryPolicy;
use crate::notifications::event::EventType;
use crate::settings::durations;
use crate::tencent::codes::{self, CodeInfo, ErrorClass};

/// Every family of the registry with its type, labels and help, read back from the
/// OpenMetrics encoding of [`crate::metrics::Metrics::specimen`].
pub(crate) fn metrics() -> Result<String, String> {
    let encoded = crate::metrics::Metrics::specimen().encode();
    let mut families: Vec<Family> = Vec::new();
    for line in encoded.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            families.push(Family {
                name: name.into(),
                help: help.into(),
                ..Family::default()
            });
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let kind = rest.split_once(' ').map_or("", |(_, k)| k);
            if let Some(f) = families.last_mut() {
                f.kind = kind.into();
            }
        } else if !line.starts_with('#')
            && let Some(f) = families.last_mut()
        {
            f.samples += 1;
            if let Some((_, labels)) = line.split_once('{') {
                let labels = labels.split('}').next().unwrap_or_default();
                for label in labels.split(',').filter_map(|l| l.split('=').next()) {
                    if label != "le" && !f.labels.iter().any(|l| l == label) {
                        f.labels.push(label.into());
                    }
                }
            }
        }
    }
    if let Some(bare) = families.iter().find(|f| f.samples == 0) {
        return Err(format!(
            "metric {} has no series in Metrics::specimen (src/metrics.rs): add one there",
            bare.name
        ));
    }
    let mut out = String::from(
        "What `subsync watch` serves at `/metrics`, in the OpenMetrics text format. `account` is \
         the official account id. How to use them: [Operations](../operations.md).\n\n\
         | metric | type | labels | meaning |\n|---|---|---|---|\n",
    );
    for f in &families {
        let shown = match f.kind.as_str() {
            "counter" => code(&format!("{}_total", f.name)),
            "histogram" => format!("{} (`_bucket`, `_sum`, `_count`)", code(&f.name)),
            _ => code(&f.name),
        };
        let labels: Vec<String> = f.labels.iter().map(|l| code(l)).collect();
        let _ = writeln!(
            out,
            "| {shown} | {} | {} | {} |",
            f.kind,
            labels.join(", "),
            cell(&f.help)
        );
    }
    Ok(out)
}

#[derive(Default)]
struct Family {
    name: String,
    kind: String,
    help: String,
    labels: Vec<String>,
    samples: usize,
}

/// Every event a notification sink can ask for, by the name its `events:` list takes.
pub(crate) fn events() -> String {
    let mut out = String::from(
        "The names a sink's `events:` list takes (default: all). A *condition* is told when it \
         appears and again only after it went away and came back; the others are told each \
         time. How sinks are configured: [Notifications](../notifications.md).\n\n\
         | event | when | told |\n|---|---|---|\n",
    );
    for kind in EventType::ALL {
        let told = if kind.is_condition() {
            "condition"
        } else {
            "each time"
        };
        let _ = writeln!(
            out,
            "| {} | {} | {told} |",
            code(kind.name()),
            cell(kind.description())
        );
    }
    out
}

/// The codes table, what each class makes subsync do, and the pseudo-codes.
pub(crate) fn codes() -> String {
    let policy = RetryPolicy::default();
    let mut out = String::from(
        "What subsync does with each answer code of the API (`src/tencent/codes.rs` is the \
         one table every decision reads). Codes appear in reports, the ledger and the \
         `code` label of `subsync_api_requests_total`.\n\n## Classes\n\n\
         | class | what subsync does | attempts per call (retry policy) |\n|---|---|---|\n",
    );
    for class in ErrorClass::ALL {
        let attempts = match class {
            ErrorClass::Retryable => policy.max_attempts.to_string(),
            ErrorClass::RateLimited => policy.max_rate_limited_attempts.to_string(),
            ErrorClass::Malformed => policy.max_malformed_attempts.to_string(),
            ErrorClass::Unreachable => policy.max_unreachable_attempts.to_string(),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {attempts} |",
            code(&format!("{class:?}")),
            cell(class.description())
        );
    }
    let b = policy.backoff;
    out.push_str(&format!(
        "\nPauses between attempts start at {} and double up to {}, each jittered into the \
         upper half of its window; a 429's `Retry-After` is honoured up to {}.\n",
        durations::show(b.first),
        durations::show(b.cap),
        durations::show(policy.max_retry_after)
    ));
    out.push_str("\n## Service codes\n\n");
    rows(&mut out, codes::TABLE.iter().copied());
    out.push_str(
        "\n## Codes outside the API\n\nFailures that are not the service's own answer are \
         recorded as negative codes; an HTTP status other than 200 is its negative.\n\n",
    );
    let statuses = [429, 500, 502, 503, 504, 404].map(codes::http);
    rows(&mut out, codes::PSEUDO.iter().copied().chain(statuses));
    out.push_str(
        "\nAny other status is recorded the same way: 5xx as a network or gateway fault, the \
         rest as not the documented answer. A code in none of these tables is `Unknown`.\n",
    );
    out
}

fn rows(out: &mut String, infos: impl Iterator<Item = CodeInfo>) {
    out.push_str(
        "| code | meaning | class | one member can cause it for the batch | hint |\n\
         |--:|---|---|---|---|\n",
    );
    for info in infos {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            info.code,
            cell(info.meaning),
            code(&format!("{:?}", info.class)),
            if info.member_caused { "yes" } else { "" },
            cell(info.hint)
        );
    }
}

/// The JSON Schemas, each with its fields as the schema describes them.
pub(crate) fn schemas() -> String {
    let mut out = String::from(
        "The committed schemas under [`schema/`](../../schema) are generated from the Rust \
         types (`src/schema.rs`); a test fails when they differ (`UPDATE_SCHEMAS=1 cargo test \
         --test it manifests::` rewrites them). `subsync schema NAME` prints one.\n",
    );
    for (file, schema) in crate::schema::all() {
        let title = schema["title"].as_str().unwrap_or(file);
        let _ = writeln!(
            out,
            "\n## {file}\n\n[{title}](../../schema/{file}): {}\n",
            cell(schema["description"].as_str().unwrap_or_default())
        );
        fields(&mut out, &schema);
        if let Some(defs) = schema["$defs"].as_object() {
            for (name, def) in defs {
                if def["properties"].is_object() {
                    let _ = writeln!(out, "\n### {file}: {name}\n");
                    if let Some(d) = def["description"].as_str() {
                        let _ = writeln!(out, "{}\n", cell(d));
                    }
                    fields(&mut out, def);
                } else if let Some(d) = def["description"].as_str() {
                    let _ = writeln!(out, "\n### {file}: {name}\n\n{} ({})", cell(d), kind(def));
                }
            }
        }
    }
    out
}

fn fields(out: &mut String, object: &Value) {
    let Some(properties) = object["properties"].as_object() else {
        return;
    };
    let required: Vec<&str> = object["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.push_str("| field | type | required | meaning |\n|---|---|---|---|\n");
    for (name, property) in properties {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            code(name),
            kind(property),
            if required.contains(&name.as_str()) {
                "yes"
            } else {
                ""
            },
            cell(property["description"].as_str().unwrap_or_default())
        );
    }
}

/// A property's type in words: `string`, `array of Account`, `integer or null`, an enum's
/// values.
fn kind(property: &Value) -> String {
    if let Some(reference) = property["$ref"].as_str() {
        return reference.rsplit('/').next().unwrap_or(reference).to_owned();
    }
    if let Some(values) = property["enum"].as_array() {
        let values: Vec<String> = values.iter().map(|v| code(&v.to_string())).collect();
        return values.join(", ");
    }
    if let Some(value) = property.get("const") {
        return code(&value.to_string());
    }
    for combinator in ["anyOf", "oneOf"] {
        if let Some(options) = property[combinator].as_array() {
            let options: Vec<String> = options.iter().map(kind).collect();
            return options.join(" or ");
        }
    }
    let types: Vec<String> = match &property["type"] {
        Value::String(t) => vec![t.clone()],
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => vec![],
    };
    let types: Vec<String> = types
        .into_iter()
        .map(|t| match t.as_str() {
            "array" => format!("array of {}", kind(&property["items"])),
            _ => t,
        })
        .collect();
    if types.is_empty() {
        "any".into()
    } else {
        types.join(" or ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_family_is_listed_with_its_type_and_labels() {
        let page = metrics().unwrap();
        assert!(
            page.contains("| `subsync_api_requests_total` | counter | `command`, `code` |"),
            "{page}"
        );
        assert!(page.contains("| `subsync_leader` | gauge |  |"), "{page}");
    }

    #[test]
    fn every_code_of_the_table_is_listed_with_its_class() {
        let page = codes();
        for info in codes::TABLE {
            assert!(
                page.contains(&format!("| {} |", info.code)),
                "{}",
                info.code
            );
        }
        assert!(page.contains(
            "| 130006 | the official account's subscriber count reached its limit | `AccountFull` |"
        ));
    }

    #[test]
    fn a_schema_type_is_said_in_words() {
        let v: Value =
            serde_json::json!({"type": ["array", "null"], "items": {"$ref": "#/$defs/Account"}});
        assert_eq!(kind(&v), "array of Account or null");
    }
}
