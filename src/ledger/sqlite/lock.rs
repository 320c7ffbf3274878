//! The writer lock: one process at a time may write the ledger.
//!
//! An advisory lock on `STATE/ledger.lock`, taken without waiting, so a second writer is refused
//! at once. The operating system releases it when the process dies (SIGKILL included), so a
//! crashed run never leaves a stale lock behind. The file's text names the holder for the
//! refusal message; readers never touch it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::ledger::LedgerError;

/// Held for as long as the writer lives.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
}

pub fn acquire(state_dir: &Path, command: &str) -> Result<WriterLock, LedgerError> {
    let path = state_dir.join("ledger.lock");
    let io = |source| LedgerError::Io {
        at: path.display().to_string(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(LedgerError::Locked {
                at: crate::ledger::db_path(state_dir).display().to_string(),
                holder: describe_holder(&holder),
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

fn describe_holder(text: &str) -> String {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
            .unwrap_or("?")
            .to_owned()
    };
    format!(
        "PID {} since {} (subsync {})",
        field("pid"),
        field("since"),
        field("command")
    )
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
        assert!(err.contains("(subsync apply)"), "{err}");
    }

    #[test]
    fn the_lock_is_free_again_once_dropped() {
        let dir = tempfile::tempdir().unwrap();
        drop(acquire(dir.path(), "apply").unwrap());
        assert!(acquire(dir.path(), "apply").is_ok());
    }
}
