//! Loading: discovery, parsing, per-document and cross-document validation, and assembly of
//! the validated [`ManifestSet`].
//!
//! Each file is read once, within [`Limits`], parsed once (positions come from the same tree),
//! and dropped before the next; subscribers are deduplicated as they are read, so memory
//! follows the distinct subscribers, not the lines.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::confine::{self, Refusal};
use super::discover::{self, Found};
use super::{
    Diagnostic, Limits, ManifestDocument, ManifestError, ManifestSet, SubscriberSet,
    subscriber_file,
};
use crate::quote::quote;
use crate::yaml::{self, Node, Position, Step};

use super::shape::{self, MAX_REPORTED_PER_LIST};

/// A document that passed its own checks.
struct Parsed {
    file: usize,
    document: ManifestDocument,
    subscribers: Vec<String>,
    name_at: Position,
    account_at: Position,
}

/// Where a listed subscriber came from, for messages. The order is the reading order, so
/// the smallest origin of an id is its first listing.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Origin {
    Inline(usize),
    ListFile { index: usize, line: u32 },
}

/// The distinct subscribers of one set, gathered as they are read.
///
/// Entries are pushed as they come and sorted and deduplicated in place whenever they reach
/// twice the cap, so memory follows the distinct subscribers (at most twice the cap) however
/// many times a file repeats them, and no hashing is needed: the final sort is one the plan
/// needs anyway.
struct Collector {
    entries: Vec<(Box<str>, Origin)>,
    max: usize,
    duplicates: Vec<(String, Origin)>,
    duplicate_count: usize,
}

impl Collector {
    fn new(max: usize) -> Collector {
        Collector {
            entries: Vec::new(),
            max,
            duplicates: Vec::new(),
            duplicate_count: 0,
        }
    }

    /// Adds `id`; fails once the distinct subscribers are known to exceed the cap.
    fn add(&mut self, id: impl Into<Box<str>>, origin: Origin) -> Result<(), String> {
        self.entries.push((id.into(), origin));
        if self.entries.len() >= self.max.saturating_mul(2).max(1024) {
            self.compact();
            self.check()?;
        }
        Ok(())
    }

    fn check(&self) -> Result<(), String> {
        if self.entries.len() > self.max {
            return Err(format!(
                "more than {} distinct subscribers for one account; raise --max-subscribers (SUBSYNC_MAX_SUBSCRIBERS) if the account's MaxSubscriberNum allows more",
                self.max
            ));
        }
        Ok(())
    }

    /// Sorts and removes repeats, remembering the first few for warnings (at the repeat, not
    /// the first listing).
    fn compact(&mut self) {
        self.entries
            .sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        let (duplicates, count) = (&mut self.duplicates, &mut self.duplicate_count);
        self.entries.dedup_by(|repeat, kept| {
            let same = repeat.0 == kept.0;
            if same {
                *count += 1;
                if duplicates.len() < MAX_REPORTED_PER_LIST {
                    duplicates.push((repeat.0.to_string(), repeat.1));
                }
            }
            same
        });
    }

    /// The distinct subscribers, sorted; the collector keeps its duplicate record.
    fn take_sorted(&mut self) -> Result<Vec<String>, String> {
        self.compact();
        self.check()?;
        Ok(std::mem::take(&mut self.entries)
            .into_iter()
            .map(|(id, _)| String::from(id))
            .collect())
    }
}

struct Loader<'l> {
    limits: &'l Limits,
    files: Vec<Found>,
    problems: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

/// Loads every manifest under `paths`. All-or-nothing: any problem means no set at all.
pub fn load(paths: &[PathBuf], limits: &Limits) -> Result<ManifestSet, ManifestError> {
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
        limits,
        files,
        problems,
        warnings: Vec::new(),
    };
    let mut parsed = Vec::new();
    for index in 0..loader.files.len() {
        loader.load_file(index, &mut parsed);
    }
    loader.cross_check(&parsed);
    let Loader {
        files,
        mut problems,
        mut warnings,
        ..
    } = loader;
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
            prune_out_of_band: p.document.spec.prune_out_of_band,
            accept_shortfall: p.document.spec.accept_shortfall,
            source: files[p.file].path.clone(),
        })
        .collect();
    sets.sort_by(|a, b| a.official_account.cmp(&b.official_account));
    let digest = digest(&sets);
    Ok(ManifestSet {
        sets,
        files: files.into_iter().map(|f| f.path).collect(),
        digest,
        warnings,
    })
}

impl Loader<'_> {
    fn load_file(&mut self, index: usize, parsed: &mut Vec<Parsed>) {
        let Some(text) = self.read_manifest(index) else {
            return;
        };
        let path = self.files[index].path.clone();
        let documents = match yaml::parse(&text, &self.limits.yaml()) {
            Ok(documents) => documents,
            Err(e) => {
                return self
                    .problems
                    .push(Diagnostic::at(&path, Some(e.at), e.message));
            }
        };
        for document in &documents {
            let Some(root) = &document.root else { continue };
            let misshapen = shape::check(root);
            if !misshapen.is_empty() {
                for (at, message) in misshapen {
                    self.problems.push(Diagnostic::at(&path, Some(at), message));
                }
                continue;
            }
            match yaml::from_node::<ManifestDocument>(root) {
                Ok(d) => {
                    if let Some(p) = self.check_document(index, root, d) {
                        parsed.push(p);
                    }
                }
                Err(e) => self
                    .problems
                    .push(Diagnostic::at(&path, e.at, e.to_string())),
            }
        }
    }

    /// The manifest's text, if it is a regular file within the size cap and UTF-8.
    fn read_manifest(&mut self, index: usize) -> Option<String> {
        let found = &self.files[index];
        let max = self.limits.max_manifest_bytes;
        let mut cause = None;
        let problem = match confine::open_regular(&found.path) {
            Err(Refusal::Io(e)) => {
                let problem = format!("cannot read: {e}");
                cause = Some(e);
                problem
            }
            Err(refusal) => refusal.reason(&found.root),
            Ok((_, size)) if size > max => format!(
                "is {size} bytes, over the {max}-byte limit for a manifest; move long lists into subscriberFiles or raise --max-manifest-bytes (SUBSYNC_MAX_MANIFEST_BYTES)"
            ),
            Ok((file, _)) => {
                let mut bytes = Vec::new();
                match file.take(max + 1).read_to_end(&mut bytes) {
                    Err(e) => {
                        let problem = format!("cannot read: {e}");
                        cause = Some(e);
                        problem
                    }
                    Ok(n) if n as u64 > max => {
                        format!("grew past the {max}-byte limit for a manifest while being read")
                    }
                    Ok(_) => match String::from_utf8(bytes) {
                        Ok(text) => return Some(text),
                        Err(_) => "not UTF-8 text; save the manifest as UTF-8".into(),
                    },
                }
            }
        };
        let path = found.path.clone();
        self.problems
            .push(Diagnostic::file(&path, problem).caused_by(cause.as_ref()));
        None
    }

    fn check_document(
        &mut self,
        file: usize,
        root: &Node<'_>,
        mut document: ManifestDocument,
    ) -> Option<Parsed> {
        let path = self.files[file].path.clone();
        let before = self.problems.len();
        let at = |steps: &[Step<'_>]| Some(root.find(steps));
        let name_at = root.find(&[Step::Key("metadata"), Step::Key("name")]);
        let account_at = root.find(&[Step::Key("spec"), Step::Key("officialAccount")]);
        // The shape check has judged the name, the account and every inline UserID.
        let mut collector = Collector::new(self.limits.max_subscribers);
        for (i, id) in std::mem::take(&mut document.spec.subscribers)
            .into_iter()
            .enumerate()
        {
            let Ok(id) = id.0 else { continue };
            if let Err(m) = collector.add(id, Origin::Inline(i)) {
                let entry = [Step::Key("spec"), Step::Key("subscribers"), Step::Index(i)];
                self.problems.push(Diagnostic::at(&path, at(&entry), m));
                break;
            }
        }
        let mut lists = Vec::new();
        for (i, entry) in document.spec.subscriber_files.iter().enumerate() {
            let steps = [
                Step::Key("spec"),
                Step::Key("subscriberFiles"),
                Step::Index(i),
            ];
            let shown = path.parent().unwrap_or(Path::new(".")).join(entry);
            if let Err((m, cause)) = self.read_list(file, entry, &shown, i, &mut collector) {
                self.problems
                    .push(Diagnostic::at(&path, at(&steps), m).caused_by(cause.as_ref()));
            }
            lists.push(shown);
        }
        if self.problems.len() > before {
            return None;
        }
        let subscribers = match collector.take_sorted() {
            Ok(sorted) => sorted,
            Err(m) => {
                let spec = root.find(&[Step::Key("spec")]);
                self.problems.push(Diagnostic::at(&path, Some(spec), m));
                return None;
            }
        };
        self.warn_duplicates(&path, root, &document.metadata.name, &collector, &lists);
        Some(Parsed {
            file,
            document,
            subscribers,
            name_at,
            account_at,
        })
    }

    /// Reads one subscriber file into `collector`. Problems inside the file are reported at
    /// their line; a refusal to read it at all is returned, to be reported at the entry.
    fn read_list(
        &mut self,
        file: usize,
        entry: &str,
        shown: &Path,
        index: usize,
        collector: &mut Collector,
    ) -> Result<(), (String, Option<std::io::Error>)> {
        let found = &self.files[file];
        let opened = confine::resolve(&found.root, &found.path, entry)
            .and_then(|real| confine::open_regular(&real));
        let (handle, size) = opened.map_err(|refusal| {
            let message = refusal.describe(entry, &found.root);
            match refusal {
                Refusal::Io(e) => (message, Some(e)),
                _ => (message, None),
            }
        })?;
        let gzip = subscriber_file::is_gzip(shown);
        let max = self.limits.max_list_bytes;
        if !gzip && size > max {
            return Err((
                format!(
                    "subscriber file {} is {size} bytes, over the {max}-byte limit; split it or raise --max-list-bytes (SUBSYNC_MAX_LIST_BYTES)",
                    quote(entry)
                ),
                None,
            ));
        }
        let read = subscriber_file::read(
            handle,
            shown,
            self.limits,
            MAX_REPORTED_PER_LIST,
            |id, line| collector.add(id, Origin::ListFile { index, line }),
        );
        match read {
            Ok((bad, count)) => {
                for b in bad {
                    self.problems.push(Diagnostic::at(
                        shown,
                        Some(Position {
                            line: b.line as usize,
                            column: 1,
                        }),
                        b.message,
                    ));
                }
                if count > MAX_REPORTED_PER_LIST {
                    let m = format!(
                        "{} more invalid UserIDs in this file",
                        count - MAX_REPORTED_PER_LIST
                    );
                    self.problems.push(Diagnostic::file(shown, m));
                }
                Ok(())
            }
            Err(stop) => {
                let at = stop.line().map(|line| Position {
                    line: line as usize,
                    column: 1,
                });
                self.problems
                    .push(Diagnostic::at(shown, at, stop.message(gzip)).caused_by(stop.io()));
                Ok(())
            }
        }
    }

    fn warn_duplicates(
        &mut self,
        path: &Path,
        root: &Node<'_>,
        name: &str,
        collector: &Collector,
        lists: &[PathBuf],
    ) {
        for (id, origin) in &collector.duplicates {
            let message = format!(
                "warning: subscriber {} is listed more than once in {name}",
                quote(id)
            );
            self.warnings.push(match *origin {
                Origin::Inline(i) => {
                    let steps = [Step::Key("spec"), Step::Key("subscribers"), Step::Index(i)];
                    Diagnostic::at(path, Some(root.find(&steps)), message)
                }
                Origin::ListFile { index, line } => Diagnostic::at(
                    &lists[index],
                    Some(Position {
                        line: line as usize,
                        column: 1,
                    }),
                    message,
                ),
            });
        }
        if collector.duplicate_count > MAX_REPORTED_PER_LIST {
            let message = format!(
                "warning: {} more duplicate subscribers in {name}",
                collector.duplicate_count - MAX_REPORTED_PER_LIST
            );
            let spec = root.find(&[Step::Key("spec")]);
            self.warnings
                .push(Diagnostic::at(path, Some(spec), message));
        }
    }

    fn cross_check(&mut self, parsed: &[Parsed]) {
        let mut by_name: HashMap<&str, &Parsed> = HashMap::new();
        let mut by_account: HashMap<&str, &Parsed> = HashMap::new();
        for p in parsed {
            let name = p.document.metadata.name.as_str();
            if let Some(first) = by_name.insert(name, p) {
                let message = format!("metadata.name {} is used twice", quote(name));
                self.both(first, p, |q| q.name_at, &message);
            }
            let account = p.document.spec.official_account.as_str();
            if let Some(first) = by_account.insert(account, p) {
                let message = format!(
                    "official account {} is declared twice; keep one manifest per account",
                    quote(account)
                );
                self.both(first, p, |q| q.account_at, &message);
            }
        }
    }

    /// Reports a clash at both places, each naming the other file.
    fn both(&mut self, a: &Parsed, b: &Parsed, at: impl Fn(&Parsed) -> Position, message: &str) {
        for (here, there) in [(a, b), (b, a)] {
            let other = if here.file == there.file {
                "this file".to_owned()
            } else {
                self.files[there.file].path.display().to_string()
            };
            let path = self.files[here.file].path.clone();
            self.problems.push(Diagnostic::at(
                &path,
                Some(at(here)),
                format!("{message} (also in {other})"),
            ));
        }
    }
}

fn digest(sets: &[SubscriberSet]) -> String {
    let mut hasher = Sha256::new();
    for set in sets {
        hasher.update(format!(
            "set\0{}\0{}\0{}\0{}",
            set.name, set.official_account, set.prune, set.allow_empty
        ));
        // Fields added later count only when set, so that older digests stay as they were.
        if set.prune_out_of_band || set.accept_shortfall {
            hasher.update(format!(
                "\0{}\0{}",
                set.prune_out_of_band, set.accept_shortfall
            ));
        }
        hasher.update(b"\n");
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
mod tests;
