//! The process's file descriptors: how many it may open, and how they are shared.
//!
//! At start the soft `RLIMIT_NOFILE` is raised to the hard limit (the common soft limit of
//! 1,024 is a relic; any process may raise its own up to the hard one). What is left after a
//! fixed reserve (the standard streams and the runtime, the ledger, reading and watching the
//! manifests, one connection per notification sink, and the probe listener with its
//! connections) is the [`Budget`] for API connections: the calls in flight and the HTTP pool
//! are sized to it, so a slow API can never take the descriptors a probe, the ledger or the
//! manifests need. Pooled connections close after [`IDLE_CONNECTION`] unused.
//!
//! Invariant: API connections + probe connections + the reserve never exceed the soft limit
//! in force; a limit too low for even one API connection is refused at start.

use std::time::Duration;

/// How long a pooled connection may sit unused before it is closed.
pub(crate) const IDLE_CONNECTION: Duration = Duration::from_secs(15);

/// The standard streams, the runtime (its poller and wakers), signal handling, the git
/// revision read, and a margin.
const RESERVE_PROCESS: u64 = 16;
/// SQLite's database, journal, shared memory, lock file and readers; or PostgreSQL's
/// sessions (writer, lock, readers).
const RESERVE_LEDGER: u64 = 12;
/// A directory being listed, a manifest and a subscriber file open, and file watching.
const RESERVE_MANIFESTS: u64 = 8;
/// Most probe connections open at once when descriptors are plentiful.
pub(crate) const MAX_PROBE_CONNECTIONS: usize = 128;
/// Fewest probe connections kept, however tight the limit: a probe must always be answered.
const MIN_PROBE_CONNECTIONS: usize = 4;

/// What a command needs descriptors for, besides API connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Needs {
    /// `watch`: a probe listener and its connections.
    pub probes: bool,
    /// Notification sinks, one connection each.
    pub sinks: usize,
    /// The sandbox's emulator runs in the process: each API connection costs two descriptors.
    pub sandbox: bool,
}

/// How the open-file limit is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    /// The soft limit in force; `None` when the process has none.
    pub limit: Option<u64>,
    /// Kept for everything but API and probe connections.
    pub reserved: u64,
    /// Most API connections, so most calls in flight.
    pub api: usize,
    /// Most probe connections open at once (the oldest is closed for a new one).
    pub probes: usize,
}

impl Budget {
    /// No limit to share.
    pub(crate) const UNLIMITED: Budget = Budget {
        limit: None,
        reserved: 0,
        api: usize::MAX,
        probes: MAX_PROBE_CONNECTIONS,
    };

    /// The budget under a soft limit of `limit` descriptors (`None`: unlimited).
    pub(crate) fn of(limit: Option<u64>, needs: Needs) -> Result<Budget, DescriptorError> {
        let Some(limit) = limit else {
            return Ok(Budget::UNLIMITED);
        };
        let reserved = RESERVE_PROCESS + RESERVE_LEDGER + RESERVE_MANIFESTS + needs.sinks as u64;
        let free = limit.saturating_sub(reserved);
        // Probes get a quarter of what is left, within bounds; the listener itself is one more.
        let probes = if needs.probes {
            ((free / 4) as usize).clamp(MIN_PROBE_CONNECTIONS, MAX_PROBE_CONNECTIONS)
        } else {
            0
        };
        let listener = u64::from(needs.probes);
        let left = free.saturating_sub(probes as u64 + listener);
        let api = if needs.sandbox { left / 2 } else { left };
        if api == 0 {
            let per_call = if needs.sandbox { 2 } else { 1 };
            return Err(DescriptorError {
                limit,
                needed: reserved + probes as u64 + listener + per_call,
            });
        }
        Ok(Budget {
            limit: Some(limit),
            reserved: reserved + listener,
            api: usize::try_from(api).unwrap_or(usize::MAX),
            probes: if needs.probes {
                probes
            } else {
                MAX_PROBE_CONNECTIONS
            },
        })
    }

    /// The calls in flight for a run that asked for `requested`.
    pub(crate) fn concurrency(&self, requested: usize) -> usize {
        requested.min(self.api).max(1)
    }
}

/// The open-file limit leaves no room for an API connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the open-file limit (ulimit -n) is {limit}, too low to run: subsync needs at least {needed} descriptors (the ledger, the manifests, probes, notification sinks and one API connection); raise it (ulimit -n, LimitNOFILE, or the container runtime's nofile limit)"
)]
pub(crate) struct DescriptorError {
    pub limit: u64,
    pub needed: u64,
}

/// Raises the soft open-file limit to the hard one; returns the soft limit now in force
/// (`None`: unlimited). Failing to raise it is not an error: the budget follows what is in
/// force.
pub(crate) fn raise_soft_limit() -> Option<u64> {
    let limit = current()?;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given. A hard limit of "unlimited" may be
        // refused for the soft one (the kernel caps it at nr_open): then the soft one stays.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return finite(raised);
        }
    }
    finite(limit)
}

/// The soft open-file limit in force (`None`: unlimited or unknown).
pub(crate) fn soft_limit() -> Option<u64> {
    finite(current()?)
}

fn current() -> Option<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit)
}

fn finite(limit: libc::rlimit) -> Option<u64> {
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WATCH: Needs = Needs {
        probes: true,
        sinks: 0,
        sandbox: false,
    };

    #[test]
    fn a_usual_limit_does_not_bind() {
        let b = Budget::of(Some(1_048_576), WATCH).unwrap();
        assert_eq!(b.concurrency(190), 190);
        assert_eq!(b.probes, MAX_PROBE_CONNECTIONS);
        assert_eq!(Budget::of(None, WATCH).unwrap(), Budget::UNLIMITED);
    }

    #[test]
    fn under_64_descriptors_probes_and_the_reserve_come_first() {
        let b = Budget::of(Some(64), WATCH).unwrap();
        assert_eq!((b.reserved, b.probes, b.api), (37, 7, 20));
        assert_eq!(b.concurrency(190), 20);
        assert!(b.reserved as usize + b.probes + b.api <= 64);
        // apply has no probes; a sink takes one more; the sandbox halves what is left.
        let apply = Budget::of(Some(64), Needs::default()).unwrap();
        assert_eq!(apply.api, 28);
        let sinks = Budget::of(Some(64), Needs { sinks: 3, ..WATCH }).unwrap();
        assert_eq!(sinks.api, 18);
        let sandbox = Budget::of(
            Some(64),
            Needs {
                sandbox: true,
                ..WATCH
            },
        )
        .unwrap();
        assert_eq!(sandbox.api, 10);
    }

    #[test]
    fn a_limit_with_no_room_for_one_call_is_refused_naming_what_is_needed() {
        let err = Budget::of(Some(30), WATCH).unwrap_err();
        assert_eq!(err.needed, 42);
        let text = err.to_string();
        assert!(
            text.starts_with(
                "the open-file limit (ulimit -n) is 30, too low to run: subsync needs at least 42"
            ),
            "{text}"
        );
        assert!(Budget::of(Some(42), WATCH).is_ok());
    }
}
