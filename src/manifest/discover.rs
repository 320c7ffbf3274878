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

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Diagnostic;
use super::confine::Root;

/// A manifest file and the root its subscriber files must stay in.
#[derive(Debug, Clone)]
pub struct Found {
    pub path: PathBuf,
    pub root: Arc<Root>,
}

/// The manifest files under `paths`, deduplicated, each once.
pub fn manifest_files(paths: &[PathBuf], problems: &mut Vec<Diagnostic>) -> Vec<Found> {
    let mut files = Vec::new();
    let mut seen_dirs = HashSet::new();
    for path in paths {
        let cannot = |e: std::io::Error| {
            Diagnostic::file(path, format!("cannot read: {e}; check the path")).caused_by(Some(&e))
        };
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => match Root::new(path) {
                Ok(root) => {
                    let root = Arc::new(root);
                    walk(path, &root, &mut files, &mut seen_dirs, problems);
                }
                Err(e) => problems.push(cannot(e)),
            },
            Ok(_) => {
                let parent = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                match Root::new(parent) {
                    Ok(root) => files.push(Found {
                        path: path.clone(),
                        root: Arc::new(root),
                    }),
                    Err(e) => problems.push(cannot(e)),
                }
            }
            Err(e) => problems.push(cannot(e)),
        }
    }
    // The same file named twice (or reached through two arguments) is read once.
    let mut unique = HashSet::new();
    files.retain(|f| {
        unique.insert(std::fs::canonicalize(&f.path).unwrap_or_else(|_| f.path.clone()))
    });
    files
}

fn walk(
    dir: &Path,
    root: &Arc<Root>,
    files: &mut Vec<Found>,
    seen_dirs: &mut HashSet<PathBuf>,
    problems: &mut Vec<Diagnostic>,
) {
    // Symlinked directories are followed, but a loop is walked once.
    if !seen_dirs.insert(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned())) {
        return;
    }
    let listed = std::fs::read_dir(dir).and_then(|rd| {
        rd.map(|entry| entry.map(|e| e.path()))
            .collect::<std::io::Result<Vec<PathBuf>>>()
    });
    // An entry that cannot be listed is a problem, never a file quietly left out: a manifest
    // missing from the set would look like one deleted in the pull request.
    let mut entries = match listed {
        Ok(entries) => entries,
        Err(e) => {
            problems.push(
                Diagnostic::file(dir, format!("cannot list directory: {e}")).caused_by(Some(&e)),
            );
            return;
        }
    };
    entries.sort();
    for path in entries {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if is_yaml(&path) => {
                problems
                    .push(Diagnostic::file(&path, format!("cannot read: {e}")).caused_by(Some(&e)));
                continue;
            }
            Err(_) => continue,
        };
        if !(meta.is_dir() || is_yaml(&path)) {
            continue;
        }
        if !root.contains(&path) {
            problems.push(Diagnostic::file(
                &path,
                format!(
                    "is a link to a place outside {}; manifests and their lists must stay inside the directory given",
                    root.given.display()
                ),
            ));
            continue;
        }
        if meta.is_dir() {
            walk(&path, root, files, seen_dirs, problems);
        } else if meta.is_file() {
            files.push(Found {
                path,
                root: root.clone(),
            });
        } else {
            problems.push(Diagnostic::file(
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
