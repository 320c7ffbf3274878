//! The official account itself, declared in the manifest (`spec.account`, `spec.create`),
//! through the binary against the emulator: a full account's raised limit and its adds in one
//! run, a console edit planned back and restored, undeclared fields never sent, creation only
//! with the manifest's block and the deployment's flag (and never twice), a lowered limit
//! refused while the account holds more, and bad declarations refused before anything is sent.

use serde_json::Value;
use subsync::emulator::Emulator;
use subsync::properties::Properties;
use subsync::tencent::Api;
use subsync::tencent::api::Command;

use crate::common::{Remote, Workspace, block_on, client, ids, manifest_text, stderr, stdout};

/// A manifest for `account` listing `subscribers`, with `extra` YAML under `spec`.
fn declare(ws: &Workspace, account: &str, subscribers: &[String], extra: &str) {
    let text = manifest_text("declared", account, subscribers) + extra;
    std::fs::write(ws.manifests().join("declared.yaml"), text).unwrap();
}

fn run(ws: &Workspace, emulator: &Emulator, args: &[&str]) -> std::process::Output {
    ws.run(Some(&emulator.url()), args)
}

/// `plan --refresh --detailed-exitcode`: what the probe finds, planned.
fn plan_refreshed(ws: &Workspace, emulator: &Emulator) -> std::process::Output {
    run(
        ws,
        emulator,
        &["plan", "manifests", "--refresh", "--detailed-exitcode"],
    )
}

fn code(out: &std::process::Output) -> Option<i32> {
    out.status.code()
}

fn said(out: &std::process::Output) -> String {
    format!("{}\n{}", stdout(out), stderr(out))
}

/// An emulator with one account, limited to `max`, holding the first `held` of `ids("u", _)`.
fn holding(account: &'static str, max: u64, held: usize) -> Emulator {
    let held = ids("u", held);
    let held: Vec<&str> = held.iter().map(String::as_str).collect();
    Remote::default().account(account, max, &held).start()
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", said(out)))
}

#[test]
fn raising_a_full_accounts_limit_lets_its_adds_in_within_one_run() {
    let emulator = holding("@TOA#_full", 50, 50);
    let ws = Workspace::new();
    declare(
        &ws,
        "@TOA#_full",
        &ids("u", 80),
        "  account:\n    maxSubscribers: 80\n",
    );

    let plan = plan_refreshed(&ws, &emulator);
    assert_eq!(code(&plan), Some(2), "{}", said(&plan));
    let text = stdout(&plan);
    assert!(text.contains("~ maxSubscribers: 50 -> 80"), "{text}");
    // The limit-aware plan counts with the declared limit: the 30 adds fit.
    assert!(text.contains("1 property to change, 30 to add"), "{text}");
    assert!(!text.contains("over the limit"), "{text}");

    let out = run(&ws, &emulator, &["apply", "manifests", "--format", "json"]);
    assert_eq!(code(&out), Some(0), "{}", said(&out));
    let summary = json(&out);
    let account = &summary["accounts"][0];
    assert_eq!(account["added"], 30);
    assert_eq!(account["not_added_limit"], 0);
    assert_eq!(account["properties"]["result"], "done");
    assert_eq!(summary["totals"]["properties_set"], 1);
    let state = emulator.state();
    assert_eq!(state.accounts["@TOA#_full"].max_subscribers, 80);
    assert_eq!(state.accounts["@TOA#_full"].subscribers.len(), 80);
    let stats = emulator.stats();
    assert_eq!(stats.calls(Command::ModifyOfficialAccountBaseInfo), 1);
    assert_eq!(stats.count(Command::AddSubscriber, "130006"), 0);
}

#[test]
fn a_console_edit_is_planned_back_and_restored() {
    let emulator = Remote::default().account("@TOA#_weekly", 1000, &[]).start();
    let ws = Workspace::new();
    declare(
        &ws,
        "@TOA#_weekly",
        &ids("w", 2),
        "  account:\n    name: \"Weekly Digest\"\n",
    );
    let first = run(&ws, &emulator, &["apply", "manifests"]);
    assert_eq!(code(&first), Some(0), "{}", said(&first));
    assert!(
        stdout(&first).contains("~ name: \"weekly\" -> \"Weekly Digest\""),
        "{}",
        said(&first)
    );
    // Someone renames the account in the console, with an escape sequence in the name.
    let console = Properties {
        name: Some("Hijacked \u{1b}[31mred".into()),
        ..Properties::default()
    };
    block_on(client(&emulator).modify_account("@TOA#_weekly", &console)).unwrap();

    let plan = plan_refreshed(&ws, &emulator);
    assert_eq!(code(&plan), Some(2), "{}", said(&plan));
    let text = stdout(&plan);
    assert!(
        text.contains(
            "~ name: \"Hijacked \\u{1b}[31mred\" -> \"Weekly Digest\"   (changed outside subsync)"
        ),
        "{text}"
    );
    assert!(!said(&plan).contains('\u{1b}'), "escaped wherever printed");
    // The same value in every format: JSON as a typed change, diff as a comment line.
    let plan_json = json(&run(
        &ws,
        &emulator,
        &["plan", "manifests", "--format", "json"],
    ));
    let change = &plan_json["accounts"][0]["properties"][0];
    assert_eq!(change["field"], "name");
    assert_eq!(change["from"], "Hijacked \u{1b}[31mred");
    assert_eq!(change["to"], "Weekly Digest");
    assert_eq!(change["drift"], true);
    assert_eq!(plan_json["summary"]["needs_apply"], true);
    let diff = stdout(&run(
        &ws,
        &emulator,
        &["plan", "manifests", "--format", "diff"],
    ));
    assert!(
        diff.contains("# ~ name: \"Hijacked \\u{1b}[31mred\" -> \"Weekly Digest\""),
        "{diff}"
    );
    let md = stdout(&run(
        &ws,
        &emulator,
        &["plan", "manifests", "--format", "markdown"],
    ));
    assert!(md.contains("1 account property to change"), "{md}");

    let status = stdout(&run(&ws, &emulator, &["status"]));
    assert!(
        status
            .contains("name declared \"Weekly Digest\", live \"Hijacked \\u{1b}[31mred\" (learnt "),
        "{status}"
    );
    let out = run(&ws, &emulator, &["apply", "manifests", "--format", "json"]);
    assert_eq!(code(&out), Some(0), "{}", said(&out));
    let summary = json(&out);
    assert_eq!(summary["totals"]["property_drift"], 1);
    assert_eq!(
        emulator.state().accounts["@TOA#_weekly"].name,
        "Weekly Digest"
    );
    let status = stdout(&run(&ws, &emulator, &["status"]));
    assert!(
        status.contains("properties as declared (learnt "),
        "{status}"
    );
    let again = run(
        &ws,
        &emulator,
        &["plan", "manifests", "--detailed-exitcode"],
    );
    assert_eq!(code(&again), Some(0), "{}", said(&again));
}

#[test]
fn undeclared_fields_are_never_sent_nor_reported() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let c = client(&emulator);
    let console = Properties {
        introduction: Some("written in the console".into()),
        organization: Some("Console Org".into()),
        ..Properties::default()
    };
    block_on(c.modify_account("@TOA#_a", &console)).unwrap();
    let ws = Workspace::new();
    declare(
        &ws,
        "@TOA#_a",
        &[],
        "  account:\n    name: \"Alpha\"\n    customString: \"tier=gold\"\n",
    );
    let plan = run(&ws, &emulator, &["plan", "manifests", "--refresh"]);
    let text = stdout(&plan);
    assert!(text.contains("2 properties to change"), "{}", said(&plan));
    for undeclared in ["introduction", "organization", "faceUrl", "maxSubscribers"] {
        assert!(!text.contains(undeclared), "{undeclared} reported:\n{text}");
    }
    let out = run(&ws, &emulator, &["apply", "manifests"]);
    assert_eq!(code(&out), Some(0), "{}", said(&out));
    let state = emulator.state();
    let a = &state.accounts["@TOA#_a"];
    assert_eq!(
        (a.name.as_str(), a.custom_string.as_str()),
        ("Alpha", "tier=gold")
    );
    assert_eq!(a.introduction, "written in the console");
    assert_eq!(a.organization, "Console Org");
    assert_eq!(
        emulator
            .stats()
            .calls(Command::ModifyOfficialAccountBaseInfo),
        2
    );
}

#[test]
fn creation_needs_the_flag_is_done_with_it_and_never_twice() {
    let emulator = Remote::default().start();
    let ws = Workspace::new();
    declare(
        &ws,
        "@TOA#_launch",
        &ids("l", 3),
        "  account:\n    name: \"Launch\"\n    maxSubscribers: 500\n  create:\n    owner: \"ops-bot\"\n",
    );
    let refused = run(&ws, &emulator, &["apply", "manifests"]);
    assert_eq!(code(&refused), Some(2), "{}", said(&refused));
    assert!(
        stdout(&refused).contains("pass --allow-create (SUBSYNC_ALLOW_CREATE) to create it"),
        "{}",
        said(&refused)
    );
    assert!(emulator.state().accounts.is_empty());
    assert_eq!(emulator.stats().calls(Command::CreateOfficialAccount), 0);
    // The ledger now knows the account is missing: the plan says what the flag would do.
    let plan = stdout(&run(&ws, &emulator, &["plan", "manifests"]));
    assert!(plan.contains("pass --allow-create"), "{plan}");
    let plan = stdout(&run(
        &ws,
        &emulator,
        &["plan", "manifests", "--allow-create"],
    ));
    assert!(
        plan.contains("+ declared (@TOA#_launch): to create"),
        "{plan}"
    );
    assert!(plan.contains("    + create (owner \"ops-bot\")"), "{plan}");

    let mut created = ws.command(Some(&emulator.url()), &["apply", "manifests"]);
    let created = created
        .env("SUBSYNC_ALLOW_CREATE", "true")
        .output()
        .unwrap();
    assert_eq!(code(&created), Some(0), "{}", said(&created));
    let state = emulator.state();
    let account = &state.accounts["@TOA#_launch"];
    assert_eq!(
        (account.name.as_str(), account.owner.as_str()),
        ("Launch", "ops-bot")
    );
    assert_eq!(
        (account.max_subscribers, account.subscribers.len()),
        (500, 3)
    );
    let again = run(&ws, &emulator, &["apply", "manifests", "--allow-create"]);
    assert_eq!(code(&again), Some(0), "{}", said(&again));
    assert_eq!(emulator.stats().calls(Command::CreateOfficialAccount), 1);
    // subsync never destroys an account: its manifest gone, the account stays.
    std::fs::remove_file(ws.manifests().join("declared.yaml")).unwrap();
    ws.manifest("other", "@TOA#_launch-other", &[]);
    run(&ws, &emulator, &["apply", "manifests"]);
    assert!(emulator.state().accounts.contains_key("@TOA#_launch"));
}

#[test]
fn a_lowered_limit_below_the_count_is_refused_with_the_numbers() {
    let emulator = holding("@TOA#_a", 100, 60);
    let ws = Workspace::new();
    declare(
        &ws,
        "@TOA#_a",
        &ids("u", 60),
        "  account:\n    maxSubscribers: 50\n",
    );
    let plan = plan_refreshed(&ws, &emulator);
    assert_eq!(code(&plan), Some(2), "{}", said(&plan));
    let text = stdout(&plan);
    assert!(
        text.contains("maxSubscribers 50 is below the 60 subscribers the account holds; remove subscribers first"),
        "{text}"
    );
    let out = run(&ws, &emulator, &["apply", "manifests"]);
    assert_eq!(code(&out), Some(2), "{}", said(&out));
    assert_eq!(emulator.state().accounts["@TOA#_a"].max_subscribers, 100);
    assert_eq!(
        emulator
            .stats()
            .calls(Command::ModifyOfficialAccountBaseInfo),
        0
    );
}

#[test]
fn a_bad_declaration_is_refused_with_its_place_and_nothing_is_sent() {
    let emulator = Remote::default().account("@TOA#_a", 100, &[]).start();
    let ws = Workspace::new();
    declare(
        &ws,
        "@TOA#_a",
        &[],
        "  account:\n    faceUrl: \"javascript:alert(1)\"\n",
    );
    let out = run(&ws, &emulator, &["apply", "manifests", "--allow-create"]);
    assert_eq!(code(&out), Some(1), "{}", said(&out));
    assert!(
        stderr(&out).contains("declared.yaml:9:14: spec.account.faceUrl"),
        "{}",
        said(&out)
    );
    // Not UTF-8 inside a value: the place of the first bad byte.
    let mut bytes = manifest_text("declared", "@TOA#_a", &[]).into_bytes();
    bytes.extend_from_slice(b"  account:\n    name: \"Caf\xe9\"\n");
    std::fs::write(ws.manifests().join("declared.yaml"), bytes).unwrap();
    let out = run(&ws, &emulator, &["apply", "manifests"]);
    assert_eq!(code(&out), Some(1), "{}", said(&out));
    assert!(
        stderr(&out).contains("declared.yaml:9:15: not UTF-8 text here"),
        "{}",
        said(&out)
    );
    assert_eq!(emulator.stats().requests, 0);
}

#[test]
fn watch_tells_a_console_edit_as_drift_and_sets_it_back() {
    use crate::common::daemon::start;
    use crate::common::wait_for;
    use subsync::testing::Receiver;
    let emulator = Remote::default().account("@TOA#_weekly", 1000, &[]).start();
    let hook = block_on(Receiver::start());
    let ws = Workspace::new();
    declare(
        &ws,
        "@TOA#_weekly",
        &[],
        "  account:\n    name: \"Weekly Digest\"\n",
    );
    std::fs::write(
        ws.path().join("notify.yaml"),
        format!(
            "sinks:\n- {{name: hook, type: webhook, url: '{}/hook'}}\n",
            hook.url()
        ),
    )
    .unwrap();
    let daemon = start(
        &ws,
        &emulator,
        &ws.manifests(),
        &[
            "--resync",
            "1s",
            "--refresh-every",
            "1s",
            "--notify-config",
            "notify.yaml",
        ],
    );
    let name = || emulator.state().accounts["@TOA#_weekly"].name.clone();
    wait_for("the declared name", || name() == "Weekly Digest");
    let console = Properties {
        name: Some("Console".into()),
        ..Properties::default()
    };
    block_on(client(&emulator).modify_account("@TOA#_weekly", &console)).unwrap();
    let events = || -> Vec<Value> { hook.received().iter().map(|r| r.json()).collect() };
    wait_for("the drift to be told", || {
        events().iter().any(|e| e["event"] == "drift")
    });
    wait_for("the name to be set back", || name() == "Weekly Digest");
    let drift = events()
        .into_iter()
        .find(|e| e["event"] == "drift")
        .unwrap();
    assert_eq!(drift["account"], "@TOA#_weekly");
    assert!(
        drift["text"]
            .as_str()
            .unwrap()
            .contains("name changed outside subsync and set back"),
        "{drift}"
    );
    let key = "subsync_drift_total{account=\"@TOA#_weekly\",direction=\"property\"}";
    wait_for("the drift metric", || daemon.metric(key) == Some(1.0));
    let set = daemon.metric("subsync_account_properties_set_total{account=\"@TOA#_weekly\"}");
    assert_eq!(set, Some(2.0), "set, then set back");
}
