//! What the daemon has said already, so that a log a person reads says each thing once: a
//! warning when it appears (not at every resync), the manifests' problems when they change,
//! and "valid again" once when they are fixed.

use std::collections::BTreeSet;

/// Lines said while they hold, and said again only after they stopped holding.
#[derive(Debug, Default)]
pub(super) struct Said(BTreeSet<String>);

impl Said {
    /// The lines of `now` not said while they last held, and how many said before no longer
    /// hold. Remembers `now`.
    pub(super) fn update(&mut self, now: impl IntoIterator<Item = String>) -> (Vec<String>, usize) {
        let now: BTreeSet<String> = now.into_iter().collect();
        let fresh = now.difference(&self.0).cloned().collect();
        let gone = self.0.difference(&now).count();
        self.0 = now;
        (fresh, gone)
    }
}

/// Whether the manifests were valid at the last reading, and which problems were logged.
#[derive(Debug, Default)]
pub(super) struct Validity {
    problems: Option<Vec<String>>,
}

impl Validity {
    /// Notes that the manifests are invalid with `problems`: true when these were not logged
    /// yet.
    pub(super) fn mark_invalid(&mut self, problems: Vec<String>) -> bool {
        let changed = self.problems.as_ref() != Some(&problems);
        self.problems = Some(problems);
        changed
    }

    /// True unless the last reading found problems.
    pub(super) fn is_valid(&self) -> bool {
        self.problems.is_none()
    }

    /// Notes that the manifests are valid: true when they were invalid until now.
    pub(super) fn mark_valid(&mut self) -> bool {
        self.problems.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_warning_is_said_when_it_appears_and_again_only_after_it_went() {
        let mut said = Said::default();
        assert_eq!(said.update(lines(&["a", "b"])), (lines(&["a", "b"]), 0));
        assert_eq!(said.update(lines(&["a", "b"])), (vec![], 0));
        assert_eq!(said.update(lines(&["b"])), (vec![], 1));
        assert_eq!(said.update(lines(&["a", "b"])), (lines(&["a"]), 0));
    }

    #[test]
    fn problems_are_logged_when_they_change_and_the_fix_once() {
        let mut validity = Validity::default();
        assert!(!validity.mark_valid(), "valid from the start says nothing");
        assert!(validity.mark_invalid(lines(&["x"])));
        assert!(!validity.mark_invalid(lines(&["x"])));
        assert!(validity.mark_invalid(lines(&["x", "y"])));
        assert!(validity.mark_valid());
        assert!(!validity.mark_valid());
    }
}
