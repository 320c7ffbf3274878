//! Where a ledger lives, chosen once from what `--state` (or `ledger copy --from/--to`) says:
//! a `postgres://` URL names a PostgreSQL database, anything else a directory (SQLite). Each
//! backend parses and checks its own kind of location ([`super::pg::Target`],
//! [`super::sqlite::Target`]); this module only picks the backend, in [`Location::resolve`],
//! and refuses what is neither: an empty or white-space-padded value, a URL missing its `://`,
//! a URL of a scheme no backend knows. Taking such a value for a new directory would start an
//! empty ledger and resend every subscriber.
//!
//! Adding a backend: a module implementing `store::Target` and the traits it opens, and its
//! arm in [`Location::resolve`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::pg::{self, PasswordSource, UrlError};
use super::sqlite;
use super::store::Target;

/// Where a ledger lives. Shown (`Display`, `Debug`) without any password.
#[derive(Clone)]
pub struct Location(Arc<dyn Target>);

/// Why `--state` names no ledger subsync can use. Never quotes a password.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum LocationError {
    #[error(
        "--state is empty (an unset variable?); give a directory, or a database as postgres://USER@HOST/DB"
    )]
    Empty,
    #[error(
        "--state {shown} begins or ends with white space (a newline from a file or a Helm value?); remove it: subsync does not guess which part was meant"
    )]
    Padded { shown: String },
    #[error(
        "--state {shown} looks like a URL missing its `://`; did you mean {meant}? (give a directory, or a database as postgres://USER@HOST/DB)"
    )]
    NotQuiteUrl { shown: String, meant: String },
    #[error(
        "--state begins with {scheme:?}, which is neither a directory nor a URL subsync knows; give a directory, or a database as postgres://USER@HOST/DB (postgresql:// also works)"
    )]
    UnknownScheme { scheme: String },
    #[error(
        "--sandbox keeps its ledger in a directory; give --state a directory, not a postgres:// URL"
    )]
    SandboxUrl,
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(transparent)]
    Directory(#[from] sqlite::DirectoryError),
}

/// A problem with the location, or with a secret its backend asked for.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum ResolveError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Location(#[from] LocationError),
    #[error(transparent)]
    Secret(E),
}

impl Location {
    /// The ledger `text` names. A backend that needs a secret its text leaves out (a
    /// PostgreSQL password) asks `secret` for it, from the sources it names, in its order.
    pub(crate) fn resolve<E: std::error::Error + 'static>(
        text: &str,
        secret: impl FnMut(PasswordSource) -> Result<Option<String>, E>,
    ) -> Result<Location, ResolveError<E>> {
        check_shape(text)?;
        let target: Arc<dyn Target> = if pg::Target::claims(text) {
            let mut target = pg::Target::parse(text).map_err(LocationError::from)?;
            target.fill_password(secret).map_err(ResolveError::Secret)?;
            Arc::new(target)
        } else {
            Arc::new(sqlite::Target::resolve(Path::new(text)).map_err(LocationError::from)?)
        };
        Ok(Location(target))
    }

    /// The SQLite ledger in `dir` (the sandbox's, tests'), created when first written if
    /// its parent exists.
    pub fn sqlite(dir: impl Into<PathBuf>) -> Location {
        Location(Arc::new(sqlite::Target::new(dir.into())))
    }

    /// The SQLite ledger in `dir`, which may be created with its parent `root`: the
    /// sandbox's ledger lives in `--state`'s directory, made on first use.
    pub(crate) fn sqlite_under(root: impl Into<PathBuf>, dir: impl Into<PathBuf>) -> Location {
        Location(Arc::new(sqlite::Target::under(root.into(), dir.into())))
    }

    /// The PostgreSQL database a `postgres://` URL names; `password` is used when the URL
    /// carries none.
    pub fn postgres(url: &str, password: Option<String>) -> Result<Location, UrlError> {
        let mut target = pg::Target::parse(url)?;
        let mut password = password;
        let filled = target.fill_password(|_| Ok::<_, std::convert::Infallible>(password.take()));
        match filled {
            Ok(()) => Ok(Location(Arc::new(target))),
            Err(never) => match never {},
        }
    }

    /// The sandbox's ledger: `DIR/sandbox` for `--state DIR`, which must be a directory (or
    /// missing inside one that exists).
    pub(crate) fn sandbox(text: &str) -> Result<Location, LocationError> {
        check_shape(text)?;
        if pg::Target::claims(text) {
            return Err(LocationError::SandboxUrl);
        }
        let root = Path::new(text);
        sqlite::Target::resolve(root)?;
        Ok(Location::sqlite_under(root, root.join("sandbox")))
    }

    /// The local directory the ledger writes, if it writes one (file watchers ignore it).
    pub(crate) fn local_dir(&self) -> Option<&Path> {
        self.0.local_dir()
    }

    /// The backend's own configuration, when it is a `T`.
    pub fn target_as<T: 'static>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref()
    }

    pub(crate) fn target(&self) -> &dyn Target {
        self.0.as_ref()
    }
}

/// Refuses text that no backend should be handed: it is a typo, not a place.
fn check_shape(text: &str) -> Result<(), LocationError> {
    if text.trim().is_empty() {
        return Err(LocationError::Empty);
    }
    let core = text.trim();
    if core != text {
        // The padding shown as it is (escaped), the rest without any password.
        let shown = text.replacen(core, &crate::quote::without_password(core), 1);
        return Err(LocationError::Padded {
            shown: crate::quote::quote(&shown),
        });
    }
    if let Some((scheme, rest)) = scheme_of(text) {
        if rest.starts_with("://") {
            if !pg::Target::claims(text) {
                return Err(LocationError::UnknownScheme {
                    scheme: format!("{scheme}:"),
                });
            }
        } else {
            let rest = rest.trim_start_matches(':').trim_start_matches('/');
            let meant = format!("{scheme}://{rest}");
            return Err(LocationError::NotQuiteUrl {
                shown: crate::quote::quote(&crate::quote::without_password(text)),
                meant: crate::quote::without_password(&meant),
            });
        }
    }
    Ok(())
}

/// A leading word shaped like a URL scheme (a letter, then letters, digits, `+`, `-` or
/// `.`, as RFC 3986 has it) followed by `:` or `//`, and what follows the word.
fn scheme_of(text: &str) -> Option<(&str, &str)> {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .unwrap_or(text.len());
    let (word, rest) = text.split_at(end);
    let starts_with_letter = word.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    (starts_with_letter && (rest.starts_with(':') || rest.starts_with("//")))
        .then_some((word, rest))
}

impl From<&Path> for Location {
    fn from(dir: &Path) -> Location {
        Location::sqlite(dir)
    }
}

impl From<PathBuf> for Location {
    fn from(dir: PathBuf) -> Location {
        Location::sqlite(dir)
    }
}

impl From<&PathBuf> for Location {
    fn from(dir: &PathBuf) -> Location {
        Location::sqlite(dir.clone())
    }
}

impl From<&Location> for Location {
    fn from(location: &Location) -> Location {
        location.clone()
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.shown())
    }
}

// Never the password, at any verbosity: each backend's Debug leaves it out.
impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str) -> Result<Location, LocationError> {
        Location::resolve(text, |_| Ok::<_, std::convert::Infallible>(None)).map_err(|e| match e {
            ResolveError::Location(e) => e,
            ResolveError::Secret(never) => match never {},
        })
    }

    #[test]
    fn empty_and_padded_values_are_refused_before_anything_is_chosen() {
        for text in ["", " ", "\n"] {
            assert!(
                matches!(resolve(text), Err(LocationError::Empty)),
                "{text:?}"
            );
        }
        for text in [
            ".subsync ",
            " .subsync",
            ".subsync\n",
            "postgres://u:pw@h/db\n",
        ] {
            let err = resolve(text).unwrap_err();
            assert!(
                matches!(err, LocationError::Padded { .. }),
                "{text:?}: {err}"
            );
            let shown = err.to_string();
            assert!(
                shown.contains("white space") && !shown.contains("pw@"),
                "{shown}"
            );
        }
    }

    #[test]
    fn a_url_missing_its_slashes_is_refused_naming_the_url_it_probably_meant() {
        for (text, meant) in [
            ("postgresql//db/subsync", "postgresql://db/subsync"),
            ("postgres:db/subsync", "postgres://db/subsync"),
            ("postgres:/db", "postgres://db"),
            ("postgres//u:hunter2@db/x", "postgres://u@db/x"),
        ] {
            let err = resolve(text).unwrap_err().to_string();
            assert!(err.contains(&format!("did you mean {meant}?")), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn a_scheme_no_backend_knows_is_refused_naming_only_the_scheme() {
        for text in ["postgress://u:hunter2@127.0.0.1/db", "mysql://x"] {
            let err = resolve(text).unwrap_err().to_string();
            assert!(err.contains("postgres://USER@HOST/DB"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn directories_and_urls_choose_their_backend() {
        let dir = tempfile::tempdir().unwrap();
        let local = resolve(dir.path().to_str().unwrap()).unwrap();
        assert_eq!(local.local_dir(), Some(dir.path()));
        let remote = resolve("postgres://u@db/x").unwrap();
        assert!(remote.local_dir().is_none());
        assert!(remote.target_as::<pg::Target>().is_some());
        assert!(resolve("relative-dir").is_ok());
        let err = resolve("relative/dir").unwrap_err().to_string();
        assert!(err.contains("directory relative does not exist"), "{err}");
        assert!(resolve("./postgres:db").is_ok());
    }
}
