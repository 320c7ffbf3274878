//! Remote drift against the emulator: `--refresh` seeing out-of-band changes in both
//! directions, `import` adopting a paged account, prune within its guards and each guard
//! refusing, a vanished manifest, an account missing remotely, and broken cursors.

use crate::common::{Remote, Workspace, block_on, client, ids, remote_subscribers, stderr, stdout};
use serde_json::Value;
use subsync::emulator::{CursorFault, Emulator};
use subsync::tencent::Api;
use subsync::tencent::api::Command;

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(out), stderr(out)))
}

fn account<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["official_account"] == id)
        .unwrap_or_else(|| panic!("no {id} in {v}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn pruned_manifest(ws: &Workspace, name: &str, account: &str, subscribers: &[String], extra: &str) {
    let list: Vec<String> = subscribers.iter().map(|s| format!("\"{s}\"")).collect();
    let text = format!(
        "apiVersion: subsync/v1\nkind: SubscriberSet\nmetadata:\n  name: {name}\nspec:\n  officialAccount: \"{account}\"\n  subscribers: [{}]\n  prune: true\n{extra}",
        list.join(", ")
    );
    std::fs::write(ws.manifests().join(format!("{name}.yaml")), text).unwrap();
}

fn run(ws: &Workspace, emulator: &Emulator, args: &[&str]) -> std::process::Output {
    ws.run(Some(&emulator.url()), args)
}

/// Applies `ws`'s manifests and checks that they converged.
fn converge(ws: &Workspace, emulator: &Emulator) {
    let out = run(ws, emulator, &["apply", "manifests"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn a_refresh_sees_out_of_band_changes_in_both_directions() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 5));
    converge(&ws, &emulator);
    // Out of band: two wanted subscribers leave; two strangers and one wanted one arrive.
    let c = client(&emulator);
    block_on(c.delete_subscriber("@TOA#_a", &ids("a", 2))).unwrap();
    let arrivals = vec!["a00005".to_string(), "walk-in-1".into(), "walk-in-2".into()];
    block_on(c.add_subscriber("@TOA#_a", &arrivals)).unwrap();
    ws.manifest("a", "@TOA#_a", &ids("a", 6));

    let out = run(
        &ws,
        &emulator,
        &["plan", "manifests", "--refresh", "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan = json(&out);
    let a = account(&plan, "@TOA#_a");
    assert_eq!(
        strings(&a["drift"]["out_of_band_added"]),
        ["a00005", "walk-in-1", "walk-in-2"]
    );
    assert_eq!(
        strings(&a["drift"]["out_of_band_removed"]),
        ["a00000", "a00001"]
    );
    // Removed desired subscribers go back into add; the wanted arrival is adopted; the
    // strangers are unmanaged.
    assert_eq!(strings(&a["add"]), ["a00000", "a00001"]);
    assert_eq!(strings(&a["unmanaged"]), ["walk-in-1", "walk-in-2"]);
    assert_eq!(plan["summary"]["drift_added"], 3);
    assert_eq!(plan["summary"]["drift_removed"], 2);
    assert_eq!(
        emulator.stats().calls(Command::AddSubscriber),
        2,
        "a plan changes nothing"
    );

    // The refresh is in the ledger: a plain plan sees it, in every format.
    let text = stdout(&run(&ws, &emulator, &["plan", "manifests"]));
    assert!(text.contains("2 to add, 2 unmanaged"), "{text}");
    assert!(
        text.contains("3 added out of band, 2 removed out of band"),
        "{text}"
    );
    assert!(text.contains("      > walk-in-1"), "{text}");
    let md = stdout(&run(
        &ws,
        &emulator,
        &["plan", "manifests", "--format", "markdown"],
    ));
    assert!(
        md.contains("Drift at the last refresh: 3 added out of band, 2 removed out of band"),
        "{md}"
    );
    assert!(md.contains("| +3 −2 |"), "{md}");

    // apply --refresh repairs the removals and reports the refresh.
    let out = run(
        &ws,
        &emulator,
        &["apply", "manifests", "--refresh", "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = json(&out);
    assert_eq!(summary["totals"]["added"], 2);
    assert_eq!(summary["refresh"]["accounts"], 1);
    assert_eq!(summary["refresh"]["seen"], 6);
    let mut expected = ids("a", 6);
    expected.extend(["walk-in-1".to_string(), "walk-in-2".into()]);
    expected.sort();
    assert_eq!(remote_subscribers(&emulator, "@TOA#_a"), expected);
}

#[test]
fn import_adopts_a_paged_account_without_changing_it() {
    let existing = ids("u", 450);
    let refs: Vec<&str> = existing.iter().map(String::as_str).collect();
    let emulator = Remote::default().account("@TOA#_old", 1000, &refs).start();
    let ws = Workspace::new();
    ws.manifest("old", "@TOA#_old", &ids("u", 400));
    let out = run(&ws, &emulator, &["import", "manifests"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Imported the live lists of 1 account (450 subscribers seen)"),
        "{text}"
    );
    assert!(
        text.contains("old (@TOA#_old): 450 adopted, 0 gone remotely; 450 confirmed now, 400 the manifest lists, 50 it does not (prune: true would remove them)"),
        "{text}"
    );
    // Three pages of 200, and no change.
    assert_eq!(emulator.stats().calls(Command::GetSubscriberInfo), 3);
    assert_eq!(emulator.stats().calls(Command::AddSubscriber), 0);
    // Adopted: the next apply has nothing to send.
    let out = run(&ws, &emulator, &["apply", "manifests", "--format", "json"]);
    assert_eq!(json(&out)["totals"]["added"], 0);
    assert_eq!(emulator.stats().calls(Command::AddSubscriber), 0);
    let runs = crate::common::ledger::runs(ws.state(), 5);
    assert!(
        runs.iter()
            .any(|r| r.command == "import"
                && r.result == Some(subsync::ledger::RunOutcome::Refreshed))
    );
}

/// An account holding "stranger" from before subsync, and a pruned manifest listing `listed`
/// others, applied with --refresh: the stranger is confirmed, and out of band.
fn a_stranger_seen_out_of_band(listed: usize) -> (Emulator, Workspace) {
    let emulator = Remote::default()
        .account("@TOA#_a", 1000, &["stranger"])
        .start();
    let ws = Workspace::new();
    pruned_manifest(&ws, "a", "@TOA#_a", &ids("a", listed), "");
    let out = run(&ws, &emulator, &["apply", "manifests", "--refresh"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    (emulator, ws)
}

#[test]
fn import_says_prune_keeps_a_subscriber_a_refresh_saw_out_of_band() {
    let (emulator, ws) = a_stranger_seen_out_of_band(2);
    let out = run(&ws, &emulator, &["import", "manifests"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("3 confirmed now, 2 the manifest lists, 1 it does not (it was seen out of band before this import, which prune removes only with pruneOutOfBand: true)"),
        "{text}"
    );
    // The hint is what the plan does.
    let plan = json(&run(
        &ws,
        &emulator,
        &["plan", "manifests", "--format", "json"],
    ));
    let a = account(&plan, "@TOA#_a");
    assert_eq!(strings(&a["remove"]), Vec::<String>::new());
    assert_eq!(strings(&a["unmanaged"]), ["stranger"]);
    let out = run(&ws, &emulator, &["import", "manifests", "--format", "json"]);
    let imported = account(&json(&out), "@TOA#_a").clone();
    assert_eq!(
        (&imported["not_listed"], &imported["out_of_band"]),
        (&1.into(), &1.into()),
        "{imported}"
    );
}

#[test]
fn prune_removes_what_the_manifest_no_longer_lists() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let ws = Workspace::new();
    pruned_manifest(&ws, "a", "@TOA#_a", &ids("a", 10), "");
    converge(&ws, &emulator);
    pruned_manifest(&ws, "a", "@TOA#_a", &ids("a", 7), "");
    let plan = stdout(&run(&ws, &emulator, &["plan", "manifests"]));
    let removals = plan.find("- a00007").unwrap();
    assert!(plan.contains("3 to remove"), "{plan}");
    assert!(removals < plan.find("Plan:").unwrap(), "{plan}");
    let out = run(&ws, &emulator, &["apply", "manifests", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = json(&out);
    assert_eq!(account(&summary, "@TOA#_a")["removed"], 3);
    assert_eq!(summary["totals"]["removed"], 3);
    assert_eq!(remote_subscribers(&emulator, "@TOA#_a"), ids("a", 7));
    assert_eq!(emulator.stats().calls(Command::DeleteSubscriber), 1);
    // Removed subscribers are no longer confirmed: nothing more to do.
    let again = json(&run(
        &ws,
        &emulator,
        &["plan", "manifests", "--format", "json"],
    ));
    assert_eq!(again["summary"]["remove"], 0);
}

#[test]
fn a_pre_existing_subscriber_survives_prune_until_the_set_opts_in() {
    let emulator = Remote::default()
        .account("@TOA#_a", 1000, &["stranger"])
        .start();
    let ws = Workspace::new();
    pruned_manifest(&ws, "a", "@TOA#_a", &ids("a", 2), "");
    let out = run(
        &ws,
        &emulator,
        &["apply", "manifests", "--refresh", "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(account(&json(&out), "@TOA#_a")["removed"], 0);
    let mut expected = ids("a", 2);
    expected.push("stranger".into());
    assert_eq!(remote_subscribers(&emulator, "@TOA#_a"), expected);
    // Seen, reported, and left alone: subsync never managed it.
    let plan = json(&run(
        &ws,
        &emulator,
        &["plan", "manifests", "--format", "json"],
    ));
    let a = account(&plan, "@TOA#_a");
    assert_eq!(strings(&a["unmanaged"]), ["stranger"]);
    assert_eq!(a["out_of_band_kept"], 1);
    assert_eq!(strings(&a["drift"]["out_of_band_added"]), ["stranger"]);
    assert!(
        a["warnings"][0]
            .as_str()
            .unwrap()
            .contains("pruneOutOfBand"),
        "{a}"
    );
    // A second apply still leaves it.
    converge(&ws, &emulator);
    assert!(remote_subscribers(&emulator, "@TOA#_a").contains(&"stranger".to_string()));
    assert_eq!(emulator.stats().calls(Command::DeleteSubscriber), 0);

    pruned_manifest(
        &ws,
        "a",
        "@TOA#_a",
        &ids("a", 2),
        "  pruneOutOfBand: true\n",
    );
    let out = run(&ws, &emulator, &["apply", "manifests", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(account(&json(&out), "@TOA#_a")["removed"], 1);
    assert_eq!(remote_subscribers(&emulator, "@TOA#_a"), ids("a", 2));
    let plan = json(&run(
        &ws,
        &emulator,
        &["plan", "manifests", "--format", "json"],
    ));
    let a = account(&plan, "@TOA#_a");
    assert!(
        a["drift"]["out_of_band_added"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{a}"
    );
    assert_eq!(strings(&a["drift"]["repaired"]), ["stranger"]);
}

#[test]
fn a_subscriber_listed_once_is_managed_and_pruned_when_dropped() {
    let (emulator, ws) = a_stranger_seen_out_of_band(4);
    // Listing it makes it subsync's; dropping it again prunes it.
    let mut listed = ids("a", 4);
    listed.push("stranger".into());
    pruned_manifest(&ws, "a", "@TOA#_a", &listed, "");
    converge(&ws, &emulator);
    pruned_manifest(&ws, "a", "@TOA#_a", &ids("a", 4), "");
    let out = run(&ws, &emulator, &["apply", "manifests", "--format", "json"]);
    assert_eq!(
        account(&json(&out), "@TOA#_a")["removed"],
        1,
        "{}",
        stderr(&out)
    );
    assert_eq!(remote_subscribers(&emulator, "@TOA#_a"), ids("a", 4));
}

#[test]
fn pruning_to_an_empty_set_needs_allow_empty() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let ws = Workspace::new();
    pruned_manifest(&ws, "a", "@TOA#_a", &ids("a", 3), "");
    converge(&ws, &emulator);
    pruned_manifest(&ws, "a", "@TOA#_a", &[], "");
    let out = run(&ws, &emulator, &["apply", "manifests", "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "held back, so not converged: {}",
        stderr(&out)
    );
    assert_eq!(account(&json(&out), "@TOA#_a")["remove_skipped"], 3);
    assert_eq!(
        remote_subscribers(&emulator, "@TOA#_a").len(),
        3,
        "nothing removed"
    );
    let plan = stdout(&run(&ws, &emulator, &["plan", "manifests"]));
    assert!(plan.contains("set allowEmpty: true"), "{plan}");

    // allowEmpty consents to an empty account; emptying it in one run is still a mass prune.
    pruned_manifest(&ws, "a", "@TOA#_a", &[], "  allowEmpty: true\n");
    let out = run(&ws, &emulator, &["apply", "manifests"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(remote_subscribers(&emulator, "@TOA#_a").len(), 3);
    let out = run(
        &ws,
        &emulator,
        &["apply", "manifests", "--allow-mass-prune"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(remote_subscribers(&emulator, "@TOA#_a").is_empty());
}

#[test]
fn a_mass_prune_needs_allow_mass_prune() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let ws = Workspace::new();
    pruned_manifest(&ws, "a", "@TOA#_a", &ids("a", 300), "");
    converge(&ws, &emulator);
    // 150 removals from 300 confirmed: more than the default max(100, 10%).
    pruned_manifest(&ws, "a", "@TOA#_a", &ids("a", 150), "");
    let plan = json(&run(
        &ws,
        &emulator,
        &["plan", "manifests", "--format", "json"],
    ));
    let a = account(&plan, "@TOA#_a");
    assert_eq!(
        (
            a["remove"].as_array().unwrap().len(),
            a["held_back"].as_u64()
        ),
        (0, Some(150))
    );
    assert!(
        a["warnings"][0]
            .as_str()
            .unwrap()
            .contains("more than 100 (--max-prune"),
        "{a}"
    );
    let out = run(&ws, &emulator, &["apply", "manifests"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(remote_subscribers(&emulator, "@TOA#_a").len(), 300);
    assert_eq!(emulator.stats().calls(Command::DeleteSubscriber), 0);
    // A lower limit holds back even a small prune; the flag lifts the limit.
    let small = run(
        &ws,
        &emulator,
        &["plan", "manifests", "--max-prune", "10", "--format", "json"],
    );
    assert_eq!(account(&json(&small), "@TOA#_a")["held_back"], 150);
    let out = run(
        &ws,
        &emulator,
        &["apply", "manifests", "--allow-mass-prune"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(remote_subscribers(&emulator, "@TOA#_a"), ids("a", 150));
}

#[test]
fn an_account_whose_manifest_vanished_is_orphaned_never_pruned() {
    let emulator = Remote::default()
        .account("@TOA#_a", 1000, &[])
        .account("@TOA#_b", 1000, &[])
        .start();
    let ws = Workspace::new();
    pruned_manifest(&ws, "a", "@TOA#_a", &ids("a", 2), "");
    pruned_manifest(&ws, "b", "@TOA#_b", &ids("b", 2), "");
    converge(&ws, &emulator);
    std::fs::remove_file(ws.manifests().join("b.yaml")).unwrap();
    let plan = json(&run(
        &ws,
        &emulator,
        &["plan", "manifests", "--format", "json"],
    ));
    let b = account(&plan, "@TOA#_b");
    assert!(b["name"].is_null() && b["remove"].as_array().unwrap().is_empty());
    assert!(
        b["warnings"][0].as_str().unwrap().starts_with("orphaned"),
        "{b}"
    );
    let out = run(
        &ws,
        &emulator,
        &["apply", "manifests", "--allow-mass-prune"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(remote_subscribers(&emulator, "@TOA#_b"), ids("b", 2));
}

#[test]
fn an_account_missing_remotely_is_reported_and_never_pruned() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 1));
    pruned_manifest(&ws, "gone", "@TOA#_gone", &[], "  allowEmpty: true\n");
    let out = run(&ws, &emulator, &["import", "manifests"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "gone (@TOA#_gone): not imported: the account does not exist remotely (error 130004)"
        ),
        "{}",
        stdout(&out)
    );
    let plan = json(&run(
        &ws,
        &emulator,
        &["plan", "manifests", "--format", "json"],
    ));
    let gone = account(&plan, "@TOA#_gone");
    assert!(gone["remove"].as_array().unwrap().is_empty());
    assert_eq!(emulator.stats().calls(Command::DeleteSubscriber), 0);
}

#[test]
fn a_broken_cursor_stops_that_accounts_refresh_and_changes_nothing() {
    for fault in [
        CursorFault::Repeat,
        CursorFault::Backwards,
        CursorFault::Endless,
    ] {
        let existing = ids("u", 650);
        let refs: Vec<&str> = existing.iter().map(String::as_str).collect();
        let emulator = Remote::default()
            .cursor_fault(fault)
            .account("@TOA#_a", 1000, &refs)
            .start();
        let ws = Workspace::new();
        ws.manifest("a", "@TOA#_a", &ids("u", 10));
        let out = run(&ws, &emulator, &["import", "manifests", "--format", "json"]);
        assert_eq!(out.status.code(), Some(2), "{fault:?}: {}", stderr(&out));
        let report = json(&out);
        let error = report["refresh"]["failed"][0]["error"]
            .as_str()
            .unwrap()
            .to_owned();
        let expected = match fault {
            // Each new cursor lists the last page again: the list outgrows the account.
            CursorFault::Endless => "goes past 1000 subscribers",
            _ => "came back a second time",
        };
        assert!(error.contains(expected), "{fault:?}: {error}");
        assert!(error.contains("nothing was changed"), "{error}");
        let snapshot = crate::common::ledger::snapshot(ws.state());
        assert!(
            snapshot
                .accounts
                .get("@TOA#_a")
                .is_none_or(|a| a.confirmed.is_empty()),
            "{fault:?}: a broken refresh must not adopt anything"
        );
    }
}
