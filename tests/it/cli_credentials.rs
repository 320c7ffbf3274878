//! The `usersig` command, credential handling at the command line, and secrecy of the key and
//! UserSigs in everything subsync prints, even at trace verbosity.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::common::{KEY, SDKAPPID, Workspace, stderr, stdout};
use subsync::tencent::usersig::{self, SecretKey};

#[test]
fn verify_accepts_what_usersig_prints() {
    let ws = Workspace::new();
    let out = ws.run(None, &["usersig", "--expire", "600"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sig = stdout(&out).trim().to_owned();
    let verified = ws.run(None, &["usersig", "verify", &sig]);
    assert_eq!(verified.status.code(), Some(0), "{}", stderr(&verified));
    assert!(stdout(&verified).contains(&format!(
        "SDKAppID {SDKAPPID}, identifier \"administrator\""
    )));
    let decoded = ws.run(None, &["usersig", "decode", &sig]);
    let json: serde_json::Value = serde_json::from_slice(&decoded.stdout).unwrap();
    assert_eq!(
        (json["TLS.ver"].as_str(), json["TLS.expire"].as_i64()),
        (Some("2.0"), Some(600))
    );
}

#[test]
fn verify_rejects_a_usersig_signed_with_another_key() {
    let ws = Workspace::new();
    let foreign = usersig::generate(
        &SecretKey::new("some-other-key").unwrap(),
        SDKAPPID,
        "administrator",
        subsync::clock::unix_now() as i64,
        600,
    );
    let out = ws.run(None, &["usersig", "verify", foreign.as_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("signed with another secret key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn verify_names_the_identifier_mismatch() {
    let ws = Workspace::new();
    let sig = stdout(&ws.run(None, &["usersig", "--identifier", "ops"]))
        .trim()
        .to_owned();
    let out = ws.run(None, &["usersig", "verify", &sig]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("identifier \"ops\", not \"administrator\""),
        "{}",
        stderr(&out)
    );
}

fn single_error_line(out: &std::process::Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    let err = stderr(out);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one sentence expected: {err}"
    );
    assert!(err.starts_with("error: "), "{err}");
    err
}

#[test]
fn a_missing_key_file_is_one_clear_sentence() {
    let ws = Workspace::new();
    let out = ws
        .command(None, &["usersig"])
        .env("SUBSYNC_SECRET_KEY_FILE", ws.path().join("nope.key"))
        .output()
        .unwrap();
    let err = single_error_line(&out);
    assert!(
        err.contains("nope.key") && err.contains("--secret-key-file"),
        "{err}"
    );
}

#[test]
fn the_key_can_come_from_the_environment_instead_of_a_file() {
    let ws = Workspace::new();
    let out = ws
        .command(None, &["usersig"])
        .env_remove("SUBSYNC_SECRET_KEY_FILE")
        .env("SUBSYNC_SECRET_KEY", KEY)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let none = ws
        .command(None, &["usersig"])
        .env_remove("SUBSYNC_SECRET_KEY_FILE")
        .output()
        .unwrap();
    assert!(single_error_line(&none).contains("SUBSYNC_SECRET_KEY"));
}

#[test]
fn a_non_numeric_sdkappid_is_one_clear_sentence() {
    let ws = Workspace::new();
    let out = ws
        .command(None, &["usersig"])
        .env("SUBSYNC_SDKAPPID", "14000abc")
        .output()
        .unwrap();
    let err = single_error_line(&out);
    assert!(err.contains("\"14000abc\" is not a number"), "{err}");
}

#[test]
fn an_unknown_region_is_refused_before_anything_is_read_or_sent() {
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &["1".into()]);
    let out = ws.run(None, &["apply", "manifests", "--region", "mars"]);
    let err = single_error_line(&out);
    assert!(
        err.contains("unknown region \"mars\"") && err.contains("singapore"),
        "{err}"
    );
    assert!(!ws.state().exists(), "nothing may be written");
}

#[test]
fn plain_http_to_a_remote_host_is_refused() {
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &["1".into()]);
    let out = ws.run(Some("http://example.com"), &["apply", "manifests"]);
    assert!(single_error_line(&out).contains("would expose the UserSig"));
}

#[test]
fn a_malformed_usersig_is_one_clear_sentence() {
    let ws = Workspace::new();
    let err = single_error_line(&ws.run(None, &["usersig", "verify", "not-a-usersig"]));
    assert!(err.contains("cannot be decoded"), "{err}");
    let err = single_error_line(&ws.run(None, &["usersig", "decode", "%%%"]));
    assert!(err.contains("cannot be decoded"), "{err}");
}

#[test]
fn nothing_secret_is_printed_at_trace_verbosity() {
    let ws = Workspace::new();
    std::fs::write(
        ws.path().join("emulator.yaml"),
        format!("sdkappid: {SDKAPPID}\nsecretKeyFile: secret.key\naccounts:\n  - id: \"@TOA#_a\"\n    maxSubscribers: 3\n"),
    )
    .unwrap();
    let started = subsync::clock::unix_now() as i64;
    let mut emulator = ws
        .command(
            None,
            &[
                "emulator",
                "--listen",
                "127.0.0.1:0",
                "--config",
                "emulator.yaml",
            ],
        )
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(emulator.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    ws.manifest("a", "@TOA#_a", &crate::common::ids("u", 5));
    let apply = ws
        .command(Some(&url), &["apply", "manifests"])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let usersig = ws
        .command(Some(&url), &["usersig", "verify", "garbage"])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    emulator.kill().unwrap();
    let emulator_out = emulator.wait_with_output().unwrap();
    let ended = subsync::clock::unix_now() as i64;

    assert_eq!(
        apply.status.code(),
        Some(2),
        "the limit of 3 leaves 2 out: {}",
        stdout(&apply)
    );
    let printed = [
        stdout(&apply),
        stderr(&apply),
        stderr(&usersig),
        stderr(&emulator_out),
    ]
    .concat();
    assert!(
        printed.contains("TRACE") || printed.contains("DEBUG"),
        "trace logging was not on"
    );
    assert!(!printed.contains(KEY), "the secret key was printed");
    assert!(
        !printed.to_lowercase().contains("usersig="),
        "a query string was printed"
    );
    let key = SecretKey::new(KEY).unwrap();
    for t in started - 1..=ended + 1 {
        let sig = usersig::generate(&key, SDKAPPID, "administrator", t, 86_400);
        assert!(!printed.contains(sig.as_str()), "a UserSig was printed");
    }
}

#[test]
fn a_key_file_its_group_can_read_is_quiet_and_one_everyone_can_read_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Workspace::new();
    let usersig_with_mode = |mode: u32| {
        std::fs::set_permissions(ws.key_file(), std::fs::Permissions::from_mode(mode)).unwrap();
        let out = ws.command(None, &["usersig"]).output().unwrap();
        assert!(out.status.success(), "{mode:o}: {}", stderr(&out));
        stderr(&out)
    };
    // A Kubernetes Secret mounted with defaultMode 0440 and the pod's fsGroup.
    let group = usersig_with_mode(0o440);
    assert!(!group.contains("secret key file"), "{group}");
    let everyone = usersig_with_mode(0o644);
    assert!(
        everyone.contains("every user on this machine can read or change the secret key file")
            && everyone.contains("mode=644"),
        "{everyone}"
    );
}
