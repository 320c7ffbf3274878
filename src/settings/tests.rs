use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;
use crate::ledger::PgTarget;

fn request() -> ServiceRequest {
    ServiceRequest {
        sdkappid: Some("1400000000".into()),
        identifier: "administrator".into(),
        region: Some("singapore".into()),
        ..ServiceRequest::default()
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn key_file(dir: &Path, text: &str) -> PathBuf {
    let file = dir.join("key");
    std::fs::write(&file, text).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    file
}

#[test]
fn key_comes_from_the_file_before_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let a = ServiceRequest {
        secret_key_file: Some(key_file(dir.path(), "from-file\n")),
        ..request()
    };
    let env = |n: &str| (n == "SUBSYNC_SECRET_KEY").then(|| "from-env".to_owned());
    let service = resolve_service(&a, &env).unwrap();
    let sig = crate::tencent::usersig::generate(&service.key, 1, "a", 0, 10);
    let file_key = SecretKey::new("from-file").unwrap();
    assert!(crate::tencent::usersig::verify(sig.as_str(), &file_key, 1, "a", 0).is_ok());
}

#[test]
fn every_missing_setting_is_named_at_once() {
    let nothing = ServiceRequest {
        identifier: "administrator".into(),
        ..ServiceRequest::default()
    };
    let err = resolve_service(&nothing, &no_env).unwrap_err().to_string();
    for expected in ["3 problems", "no region", "no SDKAppID", "no secret key"] {
        assert!(err.contains(expected), "{expected} missing from: {err}");
    }
}

#[test]
fn bad_input_gets_one_sentence_naming_the_fix() {
    let err = resolve_service(
        &ServiceRequest {
            sdkappid: Some("abc".into()),
            ..request()
        },
        &|n| (n == "SUBSYNC_SECRET_KEY").then(|| "k".to_owned()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("\"abc\"") && err.contains("SUBSYNC_SDKAPPID"),
        "{err}"
    );
    let missing = ServiceRequest {
        secret_key_file: Some("/nonexistent/key".into()),
        ..request()
    };
    let err = resolve_service(&missing, &no_env).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/key"), "{err}");
    let err = resolve_service(
        &ServiceRequest {
            region: Some("mars".into()),
            ..request()
        },
        &|n| (n == "SUBSYNC_SECRET_KEY").then(|| "k".to_owned()),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("mars"), "{err}");
}

#[test]
fn key_files_must_be_small_regular_one_line_files() {
    let dir = tempfile::tempdir().unwrap();
    let with = |path: PathBuf| {
        resolve_service(
            &ServiceRequest {
                secret_key_file: Some(path),
                ..request()
            },
            &no_env,
        )
        .unwrap_err()
        .to_string()
    };
    let big = dir.path().join("big");
    std::fs::write(&big, "k".repeat(10_000)).unwrap();
    assert!(with(big).contains("10000 bytes"));
    let passwd = key_file(
        dir.path(),
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/:\n",
    );
    let err = with(passwd);
    assert!(err.contains("more than one line"), "{err}");
    assert!(
        !err.contains("root:x"),
        "the content is never echoed: {err}"
    );
    let fifo = dir.path().join("fifo");
    std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    let started = std::time::Instant::now();
    assert!(with(fifo).contains("not a regular file"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a FIFO never blocks"
    );
    assert!(with("/dev/zero".into()).contains("not a regular file"));
    assert!(with(key_file(dir.path(), "\n")).contains("empty"));
    assert!(with(key_file(dir.path(), "has spaces in it")).contains("does not hold a secret key"));
}

#[test]
fn endpoint_overrides_region() {
    let a = ServiceRequest {
        region: Some("china".into()),
        endpoint: Some("http://127.0.0.1:9".into()),
        ..request()
    };
    let env = |n: &str| (n == "SUBSYNC_SECRET_KEY").then(|| "k".to_owned());
    assert!(resolve_service(&a, &env).unwrap().endpoint.is_loopback());
}

#[test]
fn sizes_take_binary_suffixes() {
    assert_eq!(parse_bytes("4096"), Ok(4096));
    assert_eq!(parse_bytes("64K"), Ok(64 << 10));
    assert_eq!(parse_bytes("16MiB"), Ok(16 << 20));
    assert_eq!(parse_bytes("1 GB"), Ok(1 << 30));
    assert!(parse_bytes("0").is_err());
    assert!(parse_bytes("12 parsecs").is_err());
    assert!(parse_bytes("99999999999G").is_err());
}

#[test]
fn colour_follows_the_terminal_and_no_color() {
    let text = |c, n, t| Output::resolve(c, n, LogFormat::Text, t).color;
    assert!(text(ColorChoice::Auto, None, true));
    assert!(!text(ColorChoice::Auto, None, false));
    assert!(!text(ColorChoice::Auto, Some("1"), true));
    assert!(text(ColorChoice::Auto, Some(""), true));
    assert!(text(ColorChoice::Always, Some("1"), false));
    assert!(!text(ColorChoice::Never, None, true));
    let json = Output::resolve(ColorChoice::Always, None, LogFormat::Json, true);
    assert!(!json.color && !json.terminal && json.json);
}

#[test]
fn durations_need_a_unit() {
    let ms = |n| Ok(Duration::from_millis(n));
    assert_eq!(parse_duration("500ms"), ms(500));
    assert_eq!(parse_duration("30s"), ms(30_000));
    assert_eq!(parse_duration("10m"), ms(600_000));
    assert_eq!(parse_duration("1h"), ms(3_600_000));
    assert_eq!(parse_duration("0"), ms(0));
    assert!(parse_duration("10").is_err());
    assert!(parse_duration("1d").is_err());
    assert!(parse_duration("m").is_err());
}

fn state(at: &str, sandbox: bool) -> StateRequest {
    StateRequest {
        at: at.into(),
        sandbox,
        ..StateRequest::default()
    }
}

#[test]
fn sandbox_keeps_its_own_state_directory() {
    let location = resolve_state(&state("st", true), &no_env).unwrap();
    assert_eq!(location.local_dir(), Some(Path::new("st/sandbox")));
    assert_eq!(location.to_string(), "st/sandbox/ledger.db");
    let err = resolve_state(&state("postgres://u@h/db", true), &no_env).unwrap_err();
    assert!(err.to_string().contains("--sandbox"), "{err}");
}

#[test]
fn the_state_password_comes_from_the_file_before_pgpassword() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "from-file\n").unwrap();
    let env = |n: &str| (n == "PGPASSWORD").then(|| "from-env".to_owned());
    let password = |args: &StateRequest| {
        let location = resolve_state(args, &env).unwrap();
        let target = location.target_as::<PgTarget>().unwrap();
        target
            .password()
            .map(|p| String::from_utf8(p.to_vec()).unwrap())
    };
    let mut args = state("postgres://u@h/db", false);
    assert_eq!(password(&args).as_deref(), Some("from-env"));
    args.password_file = Some(file.clone());
    assert_eq!(password(&args).as_deref(), Some("from-file"));
    args.at = "postgres://u:in-url@h/db".into();
    assert_eq!(password(&args).as_deref(), Some("in-url"));
    std::fs::write(&file, "\n").unwrap();
    let err = resolve_state(&args, &env).unwrap_err().to_string();
    assert!(err.contains("is empty") && err.contains("pw"), "{err}");
}
