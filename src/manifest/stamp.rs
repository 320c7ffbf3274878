//! Telling that the manifests did not change without reading them: each file read is stamped
//! with what `fstat` said of it as it was opened (device, inode, size, modification and change
//! times), and the set is unchanged while the same files are found with the same stamps. An
//! editor's rename, `git checkout`, a ConfigMap's swapped `..data` link or a write in place all
//! change a stamp; a daemon's resync then reads only what changed anything, and a converged
//! resync reads nothing.

use std::fs::Metadata;
use std::path::{Path, PathBuf};

use super::ManifestSet;
use super::discover;

/// What a file was when it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl Stamp {
    pub(crate) fn of(meta: &Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            modified: (meta.mtime(), meta.mtime_nsec()),
            changed: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    pub(crate) fn matches(&self, path: &Path) -> bool {
        std::fs::metadata(path).is_ok_and(|meta| Stamp::of(&meta) == *self)
    }
}

/// True when `paths` hold exactly the files `set` was read from, none of them changed since.
pub(crate) fn unchanged(paths: &[PathBuf], set: &ManifestSet) -> bool {
    let mut problems = Vec::new();
    let found = discover::manifest_files(paths, &mut problems);
    problems.is_empty()
        && found.len() == set.files.len()
        && found.iter().zip(&set.files).all(|(f, p)| &f.path == p)
        && !set.inputs.is_empty()
        && set.inputs.iter().all(|(path, stamp)| stamp.matches(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Limits, load};

    #[test]
    fn a_set_is_unchanged_until_a_file_changes_appears_or_goes() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m");
        std::fs::create_dir(&m).unwrap();
        std::fs::write(m.join("list.txt"), "a\nb\n").unwrap();
        let doc = "apiVersion: subsync/v1\nkind: SubscriberSet\nmetadata: {name: w}\nspec:\n  officialAccount: \"@TOA#_w\"\n  subscriberFiles: [list.txt]\n";
        std::fs::write(m.join("w.yaml"), doc).unwrap();
        let paths = vec![m.clone()];
        let set = load(&paths, &Limits::default()).unwrap();
        assert!(unchanged(&paths, &set));
        // A list file rewritten (a new inode, as editors and git do).
        std::fs::write(m.join("list.new"), "a\nb\nc\n").unwrap();
        std::fs::rename(m.join("list.new"), m.join("list.txt")).unwrap();
        assert!(!unchanged(&paths, &set));
        let set = load(&paths, &Limits::default()).unwrap();
        assert!(unchanged(&paths, &set));
        // A new manifest file.
        std::fs::write(
            m.join("x.yaml"),
            doc.replace("name: w", "name: x").replace("_w", "_x"),
        )
        .unwrap();
        assert!(!unchanged(&paths, &set));
    }
}
