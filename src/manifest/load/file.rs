//! Reading one manifest file: its text within the size cap, its documents, each document's
//! own checks and the subscriber files it names.
//!
//! Everything found is kept in the file's own [`FileRead`], in reading order, so that files can
//! be read side by side and their findings joined in file order afterwards: the outcome is the
//! same whichever thread read which file.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::collect::{Collector, Origin};
use crate::manifest::confine::{self, Refusal};
use crate::manifest::discover::Found;
use crate::manifest::shape::{self, MAX_REPORTED_PER_LIST};
use crate::manifest::{
    Diagnostic, Limits, ManifestDocument, Stamp, SubscriberSet, subscriber_file,
};
use crate::quote::quote;
use crate::yaml::{self, Node, Position, Segment};

/// A document that passed its own checks.
#[derive(Debug, Clone)]
pub(super) struct Parsed {
    pub(crate) set: SubscriberSet,
    pub(crate) name_at: Position,
    pub(crate) account_at: Position,
}

/// A subscriber file as it was read: the entry as written, the file it resolved to, and what
/// that file was when opened.
#[derive(Debug, Clone)]
struct ListRead {
    entry: String,
    real: PathBuf,
    stamp: Stamp,
}

/// What one manifest file yielded. Kept with a valid set, so that a later load can take it
/// again without reading while the file and every subscriber file it names are unchanged.
#[derive(Debug, Clone)]
pub(crate) struct FileRecord {
    path: PathBuf,
    /// What the manifest was when opened; `None` when it could not be.
    stamp: Option<Stamp>,
    lists: Vec<ListRead>,
    pub(super) parsed: Vec<Parsed>,
    pub(super) warnings: Vec<Diagnostic>,
}

impl FileRecord {
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Every file read for this one (the manifest, then its subscriber files), as it was when
    /// opened.
    pub(super) fn inputs(&self) -> impl Iterator<Item = (PathBuf, Stamp)> + '_ {
        let manifest = self.stamp.map(|s| (self.path.clone(), s));
        manifest
            .into_iter()
            .chain(self.lists.iter().map(|l| (l.real.clone(), l.stamp)))
    }

    /// True when `found` is the file this was read from, unchanged, and each subscriber file
    /// it names still resolves to the same file, unchanged: reading it again would yield the
    /// same.
    pub(super) fn still_holds(&self, found: &Found) -> bool {
        self.path == found.path
            && self.stamp.is_some_and(|s| s.matches(&found.path))
            && self.lists.iter().all(|list| {
                confine::resolve(&found.root, &found.path, &list.entry)
                    .is_ok_and(|real| real == list.real)
                    && list.stamp.matches(&list.real)
            })
    }
}

/// What reading one manifest file found: its problems, and what it yielded.
pub(super) struct FileRead {
    pub(crate) problems: Vec<Diagnostic>,
    pub(crate) record: FileRecord,
}

/// Reads the manifest `found` and every subscriber file it names.
pub(super) fn read(found: &Found, limits: &Limits) -> FileRead {
    let mut reader = FileReader {
        found,
        limits,
        read: FileRead {
            problems: Vec::new(),
            record: FileRecord {
                path: found.path.clone(),
                stamp: None,
                lists: Vec::new(),
                parsed: Vec::new(),
                warnings: Vec::new(),
            },
        },
    };
    reader.documents();
    reader.read
}

struct FileReader<'a> {
    found: &'a Found,
    limits: &'a Limits,
    read: FileRead,
}

impl<'a> FileReader<'a> {
    fn problem(&mut self, problem: Diagnostic) {
        self.read.problems.push(problem);
    }

    fn documents(&mut self) {
        let Some(text) = self.read_manifest() else {
            return;
        };
        let path: &'a Path = &self.found.path;
        let documents = match yaml::parse(&text, &self.limits.yaml()) {
            Ok(documents) => documents,
            Err(e) => return self.problem(Diagnostic::at(path, Some(e.at), e.message)),
        };
        for document in &documents {
            let Some(root) = &document.root else { continue };
            let misshapen = shape::check(root);
            if !misshapen.is_empty() {
                for (at, message) in misshapen {
                    self.problem(Diagnostic::at(path, Some(at), message));
                }
                continue;
            }
            match yaml::from_node::<ManifestDocument>(root) {
                Ok(d) => {
                    if let Some(p) = self.check_document(root, d) {
                        self.read.record.parsed.push(p);
                    }
                }
                Err(e) => self.problem(Diagnostic::at(path, e.at, e.to_string())),
            }
        }
    }

    /// The manifest's text, if it is a regular file within the size cap and UTF-8.
    fn read_manifest(&mut self) -> Option<String> {
        let found = self.found;
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
                self.read.record.stamp = Some(Stamp::of(&meta));
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
                            self.problem(Diagnostic::at(
                                &found.path,
                                Some(at),
                                "not UTF-8 text here; save the manifest as UTF-8",
                            ));
                            return None;
                        }
                    },
                }
            }
        };
        self.problem(Diagnostic::file(&found.path, problem).caused_by(cause.as_ref()));
        None
    }

    fn check_document(&mut self, root: &Node<'_>, document: ManifestDocument) -> Option<Parsed> {
        let path: &'a Path = &self.found.path;
        let before = self.read.problems.len();
        let at = |steps: &[Segment<'_>]| Some(root.find(steps));
        let name_at = root.find(&[Segment::Key("metadata"), Segment::Key("name")]);
        let account_at = root.find(&[Segment::Key("spec"), Segment::Key("officialAccount")]);
        // The shape check has judged the name, the account and every inline UserID; the
        // UserIDs are read from the tree, where they are, rather than copied.
        let mut collector = Collector::new(self.limits.max_subscribers);
        let inline = root.get("spec").and_then(|spec| spec.get("subscribers"));
        if let Some(Node::Seq { items, .. }) = inline.map(Node::resolved) {
            for (i, item) in items.iter().enumerate() {
                let Ok(id) = yaml::text_item(item, i) else {
                    continue;
                };
                let origin = Origin::Inline(u32::try_from(i).unwrap_or(u32::MAX));
                if let Err(m) = collector.add(id, origin) {
                    let entry = [
                        Segment::Key("spec"),
                        Segment::Key("subscribers"),
                        Segment::Index(i),
                    ];
                    self.problem(Diagnostic::at(path, at(&entry), m));
                    break;
                }
            }
        }
        let mut lists = Vec::new();
        for (i, entry) in document.spec.subscriber_files.iter().enumerate() {
            let steps = [
                Segment::Key("spec"),
                Segment::Key("subscriberFiles"),
                Segment::Index(i),
            ];
            let shown = path.parent().unwrap_or(Path::new(".")).join(entry);
            if let Err((m, cause)) = self.read_list(entry, &shown, i, &mut collector) {
                self.problem(Diagnostic::at(path, at(&steps), m).caused_by(cause.as_ref()));
            }
            lists.push(shown);
        }
        if let Some(m) = check_create(&document) {
            let create = root.find(&[Segment::Key("spec"), Segment::Key("create")]);
            self.problem(Diagnostic::at(path, Some(create), m));
        }
        if self.read.problems.len() > before {
            return None;
        }
        let subscribers = match collector.take_sorted() {
            Ok(sorted) => sorted,
            Err(m) => {
                let spec = root.find(&[Segment::Key("spec")]);
                self.problem(Diagnostic::at(path, Some(spec), m));
                return None;
            }
        };
        self.warn_duplicates(root, &document.metadata.name, &collector, &lists);
        let spec = document.spec;
        Some(Parsed {
            set: SubscriberSet {
                name: document.metadata.name,
                official_account: spec.official_account,
                subscribers,
                prune: spec.prune,
                allow_empty: spec.allow_empty,
                prune_out_of_band: spec.prune_out_of_band,
                accept_shortfall: spec.accept_shortfall,
                account: spec.account.unwrap_or_default(),
                create: spec.create.map(|c| c.owner),
                source: path.to_owned(),
            },
            name_at,
            account_at,
        })
    }

    /// Reads one subscriber file into `collector`. Problems inside the file are reported at
    /// their line; a refusal to read it at all is returned, to be reported at the entry.
    fn read_list(
        &mut self,
        entry: &str,
        shown: &Path,
        index: usize,
        collector: &mut Collector,
    ) -> Result<(), (String, Option<std::io::Error>)> {
        let found = self.found;
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
        self.read.record.lists.push(ListRead {
            entry: entry.to_owned(),
            real,
            stamp: Stamp::of(&meta),
        });
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
                    self.problem(Diagnostic::at(
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
                    self.problem(Diagnostic::file(shown, m));
                }
                Ok(())
            }
            Err(stop) => {
                let at = stop.line().map(|line| Position {
                    line: line as usize,
                    column: 1,
                });
                self.problem(Diagnostic::at(shown, at, stop.message(gzip)).caused_by(stop.io()));
                Ok(())
            }
        }
    }

    fn warn_duplicates(
        &mut self,
        root: &Node<'_>,
        name: &str,
        collector: &Collector,
        lists: &[PathBuf],
    ) {
        let path: &'a Path = &self.found.path;
        let warnings = &mut self.read.record.warnings;
        for (id, origin) in &collector.duplicates {
            let message = format!(
                "warning: subscriber {} is listed more than once in {name}",
                quote(id)
            );
            warnings.push(match *origin {
                Origin::Inline(i) => {
                    let i = i as usize;
                    let steps = [
                        Segment::Key("spec"),
                        Segment::Key("subscribers"),
                        Segment::Index(i),
                    ];
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
            let spec = root.find(&[Segment::Key("spec")]);
            warnings.push(Diagnostic::at(path, Some(spec), message));
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
