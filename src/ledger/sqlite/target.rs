//! A SQLite ledger's location: a directory holding `ledger.db` (and the writer's lock file).
//!
//! The directory is created on first use, but only inside a directory that exists: a typo in
//! `--state` (`postgresql//db`, a path under a directory that is not there) must not quietly
//! start a new, empty ledger somewhere, which would plan and resend every subscriber.

use std::path::{Path, PathBuf};

/// The ledger's file inside its directory.
pub(crate) const FILE_NAME: &str = "ledger.db";

/// A directory to keep the ledger in.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    dir: PathBuf,
    /// The directory `--state` named (the ledger's own, or for the sandbox its parent): the
    /// one that may be created, inside a parent that exists.
    root: PathBuf,
    /// The ledger's file, as messages show it.
    shown: String,
}

/// Why a directory cannot hold a ledger.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DirectoryError {
    #[error(
        "--state {} is {what}; expected a directory (the ledger is DIR/ledger.db, created on first use) or a postgres:// URL",
        .path.display()
    )]
    NotDirectory { path: PathBuf, what: &'static str },
    #[error("directory {} does not exist; create it or fix --state", .dir.display())]
    NoParent { dir: PathBuf },
}

impl Target {
    /// The ledger in `dir`.
    pub(crate) fn new(dir: PathBuf) -> Target {
        Target::under(dir.clone(), dir)
    }

    /// The ledger in `dir`, inside (or at) `root`.
    pub(crate) fn under(root: PathBuf, dir: PathBuf) -> Target {
        let shown = dir.join(FILE_NAME).display().to_string();
        Target { dir, root, shown }
    }

    /// The ledger in `dir`, which must be a directory, or missing inside one that exists.
    pub(crate) fn resolve(dir: &Path) -> Result<Target, DirectoryError> {
        check(dir)?;
        Ok(Target::new(dir.to_owned()))
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn file(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// Makes the ledger's directory if it is not there yet (the root only inside a parent
    /// that exists); true when it made it.
    pub(super) fn create(&self) -> Result<bool, std::io::Error> {
        if self.dir.is_dir() {
            return Ok(false);
        }
        check(&self.root).map_err(std::io::Error::other)?;
        std::fs::create_dir_all(&self.dir)?;
        Ok(true)
    }
}

/// Refuses a path that exists but is not a directory, and a missing one whose parent is
/// missing too.
pub(super) fn check(dir: &Path) -> Result<(), DirectoryError> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(meta) => Err(DirectoryError::NotDirectory {
            path: dir.to_owned(),
            what: if meta.is_file() {
                "a file"
            } else {
                "not a directory"
            },
        }),
        Err(_) => {
            let parent = match dir.parent() {
                Some(p) if p.as_os_str().is_empty() => Path::new("."),
                Some(p) => p,
                None => return Ok(()),
            };
            if parent.is_dir() {
                Ok(())
            } else {
                Err(DirectoryError::NoParent {
                    dir: parent.to_owned(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_refused_and_a_missing_directory_needs_its_parent() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state");
        std::fs::write(&file, "x").unwrap();
        let err = check(&file).unwrap_err().to_string();
        assert!(err.contains("is a file; expected a directory"), "{err}");
        assert!(check(&dir.path().join("later")).is_ok());
        let deep = dir.path().join("postgresql/db/subsync");
        let err = check(&deep).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "directory {} does not exist; create it or fix --state",
                dir.path().join("postgresql/db").display()
            )
        );
        assert!(check(Path::new("relative-dir-in-the-working-directory")).is_ok());
    }

    #[test]
    fn the_directory_is_made_only_inside_a_parent_that_exists() {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = Target::under(dir.path().join("state"), dir.path().join("state/sandbox"));
        assert!(sandbox.create().unwrap());
        assert!(dir.path().join("state/sandbox").is_dir());
        let stray = Target::new(dir.path().join("missing/state"));
        assert!(stray.create().is_err());
        assert!(!dir.path().join("missing").exists());
    }
}
