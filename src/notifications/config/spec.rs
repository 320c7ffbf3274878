//! One sink as the file writes it: typed by serde as one struct per `type` (tagged by
//! `type`, unknown fields refused), then checked value by value into a [`SinkConfig`].
//!
//! Fields are optional in the structs so that every missing one is reported together with
//! every bad value, instead of serde stopping at the first. A field the type does not take is
//! reported with the field to use instead (`url` on a Slack sink: `urlFile`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::check;
use super::{Destination, Problems, SinkConfig};
use crate::notifications::event::EventType;
use crate::quote::quote;
use crate::settings::secret::{Secret, read_secret_file};
use crate::yaml::{Detail, Node, closest};

#[derive(Deserialize)]
#[serde(tag = "type")]
enum SinkSpec {
    #[serde(rename = "webhook")]
    Webhook(WebhookSpec),
    #[serde(rename = "slack")]
    Slack(ChatSpec),
    #[serde(rename = "wecom")]
    WeCom(ChatSpec),
    #[serde(rename = "github")]
    GitHub(GitHubSpec),
    #[serde(rename = "gitlab")]
    GitLab(GitLabSpec),
}

/// The types, as `type:` names them.
const TYPES: &str = "webhook, slack, wecom, github or gitlab";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WebhookSpec {
    name: Option<String>,
    url: Option<String>,
    secret_file: Option<PathBuf>,
    events: Option<Vec<String>>,
    accounts: Option<Vec<String>>,
}

/// Slack and WeCom: the URL holds a token, so it is read from a file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ChatSpec {
    name: Option<String>,
    url_file: Option<PathBuf>,
    events: Option<Vec<String>>,
    accounts: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GitHubSpec {
    name: Option<String>,
    repository: Option<String>,
    api_url: Option<String>,
    token_file: Option<PathBuf>,
    target_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GitLabSpec {
    name: Option<String>,
    project: Option<ProjectRef>,
    api_url: Option<String>,
    token_file: Option<PathBuf>,
    target_url: Option<String>,
}

/// A GitLab project as written: its path, or its numeric id, which YAML reads as a number.
struct ProjectRef(String);

impl<'de> Deserialize<'de> for ProjectRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = ProjectRef;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a project id or a path group/name")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ProjectRef, E> {
                Ok(ProjectRef(v.to_owned()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ProjectRef, E> {
                Ok(ProjectRef(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ProjectRef, E> {
                Ok(ProjectRef(v.to_string()))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// Reads the sink at `node` (the `index`th), reporting every problem; `None` when it has any.
pub(super) fn read(
    node: &Node<'_>,
    index: usize,
    dir: &Path,
    problems: &mut Problems<'_>,
) -> Option<SinkConfig> {
    let label = match node.get("name").and_then(Node::as_scalar) {
        Some(name) if check::is_plain_name(name) => format!("sink {name}"),
        _ => format!("sink #{}", index + 1),
    };
    if !matches!(node.resolved(), Node::Map { .. }) {
        problems.at(
            node.position(),
            format!(
                "{label}: a sink is a mapping with `name`, `type` and the type's fields; found {}",
                node.kind()
            ),
        );
        return None;
    }
    let before = problems.count();
    let mut sink = Checked {
        node,
        label: &label,
        dir,
        problems,
    };
    let spec = match crate::yaml::from_node::<SinkSpec>(node) {
        Ok(spec) => spec,
        Err(e) => {
            sink.undecoded(e);
            return None;
        }
    };
    let config = sink.check(spec);
    (problems.count() == before).then_some(config).flatten()
}

/// What a commit-status sink needs of its git host.
struct Host {
    api: url::Url,
    token: String,
    link: Option<String>,
}

/// One sink being checked: where it is, and where its problems go.
struct Checked<'a, 'n, 'p> {
    node: &'a Node<'n>,
    label: &'a str,
    dir: &'a Path,
    problems: &'a mut Problems<'p>,
}

impl Checked<'_, '_, '_> {
    /// A problem at `field`'s value, or at the sink when it has no such field.
    fn problem(&mut self, field: Option<&str>, message: String) {
        let at = field
            .and_then(|f| self.node.get(f))
            .unwrap_or(self.node)
            .position();
        self.problems.at(at, format!("{}: {message}", self.label));
    }

    /// What serde refused: every key the type does not take (not only the first), a type
    /// that does not exist, or a value of the wrong shape.
    fn undecoded(&mut self, e: crate::yaml::Error) {
        let kind = self
            .node
            .get("type")
            .and_then(Node::as_scalar)
            .unwrap_or("");
        match e.detail {
            Some(Detail::UnknownField { expected, .. }) => {
                let Node::Map { entries, .. } = self.node.resolved() else {
                    return self.problem(None, e.message);
                };
                for (key, _) in entries {
                    let Some(field) = key.as_scalar() else {
                        continue;
                    };
                    if field != "type" && !expected.contains(&field) {
                        let message = misplaced(kind, field, expected);
                        self.problems
                            .at(key.position(), format!("{}: {message}", self.label));
                    }
                }
            }
            Some(Detail::MissingField("type")) => {
                self.problem(None, format!("no `type`; give one of {TYPES}"))
            }
            Some(Detail::UnknownVariant { variant, .. }) => self.problem(
                Some("type"),
                format!("unknown type {}; use {TYPES}", quote(&variant)),
            ),
            _ => {
                let at = e.at.unwrap_or(self.node.position());
                let message = match e.path.as_str() {
                    "" => e.message,
                    path => format!("{path}: {}", e.message),
                };
                self.problems.at(at, format!("{}: {message}", self.label));
            }
        }
    }

    /// A required field of type `kind`, reported when missing.
    fn required<T>(&mut self, value: Option<T>, field: &str, kind: &str, what: &str) -> Option<T> {
        if value.is_none() {
            self.problem(None, format!("type {kind} needs `{field}` ({what})"));
        }
        value
    }

    /// The one line of a secret file named by `field`, read from beside the config.
    fn secret(&mut self, file: &Path, field: &str) -> Option<String> {
        read_secret_file(&self.dir.join(file), Secret::Notification)
            .map_err(|e| self.problem(Some(field), format!("{field}: {e}")))
            .ok()
    }

    fn checked<T>(&mut self, result: Result<T, String>, field: &str) -> Option<T> {
        result.map_err(|m| self.problem(Some(field), m)).ok()
    }

    /// The spec's values, checked into a sink; `None` when a required one is missing or bad.
    fn check(&mut self, spec: SinkSpec) -> Option<SinkConfig> {
        let statuses = matches!(spec, SinkSpec::GitHub(_) | SinkSpec::GitLab(_));
        let (name, target, events, accounts) = match spec {
            SinkSpec::Webhook(s) => {
                let url = self.required(s.url, "url", "webhook", "the https URL to POST to");
                let url = url.and_then(|u| self.checked(check::target_url(&u, "url", true), "url"));
                let secret = match &s.secret_file {
                    Some(file) => self.secret(file, "secretFile").map(Some),
                    None => Some(None),
                };
                let target = match (url, secret) {
                    (Some(url), Some(secret)) => Some(Destination::Webhook { url, secret }),
                    _ => None,
                };
                (s.name, target, s.events, s.accounts)
            }
            SinkSpec::Slack(s) => {
                let target = self
                    .chat(s.url_file.as_deref(), "slack")
                    .map(|url| Destination::Slack { url });
                (s.name, target, s.events, s.accounts)
            }
            SinkSpec::WeCom(s) => {
                let target = self
                    .chat(s.url_file.as_deref(), "wecom")
                    .map(|url| Destination::WeCom { url });
                (s.name, target, s.events, s.accounts)
            }
            SinkSpec::GitHub(s) => {
                let repository = self
                    .required(s.repository, "repository", "github", "owner/name")
                    .and_then(|r| self.checked(check::repository(&r), "repository"));
                let host = self.host(
                    "github",
                    (s.api_url.as_deref(), "https://api.github.com"),
                    (
                        s.token_file.as_deref(),
                        "a file holding a token allowed to write commit statuses",
                    ),
                    s.target_url.as_deref(),
                );
                let target = repository
                    .zip(host)
                    .map(|(repository, host)| Destination::GitHub {
                        api: host.api,
                        repository,
                        token: host.token,
                        target_url: host.link,
                    });
                (s.name, target, None, None)
            }
            SinkSpec::GitLab(s) => {
                let project = self
                    .required(
                        s.project,
                        "project",
                        "gitlab",
                        "the project's id or its path group/name",
                    )
                    .and_then(|p| self.checked(check::project(&p.0).map(|()| p.0), "project"));
                let host = self.host(
                    "gitlab",
                    (s.api_url.as_deref(), "https://gitlab.com"),
                    (
                        s.token_file.as_deref(),
                        "a file holding a token with the api scope",
                    ),
                    s.target_url.as_deref(),
                );
                let target = project
                    .zip(host)
                    .map(|(project, host)| Destination::GitLab {
                        api: host.api,
                        project,
                        token: host.token,
                        target_url: host.link,
                    });
                (s.name, target, None, None)
            }
        };
        let name = self.name(name);
        let events = match (statuses, events) {
            // A commit-status sink takes each run's state, never events.
            (true, _) => Some(BTreeSet::new()),
            (false, None) => Some(EventType::ALL.iter().copied().collect()),
            (false, Some(names)) => self.events(&names),
        };
        let accounts = self.accounts(accounts.unwrap_or_default());
        Some(SinkConfig {
            name: name?,
            target: target?,
            events: events?,
            accounts: accounts?,
        })
    }

    fn name(&mut self, name: Option<String>) -> Option<String> {
        let Some(name) = name else {
            self.problem(None, "needs a `name` (it labels the metric)".into());
            return None;
        };
        if check::is_plain_name(&name) {
            return Some(name);
        }
        self.problem(
            Some("name"),
            format!(
                "sink name {} must be 1 to 64 letters, digits, '-', '_' or '.' (it labels a metric)",
                quote(&name)
            ),
        );
        None
    }

    /// A Slack or WeCom URL: read from its file, never shown (it carries a token).
    fn chat(&mut self, file: Option<&Path>, kind: &str) -> Option<url::Url> {
        let file = self.required(
            file,
            "urlFile",
            kind,
            "a file holding the incoming-webhook URL, which carries a token",
        )?;
        let text = self.secret(file, "urlFile")?;
        self.checked(
            check::target_url(&text, "the URL in urlFile", false),
            "urlFile",
        )
    }

    /// A git host's API (`apiUrl`, else `default`), token (read from `tokenFile`, described
    /// by `what`) and the optional link shown on its statuses; every problem among them.
    fn host(
        &mut self,
        kind: &str,
        (api, default): (Option<&str>, &str),
        (token_file, what): (Option<&Path>, &str),
        link: Option<&str>,
    ) -> Option<Host> {
        let api = self.checked(check::api_url(api.unwrap_or(default), "apiUrl"), "apiUrl");
        let token = self
            .required(token_file, "tokenFile", kind, what)
            .and_then(|file| self.secret(file, "tokenFile"));
        let link = match link {
            None => Some(None),
            Some(u) => self
                .checked(check::target_url(u, "targetUrl", true), "targetUrl")
                .map(|u| Some(u.into())),
        };
        Some(Host {
            api: api?,
            token: token?,
            link: link?,
        })
    }

    /// Every event name, each unknown one reported at its place.
    fn events(&mut self, names: &[String]) -> Option<BTreeSet<EventType>> {
        let items = match self.node.get("events").map(Node::resolved) {
            Some(Node::Seq { items, .. }) => items.as_slice(),
            _ => &[],
        };
        let mut events = BTreeSet::new();
        let mut bad = false;
        for (i, name) in names.iter().enumerate() {
            match EventType::parse(name) {
                Some(kind) => {
                    events.insert(kind);
                }
                None => {
                    bad = true;
                    let at = items.get(i).unwrap_or(self.node).position();
                    let known = EventType::ALL.map(EventType::name);
                    let hint = match closest(name, known.into_iter()) {
                        Some(close) => format!("did you mean `{close}`?"),
                        None => format!("events are {}", known.join(", ")),
                    };
                    self.problems.at(
                        at,
                        format!("{}: unknown event {}; {hint}", self.label, quote(name)),
                    );
                }
            }
        }
        (!bad).then_some(events)
    }

    /// Every account id, each bad one reported at its place.
    fn accounts(&mut self, ids: Vec<String>) -> Option<BTreeSet<String>> {
        let items = match self.node.get("accounts").map(Node::resolved) {
            Some(Node::Seq { items, .. }) => items.as_slice(),
            _ => &[],
        };
        let mut bad = false;
        for (i, id) in ids.iter().enumerate() {
            if let Err(m) = crate::manifest::check_account_id(id) {
                bad = true;
                let at = items.get(i).unwrap_or(self.node).position();
                self.problems
                    .at(at, format!("{}: accounts: {m}", self.label));
            }
        }
        (!bad).then(|| ids.into_iter().collect())
    }
}

/// Why `field` is refused on a sink of type `kind` (whose fields are `expected`), and what to
/// write instead.
fn misplaced(kind: &str, field: &str, expected: &[&str]) -> String {
    let status = matches!(kind, "github" | "gitlab");
    let instead = match (kind, field) {
        ("slack" | "wecom", "url") => {
            "its URL carries a token: put the URL in a file and name the file with `urlFile`"
        }
        ("slack" | "wecom", "secretFile" | "tokenFile") => {
            "the URL in `urlFile` carries the token; remove it"
        }
        ("webhook", "urlFile") => {
            "give the URL itself as `url` (a signing key goes in a file named by `secretFile`)"
        }
        ("webhook", "tokenFile") => "a webhook's signing key goes in a file named by `secretFile`",
        ("webhook" | "slack" | "wecom", "repository" | "project" | "apiUrl" | "targetUrl") => {
            "only github and gitlab sinks take it; for commit statuses add a sink of one of those types"
        }
        (_, "events" | "accounts") if status => {
            "a commit-status sink posts each run's state; send events with a webhook, slack or wecom sink"
        }
        (_, "url" | "urlFile") if status => "give the API's base URL as `apiUrl`",
        (_, "secretFile") if status => "its token goes in a file named by `tokenFile`",
        ("github", "project") => "a GitHub sink names its repository with `repository: owner/name`",
        ("gitlab", "repository") => {
            "a GitLab sink names its project with `project` (its id or group/name)"
        }
        _ => {
            return match closest(field, expected.iter().copied()) {
                Some(close) => format!("unknown field {}; did you mean `{close}`?", quote(field)),
                None => format!(
                    "unknown field {}; type {kind} takes `type`, {}",
                    quote(field),
                    expected
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
        }
    };
    format!("`{field}` does not apply to type {kind}; {instead}")
}
