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
    Diagnostic, IdList, Limits, ManifestDocument, ManifestError, ManifestSet, Stamp, SubscriberSet,
    subscriber_file,
};
use crate::quote::quote;
use crate::yaml::{self, Node, Position, Step};

use super::shape::{self, MAX_REPORTED_PER_LIST};

/// A document that passed its own checks.
struct Parsed {
    file: usize,
    document: ManifestDocument,
    subscribers: IdList,
    name_at: Position,
    account_at: Position,
}

/// Where a listed subscriber came from, for messages. The order is the reading order, so
/// the smallest origin of an id is its first listing.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Origin {
    Inline(u32),
    ListFile { index: u32, line: u32 },
}

/// One UserID gathered: where its bytes are in the collector's buffer, and where it was listed.
#[derive(Clone, Copy)]
struct Entry {
    start: u32,
    len: u32,
    origin: Origin,
}

/// The distinct subscribers of one set, gathered as they are read.
///
/// UserIDs are appended to one buffer (no allocation per UserID) and sorted and deduplicated
/// in place whenever they reach twice the cap, so memory follows the distinct subscribers (at
/// most twice the cap) however many times a file repeats them, and no hashing is needed: the
/// final sort is one the plan needs anyway.
struct Collector {
    text: String,
    entries: Vec<Entry>,
    max: usize,
    duplicates: Vec<(String, Origin)>,
    duplicate_count: usize,
}

impl Collector {
    fn new(max: usize) -> Collector {
        Collector {
            text: String::new(),
            entries: Vec::new(),
            max,
            duplicates: Vec::new(),
            duplicate_count: 0,
        }
    }

    /// Adds `id`; fails once the distinct subscribers are known to exceed the cap.
    fn add(&mut self, id: &str, origin: Origin) -> Result<(), String> {
        let (Ok(start), Ok(len)) = (u32::try_from(self.text.len()), u32::try_from(id.len())) else {
            return Err(self.too_many());
        };
        if start.checked_add(len).is_none() {
            return Err(self.too_many());
        }
        self.text.push_str(id);
        self.entries.push(Entry { start, len, origin });
        if self.entries.len() >= self.max.saturating_mul(2).max(1024) {
            self.compact();
            self.check()?;
        }
        Ok(())
    }

    fn too_many(&self) -> String {
        format!(
            "more than {} for one account; raise --max-subscribers (SUBSYNC_MAX_SUBSCRIBERS) if the account's MaxSubscriberNum allows more",
            crate::words::count(
                self.max as u64,
                "distinct subscriber",
                "distinct subscribers"
            )
        )
    }

    fn check(&self) -> Result<(), String> {
        if self.entries.len() > self.max {
            return Err(self.too_many());
        }
        Ok(())
    }

    /// Sorts and removes repeats, remembering the first few for warnings (at the repeat, not
    /// the first listing), and packs the buffer down to the distinct UserIDs.
    fn compact(&mut self) {
        let old = std::mem::take(&mut self.text);
        let id = |e: &Entry| {
            old.get(e.start as usize..(e.start + e.len) as usize)
                .unwrap_or_default()
        };
        let mut entries = std::mem::take(&mut self.entries);
        entries.sort_unstable_by(|a, b| id(a).cmp(id(b)).then(a.origin.cmp(&b.origin)));
        let mut text = String::with_capacity(old.len());
        let mut kept: Vec<Entry> = Vec::with_capacity(entries.len());
        let mut last: Option<&str> = None;
        for e in entries {
            let this = id(&e);
            if last == Some(this) {
                self.duplicate_count += 1;
                if self.duplicates.len() < MAX_REPORTED_PER_LIST {
                    self.duplicates.push((this.to_owned(), e.origin));
                }
                continue;
            }
            last = Some(this);
            // The new buffer is never longer than the old, whose offsets fit.
            let start = u32::try_from(text.len()).unwrap_or(u32::MAX);
            text.push_str(this);
            kept.push(Entry { start, ..e });
        }
        self.text = text;
        self.entries = kept;
    }

    /// The distinct subscribers, sorted; the collector keeps its duplicate record.
    fn take_sorted(&mut self) -> Result<IdList, String> {
        self.compact();
        self.check()?;
        // Packed in sorted order by `compact`: the buffer is the list.
        let ends = self.entries.iter().map(|e| e.start + e.len).collect();
        self.entries = Vec::new();
        Ok(IdList::from_packed(std::mem::take(&mut self.text), ends))
    }
}

struct Loader<'l> {
    limits: &'l Limits,
    files: Vec<Found>,
    problems: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    inputs: Vec<(PathBuf, Stamp)>,
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
        inputs: Vec::new(),
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
        inputs,
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
            account: p.document.spec.account.unwrap_or_default(),
            create: p.document.spec.create.map(|c| c.owner),
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
        inputs,
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
            Ok((_, meta)) if meta.len() > max => format!(
                "is {} bytes, over the {max}-byte limit for a manifest; move long lists into subscriberFiles or raise --max-manifest-bytes (SUBSYNC_MAX_MANIFEST_BYTES)",
                meta.len()
            ),
            Ok((file, meta)) => {
                self.inputs.push((found.path.clone(), Stamp::of(&meta)));
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
                        Err(e) => {
                            let at = position_of(e.as_bytes(), e.utf8_error().valid_up_to());
                            let path = found.path.clone();
                            self.problems.push(Diagnostic::at(
                                &path,
                                Some(at),
                                "not UTF-8 text here; save the manifest as UTF-8",
                            ));
                            return None;
                        }
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
            let origin = Origin::Inline(u32::try_from(i).unwrap_or(u32::MAX));
            if let Err(m) = collector.add(&id, origin) {
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
        if let Some(m) = check_create(&document) {
            let create = root.find(&[Step::Key("spec"), Step::Key("create")]);
            self.problems.push(Diagnostic::at(&path, Some(create), m));
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
            .and_then(|real| confine::open_regular(&real).map(|(file, meta)| (real, file, meta)));
        let (real, handle, meta) = opened.map_err(|refusal| {
            let message = refusal.describe(entry, &found.root);
            match refusal {
                Refusal::Io(e) => (message, Some(e)),
                _ => (message, None),
            }
        })?;
        let size = meta.len();
        self.inputs.push((real, Stamp::of(&meta)));
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
            |id, line| {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                collector.add(id, Origin::ListFile { index, line })
            },
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
                    let i = i as usize;
                    let steps = [Step::Key("spec"), Step::Key("subscribers"), Step::Index(i)];
                    Diagnostic::at(path, Some(root.find(&steps)), message)
                }
                Origin::ListFile { index, line } => Diagnostic::at(
                    &lists[index as usize],
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
                "warning: {} in {name}",
                crate::words::count(
                    (collector.duplicate_count - MAX_REPORTED_PER_LIST) as u64,
                    "more duplicate subscriber",
                    "more duplicate subscribers"
                )
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

/// Where byte `offset` of `bytes` is, as a line and a column (counted in bytes, from 1).
fn position_of(bytes: &[u8], offset: usize) -> Position {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = before.len()
        - before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1)
        + 1;
    Position { line, column }
}

/// Why `spec.create` cannot be honoured, if it cannot: the service requires a name to create
/// an account, and ids starting `@TOA#_@TOA#` are the ones it assigns itself.
fn check_create(document: &ManifestDocument) -> Option<String> {
    document.spec.create.as_ref()?;
    let id = &document.spec.official_account;
    if id.starts_with("@TOA#_@TOA#") {
        return Some(format!(
            "spec.create: {} is an id the service assigns; a custom id may not start with @TOA#_@TOA#, so subsync cannot create it; choose another officialAccount or remove spec.create",
            quote(id)
        ));
    }
    let named = document
        .spec
        .account
        .as_ref()
        .is_some_and(|a| a.name.is_some());
    (!named).then(|| {
        "spec.create needs spec.account.name: the service creates an account only with a name; add it".to_owned()
    })
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
        if !set.account.is_empty() || set.create.is_some() {
            let account = serde_json::to_string(&set.account).unwrap_or_default();
            hasher.update(format!("\0{account}\0{:?}", set.create));
        }
        hasher.update(b"\n");
        for s in set.subscribers.iter() {
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
