//! A ledger written by an earlier release (`tests/fixtures/ledger-f3e6df1`, schema version 3,
//! made by the binary at f3e6df1; its README says how) still opens and migrates: readers
//! refuse it until it is upgraded (naming `ledger migrate`, leaving the file alone), then
//! `status` prints what that release printed, and plans and applies go on from it, the
//! account's own properties (schema version 4) included.

use std::path::{Path, PathBuf};

use crate::common::{Remote, Workspace, stderr, stdout};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ledger-f3e6df1")
}

/// A copy of the fixture ledger as `ws`'s state directory.
fn install(ws: &Workspace) -> PathBuf {
    let state = ws.state();
    std::fs::create_dir_all(&state).unwrap();
    std::fs::copy(fixture().join("ledger.db"), state.join("ledger.db")).unwrap();
    state
}

fn expected(name: &str, ledger: &Path) -> String {
    std::fs::read_to_string(fixture().join(name))
        .unwrap()
        .replace("LEDGER", &ledger.join("ledger.db").display().to_string())
}

/// `ledger migrate` on `ws`'s ledger: to this build's schema version.
fn migrate(ws: &Workspace) {
    let migrated = ws.run(None, &["ledger", "migrate"]);
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    let said = stdout(&migrated);
    let version = format!("schema version {}", subsync::ledger::SCHEMA_VERSION);
    assert!(said.contains(&version), "{said}");
}

#[test]
fn status_reads_an_earlier_releases_ledger_as_that_release_did_once_migrated() {
    let ws = Workspace::new();
    let state = install(&ws);
    // A reader does not upgrade a ledger: it says how, and leaves the file as it was.
    let refused = ws.run(None, &["status"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let why = stderr(&refused);
    assert!(why.contains("schema version 3"), "{why}");
    assert!(why.contains("subsync ledger migrate"), "{why}");
    let bytes = |path: PathBuf| std::fs::read(path).unwrap();
    assert!(bytes(state.join("ledger.db")) == bytes(fixture().join("ledger.db")));

    migrate(&ws);
    let text = ws.run(None, &["status"]);
    assert!(text.status.success(), "{}", stderr(&text));
    assert_eq!(stdout(&text), expected("status.txt", &state));
    let json = ws.run(None, &["status", "--format", "json"]);
    assert!(json.status.success(), "{}", stderr(&json));
    let got: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let mut want: serde_json::Value =
        serde_json::from_str(&expected("status.json", &state)).unwrap();
    // Summaries are read typed and shown in this build's format: the totals added since that
    // release (issue 24's) are there, and 0, for the runs that predate them. Everything that
    // release printed is printed the same.
    for run in want["runs"].as_array_mut().unwrap() {
        if let Some(totals) = run.pointer_mut("/summary/totals") {
            for added in ["properties_set", "property_drift", "created"] {
                totals[added] = 0.into();
            }
        }
    }
    assert_eq!(got, want);
}

#[test]
fn an_earlier_releases_ledger_migrates_and_the_next_apply_goes_on_from_it() {
    let ws = Workspace::new();
    let state = install(&ws);
    migrate(&ws);
    // What the fixture's ledger confirms is not sent again; what it lacks is.
    let emulator = Remote::default()
        .account(
            "@TOA#_drift",
            100,
            &["alice", "bob", "dave", "shared", "walk-in"],
        )
        .start();
    let list: Vec<String> = ["alice", "bob", "dave", "shared", "zoe"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    ws.manifest("drift", "@TOA#_drift", &list);
    // The account's own name, declared: kept in the table the migration added.
    let manifest = ws.manifests().join("drift.yaml");
    let declared =
        std::fs::read_to_string(&manifest).unwrap() + "  account:\n    name: Drift desk\n";
    std::fs::write(&manifest, declared).unwrap();
    let url = emulator.url();
    let plan = ws.run(Some(&url), &["plan", "manifests", "--format", "json"]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let drift = plan["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["official_account"] == "@TOA#_drift")
        .unwrap();
    assert_eq!(drift["add"], serde_json::json!(["zoe"]));
    let applied = ws.run(Some(&url), &["apply", "manifests"]);
    assert!(applied.status.success(), "{}", stderr(&applied));
    let status = stdout(&ws.run(None, &["status"]));
    assert!(status.contains("#4 apply"), "{status}");
    assert!(status.contains("#3 apply"), "{status}");
    assert!(
        status.contains("properties as declared (learnt "),
        "{status}"
    );
    let json = ws.run(None, &["status", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let account = json["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["official_account"] == "@TOA#_drift")
        .unwrap();
    assert_eq!(account["properties"]["declared"]["name"], "Drift desk");
    assert!(state.join("ledger.db").exists());
}
