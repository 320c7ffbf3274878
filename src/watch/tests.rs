//! The daemon in-process under tokio's paused clock: an hour of a failing service passes in
//! milliseconds, and every call it made is counted.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Daemon, Health, Timing, WatchConfig};
use crate::apply::tests::config;
use crate::engine::{Engine, Hooks};
use crate::metrics::Metrics;
use crate::settings::Purpose;
use crate::tencent::ApiError;
use crate::tencent::api::Command;
use crate::testing::FakeApi;

fn write_manifest(dir: &std::path::Path) -> std::path::PathBuf {
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(
        manifests.join("a.yaml"),
        "apiVersion: subsync/v1\nkind: SubscriberSet\nmetadata:\n  name: a\nspec:\n  officialAccount: \"@TOA#_a\"\n  subscribers: [\"u1\", \"u2\"]\n",
    )
    .unwrap();
    manifests
}

#[tokio::test(start_paused = true)]
async fn after_a_fatal_answer_the_daemon_calls_only_as_often_as_its_pauses_allow() {
    let dir = tempfile::tempdir().unwrap();
    let paths = vec![write_manifest(dir.path())];
    let api = FakeApi::with_accounts(&[("@TOA#_a", 1000, &[])]).scripted(|r| {
        Some(ApiError::Service {
            command: r.command,
            code: 70009,
            info: "wrong key".into(),
        })
    });
    let config = WatchConfig {
        run: config(dir.path(), 0, Purpose::Daemon),
        paths,
        listen: ([127, 0, 0, 1], 0).into(),
        // A resync every second and a refresh due all along: neither may cut a pause short.
        timing: Timing {
            debounce: Duration::from_millis(500),
            resync: Some(Duration::from_secs(1)),
            takeover_every: Duration::from_secs(5),
        },
        refresh_every: Some(Duration::from_secs(1)),
        standby: false,
        output: Default::default(),
        notify: Default::default(),
    };
    let (metrics, health) = (Arc::new(Metrics::new()), Arc::new(Health::default()));
    let hooks = Hooks {
        observer: metrics.clone(),
        calls: None,
    };
    let mut engine = Engine::with_api(config.run.clone(), Arc::new(api.clone()), hooks);
    engine.lead("watch").await.unwrap();
    let notifier = crate::notifications::Notifier::none(metrics.clone()).await;
    let mut daemon = Daemon::start(engine, &config, metrics, health.clone(), notifier)
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let timer = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        timer.cancel();
    });
    daemon.run(&stop).await;
    // At 0 s, then after 30 s doubling to 10 min: 30, 90, 210, 450, 930, 1530, 2130, 2730, 3330.
    assert_eq!(api.all_calls(), 10);
    assert_eq!(api.calls(Command::AddSubscriber).len(), 0);
    let why = health.ready().unwrap_err();
    assert!(why.contains("70009"), "{why}");
    daemon.stop().await;
}
