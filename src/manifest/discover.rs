//! Which files a PATH argument stands for.
//!
//! A file is taken as given; a directory is searched recursively for `*.yaml`/`*.yml`, in
//! sorted order, skipping every name that starts with `.`. Kubernetes volumes keep their real
//! files under `..data` and `..<timestamp>` and expose them through symlinks at the top, so
//! skipping dot-names is what keeps each manifest from being read twice.
//!
//! Each file found carries its root (see [`super::confine`]): the directory argument itself,
//! or the parent of a file argument. Inside a directory, symlinks are followed only while they
//! stay inside the root, and only regular files are taken.
//!
//! Bounded: kernel filesystems (`/proc`, `/sys`, `/dev`, where entries come and go all the
//! time and reading can block or cost a lot) are refused as roots and never walked into, and
//! one load looks at no more than [`MAX_ENTRIES`] directory entries.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Diagnostic;
use super::confine::Root;

/// A manifest file and the root its subscriber files must stay in.
#[derive(Debug, Clone)]
pub(super) struct Found {
    pub(crate) path: PathBuf,
    pub(crate) root: Arc<Root>,
}

/// Most directory entries one load looks at: far more than any repository of manifests, far
/// fewer than a mistaken root such as `/`.
pub(super) const MAX_ENTRIES: usize = 100_000;

/// Where the kernel's filesystems are mounted: never manifests.
const KERNEL_TREES: [&str; 3] = ["/proc", "/sys", "/dev"];

/// The kernel filesystem `path` (canonical) lies in, if it does.
pub(crate) fn kernel_tree(path: &Path) -> Option<&'static str> {
    KERNEL_TREES.into_iter().find(|tree| path.starts_with(tree))
}

fn kernel_tree_problem(path: &Path, real: &Path, tree: &str) -> Diagnostic {
    let resolved = if real == path {
        String::new()
    } else {
        format!(" resolves to {} and", real.display())
    };
    Diagnostic::file(
        path,
        format!(
            "{resolved} is in {tree}, a kernel filesystem whose entries change all the time; manifests are read only from ordinary directories: check the path (or the link)"
        )
        .trim_start()
        .to_owned(),
    )
}

/// What one load has looked at so far.
struct Walk<'a> {
    max_entries: usize,
    files: Vec<Found>,
    seen_dirs: HashSet<PathBuf>,
    entries: usize,
    problems: &'a mut Vec<Diagnostic>,
}

/// The manifest files under `paths`, deduplicated, each once.
pub(super) fn manifest_files(paths: &[PathBuf], problems: &mut Vec<Diagnostic>) -> Vec<Found> {
    files_within(paths, problems, MAX_ENTRIES)
}

/// [`manifest_files`], looking at no more than `max_entries` directory entries.
fn files_within(
    paths: &[PathBuf],
    problems: &mut Vec<Diagnostic>,
    max_entries: usize,
) -> Vec<Found> {
    let mut walk = Walk {
        max_entries,
        files: Vec::new(),
        seen_dirs: HashSet::new(),
        entries: 0,
        problems,
    };
    for path in paths {
        let cannot = |e: std::io::Error| {
            Diagnostic::file(path, format!("cannot read: {e}; check the path")).caused_by(Some(&e))
        };
        if let Ok(real) = std::fs::canonicalize(path)
            && let Some(tree) = kernel_tree(&real)
        {
            walk.problems.push(kernel_tree_problem(path, &real, tree));
            continue;
        }
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => match Root::new(path) {
                Ok(root) => walk.dir(path, &Arc::new(root)),
                Err(e) => walk.problems.push(cannot(e)),
            },
            Ok(_) => {
                let parent = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                match Root::new(parent) {
                    Ok(root) => walk.files.push(Found {
                        path: path.clone(),
                        root: Arc::new(root),
                    }),
                    Err(e) => walk.problems.push(cannot(e)),
                }
            }
            Err(e) => walk.problems.push(cannot(e)),
        }
    }
    // The same file named twice (or reached through two arguments) is read once.
    let mut unique = HashSet::new();
    let mut files = walk.files;
    files.retain(|f| {
        unique.insert(std::fs::canonicalize(&f.path).unwrap_or_else(|_| f.path.clone()))
    });
    files
}

impl Walk<'_> {
    fn dir(&mut self, dir: &Path, root: &Arc<Root>) {
        // Symlinked directories are followed, but a loop is walked once.
        let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
        if let Some(tree) = kernel_tree(&real) {
            self.problems.push(kernel_tree_problem(dir, &real, tree));
            return;
        }
        if !self.seen_dirs.insert(real) {
            return;
        }
        if self.entries > self.max_entries {
            return;
        }
        let listed = std::fs::read_dir(dir).and_then(|rd| {
            rd.map(|entry| entry.map(|e| e.path()))
                .take(self.max_entries + 1 - self.entries)
                .collect::<std::io::Result<Vec<PathBuf>>>()
        });
        // An entry that cannot be listed is a problem, never a file quietly left out: a
        // manifest missing from the set would look like one deleted in the pull request.
        let mut entries = match listed {
            Ok(entries) => entries,
            Err(e) => {
                self.problems.push(
                    Diagnostic::file(dir, format!("cannot list directory: {e}"))
                        .caused_by(Some(&e)),
                );
                return;
            }
        };
        self.entries += entries.len();
        if self.entries > self.max_entries {
            self.problems.push(Diagnostic::file(
                &root.given,
                format!(
                    "holds more than {} entries; give the directory of the manifests themselves, not a tree around them",
                    crate::report::thousands(self.max_entries as u64)
                ),
            ));
            return;
        }
        entries.sort();
        for path in entries {
            self.entry(path, root);
        }
    }

    fn entry(&mut self, path: PathBuf, root: &Arc<Root>) {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if hidden {
            return;
        }
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if is_yaml(&path) => {
                self.problems
                    .push(Diagnostic::file(&path, format!("cannot read: {e}")).caused_by(Some(&e)));
                return;
            }
            Err(_) => return,
        };
        if !(meta.is_dir() || is_yaml(&path)) {
            return;
        }
        if !root.contains(&path) {
            self.problems.push(Diagnostic::file(
                &path,
                format!(
                    "is a link to a place outside {}; manifests and their lists must stay inside the directory given",
                    root.given.display()
                ),
            ));
            return;
        }
        if meta.is_dir() {
            self.dir(&path, root);
        } else if meta.is_file() {
            self.files.push(Found {
                path,
                root: root.clone(),
            });
        } else {
            self.problems.push(Diagnostic::file(
                &path,
                "is not a regular file (a FIFO, socket or device); subsync reads only regular files",
            ));
        }
    }
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(found: &[Found]) -> Vec<PathBuf> {
        found.iter().map(|f| f.path.clone()).collect()
    }

    #[test]
    fn kubernetes_volume_layout_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("..2026_11_25")).unwrap();
        std::fs::write(root.join("..2026_11_25/a.yaml"), "x").unwrap();
        std::os::unix::fs::symlink("..2026_11_25", root.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/a.yaml", root.join("a.yaml")).unwrap();
        std::fs::write(root.join(".hidden.yaml"), "x").unwrap();
        std::fs::write(root.join("notes.txt"), "x").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/b.yml"), "x").unwrap();
        let mut problems = Vec::new();
        let files = manifest_files(&[root.to_owned()], &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            paths(&files),
            vec![root.join("a.yaml"), root.join("sub/b.yml")]
        );
        assert_eq!(files[0].root.given, root);
    }

    #[test]
    fn kernel_filesystems_are_refused_as_roots_directly_or_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("m");
        std::os::unix::fs::symlink("/proc", &link).unwrap();
        for (path, shown) in [
            (
                link.clone(),
                format!("{}: resolves to /proc and is in /proc", link.display()),
            ),
            (
                PathBuf::from("/sys/kernel"),
                "/sys/kernel: is in /sys".into(),
            ),
            (PathBuf::from("/dev"), "/dev: is in /dev".into()),
        ] {
            let mut problems = Vec::new();
            assert!(manifest_files(&[path], &mut problems).is_empty());
            assert_eq!(problems.len(), 1, "{problems:?}");
            let text = problems[0].to_string();
            assert!(
                text.starts_with(&shown) && text.contains("a kernel filesystem"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_tree_far_larger_than_any_manifest_repository_is_refused_after_a_bounded_walk() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in 0..11 {
            let sub = root.join(format!("d{d:02}"));
            std::fs::create_dir(&sub).unwrap();
            for f in 0..100 {
                std::fs::File::create(sub.join(format!("{f}"))).unwrap();
            }
        }
        let mut problems = Vec::new();
        files_within(&[root.to_owned()], &mut problems, 1000);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0]
                .to_string()
                .contains("holds more than 1,000 entries"),
            "{problems:?}"
        );
        problems.clear();
        files_within(&[root.to_owned()], &mut problems, 2000);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn a_missing_path_is_a_problem_not_an_empty_set() {
        let mut problems = Vec::new();
        let files = manifest_files(&[PathBuf::from("/nonexistent/manifests")], &mut problems);
        assert!(files.is_empty());
        assert!(
            problems[0]
                .to_string()
                .starts_with("/nonexistent/manifests: cannot read")
        );
    }

    #[test]
    fn links_out_of_the_tree_and_fifos_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("m");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(dir.path().join("elsewhere.yaml"), "x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere.yaml"), root.join("a.yaml")).unwrap();
        std::os::unix::fs::symlink("/", root.join("everything")).unwrap();
        let fifo = std::ffi::CString::new(root.join("x.yaml").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let mut problems = Vec::new();
        let files = manifest_files(std::slice::from_ref(&root), &mut problems);
        assert!(files.is_empty());
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(
            text[0].contains("a.yaml: is a link to a place outside"),
            "{text:?}"
        );
        assert!(text[1].contains("everything: is a link"), "{text:?}");
        assert!(
            text[2].contains("x.yaml: is not a regular file"),
            "{text:?}"
        );
    }
}
