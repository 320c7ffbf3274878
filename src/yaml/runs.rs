//! Long lists read without the parser: runs of block-sequence entries, one quoted scalar a
//! line, found by a scan of the lines before parsing.
//!
//! A manifest may list 100,000 subscribers inline, one `- "user-1"` a line, and the parser
//! spends thousands of instructions on each. A line of exactly that form (an indent, `- `, a
//! double- or single-quoted scalar of printable ASCII with no escape, quote or backslash
//! inside, and nothing after it but spaces) says all there is to know about its entry: its
//! text, and its place. So [`find`] gathers each run of such lines that share an indent, and
//! [`Runs::condensed`] gives the text with every line of a run but the first emptied (its line
//! break kept, so every other line and column stays where it was). The parser reads the
//! condensed text, and the tree builder puts a run's entries back after its first one.
//!
//! The parser confirms each run: the builder takes the entries only when the parser's event
//! for the run's first line is that very scalar, the first entry of a block sequence that
//! starts on that line (a run inside a block scalar or a flow collection is no such thing).
//! A block sequence's next entries at its own indent can only be its entries, and a line that
//! holds nothing but a quoted scalar ends that scalar, so the parser would have produced the
//! same events for the emptied lines. Anything else (a run not confirmed, any error) makes the
//! caller parse the original text instead, so the outcome never depends on this scan.

use super::tree::Position;

/// Entries in a row below which a run is not worth the bookkeeping.
const MIN_RUN: usize = 8;

/// One entry of a run: its text (borrowed from the original) and where its scalar starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunEntry<'a> {
    pub(crate) value: &'a str,
    pub(crate) at: Position,
}

/// A run of entries at one indent, the first of which stays in the condensed text.
#[derive(Debug)]
pub(crate) struct ListRun<'a> {
    /// Where the sequence's `-` is on the first line.
    pub(crate) dash: Position,
    pub(crate) first: RunEntry<'a>,
    /// The entries after the first, in order: the lines emptied in the condensed text.
    pub(crate) rest: Vec<RunEntry<'a>>,
    /// Byte ranges of the lines to empty (entries, blank and comment lines between them).
    emptied: Vec<(usize, usize)>,
}

#[derive(Debug, Default)]
pub(crate) struct Runs<'a> {
    pub(crate) runs: Vec<ListRun<'a>>,
}

/// An entry line: its indent, its text, whether single- or double-quoted.
fn entry(line: &str) -> Option<(usize, &str)> {
    let bytes = line.as_bytes();
    let indent = bytes.iter().take_while(|&&b| b == b' ').count();
    let rest = bytes.get(indent..)?;
    let (&quote, rest) = rest.strip_prefix(b"- ")?.split_first()?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let len = rest
        .iter()
        .take_while(|&&b| (b' '..=b'~').contains(&b) && b != quote && b != b'\\')
        .count();
    let (&close, after) = rest.get(len..)?.split_first()?;
    if close != quote || !after.iter().all(|&b| b == b' ') {
        return None;
    }
    // The scan kept to ASCII, so `indent + 3` is a character boundary.
    let value = line.get(indent + 3..indent + 3 + len)?;
    Some((indent, value))
}

/// Lines that neither hold nor end an entry: blank, or a comment.
fn is_filler(line: &str) -> bool {
    let trimmed = line.trim_start_matches(' ');
    trimmed.is_empty() || trimmed.starts_with('#')
}

/// The runs of `text`. None at all when the text has a carriage return (the parser counts a
/// lone one as a line break, which this scan does not).
pub(crate) fn find(text: &str) -> Runs<'_> {
    let mut runs = Runs::default();
    if text.contains('\r') {
        return runs;
    }
    // (line number from 1, byte offset of the line, the line without its break)
    let mut lines = text
        .split('\n')
        .scan(0usize, |offset, line| {
            let start = *offset;
            *offset += line.len() + 1;
            Some((start, line))
        })
        .enumerate()
        .map(|(i, (start, line))| (i + 1, start, line))
        .peekable();
    while let Some((number, _, line)) = lines.next() {
        let Some((indent, value)) = entry(line) else {
            continue;
        };
        let at = |number: usize| Position {
            line: number,
            column: indent + 3,
        };
        let mut run = ListRun {
            dash: Position {
                line: number,
                column: indent + 1,
            },
            first: RunEntry {
                value,
                at: at(number),
            },
            rest: Vec::new(),
            emptied: Vec::new(),
        };
        // Fillers are emptied only when an entry follows them: the run ends at its last entry.
        let mut fillers = Vec::new();
        while let Some(&(number, start, line)) = lines.peek() {
            match entry(line) {
                Some((i, value)) if i == indent => {
                    run.emptied.append(&mut fillers);
                    run.emptied.push((start, start + line.len()));
                    run.rest.push(RunEntry {
                        value,
                        at: at(number),
                    });
                }
                None if is_filler(line) => fillers.push((start, start + line.len())),
                _ => break,
            }
            lines.next();
        }
        if run.rest.len() + 1 >= MIN_RUN {
            runs.runs.push(run);
        }
    }
    runs
}

impl Runs<'_> {
    pub(crate) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// `text` with the runs' emptied lines cut down to their line breaks.
    pub(crate) fn condensed(&self, text: &str) -> String {
        let emptied: usize = self
            .runs
            .iter()
            .flat_map(|r| &r.emptied)
            .map(|(start, end)| end - start)
            .sum();
        let mut out = String::with_capacity(text.len() - emptied);
        let mut from = 0;
        for (start, end) in self.runs.iter().flat_map(|r| &r.emptied) {
            out.push_str(&text[from..*start]);
            from = *end;
        }
        out.push_str(&text[from..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use std::borrow::Cow;

    use super::super::tree::{TreeLimits, build, parse};
    use super::*;

    /// The parser's own reading of `text`, without runs.
    fn parsed_as_written(text: &str, limits: &TreeLimits) -> String {
        format!(
            "{:?}",
            build(text, limits, &Runs::default(), |v| v).map(Option::unwrap_or_default)
        )
    }

    const LIMITS: TreeLimits = TreeLimits {
        max_depth: 8,
        max_nodes: 1000,
    };

    #[test]
    fn a_manifests_inline_list_is_read_as_one_run_and_confirmed() {
        let entries: String = (0..100)
            .map(|i| format!("    - \"user-{i:03}\"\n"))
            .collect();
        let text = format!(
            "apiVersion: subsync/v1\nspec:\n  subscribers:\n{entries}  # the end\n  prune: true\n"
        );
        let runs = find(&text);
        assert_eq!(runs.runs.len(), 1);
        assert_eq!(runs.runs[0].rest.len(), 99);
        assert_eq!(
            runs.runs[0].rest[98].at,
            Position {
                line: 103,
                column: 7
            }
        );
        let condensed = runs.condensed(&text);
        assert_eq!(condensed.lines().count(), text.lines().count());
        let fast = build(&condensed, &LIMITS, &runs, |v| Cow::Owned(v.into_owned()));
        let fast = fast.unwrap().expect("the run is confirmed");
        assert_eq!(
            format!("{:?}", Ok::<_, ()>(fast)),
            parsed_as_written(&text, &LIMITS)
        );
    }

    #[test]
    fn a_run_inside_a_block_scalar_is_not_confirmed_and_the_text_is_read_as_written() {
        let entries: String = (0..10).map(|i| format!("  - \"u{i}\"\n")).collect();
        let text = format!("note: |\n{entries}list:\n{entries}");
        let runs = find(&text);
        assert_eq!(runs.runs.len(), 2);
        let condensed = runs.condensed(&text);
        let fast = build(&condensed, &LIMITS, &runs, |v| Cow::Owned(v.into_owned()));
        assert!(matches!(fast, Ok(None)), "{fast:?}");
        assert_eq!(
            format!("{:?}", parse(&text, &LIMITS)),
            parsed_as_written(&text, &LIMITS)
        );
    }

    /// Pieces of YAML that make runs, break them, or put them where they are not entries.
    fn piece() -> impl Strategy<Value = String> {
        let indent = prop_oneof![Just(""), Just("  "), Just("    ")];
        let entry = prop_oneof![
            Just("- \"a\""),
            Just("- \"b c\""),
            Just("- 'd'"),
            Just("- \"\""),
            Just("- \"e\"  "),
            Just("- plain"),
            Just("- \"f\": 1"),
            Just("- \"g\" # c"),
            Just("- &x \"h\""),
            Just("- *x"),
            Just("- - \"i\""),
            Just("- \"j\\u00e9\""),
            Just("- \"\u{e9}\""),
            Just("-  \"k\""),
            Just("- \"l"),
        ];
        prop_oneof![
            4 => (indent.clone(), entry.clone(), 1..12usize).prop_map(|(i, e, n)| {
                (0..n).map(|k| format!("{i}{}", e.replace('a', &format!("a{k}")))).collect::<Vec<_>>().join("\n")
            }),
            1 => (indent.clone(), entry).prop_map(|(i, e)| format!("{i}{e}")),
            1 => indent.clone().prop_map(|i| format!("{i}key:")),
            1 => indent.clone().prop_map(|i| format!("{i}key: |")),
            1 => indent.clone().prop_map(|i| format!("{i}key: [")),
            1 => indent.clone().prop_map(|i| format!("{i}]")),
            1 => indent.clone().prop_map(|i| format!("{i}# comment")),
            1 => indent.prop_map(|i| format!("{i}  : v")),
            1 => Just(String::new()),
            1 => Just("---".to_owned()),
            1 => Just("\t- \"t\"".to_owned()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever the text, reading runs without the parser gives exactly what the parser
        /// gives: the same tree, positions and errors (node budgets crossed inside a run too).
        #[test]
        fn runs_never_change_what_a_text_reads_as(
            pieces in proptest::collection::vec(piece(), 1..10),
            max_nodes in prop_oneof![Just(1000usize), 5..40usize],
            crlf in proptest::bool::weighted(0.05),
        ) {
            let mut text = pieces.join("\n");
            if crlf {
                text = text.replace('\n', "\r\n");
            }
            let limits = TreeLimits { max_depth: 8, max_nodes };
            prop_assert_eq!(format!("{:?}", parse(&text, &limits)), parsed_as_written(&text, &limits));
        }

        /// A list that is a run (with blank and comment lines in it), then anything: the same.
        #[test]
        fn a_run_followed_by_anything_reads_as_the_parser_reads_it(
            entries in proptest::collection::vec(
                prop_oneof![
                    6 => "[a-z0-9 @#:-]{0,6}".prop_map(|id| format!("  - \"{id}\"")),
                    1 => Just("  # between".to_owned()),
                    1 => Just(String::new()),
                ],
                8..40,
            ),
            after in proptest::collection::vec(piece(), 0..4),
            max_nodes in prop_oneof![Just(1000usize), 5..40usize],
        ) {
            let text = format!("list:\n{}\n{}", entries.join("\n"), after.join("\n"));
            let limits = TreeLimits { max_depth: 8, max_nodes };
            prop_assert_eq!(format!("{:?}", parse(&text, &limits)), parsed_as_written(&text, &limits));
        }
    }
}
