//! Progress on stderr: a bar when stderr is a terminal, a log line every few seconds otherwise.
//! stdout stays reserved for the result. An [`Observer`] of the run, like the daemon's metrics.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::apply::{Counts, Observer};
use crate::report::thousands;
use crate::settings::Output;

const LOG_EVERY: Duration = Duration::from_secs(5);

pub(super) struct Progress {
    output: Output,
    shown: Mutex<Option<Sending>>,
    done: AtomicU64,
}

/// What a run that is sending shows.
struct Sending {
    bar: Option<ProgressBar>,
    total: u64,
    started: Instant,
    last_log: Instant,
}

impl Progress {
    /// A bar when stderr is a terminal (coloured only if `output.color`), log lines otherwise.
    pub(super) fn new(output: Output) -> Progress {
        Progress {
            output,
            shown: Mutex::new(None),
            done: AtomicU64::new(0),
        }
    }

    fn bar(&self, total: u64) -> Option<ProgressBar> {
        self.output.terminal.then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let template = if self.output.color {
                "{bar:40.cyan/blue} {pos}/{len} subscribers  {rate}  ETA {eta}"
            } else {
                "{bar:40} {pos}/{len} subscribers  {rate}  ETA {eta}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.with_key(
                    "rate",
                    |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{}/s", thousands(state.per_sec().round() as u64));
                    },
                ));
            }
            bar
        })
    }
}

impl Observer for Progress {
    fn sending(&self, total: u64) {
        let now = Instant::now();
        self.done.store(0, Ordering::Relaxed);
        *self.shown.lock().unwrap_or_else(|e| e.into_inner()) = Some(Sending {
            bar: self.bar(total),
            total,
            started: now,
            last_log: now,
        });
    }

    fn committed(&self, _: &str, counts: &Counts) {
        let n = counts.total();
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
        let Some(shown) = shown.as_mut() else {
            return;
        };
        if let Some(bar) = &shown.bar {
            bar.inc(n);
            return;
        }
        if shown.total == 0 || shown.last_log.elapsed() < LOG_EVERY {
            return;
        }
        shown.last_log = Instant::now();
        let secs = shown.started.elapsed().as_secs_f64().max(0.001);
        let rate = done as f64 / secs;
        let eta = if rate > 0.0 {
            (shown.total.saturating_sub(done)) as f64 / rate
        } else {
            0.0
        };
        tracing::info!(
            "progress: {done}/{} {} ({:.0}%), {}/s, about {:.0}s left",
            shown.total,
            crate::words::noun(shown.total, "subscriber", "subscribers"),
            100.0 * done as f64 / shown.total as f64,
            thousands(rate.round() as u64),
            eta
        );
    }

    fn sent(&self) {
        let shown = self.shown.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(bar) = shown.and_then(|s| s.bar) {
            bar.finish_and_clear();
        }
    }
}
