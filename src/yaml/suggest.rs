//! The known key a misspelt one was most likely meant to be, for "did you mean" in messages
//! about manifests and configuration files.

/// The known key `name` was most likely meant to be: the same but for case, or at most two
/// edits away (a third of the name for short ones).
pub(crate) fn closest<'k>(name: &str, known: impl Iterator<Item = &'k str>) -> Option<&'k str> {
    let lower = name.to_ascii_lowercase();
    known
        .map(|k| (distance(&lower, &k.to_ascii_lowercase()), k))
        .filter(|(d, k)| *d <= 2.min(k.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance, in characters; names are short, so the quadratic table is fine.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_suggested_and_far_ones_are_not() {
        let keys = ["subscribers", "subscriberFiles", "prune"];
        assert_eq!(
            closest("Subscribers", keys.into_iter()),
            Some("subscribers")
        );
        assert_eq!(closest("prun", keys.into_iter()), Some("prune"));
        assert_eq!(closest("owner", keys.into_iter()), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
