//! Loading: discovery, reading each file (see [`file`]), cross-document validation, and
//! assembly of the validated [`ManifestSet`].
//!
//! Files are read side by side, a few at a time (at most [`MAX_READERS`], one a core), each
//! into its own findings, which are then joined in file order: problems, warnings and sets
//! come out exactly as one thread reading the files in order would give them. Each file is
//! read once, within [`Limits`], parsed once (positions come from the same tree), and dropped
//! when its reader moves on; subscribers are deduplicated as they are read, so memory follows
//! the distinct subscribers and the files in flight, not the lines.
//!
//! [`reload`] takes again, without reading, what an earlier valid load got from each file
//! that is unchanged on disk (with every subscriber file it names): a daemon re-reads the one
//! manifest that changed, and keeps a single copy of every other account's subscribers.

mod collect;
mod file;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

use super::discover::{self, Found};
use super::{Diagnostic, Limits, ManifestError, ManifestSet, SubscriberSet};
use crate::quote::quote;
use crate::yaml::Position;

pub(super) use file::FileRecord;
use file::{FileRead, Parsed};

/// Manifest files read at once, at most: each holds one file's text and tree and one
/// account's subscribers while they are gathered.
const MAX_READERS: usize = 4;

/// Loads every manifest under `paths`. All-or-nothing: any problem means no set at all.
pub(crate) fn load(paths: &[PathBuf], limits: &Limits) -> Result<ManifestSet, ManifestError> {
    reload(paths, limits, None)
}

/// [`load`], taking from `previous` (a set loaded earlier with the same limits) what each
/// file unchanged since gave it, instead of reading that file again.
pub(crate) fn reload(
    paths: &[PathBuf],
    limits: &Limits,
    previous: Option<&ManifestSet>,
) -> Result<ManifestSet, ManifestError> {
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
    let earlier: HashMap<&std::path::Path, &FileRecord> = previous
        .filter(|p| p.limits == Some(*limits))
        .map(|p| p.records.iter().map(|r| (r.path(), r)).collect())
        .unwrap_or_default();
    let reads = read_all(&files, |found| match earlier.get(found.path.as_path()) {
        Some(record) if record.still_holds(found) => FileRead {
            problems: Vec::new(),
            record: (*record).clone(),
        },
        _ => file::read(found, limits),
    });
    let mut warnings = Vec::new();
    let mut inputs = Vec::new();
    let mut records = Vec::with_capacity(reads.len());
    for read in reads {
        problems.extend(read.problems);
        warnings.extend(read.record.warnings.iter().cloned());
        inputs.extend(read.record.inputs());
        records.push(read.record);
    }
    cross_check(&files, &records, &mut problems);
    if !problems.is_empty() {
        problems.sort();
        problems.dedup();
        return Err(ManifestError { problems });
    }
    warnings.sort();
    let mut sets: Vec<SubscriberSet> = records
        .iter()
        .flat_map(|r| r.parsed.iter().map(|p| p.set.clone()))
        .collect();
    sets.sort_by(|a, b| a.official_account.cmp(&b.official_account));
    let digest = digest(&sets);
    Ok(ManifestSet {
        sets,
        files: files.into_iter().map(|f| f.path).collect(),
        digest,
        warnings,
        inputs,
        records,
        limits: Some(*limits),
    })
}

/// `read(file)` for every file, side by side on up to [`MAX_READERS`] threads (this one among
/// them), in file order. A thread that cannot be started leaves its share to the others.
fn read_all(files: &[Found], read: impl Fn(&Found) -> FileRead + Sync) -> Vec<FileRead> {
    let readers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(MAX_READERS)
        .min(files.len());
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(found) = files.get(i) else {
                return done;
            };
            done.push((i, read(found)));
        }
    };
    let mut done = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..readers)
            .filter_map(|_| {
                std::thread::Builder::new()
                    .name("subsync-manifests".into())
                    .spawn_scoped(scope, work)
                    .ok()
            })
            .collect();
        let mut done = work();
        for helper in helpers {
            match helper.join() {
                Ok(theirs) => done.extend(theirs),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        done
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, read)| read).collect()
}

/// Names and accounts must be unique across all documents: each clash is reported at both
/// places, each naming the other file.
fn cross_check(files: &[Found], records: &[FileRecord], problems: &mut Vec<Diagnostic>) {
    let parsed: Vec<(usize, &Parsed)> = records
        .iter()
        .enumerate()
        .flat_map(|(file, r)| r.parsed.iter().map(move |p| (file, p)))
        .collect();
    let mut by_name: HashMap<&str, (usize, &Parsed)> = HashMap::new();
    let mut by_account: HashMap<&str, (usize, &Parsed)> = HashMap::new();
    for &p in &parsed {
        let name = p.1.set.name.as_str();
        if let Some(first) = by_name.insert(name, p) {
            let message = format!("metadata.name {} is used twice", quote(name));
            both(files, first, p, |q| q.name_at, &message, problems);
        }
        let account = p.1.set.official_account.as_str();
        if let Some(first) = by_account.insert(account, p) {
            let message = format!(
                "official account {} is declared twice; keep one manifest per account",
                quote(account)
            );
            both(files, first, p, |q| q.account_at, &message, problems);
        }
    }
}

/// Reports a clash at both places, each naming the other file.
fn both(
    files: &[Found],
    a: (usize, &Parsed),
    b: (usize, &Parsed),
    at: impl Fn(&Parsed) -> Position,
    message: &str,
    problems: &mut Vec<Diagnostic>,
) {
    for (here, there) in [(a, b), (b, a)] {
        let other = if here.0 == there.0 {
            "this file".to_owned()
        } else {
            files[there.0].path.display().to_string()
        };
        problems.push(Diagnostic::at(
            &files[here.0].path,
            Some(at(here.1)),
            format!("{message} (also in {other})"),
        ));
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
        if !set.account.is_empty() || set.create.is_some() {
            let account = serde_json::to_string(&set.account).unwrap_or_default();
            hasher.update(format!("\0{account}\0{:?}", set.create));
        }
        hasher.update(b"\n");
        set.subscribers.for_each(|s| {
            hasher.update(s.as_bytes());
            hasher.update(b"\n");
        });
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
