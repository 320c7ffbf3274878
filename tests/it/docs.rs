//! The README and the guide under `docs/`: the generated reference pages are what the code
//! generates now, every relative link and `#anchor` resolves as it does on GitHub, and every
//! page of the guide is in the book's summary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::markdown;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const REGENERATE: &str = "cargo run --release -- reference --out-dir docs/reference";

/// Every Markdown file of the README and the guide, by its path from the root.
fn pages() -> BTreeMap<PathBuf, String> {
    fn walk(dir: &Path, into: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                // mdBook's output, when someone built the book.
                if path.file_name().is_some_and(|n| n != "book") {
                    walk(&path, into);
                }
            } else if path.extension().is_some_and(|e| e == "md") {
                into.push(path);
            }
        }
    }
    let root = Path::new(ROOT);
    let mut files = vec![root.join("README.md")];
    walk(&root.join("docs"), &mut files);
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (f.strip_prefix(root).unwrap().to_path_buf(), text)
        })
        .collect()
}

#[test]
fn the_committed_reference_pages_are_what_the_code_generates_now() {
    let fresh = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_subsync"))
        .args(["reference", "--out-dir"])
        .arg(fresh.path())
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = Path::new(ROOT).join("docs/reference");
    let names = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    let generated = names(fresh.path());
    assert!(generated.len() >= 6, "{generated:?}");
    let mut stale = Vec::new();
    for name in &generated {
        let now = std::fs::read_to_string(fresh.path().join(name)).unwrap();
        match std::fs::read_to_string(committed.join(name)) {
            Ok(then) if then == now => {}
            Ok(_) => stale.push(format!("docs/reference/{name} is out of date")),
            Err(_) => stale.push(format!("docs/reference/{name} is missing")),
        }
    }
    for name in names(&committed) {
        if !generated.contains(&name) {
            stale.push(format!(
                "docs/reference/{name} is no longer generated: delete it"
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "{}; regenerate the reference with `{REGENERATE}` and commit it",
        stale.join("; ")
    );
}

#[test]
fn every_relative_link_and_anchor_in_the_readme_and_the_guide_resolves() {
    let pages = pages();
    let anchors: BTreeMap<&PathBuf, Vec<String>> = pages
        .iter()
        .map(|(path, text)| (path, markdown::read(text).anchors))
        .collect();
    let root = Path::new(ROOT);
    let mut broken = Vec::new();
    for (path, text) in &pages {
        for link in markdown::read(text).links {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (target, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target = if target.is_empty() {
                path.clone()
            } else if target.starts_with('/') {
                broken.push(format!(
                    "{}: {link}: absolute paths do not work on GitHub",
                    path.display()
                ));
                continue;
            } else {
                normalize(&path.parent().unwrap().join(target))
            };
            if !root.join(&target).exists() {
                broken.push(format!(
                    "{}: {link}: {} does not exist",
                    path.display(),
                    target.display()
                ));
                continue;
            }
            if fragment.is_empty() {
                continue;
            }
            match anchors.get(&target) {
                Some(a) if a.iter().any(|a| a == fragment) => {}
                Some(_) => broken.push(format!(
                    "{}: {link}: {} has no heading #{fragment}",
                    path.display(),
                    target.display()
                )),
                None => broken.push(format!(
                    "{}: {link}: #{fragment} into a file that is not a page of the guide",
                    path.display()
                )),
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// `a/b/../c` as `a/c`, without touching the disk (a link may name what does not exist).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn every_page_of_the_guide_is_in_the_book_s_summary() {
    let summary = std::fs::read_to_string(Path::new(ROOT).join("docs/SUMMARY.md")).unwrap();
    let listed = markdown::read(&summary).links;
    let missing: Vec<String> = pages()
        .into_keys()
        .filter_map(|p| {
            let inside = p.strip_prefix("docs").ok()?.to_string_lossy().into_owned();
            (inside != "SUMMARY.md" && !listed.contains(&inside)).then_some(inside)
        })
        .collect();
    assert!(missing.is_empty(), "not in docs/SUMMARY.md: {missing:?}");
}

#[test]
fn github_anchors_drop_punctuation_and_number_repeated_headings() {
    let md = markdown::read(
        "# The ledger's location: --state\n\n## `plan`\n\n## plan\n\n```sh\n# not a heading\n```\n",
    );
    assert_eq!(
        md.anchors,
        ["the-ledgers-location---state", "plan", "plan-1"]
    );
}
