//! When the daemon does what: a state machine driven by events and the time they happen at,
//! with no clock of its own, so that it is tested by feeding it instants.
//!
//! It reconciles at start; after a change under the watched paths once they have been quiet
//! for the debounce time; every `resync`; and when a live list falls due for a refresh. A
//! replica that does not lead tries to take the lock every `takeover_every`, unless it waits
//! on the lock itself meanwhile.
//!
//! After a run stopped by a fatal answer or an unreachable service, the next attempt waits
//! for its pause (30 s, doubling to 10 min), whatever else falls due meanwhile: a resync or a
//! refresh waits for it too, so that no path retries sooner than the log said. The one
//! exception is a change to the manifests or the key file (a fix, typically), which may retry
//! sooner, once per stretch of failures. A run that does not stop fatally ends the stretch.
//!
//! Manifests that this machine could not read (out of file descriptors, say: nothing to do
//! with the files) are read again after a short pause, growing while it lasts, by the same
//! kind of cycle, so that a change seen during the shortage is never dropped.
//!
//! A tree that never stops changing costs little: a burst of changes is read once it has been
//! quiet for the debounce time, but at the latest [`MAX_DEFER`] (or ten debounces) after its
//! first change, so it is still read, every few seconds at most; and reads whose manifests are
//! refused again and again wait a growing pause ([`REFUSED_BACKOFF`]) before the next change
//! is read. Whatever the settings, nothing here wakes more often than the floors of
//! `settings::durations` allow.

use std::time::Duration;

use tokio::time::Instant;

use crate::apply::Trigger;
use crate::backoff::Backoff;
use crate::settings::durations;

/// The pauses after consecutive fatal stops.
pub(crate) const FATAL_BACKOFF: Backoff =
    Backoff::new(Duration::from_secs(30), Duration::from_secs(600));

/// The pauses between attempts to read manifests that this machine could not read.
pub(crate) const UNREAD_BACKOFF: Backoff =
    Backoff::new(Duration::from_secs(1), Duration::from_secs(60));

/// A burst of changes is read at the latest this long (or ten debounces) after it began.
pub(crate) const MAX_DEFER: Duration = Duration::from_secs(5);

/// The pauses before reading a change again after consecutive reads refused the manifests.
pub(crate) const REFUSED_BACKOFF: Backoff =
    Backoff::new(Duration::from_secs(1), Duration::from_secs(15));

/// The daemon's timing, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    pub debounce: Duration,
    /// `None`: no periodic resync.
    pub resync: Option<Duration>,
    pub takeover_every: Duration,
}

/// What is due now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Read the manifests and, when leading, reconcile them.
    Cycle {
        trigger: Trigger,
        /// Read the key file again first.
        reload_key: bool,
    },
    /// Try to take the ledger's writer lock.
    TakeOver,
}

/// How a cycle ended, as far as the schedule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CycleEnd {
    /// Done (converged, partial, or nothing to do).
    Done,
    /// The manifests read were refused (invalid): nothing ran.
    Refused,
    /// Stopped by a fatal answer, an unreachable service or the ledger: pause before the next.
    Fatal,
    /// The lock was lost: this replica stands by now.
    LostLead,
    /// The manifests could not be read for a reason of this machine's: read them again soon.
    Unread,
}

#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    timing: Timing,
    /// When the debounced change falls due.
    change_at: Option<Instant>,
    /// When the first change of the burst now waiting was seen.
    burst_since: Option<Instant>,
    /// Consecutive reads that refused the manifests, and when the next change may be read.
    refused: u32,
    read_not_before: Option<Instant>,
    /// What the next change-driven cycle is called (`start` for the first).
    change_trigger: Trigger,
    /// What the cycle last due was called (a cycle that could not read is done again as such).
    last_trigger: Trigger,
    /// Consecutive cycles that could not read the manifests.
    unread: u32,
    reload_key: bool,
    next_resync: Option<Instant>,
    /// When the first live list falls due for a refresh, as the ledger says.
    next_refresh: Option<Instant>,
    /// During a stretch of failures: when the next attempt may run.
    retry_at: Option<Instant>,
    failures: u32,
    /// Whether the stretch's one early retry (on a change) was used.
    early_retry_used: bool,
    /// While standing by: when to try the lock next.
    next_takeover: Option<Instant>,
    /// Consecutive attempts to take the lock that could not reach the ledger.
    unreachable: u32,
}

impl Schedule {
    /// A daemon starting at `now`: a cycle at once; a takeover attempt later unless `leading`.
    pub(crate) fn new(timing: Timing, now: Instant, leading: bool) -> Schedule {
        // The settings refuse values under the floors; a caller that built its own timing
        // still cannot make the daemon wake more often.
        let timing = Timing {
            debounce: timing.debounce.max(durations::DEBOUNCE.floor),
            resync: timing.resync.map(|r| r.max(durations::RESYNC.floor)),
            takeover_every: timing.takeover_every.max(durations::TAKEOVER_EVERY.floor),
        };
        Schedule {
            timing,
            change_at: Some(now),
            burst_since: None,
            refused: 0,
            read_not_before: None,
            change_trigger: Trigger::Start,
            last_trigger: Trigger::Start,
            unread: 0,
            reload_key: false,
            next_resync: timing.resync.map(|r| now + r),
            next_refresh: None,
            retry_at: None,
            failures: 0,
            early_retry_used: false,
            next_takeover: (!leading).then(|| now + timing.takeover_every),
            unreachable: 0,
        }
    }

    /// Something under the watched paths changed (or the watches moved): read once quiet
    /// for the debounce time, but no later than the burst's deadline.
    pub(crate) fn manifests_changed(&mut self, now: Instant) {
        let since = *self.burst_since.get_or_insert(now);
        let deadline = since + MAX_DEFER.max(self.timing.debounce.saturating_mul(10));
        self.change_at = Some((now + self.timing.debounce).min(deadline));
    }

    /// The key file changed.
    pub(crate) fn key_changed(&mut self, now: Instant) {
        self.reload_key = true;
        self.manifests_changed(now);
    }

    /// When the first live list falls due for a refresh (`None`: none will).
    pub(crate) fn refresh_due_at(&mut self, at: Option<Instant>) {
        self.next_refresh = at;
    }

    /// In a stretch of failures, a change may cut the pause short only once; after refused
    /// reads, a change waits for their pause.
    fn change_due(&self) -> Option<Instant> {
        let at = self.change_at?;
        let at = self
            .read_not_before
            .map_or(at, |not_before| at.max(not_before));
        match self.retry_at {
            Some(retry) if self.early_retry_used => Some(at.max(retry)),
            _ => Some(at),
        }
    }

    /// When something falls due next; `None` while nothing is pending.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        let timers = match self.retry_at {
            // Failing: only the retry itself, a change, and the lock.
            Some(retry) => [Some(retry), self.change_due(), self.next_takeover, None],
            None => [
                self.change_due(),
                self.next_resync,
                self.next_refresh,
                self.next_takeover,
            ],
        };
        timers.into_iter().flatten().min()
    }

    /// Takes what is due at `now`, if anything: it is then no longer pending. A cycle's result
    /// must be reported with [`Schedule::finished`] before asking again.
    pub(crate) fn take_due(&mut self, now: Instant) -> Option<Action> {
        if self.next_takeover.is_some_and(|t| t <= now) {
            self.next_takeover = None;
            return Some(Action::TakeOver);
        }
        if self.change_due().is_some_and(|t| t <= now) {
            self.change_at = None;
            self.burst_since = None;
            if self.retry_at.is_some_and(|r| now < r) {
                self.early_retry_used = true;
            }
            self.last_trigger = std::mem::replace(&mut self.change_trigger, Trigger::Change);
            return Some(Action::Cycle {
                trigger: self.last_trigger,
                reload_key: std::mem::take(&mut self.reload_key),
            });
        }
        let overdue = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        let trigger = match self.retry_at {
            Some(retry) if retry <= now => Trigger::Retry,
            Some(_) => return None,
            None if overdue(self.next_resync) || overdue(self.next_refresh) => Trigger::Resync,
            None => return None,
        };
        self.last_trigger = trigger;
        Some(Action::Cycle {
            trigger,
            // A retry reads the key again: the fix may have been a new key.
            reload_key: std::mem::take(&mut self.reload_key) || trigger == Trigger::Retry,
        })
    }

    /// The cycle due earlier ended at `now`; returns the pause before the next attempt when
    /// the cycle ended in one (a fatal stop, manifests that could not be read).
    pub(crate) fn finished(&mut self, now: Instant, ended: CycleEnd) -> Option<Duration> {
        self.next_resync = self.timing.resync.map(|r| now + r);
        if ended != CycleEnd::Unread {
            self.unread = 0;
        }
        if ended == CycleEnd::Refused {
            self.read_not_before = Some(now + REFUSED_BACKOFF.after(self.refused));
            self.refused = self.refused.saturating_add(1);
        } else if ended != CycleEnd::Unread {
            self.refused = 0;
            self.read_not_before = None;
        }
        match ended {
            CycleEnd::Unread => {
                let pause = UNREAD_BACKOFF.after(self.unread);
                self.unread = self.unread.saturating_add(1);
                let at = now + pause;
                match self.retry_at {
                    // A retry that could not read stays the retry, a little later.
                    Some(_) if self.last_trigger == Trigger::Retry => self.retry_at = Some(at),
                    _ => {
                        self.change_at = Some(self.change_at.map_or(at, |c| c.min(at)));
                        self.change_trigger = self.last_trigger;
                    }
                }
                Some(pause)
            }
            CycleEnd::Done | CycleEnd::Refused => {
                self.retry_at = None;
                self.failures = 0;
                self.early_retry_used = false;
                None
            }
            CycleEnd::Fatal => {
                let pause = FATAL_BACKOFF.after(self.failures);
                self.failures = self.failures.saturating_add(1);
                self.retry_at = Some(now + pause);
                Some(pause)
            }
            CycleEnd::LostLead => {
                self.stand_by(now);
                None
            }
        }
    }

    /// The lock was lost (or a takeover attempt failed): try again after `takeover_every`.
    /// Whatever was failing stops counting: a replica that does not lead sends nothing.
    pub(crate) fn stand_by(&mut self, now: Instant) {
        self.unreachable = 0;
        self.wait_for_lock(now + self.timing.takeover_every);
    }

    /// An attempt to take the lock could not reach the ledger: try again after a pause that
    /// grows from `takeover_every` to a minute, so that a server that is down is not
    /// hammered by every replica.
    pub(crate) fn ledger_unreachable(&mut self, now: Instant) {
        let every = self.timing.takeover_every;
        let pause = Backoff::new(every, every.max(Duration::from_secs(60))).after(self.unreachable);
        self.unreachable = self.unreachable.saturating_add(1);
        self.wait_for_lock(now + pause);
    }

    /// Standing by, waiting on the lock itself: no attempt falls due until the wait ends
    /// ([`Schedule::took_over`], or [`Schedule::ledger_unreachable`] when it failed).
    pub(crate) fn waiting_for_lock(&mut self) {
        self.next_takeover = None;
    }

    fn wait_for_lock(&mut self, at: Instant) {
        self.next_takeover = Some(at);
        self.retry_at = None;
        self.failures = 0;
        self.early_retry_used = false;
    }

    /// The lock was taken: reconcile in full at once.
    pub(crate) fn took_over(&mut self, now: Instant) {
        self.next_takeover = None;
        self.change_at = Some(now);
        self.change_trigger = Trigger::Takeover;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timing = Timing {
        debounce: Duration::from_millis(500),
        resync: Some(Duration::from_secs(600)),
        takeover_every: Duration::from_secs(5),
    };

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn cycle(trigger: Trigger) -> Option<Action> {
        Some(Action::Cycle {
            trigger,
            reload_key: trigger == Trigger::Retry,
        })
    }

    /// Runs the schedule from `start` to `until`, every cycle ending as `ends` says; returns
    /// the instants and triggers of the cycles.
    fn drive(
        s: &mut Schedule,
        start: Instant,
        until: Instant,
        mut ends: impl FnMut(Trigger) -> CycleEnd,
    ) -> Vec<(Duration, Trigger)> {
        let mut cycles = Vec::new();
        let mut now = start;
        while let Some(wake) = s.next_wake().filter(|w| *w <= until) {
            now = now.max(wake);
            match s.take_due(now) {
                Some(Action::Cycle { trigger, .. }) => {
                    cycles.push((now - start, trigger));
                    let ended = ends(trigger);
                    s.finished(now, ended);
                }
                Some(Action::TakeOver) => s.stand_by(now),
                None => panic!("woken at {:?} with nothing due", now - start),
            }
        }
        cycles
    }

    #[test]
    fn a_daemon_reconciles_at_start_and_then_every_resync() {
        let t0 = Instant::now();
        let mut s = Schedule::new(T, t0, true);
        let cycles = drive(&mut s, t0, t0 + secs(1800), |_| CycleEnd::Done);
        assert_eq!(
            cycles,
            [
                (secs(0), Trigger::Start),
                (secs(600), Trigger::Resync),
                (secs(1200), Trigger::Resync),
                (secs(1800), Trigger::Resync)
            ]
        );
    }

    #[test]
    fn changes_are_debounced_into_one_cycle() {
        let t0 = Instant::now();
        let mut s = Schedule::new(T, t0, true);
        assert_eq!(s.take_due(t0), cycle(Trigger::Start));
        s.finished(t0, CycleEnd::Done);
        for ms in [10, 200, 400] {
            s.manifests_changed(t0 + Duration::from_millis(ms));
        }
        assert_eq!(s.next_wake(), Some(t0 + Duration::from_millis(900)));
        assert_eq!(s.take_due(t0 + Duration::from_millis(899)), None);
        assert_eq!(
            s.take_due(t0 + Duration::from_millis(900)),
            cycle(Trigger::Change)
        );
    }

    #[test]
    fn after_a_fatal_stop_nothing_retries_sooner_than_the_pause() {
        let t0 = Instant::now();
        let mut s = Schedule::new(T, t0, true);
        // A refresh is overdue all along (an account never refreshed): it must not bypass it.
        s.refresh_due_at(Some(t0));
        let cycles = drive(&mut s, t0, t0 + secs(3600), |_| CycleEnd::Fatal);
        let at: Vec<u64> = cycles.iter().map(|(d, _)| d.as_secs()).collect();
        assert_eq!(at, [0, 30, 90, 210, 450, 930, 1530, 2130, 2730, 3330]);
        assert!(cycles[1..].iter().all(|(_, t)| *t == Trigger::Retry));
    }

    #[test]
    fn a_change_may_retry_sooner_once_per_stretch_of_failures() {
        let t0 = Instant::now();
        let mut s = Schedule::new(T, t0, true);
        assert!(s.take_due(t0).is_some());
        assert_eq!(s.finished(t0, CycleEnd::Fatal), Some(secs(30)));
        s.key_changed(t0 + secs(5));
        assert_eq!(s.next_wake(), Some(t0 + Duration::from_millis(5500)));
        assert_eq!(
            s.take_due(t0 + Duration::from_millis(5500)),
            Some(Action::Cycle {
                trigger: Trigger::Change,
                reload_key: true
            })
        );
        assert_eq!(s.finished(t0 + secs(6), CycleEnd::Fatal), Some(secs(60)));
        // The early retry is used: the next change waits for the pause.
        s.manifests_changed(t0 + secs(7));
        assert_eq!(s.next_wake(), Some(t0 + secs(66)));
        assert_eq!(s.take_due(t0 + secs(10)), None);
        assert!(s.take_due(t0 + secs(66)).is_some());
        // A success ends the stretch: changes count again at once, pauses start over.
        s.finished(t0 + secs(67), CycleEnd::Done);
        s.manifests_changed(t0 + secs(70));
        assert_eq!(s.next_wake(), Some(t0 + Duration::from_millis(70_500)));
        assert!(s.take_due(t0 + Duration::from_millis(70_500)).is_some());
        assert_eq!(s.finished(t0 + secs(71), CycleEnd::Fatal), Some(secs(30)));
    }

    #[test]
    fn a_refresh_falling_due_starts_a_resync() {
        let t0 = Instant::now();
        let mut s = Schedule::new(T, t0, true);
        assert!(s.take_due(t0).is_some());
        s.finished(t0, CycleEnd::Done);
        s.refresh_due_at(Some(t0 + secs(100)));
        assert_eq!(s.next_wake(), Some(t0 + secs(100)));
        assert_eq!(s.take_due(t0 + secs(100)), cycle(Trigger::Resync));
    }

    #[test]
    fn a_standby_tries_the_lock_every_takeover_period_and_reconciles_in_full_on_taking_it() {
        let t0 = Instant::now();
        let mut s = Schedule::new(T, t0, false);
        assert_eq!(s.take_due(t0), cycle(Trigger::Start));
        s.finished(t0, CycleEnd::Done);
        assert_eq!(s.next_wake(), Some(t0 + secs(5)));
        assert_eq!(s.take_due(t0 + secs(5)), Some(Action::TakeOver));
        s.stand_by(t0 + secs(5));
        assert_eq!(s.next_wake(), Some(t0 + secs(10)));
        assert_eq!(s.take_due(t0 + secs(10)), Some(Action::TakeOver));
        s.took_over(t0 + secs(10));
        assert_eq!(s.take_due(t0 + secs(10)), cycle(Trigger::Takeover));
        // Losing the lead mid-run: stand by again, without counting it as a failure.
        assert_eq!(s.finished(t0 + secs(11), CycleEnd::LostLead), None);
        assert_eq!(s.next_wake(), Some(t0 + secs(16)));
    }

    #[test]
    fn a_standby_waiting_on_the_lock_itself_is_not_sent_to_try_it_until_the_wait_fails() {
        let t0 = Instant::now();
        let mut s = Schedule::new(T, t0, false);
        s.waiting_for_lock();
        assert_eq!(s.take_due(t0), cycle(Trigger::Start));
        s.finished(t0, CycleEnd::Done);
        // Only the resync remains: no attempt at the lock falls due while the wait runs.
        assert_eq!(s.next_wake(), Some(t0 + secs(600)));
        assert_eq!(s.take_due(t0 + secs(5)), None);
        // The wait failed (the ledger could not be reached): try again after the pause.
        s.ledger_unreachable(t0 + secs(100));
        assert_eq!(s.next_wake(), Some(t0 + secs(105)));
        assert_eq!(s.take_due(t0 + secs(105)), Some(Action::TakeOver));
        // Another replica still leads: the attempt is followed by a wait again.
        s.stand_by(t0 + secs(105));
        s.waiting_for_lock();
        assert_eq!(s.next_wake(), Some(t0 + secs(600)));
        // The lock came: reconcile in full at once.
        s.took_over(t0 + secs(200));
        assert_eq!(s.take_due(t0 + secs(200)), cycle(Trigger::Takeover));
    }

    #[test]
    fn a_ledger_that_cannot_be_reached_is_tried_again_after_growing_pauses() {
        let t0 = Instant::now();
        let mut s = Schedule::new(T, t0, false);
        assert!(s.take_due(t0).is_some());
        s.finished(t0, CycleEnd::Done);
        let mut now = t0;
        let mut pauses = Vec::new();
        for _ in 0..6 {
            let wake = s.next_wake().unwrap();
            pauses.push((wake - now).as_secs());
            now = wake;
            assert_eq!(s.take_due(now), Some(Action::TakeOver));
            s.ledger_unreachable(now);
        }
        assert_eq!(pauses, [5, 5, 10, 20, 40, 60]);
        // Reached again (another replica holds it): back to the usual period.
        s.stand_by(now);
        assert_eq!(s.next_wake(), Some(now + secs(5)));
    }

    #[test]
    fn manifests_this_machine_could_not_read_are_read_again_by_the_same_kind_of_cycle() {
        let t0 = Instant::now();
        let mut s = Schedule::new(T, t0, true);
        let mut unread = 3;
        let cycles = drive(&mut s, t0, t0 + secs(700), |_| {
            if unread > 0 {
                unread -= 1;
                CycleEnd::Unread
            } else {
                CycleEnd::Done
            }
        });
        // The start is read again after 1, 2 and 4 s, still as the start; then the resync.
        assert_eq!(
            cycles,
            [
                (secs(0), Trigger::Start),
                (secs(1), Trigger::Start),
                (secs(3), Trigger::Start),
                (secs(7), Trigger::Start),
                (secs(607), Trigger::Resync)
            ]
        );
        // A resync that could not read is read again soon as a resync, and the pauses start
        // over once a read succeeded.
        assert_eq!(s.take_due(t0 + secs(1207)), cycle(Trigger::Resync));
        assert_eq!(s.finished(t0 + secs(1207), CycleEnd::Unread), Some(secs(1)));
        assert_eq!(s.next_wake(), Some(t0 + secs(1208)));
        assert_eq!(s.take_due(t0 + secs(1208)), cycle(Trigger::Resync));
    }

    #[test]
    fn a_retry_that_could_not_read_stays_a_retry_and_never_comes_sooner() {
        let t0 = Instant::now();
        let mut s = Schedule::new(T, t0, true);
        assert!(s.take_due(t0).is_some());
        assert_eq!(s.finished(t0, CycleEnd::Fatal), Some(secs(30)));
        assert_eq!(s.next_wake(), Some(t0 + secs(30)));
        assert_eq!(s.take_due(t0 + secs(30)), cycle(Trigger::Retry));
        assert_eq!(s.finished(t0 + secs(30), CycleEnd::Unread), Some(secs(1)));
        assert_eq!(s.next_wake(), Some(t0 + secs(31)));
        assert_eq!(s.take_due(t0 + Duration::from_millis(30_500)), None);
        assert_eq!(s.take_due(t0 + secs(31)), cycle(Trigger::Retry));
        // Still the same stretch of failures: the next fatal stop pauses longer.
        assert_eq!(s.finished(t0 + secs(31), CycleEnd::Fatal), Some(secs(60)));
    }

    #[test]
    fn a_tree_that_never_stops_changing_is_read_every_few_seconds_not_never_and_not_always() {
        let t0 = Instant::now();
        let mut s = Schedule::new(T, t0, true);
        assert!(s.take_due(t0).is_some());
        s.finished(t0, CycleEnd::Done);
        // A change every 100 ms for a minute: the debounce alone would never fire.
        let mut reads = Vec::new();
        let mut now = t0;
        while now < t0 + secs(60) {
            now += Duration::from_millis(100);
            s.manifests_changed(now);
            if s.next_wake().is_some_and(|w| w <= now)
                && let Some(Action::Cycle { .. }) = s.take_due(now)
            {
                reads.push(now - t0);
                s.finished(now, CycleEnd::Done);
            }
        }
        assert_eq!(reads.len(), 11, "{reads:?}");
        assert!(
            reads.windows(2).all(|w| w[1] - w[0] >= MAX_DEFER),
            "{reads:?}"
        );
    }

    #[test]
    fn reads_that_keep_refusing_the_manifests_back_off_and_a_valid_read_ends_it() {
        let t0 = Instant::now();
        let mut s = Schedule::new(T, t0, true);
        assert!(s.take_due(t0).is_some());
        let mut now = t0;
        let mut gaps = Vec::new();
        for _ in 0..6 {
            s.finished(now, CycleEnd::Refused);
            s.manifests_changed(now);
            let wake = s.next_wake().unwrap();
            gaps.push((wake - now).as_millis());
            now = wake;
            assert_eq!(s.take_due(now), cycle(Trigger::Change));
        }
        assert_eq!(gaps, [1000, 2000, 4000, 8000, 15000, 15000]);
        s.finished(now, CycleEnd::Done);
        s.manifests_changed(now);
        assert_eq!(s.next_wake(), Some(now + Duration::from_millis(500)));
    }

    #[test]
    fn no_timing_makes_the_daemon_wake_more_often_than_the_floors() {
        let t0 = Instant::now();
        let zero = Timing {
            debounce: Duration::ZERO,
            resync: Some(Duration::ZERO),
            takeover_every: Duration::ZERO,
        };
        let mut s = Schedule::new(zero, t0, false);
        assert!(s.take_due(t0).is_some());
        s.finished(t0, CycleEnd::Done);
        assert_eq!(s.next_wake(), Some(t0 + Duration::from_millis(100)));
        assert_eq!(
            s.take_due(t0 + Duration::from_millis(100)),
            Some(Action::TakeOver)
        );
        s.stand_by(t0 + Duration::from_millis(100));
        assert_eq!(s.next_wake(), Some(t0 + Duration::from_millis(200)));
        s.manifests_changed(t0 + Duration::from_millis(150));
        assert_eq!(s.next_wake(), Some(t0 + Duration::from_millis(200)));
    }

    #[test]
    fn without_resync_an_idle_daemon_sleeps_until_something_changes() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Timing { resync: None, ..T }, t0, true);
        assert!(s.take_due(t0).is_some());
        s.finished(t0, CycleEnd::Done);
        assert_eq!(s.next_wake(), None);
    }
}
