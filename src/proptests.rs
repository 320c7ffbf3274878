//! Property tests for the input boundary: the YAML reader and manifest loader, the
//! subscriber-file reader and the UserSig decoder take arbitrary input without panicking or
//! hanging, and refuse what they refuse with a message. (cargo-fuzz needs a nightly toolchain;
//! these run on stable, briefly, in every `cargo test`.) They call the readers directly, so
//! they live in the crate, and the readers stay crate-private.

use std::io::Write;

use crate::manifest::{self, Limits};
use crate::tencent::usersig::{self, SecretKey};
use proptest::prelude::*;

/// Fragments that make arbitrary text look like YAML often enough to reach deep code paths.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("apiVersion: subsync/v1\n".to_owned()),
        Just("kind: SubscriberSet\n".to_owned()),
        Just("metadata:\n  name: a\n".to_owned()),
        Just("spec:\n".to_owned()),
        Just("  officialAccount: \"@TOA#_a\"\n".to_owned()),
        Just("  subscribers:\n".to_owned()),
        Just("    - ".to_owned()),
        Just("  subscriberFiles: [".to_owned()),
        Just("---\n".to_owned()),
        Just("&a ".to_owned()),
        Just("*a".to_owned()),
        Just("!!str ".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just(": ".to_owned()),
        Just(", ".to_owned()),
        Just("\"".to_owned()),
        Just("'".to_owned()),
        Just("|\n".to_owned()),
        Just("\n".to_owned()),
        Just("\u{feff}".to_owned()),
        "[ -~]{0,12}",
        "0[0-9x_:.]{0,5}",
        "\\PC{0,4}",
    ];
    proptest::collection::vec(token, 0..40).prop_map(|parts| parts.concat())
}

fn small_limits() -> Limits {
    Limits {
        max_manifest_bytes: 64 << 10,
        max_list_bytes: 64 << 10,
        max_line_bytes: 256,
        max_depth: 16,
        max_subscribers: 1000,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_yaml_reader_never_panics(text in yamlish()) {
        let limits = crate::yaml::TreeLimits { max_depth: 16, max_nodes: 10_000 };
        if let Ok(documents) = crate::yaml::parse(&text, &limits) {
            for root in documents.iter().filter_map(|d| d.root.as_ref()) {
                let _ = crate::yaml::from_node::<manifest::ManifestDocument>(root);
                let _ = crate::yaml::from_node::<serde_json::Value>(root);
            }
        }
    }

    #[test]
    fn the_loader_reports_problems_with_their_file(text in yamlish(), list in proptest::collection::vec(any::<u8>(), 0..512)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.yaml"), &text).unwrap();
        std::fs::write(dir.path().join("l.txt"), &list).unwrap();
        match manifest::load(&[dir.path().to_owned()], &small_limits()) {
            Ok(set) => prop_assert!(set.sets.iter().all(|s| s.subscribers.len() <= 1000)),
            Err(e) => {
                prop_assert!(!e.problems.is_empty());
                for p in &e.problems {
                    prop_assert!(p.path.starts_with(dir.path()), "{p}");
                    prop_assert!(!p.message.chars().any(|c| c.is_control() && c != '\t'), "{p}");
                    prop_assert!(p.message.len() < 1024, "{p}");
                }
            }
        }
    }

    #[test]
    fn subscriber_files_of_any_bytes_are_read_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..2048), gzip in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let (name, content) = if gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(&bytes).unwrap();
            ("l.txt.gz", enc.finish().unwrap())
        } else {
            ("l.txt", bytes.clone())
        };
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let mut seen = 0usize;
        let result = manifest::subscriber_file::read(file, &path, &small_limits(), 20, |id, _| {
            seen += 1;
            manifest::check_user_id(id)
        });
        if let Ok((bad, count)) = result {
            prop_assert!(bad.len() <= 20 && bad.len() <= count);
            prop_assert!(seen + count <= bytes.len() + 1);
        }
    }

    #[test]
    fn the_usersig_decoder_takes_any_string(text in "\\PC{0,300}") {
        let _ = usersig::decode(&text);
        let key = SecretKey::new("k").unwrap();
        prop_assert!(usersig::verify(&text, &key, 1, "a", 0).is_err() || usersig::decode(&text).is_ok());
    }

    #[test]
    fn usersigs_round_trip_for_any_identifier(identifier in "[ -~]{1,32}", sdkappid in any::<u64>(), time in 0i64..4_000_000_000, expire in 1i64..100_000_000) {
        let key = SecretKey::new("secret").unwrap();
        let sig = usersig::generate(&key, sdkappid, &identifier, time, expire);
        let decoded = usersig::verify(sig.as_str(), &key, sdkappid, &identifier, time).unwrap();
        prop_assert_eq!(decoded.identifier, identifier);
        prop_assert_eq!(decoded.sdkappid, sdkappid);
    }
}
