//! One truth across plan, apply and their exit codes, through the CLI and the emulator: the
//! diff shows what apply does, `plan --detailed-exitcode` says 2 exactly when apply would send
//! a change or exit 2, prune removes only what subsync manages and never half an account,
//! mistakes in `--state` cost nothing, a run killed mid-apply leaves no false drift, and the
//! shell integration generates.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::{Remote, Workspace, ids, remote_subscribers, stderr, stdout};
use serde_json::Value;
use subsync::emulator::{Emulator, FollowLimitMode};
use subsync::tencent::api::Command;

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(out), stderr(out)))
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// A manifest with `extra` spec lines (indented two spaces, each ending in a newline).
fn manifest(ws: &Workspace, account: &str, subscribers: &[String], extra: &str) {
    let name = account.trim_start_matches("@TOA#_");
    let text = format!(
        "{}{extra}",
        crate::common::manifest_text(name, account, subscribers)
    );
    std::fs::write(ws.manifests().join(format!("{name}.yaml")), text).unwrap();
}

fn run(ws: &Workspace, emulator: &Emulator, args: &[&str]) -> std::process::Output {
    ws.run(Some(&emulator.url()), args)
}

fn converge(ws: &Workspace, emulator: &Emulator, extra: &[&str]) {
    let mut args = vec!["apply", "manifests"];
    args.extend_from_slice(extra);
    let out = run(ws, emulator, &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// Adds and removals the emulator has answered so far.
fn changes_sent(emulator: &Emulator) -> u64 {
    let stats = emulator.stats();
    stats.calls(Command::AddSubscriber) + stats.calls(Command::DeleteSubscriber)
}

/// The `+` and `-` lines of a diff, and its held-back lines.
fn diff_lines(diff: &str) -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let (mut add, mut remove, mut held) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for line in diff.lines() {
        if line.starts_with("+++") || line.starts_with("---") {
            continue;
        }
        if let Some(id) = line.strip_prefix("# held back, not removed: ") {
            held.insert(id.to_owned());
        } else if let Some(id) = line.strip_prefix('+') {
            add.insert(id.to_owned());
        } else if let Some(id) = line.strip_prefix('-') {
            remove.insert(id.to_owned());
        }
    }
    (add, remove, held)
}

/// The diff says exactly what the JSON plan says, and apply then does exactly that.
fn assert_diff_is_the_plan_and_apply_does_it(ws: &Workspace, emulator: &Emulator) {
    let plan = json(&run(
        ws,
        emulator,
        &["plan", "manifests", "--format", "json"],
    ));
    let diff = stdout(&run(
        ws,
        emulator,
        &["plan", "manifests", "--format", "diff"],
    ));
    let (add, remove, held) = diff_lines(&diff);
    let a = &plan["accounts"][0];
    assert_eq!(add, strings(&a["add"]), "{diff}");
    assert_eq!(remove, strings(&a["remove"]), "{diff}");
    assert_eq!(held, strings(&a["held"]), "{diff}");
    let before: BTreeSet<String> = remote_subscribers(emulator, "@TOA#_a")
        .into_iter()
        .collect();
    run(ws, emulator, &["apply", "manifests"]);
    let after: BTreeSet<String> = remote_subscribers(emulator, "@TOA#_a")
        .into_iter()
        .collect();
    let added: BTreeSet<String> = after.difference(&before).cloned().collect();
    let removed: BTreeSet<String> = before.difference(&after).cloned().collect();
    assert_eq!((added, removed), (add, remove), "{diff}");
}

#[test]
fn the_diff_is_what_apply_does_with_prune_off_on_and_held_back() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let ws = Workspace::new();
    manifest(&ws, "@TOA#_a", &ids("u", 300), "  prune: true\n");
    converge(&ws, &emulator, &[]);

    // Without prune, dropped subscribers are not removals.
    let mut wanted = ids("u", 290);
    wanted.push("new-1".into());
    manifest(&ws, "@TOA#_a", &wanted, "");
    assert_diff_is_the_plan_and_apply_does_it(&ws, &emulator);
    // With prune, they are.
    manifest(&ws, "@TOA#_a", &wanted, "  prune: true\n");
    assert_diff_is_the_plan_and_apply_does_it(&ws, &emulator);
    // Past a guard, they are held back, and the diff says so.
    manifest(&ws, "@TOA#_a", &ids("u", 100), "  prune: true\n");
    let diff = stdout(&run(
        &ws,
        &emulator,
        &["plan", "manifests", "--format", "diff"],
    ));
    assert!(diff.contains("# held back, not removed: u00100"), "{diff}");
    assert_diff_is_the_plan_and_apply_does_it(&ws, &emulator);
    assert_eq!(remote_subscribers(&emulator, "@TOA#_a").len(), 291);
}

/// (plan --detailed-exitcode, apply, changes apply sent) on the current state.
fn codes(ws: &Workspace, emulator: &Emulator) -> (i32, i32, u64) {
    let plan = run(ws, emulator, &["plan", "manifests", "--detailed-exitcode"]);
    let sent = changes_sent(emulator);
    let apply = run(ws, emulator, &["apply", "manifests"]);
    (
        plan.status.code().unwrap(),
        apply.status.code().unwrap(),
        changes_sent(emulator) - sent,
    )
}

/// The contract: plan exits 2 exactly when apply would send a change or exit 2.
fn assert_contract(case: &str, (plan, apply, sent): (i32, i32, u64), expected: (i32, i32)) {
    assert_eq!((plan, apply), expected, "{case}");
    assert_eq!(
        plan == 2,
        sent > 0 || apply == 2,
        "{case}: plan {plan}, apply {apply}, {sent} changes sent"
    );
}

#[test]
fn plan_exits_two_exactly_when_apply_sends_or_exits_two() {
    let emulator = Remote::default()
        .account("@TOA#_a", 1000, &[])
        .account("@TOA#_full", 3, &[])
        .account("@TOA#_other", 1000, &["busy"])
        .follow_limit(1, FollowLimitMode::Item)
        .start();
    let ws = Workspace::new();
    manifest(&ws, "@TOA#_a", &ids("u", 200), "  prune: true\n");
    let case = |name: &str, expected| assert_contract(name, codes(&ws, &emulator), expected);
    case("adds", (2, 0));
    case("up to date", (0, 0));
    manifest(&ws, "@TOA#_a", &ids("u", 190), "  prune: true\n");
    case("removals", (2, 0));
    manifest(&ws, "@TOA#_a", &ids("u", 10), "  prune: true\n");
    case("removals held back by a guard", (2, 2));
    manifest(&ws, "@TOA#_a", &ids("u", 190), "");
    case("back to no changes", (0, 0));

    // A subscriber who follows too many accounts fails, and is retried.
    let mut wanted = ids("u", 190);
    wanted.push("busy".into());
    manifest(&ws, "@TOA#_a", &wanted, "");
    let first = run(&ws, &emulator, &["apply", "manifests"]);
    assert_eq!(first.status.code(), Some(2), "{}", stdout(&first));
    case("a retry", (2, 2));
    manifest(&ws, "@TOA#_a", &ids("u", 190), "");

    // An account holding 3 that 5 are wanted in: a known shortfall, until accepted.
    manifest(&ws, "@TOA#_full", &ids("f", 5), "");
    let first = run(&ws, &emulator, &["apply", "manifests"]);
    assert_eq!(first.status.code(), Some(2), "{}", stdout(&first));
    case("a known shortfall", (2, 2));
    manifest(&ws, "@TOA#_full", &ids("f", 5), "  acceptShortfall: true\n");
    case("an accepted shortfall", (0, 0));
}

#[test]
fn a_sixty_subscriber_account_is_not_emptied_by_one_run() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let ws = Workspace::new();
    manifest(&ws, "@TOA#_a", &ids("u", 60), "  prune: true\n");
    converge(&ws, &emulator, &[]);
    manifest(&ws, "@TOA#_a", &[], "  prune: true\n  allowEmpty: true\n");
    let out = run(&ws, &emulator, &["apply", "manifests", "--format", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(json(&out)["accounts"][0]["remove_skipped"], 60);
    manifest(&ws, "@TOA#_a", &ids("u", 10), "  prune: true\n");
    let out = run(&ws, &emulator, &["apply", "manifests"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert_eq!(remote_subscribers(&emulator, "@TOA#_a").len(), 60);
    assert_eq!(emulator.stats().calls(Command::DeleteSubscriber), 0);
    // Half may go in one run; the rest in the next.
    manifest(&ws, "@TOA#_a", &ids("u", 30), "  prune: true\n");
    converge(&ws, &emulator, &[]);
    assert_eq!(remote_subscribers(&emulator, "@TOA#_a"), ids("u", 30));
}

fn entries(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_misspelt_url_or_a_file_as_state_is_refused_and_nothing_is_created() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let ws = Workspace::new();
    manifest(&ws, "@TOA#_a", &ids("u", 3), "");
    std::fs::write(ws.path().join("ledger-file"), "").unwrap();
    let before = entries(ws.path());
    for (state, expected) in [
        (
            "postgress://ops:hunter2@127.0.0.1/db",
            "postgres://USER@HOST/DB",
        ),
        ("ledger-file", "is a file; expected a directory"),
    ] {
        for command in ["plan", "apply", "status"] {
            let mut args = vec![command, "--state", state];
            if command != "status" {
                args.push("manifests");
            }
            let out = run(&ws, &emulator, &args);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{command} {state}: {err}");
            assert!(err.contains(expected), "{command} {state}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
            assert_eq!(err.lines().count(), 1, "one message: {err}");
        }
    }
    assert_eq!(entries(ws.path()), before);
    assert_eq!(changes_sent(&emulator), 0);
}

#[test]
fn every_missing_setting_is_named_at_once() {
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("u", 1));
    let out = ws
        .command(None, &["apply", "manifests"])
        .env_remove("SUBSYNC_SDKAPPID")
        .env_remove("SUBSYNC_SECRET_KEY_FILE")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for missing in ["no SDKAppID", "no secret key", "no region"] {
        assert!(err.contains(missing), "{missing}: {err}");
    }
    assert!(!ws.state().exists());
}

#[test]
fn a_run_killed_mid_apply_leaves_no_false_drift() {
    // Every add is made at once and answered 1.5 s later: killed in between, the run has
    // changed the service without recording it.
    let emulator = Remote::default()
        .account("@TOA#_a", 10_000, &[])
        .slow_answers(1500)
        .start();
    let ws = Workspace::new();
    manifest(&ws, "@TOA#_a", &ids("u", 1000), "");
    let child = ws
        .command(Some(&emulator.url()), &["apply", "manifests"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = crate::common::KillOnDrop(child);
    crate::common::wait_for("the adds", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 1000
    });
    child.0.kill().unwrap();
    child.0.wait().unwrap();

    let status = json(&ws.run(None, &["status", "--format", "json"]));
    let confirmed = status["accounts"][0]["confirmed"].as_u64().unwrap_or(0);
    assert!(
        confirmed < 1000,
        "the kill came after the answers; nothing was in doubt"
    );
    let out = run(&ws, &emulator, &["apply", "manifests", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let totals = &json(&out)["totals"];
    assert_eq!(totals["already_subscribed"], 0, "{totals}");
    assert_eq!(totals["recovered"], 1000 - confirmed, "{totals}");
    let again = json(&run(
        &ws,
        &emulator,
        &["plan", "manifests", "--format", "json"],
    ));
    assert_eq!(again["summary"]["add"], 0);
    assert_eq!(again["summary"]["drift_added"], 0);
}

#[test]
fn completions_generate_for_four_shells_and_the_man_page_renders() {
    let ws = Workspace::new();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef subsync"),
        ("fish", "complete -c subsync"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = ws.run(None, &["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(script.contains(marker), "{shell}");
        assert!(
            script.contains("apply") && script.contains("detailed-exitcode"),
            "{shell}"
        );
    }
    let version = stdout(&ws.run(None, &["--version"]));
    assert!(
        version.starts_with("subsync ") && version.contains("(git "),
        "{version}"
    );
}

#[test]
fn man_writes_a_page_for_every_command_it_refers_to_and_prints_any_one() {
    let ws = Workspace::new();
    let top = stdout(&ws.run(None, &["man"]));
    assert!(top.contains(".TH subsync 1"), "{top}");
    let dir = ws.path().join("share/man/man1");
    let out = ws.run(None, &["man", "--out-dir", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Every page a page refers to as subsync-COMMAND(1) is there.
    let mut pages = vec!["subsync".to_owned()];
    let mut checked = 0;
    while let Some(page) = pages.pop() {
        let text = std::fs::read_to_string(dir.join(format!("{page}.1")))
            .unwrap_or_else(|e| panic!("{page}.1: {e}"));
        assert!(text.contains(&format!(".TH {page} 1")), "{page}");
        assert!(text.contains("(git "), "{page}: the version is named");
        for line in text.lines() {
            if let Some(name) = line.strip_suffix("(1)") {
                pages.push(name.replace("\\-", "-"));
            }
        }
        checked += 1;
    }
    assert!(checked >= 15, "{checked} pages");
    assert!(
        stdout(&out).contains(&format!("wrote {checked} man pages into")),
        "{}",
        stdout(&out)
    );
    // One page on request, by the words of the command.
    let copy = stdout(&ws.run(None, &["man", "ledger", "copy"]));
    assert!(copy.contains(".TH subsync-ledger-copy 1"), "{copy}");
    let typo = ws.run(None, &["man", "ledger", "cpy"]);
    assert_eq!(typo.status.code(), Some(1));
    assert!(
        stderr(&typo).contains("subsync-ledger has no command \"cpy\""),
        "{}",
        stderr(&typo)
    );
}

#[test]
fn the_readme_installs_completions_and_man_pages_where_the_help_says() {
    let ws = Workspace::new();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for (command, shown) in [
        ("completions", "subsync completions bash > "),
        ("man", "subsync man --out-dir "),
    ] {
        let help = stdout(&ws.run(None, &[command, "--help"]));
        let line = help
            .lines()
            .find(|l| l.contains(shown))
            .unwrap_or_else(|| panic!("{command} --help names no install path:\n{help}"));
        let install = line[line.find(shown).unwrap()..]
            .split("  ")
            .next()
            .unwrap();
        assert!(
            readme.contains(install),
            "the README does not say `{install}` as `{command} --help` does"
        );
        let elsewhere = readme.matches(shown).count();
        assert_eq!(
            elsewhere,
            readme.matches(install).count(),
            "{shown}: said otherwise too"
        );
    }
}

#[test]
fn apply_dry_run_points_at_plan() {
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("u", 1));
    let out = ws.run(None, &["apply", "manifests", "--dry-run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("`subsync plan`"), "{}", stderr(&out));
}
