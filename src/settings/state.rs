//! Where the ledger is: a directory, or a `postgres://` URL. A value that is neither (a URL
//! with a misspelt scheme, a file) is refused before anything is created, since taking it
//! for a new, empty directory would plan and resend every subscriber.

use std::path::{Path, PathBuf};

use super::{Secret, SettingsError, StateRequest, read_secret_file};
use crate::ledger::Location;

/// The ledger in effect. The sandbox keeps its own ledger in `DIR/sandbox`, so that demo runs
/// never mix with the real service's records.
pub fn resolve_state(
    state: &StateRequest,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Location, SettingsError> {
    let is_url = Location::is_url(&state.at);
    match (is_url, state.sandbox) {
        (true, true) => Err(SettingsError::SandboxUrl),
        (false, true) => {
            check_directory(&state.at)?;
            Ok(Location::Sqlite(PathBuf::from(&state.at).join("sandbox")))
        }
        _ => resolve_location(&state.at, state.password_file.as_deref(), env),
    }
}

/// A directory, or a `postgres://` URL whose password, when it carries none, comes from
/// `password_file`, else from `PGPASSWORD`.
pub fn resolve_location(
    at: &str,
    password_file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Location, SettingsError> {
    if !Location::is_url(at) {
        check_directory(at)?;
        return Ok(Location::Sqlite(PathBuf::from(at)));
    }
    let password = match password_file {
        Some(path) => Some(read_secret_file(path, Secret::Password)?),
        None => env("PGPASSWORD").filter(|p| !p.is_empty()),
    };
    Ok(Location::postgres(at, password)?)
}

/// Refuses a value that looks like a URL of another scheme (`postgress://`, `mysql://`,
/// `postgres:/db`), and a path that exists but is not a directory. Only the scheme is named:
/// the rest may hold a password.
fn check_directory(at: &str) -> Result<(), SettingsError> {
    if let Some(scheme) = url_scheme(at) {
        return Err(SettingsError::UnknownScheme {
            scheme: format!("{scheme}:"),
        });
    }
    let path = Path::new(at);
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_dir() => Err(SettingsError::StateNotDirectory {
            path: path.to_owned(),
            what: if meta.is_file() {
                "a file"
            } else {
                "not a directory"
            },
        }),
        // Missing is fine (created on first write); anything else the ledger reports itself.
        _ => Ok(()),
    }
}

/// The scheme of text shaped like `scheme:/...`: letters first, then letters, digits, `+`,
/// `-` or `.`, as RFC 3986 has it.
fn url_scheme(text: &str) -> Option<&str> {
    let (scheme, rest) = text.split_once(':')?;
    let mut chars = scheme.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (well_formed && rest.starts_with('/')).then_some(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_misspelt_scheme_is_refused_naming_only_the_scheme() {
        for at in [
            "postgress://u:hunter2@127.0.0.1/db",
            "postgres:/db",
            "mysql://x",
        ] {
            let err = resolve_location(at, None, &none).unwrap_err().to_string();
            assert!(err.contains("postgres://USER@HOST/DB"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn a_file_is_refused_and_a_missing_directory_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state");
        std::fs::write(&file, "x").unwrap();
        let err = resolve_location(file.to_str().unwrap(), None, &none)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a file; expected a directory"), "{err}");
        let missing = dir.path().join("later");
        assert!(resolve_location(missing.to_str().unwrap(), None, &none).is_ok());
        assert!(resolve_location("relative/dir", None, &none).is_ok());
    }
}
