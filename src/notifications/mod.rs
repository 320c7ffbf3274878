//! Notifications: events and commit statuses sent to webhooks, chat and git hosts
//! (`--notify-config`), from `watch` and from `apply`.
//!
//! What is told is derived in [`event`] from the same summary the logs and exit codes come
//! from; [`render`] turns it into each target's request; [`Notifier`] delivers.
//!
//! Invariants: a sink never slows reconciliation. Each sink has its own bounded queue and task;
//! handing it an event never waits (a full queue drops the event and counts it), and a slow or
//! silent target is timed out, retried with backoff and then given up, counted in
//! `subsync_notifications_total{sink,result}`. No storm: a condition (an account full,
//! subscribers failing, a fatal stop) is told when it appears and again only after it went
//! ([`Conditions`]), and any one event about one account is sent at most
//! [`FLAP_MAX`] times in [`FLAP_WINDOW`] ([`Gate`]). Secrets never reach a log line: request
//! errors are logged without their URL.
//!
//! Counting: every notification handed to a sink ends as exactly one outcome, after all its
//! tries: `sent` only when the target answered 2xx. Event sinks get only events and
//! commit-status sinks only statuses, and a status is handed over only for a commit id (a
//! revision that is not one is told once, in the log), so nothing is counted that was never
//! sent.

pub(crate) mod config;
pub(crate) mod event;
pub(crate) mod render;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) use config::{ConfigError, NotifyConfig, SinkConfig, load};
pub(crate) use event::{CommitState, CommitStatus, Event};

use crate::backoff::Backoff;
use crate::metrics::Metrics;

/// Events waiting per sink before new ones are dropped.
pub(crate) const QUEUE: usize = 256;
/// One request's whole time.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);
/// Tries per notification, the first included.
pub(crate) const ATTEMPTS: u32 = 4;
const RETRY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
/// A flapping event is sent at most this many times in [`FLAP_WINDOW`].
pub(crate) const FLAP_MAX: usize = 4;
pub(crate) const FLAP_WINDOW: Duration = Duration::from_secs(3600);

/// What one notification came to, as the metric labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    Sent,
    /// Given up after its tries, or refused by the target.
    Failed,
    /// Not queued: the queue was full, or the daemon stopped first.
    Dropped,
    /// Held back by the flap limit.
    Suppressed,
}

impl Delivery {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Delivery::Sent => "sent",
            Delivery::Failed => "failed",
            Delivery::Dropped => "dropped",
            Delivery::Suppressed => "suppressed",
        }
    }
}

#[derive(Debug)]
enum Message {
    Event(Event),
    CommitStatus(CommitStatus),
}

struct Sink {
    config: Arc<SinkConfig>,
    queue: mpsc::Sender<Message>,
}

/// Delivers to the configured sinks; does nothing without any.
pub(crate) struct Notifier {
    sinks: Vec<Sink>,
    gate: Mutex<Gate>,
    metrics: Arc<Metrics>,
    tasks: TaskTracker,
    /// Each sink's task, which ends with the count of what it dropped at a stop.
    delivering: Vec<(String, tokio::task::JoinHandle<u64>)>,
    stop: CancellationToken,
    /// The last revision whose statuses were skipped (it is not a commit id): told once.
    skipped: Mutex<Option<String>>,
}

impl Notifier {
    /// No sinks: every call is a no-op.
    #[cfg(test)]
    pub(crate) async fn none(metrics: Arc<Metrics>) -> Notifier {
        Notifier::start(NotifyConfig::default(), metrics).await
    }

    /// Starts one delivery task per sink.
    pub(crate) async fn start(config: NotifyConfig, metrics: Arc<Metrics>) -> Notifier {
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        let mut sinks = Vec::with_capacity(config.sinks.len());
        let mut delivering = Vec::with_capacity(config.sinks.len());
        // Building an HTTP client reads the system's CA certificates (a hundred files and
        // more): on the blocking pool, not on a worker that answers probes.
        let built = crate::task::blocking(move || {
            config
                .sinks
                .into_iter()
                .map(|sink| {
                    let http = http_client(&sink);
                    (Arc::new(sink), http)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot set up the notification sinks; they get nothing");
            Vec::new()
        });
        for (sink, http) in built {
            metrics.notifications_declared(&sink.name);
            let (queue, rx) = mpsc::channel(QUEUE);
            match http {
                Ok(http) => {
                    let task = tasks.spawn(deliver_all(
                        sink.clone(),
                        http,
                        rx,
                        metrics.clone(),
                        stop.clone(),
                    ));
                    delivering.push((sink.name.clone(), task));
                    sinks.push(Sink {
                        config: sink,
                        queue,
                    });
                }
                Err(e) => {
                    tracing::error!(sink = %sink.name, error = %e, "cannot set up the sink; it gets nothing")
                }
            }
        }
        tasks.close();
        Notifier {
            sinks,
            gate: Mutex::new(Gate::default()),
            metrics,
            tasks,
            delivering,
            stop,
            skipped: Mutex::new(None),
        }
    }

    /// Queues `events` for the sinks that want them; never waits.
    pub(crate) fn events(&self, events: Vec<Event>) {
        for e in events {
            let admitted = self
                .gate
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .admit(&e.key(), Instant::now());
            for sink in self
                .sinks
                .iter()
                .filter(|s| s.config.wants(e.kind, e.account.as_deref()))
            {
                if !admitted {
                    self.metrics
                        .notification(&sink.config.name, Delivery::Suppressed.name());
                    continue;
                }
                self.enqueue(sink, Message::Event(e.clone()));
            }
        }
    }

    /// Queues a commit status for the sinks that post them; never waits. A revision that is
    /// not a commit id cannot be given a status: that is told once, and nothing is queued.
    pub(crate) fn status(&self, status: CommitStatus) {
        let mut takers = self
            .sinks
            .iter()
            .filter(|s| s.config.takes_statuses())
            .peekable();
        if takers.peek().is_none() {
            return;
        }
        if !crate::manifest::is_commit_id(&status.revision) {
            let mut skipped = self.skipped.lock().unwrap_or_else(|p| p.into_inner());
            if skipped.as_deref() != Some(status.revision.as_str()) {
                tracing::warn!(
                    "commit statuses skipped: revision {} is not a commit id (40 or 64 hexadecimal digits); give the commit's id with --revision (SUBSYNC_REVISION), or leave it out to use the manifests' git HEAD",
                    crate::quote::quote(&status.revision)
                );
                *skipped = Some(status.revision);
            }
            return;
        }
        for sink in takers {
            self.enqueue(sink, Message::CommitStatus(status.clone()));
        }
    }

    /// What one run tells: `events` (after any filtering) and its commit's final status.
    pub(crate) fn run_ended(&self, events: Vec<Event>, summary: &crate::apply::Summary) {
        self.events(events);
        if let Some(r) = &summary.revision {
            self.status(event::status_of(summary, r));
        }
    }

    /// A run that could not start: fatal, and a failed commit status.
    pub(crate) fn not_started(&self, revision: Option<&str>, why: &str) {
        self.events(vec![event::not_started(revision, why)]);
        if let Some(r) = revision {
            self.status(CommitStatus {
                revision: r.to_owned(),
                state: CommitState::Failure,
                description: vec![
                    event::Part::Plain("could not start: ".into()),
                    event::Part::Value(why.to_owned()),
                ],
            });
        }
    }

    /// Manifests refused before a run: `invalid`, and a failed commit status.
    pub(crate) fn manifests_invalid(&self, revision: Option<&str>, problems: usize, first: &str) {
        let mut e = event::invalid(problems, first);
        e.revision = revision.map(str::to_owned);
        self.events(vec![e]);
        if let Some(r) = revision {
            self.status(event::invalid_status(r, problems, first));
        }
    }

    fn enqueue(&self, sink: &Sink, message: Message) {
        if sink.queue.try_send(message).is_err() {
            tracing::warn!(sink = %sink.config.name, "the sink's queue is full; a notification was dropped");
            self.metrics
                .notification(&sink.config.name, Delivery::Dropped.name());
        }
    }

    /// Lets the queues drain for at most `deadline`, then drops what is left: counted, and
    /// logged with the count per sink. Returns the sinks that dropped some, with the count.
    pub(crate) async fn close(self, deadline: Duration) -> Vec<(String, u64)> {
        drop(self.sinks);
        if tokio::time::timeout(deadline, self.tasks.wait())
            .await
            .is_err()
        {
            self.stop.cancel();
            self.tasks.wait().await;
        }
        let mut dropped_by_sink = Vec::new();
        for (sink, task) in self.delivering {
            let dropped = task.await.unwrap_or(0);
            if dropped > 0 {
                tracing::warn!(
                    %sink,
                    dropped,
                    "{dropped} notification{} to sink {sink} still queued after the {}s allowed for delivery {} dropped",
                    if dropped == 1 { "" } else { "s" },
                    deadline.as_secs_f64(),
                    if dropped == 1 { "was" } else { "were" },
                );
                dropped_by_sink.push((sink, dropped));
            }
        }
        dropped_by_sink
    }
}

fn http_client(sink: &SinkConfig) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(TIMEOUT)
        // One connection a sink, closed when idle: notifications are rare, descriptors are not
        // free (see `descriptors`).
        .pool_max_idle_per_host(1)
        .pool_idle_timeout(crate::descriptors::IDLE_CONNECTION)
        // A redirect would carry the signature or the token to wherever it points.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("subsync/", env!("CARGO_PKG_VERSION")));
    if config::is_loopback(sink.target.base()) {
        builder = builder.no_proxy();
    }
    builder.build().map_err(|e| e.without_url().to_string())
}

/// One sink's task: sends what is queued, one at a time, until the queue closes or `stop`;
/// what is left then is counted as dropped. Returns how many were dropped.
async fn deliver_all(
    sink: Arc<SinkConfig>,
    http: reqwest::Client,
    mut rx: mpsc::Receiver<Message>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> u64 {
    let mut dropped = 0;
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => break,
            m = rx.recv() => match m {
                Some(m) => m,
                None => return 0,
            },
        };
        let outcome = tokio::select! {
            () = stop.cancelled() => Delivery::Dropped,
            o = deliver(&sink, &http, &message) => o,
        };
        metrics.notification(&sink.name, outcome.name());
        if outcome == Delivery::Dropped {
            dropped += 1;
            break;
        }
    }
    rx.close();
    while rx.recv().await.is_some() {
        metrics.notification(&sink.name, Delivery::Dropped.name());
        dropped += 1;
    }
    dropped
}

/// Sends one message with retries: a network fault, a timeout, 429 and 5xx are tried again;
/// any other refusal is final.
async fn deliver(sink: &SinkConfig, http: &reqwest::Client, message: &Message) -> Delivery {
    let what = match message {
        Message::Event(e) => e.kind.name(),
        Message::CommitStatus(_) => "status",
    };
    for attempt in 0..ATTEMPTS {
        // Rendered per try: the signature's timestamp must be fresh.
        let request = match message {
            Message::Event(e) => render::event(&sink.target, e, crate::clock::unix_now()),
            Message::CommitStatus(s) => render::status(&sink.target, s),
        };
        let Some(request) = request else {
            // Not queued for such a sink (see `Notifier::status`): never counted as sent.
            tracing::error!(sink = %sink.name, event = what, "nothing to send to this sink for this notification (a bug in subsync)");
            return Delivery::Failed;
        };
        let mut call = http.post(request.url);
        for (name, value) in request.headers {
            call = call.header(name, value);
        }
        let problem = match call.body(request.body).send().await {
            Ok(answer) if answer.status().is_success() => return Delivery::Sent,
            Ok(answer) => {
                let code = answer.status();
                if !(code.is_server_error() || code.as_u16() == 429) {
                    tracing::warn!(sink = %sink.name, event = what, status = code.as_u16(), "the sink refused a notification; it is dropped");
                    return Delivery::Failed;
                }
                format!("HTTP {}", code.as_u16())
            }
            // Without the URL: a Slack or WeCom URL is a secret.
            Err(e) => e.without_url().to_string(),
        };
        if attempt + 1 == ATTEMPTS {
            tracing::warn!(sink = %sink.name, event = what, problem = %crate::quote::clean(&problem, 200), tries = ATTEMPTS, "cannot deliver a notification; it is dropped");
            break;
        }
        tracing::debug!(sink = %sink.name, event = what, problem = %crate::quote::clean(&problem, 200), "a notification will be tried again");
        tokio::time::sleep(RETRY.jittered(attempt, rand::random())).await;
    }
    Delivery::Failed
}

/// The flap limit: each key (an event about an account) passes at most [`FLAP_MAX`] times in
/// any [`FLAP_WINDOW`].
#[derive(Debug, Default)]
pub(crate) struct Gate {
    sent: HashMap<String, VecDeque<Instant>>,
}

impl Gate {
    pub(crate) fn admit(&mut self, key: &str, now: Instant) -> bool {
        let times = self.sent.entry(key.to_owned()).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= FLAP_WINDOW)
        {
            times.pop_front();
        }
        if times.len() >= FLAP_MAX {
            return false;
        }
        times.push_back(now);
        true
    }
}

/// Which conditions the last run reported, so that the next tells only what is new, and that
/// runs work again after a fatal stop.
#[derive(Debug, Default)]
pub(crate) struct Conditions {
    held: BTreeSet<String>,
}

impl Conditions {
    /// The events of one run worth telling: conditions that did not hold after the last run,
    /// every other event, and `recovered` when the last run was fatal and this one is not.
    pub(crate) fn after_run(&mut self, events: Vec<Event>, revision: Option<&str>) -> Vec<Event> {
        let now: BTreeSet<String> = events
            .iter()
            .filter(|e| e.kind.is_condition())
            .map(Event::key)
            .collect();
        let was_fatal = self.held.iter().any(|k| k.starts_with("fatal|"));
        let is_fatal = now.iter().any(|k| k.starts_with("fatal|"));
        let mut told: Vec<Event> = events
            .into_iter()
            .filter(|e| !e.kind.is_condition() || !self.held.contains(&e.key()))
            .collect();
        if was_fatal && !is_fatal {
            told.push(event::recovered(revision));
        }
        self.held = now;
        told
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notifications::event::EventType;

    fn e(kind: EventType, account: Option<&str>) -> Event {
        Event::new(kind, None, account)
    }

    fn kinds(events: &[Event]) -> Vec<EventType> {
        events.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn a_condition_is_told_when_it_appears_and_again_only_after_it_went() {
        let mut c = Conditions::default();
        let full = || e(EventType::LimitReached, Some("@TOA#_vip"));
        assert_eq!(
            kinds(&c.after_run(vec![full()], None)),
            [EventType::LimitReached]
        );
        assert!(c.after_run(vec![full()], None).is_empty());
        assert!(c.after_run(vec![], None).is_empty());
        assert_eq!(
            kinds(&c.after_run(vec![full()], None)),
            [EventType::LimitReached]
        );
    }

    #[test]
    fn the_same_condition_on_another_account_is_news() {
        let mut c = Conditions::default();
        c.after_run(vec![e(EventType::Failed, Some("a"))], None);
        let told = c.after_run(
            vec![
                e(EventType::Failed, Some("a")),
                e(EventType::Failed, Some("b")),
            ],
            None,
        );
        assert_eq!(told.len(), 1);
        assert_eq!(told[0].account.as_deref(), Some("b"));
    }

    #[test]
    fn drift_and_applied_are_told_every_time_they_happen() {
        let mut c = Conditions::default();
        for _ in 0..3 {
            let told = c.after_run(
                vec![e(EventType::Drift, Some("a")), e(EventType::Applied, None)],
                None,
            );
            assert_eq!(kinds(&told), [EventType::Drift, EventType::Applied]);
        }
    }

    #[test]
    fn a_run_after_a_fatal_one_is_told_as_recovered_once() {
        let mut c = Conditions::default();
        assert_eq!(
            kinds(&c.after_run(vec![e(EventType::Fatal, None)], None)),
            [EventType::Fatal]
        );
        assert!(
            c.after_run(vec![e(EventType::Fatal, None)], None)
                .is_empty()
        );
        assert_eq!(
            kinds(&c.after_run(vec![], Some("r"))),
            [EventType::Recovered]
        );
        assert!(c.after_run(vec![], None).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn what_is_still_queued_at_the_deadline_is_dropped_and_counted_per_sink() {
        let hanging = crate::testing::Receiver::hanging().await;
        let sink = SinkConfig {
            name: "stuck".into(),
            target: config::Destination::Webhook {
                url: format!("{}/hook", hanging.url()).parse().unwrap(),
                secret: None,
            },
            events: EventType::ALL.into_iter().collect(),
            accounts: Default::default(),
        };
        let metrics = Arc::new(Metrics::new());
        let notifier = Notifier::start(NotifyConfig { sinks: vec![sink] }, metrics.clone()).await;
        notifier.events(vec![
            e(EventType::Applied, None),
            e(EventType::Drift, Some("@TOA#_a")),
            e(EventType::Fatal, None),
        ]);
        let dropped = notifier.close(Duration::from_secs(10)).await;
        assert_eq!(dropped, [("stuck".to_owned(), 3)]);
        let text = metrics.encode();
        assert!(
            text.contains("subsync_notifications_total{sink=\"stuck\",result=\"dropped\"} 3"),
            "{text}"
        );
        assert!(!text.contains("result=\"sent\"} 1"), "{text}");
    }

    #[tokio::test]
    async fn a_status_sink_gets_no_events_and_a_status_only_for_a_commit_id() {
        let receiver = crate::testing::Receiver::start().await;
        let sink = SinkConfig {
            name: "commits".into(),
            target: config::Destination::GitHub {
                api: receiver.url().parse().unwrap(),
                repository: config::Repository {
                    owner: "o".into(),
                    name: "n".into(),
                },
                token: "t".into(),
                target_url: None,
            },
            events: Default::default(),
            accounts: Default::default(),
        };
        let metrics = Arc::new(Metrics::new());
        let notifier = Notifier::start(NotifyConfig { sinks: vec![sink] }, metrics.clone()).await;
        notifier.events(vec![e(EventType::Applied, None), e(EventType::Fatal, None)]);
        notifier.status(event::pending("v1.2"));
        notifier.status(event::pending("0123456789abcdef0123456789abcdef01234567"));
        assert!(notifier.close(Duration::from_secs(10)).await.is_empty());
        assert_eq!(receiver.received().len(), 1);
        let text = metrics.encode();
        assert!(
            text.contains("subsync_notifications_total{sink=\"commits\",result=\"sent\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn a_flapping_event_passes_four_times_an_hour() {
        let mut gate = Gate::default();
        let start = Instant::now();
        let passed = (0..10)
            .filter(|i| gate.admit("drift|a", start + Duration::from_secs(60 * i)))
            .count();
        assert_eq!(passed, FLAP_MAX);
        assert!(
            gate.admit("drift|b", start),
            "another account has its own budget"
        );
        assert!(
            gate.admit("drift|a", start + FLAP_WINDOW),
            "the first has left the window"
        );
    }
}
