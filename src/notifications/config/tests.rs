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

/// The problems of `text`, each as `LINE:COLUMN message` (the file name left out).
fn problems_in(dir: &tempfile::TempDir, text: &str) -> Vec<String> {
    let path = dir.path().join("notify.yaml");
    match parse(text, &path) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .problems()
            .iter()
            .map(|p| {
                format!(
                    "{}:{} {}",
                    p.line.unwrap_or(0),
                    p.column.unwrap_or(0),
                    p.message
                )
            })
            .collect(),
    }
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
        ("gl.token", "glpat_secret\n"),
    ]);
    let config = parse_in(
        &dir,
        "sinks:\n\
         - {name: hook, type: webhook, url: https://example.com/h, secretFile: hook.key, events: [applied, fatal]}\n\
         - {name: chat, type: slack, urlFile: slack.url, accounts: ['@TOA#_vip']}\n\
         - {name: commits, type: github, repository: example/manifests, tokenFile: gh.token}\n\
         - {name: mr, type: gitlab, project: 12345, tokenFile: gl.token}\n",
    )
    .unwrap();
    assert_eq!(config.sinks.len(), 4);
    let hook = &config.sinks[0];
    assert!(hook.wants(EventType::Applied, None));
    assert!(!hook.wants(EventType::Drift, Some("@TOA#_a")));
    let chat = &config.sinks[1];
    assert!(chat.wants(EventType::Drift, Some("@TOA#_vip")));
    assert!(!chat.wants(EventType::Drift, Some("@TOA#_other")));
    assert!(chat.wants(EventType::Fatal, None));
    assert!(config.sinks[2].takes_statuses());
    match &config.sinks[3].target {
        Destination::GitLab { project, .. } => assert_eq!(project, "12345"),
        other => panic!("{other:?}"),
    }
    let shown = format!("{config:?}");
    for secret in ["k3y", "secret-token", "ghp_secret", "glpat_secret"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

#[test]
fn a_commit_status_sink_wants_no_events() {
    let dir = dir_with(&[("t", "tok\n")]);
    let config = parse_in(
        &dir,
        "sinks:\n- {name: commits, type: github, repository: o/n, tokenFile: t}\n",
    )
    .unwrap();
    for kind in EventType::ALL {
        assert!(!config.sinks[0].wants(kind, None), "{kind:?}");
    }
}

#[test]
fn a_plain_http_target_is_refused_at_its_value_unless_it_is_loopback() {
    let dir = dir_with(&[]);
    let err = parse_in(
        &dir,
        "sinks:\n- name: a\n  type: webhook\n  url: https://ok.example/\n- name: b\n  type: webhook\n  url: http://example.com/hook\n",
    )
    .unwrap_err();
    assert!(
        err.ends_with("notify.yaml:7:8: sink b: url \"http://example.com/hook\" must be https (plain http only to a loopback address)"),
        "{err}"
    );
    assert!(
        parse_in(
            &dir,
            "sinks:\n- {name: a, type: webhook, url: 'http://127.0.0.1:9/h'}\n"
        )
        .is_ok()
    );
}

#[test]
fn a_missing_secret_file_is_refused_at_its_field() {
    let dir = dir_with(&[]);
    let err = parse_in(
        &dir,
        "sinks:\n\n- name: chat\n  type: slack\n  urlFile: nowhere.url\n",
    )
    .unwrap_err();
    assert!(
        err.contains("notify.yaml:5:12: sink chat: urlFile: "),
        "{err}"
    );
    assert!(err.contains("nowhere.url"), "{err}");
}

#[test]
fn an_unknown_event_is_refused_with_the_name_it_was_probably_meant_to_be() {
    let dir = dir_with(&[]);
    let problems = problems_in(
        &dir,
        "sinks:\n- {name: a, type: webhook, url: 'https://x.example/', events: [applied, aplied, everything]}\n",
    );
    assert_eq!(
        problems,
        [
            "2:73 sink a: unknown event \"aplied\"; did you mean `applied`?",
            "2:81 sink a: unknown event \"everything\"; events are applied, drift, limit_reached, failed, fatal, recovered, invalid, valid, leader_gained, leader_lost"
        ]
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
fn a_field_of_another_type_names_the_field_to_use_instead() {
    let dir = dir_with(&[("t", "tok\n"), ("u", "https://hooks.slack.com/x\n")]);
    let problems = problems_in(
        &dir,
        "sinks:\n\
         - {name: chat, type: slack, url: 'https://hooks.slack.com/x'}\n\
         - {name: hook, type: webhook, urlFile: u}\n\
         - {name: gh, type: github, project: o/n, tokenFile: t, events: [drift]}\n\
         - {name: gl, type: gitlab, repository: g/n, tokenFile: t}\n\
         - {name: a, type: webhook, url: 'https://x.example/', urll: x}\n",
    );
    let expected = [
        "2:29 sink chat: `url` does not apply to type slack; its URL carries a token: put the URL in a file and name the file with `urlFile`",
        "3:31 sink hook: `urlFile` does not apply to type webhook; give the URL itself as `url` (a signing key goes in a file named by `secretFile`)",
        "4:28 sink gh: `project` does not apply to type github; a GitHub sink names its repository with `repository: owner/name`",
        "4:56 sink gh: `events` does not apply to type github; a commit-status sink posts each run's state; send events with a webhook, slack or wecom sink",
        "5:28 sink gl: `repository` does not apply to type gitlab; a GitLab sink names its project with `project` (its id or group/name)",
        "6:55 sink a: unknown field \"urll\"; did you mean `url`?",
    ];
    assert_eq!(problems, expected);
}

#[test]
fn a_config_with_many_problems_reports_every_one_in_one_run_in_file_order() {
    let dir = dir_with(&[("t", "tok\n")]);
    let text = "sinks:\n\
        - {name: hook, type: webhook, url: 'http://example.com/h', events: [applid]}\n\
        - {name: chat, type: slack}\n\
        - {name: 'bad name', type: wecom, urlFile: missing.url}\n\
        - {name: gh, type: github, repository: '../..', tokenFile: t}\n\
        - {name: gl, type: gitlab, project: '..'}\n\
        - {name: x, type: teams}\n";
    let problems = problems_in(&dir, text);
    let expected = [
        "2:36 sink hook: url \"http://example.com/h\" must be https",
        "2:69 sink hook: unknown event \"applid\"; did you mean `applied`?",
        "3:3 sink chat: type slack needs `urlFile` (a file holding the incoming-webhook URL",
        "4:10 sink #3: sink name \"bad name\" must be 1 to 64 letters",
        "4:44 sink #3: urlFile: the notification secret file ",
        "5:40 sink gh: repository \"../..\" must be owner/name",
        "6:3 sink gl: type gitlab needs `tokenFile` (a file holding a token with the api scope)",
        "6:37 sink gl: project \"..\" must be the project's numeric id",
        "7:19 sink x: unknown type \"teams\"; use webhook, slack, wecom, github or gitlab",
    ];
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    for (found, expected) in problems.iter().zip(expected) {
        assert!(found.starts_with(expected), "{found}\nexpected {expected}");
    }
    let err = parse_in(&dir, text).unwrap_err();
    assert!(
        err.starts_with("the notification config ")
            && err.contains("notify.yaml has 9 problems; fix them and run again"),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_a_notification_config_is_refused_without_quoting_it() {
    let dir = dir_with(&[]);
    for text in [
        // /etc/shadow: YAML reads each line as a key.
        "root:$6$saltsalt$Hq8bTqZqN3lHcAq2tTj3Wn4n1i3T2Fr7oFzq1nE0xq3kQ8XH4N3D5Z8:19000:0:99999:7:::\n",
        "root:x:0:0:root:/root:/bin/bash\n",
        "{\"password\": \"hunter2\"}",
        "- hunter2\n",
        "[Unit]\nDescription=hunter2\n",
        "hunter2\n",
        "sinks: []\npassword: hunter2\n",
    ] {
        let err = parse_in(&dir, text).unwrap_err();
        assert!(
            err.contains("notify.yaml:1:1: ") || err.contains("notify.yaml:2:1: "),
            "{text}: {err}"
        );
        for secret in ["hunter2", "Hq8bTq", "saltsalt", "root", "Unit", "password"] {
            assert!(!err.contains(secret), "{secret} quoted: {err}");
        }
        assert!(
            err.contains("check --notify-config") || err.contains("only `sinks:` at the top"),
            "{err}"
        );
    }
}

#[test]
fn a_missing_type_is_named() {
    let dir = dir_with(&[]);
    let problems = problems_in(&dir, "sinks:\n- name: a\n  url: https://x.example/\n");
    assert_eq!(
        problems,
        ["2:3 sink a: no `type`; give one of webhook, slack, wecom, github or gitlab"]
    );
}

#[test]
fn a_sink_that_is_not_a_mapping_is_named_as_such() {
    let dir = dir_with(&[]);
    let problems = problems_in(&dir, "sinks:\n- hook\n- [a]\n");
    assert_eq!(
        problems,
        [
            "2:3 sink #1: a sink is a mapping with `name`, `type` and the type's fields; found a single value",
            "3:3 sink #2: a sink is a mapping with `name`, `type` and the type's fields; found a list"
        ]
    );
}

#[test]
fn two_sinks_of_one_name_are_refused() {
    let dir = dir_with(&[]);
    let problems = problems_in(
        &dir,
        "sinks:\n- {name: a, type: webhook, url: 'https://x.example/'}\n- {name: a, type: webhook, url: 'https://y.example/'}\n",
    );
    assert_eq!(
        problems,
        ["3:10 a second sink named \"a\"; give each its own name (it labels the metric)"]
    );
}

#[test]
fn account_filters_are_account_ids() {
    let dir = dir_with(&[]);
    let problems = problems_in(
        &dir,
        "sinks:\n- {name: a, type: webhook, url: 'https://x.example/', accounts: ['@TOA#_ok', 'vip']}\n",
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]
            .starts_with("2:78 sink a: accounts: official account \"vip\" must start with @TOA#_"),
        "{problems:?}"
    );
}
