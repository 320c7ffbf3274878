//! The `usersig` command, credential handling at the command line, and secrecy of the key and
//! UserSigs in everything subsync prints, even at trace verbosity.

mod common;

use common::{KEY, SDKAPPID, Workspace, stderr, stdout};
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
fn a_malformed_usersig_is_one_clear_sentence() {
    let ws = Workspace::new();
    let err = single_error_line(&ws.run(None, &["usersig", "verify", "not-a-usersig"]));
    assert!(err.contains("cannot be decoded"), "{err}");
    let err = single_error_line(&ws.run(None, &["usersig", "decode", "%%%"]));
    assert!(err.contains("cannot be decoded"), "{err}");
}
