//! How an error becomes one line of text: its message, then each of its causes, once.
//!
//! The library's errors that wrap another keep it as their `source` and leave it out of their
//! own message, so that nothing is said twice; whatever shows an error to a person or a log
//! (the final message, a run's summary, readiness) renders the whole chain with [`chain`], as
//! anyhow's `{:#}` does at the binary's edge.

use std::error::Error;

/// `error` and its causes, joined by `: `, each on one line (a database's multi-line message
/// is folded). A cause whose text its parent already says is skipped.
pub(crate) fn chain(error: &(dyn Error + 'static)) -> String {
    let mut out = fold(&error.to_string());
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = fold(&e.to_string());
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = e.source();
    }
    out
}

fn fold(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open the ledger")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_is_said_once_on_one_line() {
        let e = Outer(std::io::Error::other("disk full\nHINT: free some"));
        assert_eq!(
            chain(&e),
            "cannot open the ledger: disk full; HINT: free some"
        );
        let plain = std::io::Error::other("alone");
        assert_eq!(chain(&plain), "alone");
    }
}
