//! The writer lock: one process at a time may write the ledger.
//!
//! An advisory `flock` on `STATE/ledger.lock`, taken without waiting, so a second writer is
//! refused at once. The operating system releases it when the process dies (SIGKILL included),
//! so a crashed run never leaves a stale lock behind.
//!
//! The file is opened without following symbolic links and must be a regular file: a link
//! planted there would otherwise have subsync truncate whatever it points at. The holder is
//! named from the kernel's own record of the lock (`/proc/locks`), so a note left in the file
//! by an earlier holder cannot name the wrong process; the note (command, start time) is shown
//! only when it was written by the process that holds the lock now.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::ledger::{Cause, LedgerError};

/// Held for as long as the writer lives.
#[derive(Debug)]
pub(super) struct WriterLock {
    _file: File,
}

/// Largest note read back from a lock file: the note subsync writes is under 100 bytes.
const MAX_NOTE: u64 = 4096;

pub(super) fn acquire(state_dir: &Path, command: &str) -> Result<WriterLock, LedgerError> {
    let path = state_dir.join("ledger.lock");
    let shown = path.display().to_string();
    let io = |e: std::io::Error| LedgerError::Io {
        at: shown.clone(),
        action: "take the writer lock",
        cause: Cause::new(e),
    };
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        // O_NONBLOCK: a FIFO planted there must not hang the open.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path);
    let mut file = match opened {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(LedgerError::LockFile {
                at: shown,
                what: "a symbolic link, which subsync does not follow",
            });
        }
        Err(e) => return Err(io(e)),
    };
    let meta = file.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(LedgerError::LockFile {
            at: shown,
            what: "not a regular file",
        });
    }
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let note = read_note(&mut file);
            return Err(LedgerError::Locked {
                at: state_dir.join(super::FILE_NAME).display().to_string(),
                holder: describe_holder(holder_pid(&meta), &note),
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    let text = format!(
        "pid={}\nsince={}\ncommand={command}\n",
        std::process::id(),
        crate::clock::rfc3339(crate::clock::unix_now() as i64)
    );
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(text.as_bytes()))
        .map_err(io)?;
    Ok(WriterLock { _file: file })
}

fn read_note(file: &mut File) -> String {
    let mut note = String::new();
    let _ = file.take(MAX_NOTE).read_to_string(&mut note);
    note
}

/// The PID holding a `flock` on the file with `meta`, as the kernel records it.
fn holder_pid(meta: &std::fs::Metadata) -> Option<u32> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let dev = meta.dev();
    let wanted = format!(
        "{:02x}:{:02x}:{}",
        libc::major(dev),
        libc::minor(dev),
        meta.ino()
    );
    // `1: FLOCK  ADVISORY  WRITE 21656 fe:00:10010719 0 EOF`
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let at = fields.iter().position(|f| *f == wanted)?;
        (fields.get(1) == Some(&"FLOCK"))
            .then(|| fields.get(at.checked_sub(1)?)?.parse().ok())
            .flatten()
    })
}

/// "PID 123 (subsync apply since T)", from the kernel's PID and the note when it matches.
fn describe_holder(pid: Option<u32>, note: &str) -> String {
    let field = |key: &str| {
        note.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
            .map(crate::quote::quote)
    };
    let noted_pid = note
        .lines()
        .find_map(|l| l.strip_prefix("pid="))
        .and_then(|p| p.trim().parse::<u32>().ok());
    let details = || {
        let command = field("command").unwrap_or_else(|| "?".into());
        let since = field("since").unwrap_or_else(|| "?".into());
        format!(
            "subsync {} since {}",
            command.trim_matches('"'),
            since.trim_matches('"')
        )
    };
    match (pid, noted_pid) {
        (Some(pid), Some(noted)) if pid == noted => format!("PID {pid} ({})", details()),
        (Some(pid), _) => {
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| crate::quote::quote(c.trim()))
                .unwrap_or_else(|_| "an unknown process".into());
            format!("PID {pid} ({name}; the lock file's note is not its own)")
        }
        (None, Some(noted)) => format!("PID {noted} ({}, as the lock file says)", details()),
        (None, None) => "another process".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_at_once_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let _held = acquire(dir.path(), "apply").unwrap();
        let err = acquire(dir.path(), "apply").unwrap_err().to_string();
        assert!(
            err.contains(&format!("locked by PID {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("(subsync apply since "), "{err}");
    }

    #[test]
    fn the_lock_is_free_again_once_dropped() {
        let dir = tempfile::tempdir().unwrap();
        drop(acquire(dir.path(), "apply").unwrap());
        assert!(acquire(dir.path(), "apply").is_ok());
    }

    #[test]
    fn a_symlinked_lock_file_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep me\n").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("ledger.lock")).unwrap();
        let err = acquire(dir.path(), "apply").unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
    }

    #[test]
    fn a_stale_note_never_names_the_wrong_process() {
        assert_eq!(
            describe_holder(Some(42), "pid=7\nsince=x\ncommand=apply\n"),
            format!(
                "PID 42 ({}; the lock file's note is not its own)",
                std::fs::read_to_string("/proc/42/comm")
                    .map(|c| crate::quote::quote(c.trim()))
                    .unwrap_or_else(|_| "an unknown process".into())
            )
        );
        assert_eq!(
            describe_holder(Some(7), "pid=7\nsince=T\ncommand=watch\n"),
            "PID 7 (subsync watch since T)"
        );
        assert!(!describe_holder(Some(7), "pid=7\ncommand=\u{1b}[2J\n").contains('\u{1b}'));
    }
}
