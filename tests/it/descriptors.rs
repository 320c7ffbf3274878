//! The daemon under descriptor pressure: with `ulimit -n 64` and an API that answers slowly,
//! its own connections never take the descriptors its probes need.

use std::time::Duration;

use crate::common::daemon::start_limited;
use crate::common::wait_for;
use crate::common::{Remote, Workspace, ids, remote_subscribers};
use subsync::tencent::api::Command;

/// A probe must answer well within a kubelet's patience.
const PROBE: Duration = Duration::from_secs(5);

#[test]
fn probes_are_answered_under_64_descriptors_while_a_slow_api_takes_every_call() {
    let emulator = Remote::default()
        .slow_answers(350)
        .account("@TOA#_a", 100_000, &[])
        .start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 12_000));
    let daemon = start_limited(&ws, &emulator, &ws.manifests(), &[], 64);
    wait_for("calls in flight", || {
        emulator.stats().count(Command::AddSubscriber, "0") >= 20
    });
    // While every API connection the budget allows is busy.
    for _ in 0..10 {
        assert_eq!(daemon.get_within("/healthz", PROBE).0, 200);
        assert_eq!(daemon.get_within("/metrics", PROBE).0, 200);
    }
    wait_for("every subscriber", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 12_000
    });
    // And after it, with the connections the run used idle in the pool.
    for _ in 0..20 {
        assert_eq!(daemon.get_within("/healthz", PROBE).0, 200);
    }
    wait_for("ready", || daemon.get_within("/readyz", PROBE).0 == 200);
    let log = daemon.log();
    assert!(
        log.contains("the open-file limit (ulimit -n) of 64 leaves room for 20 API connections"),
        "{log}"
    );
    assert!(!log.contains("Too many open files"), "{log}");
}
