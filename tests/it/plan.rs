//! `plan` and `status` through the CLI: formats, the saved plan, exit codes, and that reading
//! never writes, never blocks on a writer, and never mistakes a damaged ledger for an empty one.

use std::path::Path;

use crate::common::{Workspace, ids, stderr, stdout};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/manifests");

fn plan_schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/plan.schema.json"
    ))
    .unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

#[test]
fn the_example_plan_in_json_matches_the_schema() {
    let ws = Workspace::new();
    let out = ws.run(None, &["plan", EXAMPLES, "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors: Vec<String> = plan_schema()
        .iter_errors(&plan)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(plan["format_version"], "1");
    assert_eq!(plan["summary"]["add"], 1357);
    assert_eq!(plan["summary"]["accounts_changed"], 5);
    assert!(
        plan["manifest_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(plan["lineage"], serde_json::Value::Null);
}

#[test]
fn plan_and_validate_never_create_the_ledger() {
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("u", 3));
    assert!(ws.run(None, &["plan", "manifests"]).status.success());
    assert!(ws.run(None, &["validate", "manifests"]).status.success());
    assert!(ws.run(None, &["status"]).status.success());
    assert!(!ws.state().exists());
}

#[test]
fn detailed_exitcode_says_two_when_there_are_changes() {
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("u", 3));
    assert_eq!(
        ws.run(None, &["plan", "manifests", "--detailed-exitcode"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(ws.run(None, &["plan", "manifests"]).status.code(), Some(0));
}

#[test]
fn out_saves_the_json_plan_whatever_the_display_format() {
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("u", 3));
    let out = ws.run(
        None,
        &[
            "plan",
            "manifests",
            "--format",
            "markdown",
            "--out",
            "plan.json",
        ],
    );
    assert!(
        stdout(&out).starts_with("### subsync plan"),
        "{}",
        stdout(&out)
    );
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ws.path().join("plan.json")).unwrap()).unwrap();
    assert_eq!(
        saved["accounts"][0]["add"],
        serde_json::json!(["u00000", "u00001", "u00002"])
    );
    assert_eq!(saved["manifest_paths"], serde_json::json!(["manifests"]));
}

#[test]
fn out_refuses_a_fifo_or_a_link_to_a_device_and_leaves_it_as_it_was() {
    use std::os::unix::fs::FileTypeExt;
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("u", 3));
    let pipe = ws.path().join("pipe");
    let status = std::process::Command::new("mkfifo")
        .arg(&pipe)
        .status()
        .unwrap();
    assert!(status.success());
    // A link in the workspace to the null device: never /dev/null itself.
    let device = ws.path().join("null");
    std::os::unix::fs::symlink("/dev/null", &device).unwrap();
    for (target, what) in [
        (&pipe, "a named pipe (FIFO)"),
        (&device, "a character device"),
    ] {
        let out = ws.run(
            None,
            &["plan", "manifests", "--out", target.to_str().unwrap()],
        );
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("cannot write the plan to {}", target.display()))
                && err.contains(what)
                && err.contains("name a regular file"),
            "{err}"
        );
    }
    assert!(
        std::fs::symlink_metadata(&pipe)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert!(
        std::fs::symlink_metadata(&device)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert!(
        !ws.path().join("state").exists(),
        "a refused plan created a ledger"
    );
}

#[test]
fn out_dash_prints_the_json_plan_on_stdout_and_writes_no_file() {
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("u", 3));
    let out = ws.run(None, &["plan", "manifests", "--out", "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        plan["accounts"][0]["add"],
        serde_json::json!(["u00000", "u00001", "u00002"])
    );
    assert!(!ws.path().join("-").exists());
    let out = ws.run(
        None,
        &["plan", "manifests", "--format", "markdown", "--out", "-"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--out - prints the JSON plan on stdout, where --format markdown"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_diff_format_lists_each_accounts_changes() {
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("u", 2));
    let out = ws.run(None, &["plan", "manifests", "--format", "diff"]);
    assert_eq!(
        stdout(&out),
        "--- ledger/@TOA#_a\n+++ manifests/@TOA#_a (a)\n@@ 0 to remove, 2 to add @@\n+u00000\n+u00001\n"
    );
}

#[test]
fn a_corrupt_ledger_is_reported_with_its_path_and_left_alone() {
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("u", 2));
    std::fs::create_dir_all(ws.state()).unwrap();
    let db = ws.state().join("ledger.db");
    let junk = vec![0x42u8; 8192];
    std::fs::write(&db, &junk).unwrap();
    for args in [
        &["plan", "manifests"][..],
        &["status"][..],
        &["apply", "manifests"][..],
    ] {
        let out = ws.run(Some("http://127.0.0.1:9"), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains("corrupt") && err.contains(&db.display().to_string()),
            "{args:?}: {err}"
        );
    }
    assert_eq!(std::fs::read(&db).unwrap(), junk);
}

#[test]
fn a_foreign_sqlite_file_is_not_taken_for_a_ledger() {
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("u", 2));
    std::fs::create_dir_all(ws.state()).unwrap();
    rusqlite::Connection::open(ws.state().join("ledger.db"))
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let out = ws.run(None, &["plan", "manifests"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not a subsync ledger"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn plan_reads_while_a_writer_holds_the_lock() {
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("u", 2));
    let confirmed = subsync::ledger::Record::Batch {
        account: "@TOA#_a".into(),
        op: subsync::ledger::Op::Add,
        done: vec!["u00000".into()],
        unchanged: vec![],
        failed: vec![],
    };
    let writer = crate::common::ledger::hold(ws.state(), "apply", vec![confirmed]);
    let out = ws.run(None, &["plan", "manifests", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["accounts"][0]["add"], serde_json::json!(["u00001"]));
    drop(writer);
}

#[test]
fn status_without_a_ledger_says_so() {
    let ws = Workspace::new();
    let out = ws.run(None, &["status"]);
    assert!(stdout(&out).starts_with("No ledger at"), "{}", stdout(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&ws.run(None, &["status", "--format", "json"]).stdout).unwrap();
    assert_eq!(json["exists"], false);
    assert!(!Path::new(&ws.state()).exists());
}

#[test]
fn an_accepted_shortfall_is_counted_alike_in_every_format_and_never_called_no_changes() {
    let emulator = crate::common::Remote::default()
        .account("@TOA#_full", 3, &[])
        .start();
    let ws = Workspace::new();
    let text = crate::common::manifest_text("full", "@TOA#_full", &ids("f", 5));
    std::fs::write(
        ws.manifests().join("full.yaml"),
        text + "  acceptShortfall: true\n",
    )
    .unwrap();
    let run = |args: &[&str]| ws.run(Some(&emulator.url()), args);
    let first = run(&["apply", "manifests"]);
    assert_eq!(first.status.code(), Some(0), "{}", stdout(&first));

    let out = run(&["plan", "manifests", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("~ full (@TOA#_full): 2 to add, 2 over the limit, accepted"),
        "{text}"
    );
    assert!(
        text.contains(
            "Plan: 2 to add, 0 to remove, 2 over a known limit (accepted); 1 of 1 account changed."
        ),
        "{text}"
    );
    let verdict = "Nothing to send: the 2 adds are over a known MaxSubscriberNum, a shortfall the manifests accept (acceptShortfall: true)";
    assert!(text.contains(verdict), "{text}");
    assert!(!text.contains("No changes"), "{text}");

    let json: serde_json::Value =
        serde_json::from_slice(&run(&["plan", "manifests", "--format", "json"]).stdout).unwrap();
    let summary = &json["summary"];
    assert_eq!(
        (
            &json["accounts"][0]["over_limit"],
            &summary["over_limit"],
            &summary["over_limit_accepted"],
            &summary["needs_apply"]
        ),
        (&2.into(), &2.into(), &2.into(), &false.into()),
        "{summary}"
    );

    let markdown = stdout(&run(&["plan", "manifests", "--format", "markdown"]));
    assert!(markdown.contains(verdict), "{markdown}");
    assert!(!markdown.contains("No changes"), "{markdown}");
}
