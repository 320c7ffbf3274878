//! The plan as JSON (`plan --format json`, `plan --out`), written account by account in the
//! layout `serde_json::to_string_pretty` gives a whole [`Plan`](crate::plan::Plan): the same
//! bytes, without holding the plan.

use std::io::Write;

use serde::Serialize;

use super::PlanSink;
use crate::plan::{AccountPlan, PlanHeader, PlanSummary};

pub(crate) struct JsonSink<W> {
    out: W,
    accounts: usize,
}

impl<W: Write> JsonSink<W> {
    pub(crate) fn new(out: W) -> JsonSink<W> {
        JsonSink { out, accounts: 0 }
    }

    pub(crate) fn into_inner(self) -> W {
        self.out
    }
}

/// `value` pretty-printed, its lines after the first indented by `indent` spaces (the first
/// follows a key already written at that depth).
fn nested(value: &impl Serialize, indent: usize) -> std::io::Result<String> {
    let text = serde_json::to_string_pretty(value)?;
    Ok(text.replace('\n', &format!("\n{}", " ".repeat(indent))))
}

impl<W: Write> PlanSink for JsonSink<W> {
    fn header(&mut self, h: &PlanHeader) -> std::io::Result<()> {
        let mut head = String::from("{\n");
        let fields: [(&str, String); 5] = [
            ("format_version", nested(&h.format_version, 2)?),
            ("lineage", nested(&h.lineage, 2)?),
            ("serial", nested(&h.serial, 2)?),
            ("manifest_digest", nested(&h.manifest_digest, 2)?),
            ("manifest_paths", nested(&h.manifest_paths, 2)?),
        ];
        for (key, value) in fields {
            head.push_str(&format!("  \"{key}\": {value},\n"));
        }
        head.push_str("  \"accounts\": [");
        self.out.write_all(head.as_bytes())
    }

    fn account(&mut self, a: &AccountPlan) -> std::io::Result<()> {
        let separator = if self.accounts == 0 {
            "\n    "
        } else {
            ",\n    "
        };
        self.accounts += 1;
        write!(self.out, "{separator}{}", nested(a, 4)?)
    }

    fn end(&mut self, s: &PlanSummary) -> std::io::Result<()> {
        let close = if self.accounts == 0 { "]" } else { "\n  ]" };
        write!(self.out, "{close},\n  \"summary\": {}\n}}\n", nested(s, 2)?)?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_writes_what_serde_writes_for_the_whole_plan() {
        let whole_plan = crate::report::plan_text::tests::sample(3);
        for accounts in [0, 1, 2] {
            let mut plan = whole_plan.clone();
            plan.accounts.truncate(accounts);
            let mut out = Vec::new();
            crate::report::render(&plan, &mut JsonSink::new(&mut out)).unwrap();
            let whole = serde_json::to_string_pretty(&plan).unwrap() + "\n";
            assert_eq!(
                String::from_utf8(out).unwrap(),
                whole,
                "{accounts} accounts"
            );
        }
    }
}
