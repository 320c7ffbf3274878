//! The notification configuration (`--notify-config FILE`): which sinks, where, for which
//! events and accounts, and the secrets each reads from its own file.
//!
//! Everything is checked at start, each problem naming the file and the line of the sink: a
//! target that is not https (plain http is allowed to loopback only, for tests), a secret file
//! that cannot be read, an unknown event name, a field the sink's type does not use. Secrets
//! (an HMAC key, a URL that carries a token, an API token) never appear in a message or in
//! `Debug` output.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::event::Kind;
use crate::quote::quote;
use crate::settings::secret::{Secret, read_secret_file};

/// Largest configuration file read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Most sinks in one file: each is a task and a queue.
pub const MAX_SINKS: usize = 64;

const LIMITS: crate::yaml::Limits = crate::yaml::Limits {
    max_depth: 8,
    max_nodes: 100_000,
};

/// The checked configuration: every sink ready to send.
#[derive(Debug, Clone, Default)]
pub struct NotifyConfig {
    pub sinks: Vec<SinkConfig>,
}

/// One sink.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub name: String,
    pub target: Target,
    /// The events it wants; all when the file names none. Commit-status sinks take the
    /// reconcile's states instead.
    pub events: BTreeSet<Kind>,
    /// Only events about these accounts (and those about no account); all when empty.
    pub accounts: BTreeSet<String>,
}

impl SinkConfig {
    /// True when this sink wants `kind` about `account`.
    pub fn wants(&self, kind: Kind, account: Option<&str>) -> bool {
        self.events.contains(&kind)
            && match account {
                Some(a) if !self.accounts.is_empty() => self.accounts.contains(a),
                _ => true,
            }
    }

    /// True for the sinks that post commit statuses (GitHub, GitLab).
    pub fn takes_statuses(&self) -> bool {
        matches!(self.target, Target::GitHub { .. } | Target::GitLab { .. })
    }
}

/// Where a sink sends, with its secret.
#[derive(Clone)]
pub enum Target {
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
        repository: String,
        token: String,
        target_url: Option<String>,
    },
    GitLab {
        api: url::Url,
        project: String,
        token: String,
        target_url: Option<String>,
    },
}

impl Target {
    pub fn type_name(&self) -> &'static str {
        match self {
            Target::Webhook { .. } => "webhook",
            Target::Slack { .. } => "slack",
            Target::WeCom { .. } => "wecom",
            Target::GitHub { .. } => "github",
            Target::GitLab { .. } => "gitlab",
        }
    }

    /// The URL requests go to, or their base: for the loopback check and the proxy choice.
    pub fn base(&self) -> &url::Url {
        match self {
            Target::Webhook { url, .. } | Target::Slack { url } | Target::WeCom { url } => url,
            Target::GitHub { api, .. } | Target::GitLab { api, .. } => api,
        }
    }
}

/// Secrets stay out: the type and, where it is not a secret, the target.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Webhook { url, secret } => f
                .debug_struct("Webhook")
                .field("url", &url.as_str())
                .field("signed", &secret.is_some())
                .finish(),
            Target::Slack { .. } => f.write_str("Slack { url: <secret> }"),
            Target::WeCom { .. } => f.write_str("WeCom { url: <secret> }"),
            Target::GitHub {
                api, repository, ..
            } => f
                .debug_struct("GitHub")
                .field("api", &api.as_str())
                .field("repository", repository)
                .finish_non_exhaustive(),
            Target::GitLab { api, project, .. } => f
                .debug_struct("GitLab")
                .field("api", &api.as_str())
                .field("project", project)
                .finish_non_exhaustive(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the notification config {path} (--notify-config): {problem}")]
    Read { path: PathBuf, problem: String },
    #[error("{path}:{line}: {problem}")]
    Invalid {
        path: PathBuf,
        line: usize,
        problem: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    // Checked for its shape here; each sink is read with its own line below.
    #[allow(dead_code)]
    sinks: Vec<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSink {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    url: Option<String>,
    url_file: Option<PathBuf>,
    secret_file: Option<PathBuf>,
    token_file: Option<PathBuf>,
    repository: Option<String>,
    project: Option<String>,
    api_url: Option<String>,
    target_url: Option<String>,
    events: Option<Vec<String>>,
    accounts: Option<Vec<String>>,
}

/// Reads and checks `path`; relative secret files are read from beside it.
pub fn load(path: &Path) -> Result<NotifyConfig, ConfigError> {
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
    let text = std::fs::read_to_string(path).map_err(|e| read(e.to_string()))?;
    parse(&text, path)
}

/// Checks `text`, the content of `path`.
pub fn parse(text: &str, path: &Path) -> Result<NotifyConfig, ConfigError> {
    let invalid = |line: usize, problem: String| ConfigError::Invalid {
        path: path.to_owned(),
        line,
        problem,
    };
    let documents = crate::yaml::parse(text, &LIMITS).map_err(|e| invalid(e.at.line, e.message))?;
    let Some(root) = documents.first().and_then(|d| d.root.as_ref()) else {
        return Err(invalid(
            1,
            "the file is empty; list the sinks under `sinks:`".into(),
        ));
    };
    let line_of = |e: &crate::yaml::Error| e.at.map_or(1, |p| p.line);
    crate::yaml::from_node::<RawFile>(root).map_err(|e| invalid(line_of(&e), e.to_string()))?;
    let Some(crate::yaml::Node::Seq { items, .. }) = root.get("sinks").map(|n| n.resolved()) else {
        return Err(invalid(1, "`sinks:` must be a list".into()));
    };
    if items.len() > MAX_SINKS {
        return Err(invalid(
            root.position().line,
            format!("{} sinks; at most {MAX_SINKS}", items.len()),
        ));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut names = BTreeSet::new();
    let mut sinks = Vec::with_capacity(items.len());
    for item in items {
        let line = item.position().line;
        let raw: RawSink =
            crate::yaml::from_node(item).map_err(|e| invalid(line_of(&e), e.to_string()))?;
        let sink = check(raw, dir).map_err(|problem| invalid(line, problem))?;
        if !names.insert(sink.name.clone()) {
            return Err(invalid(
                line,
                format!(
                    "a second sink named {}; give each its own name",
                    quote(&sink.name)
                ),
            ));
        }
        sinks.push(sink);
    }
    Ok(NotifyConfig { sinks })
}

fn check(raw: RawSink, dir: &Path) -> Result<SinkConfig, String> {
    let name = raw.name.trim().to_owned();
    let plain_name = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !plain_name {
        return Err(format!(
            "sink name {} must be 1 to 64 letters, digits, '-', '_' or '.' (it labels a metric)",
            quote(&raw.name)
        ));
    }
    // Each type's own fields; any other field given is a mistake worth naming.
    let (kind, own): (&str, &[&str]) = match raw.kind.as_str() {
        "webhook" => ("webhook", &["url", "secretFile", "events", "accounts"]),
        "slack" => ("slack", &["urlFile", "events", "accounts"]),
        "wecom" => ("wecom", &["urlFile", "events", "accounts"]),
        "github" => (
            "github",
            &["repository", "apiUrl", "tokenFile", "targetUrl"],
        ),
        "gitlab" => ("gitlab", &["project", "apiUrl", "tokenFile", "targetUrl"]),
        other => {
            return Err(format!(
                "sink {name}: unknown type {}; use webhook, slack, wecom, github or gitlab",
                quote(other)
            ));
        }
    };
    let given = [
        ("url", raw.url.is_some()),
        ("urlFile", raw.url_file.is_some()),
        ("secretFile", raw.secret_file.is_some()),
        ("tokenFile", raw.token_file.is_some()),
        ("repository", raw.repository.is_some()),
        ("project", raw.project.is_some()),
        ("apiUrl", raw.api_url.is_some()),
        ("targetUrl", raw.target_url.is_some()),
        ("events", raw.events.is_some()),
        ("accounts", raw.accounts.is_some()),
    ];
    if let Some((field, _)) = given.iter().find(|(f, set)| *set && !own.contains(f)) {
        return Err(format!(
            "sink {name}: `{field}` does not apply to type {}",
            raw.kind
        ));
    }
    let secret = |file: &Option<PathBuf>, field: &str| -> Result<String, String> {
        let file = file
            .as_ref()
            .ok_or_else(|| format!("sink {name}: type {} needs `{field}`", raw.kind))?;
        read_secret_file(&dir.join(file), Secret::Notification).map_err(|e| e.to_string())
    };
    let target = match kind {
        "webhook" => {
            let url = raw
                .url
                .as_deref()
                .ok_or_else(|| format!("sink {name}: type webhook needs `url`"))?;
            let secret = match &raw.secret_file {
                Some(_) => Some(secret(&raw.secret_file, "secretFile")?),
                None => None,
            };
            Target::Webhook {
                url: target_url(url, &format!("sink {name}: url"), true)?,
                secret,
            }
        }
        "slack" | "wecom" => {
            // The URL carries the token: read from a file, never shown.
            let text = secret(&raw.url_file, "urlFile")?;
            let url = target_url(&text, &format!("sink {name}: the URL in urlFile"), false)?;
            if kind == "slack" {
                Target::Slack { url }
            } else {
                Target::WeCom { url }
            }
        }
        // github or gitlab: the only types left.
        _ => {
            let token = secret(&raw.token_file, "tokenFile")?;
            let github = kind == "github";
            let api = raw.api_url.as_deref().unwrap_or(if github {
                "https://api.github.com"
            } else {
                "https://gitlab.com"
            });
            let api = target_url(api, &format!("sink {name}: apiUrl"), true)?;
            let target_url = match &raw.target_url {
                Some(t) => Some(target_url(t, &format!("sink {name}: targetUrl"), true)?.into()),
                None => None,
            };
            if github {
                let repository = raw.repository.ok_or_else(|| {
                    format!("sink {name}: type github needs `repository: owner/name`")
                })?;
                if !is_repository(&repository) {
                    return Err(format!(
                        "sink {name}: repository {} must be owner/name",
                        quote(&repository)
                    ));
                }
                Target::GitHub {
                    api,
                    repository,
                    token,
                    target_url,
                }
            } else {
                let project = raw.project.ok_or_else(|| {
                    format!("sink {name}: type gitlab needs `project` (its id or group/name)")
                })?;
                if project.is_empty() || project.len() > 255 || project.contains(char::is_control) {
                    return Err(format!(
                        "sink {name}: project {} must be a project id or its path",
                        quote(&project)
                    ));
                }
                Target::GitLab {
                    api,
                    project,
                    token,
                    target_url,
                }
            }
        }
    };
    let events = match raw.events {
        None => Kind::ALL.iter().copied().collect(),
        Some(names) => names
            .iter()
            .map(|n| {
                Kind::parse(n).ok_or_else(|| {
                    format!(
                        "sink {name}: unknown event {}; events are {}",
                        quote(n),
                        Kind::ALL.map(Kind::name).join(", ")
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(SinkConfig {
        name,
        target,
        events,
        accounts: raw.accounts.unwrap_or_default().into_iter().collect(),
    })
}

fn is_repository(text: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 100
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    matches!(text.split_once('/'), Some((owner, name)) if part(owner) && part(name))
}

/// `text` as a URL subsync may send to: https, or http to a loopback address (tests, a
/// receiver beside the pod). `what` names it; `shown` says whether the URL may be echoed (a
/// Slack or WeCom URL holds a token and may not).
fn target_url(text: &str, what: &str, shown: bool) -> Result<url::Url, String> {
    let show = |url: &str| {
        if shown {
            format!(" {}", quote(url))
        } else {
            String::new()
        }
    };
    let url = url::Url::parse(text.trim())
        .map_err(|e| format!("{what}{} is not a URL: {e}", show(text)))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{what} must not carry a user or password; secrets go in files"
        ));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err(format!(
            "{what}{} must be https (plain http only to a loopback address)",
            show(url.as_str())
        )),
    }
}

pub(super) fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        dir
    }

    fn parse_in(dir: &tempfile::TempDir, text: &str) -> Result<NotifyConfig, String> {
        parse(text, &dir.path().join("notify.yaml")).map_err(|e| e.to_string())
    }

    #[test]
    fn every_type_is_read_with_its_secret_from_a_file() {
        let dir = dir_with(&[
            ("hook.key", "k3y\n"),
            (
                "slack.url",
                "https://hooks.slack.com/services/T/B/secret-token\n",
            ),
            ("gh.token", "ghp_secret\n"),
        ]);
        let config = parse_in(
            &dir,
            "sinks:\n\
             - {name: hook, type: webhook, url: https://example.com/h, secretFile: hook.key, events: [applied, fatal]}\n\
             - {name: chat, type: slack, urlFile: slack.url, accounts: ['@TOA#_vip']}\n\
             - {name: commits, type: github, repository: example/manifests, tokenFile: gh.token}\n",
        )
        .unwrap();
        assert_eq!(config.sinks.len(), 3);
        let hook = &config.sinks[0];
        assert!(hook.wants(Kind::Applied, None));
        assert!(!hook.wants(Kind::Drift, Some("@TOA#_a")));
        let chat = &config.sinks[1];
        assert!(chat.wants(Kind::Drift, Some("@TOA#_vip")));
        assert!(!chat.wants(Kind::Drift, Some("@TOA#_other")));
        assert!(chat.wants(Kind::Fatal, None));
        assert!(config.sinks[2].takes_statuses());
        let shown = format!("{config:?}");
        for secret in ["k3y", "secret-token", "ghp_secret"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn a_plain_http_target_is_refused_unless_it_is_loopback() {
        let dir = dir_with(&[]);
        let err = parse_in(
            &dir,
            "sinks:\n- name: a\n  type: webhook\n  url: https://ok.example/\n- name: b\n  type: webhook\n  url: http://example.com/hook\n",
        )
        .unwrap_err();
        assert!(err.ends_with("notify.yaml:5: sink b: url \"http://example.com/hook\" must be https (plain http only to a loopback address)"), "{err}");
        assert!(
            parse_in(
                &dir,
                "sinks:\n- {name: a, type: webhook, url: 'http://127.0.0.1:9/h'}\n"
            )
            .is_ok()
        );
    }

    #[test]
    fn a_missing_secret_file_is_refused_with_the_sinks_line() {
        let dir = dir_with(&[]);
        let err = parse_in(
            &dir,
            "sinks:\n\n- name: chat\n  type: slack\n  urlFile: nowhere.url\n",
        )
        .unwrap_err();
        assert!(err.contains("notify.yaml:3: "), "{err}");
        assert!(err.contains("nowhere.url"), "{err}");
    }

    #[test]
    fn an_unknown_event_is_refused_naming_the_known_ones() {
        let dir = dir_with(&[]);
        let err = parse_in(
            &dir,
            "sinks:\n- {name: a, type: webhook, url: 'https://x.example/', events: [applied, drfit]}\n",
        )
        .unwrap_err();
        assert!(
            err.contains(
                "notify.yaml:2: sink a: unknown event \"drfit\"; events are applied, drift,"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_slack_url_that_is_not_https_is_refused_without_showing_it() {
        let dir = dir_with(&[("slack.url", "http://hooks.example.com/T/B/token-abc\n")]);
        let err = parse_in(
            &dir,
            "sinks:\n- {name: chat, type: slack, urlFile: slack.url}\n",
        )
        .unwrap_err();
        assert!(err.contains("must be https"), "{err}");
        assert!(!err.contains("token-abc"), "{err}");
    }

    #[test]
    fn misspelt_fields_and_fields_of_another_type_are_refused() {
        let dir = dir_with(&[("t", "tok\n")]);
        let err = parse_in(
            &dir,
            "sinks:\n- {name: a, type: webhook, urll: 'https://x.example/'}\n",
        )
        .unwrap_err();
        assert!(
            err.contains("notify.yaml:2") && err.contains("urll"),
            "{err}"
        );
        let err = parse_in(
            &dir,
            "sinks:\n- {name: a, type: github, repository: o/n, tokenFile: t, events: [drift]}\n",
        )
        .unwrap_err();
        assert!(
            err.contains("`events` does not apply to type github"),
            "{err}"
        );
    }
}
