//! The reference pages under `docs/reference/`, generated from the code so that nothing in
//! them is written twice: the commands and flags from clap's command tree, the metrics from
//! their registry, the notification events from their enum, the error codes from the codes
//! table, the JSON Schemas from `schema`. `subsync reference --out-dir DIR` writes them; a test
//! regenerates them and fails when the committed copies differ.
//!
//! Every page is a pure function of the code: no version, date, git revision or environment
//! value appears in them, so a page changes only when what it documents does.

mod catalogues;
mod commands;

use std::path::Path;

/// The command that regenerates the committed pages, named by each page and by the test.
pub(crate) const REGENERATE: &str = "cargo run --release -- reference --out-dir docs/reference";

/// One generated page: its file name and its Markdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Page {
    pub(crate) file: &'static str,
    pub(crate) title: &'static str,
    pub(crate) text: String,
}

/// Every page, the index first. `cli` is subsync's built command line.
pub(crate) fn pages(cli: &clap::Command) -> Result<Vec<Page>, String> {
    let mut pages = vec![
        page(
            "commands.md",
            "Commands, flags and settings",
            commands::page(cli),
        ),
        page("metrics.md", "Metrics", catalogues::metrics()?),
        page("events.md", "Notification events", catalogues::events()),
        page("codes.md", "API error codes", catalogues::codes()),
        page("schemas.md", "JSON Schemas", catalogues::schemas()),
    ];
    let index = index(&pages);
    pages.insert(0, page("README.md", "Reference", index));
    Ok(pages)
}

/// Writes every page into `dir` (created if missing); returns how many.
pub(crate) fn write(cli: &clap::Command, dir: &Path) -> anyhow::Result<usize> {
    use anyhow::Context;
    let pages = pages(cli).map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for p in &pages {
        let path = dir.join(p.file);
        std::fs::write(&path, &p.text)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(pages.len())
}

fn page(file: &'static str, title: &'static str, body: String) -> Page {
    let text = format!(
        "<!-- Generated from the code by `{REGENERATE}`; do not edit. -->\n\n# {title}\n\n{body}"
    );
    Page { file, title, text }
}

fn index(pages: &[Page]) -> String {
    let mut out = String::from(
        "These pages are generated from subsync's code, so they cannot disagree with it; the \
         [guide](../README.md) explains what the settings are for.\n\n",
    );
    for p in pages {
        out.push_str(&format!("- [{}]({})\n", p.title, p.file));
    }
    out
}

/// `text` made safe for one cell of a Markdown table: one line, `|` escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// `text` as inline code in a table cell (a `|` inside code still ends the cell on GitHub).
fn code(text: &str) -> String {
    format!("`{}`", text.replace('|', "\\|"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_is_one_line_and_keeps_the_table_s_columns() {
        assert_eq!(cell("a |\n b"), "a \\| b");
        assert_eq!(code("DIR|URL"), "`DIR\\|URL`");
    }
}
