//! The one exponential backoff: retries of a batch, pauses of a failing subscriber, and the
//! daemon's pauses after a fatal stop all grow the same way, from `first` doubling to `cap`.

use std::time::Duration;

/// Doubling from `first` at attempt 0, never above `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub first: Duration,
    pub cap: Duration,
}

impl Backoff {
    pub(crate) const fn new(first: Duration, cap: Duration) -> Backoff {
        Backoff { first, cap }
    }

    /// The pause before attempt `attempt + 1`: `first × 2^attempt`, at most `cap`.
    pub(crate) fn after(&self, attempt: u32) -> Duration {
        self.first
            .saturating_mul(1u32 << attempt.min(30))
            .min(self.cap)
    }

    /// [`Backoff::after`] with "equal jitter": `jitter` in [0, 1) picks a point in the upper
    /// half of the window, so that retries spread out but never come back at once.
    pub(crate) fn jittered(&self, attempt: u32, jitter: f64) -> Duration {
        self.after(attempt)
            .mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));

    #[test]
    fn pauses_double_up_to_the_cap() {
        assert_eq!(B.after(0), Duration::from_millis(100));
        assert_eq!(B.after(3), Duration::from_millis(800));
        assert_eq!(B.after(4), Duration::from_secs(1));
        assert_eq!(B.after(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_in_the_upper_half_of_the_window() {
        assert_eq!(B.jittered(0, 0.0), Duration::from_millis(50));
        assert_eq!(B.jittered(0, 1.0), Duration::from_millis(100));
        assert_eq!(B.jittered(2, 1.0), Duration::from_millis(400));
        assert_eq!(B.jittered(31, 0.0), Duration::from_millis(500));
    }
}
