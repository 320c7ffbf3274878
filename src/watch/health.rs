//! What `/healthz` and `/readyz` answer.
//!
//! Live: the daemon's loop has ticked recently (it ticks every few seconds, during a reconcile
//! too), so the runtime is not wedged. Ready: the manifests last read were valid and the last
//! reconcile was not stopped by a fatal error. Readiness never depends on anything else, so a
//! daemon that cannot do its job is visible as unready, with the reason, without restarting it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long without a tick before the daemon counts as stuck.
const STALL: Duration = Duration::from_secs(60);

pub struct Health {
    state: Mutex<State>,
}

struct State {
    /// `None` until the manifests were read once.
    manifests: Option<Result<(), String>>,
    /// Why the last reconcile stopped, when a fatal error stopped it.
    stopped: Option<String>,
    beat: Instant,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            state: Mutex::new(State {
                manifests: None,
                stopped: None,
                beat: Instant::now(),
            }),
        }
    }
}

impl Health {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn beat(&self) {
        self.state().beat = Instant::now();
    }

    pub fn manifests(&self, result: Result<(), String>) {
        self.state().manifests = Some(result);
    }

    pub fn stopped(&self, reason: Option<String>) {
        self.state().stopped = reason;
    }

    pub fn live(&self) -> Result<(), String> {
        let quiet = self.state().beat.elapsed();
        if quiet > STALL {
            return Err(format!(
                "the reconcile loop has not ticked for {}s",
                quiet.as_secs()
            ));
        }
        Ok(())
    }

    pub fn ready(&self) -> Result<(), String> {
        let state = self.state();
        match (&state.manifests, &state.stopped) {
            (None, _) => Err("the manifests have not been read yet".into()),
            (Some(Err(why)), _) => Err(format!("the manifests are invalid: {why}")),
            (_, Some(why)) => Err(format!("the last reconcile was stopped: {why}")),
            (Some(Ok(())), None) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_with_valid_manifests_and_no_fatal_stop() {
        let h = Health::default();
        assert!(h.ready().unwrap_err().contains("not been read"));
        h.manifests(Err("m.yaml:3:1: bad".into()));
        assert!(h.ready().unwrap_err().contains("invalid: m.yaml:3:1: bad"));
        h.manifests(Ok(()));
        assert!(h.ready().is_ok());
        h.stopped(Some("70009 wrong key".into()));
        assert!(h.ready().unwrap_err().contains("70009"));
        h.stopped(None);
        assert!(h.ready().is_ok() && h.live().is_ok());
    }
}
