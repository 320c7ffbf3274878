//! A pacing rate limiter: one permit every `1/qps` seconds, no bursts.
//!
//! Permits are handed out at evenly spaced instants, so any one-second window holds at most
//! `qps + 1` calls; with the default just under the documented 200/s, subsync never provokes a
//! rate-limit answer by itself. After a rate-limit answer the caller slows it down for a while.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::api::Command;

/// One limiter per command (the service limits each separately), shared by every run of a
/// process so that consecutive runs of the daemon keep the pace too.
#[derive(Debug)]
pub(crate) struct Pacer {
    add: RateLimiter,
    delete: RateLimiter,
    pages: RateLimiter,
    info: RateLimiter,
    other: RateLimiter,
}

impl Pacer {
    /// `qps` calls a second for each command; 0 = unlimited.
    pub(crate) fn new(qps: u32) -> Pacer {
        Pacer {
            add: RateLimiter::new(qps),
            delete: RateLimiter::new(qps),
            pages: RateLimiter::new(qps),
            info: RateLimiter::new(qps),
            other: RateLimiter::new(qps),
        }
    }

    /// The limiter of `command`.
    pub(crate) fn of(&self, command: Command) -> &RateLimiter {
        match command {
            Command::AddSubscriber => &self.add,
            Command::DeleteSubscriber => &self.delete,
            Command::GetSubscriberInfo => &self.pages,
            Command::GetOfficialAccountInfo => &self.info,
            // Rare calls, a few per run: one limiter for both is pace enough.
            Command::CreateOfficialAccount | Command::ModifyOfficialAccountBaseInfo => &self.other,
        }
    }
}

#[derive(Debug)]
pub(crate) struct RateLimiter {
    base_interval: Option<Duration>,
    state: Mutex<Pace>,
}

#[derive(Debug)]
struct Pace {
    next: Instant,
    /// Interval multiplier while slowed down after a rate-limit answer.
    factor: u32,
    slow_until: Instant,
}

/// Largest slow-down factor: a sixteenth of the configured rate.
const MAX_FACTOR: u32 = 16;

impl RateLimiter {
    /// `qps == 0` means unlimited.
    pub(crate) fn new(qps: u32) -> RateLimiter {
        let now = Instant::now();
        RateLimiter {
            base_interval: (qps > 0).then(|| Duration::from_secs_f64(1.0 / f64::from(qps))),
            state: Mutex::new(Pace {
                next: now,
                factor: 1,
                slow_until: now,
            }),
        }
    }

    /// Waits for the next permit. Dropping the future gives up the wait, not the slot.
    pub(crate) async fn acquire(&self) {
        let Some(at) = self.reserve() else { return };
        tokio::time::sleep_until(at).await;
    }

    fn reserve(&self) -> Option<Instant> {
        let base = self.base_interval?;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if state.factor > 1 && now >= state.slow_until {
            state.factor = 1;
        }
        let slot = state.next.max(now);
        state.next = slot + base * state.factor;
        Some(slot)
    }

    /// Halves the rate (down to a sixteenth) for `period`, after the server said "too many".
    pub(crate) fn slow_down(&self, period: Duration) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.factor = (state.factor * 2).min(MAX_FACTOR);
        state.slow_until = Instant::now() + period;
    }

    /// The rate now in force, in calls per second (`None` when unlimited), for its tests.
    #[cfg(test)]
    pub(crate) fn current_qps(&self) -> Option<f64> {
        let base = self.base_interval?;
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let factor = if Instant::now() >= state.slow_until {
            1
        } else {
            state.factor
        };
        Some(1.0 / (base * factor).as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn permits_are_evenly_spaced_without_burst() {
        let limiter = RateLimiter::new(100);
        let start = Instant::now();
        for _ in 0..101 {
            limiter.acquire().await;
        }
        // 101 permits at 10 ms spacing: the last one is at exactly 1 s.
        assert_eq!(Instant::now() - start, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_does_not_accumulate_a_burst() {
        let limiter = RateLimiter::new(10);
        limiter.acquire().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let start = Instant::now();
        limiter.acquire().await;
        limiter.acquire().await;
        assert_eq!(Instant::now() - start, Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn slow_down_halves_the_rate_then_recovers() {
        let limiter = RateLimiter::new(100);
        limiter.slow_down(Duration::from_secs(1));
        assert_eq!(limiter.current_qps(), Some(50.0));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(limiter.current_qps(), Some(100.0));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_means_unlimited() {
        let limiter = RateLimiter::new(0);
        let start = Instant::now();
        for _ in 0..10_000 {
            limiter.acquire().await;
        }
        assert_eq!(Instant::now(), start);
        assert_eq!(limiter.current_qps(), None);
    }
}
