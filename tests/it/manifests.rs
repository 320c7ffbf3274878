//! Manifest validation through the CLI, and the JSON Schemas: committed copies are current, and
//! the manifest schema accepts the examples and rejects the invalid fixtures it can judge.
//!
//! Each fixture under tests/manifests/invalid states what it must produce in `# expect:` lines
//! (`LINE:COLUMN fragment`, or `FILE:LINE:COLUMN fragment` for a directory fixture).

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{Workspace, stderr, stdout};

const INVALID: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/manifests/invalid");
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/manifests");
const SCHEMAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema");

fn fixtures() -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(INVALID)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    all.sort();
    all
}

fn yaml_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(yaml_files(&p));
        } else if p.extension().is_some_and(|e| e == "yaml") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// (location as printed after the path, message fragment)
fn expectations(fixture: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for file in yaml_files(fixture) {
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            if let Some(rest) = line.strip_prefix("# expect: ") {
                let (location, fragment) = rest.split_once(' ').unwrap();
                let location = if fixture.is_dir() {
                    format!("{}/{location}", fixture.display())
                } else {
                    format!("{}:{location}", fixture.display())
                };
                out.push((location, fragment.to_owned()));
            }
        }
    }
    out
}

#[test]
fn every_invalid_fixture_fails_with_its_locations() {
    let ws = Workspace::new();
    let fixtures = fixtures();
    assert!(fixtures.len() >= 10);
    for fixture in fixtures {
        let out = ws.run(None, &["validate", fixture.to_str().unwrap()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", fixture.display());
        let expected = expectations(&fixture);
        assert!(
            !expected.is_empty(),
            "{} states no expectation",
            fixture.display()
        );
        for (location, fragment) in &expected {
            let line = err
                .lines()
                .find(|l| l.starts_with(&format!("{location}: ")));
            let line = line.unwrap_or_else(|| panic!("no problem at {location} in:\n{err}"));
            assert!(
                line.contains(fragment.as_str()),
                "at {location} expected {fragment:?}, got {line:?}"
            );
        }
        let reported = err.lines().filter(|l| l.starts_with(INVALID)).count();
        assert_eq!(
            reported,
            expected.len(),
            "unexpected extra problems for {}:\n{err}",
            fixture.display()
        );
        assert!(!ws.state().exists(), "validate must never write state");
    }
}

#[test]
fn the_examples_are_valid() {
    let ws = Workspace::new();
    let out = ws.run(None, &["validate", EXAMPLES]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("5 accounts"), "{}", stdout(&out));
}

#[test]
fn one_file_with_one_account_and_one_subscriber_is_counted_in_the_singular() {
    let ws = Workspace::new();
    ws.manifest("one", "@TOA#_one", &["a".into()]);
    let out = ws.run(None, &["validate", "manifests"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "valid: 1 manifest file, 1 account, 1 desired subscriber\n"
    );
}

#[test]
fn duplicate_subscribers_warn_but_validate() {
    let ws = Workspace::new();
    ws.manifest("dups", "@TOA#_d", &["a".into(), "b".into(), "a".into()]);
    let out = ws.run(None, &["validate", "manifests"]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("dups.yaml:7:")
            && stderr(&out).contains("warning: subscriber \"a\" is listed more than once"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_empty_directory_is_an_error_not_an_empty_plan() {
    let ws = Workspace::new();
    let out = ws.run(None, &["plan", "manifests"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no manifests (*.yaml, *.yml) found here"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_kernel_filesystem_is_refused_as_a_manifest_root_with_the_reason() {
    let ws = Workspace::new();
    std::os::unix::fs::symlink("/proc", ws.path().join("linked")).unwrap();
    for path in ["linked", "/sys"] {
        let out = ws.run(None, &["validate", path]);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{path}: "))
                && err.contains("a kernel filesystem whose entries change all the time"),
            "{err}"
        );
        assert_eq!(err.matches(".yaml").count(), 0, "nothing was walked: {err}");
    }
}

/// Each document of `file` as JSON, the way a schema-aware editor sees it.
fn documents(file: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(file).unwrap();
    let limits = subsync::yaml::TreeLimits {
        max_depth: 32,
        max_nodes: 100_000,
    };
    let Ok(documents) = subsync::yaml::parse(&text, &limits) else {
        return Vec::new();
    };
    documents
        .iter()
        .filter_map(|d| d.root.as_ref())
        .filter_map(|root| subsync::yaml::from_node(root).ok())
        .collect()
}

fn schema(name: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(Path::new(SCHEMAS).join(name)).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

#[test]
fn committed_schemas_match_the_code() {
    for (file, generated) in subsync::schema::all() {
        let path = Path::new(SCHEMAS).join(file);
        let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "{} is stale; regenerate with `UPDATE_SCHEMAS=1 cargo test --test it manifests::`",
            path.display()
        );
    }
}

#[test]
fn the_manifest_schema_accepts_every_example_document() {
    let validator = schema("manifest.schema.json");
    let files = yaml_files(Path::new(EXAMPLES));
    assert!(files.len() >= 3);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema="),
            "{} lacks the schema modeline",
            file.display()
        );
        for doc in documents(&file) {
            let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{}: {errors:?}", file.display());
        }
    }
}

#[test]
fn the_manifest_schema_rejects_the_invalid_fixtures_it_can_judge() {
    let validator = schema("manifest.schema.json");
    let mut judged = 0;
    for fixture in fixtures().into_iter().filter(|f| f.is_file()) {
        let text = std::fs::read_to_string(&fixture).unwrap();
        if !text.contains("# schema: invalid") {
            continue;
        }
        judged += 1;
        for doc in documents(&fixture) {
            assert!(
                !validator.is_valid(&doc),
                "the schema accepts {}",
                fixture.display()
            );
        }
    }
    assert!(judged >= 6);
}

/// The exact output of `validate` over a fixture directory (`tests/manifests/NAME`), run from
/// `tests/manifests` so that paths read `NAME/...`.
fn validate_exactly(name: &str) -> Output {
    let ws = Workspace::new();
    ws.command(None, &["validate", name])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/manifests"))
        .output()
        .unwrap()
}

fn expected(file: &str) -> String {
    let path = format!("{}/tests/manifests/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

/// Files are read side by side: the problems of many files (syntax, shape, inline and listed
/// UserIDs, unreadable and corrupt lists, clashes across and within files, more than the
/// reported share of one list) still come out as the files read one by one gave them, the same
/// lines in the same order at every run. `ordered.stderr` is what the loader printed before it
/// read files in parallel.
#[test]
fn the_problems_of_many_files_are_listed_in_one_order_whoever_reads_them() {
    for _ in 0..3 {
        let out = validate_exactly("ordered");
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(stderr(&out), expected("ordered.stderr"));
        assert_eq!(stdout(&out), "");
    }
}

/// Warnings (repeated subscribers, inline and in plain and gzipped lists, in several files
/// and documents) likewise.
#[test]
fn the_warnings_of_many_files_are_listed_in_one_order_whoever_reads_them() {
    for _ in 0..3 {
        let out = validate_exactly("ordered-warnings");
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stderr(&out), expected("ordered-warnings.stderr"));
        assert_eq!(stdout(&out), expected("ordered-warnings.stdout"));
    }
}
