//! What `/healthz` and `/readyz` answer.
//!
//! Live: the daemon's loop has ticked recently (it ticks every few seconds, during a reconcile
//! too), so the runtime is not wedged; nothing remote makes a daemon not live. Ready: the
//! manifests last read were valid, and the last reconcile was not stopped by a problem of this
//! replica's own (credentials the service refuses, a ledger that does not answer). A remote
//! problem that passes by itself (an unreachable or overloaded service) leaves it ready, with
//! the reason in the answer, so that a rollout is not blocked by someone else's outage.
//! Readiness never depends on anything else, so a daemon that cannot do its job is visible,
//! with the reason, without being restarted.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long without a tick before the daemon counts as stuck.
const STALL: Duration = Duration::from_secs(60);

/// Longest reason served.
const REASON: usize = 400;

pub(crate) struct Health {
    state: Mutex<Observed>,
}

struct Observed {
    /// `None` until the manifests were read once.
    manifests: Option<Result<(), String>>,
    /// Why this replica cannot do its job, when it cannot.
    blocked: Option<String>,
    /// A remote, passing problem the last reconcile met.
    degraded: Option<String>,
    beat: Instant,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            state: Mutex::new(Observed {
                manifests: None,
                blocked: None,
                degraded: None,
                beat: Instant::now(),
            }),
        }
    }
}

/// How the last reconcile ended, for readiness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LastRun {
    Fine,
    /// Stopped by something of this replica's own: unready.
    Blocked(String),
    /// Stopped by a passing remote problem: ready, with the reason.
    Degraded(String),
}

impl Health {
    fn state(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn beat(&self) {
        self.state().beat = Instant::now();
    }

    pub(crate) fn manifests(&self, result: Result<(), String>) {
        self.state().manifests = Some(result.map_err(|why| crate::quote::clean(&why, REASON)));
    }

    pub(crate) fn last_run(&self, run: LastRun) {
        let mut state = self.state();
        let clean = |why: String| Some(crate::quote::clean(&why, REASON));
        (state.blocked, state.degraded) = match run {
            LastRun::Fine => (None, None),
            LastRun::Blocked(why) => (clean(why), None),
            LastRun::Degraded(why) => (None, clean(why)),
        };
    }

    pub(crate) fn live(&self) -> Result<(), String> {
        let quiet = self.state().beat.elapsed();
        if quiet > STALL {
            return Err(format!(
                "the reconcile loop has not ticked for {}s",
                quiet.as_secs()
            ));
        }
        Ok(())
    }

    /// Ready, with a remote problem to mention if there is one; or why not.
    pub(crate) fn ready(&self) -> Result<Option<String>, String> {
        let state = self.state();
        match (&state.manifests, &state.blocked) {
            (None, _) => Err("the manifests have not been read yet".into()),
            (Some(Err(why)), _) => Err(format!("the manifests are invalid: {why}")),
            (_, Some(why)) => Err(format!("the last reconcile was stopped: {why}")),
            (Some(Ok(())), None) => Ok(state.degraded.as_ref().map(|why| {
                format!(
                    "the last reconcile was stopped by a remote problem, tried again later: {why}"
                )
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_with_valid_manifests_and_no_problem_of_its_own() {
        let h = Health::default();
        assert!(h.ready().unwrap_err().contains("not been read"));
        h.manifests(Err("m.yaml:3:1: bad".into()));
        assert!(h.ready().unwrap_err().contains("invalid: m.yaml:3:1: bad"));
        h.manifests(Ok(()));
        assert_eq!(h.ready(), Ok(None));
        h.last_run(LastRun::Blocked("70009 wrong key".into()));
        assert!(h.ready().unwrap_err().contains("70009"));
        h.last_run(LastRun::Degraded("cannot reach the API".into()));
        assert!(h.ready().unwrap().unwrap().contains("cannot reach the API"));
        h.last_run(LastRun::Fine);
        assert!(h.ready() == Ok(None) && h.live().is_ok());
    }

    #[test]
    fn reasons_from_outside_are_cleaned_and_cut() {
        let h = Health::default();
        h.manifests(Ok(()));
        h.last_run(LastRun::Blocked(format!(
            "\u{1b}[2J{}",
            "x".repeat(100_000)
        )));
        let why = h.ready().unwrap_err();
        assert!(!why.contains('\u{1b}') && why.len() < 1000, "{}", why.len());
    }
}
