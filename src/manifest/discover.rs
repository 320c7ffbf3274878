//! Which files a PATH argument stands for.
//!
//! A file is taken as given; a directory is searched recursively for `*.yaml`/`*.yml`, in
//! sorted order, skipping every name that starts with `.`. Kubernetes volumes keep their real
//! files under `..data` and `..<timestamp>` and expose them through symlinks at the top, so
//! skipping dot-names is what keeps each manifest from being read twice.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::Diagnostic;

/// The manifest files under `paths`, deduplicated, each once.
pub fn manifest_files(paths: &[PathBuf], problems: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut seen_dirs = HashSet::new();
    for path in paths {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => walk(path, &mut files, &mut seen_dirs, problems),
            Ok(_) => files.push(path.clone()),
            Err(e) => problems.push(Diagnostic::file(
                path,
                format!("cannot read: {e}; check the path"),
            )),
        }
    }
    // The same file named twice (or reached through two arguments) is read once.
    let mut unique = HashSet::new();
    files.retain(|f| unique.insert(std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())));
    files
}

fn walk(
    dir: &Path,
    files: &mut Vec<PathBuf>,
    seen_dirs: &mut HashSet<PathBuf>,
    problems: &mut Vec<Diagnostic>,
) {
    // Symlinked directories are followed, but a loop is walked once.
    if !seen_dirs.insert(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned())) {
        return;
    }
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            problems.push(Diagnostic::file(dir, format!("cannot list directory: {e}")));
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
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => walk(&path, files, seen_dirs, problems),
            Ok(_) if is_yaml(&path) => files.push(path),
            Ok(_) => {}
            Err(e) if is_yaml(&path) => {
                problems.push(Diagnostic::file(&path, format!("cannot read: {e}")))
            }
            Err(_) => {}
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
        assert!(problems.is_empty());
        assert_eq!(files, vec![root.join("a.yaml"), root.join("sub/b.yml")]);
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
}
