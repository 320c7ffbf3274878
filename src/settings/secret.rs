//! Secret files, read like untrusted input: only regular files (a FIFO or a device is refused
//! without blocking), at most [`MAX_SECRET_FILE`] bytes, one line of printable text, and never
//! their content in an error. A key file that every user can read (or change) is warned about;
//! one its group can read is not: a Kubernetes Secret mounted 0440 with an fsGroup, the setup
//! the examples use, is how a non-root pod reads a root-owned file.

use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::SettingsError;
use crate::tencent::usersig::SecretKey;

/// Largest secret file read: a key or a password is one short line.
pub(crate) const MAX_SECRET_FILE: u64 = 4096;

/// A secret key as given: one line of printable ASCII without spaces, surrounding whitespace
/// (a trailing newline from `echo key > file`) ignored.
pub(super) fn check_key(raw: &str) -> Option<SecretKey> {
    let key = raw.trim();
    let printable = key.chars().all(|c| c.is_ascii_graphic());
    (printable && key.len() <= 1024)
        .then(|| SecretKey::new(key))
        .flatten()
}

pub(super) fn read_key_file(path: &Path, warn_if_shared: bool) -> Result<SecretKey, SettingsError> {
    let text = read_secret_file(path, Secret::Key)?;
    if warn_if_shared {
        warn_if_open_to_everyone(path);
    }
    check_key(&text).ok_or_else(|| SettingsError::BadSecretFile {
        what: Secret::Key,
        path: path.to_owned(),
        problem:
            "does not hold a secret key: one line of letters, digits and punctuation without spaces"
                .into(),
    })
}

/// Which secret a file holds, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Secret {
    Key,
    Password,
    /// A notification sink's key, URL or token (`--notify-config`).
    Notification,
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Secret::Key => "secret key file (--secret-key-file, SUBSYNC_SECRET_KEY_FILE)",
            Secret::Password => {
                "state password file (--state-password-file, SUBSYNC_STATE_PASSWORD_FILE)"
            }
            Secret::Notification => "notification secret file",
        })
    }
}

/// The one line a secret file holds, read within bounds; never its content in an error.
pub(crate) fn read_secret_file(path: &Path, what: Secret) -> Result<String, SettingsError> {
    let bad = |problem: String| SettingsError::BadSecretFile {
        what,
        path: path.to_owned(),
        problem,
    };
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| bad(format!("cannot be read: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| bad(format!("cannot be read: {e}")))?;
    if !meta.file_type().is_file() {
        return Err(bad("is not a regular file".into()));
    }
    if meta.len() > MAX_SECRET_FILE {
        return Err(bad(format!(
            "is {} bytes; a secret is one short line (at most {MAX_SECRET_FILE} bytes)",
            meta.len()
        )));
    }
    let mut bytes = Vec::new();
    file.by_ref()
        .take(MAX_SECRET_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(format!("cannot be read: {e}")))?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(bad(format!(
            "grew past {MAX_SECRET_FILE} bytes while being read"
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| bad("is not text".into()))?;
    let line = text.trim_end_matches(['\r', '\n']);
    if line.is_empty() {
        return Err(bad("is empty; put the secret in it".into()));
    }
    if line.contains(['\n', '\r']) || line.chars().any(char::is_control) {
        return Err(bad(
            "holds more than one line, or control characters; a secret is one line".into(),
        ));
    }
    Ok(line.to_owned())
}

fn warn_if_open_to_everyone(path: &Path) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode();
    if open_to_everyone(mode) {
        tracing::warn!(
            file = %path.display(),
            mode = %format!("{:o}", mode & 0o777),
            "every user on this machine can read or change the secret key file; restrict it to its owner or group (chmod 600 or 640; on Kubernetes, defaultMode: 0440 with the pod's fsGroup)"
        );
    }
}

/// Whether a file of `mode` is open to users outside its owner and group. The group is
/// trusted: it is how a Kubernetes Secret volume (root-owned, group fsGroup) is read by a
/// non-root container.
fn open_to_everyone(mode: u32) -> bool {
    mode & 0o006 != 0
}

#[cfg(test)]
mod tests {
    use super::open_to_everyone;

    #[test]
    fn a_key_readable_by_its_group_only_is_fine_and_one_anyone_can_read_or_change_is_not() {
        for quiet in [0o400, 0o600, 0o440, 0o640, 0o660] {
            assert!(!open_to_everyone(quiet), "{quiet:o}");
        }
        for loud in [0o444, 0o644, 0o604, 0o602, 0o666] {
            assert!(open_to_everyone(loud), "{loud:o}");
        }
    }
}
