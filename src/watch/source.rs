//! Noticing that the manifests (or the credentials) may have changed.
//!
//! Files change in many ways in production: editors write a temporary file and rename it,
//! `git pull` rewrites many files, git-sync swaps a `current` symlink to a new worktree, and a
//! Kubernetes ConfigMap or Secret volume writes a new `..<timestamp>` directory and renames a
//! link over `..data`. This module does not try to follow each change; it only says "look
//! again", and the daemon reloads the whole set after a quiet period, so a half-written set is
//! never read.
//!
//! What is watched, for each PATH: its real (canonical) target, recursively; the directory
//! holding the PATH and every symlink along it, so that a swap or a rename there is seen; and
//! while the PATH does not exist, its nearest existing ancestor. Watches are keyed by canonical
//! path, so after a symlink swap [`Source::rewatch`] moves them to the new target. Events our
//! own reads cause (opens and reads) and events under the state directory are ignored, or every
//! reload would cause the next.
//!
//! What is wanted changing is a change; a watch that cannot be set (a directory it may not
//! read) is tried again quietly at each rewatch and logged once, never taken for a change, or
//! the daemon would read the manifests again and again. A kernel filesystem (`/proc`, `/sys`,
//! `/dev`) is never watched recursively: the manifests refuse it as a root anyway, and only a
//! swap of the link pointing there matters.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;

/// What changed.
pub(super) struct ChangeSignals {
    pub manifests: Notify,
    pub credentials: Notify,
}

/// What the watches are for: which events mean what.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Interest {
    /// Directories in which any change matters (the manifest trees).
    trees: BTreeSet<PathBuf>,
    /// Single entries that matter inside otherwise uninteresting directories: a PATH, each
    /// symlink met while resolving it, a file PATH's target.
    manifests: BTreeSet<PathBuf>,
    credentials: BTreeSet<PathBuf>,
    /// Never interesting (the state directory, written by every run).
    ignore: Vec<PathBuf>,
    /// Directory to watch, and how.
    dirs: BTreeMap<PathBuf, RecursiveMode>,
}

pub(super) struct Source {
    watcher: RecommendedWatcher,
    /// Canonical directory to its mode, as wanted at the last rewatch.
    wanted: BTreeMap<PathBuf, RecursiveMode>,
    /// Canonical directory to its mode, as watched now.
    watched: BTreeMap<PathBuf, RecursiveMode>,
    /// Wanted directories that could not be watched, already logged.
    failing: BTreeSet<PathBuf>,
    interest: Arc<RwLock<Interest>>,
    paths: Vec<PathBuf>,
    credentials: Vec<PathBuf>,
    ignore: Vec<PathBuf>,
    pub signals: Arc<ChangeSignals>,
}

impl Source {
    /// Watches `paths` (the manifests) and `credentials` (files whose change means new
    /// credentials), ignoring everything under `ignore`.
    pub(super) fn new(
        paths: &[PathBuf],
        credentials: &[PathBuf],
        ignore: &[PathBuf],
    ) -> notify::Result<Source> {
        let cwd = std::env::current_dir().map_err(notify::Error::io)?;
        let absolute = |p: &PathBuf| cwd.join(p);
        let signals = Arc::new(ChangeSignals {
            manifests: Notify::new(),
            credentials: Notify::new(),
        });
        let interest = Arc::new(RwLock::new(Interest::default()));
        let (sink, seen) = (signals.clone(), interest.clone());
        let watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    tracing::warn!(%error, "file watching reported an error; reading the manifests again");
                    return sink.manifests.notify_one();
                }
            };
            let kind = classify(&event, &seen.read().unwrap_or_else(|e| e.into_inner()));
            if kind.is_some() {
                tracing::debug!(?kind, event = ?event.kind, paths = ?event.paths, "file event");
            }
            match kind {
                Some(Meaning::Credentials) => sink.credentials.notify_one(),
                Some(Meaning::Manifests) => sink.manifests.notify_one(),
                None => {}
            }
        })?;
        let mut source = Source {
            watcher,
            wanted: BTreeMap::new(),
            watched: BTreeMap::new(),
            failing: BTreeSet::new(),
            interest,
            paths: paths.iter().map(absolute).collect(),
            credentials: credentials.iter().map(absolute).collect(),
            ignore: ignore
                .iter()
                .filter_map(|p| std::fs::canonicalize(absolute(p)).ok())
                .collect(),
            signals,
        };
        source.rewatch();
        Ok(source)
    }

    /// Re-resolves every path and watches what is needed now. Returns true when the watched
    /// set changed (a symlink was swapped, a path appeared or vanished).
    pub(super) fn rewatch(&mut self) -> bool {
        let mut interest = Interest {
            ignore: self.ignore.clone(),
            ..Interest::default()
        };
        for path in &self.paths {
            interest.add(path, Meaning::Manifests);
        }
        for path in &self.credentials {
            interest.add(path, Meaning::Credentials);
        }
        let wanted = interest.dirs.clone();
        *self.interest.write().unwrap_or_else(|e| e.into_inner()) = interest;
        let changed = wanted != self.wanted;
        if wanted == self.watched {
            self.wanted = wanted;
            self.failing.clear();
            return changed;
        }
        for (dir, mode) in &self.watched {
            if wanted.get(dir) != Some(mode) {
                // It may be gone already; then so is its watch.
                let _ = self.watcher.unwatch(dir);
            }
        }
        let mut watched = BTreeMap::new();
        let mut failing = BTreeSet::new();
        for (dir, mode) in &wanted {
            if self.watched.get(dir) == Some(mode) {
                watched.insert(dir.clone(), *mode);
                continue;
            }
            match self.watcher.watch(dir, *mode) {
                Ok(()) => {
                    watched.insert(dir.clone(), *mode);
                }
                // Left out: the next rewatch tries again, without saying so again.
                Err(error) => {
                    if !self.failing.contains(dir) {
                        tracing::warn!(%error, dir = %dir.display(), "cannot watch; trying again every 30 s");
                    }
                    failing.insert(dir.clone());
                }
            }
        }
        self.watched = watched;
        self.failing = failing;
        self.wanted = wanted;
        changed
    }

    /// The directories watched now, for logs and tests.
    pub(super) fn watched(&self) -> impl Iterator<Item = &Path> {
        self.watched.keys().map(PathBuf::as_path)
    }
}

impl Interest {
    fn watch(&mut self, dir: PathBuf, mode: RecursiveMode) {
        let entry = self.dirs.entry(dir).or_insert(mode);
        if mode == RecursiveMode::Recursive {
            *entry = mode;
        }
    }

    /// An entry that matters, at its canonical directory.
    fn entry(&mut self, path: &Path, kind: Meaning) {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return;
        };
        let Ok(dir) = std::fs::canonicalize(parent) else {
            return;
        };
        self.watch(dir.clone(), RecursiveMode::NonRecursive);
        let set = match kind {
            Meaning::Manifests => &mut self.manifests,
            Meaning::Credentials => &mut self.credentials,
        };
        set.insert(dir.join(name));
    }

    /// What to watch for `path` (absolute, as given).
    fn add(&mut self, path: &Path, kind: Meaning) {
        // The path itself, where it lives: a rename there replaces it.
        self.entry(path, kind);
        // Every symlink met while resolving it: swapping one changes what the path means.
        for link in links_along(path) {
            self.entry(&link, kind);
        }
        match std::fs::canonicalize(path) {
            // Refused as a root by the manifests; only the link to it matters (watched above).
            Ok(target) if crate::manifest::kernel_tree(&target).is_some() => {}
            Ok(target) if target.is_dir() && kind == Meaning::Manifests => {
                self.trees.insert(target.clone());
                self.watch(target, RecursiveMode::Recursive);
            }
            Ok(target) => self.entry(&target, kind),
            // Not there (yet), or a symlink loop: wait for it where it would appear.
            Err(_) => {
                let mut child = path;
                for ancestor in path.ancestors().skip(1) {
                    if std::fs::canonicalize(ancestor).is_ok_and(|a| a.is_dir()) {
                        self.entry(child, kind);
                        break;
                    }
                    child = ancestor;
                }
            }
        }
    }
}

/// The symlinks traversed while resolving `path`, as absolute paths, link targets followed
/// (so `a.yaml -> ..data/a.yaml` yields `a.yaml` and `..data`); at most 40, as the kernel.
fn links_along(path: &Path) -> Vec<PathBuf> {
    let mut links = Vec::new();
    // Components still to resolve, the next one last.
    let mut rest: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .map(|c| c.as_os_str().to_owned())
        .collect();
    let mut done = PathBuf::new();
    while let Some(part) = rest.pop() {
        let next = done.join(&part);
        match std::fs::read_link(&next) {
            Ok(target) if links.len() < 40 => {
                links.push(next);
                // The target takes this component's place; a relative one is read from here.
                if target.is_absolute() {
                    done = PathBuf::new();
                }
                rest.extend(target.components().rev().map(|c| c.as_os_str().to_owned()));
            }
            _ => done = next,
        }
    }
    links
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meaning {
    Manifests,
    Credentials,
}

/// What an event means, if anything. Reads (ours among them) and the state directory's own
/// writes mean nothing; neither do changes to unrelated files beside a watched entry.
fn classify(event: &Event, interest: &Interest) -> Option<Meaning> {
    // Opening and reading (ours among them) change nothing; closing after a write does.
    if matches!(event.kind, EventKind::Access(a) if a != AccessKind::Close(AccessMode::Write)) {
        return None;
    }
    let mut kind = None;
    for p in &event.paths {
        if interest.ignore.iter().any(|i| p.starts_with(i)) {
            continue;
        }
        if interest.manifests.contains(p) || interest.trees.iter().any(|t| p.starts_with(t)) {
            return Some(Meaning::Manifests);
        }
        if interest.credentials.contains(p) {
            kind = Some(Meaning::Credentials);
        }
    }
    // An event without a path (a rescan, an overflow): look again to be sure.
    if event.paths.is_empty() {
        return Some(Meaning::Manifests);
    }
    kind
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind};

    fn event(kind: EventKind, paths: &[&Path]) -> Event {
        paths
            .iter()
            .fold(Event::new(kind), |e, p| e.add_path(p.to_path_buf()))
    }

    fn interest(paths: &[&Path], credentials: &[&Path], ignore: &[&Path]) -> Interest {
        let mut i = Interest {
            ignore: ignore.iter().map(|p| p.to_path_buf()).collect(),
            ..Interest::default()
        };
        for p in paths {
            i.add(p, Meaning::Manifests);
        }
        for p in credentials {
            i.add(p, Meaning::Credentials);
        }
        i
    }

    fn tree() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        (dir, root)
    }

    #[test]
    fn only_changes_to_what_matters_count() {
        let (_dir, root) = tree();
        std::fs::create_dir_all(root.join("manifests/.subsync")).unwrap();
        std::fs::create_dir_all(root.join("secret")).unwrap();
        let i = interest(
            &[&root.join("manifests")],
            &[&root.join("secret/key")],
            &[&root.join("manifests/.subsync")],
        );
        let edit = event(
            EventKind::Modify(ModifyKind::Any),
            &[&root.join("manifests/a.yaml")],
        );
        assert_eq!(classify(&edit, &i), Some(Meaning::Manifests));
        let read = event(
            EventKind::Access(AccessKind::Any),
            &[&root.join("manifests/a.yaml")],
        );
        assert_eq!(classify(&read, &i), None);
        let written = EventKind::Access(AccessKind::Close(AccessMode::Write));
        let written = event(written, &[&root.join("manifests/a.yaml")]);
        assert_eq!(classify(&written, &i), Some(Meaning::Manifests));
        let ledger = event(
            EventKind::Modify(ModifyKind::Any),
            &[&root.join("manifests/.subsync/ledger.db-wal")],
        );
        assert_eq!(classify(&ledger, &i), None);
        // A log file beside the manifests directory is not the manifests directory.
        let beside = event(
            EventKind::Modify(ModifyKind::Any),
            &[&root.join("daemon.log")],
        );
        assert_eq!(classify(&beside, &i), None);
        let replaced = event(
            EventKind::Create(CreateKind::Any),
            &[&root.join("manifests")],
        );
        assert_eq!(classify(&replaced, &i), Some(Meaning::Manifests));
        let rotated = event(
            EventKind::Create(CreateKind::Any),
            &[&root.join("secret/key")],
        );
        assert_eq!(classify(&rotated, &i), Some(Meaning::Credentials));
    }

    #[test]
    fn a_git_sync_link_is_watched_where_it_lives_and_at_its_target() {
        let (_dir, root) = tree();
        std::fs::create_dir_all(root.join("rev1/manifests")).unwrap();
        std::os::unix::fs::symlink("rev1", root.join("current")).unwrap();
        let i = interest(&[&root.join("current/manifests")], &[], &[]);
        assert_eq!(i.dirs.get(&root), Some(&RecursiveMode::NonRecursive));
        assert_eq!(
            i.dirs.get(&root.join("rev1/manifests")),
            Some(&RecursiveMode::Recursive)
        );
        let swap = event(EventKind::Create(CreateKind::Any), &[&root.join("current")]);
        assert_eq!(classify(&swap, &i), Some(Meaning::Manifests));
    }

    #[test]
    fn a_configmap_file_is_followed_through_its_data_link() {
        let (_dir, root) = tree();
        std::fs::create_dir_all(root.join("..2026_11_30")).unwrap();
        std::fs::write(root.join("..2026_11_30/a.yaml"), "x").unwrap();
        std::os::unix::fs::symlink("..2026_11_30", root.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/a.yaml", root.join("a.yaml")).unwrap();
        assert_eq!(
            links_along(&root.join("a.yaml")),
            [root.join("a.yaml"), root.join("..data")]
        );
        let i = interest(&[&root.join("a.yaml")], &[], &[]);
        let swap = event(EventKind::Create(CreateKind::Any), &[&root.join("..data")]);
        assert_eq!(classify(&swap, &i), Some(Meaning::Manifests));
        let other = event(
            EventKind::Create(CreateKind::Any),
            &[&root.join("..data_tmp")],
        );
        assert_eq!(classify(&other, &i), None);
    }

    #[test]
    fn a_link_to_a_kernel_filesystem_is_watched_where_it_lives_never_inside() {
        let (_dir, root) = tree();
        std::os::unix::fs::symlink("/proc", root.join("m")).unwrap();
        let i = interest(&[&root.join("m")], &[], &[]);
        assert_eq!(i.dirs.keys().collect::<Vec<_>>(), [&root]);
        assert!(i.trees.is_empty());
        let swap = event(EventKind::Create(CreateKind::Any), &[&root.join("m")]);
        assert_eq!(classify(&swap, &i), Some(Meaning::Manifests));
    }

    #[test]
    fn a_missing_path_is_awaited_in_its_nearest_ancestor() {
        let (_dir, root) = tree();
        let i = interest(&[&root.join("later/manifests")], &[], &[]);
        assert_eq!(i.dirs.keys().collect::<Vec<_>>(), [&root]);
        let appears = event(EventKind::Create(CreateKind::Any), &[&root.join("later")]);
        assert_eq!(classify(&appears, &i), Some(Meaning::Manifests));
    }
}
