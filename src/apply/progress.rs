//! Progress on stderr: a bar when stderr is a terminal, a log line every few seconds otherwise.
//! stdout stays reserved for the summary.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::observe::{Counts, Observer};
use crate::settings::Output;

const LOG_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    done: AtomicU64,
    started: Instant,
    last_log: Mutex<Instant>,
}

impl Progress {
    /// A bar when stderr is a terminal (coloured only if `output.color`), log lines otherwise.
    pub fn new(total: u64, output: Output) -> Progress {
        let bar = output.terminal.then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let template = if output.color {
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
        });
        let now = Instant::now();
        Progress {
            bar,
            total,
            done: AtomicU64::new(0),
            started: now,
            last_log: Mutex::new(now),
        }
    }

    /// A progress that shows nothing (tests, benchmarks).
    pub fn hidden() -> Progress {
        Progress::new(0, Output::default())
    }

    pub fn inc(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(bar) = &self.bar {
            bar.inc(n);
            return;
        }
        if self.total == 0 {
            return;
        }
        let mut last = self.last_log.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= LOG_EVERY {
            *last = Instant::now();
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            let rate = done as f64 / secs;
            let eta = if rate > 0.0 {
                (self.total.saturating_sub(done)) as f64 / rate
            } else {
                0.0
            };
            tracing::info!(
                "progress: {done}/{} subscribers ({:.0}%), {}/s, about {:.0}s left",
                self.total,
                100.0 * done as f64 / self.total as f64,
                thousands(rate.round() as u64),
                eta
            );
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn committed(&self, _: &str, counts: &Counts) {
        self.inc(counts.total());
    }
}

/// `17191` as `17,191`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_whole_numbers_with_thousands_separators() {
        assert_eq!(thousands(17_191), "17,191");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(0), "0");
    }
}
