//! Rendering for people and pipelines: plans (text, Markdown, diff), apply summaries and status.
//!
//! Renderers are pure functions from data to `String`; the CLI decides where the text goes.

mod import;
mod plan_diff;
mod plan_json;
mod plan_markdown;
mod plan_text;
mod properties;
mod sink;
mod status;
mod summary;

pub(crate) use import::{ImportReport, import_text};
pub(crate) use plan_diff::DiffSink;
pub(crate) use plan_json::JsonSink;
pub(crate) use plan_markdown::MarkdownSink;
pub(crate) use plan_text::TextSink;
pub(crate) use sink::PlanSink;
#[cfg(test)]
pub(crate) use sink::render;
pub(crate) use status::{StatusReport, status_text};
pub(crate) use summary::summary_text;

use crate::plan::PlanSummary;
use crate::words::{count, noun};

/// `17191` as `17,191`: counts as people read them, in reports, progress and notifications.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Entries shown per list before "... and N more".
pub(crate) const LIST_CUT: usize = 20;

/// The plan's bottom line, the same words in every format: what apply would send, or why it
/// would still end short (exit 2) with nothing to send, or that nothing is left to do. "No
/// changes" only when the ledger matches the manifests: adds a known limit rules out, in sets
/// that accept the shortfall, are listed in the plan and said to be accepted.
fn verdict(s: &PlanSummary) -> Option<String> {
    if !s.needs_apply {
        if s.over_limit_accepted > 0 {
            return Some(format!(
                "Nothing to send: the {} {} over a known MaxSubscriberNum, a shortfall the manifests accept (acceptShortfall: true); apply sends {} only once the account has room.",
                s.over_limit_accepted,
                noun(s.over_limit_accepted, "add is", "adds are"),
                noun(s.over_limit_accepted, "it", "them")
            ));
        }
        return Some("No changes: the ledger matches the manifests.".to_owned());
    }
    if s.add + s.remove + s.property_changes + s.create > 0 {
        return None;
    }
    let mut why = Vec::new();
    if s.held_back > 0 {
        why.push(format!(
            "{} held back by a prune guard",
            count(s.held_back, "removal", "removals")
        ));
    }
    let not_accepted = s.over_limit_not_accepted();
    if not_accepted > 0 {
        why.push(format!(
            "{} over a known MaxSubscriberNum",
            count(not_accepted, "desired subscriber", "desired subscribers")
        ));
    }
    if s.properties_refused > 0 {
        why.push(format!(
            "{} refused",
            count(
                s.properties_refused,
                "account property change",
                "account property changes"
            )
        ));
    }
    Some(format!(
        "Nothing to send, but apply would end short of the manifests (exit 2): {}; see the warnings.",
        why.join(", ")
    ))
}

/// What a plan does to accounts' own properties, for a total line (empty when nothing).
fn own_total(s: &PlanSummary) -> String {
    properties::counted(s.property_changes, "to change")
        + &properties::created(s.create, "to create")
}

/// A short prefix of a lineage or digest, enough to tell two apart.
fn short(id: &str) -> &str {
    let start = id.find(':').map_or(0, |i| i + 1);
    id.get(start..start + 12).unwrap_or(&id[start..])
}

/// What a recorded code is called, from the one codes table.
fn code_text(code: i64) -> String {
    crate::tencent::codes::name(code)
}
