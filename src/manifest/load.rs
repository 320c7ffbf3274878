//! Loading: discovery, parsing, per-document and cross-document validation, and assembly of
//! the validated [`ManifestSet`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::locate::{Locator, Step};
use super::{
    Diagnostic, ManifestDocument, ManifestError, ManifestSet, SubscriberSet, discover,
    subscriber_file,
};

/// Invalid entries reported per list before the rest are summarised in one line.
const MAX_REPORTED_PER_LIST: usize = 20;

/// A problem whose position is found later, once per file, by the locator.
struct Pending {
    file: usize,
    doc: usize,
    path: Vec<Step<'static>>,
    message: String,
    warning: bool,
}

/// A document that passed its own checks.
struct Parsed {
    file: usize,
    doc: usize,
    document: ManifestDocument,
    subscribers: Vec<String>,
}

/// Where a listed subscriber came from, for duplicate warnings.
#[derive(Clone, Copy)]
enum Origin {
    Inline(u32),
    ListFile { index: u32, line: u32 },
}

struct Loader {
    files: Vec<PathBuf>,
    texts: Vec<String>,
    problems: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    pending: Vec<Pending>,
}

/// Loads every manifest under `paths`. All-or-nothing: any problem means no set at all.
pub fn load(paths: &[PathBuf]) -> Result<ManifestSet, ManifestError> {
    let mut problems = Vec::new();
    let files = discover::manifest_files(paths, &mut problems);
    if files.is_empty() && problems.is_empty() {
        for path in paths {
            problems.push(Diagnostic::file(
                path,
                "no manifests (*.yaml, *.yml) found here; point at the manifest directory",
            ));
        }
    }
    let mut loader = Loader {
        files: files.clone(),
        texts: Vec::new(),
        problems,
        warnings: Vec::new(),
        pending: Vec::new(),
    };
    let mut parsed = Vec::new();
    for (index, file) in files.iter().enumerate() {
        loader.parse_file(index, file, &mut parsed);
    }
    loader.cross_check(&parsed);
    let (mut problems, mut warnings) = loader.finish();
    if !problems.is_empty() {
        problems.sort();
        problems.dedup();
        return Err(ManifestError { problems });
    }
    warnings.sort();
    let mut sets: Vec<SubscriberSet> = parsed
        .into_iter()
        .map(|p| SubscriberSet {
            name: p.document.metadata.name,
            official_account: p.document.spec.official_account,
            subscribers: p.subscribers,
            prune: p.document.spec.prune,
            allow_empty: p.document.spec.allow_empty,
            source: files[p.file].clone(),
        })
        .collect();
    sets.sort_by(|a, b| a.official_account.cmp(&b.official_account));
    let digest = digest(&sets);
    Ok(ManifestSet {
        sets,
        files,
        digest,
        warnings,
    })
}

impl Loader {
    fn parse_file(&mut self, index: usize, file: &Path, parsed: &mut Vec<Parsed>) {
        let text = match std::fs::read(file).map(String::from_utf8) {
            Ok(Ok(text)) => text,
            Ok(Err(_)) => {
                return self.problems.push(Diagnostic::file(
                    file,
                    "not UTF-8 text; save the manifest as UTF-8",
                ));
            }
            Err(e) => {
                return self
                    .problems
                    .push(Diagnostic::file(file, format!("cannot read: {e}")));
            }
        };
        let mut last_error = None;
        let problems_before = self.problems.len();
        for (doc, deserializer) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            match Option::<ManifestDocument>::deserialize(deserializer) {
                Ok(None) => {}
                Ok(Some(document)) => {
                    if let Some(p) = self.check_document(index, doc, document) {
                        parsed.push(p);
                    }
                }
                Err(e) => {
                    let location = e.location().map(|l| (l.line(), l.column()));
                    // After a syntax error serde_yaml repeats it forever; the rest is unreadable.
                    if location.is_some() && location == last_error {
                        break;
                    }
                    last_error = location;
                    self.problems.push(Diagnostic {
                        path: file.to_owned(),
                        line: location.map(|l| l.0),
                        column: location.map(|l| l.1),
                        message: serde_message(&e),
                    });
                }
            }
        }
        // A syntax error can surface first as a misleading type error (a plain scalar swallowing
        // the next line); when anything failed, report the syntax error alone if there is one.
        if self.problems.len() > problems_before
            && let Some(syntax) = super::locate::syntax_error(&text)
        {
            self.problems.truncate(problems_before);
            self.problems
                .push(Diagnostic::at(file, Some(syntax.0), syntax.1));
        }
        self.texts.resize(index, String::new());
        self.texts.push(text);
    }

    fn later(&mut self, file: usize, doc: usize, path: Vec<Step<'static>>, message: String) {
        self.pending.push(Pending {
            file,
            doc,
            path,
            message,
            warning: false,
        });
    }

    fn check_document(
        &mut self,
        file: usize,
        doc: usize,
        mut document: ManifestDocument,
    ) -> Option<Parsed> {
        let before = self.problems.len() + self.pending.len();
        if let Err(m) = super::check_name(&document.metadata.name) {
            self.later(file, doc, vec![Step::Key("metadata"), Step::Key("name")], m);
        }
        if let Err(m) = super::check_account_id(&document.spec.official_account) {
            self.later(
                file,
                doc,
                vec![Step::Key("spec"), Step::Key("officialAccount")],
                m,
            );
        }
        let inline = std::mem::take(&mut document.spec.subscribers);
        let mut entries: Vec<(String, Origin)> = Vec::with_capacity(inline.len());
        let mut bad = 0usize;
        for (i, id) in inline.into_iter().enumerate() {
            match super::check_user_id(&id) {
                Ok(()) => entries.push((id, Origin::Inline(i as u32))),
                Err(m) => {
                    bad += 1;
                    if bad <= MAX_REPORTED_PER_LIST {
                        self.later(
                            file,
                            doc,
                            vec![Step::Key("spec"), Step::Key("subscribers"), Step::Index(i)],
                            m,
                        );
                    }
                }
            }
        }
        if bad > MAX_REPORTED_PER_LIST {
            let m = format!(
                "{} more invalid UserIDs in spec.subscribers",
                bad - MAX_REPORTED_PER_LIST
            );
            self.later(
                file,
                doc,
                vec![Step::Key("spec"), Step::Key("subscribers")],
                m,
            );
        }
        let base = self.files[file]
            .parent()
            .unwrap_or(Path::new("."))
            .to_owned();
        let list_paths: Vec<PathBuf> = document
            .spec
            .subscriber_files
            .iter()
            .map(|f| base.join(f))
            .collect();
        for (i, list_path) in list_paths.iter().enumerate() {
            match subscriber_file::read(list_path) {
                Ok(list) => {
                    for b in list.bad.iter().take(MAX_REPORTED_PER_LIST) {
                        self.problems.push(Diagnostic {
                            path: list_path.clone(),
                            line: Some(b.line),
                            column: Some(1),
                            message: b.message.clone(),
                        });
                    }
                    if list.bad.len() > MAX_REPORTED_PER_LIST {
                        let m = format!(
                            "{} more invalid UserIDs in this file",
                            list.bad.len() - MAX_REPORTED_PER_LIST
                        );
                        self.problems.push(Diagnostic::file(list_path, m));
                    }
                    entries.extend(list.entries.into_iter().map(|(id, line)| {
                        (
                            id,
                            Origin::ListFile {
                                index: i as u32,
                                line,
                            },
                        )
                    }));
                }
                Err(e) => {
                    let m = format!(
                        "cannot read subscriber file {}: {e}; fix the path (it is relative to this manifest)",
                        list_path.display()
                    );
                    self.later(
                        file,
                        doc,
                        vec![
                            Step::Key("spec"),
                            Step::Key("subscriberFiles"),
                            Step::Index(i),
                        ],
                        m,
                    );
                }
            }
        }
        if self.problems.len() + self.pending.len() > before {
            return None;
        }
        let subscribers = self.dedup(file, doc, &document.metadata.name, entries, &list_paths);
        Some(Parsed {
            file,
            doc,
            document,
            subscribers,
        })
    }

    /// Sorts and deduplicates; a subscriber listed twice is a warning at its second listing.
    fn dedup(
        &mut self,
        file: usize,
        doc: usize,
        name: &str,
        mut entries: Vec<(String, Origin)>,
        lists: &[PathBuf],
    ) -> Vec<String> {
        // Stable, so the first listing stays first and the warning points at the repeat.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<String> = Vec::with_capacity(entries.len());
        let mut duplicates = 0usize;
        for (id, origin) in entries {
            if out.last() == Some(&id) {
                duplicates += 1;
                if duplicates <= MAX_REPORTED_PER_LIST {
                    let message =
                        format!("warning: subscriber {id:?} is listed more than once in {name}");
                    match origin {
                        Origin::Inline(i) => self.pending.push(Pending {
                            file,
                            doc,
                            path: vec![
                                Step::Key("spec"),
                                Step::Key("subscribers"),
                                Step::Index(i as usize),
                            ],
                            message,
                            warning: true,
                        }),
                        Origin::ListFile { index, line } => self.warnings.push(Diagnostic {
                            path: lists[index as usize].clone(),
                            line: Some(line as usize),
                            column: Some(1),
                            message,
                        }),
                    }
                }
            } else {
                out.push(id);
            }
        }
        if duplicates > MAX_REPORTED_PER_LIST {
            let message = format!(
                "warning: {} more duplicate subscribers in {name}",
                duplicates - MAX_REPORTED_PER_LIST
            );
            self.pending.push(Pending {
                file,
                doc,
                path: vec![Step::Key("spec")],
                message,
                warning: true,
            });
        }
        out
    }

    fn cross_check(&mut self, parsed: &[Parsed]) {
        let mut by_name: HashMap<&str, &Parsed> = HashMap::new();
        let mut by_account: HashMap<&str, &Parsed> = HashMap::new();
        let mut found = Vec::new();
        for p in parsed {
            let name = p.document.metadata.name.as_str();
            if let Some(first) = by_name.insert(name, p) {
                found.push((
                    first,
                    p,
                    Step::Key("metadata"),
                    Step::Key("name"),
                    format!("metadata.name {name:?} is used twice"),
                ));
            }
            let account = p.document.spec.official_account.as_str();
            if let Some(first) = by_account.insert(account, p) {
                found.push((first, p, Step::Key("spec"), Step::Key("officialAccount"), format!("official account {account:?} is declared twice; keep one manifest per account")));
            }
        }
        for (a, b, s1, s2, message) in found {
            let other = |f: usize, here: usize| {
                if f == here {
                    "this file".to_owned()
                } else {
                    self.files[f].display().to_string()
                }
            };
            let (in_b, in_a) = (other(b.file, a.file), other(a.file, b.file));
            self.later(
                a.file,
                a.doc,
                vec![s1, s2],
                format!("{message} (also in {in_b})"),
            );
            self.later(
                b.file,
                b.doc,
                vec![s1, s2],
                format!("{message} (also in {in_a})"),
            );
        }
    }

    /// Resolves pending positions, one locator per file.
    fn finish(mut self) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
        let mut locators: HashMap<usize, Locator> = HashMap::new();
        for p in std::mem::take(&mut self.pending) {
            let locator = locators
                .entry(p.file)
                .or_insert_with(|| Locator::new(&self.texts[p.file]));
            let diagnostic =
                Diagnostic::at(&self.files[p.file], locator.find(p.doc, &p.path), p.message);
            if p.warning {
                self.warnings.push(diagnostic)
            } else {
                self.problems.push(diagnostic)
            }
        }
        (self.problems, self.warnings)
    }
}

/// serde_yaml's message without its trailing " at line L column C" (printed in front instead).
fn serde_message(e: &serde_yaml::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

fn digest(sets: &[SubscriberSet]) -> String {
    let mut hasher = Sha256::new();
    for set in sets {
        hasher.update(format!(
            "set\0{}\0{}\0{}\0{}\n",
            set.name, set.official_account, set.prune, set.allow_empty
        ));
        for s in &set.subscribers {
            hasher.update(s.as_bytes());
            hasher.update(b"\n");
        }
    }
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    const GOOD: &str = "apiVersion: subsync/v1\nkind: SubscriberSet\nmetadata:\n  name: weekly\nspec:\n  officialAccount: \"@TOA#_weekly\"\n  subscribers: [\"b\", \"a\"]\n";

    #[test]
    fn a_valid_manifest_loads_sorted_with_a_digest() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "m.yaml", GOOD);
        let set = load(&[dir.path().to_owned()]).unwrap();
        assert_eq!(set.sets[0].subscribers, ["a", "b"]);
        assert!(set.digest.starts_with("sha256:"));
    }

    #[test]
    fn every_problem_is_reported_with_its_position() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "m.yaml",
            "apiVersion: subsync/v1\nkind: SubscriberSet\nmetadata:\n  name: weekly\nspec:\n  officialAccount: \"weekly\"\n  subscribers:\n    - ok\n    - \"\"\n",
        );
        let err = load(&[dir.path().to_owned()]).unwrap_err();
        let lines: Vec<String> = err.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].contains("m.yaml:6:20: official account \"weekly\""),
            "{lines:?}"
        );
        assert!(lines[1].contains("m.yaml:9:7: empty UserID"), "{lines:?}");
    }

    #[test]
    fn duplicate_subscribers_warn_at_the_repeat() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "m.yaml",
            &GOOD.replace("[\"b\", \"a\"]", "[\"a\", \"b\", \"a\"]"),
        );
        let set = load(&[dir.path().to_owned()]).unwrap();
        assert_eq!(set.sets[0].subscribers, ["a", "b"]);
        assert_eq!(set.warnings.len(), 1);
        assert!(
            set.warnings[0].to_string().contains("m.yaml:7:"),
            "{}",
            set.warnings[0]
        );
    }

    #[test]
    fn the_same_account_in_two_files_names_both() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", GOOD);
        write(
            dir.path(),
            "b.yaml",
            &GOOD.replace("name: weekly", "name: other"),
        );
        let err = load(&[dir.path().to_owned()]).unwrap_err();
        assert_eq!(err.problems.len(), 2);
        assert!(
            err.problems[0].to_string().contains("a.yaml:6:")
                && err.problems[0].message.contains("b.yaml")
        );
        assert!(
            err.problems[1].to_string().contains("b.yaml:6:")
                && err.problems[1].message.contains("a.yaml")
        );
    }

    #[test]
    fn a_syntax_error_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "m.yaml", "apiVersion: subsync/v1\n  kind: [\n");
        let err = load(&[dir.path().to_owned()]).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].line, Some(2));
    }

    #[test]
    fn digest_changes_with_content_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "m.yaml", GOOD);
        let first = load(&[dir.path().to_owned()]).unwrap().digest;
        std::fs::write(&path, format!("# a comment\n{GOOD}")).unwrap();
        assert_eq!(load(&[dir.path().to_owned()]).unwrap().digest, first);
        std::fs::write(&path, GOOD.replace("\"a\"]", "\"c\"]")).unwrap();
        assert_ne!(load(&[dir.path().to_owned()]).unwrap().digest, first);
    }
}
