//! Durable whole-file writes.
//!
//! A write replaces the file at a path by renaming a new one over it, so it is only ever
//! pointed at a regular file (or a path where nothing is yet): renaming over a device, a FIFO
//! or a socket would put a regular file in its place (as root, `--out /dev/null` once replaced
//! the machine's `/dev/null`). Such a target is refused before anything is written, and again
//! just before the rename. A symbolic link is written through: the file it names is replaced
//! and the link stays.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A file being written to replace `path`, so that a reader (or a crash) sees the old file or
/// the new one, never a torn one: the content goes to a temporary file of a name no other
/// writer uses beside it; [`Replacement::commit`] fsyncs it, renames it over `path`, then
/// fsyncs the directory so that the rename itself survives a crash. Dropped uncommitted, it
/// leaves nothing behind.
pub(crate) struct Replacement {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl Replacement {
    /// Starts a replacement of `path`, which must be a regular file, a link to one, or
    /// nothing yet (see the module's doc).
    pub(crate) fn create(path: &Path) -> std::io::Result<Replacement> {
        let path = &replaceable(path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir_of(path).join(format!(
            ".{name}.{}.{:016x}.tmp",
            std::process::id(),
            rand::random::<u64>()
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        Ok(Replacement {
            path: path.to_owned(),
            tmp,
            file: Some(std::io::BufWriter::new(file)),
        })
    }

    pub(crate) fn commit(mut self) -> std::io::Result<()> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let renamed = (|| {
            let file = file.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            // The path may have become something else while the content was written.
            replaceable(&self.path)?;
            std::fs::rename(&self.tmp, &self.path)
        })();
        if renamed.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        renamed?;
        std::fs::File::open(dir_of(&self.path))?.sync_all()
    }
}

impl Write for Replacement {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.file {
            Some(file) => file.write(buf),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for Replacement {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// The path to rename over for a write to `path`: `path` itself when it is a regular file or
/// does not exist, the file a symbolic link names when it is one; anything else is refused.
fn replaceable(path: &Path) -> std::io::Result<PathBuf> {
    let link = match std::fs::symlink_metadata(path) {
        Ok(m) => m.file_type().is_symlink(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(path.to_owned()),
        Err(e) => return Err(e),
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if link && e.kind() == std::io::ErrorKind::NotFound => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "it is a symbolic link to nothing; name a regular file, or remove the link",
            ));
        }
        Err(e) => return Err(e),
    };
    if meta.is_file() {
        return if link {
            std::fs::canonicalize(path)
        } else {
            Ok(path.to_owned())
        };
    }
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_fifo() {
        "a named pipe (FIFO)"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    let through = if link {
        " (through a symbolic link)"
    } else {
        ""
    };
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!(
            "it is {what}{through}, and writing here replaces the path with a regular file; name a regular file or a new path"
        ),
    ))
}

fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Replaces `path` with `bytes` (see [`Replacement`]).
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = Replacement::create(path)?;
    file.write_all(bytes)?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn a_relative_name_in_the_working_directory_works() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        write_atomically(&path, b"1").unwrap();
        assert!(write_atomically(Path::new("/nonexistent-dir/x"), b"1").is_err());
    }

    fn fifo(path: &Path) {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a file system entry.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn a_fifo_a_device_or_a_directory_is_refused_and_left_as_it_was() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let pipe = dir.path().join("pipe");
        fifo(&pipe);
        // A link in the temporary directory to the machine's null device: were it written
        // over, only the link would go, never /dev/null itself.
        let device = dir.path().join("null");
        std::os::unix::fs::symlink("/dev/null", &device).unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        for (path, what) in [
            (&pipe, "a named pipe (FIFO), and"),
            (&device, "a character device (through a symbolic link)"),
            (&sub, "a directory"),
        ] {
            let e = write_atomically(path, b"x").err().unwrap();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
            assert!(e.to_string().contains(what), "{e}");
            assert!(e.to_string().contains("name a regular file"), "{e}");
        }
        assert!(
            std::fs::symlink_metadata(&pipe)
                .unwrap()
                .file_type()
                .is_fifo()
        );
        assert!(
            std::fs::symlink_metadata(&device)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 3, "no temporary left behind");
    }

    #[test]
    fn a_link_to_a_regular_file_is_written_through_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("plan.json");
        std::fs::write(&target, b"old").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_atomically(&link, b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nothing"), &dangling).unwrap();
        let e = write_atomically(&dangling, b"x").err().unwrap();
        assert!(e.to_string().contains("link to nothing"), "{e}");
    }

    #[test]
    fn a_path_that_became_a_fifo_while_written_is_not_renamed_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let mut file = Replacement::create(&path).unwrap();
        file.write_all(b"x").unwrap();
        fifo(&path);
        assert!(file.commit().is_err());
        use std::os::unix::fs::FileTypeExt;
        assert!(
            std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_fifo()
        );
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary left behind");
    }
}
