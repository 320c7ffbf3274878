//! Where the ledger is: `--state` resolved into a [`Location`]. The ledger chooses the
//! backend and refuses what names none (an empty or padded value, a URL missing its `://` or
//! of another scheme, a file, a directory under one that does not exist); this module
//! supplies what a backend asks for that only settings may read: the password file and the
//! environment.

use std::path::Path;

use super::{Secret, SettingsError, StateRequest, read_secret_file};
use crate::ledger::{Location, PasswordSource, PgTarget, ResolveError};

/// The ledger in effect. The sandbox keeps its own ledger in `DIR/sandbox`, so that demo runs
/// never mix with the real service's records.
pub(crate) fn resolve_state(
    state: &StateRequest,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Location, SettingsError> {
    if state.sandbox {
        return Ok(Location::sandbox(&state.at)?);
    }
    resolve_location(&state.at, state.password_file.as_deref(), env)
}

/// A directory, or a `postgres://` URL whose password, when it carries none, comes from the
/// sources its backend names (`password_file`, then `PGPASSWORD`).
pub(crate) fn resolve_location(
    at: &str,
    password_file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Location, SettingsError> {
    let mut read = false;
    let location = Location::resolve(at, |source| match source {
        PasswordSource::File => match password_file {
            Some(path) => {
                read = true;
                read_secret_file(path, Secret::Password).map(Some)
            }
            None => Ok(None),
        },
        PasswordSource::Env(name) => Ok(env(name)),
    })
    .map_err(|e| match e {
        ResolveError::Location(e) => SettingsError::State(e),
        ResolveError::Secret(e) => e,
    })?;
    // A password file that was named must be usable, even when the URL carries a password.
    if let Some(path) = password_file
        && !read
        && location.target_as::<PgTarget>().is_some()
    {
        read_secret_file(path, Secret::Password)?;
    }
    Ok(location)
}
