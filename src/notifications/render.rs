//! One event or status, rendered as the HTTP request a target expects, with untrusted values
//! escaped for that target's format and everything cut to its size limits.
//!
//! Pure: the time and the secrets come in as arguments, so that the signature and every byte
//! of every body are unit-tested.

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::config::Destination;
use super::event::{CommitState, CommitStatus, Event, Part};
use crate::quote::clean;

/// Characters of one untrusted value shown.
const VALUE_CHARS: usize = 200;
/// The webhook's one-line `text`.
const WEBHOOK_TEXT_CHARS: usize = 2000;
/// Slack allows 40,000 characters of text, and truncates long ones badly; a notice is short.
const SLACK_TEXT_CHARS: usize = 3000;
/// WeCom's robot refuses markdown content over 4,096 bytes.
const WECOM_CONTENT_BYTES: usize = 4096;
/// GitHub refuses a status description over 140 characters.
const GITHUB_DESCRIPTION_CHARS: usize = 140;
/// GitLab keeps 255.
const GITLAB_DESCRIPTION_CHARS: usize = 255;

/// A request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SinkRequest {
    pub url: url::Url,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// The event as one line of plain text: values cleaned of control characters and cut.
pub(crate) fn plain(parts: &[Part]) -> String {
    let mut out = String::new();
    for p in parts {
        match p {
            Part::Plain(s) => out.push_str(s),
            Part::Value(s) => out.push_str(&clean(&one_line(s), VALUE_CHARS)),
        }
    }
    out
}

/// Markdown (WeCom) and Slack mrkdwn: each value in a code span, so that nothing in it is
/// read as markup or a mention; Slack's three control characters escaped as Slack asks.
fn marked(parts: &[Part], slack: bool) -> String {
    let mut out = String::new();
    for p in parts {
        let (text, code) = match p {
            Part::Plain(s) => (s.clone(), false),
            Part::Value(s) => (clean(&one_line(s), VALUE_CHARS).replace('`', "'"), true),
        };
        let text = if slack {
            text.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        } else {
            text
        };
        if code {
            out.push('`');
            out.push_str(&text);
            out.push('`');
        } else {
            out.push_str(&text);
        }
    }
    out
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn cut_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((i, _)) if text.chars().count() > max => format!("{}…", &text[..i]),
        _ => text.to_owned(),
    }
}

/// `text` cut to `max` bytes on a character boundary, with an ellipsis when cut.
fn cut_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// `X-Subsync-Signature: t=UNIX,v1=HEX`, HEX the HMAC-SHA256 of `UNIX.BODY`.
pub(crate) fn signature(secret: &str, unix: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length; this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(unix.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={unix},v1={hex}")
}

/// The request for an event to an event sink; `None` for a commit-status sink.
pub(crate) fn event(target: &Destination, e: &Event, unix: u64) -> Option<SinkRequest> {
    let title = format!("subsync {}", e.kind.name());
    match target {
        Destination::Webhook { url, secret } => {
            let text = cut_chars(&plain(&e.message), WEBHOOK_TEXT_CHARS);
            let body = json!({
                "event": e.kind,
                "revision": e.revision.as_deref().map(|r| clean(r, VALUE_CHARS)),
                "account": e.account.as_deref().map(|a| clean(a, VALUE_CHARS)),
                "text": text,
                "time": unix,
            })
            .to_string()
            .into_bytes();
            let mut headers = vec![
                ("content-type", "application/json".to_owned()),
                ("x-subsync-event", e.kind.name().to_owned()),
            ];
            if let Some(secret) = secret {
                headers.push(("x-subsync-signature", signature(secret, unix, &body)));
            }
            Some(SinkRequest {
                url: url.clone(),
                headers,
                body,
            })
        }
        Destination::Slack { url } => {
            let text = cut_chars(
                &format!("*{title}*: {}", marked(&e.message, true)),
                SLACK_TEXT_CHARS,
            );
            Some(json_request(url.clone(), vec![], &json!({ "text": text })))
        }
        Destination::WeCom { url } => {
            let content = cut_bytes(
                &format!("**{title}**\n> {}", marked(&e.message, false)),
                WECOM_CONTENT_BYTES,
            );
            Some(json_request(
                url.clone(),
                vec![],
                &json!({ "msgtype": "markdown", "markdown": { "content": content } }),
            ))
        }
        Destination::GitHub { .. } | Destination::GitLab { .. } => None,
    }
}

/// The request for a commit status; `None` for an event sink or a revision that is not a
/// commit id (`--revision v1.2` cannot be given a status).
pub(crate) fn status(target: &Destination, s: &CommitStatus) -> Option<SinkRequest> {
    let sha = s.revision.as_str();
    if !crate::manifest::is_commit_id(sha) {
        return None;
    }
    match target {
        Destination::GitHub {
            api,
            repository,
            token,
            target_url,
        } => {
            let state = match s.state {
                CommitState::Pending => "pending",
                CommitState::Success => "success",
                CommitState::Failure => "failure",
            };
            let mut body = json!({
                "state": state,
                "description": cut_chars(&plain(&s.description), GITHUB_DESCRIPTION_CHARS),
                "context": "subsync",
            });
            if let Some(t) = target_url {
                body["target_url"] = json!(t);
            }
            let url = with_segments(
                api,
                &[
                    "repos",
                    &repository.owner,
                    &repository.name,
                    "statuses",
                    sha,
                ],
            )?;
            Some(json_request(
                url,
                vec![
                    ("authorization", format!("Bearer {token}")),
                    ("accept", "application/vnd.github+json".into()),
                    ("x-github-api-version", "2022-11-28".into()),
                ],
                &body,
            ))
        }
        Destination::GitLab {
            api,
            project,
            token,
            target_url,
        } => {
            let state = match s.state {
                CommitState::Pending => "pending",
                CommitState::Success => "success",
                CommitState::Failure => "failed",
            };
            // The project's path is one segment: its slashes are encoded (`group%2Fname`).
            let url = with_segments(api, &["api", "v4", "projects", project, "statuses", sha])?;
            let mut body = json!({
                "state": state,
                "name": "subsync",
                "description": cut_chars(&plain(&s.description), GITLAB_DESCRIPTION_CHARS),
            });
            if let Some(t) = target_url {
                body["target_url"] = json!(t);
            }
            Some(json_request(
                url,
                vec![("private-token", token.clone())],
                &body,
            ))
        }
        _ => None,
    }
}

/// `base` (which may carry a path: `https://host/api/v3`) with `segments` appended, each
/// percent-encoded as one segment. `None` for an empty, `.` or `..` segment: the checks refuse
/// them, and the URL library would drop them, sending the request elsewhere.
fn with_segments(base: &url::Url, segments: &[&str]) -> Option<url::Url> {
    if segments.iter().any(|s| matches!(*s, "" | "." | "..")) {
        return None;
    }
    let mut url = base.clone();
    url.path_segments_mut()
        .ok()?
        .pop_if_empty()
        .extend(segments);
    Some(url)
}

fn json_request(
    url: url::Url,
    mut headers: Vec<(&'static str, String)>,
    body: &serde_json::Value,
) -> SinkRequest {
    headers.push(("content-type", "application/json".into()));
    SinkRequest {
        url,
        headers,
        body: body.to_string().into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notifications::event::{EventType, pending};

    const HOSTILE: &str = "@TOA#_x <!channel> *bold* `tick` & \u{1b}[31m\nforged line";

    fn drift_about(account: &str) -> Event {
        Event {
            kind: EventType::Drift,
            revision: Some("abc".into()),
            account: Some(account.into()),
            message: vec![
                Part::Value(account.into()),
                Part::Plain(": 1 subscribed outside subsync".into()),
            ],
        }
    }

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    fn body(r: &SinkRequest) -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_time_dot_body() {
        assert_eq!(
            signature("s3cret", 1_700_000_000, br#"{"a":1}"#),
            format!("t=1700000000,v1={}", known_hmac())
        );
    }

    /// HMAC-SHA256 written out from its definition, to check the library's use against.
    fn known_hmac() -> String {
        use sha2::Digest;
        let key = b"s3cret";
        let mut k = [0u8; 64];
        k[..key.len()].copy_from_slice(key);
        let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
        let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
        let inner = Sha256::new()
            .chain_update(&ipad)
            .chain_update(br#"1700000000.{"a":1}"#)
            .finalize();
        let outer = Sha256::new()
            .chain_update(&opad)
            .chain_update(inner)
            .finalize();
        outer.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_webhook_gets_json_one_line_of_text_and_the_event_header() {
        let target = Destination::Webhook {
            url: url("https://example.com/h"),
            secret: Some("k".into()),
        };
        let r = event(&target, &drift_about(HOSTILE), 1_700_000_000).unwrap();
        let b = body(&r);
        assert_eq!(b["event"], "drift");
        assert_eq!(b["revision"], "abc");
        let text = b["text"].as_str().unwrap();
        assert!(!text.contains(['\n', '\r', '\u{1b}']), "{text:?}");
        assert!(
            text.contains("<!channel>"),
            "JSON needs no markup escaping: {text}"
        );
        assert!(r.headers.contains(&("x-subsync-event", "drift".into())));
        let sig = &r
            .headers
            .iter()
            .find(|(n, _)| *n == "x-subsync-signature")
            .unwrap()
            .1;
        assert_eq!(sig, &signature("k", 1_700_000_000, &r.body));
    }

    #[test]
    fn slack_text_escapes_mentions_and_markup_in_values() {
        let target = Destination::Slack {
            url: url("https://hooks.slack.com/x"),
        };
        let r = event(&target, &drift_about(HOSTILE), 0).unwrap();
        let text = body(&r)["text"].as_str().unwrap().to_owned();
        assert!(
            text.starts_with("*subsync drift*: `@TOA#_x &lt;!channel&gt; *bold* 'tick' &amp; "),
            "{text}"
        );
        assert!(!text.contains("<!channel>"), "{text}");
        assert!(!text.contains(['\n', '\u{1b}']), "{text:?}");
    }

    #[test]
    fn wecom_gets_markdown_with_values_in_code_spans_within_4096_bytes() {
        let target = Destination::WeCom {
            url: url("https://qyapi.weixin.qq.com/x"),
        };
        let r = event(&target, &drift_about("@TOA#_vip"), 0).unwrap();
        let b = body(&r);
        assert_eq!(b["msgtype"], "markdown");
        assert_eq!(
            b["markdown"]["content"],
            "**subsync drift**\n> `@TOA#_vip`: 1 subscribed outside subsync"
        );
        let mut long = drift_about("a");
        long.message = (0..100).map(|_| Part::Plain("é".repeat(50))).collect();
        let r = event(&target, &long, 0).unwrap();
        let content = body(&r)["markdown"]["content"].as_str().unwrap().to_owned();
        assert!(
            content.len() <= 4096 && content.ends_with('…'),
            "{}",
            content.len()
        );
    }

    #[test]
    fn a_long_value_is_cut() {
        let target = Destination::Webhook {
            url: url("https://example.com/h"),
            secret: None,
        };
        let r = event(&target, &drift_about(&"x".repeat(1_000_000)), 0).unwrap();
        assert!(r.body.len() < 1000, "{}", r.body.len());
    }

    #[test]
    fn github_gets_a_status_within_140_characters() {
        let target = Destination::GitHub {
            api: url("https://github.example.com/api/v3"),
            repository: crate::notifications::config::Repository {
                owner: "o".into(),
                name: "n".into(),
            },
            token: "t".into(),
            target_url: Some("https://grafana.example.com/d/subsync".into()),
        };
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let r = status(&target, &pending(sha)).unwrap();
        assert_eq!(
            r.url.as_str(),
            format!("https://github.example.com/api/v3/repos/o/n/statuses/{sha}")
        );
        let b = body(&r);
        assert_eq!(b["state"], "pending");
        assert_eq!(b["context"], "subsync");
        assert_eq!(b["target_url"], "https://grafana.example.com/d/subsync");
        let long = CommitStatus {
            revision: sha.into(),
            state: CommitState::Failure,
            description: vec![Part::Value("v".repeat(500))],
        };
        let b = body(&status(&target, &long).unwrap());
        assert_eq!(b["state"], "failure");
        assert_eq!(b["description"].as_str().unwrap().chars().count(), 140);
        assert!(status(&target, &pending("v1.2")).is_none(), "not a commit");
    }

    #[test]
    fn every_path_segment_is_encoded_and_dot_segments_are_never_sent() {
        let api = url("https://h.example/api/v3/");
        let built = with_segments(&api, &["repos", "o", "n?x#y%2e", "statuses", "s"]).unwrap();
        assert_eq!(
            built.as_str(),
            "https://h.example/api/v3/repos/o/n%3Fx%23y%252e/statuses/s"
        );
        for dots in [".", "..", ""] {
            assert!(with_segments(&api, &["repos", dots, "n"]).is_none());
        }
    }

    #[test]
    fn gitlab_gets_its_status_api_with_the_project_path_encoded() {
        let target = Destination::GitLab {
            api: url("https://gitlab.example.com"),
            project: "group/manifests".into(),
            token: "t".into(),
            target_url: None,
        };
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let failed = CommitStatus {
            revision: sha.into(),
            state: CommitState::Failure,
            description: vec![Part::Plain("x".into())],
        };
        let r = status(&target, &failed).unwrap();
        assert_eq!(
            r.url.as_str(),
            format!("https://gitlab.example.com/api/v4/projects/group%2Fmanifests/statuses/{sha}")
        );
        assert_eq!(body(&r)["state"], "failed");
        assert!(r.headers.contains(&("private-token", "t".into())));
    }
}
