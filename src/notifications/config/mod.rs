//! The notification configuration (`--notify-config FILE`): which sinks, where, for which
//! events and accounts, and the secrets each reads from its own file.
//!
//! The file is parsed once into a positioned tree; each sink is typed by serde as one of the
//! per-type structs in `spec` (tagged by `type`, unknown fields refused) and its values are
//! then checked (`check`). Everything is checked at start and every problem of every sink is
//! reported in one run, each at its `FILE:LINE:COLUMN`, naming the field to use instead where
//! one was given to a type that does not take it.
//!
//! Secrets (an HMAC key, a URL that carries a token, an API token) never appear in a message
//! or in `Debug` output. A file that is not a notification config (a path typo pointing at
//! another file, say `/etc/shadow`) is refused without quoting any of its content.

mod check;
mod spec;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::event::EventType;
use crate::manifest::Diagnostic;
use crate::quote::quote;
use crate::yaml::{Node, Position};

pub(crate) use check::Repository;
pub(super) use check::is_loopback;

/// Largest configuration file read.
pub(crate) const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Most sinks in one file: each is a task and a queue.
pub(crate) const MAX_SINKS: usize = 64;

const LIMITS: crate::yaml::TreeLimits = crate::yaml::TreeLimits {
    max_depth: 8,
    max_nodes: 100_000,
};

/// The checked configuration: every sink ready to send.
#[derive(Debug, Clone, Default)]
pub(crate) struct NotifyConfig {
    pub sinks: Vec<SinkConfig>,
}

/// One sink.
#[derive(Debug, Clone)]
pub(crate) struct SinkConfig {
    pub name: String,
    pub target: Destination,
    /// The events it wants: all when the file names none; none for a commit-status sink,
    /// which takes each run's state instead.
    pub events: BTreeSet<EventType>,
    /// Only events about these accounts (and those about no account); all when empty.
    pub accounts: BTreeSet<String>,
}

impl SinkConfig {
    /// True when this sink wants `kind` about `account`.
    pub(crate) fn wants(&self, kind: EventType, account: Option<&str>) -> bool {
        self.events.contains(&kind)
            && match account {
                Some(a) if !self.accounts.is_empty() => self.accounts.contains(a),
                _ => true,
            }
    }

    /// True for the sinks that post commit statuses (GitHub, GitLab).
    pub(crate) fn takes_statuses(&self) -> bool {
        matches!(
            self.target,
            Destination::GitHub { .. } | Destination::GitLab { .. }
        )
    }
}

/// Where a sink sends, with its secret.
#[derive(Clone)]
pub(crate) enum Destination {
    Webhook {
        url: url::Url,
        secret: Option<String>,
    },
    Slack {
        url: url::Url,
    },
    WeCom {
        url: url::Url,
    },
    GitHub {
        api: url::Url,
        repository: Repository,
        token: String,
        target_url: Option<String>,
    },
    GitLab {
        api: url::Url,
        /// A numeric id, or a path `group/subgroup/name` (checked against GitLab's rules).
        project: String,
        token: String,
        target_url: Option<String>,
    },
}

impl Destination {
    /// The URL requests go to, or their base: for the loopback check and the proxy choice.
    pub(crate) fn base(&self) -> &url::Url {
        match self {
            Destination::Webhook { url, .. }
            | Destination::Slack { url }
            | Destination::WeCom { url } => url,
            Destination::GitHub { api, .. } | Destination::GitLab { api, .. } => api,
        }
    }
}

/// Secrets stay out: the type and, where it is not a secret, the target.
impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Webhook { url, secret } => f
                .debug_struct("Webhook")
                .field("url", &url.as_str())
                .field("signed", &secret.is_some())
                .finish(),
            Destination::Slack { .. } => f.write_str("Slack { url: <secret> }"),
            Destination::WeCom { .. } => f.write_str("WeCom { url: <secret> }"),
            Destination::GitHub {
                api, repository, ..
            } => f
                .debug_struct("GitHub")
                .field("api", &api.as_str())
                .field("repository", &repository.to_string())
                .finish_non_exhaustive(),
            Destination::GitLab { api, project, .. } => f
                .debug_struct("GitLab")
                .field("api", &api.as_str())
                .field("project", project)
                .finish_non_exhaustive(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("cannot read the notification config {path} (--notify-config): {problem}")]
    Read { path: PathBuf, problem: String },
    /// Every problem found, each at its place.
    #[error("{}", shown(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Diagnostic>,
    },
}

impl ConfigError {
    /// The problems, each at its place (none for a file that could not be read).
    pub(crate) fn problems(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

fn shown(path: &Path, problems: &[Diagnostic]) -> String {
    match problems {
        [one] => one.to_string(),
        many => {
            let mut text = format!(
                "the notification config {} has {} problems; fix them and run again (nothing was sent or recorded)",
                path.display(),
                many.len()
            );
            for p in many {
                text.push('\n');
                text.push_str(&p.to_string());
            }
            text
        }
    }
}

/// Reads and checks `path`; relative secret files are read from beside it.
pub(crate) fn load(path: &Path) -> Result<NotifyConfig, ConfigError> {
    let read = |problem: String| ConfigError::Read {
        path: path.to_owned(),
        problem,
    };
    let meta = std::fs::metadata(path).map_err(|e| read(e.to_string()))?;
    if !meta.is_file() {
        return Err(read("is not a regular file".into()));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(read(format!(
            "is {} bytes; a notification config is at most {MAX_CONFIG_BYTES}",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| read(e.to_string()))?;
    // Not its content: the file may be anything (a path typo).
    let text = String::from_utf8(bytes)
        .map_err(|_| read("is not UTF-8 text, so not a notification config".into()))?;
    parse(&text, path)
}

/// Problems found in one file, each at its place.
pub(super) struct Problems<'p> {
    path: &'p Path,
    found: Vec<Diagnostic>,
}

impl Problems<'_> {
    fn at(&mut self, at: Position, message: String) {
        self.found
            .push(Diagnostic::at(self.path, Some(at), message));
    }

    fn count(&self) -> usize {
        self.found.len()
    }
}

/// What a file that is not a notification config is told: its content is not quoted, since
/// it may be anything.
const NOT_A_CONFIG: &str = "this is not a notification config (a YAML mapping with a `sinks:` list); check --notify-config (SUBSYNC_NOTIFY_CONFIG)";

/// Checks `text`, the content of `path`.
pub(crate) fn parse(text: &str, path: &Path) -> Result<NotifyConfig, ConfigError> {
    let mut problems = Problems {
        path,
        found: Vec::new(),
    };
    let start = Position { line: 1, column: 1 };
    let sinks = match crate::yaml::parse(text, &LIMITS) {
        Err(e) => {
            problems.at(e.at, format!("{NOT_A_CONFIG}: {}", e.message));
            Vec::new()
        }
        Ok(documents) => match documents.as_slice() {
            [] | [crate::yaml::Document { root: None, .. }] => {
                problems.at(
                    start,
                    "the file is empty; list the sinks under `sinks:`".into(),
                );
                Vec::new()
            }
            [one] => match &one.root {
                Some(root) => sinks(root, path, &mut problems),
                None => Vec::new(),
            },
            [_, second, ..] => {
                problems.at(
                    second.at,
                    format!(
                        "{NOT_A_CONFIG}: it holds {} YAML documents",
                        documents.len()
                    ),
                );
                Vec::new()
            }
        },
    };
    if problems.found.is_empty() {
        Ok(NotifyConfig { sinks })
    } else {
        // In the order of the file, as a person fixes them.
        problems.found.sort_by_key(|p| (p.line, p.column));
        Err(ConfigError::Invalid {
            path: path.to_owned(),
            problems: problems.found,
        })
    }
}

/// The sinks under the root's `sinks:`, each checked; every problem goes to `problems`.
fn sinks(root: &Node<'_>, path: &Path, problems: &mut Problems<'_>) -> Vec<SinkConfig> {
    let (Node::Map { entries, .. }, Some(list)) = (root.resolved(), root.get("sinks")) else {
        problems.at(root.position(), NOT_A_CONFIG.into());
        return Vec::new();
    };
    for (key, _) in entries {
        if key.as_scalar() != Some("sinks") {
            // Not quoted: the rest of the file is not known to be a notification config.
            problems.at(
                key.position(),
                "a notification config has only `sinks:` at the top; remove this key".into(),
            );
        }
    }
    let Node::Seq { items, .. } = list.resolved() else {
        problems.at(
            list.position(),
            format!("`sinks:` must be a list of sinks, found {}", list.kind()),
        );
        return Vec::new();
    };
    if items.len() > MAX_SINKS {
        problems.at(
            list.position(),
            format!(
                "{} sinks; at most {MAX_SINKS} (each is a task and a queue)",
                items.len()
            ),
        );
        return Vec::new();
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut names = BTreeSet::new();
    let mut sinks = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let Some(sink) = spec::read(item, index, dir, problems) else {
            continue;
        };
        if !names.insert(sink.name.clone()) {
            let at = item.get("name").unwrap_or(item).position();
            problems.at(
                at,
                format!(
                    "a second sink named {}; give each its own name (it labels the metric)",
                    quote(&sink.name)
                ),
            );
        }
        sinks.push(sink);
    }
    sinks
}
