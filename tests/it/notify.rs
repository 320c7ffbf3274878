//! Notifications as a team receives them: `apply` and `watch` against the emulator, with
//! local receivers standing in for a webhook, Slack, WeCom, GitHub and GitLab.

use std::path::Path;

use crate::common::daemon::{sigterm, start};
use crate::common::wait_for;
use crate::common::{Remote, Workspace, block_on, ids, remote_subscribers, stdout};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subsync::emulator::FollowLimitMode;
use subsync::testing::{Received, Receiver};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
/// A UserID that is valid and hostile to every chat format.
const HOSTILE: &str = "<!channel>*x*_&`y`";

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `X-Subsync-Signature` checked as a receiver would: HMAC-SHA256 over `t.body`, and a
/// timestamp no older than five minutes.
fn signature_is_valid(r: &Received, secret: &str) -> bool {
    let Some(sig) = r.header("x-subsync-signature") else {
        return false;
    };
    let Some((t, v1)) = sig
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let fresh = t.parse::<u64>().is_ok_and(|t| now.abs_diff(t) < 300);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(&r.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    fresh && expected == v1
}

/// `subsync apply manifests EXTRA --notify-config notify.yaml` in `ws`, against `endpoint`.
fn apply_notifying(ws: &Workspace, endpoint: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["apply", "manifests"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--notify-config", "notify.yaml"]);
    ws.run(Some(endpoint), &args)
}

fn events(r: &Receiver) -> Vec<String> {
    r.received()
        .iter()
        .map(|r| r.json()["event"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A manifest with an empty UserID: refused.
const REFUSED: &str = "apiVersion: subsync/v1\nkind: SubscriberSet\nmetadata: {name: a}\nspec:\n  officialAccount: '@TOA#_a'\n  subscribers: ['']\n";

/// Writes `notify.yaml` listing `sinks`, and the token file `t` they may name.
fn notify_config(ws: &Workspace, sinks: &[String]) {
    write(&ws.path().join("t"), "token\n");
    write(
        &ws.path().join("notify.yaml"),
        &format!("sinks:\n{}\n", sinks.join("\n")),
    );
}

/// A webhook sink posting to `receiver`.
fn webhook_sink(name: &str, receiver: &Receiver) -> String {
    format!(
        "- {{name: {name}, type: webhook, url: '{}/hook'}}",
        receiver.url()
    )
}

/// A GitHub status sink for `o/n` with `receiver` as its API.
fn github_sink(name: &str, receiver: &Receiver) -> String {
    format!(
        "- {{name: {name}, type: github, repository: o/n, apiUrl: '{}', tokenFile: t}}",
        receiver.url()
    )
}

#[test]
fn apply_tells_each_sink_once_signed_and_escaped_for_its_format() {
    // HOSTILE may follow one account only: its add to the other fails with Result 0.
    let emulator = Remote::default()
        .account("@TOA#_a", 1000, &[])
        .account("@TOA#_b", 1000, &[])
        .follow_limit(1, FollowLimitMode::Item)
        .start();
    let (hook, slack, wecom) = (
        block_on(Receiver::start()),
        block_on(Receiver::start()),
        block_on(Receiver::start()),
    );
    let ws = Workspace::new();
    let mut a = ids("a", 2);
    a.push(HOSTILE.into());
    ws.manifest("a", "@TOA#_a", &a);
    ws.manifest("b", "@TOA#_b", &[HOSTILE.to_owned()]);
    write(&ws.path().join("hook.key"), "webhook-secret\n");
    write(
        &ws.path().join("slack.url"),
        &format!("{}/services/T/B/x\n", slack.url()),
    );
    write(
        &ws.path().join("wecom.url"),
        &format!("{}/cgi-bin/webhook/send?key=x\n", wecom.url()),
    );
    write(
        &ws.path().join("notify.yaml"),
        &format!(
            "sinks:\n\
             - {{name: hook, type: webhook, url: '{}/hook', secretFile: hook.key}}\n\
             - {{name: chat, type: slack, urlFile: slack.url, events: [failed]}}\n\
             - {{name: robot, type: wecom, urlFile: wecom.url, events: [failed]}}\n",
            hook.url()
        ),
    );
    let out = apply_notifying(&ws, &emulator.url(), &["--revision", SHA]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));

    // The webhook: each event once, signed, with the event in a header and the JSON.
    let got = hook.received();
    assert_eq!(events(&hook), ["failed", "applied"], "{got:?}");
    for r in &got {
        assert!(signature_is_valid(r, "webhook-secret"), "{r:?}");
        assert_eq!(r.header("x-subsync-event"), r.json()["event"].as_str());
        assert_eq!(r.json()["revision"], SHA);
        assert!(!r.json()["text"].as_str().unwrap().contains('\n'));
    }
    // The accounts are sent side by side: HOSTILE follows whichever account's add landed
    // first, and the failure is told for the other one.
    let followed_a = remote_subscribers(&emulator, "@TOA#_a").contains(&HOSTILE.to_owned());
    let failed = got[0].json();
    assert_eq!(
        failed["account"],
        if followed_a { "@TOA#_b" } else { "@TOA#_a" }
    );
    assert!(
        failed["text"].as_str().unwrap().contains(HOSTILE),
        "{failed}"
    );
    assert_eq!(
        got[1].json()["text"],
        "revision 0123456789ab applied: 3 added, 0 removed"
    );

    // Slack: the hostile id in a code span, its mention and markup escaped.
    let slack_text = slack.received()[0].json()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(slack.received().len(), 1);
    assert!(
        slack_text.contains("`&lt;!channel&gt;*x*_&amp;'y'`"),
        "{slack_text}"
    );
    assert!(!slack_text.contains("<!channel>"), "{slack_text}");

    // WeCom: markdown, the id in a code span.
    let robot = wecom.received();
    assert_eq!(robot.len(), 1);
    assert_eq!(robot[0].json()["msgtype"], "markdown");
    let content = robot[0].json()["markdown"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(content.contains("`<!channel>*x*_&'y'`"), "{content}");
    // Nothing secret went into what anyone can read.
    assert!(!stdout(&out).contains("webhook-secret"));
}

#[test]
fn a_commit_gets_pending_then_success_on_github_and_gitlab() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let (github, gitlab) = (block_on(Receiver::start()), block_on(Receiver::start()));
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 3));
    write(&ws.path().join("gh.token"), "ghp_example\n");
    write(&ws.path().join("gl.token"), "glpat_example\n");
    write(
        &ws.path().join("notify.yaml"),
        &format!(
            "sinks:\n\
             - {{name: commits, type: github, repository: example/manifests, apiUrl: '{}/api/v3', tokenFile: gh.token, targetUrl: 'https://grafana.example.com/d/subsync'}}\n\
             - {{name: mr, type: gitlab, project: group/manifests, apiUrl: '{}', tokenFile: gl.token}}\n",
            github.url(),
            gitlab.url()
        ),
    );
    let out = apply_notifying(&ws, &emulator.url(), &["--revision", SHA]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    let statuses = github.received();
    let states: Vec<_> = statuses.iter().map(|r| r.json()["state"].clone()).collect();
    assert_eq!(states, ["pending", "success"]);
    for r in &statuses {
        assert_eq!(
            r.path,
            format!("/api/v3/repos/example/manifests/statuses/{SHA}")
        );
        assert_eq!(r.header("authorization"), Some("Bearer ghp_example"));
        assert_eq!(r.json()["context"], "subsync");
        assert_eq!(
            r.json()["target_url"],
            "https://grafana.example.com/d/subsync"
        );
    }
    assert_eq!(statuses[1].json()["description"], "3 added, 0 removed");

    let statuses = gitlab.received();
    let states: Vec<_> = statuses.iter().map(|r| r.json()["state"].clone()).collect();
    assert_eq!(states, ["pending", "success"]);
    assert_eq!(
        statuses[0].path,
        format!("/api/v4/projects/group%2Fmanifests/statuses/{SHA}")
    );
    assert_eq!(statuses[0].header("private-token"), Some("glpat_example"));
}

#[test]
fn a_full_account_is_told_once_across_resyncs_while_a_hanging_sink_delays_nothing() {
    let emulator = Remote::default().account("@TOA#_vip", 3, &[]).start();
    let (hook, hanging) = (block_on(Receiver::start()), block_on(Receiver::hanging()));
    let ws = Workspace::new();
    ws.manifest("vip", "@TOA#_vip", &ids("v", 5));
    write(
        &ws.path().join("notify.yaml"),
        &format!(
            "sinks:\n\
             - {{name: hook, type: webhook, url: '{}/hook'}}\n\
             - {{name: stuck, type: github, repository: o/n, apiUrl: '{}', tokenFile: t}}\n",
            hook.url(),
            hanging.url()
        ),
    );
    write(&ws.path().join("t"), "token\n");
    let daemon = start(
        &ws,
        &emulator,
        &ws.manifests(),
        &[
            "--resync",
            "1s",
            "--revision",
            SHA,
            "--notify-config",
            "notify.yaml",
        ],
    );
    let reconciles = || {
        daemon
            .metrics()
            .into_iter()
            .filter(|(k, _)| k.starts_with("subsync_reconcile_total"))
            .map(|(_, v)| v)
            .sum::<f64>()
    };
    // The status API never answers the first status: reconciles go on regardless.
    wait_for("the hanging sink's first request", || {
        !hanging.received().is_empty()
    });
    wait_for("the limit to be told", || {
        events(&hook).contains(&"limit_reached".to_owned())
    });
    let told_at = reconciles();
    wait_for("three resyncs after it was told", || {
        reconciles() >= told_at + 3.0
    });
    assert_eq!(
        events(&hook),
        ["limit_reached", "applied"],
        "the full account is one condition, told once"
    );
    // Only the first status reached the hanging API (again, if its timeout passed): the
    // final one waits its turn in that sink's queue, and nothing waited for the sink.
    assert!(
        hanging
            .received()
            .iter()
            .all(|r| r.json()["state"] == "pending"),
        "{:?}",
        hanging.received()
    );
    assert_eq!(
        daemon.get("/readyz").0,
        200,
        "a stuck sink is not the daemon's trouble"
    );
    let log = daemon.log();
    assert!(!log.contains("token\n") && !log.contains("Bearer"), "{log}");
    let sent = daemon.metric("subsync_notifications_total{sink=\"hook\",result=\"sent\"}");
    assert_eq!(sent, Some(2.0));
}

#[test]
fn a_failing_sink_is_tried_four_times_and_a_refusing_one_once_without_changing_the_exit() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let (failing, refusing) = (
        block_on(Receiver::answering(503)),
        block_on(Receiver::answering(404)),
    );
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 3));
    write(
        &ws.path().join("notify.yaml"),
        &format!(
            "sinks:\n\
             - {{name: failing, type: webhook, url: '{}/hook', events: [applied]}}\n\
             - {{name: refusing, type: webhook, url: '{}/hook', events: [applied]}}\n",
            failing.url(),
            refusing.url()
        ),
    );
    let out = apply_notifying(&ws, &emulator.url(), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::common::stderr(&out)
    );
    assert_eq!(
        events(&failing),
        ["applied"; 4],
        "503 is tried again, 4 times in all"
    );
    assert_eq!(events(&refusing), ["applied"], "404 is final");
    let err = crate::common::stderr(&out);
    assert!(err.contains("cannot deliver a notification"), "{err}");
    assert!(err.contains("the sink refused a notification"), "{err}");
}

#[test]
fn invalid_manifests_fail_the_commit_status_and_are_told_before_apply_exits() {
    let (hook, github) = (block_on(Receiver::start()), block_on(Receiver::start()));
    let ws = Workspace::new();
    write(&ws.manifests().join("a.yaml"), REFUSED);
    notify_config(
        &ws,
        &[webhook_sink("hook", &hook), github_sink("commits", &github)],
    );
    let out = apply_notifying(&ws, "http://127.0.0.1:9", &["--revision", SHA]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(events(&hook), ["invalid"]);
    let text = hook.received()[0].json()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.starts_with("the manifests are invalid (1 problem;"),
        "{text}"
    );
    assert!(text.contains("a.yaml"), "{text}");
    let statuses = github.received();
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].json()["state"], "failure");
}

#[test]
fn a_bad_notify_config_gets_every_problem_in_one_run_and_nothing_is_sent() {
    let receiver = block_on(Receiver::start());
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 3));
    write(&ws.path().join("t"), "token\n");
    write(
        &ws.path().join("notify.yaml"),
        &format!(
            "sinks:\n\
             - name: hook\n  type: webhook\n  url: http://hooks.example.com/x\n\
             - {{name: chat, type: slack, url: '{0}/x'}}\n\
             - {{name: up, type: github, repository: '../..', apiUrl: '{0}', tokenFile: t}}\n\
             - {{name: mr, type: gitlab, project: '..', apiUrl: '{0}', tokenFile: t}}\n\
             - {{name: ok, type: webhook, url: '{0}/hook'}}\n",
            receiver.url()
        ),
    );
    // No emulator runs: a run that got past the check would fail on the endpoint instead.
    let out = apply_notifying(&ws, "http://127.0.0.1:9", &["--revision", SHA]);
    assert_eq!(out.status.code(), Some(1));
    let err = crate::common::stderr(&out);
    for expected in [
        "notify.yaml has 4 problems; fix them and run again",
        "notify.yaml:4:8: sink hook: url \"http://hooks.example.com/x\" must be https",
        "notify.yaml:5:29: sink chat: `url` does not apply to type slack; its URL carries a token: put the URL in a file and name the file with `urlFile`",
        "notify.yaml:6:40: sink up: repository \"../..\" must be owner/name",
        "notify.yaml:7:37: sink mr: project \"..\" must be the project's numeric id or its path",
    ] {
        assert!(err.contains(expected), "{expected} not in:\n{err}");
    }
    assert!(!err.contains("token\n"), "{err}");
    assert!(receiver.received().is_empty(), "nothing is sent");
    assert!(!ws.state().exists(), "nothing recorded, nothing created");
}

#[test]
fn a_notify_config_path_pointing_at_another_file_quotes_none_of_it() {
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 3));
    let hash = "$6$saltsalt$Hq8bTqZqN3lHcAq2tTj3Wn4n1i3T2Fr7oFzq1nE0xq3kQ8XH4N3D5Z8";
    write(
        &ws.path().join("notify.yaml"),
        &format!("root:{hash}:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"),
    );
    let out = apply_notifying(&ws, "http://127.0.0.1:9", &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = crate::common::stderr(&out);
    assert!(
        err.contains("notify.yaml:1:1: this is not a notification config")
            && err.contains("check --notify-config"),
        "{err}"
    );
    for secret in ["saltsalt", "Hq8bTq", "root", "daemon"] {
        assert!(!err.contains(secret), "{secret} quoted: {err}");
    }
}

#[test]
fn a_revision_that_is_not_a_commit_id_skips_statuses_and_says_so_once() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let github = block_on(Receiver::start());
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 3));
    notify_config(&ws, &[github_sink("commits", &github)]);
    let out = apply_notifying(&ws, &emulator.url(), &["--revision", "v1.2"]);
    let err = crate::common::stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        err.matches("commit statuses skipped: revision \"v1.2\" is not a commit id")
            .count(),
        1,
        "{err}"
    );
    assert!(github.received().is_empty());
}

#[test]
fn a_status_sink_that_answers_401_is_counted_failed_never_sent() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let (hook, refusing) = (
        block_on(Receiver::start()),
        block_on(Receiver::answering(401)),
    );
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 3));
    notify_config(
        &ws,
        &[
            webhook_sink("hook", &hook),
            github_sink("commits", &refusing),
        ],
    );
    let daemon = start(
        &ws,
        &emulator,
        &ws.manifests(),
        &["--revision", SHA, "--notify-config", "notify.yaml"],
    );
    let metric = |sink: &str, result: &str| {
        daemon
            .metric(&format!(
                "subsync_notifications_total{{sink=\"{sink}\",result=\"{result}\"}}"
            ))
            .unwrap_or(0.0)
    };
    // Pending and success, both refused; and the event sink got `applied`.
    wait_for("both statuses refused", || {
        metric("commits", "failed") >= 2.0
    });
    wait_for("the event delivered", || metric("hook", "sent") >= 1.0);
    assert_eq!(refusing.received().len(), 2);
    assert_eq!(metric("commits", "sent"), 0.0, "a 401 is not sent");
    assert_eq!(events(&hook), ["applied"]);
}

#[test]
fn the_daemon_fails_the_status_of_a_revision_whose_manifests_are_refused() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let github = block_on(Receiver::start());
    let ws = Workspace::new();
    write(&ws.manifests().join("a.yaml"), REFUSED);
    notify_config(&ws, &[github_sink("commits", &github)]);
    let daemon = start(
        &ws,
        &emulator,
        &ws.manifests(),
        &["--revision", SHA, "--notify-config", "notify.yaml"],
    );
    wait_for("the failed status", || !github.received().is_empty());
    let status = github.received()[0].json();
    assert_eq!(status["state"], "failure");
    let description = status["description"].as_str().unwrap().to_owned();
    assert!(
        description.starts_with("the manifests are invalid (1 problem): ")
            && description.contains("a.yaml"),
        "{description}"
    );
    assert_eq!(daemon.get("/readyz").0, 503);
    // Fixed under the same revision (a pipeline that passes --revision): now it succeeds.
    ws.manifest("a", "@TOA#_a", &ids("a", 2));
    wait_for("success", || {
        github
            .received()
            .last()
            .is_some_and(|r| r.json()["state"] == "success")
    });
    let states: Vec<_> = github
        .received()
        .iter()
        .map(|r| r.json()["state"].clone())
        .collect();
    assert_eq!(states, ["failure", "success"]);
}

#[test]
fn only_the_leader_notifies_and_a_replica_that_takes_over_says_so_once() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let hook = block_on(Receiver::start());
    let ws = Workspace::new();
    write(&ws.manifests().join("a.yaml"), REFUSED);
    notify_config(&ws, &[webhook_sink("hook", &hook)]);
    let args = [
        "--standby",
        "--takeover-every",
        "100ms",
        "--notify-config",
        "notify.yaml",
    ];
    let mut leader = start(&ws, &emulator, &ws.manifests(), &args);
    wait_for("the leader", || {
        leader.metric("subsync_leader") == Some(1.0)
    });
    let standby = start(&ws, &emulator, &ws.manifests(), &args);
    let invalid =
        |d: &crate::common::daemon::Daemon| d.metric("subsync_manifests_valid") == Some(0.0);
    wait_for("both to refuse the manifests", || {
        invalid(&leader) && invalid(&standby)
    });
    ws.manifest("a", "@TOA#_a", &ids("a", 2));
    let valid =
        |d: &crate::common::daemon::Daemon| d.metric("subsync_manifests_valid") == Some(1.0);
    wait_for("both to read the fix", || valid(&leader) && valid(&standby));
    let sent = |d: &crate::common::daemon::Daemon| {
        d.metric("subsync_notifications_total{sink=\"hook\",result=\"sent\"}")
            .unwrap_or(0.0)
    };
    wait_for("the leader's three events", || sent(&leader) >= 3.0);
    assert_eq!(events(&hook), ["invalid", "valid", "applied"]);
    assert_eq!(sent(&standby), 0.0, "a replica standing by tells nothing");
    // The leader goes; the replica that takes over says so, once, and nothing else is new.
    sigterm(leader.child());
    assert_eq!(leader.child().wait().unwrap().code(), Some(0));
    wait_for("the takeover to be told", || sent(&standby) >= 1.0);
    wait_for("the takeover's reconcile", || {
        standby
            .metric("subsync_reconcile_total{result=\"converged\"}")
            .unwrap_or(0.0)
            >= 1.0
    });
    assert_eq!(
        events(&hook),
        ["invalid", "valid", "applied", "leader_gained"]
    );
}
