use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn load_dir(dir: &Path) -> Result<ManifestSet, ManifestError> {
    load(&[dir.to_owned()], &Limits::default())
}

fn problems(err: &ManifestError) -> Vec<String> {
    err.problems.iter().map(|p| p.to_string()).collect()
}

const GOOD: &str = "apiVersion: subsync/v1\nkind: SubscriberSet\nmetadata:\n  name: weekly\nspec:\n  officialAccount: \"@TOA#_weekly\"\n  subscribers: [\"b\", \"a\"]\n";

/// A manifest whose subscribers come from one list file `name` holding `list`.
fn write_with_list(dir: &Path, name: &str, list: impl AsRef<[u8]>) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, list).unwrap();
    let files = format!("subscriberFiles: [{name}]");
    write(
        dir,
        "m.yaml",
        &GOOD.replace("subscribers: [\"b\", \"a\"]", &files),
    );
}

fn with_subscribers(list: &str) -> String {
    GOOD.replace("[\"b\", \"a\"]", list)
}

#[test]
fn a_valid_manifest_loads_sorted_with_a_digest() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "m.yaml", GOOD);
    let set = load_dir(dir.path()).unwrap();
    assert_eq!(set.sets[0].subscribers, ["a", "b"]);
    assert!(set.digest.starts_with("sha256:"));
}

#[test]
fn every_problem_is_reported_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "m.yaml",
        "apiVersion: subsync/v1\nkind: SubscriberSet\nmetadata:\n  name: weekly\nspec:\n  officialAccount: \"weekly\"\n  subscribers:\n    - ok\n    - \"\"\n",
    );
    let lines = problems(&load_dir(dir.path()).unwrap_err());
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("m.yaml:6:20: official account \"weekly\""),
        "{lines:?}"
    );
    assert!(lines[1].contains("m.yaml:9:7: empty UserID"), "{lines:?}");
}

#[test]
fn duplicate_subscribers_warn_at_the_repeat() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "m.yaml",
        &with_subscribers("[\"a\", \"b\", \"a\"]"),
    );
    let set = load_dir(dir.path()).unwrap();
    assert_eq!(set.sets[0].subscribers, ["a", "b"]);
    assert_eq!(set.warnings.len(), 1);
    assert!(
        set.warnings[0].to_string().contains("m.yaml:7:27:"),
        "{}",
        set.warnings[0]
    );
}

#[test]
fn the_same_account_in_two_files_names_both() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", GOOD);
    write(
        dir.path(),
        "b.yaml",
        &GOOD.replace("name: weekly", "name: other"),
    );
    let err = load_dir(dir.path()).unwrap_err();
    assert_eq!(err.problems.len(), 2);
    assert!(
        err.problems[0].to_string().contains("a.yaml:6:20:")
            && err.problems[0].message.contains("b.yaml")
    );
    assert!(
        err.problems[1].to_string().contains("b.yaml:6:20:")
            && err.problems[1].message.contains("a.yaml")
    );
}

#[test]
fn a_syntax_error_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "m.yaml", "apiVersion: subsync/v1\n  kind: [\n");
    let err = load_dir(dir.path()).unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    assert_eq!(err.problems[0].line, Some(2));
}

#[test]
fn digest_changes_with_content_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "m.yaml", GOOD);
    let first = load_dir(dir.path()).unwrap().digest;
    std::fs::write(&path, format!("# a comment\n{GOOD}")).unwrap();
    assert_eq!(load_dir(dir.path()).unwrap().digest, first);
    std::fs::write(&path, GOOD.replace("\"a\"]", "\"c\"]")).unwrap();
    assert_ne!(load_dir(dir.path()).unwrap().digest, first);
}

#[test]
fn a_byte_order_mark_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "m.yaml", &format!("\u{feff}{GOOD}"));
    assert_eq!(
        load_dir(dir.path()).unwrap().sets[0].subscribers,
        ["a", "b"]
    );
}

#[test]
fn ambiguous_plain_scalars_are_refused_and_safe_integers_kept() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "m.yaml",
        &with_subscribers("[107867, \"0123\"]"),
    );
    assert_eq!(
        load_dir(dir.path()).unwrap().sets[0].subscribers,
        ["0123", "107867"]
    );
    write(dir.path(), "m.yaml", &with_subscribers("[107867, 0123]"));
    let lines = problems(&load_dir(dir.path()).unwrap_err());
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("m.yaml:7:25: spec.subscribers[1]: 0123 is read as a number"),
        "{lines:?}"
    );
    assert!(lines[0].ends_with("quote it: \"0123\""), "{lines:?}");
}

#[test]
fn the_distinct_subscriber_cap_counts_repeats_once() {
    let dir = tempfile::tempdir().unwrap();
    let list: String = (0..50)
        .map(|i| format!("u{}\nu{}\n", i % 10, i % 10))
        .collect();
    write_with_list(dir.path(), "lists/l.txt", &list);
    let limits = Limits {
        max_subscribers: 10,
        ..Limits::default()
    };
    let set = load(&[dir.path().to_owned()], &limits).unwrap();
    assert_eq!(set.sets[0].subscribers.len(), 10);
    assert!(
        set.warnings
            .iter()
            .any(|w| w.message.contains("more duplicate subscribers"))
    );
    let limits = Limits {
        max_subscribers: 9,
        ..Limits::default()
    };
    let err = load(&[dir.path().to_owned()], &limits).unwrap_err();
    let lines = problems(&err);
    assert!(
        lines[0].contains("m.yaml:6:3: more than 9 distinct subscribers"),
        "{lines:?}"
    );
}

#[test]
fn a_list_repeating_few_ids_endlessly_stays_within_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let list: String = (0..200_000).map(|i| format!("u{}\n", i % 7)).collect();
    write_with_list(dir.path(), "l.txt", &list);
    let limits = Limits {
        max_subscribers: 10,
        ..Limits::default()
    };
    let set = load(&[dir.path().to_owned()], &limits).unwrap();
    assert_eq!(set.sets[0].subscribers.len(), 7);
    let more = set
        .warnings
        .iter()
        .find(|w| w.message.contains("more duplicate"))
        .unwrap();
    assert!(more.message.contains("199973 more"), "{more}");
}

#[test]
fn a_list_of_more_distinct_ids_than_the_cap_stops_while_reading() {
    let dir = tempfile::tempdir().unwrap();
    let list: String = (0..100_000).map(|i| format!("u{i}\n")).collect();
    write_with_list(dir.path(), "l.txt", &list);
    let limits = Limits {
        max_subscribers: 1000,
        ..Limits::default()
    };
    let lines = problems(&load(&[dir.path().to_owned()], &limits).unwrap_err());
    assert!(
        lines[0].contains("l.txt:2000:1: more than 1000 distinct subscribers"),
        "{lines:?}"
    );
}

#[test]
fn a_manifest_over_the_size_cap_is_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "m.yaml",
        &format!("{GOOD}# {}\n", "x".repeat(2000)),
    );
    let limits = Limits {
        max_manifest_bytes: 1000,
        ..Limits::default()
    };
    let lines = problems(&load(&[dir.path().to_owned()], &limits).unwrap_err());
    assert!(
        lines[0].contains("over the 1000-byte limit for a manifest"),
        "{lines:?}"
    );
}

#[test]
fn subscriber_files_outside_the_root_are_refused_at_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("manifests");
    write(dir.path(), "secret.txt", "SUBSYNC_SECRET_KEY=hunter2\n");
    let manifest = GOOD.replace(
        "subscribers: [\"b\", \"a\"]",
        "subscriberFiles:\n    - ../secret.txt\n    - /etc/hostname",
    );
    write(&root, "m.yaml", &manifest);
    let lines = problems(&load_dir(&root).unwrap_err());
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("m.yaml:8:7: subscriber file \"../secret.txt\" resolves outside"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("m.yaml:9:7: subscriber file \"/etc/hostname\" is an absolute path"),
        "{lines:?}"
    );
    assert!(!lines.concat().contains("hunter2"));
}

#[test]
fn gzip_lists_are_read_and_bombs_stopped_at_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    for i in 0..10_000 {
        writeln!(enc, "user-{}", i % 3).unwrap();
    }
    write_with_list(dir.path(), "l.txt.gz", enc.finish().unwrap());
    let set = load_dir(dir.path()).unwrap();
    assert_eq!(set.sets[0].subscribers, ["user-0", "user-1", "user-2"]);
    let limits = Limits {
        max_list_bytes: 1000,
        ..Limits::default()
    };
    let lines = problems(&load(&[dir.path().to_owned()], &limits).unwrap_err());
    assert!(
        lines[0].contains("l.txt.gz: inflates to more than 1000 bytes"),
        "{lines:?}"
    );
}

/// Two accounts, each listing its subscribers in a file of its own.
fn two_accounts(dir: &Path) {
    for name in ["a", "b"] {
        write(
            dir,
            &format!("lists/{name}.txt"),
            &format!("{name}1\n{name}2\n{name}1\n"),
        );
        let manifest = GOOD.replace("weekly", name).replace(
            "subscribers: [\"b\", \"a\"]",
            &format!("subscriberFiles: [lists/{name}.txt]"),
        );
        write(dir, &format!("{name}.yaml"), &manifest);
    }
}

/// What a load yields, as a user sees it.
fn outcome(set: &ManifestSet) -> String {
    format!(
        "{:?} {} {:?} {:?} {:?}",
        set.sets, set.digest, set.warnings, set.inputs, set.files
    )
}

#[test]
fn a_reload_takes_unchanged_files_as_they_were_and_reads_changed_ones_again() {
    let dir = tempfile::tempdir().unwrap();
    two_accounts(dir.path());
    let paths = [dir.path().to_owned()];
    let first = load(&paths, &Limits::default()).unwrap();
    // Nothing changed: every set is the one already held, not a copy.
    let again = reload(&paths, &Limits::default(), Some(&first)).unwrap();
    assert_eq!(outcome(&again), outcome(&first));
    for (old, new) in first.sets.iter().zip(&again.sets) {
        assert!(new.subscribers.shares_buffer_with(&old.subscribers));
    }
    // One list rewritten (a new file, as git and editors write): that account is read again,
    // the other kept, and the outcome is a fresh load's.
    write(dir.path(), "lists/b.new", "b3\n");
    std::fs::rename(
        dir.path().join("lists/b.new"),
        dir.path().join("lists/b.txt"),
    )
    .unwrap();
    let changed = reload(&paths, &Limits::default(), Some(&again)).unwrap();
    assert_eq!(
        outcome(&changed),
        outcome(&load(&paths, &Limits::default()).unwrap())
    );
    assert_eq!(changed.sets[1].subscribers, ["b3"]);
    assert!(
        changed.sets[0]
            .subscribers
            .shares_buffer_with(&first.sets[0].subscribers)
    );
    assert!(
        !changed.sets[1]
            .subscribers
            .shares_buffer_with(&first.sets[1].subscribers)
    );
}

#[test]
fn a_reload_reads_again_a_manifest_whose_list_now_resolves_elsewhere_or_under_other_limits() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "lists/one.txt", "x\n");
    write(root, "lists/two.txt", "y\n");
    std::os::unix::fs::symlink("one.txt", root.join("lists/current.txt")).unwrap();
    let manifest = GOOD.replace(
        "subscribers: [\"b\", \"a\"]",
        "subscriberFiles: [lists/current.txt]",
    );
    write(root, "m.yaml", &manifest);
    let paths = [root.to_owned()];
    let first = load(&paths, &Limits::default()).unwrap();
    assert_eq!(first.sets[0].subscribers, ["x"]);
    // The link swapped to another file, neither file touched.
    std::fs::remove_file(root.join("lists/current.txt")).unwrap();
    std::os::unix::fs::symlink("two.txt", root.join("lists/current.txt")).unwrap();
    let swapped = reload(&paths, &Limits::default(), Some(&first)).unwrap();
    assert_eq!(swapped.sets[0].subscribers, ["y"]);
    // Other limits: nothing is taken from a set read within different ones.
    let limits = Limits {
        max_subscribers: 5,
        ..Limits::default()
    };
    let stricter = reload(&paths, &limits, Some(&swapped)).unwrap();
    assert!(
        !stricter.sets[0]
            .subscribers
            .shares_buffer_with(&swapped.sets[0].subscribers)
    );
}
