//! The rules a sink's values follow: its name, the URLs it sends to, and the GitHub
//! repository or GitLab project a commit status is posted for. Each rule returns the reason a
//! value breaks it, in words that say what to write instead.

use crate::quote::quote;

/// A sink name labels a metric: plain, short text.
pub(super) fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A GitHub repository, `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Repository {
    pub owner: String,
    pub name: String,
}

impl std::fmt::Display for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// `owner/name` as GitHub names them: an owner is 1 to 39 letters, digits, `-` or `_` (the
/// last for Enterprise managed users), not starting with `-`; a name is 1 to 100 letters,
/// digits, `-`, `_` or `.`, and neither `.` nor `..`. Anything else (`../..`, `./.`, an empty
/// part) would send the token to another path of the API.
pub(super) fn repository(text: &str) -> Result<Repository, String> {
    let owner_ok = |p: &str| {
        (1..=39).contains(&p.len())
            && !p.starts_with('-')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    };
    let name_ok = |p: &str| {
        (1..=100).contains(&p.len())
            && p != "."
            && p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match text.split_once('/') {
        Some((owner, name)) if owner_ok(owner) && name_ok(name) => Ok(Repository {
            owner: owner.to_owned(),
            name: name.to_owned(),
        }),
        _ => Err(format!(
            "repository {} must be owner/name as GitHub names them (letters, digits, '-', '_', and '.' in the name; no `.` or `..` part)",
            quote(text)
        )),
    }
}

/// Most nested groups GitLab allows, plus the project itself.
const MAX_PROJECT_DEPTH: usize = 21;

/// A GitLab project: its numeric id, or its path `group/[subgroup/...]name`, each part as
/// GitLab names them (letters, digits, `_`, `-` and `.`; starting with a letter, digit, `_` or
/// `.`; ending with a letter, digit, `_` or `-`, so never `.` or `..`; not ending in `.git` or
/// `.atom`).
pub(super) fn project(text: &str) -> Result<(), String> {
    if !text.is_empty() && text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(());
    }
    let part_ok = |p: &str| {
        let b = p.as_bytes();
        let inner = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.');
        match (b.first(), b.last()) {
            (Some(&first), Some(&last)) => {
                p.len() <= 255
                    && (first.is_ascii_alphanumeric() || matches!(first, b'_' | b'.'))
                    && (last.is_ascii_alphanumeric() || matches!(last, b'_' | b'-'))
                    && b.iter().all(|&c| inner(c))
                    && !p.ends_with(".git")
                    && !p.ends_with(".atom")
            }
            _ => false,
        }
    };
    let parts: Vec<&str> = text.split('/').collect();
    if parts.len() >= 2 && parts.len() <= MAX_PROJECT_DEPTH && parts.iter().all(|p| part_ok(p)) {
        return Ok(());
    }
    Err(format!(
        "project {} must be the project's numeric id or its path group/name as GitLab names them (letters, digits, '_', '-', '.'; no empty, `.` or `..` part)",
        quote(text)
    ))
}

/// `text` as a URL subsync may send to: https, or http to a loopback address (tests, a
/// receiver beside the pod), without a user or password. `what` names it; `shown` says
/// whether the URL may be echoed (a Slack or WeCom URL holds a token and may not).
pub(super) fn target_url(text: &str, what: &str, shown: bool) -> Result<url::Url, String> {
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

/// An API base URL: a target URL that also carries no query or fragment, since status paths
/// are appended to it.
pub(super) fn api_url(text: &str, what: &str) -> Result<url::Url, String> {
    let url = target_url(text, what, true)?;
    if url.query().is_some() || url.fragment().is_some() || url.cannot_be_a_base() {
        return Err(format!(
            "{what} {} must be a base URL such as https://github.example.com/api/v3, without a query or fragment",
            quote(url.as_str())
        ));
    }
    Ok(url)
}

pub(crate) fn is_loopback(url: &url::Url) -> bool {
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

    #[test]
    fn repositories_follow_githubs_naming_rules() {
        for ok in [
            "o/n",
            "example/subscriber-manifests",
            "octo_acme/repo.js",
            "a-b/.github",
        ] {
            assert!(repository(ok).is_ok(), "{ok}");
        }
        for bad in [
            "../..", "./.", "../orgs", "o/..", "o/.", "/n", "o/", "o", "o/n/x", "-o/n", "o.x/n",
            "o/n%2f", "o/n?x", "",
        ] {
            let err = repository(bad).unwrap_err();
            assert!(err.contains("must be owner/name"), "{bad}: {err}");
        }
        assert!(repository(&format!("{}/n", "o".repeat(40))).is_err());
    }

    #[test]
    fn projects_are_an_id_or_a_path_by_gitlabs_rules() {
        for ok in [
            "12345",
            "group/manifests",
            "g/sub_group/my.project",
            "g/_x",
            "g/.x-",
        ] {
            assert!(project(ok).is_ok(), "{ok}");
        }
        for bad in [
            "..",
            ".",
            "../x",
            "g/..",
            "g/.",
            "g//n",
            "/g/n",
            "g/n/",
            "g/n.",
            "g/-n",
            "g/n.git",
            "g/n.atom",
            "g/n%2f",
            "g/n x",
            "",
            "manifests",
        ] {
            let err = project(bad).unwrap_err();
            assert!(err.contains("numeric id or its path"), "{bad}: {err}");
        }
        let deep = vec!["g"; 22].join("/");
        assert!(project(&deep).is_err());
    }

    #[test]
    fn an_api_url_carries_no_query() {
        assert!(api_url("https://h/api/v3", "apiUrl").is_ok());
        assert!(api_url("https://h/api/v3?x=1", "apiUrl").is_err());
        assert!(api_url("http://h/api", "apiUrl").is_err());
        assert!(api_url("http://127.0.0.1:9/api", "apiUrl").is_ok());
    }
}
