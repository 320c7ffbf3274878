//! The durations a setting may take. Each has a documented floor and ceiling, and `0` means
//! "off" only where that is its documented meaning (`--resync`, `--refresh-every`). They are
//! checked where settings resolve, so that nothing in the daemon wakes more often than a
//! floor allows, whatever the flags and variables say, and no absurd value overflows a clock.

use std::time::Duration;

use super::SettingsError;

/// One duration setting and what it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rule {
    pub flag: &'static str,
    pub env: &'static str,
    pub floor: Duration,
    pub ceiling: Duration,
    /// `0` turns it off.
    pub off: bool,
    /// What a value under the floor would do.
    pub why: &'static str,
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub(crate) const DEBOUNCE: Rule = Rule {
    flag: "--debounce",
    env: "SUBSYNC_DEBOUNCE",
    floor: ms(100),
    ceiling: secs(600),
    off: false,
    why: "every file event would read the manifests again",
};

pub(crate) const RESYNC: Rule = Rule {
    flag: "--resync",
    env: "SUBSYNC_RESYNC",
    floor: secs(1),
    ceiling: secs(7 * 24 * 3600),
    off: true,
    why: "the daemon would reconcile without pause",
};

pub(crate) const REFRESH_EVERY: Rule = Rule {
    flag: "--refresh-every",
    env: "SUBSYNC_REFRESH_EVERY",
    floor: secs(1),
    ceiling: secs(30 * 24 * 3600),
    off: true,
    why: "the daemon would read the live lists without pause",
};

pub(crate) const TAKEOVER_EVERY: Rule = Rule {
    flag: "--takeover-every",
    env: "SUBSYNC_TAKEOVER_EVERY",
    floor: ms(100),
    ceiling: secs(3600),
    off: false,
    why: "a replica standing by would try the ledger's lock without pause",
};

pub(crate) const API_TIMEOUT: Rule = Rule {
    flag: "--api-timeout",
    env: "SUBSYNC_API_TIMEOUT",
    floor: ms(500),
    ceiling: secs(600),
    off: false,
    why: "calls would time out before the service could answer",
};

/// Every rule, for the reference (`docs/reference/commands.md`) and its test.
pub(crate) const ALL: [Rule; 5] = [DEBOUNCE, RESYNC, REFRESH_EVERY, TAKEOVER_EVERY, API_TIMEOUT];

impl Rule {
    /// `value` when this setting accepts it; `None` for `0` where that means off.
    pub(crate) fn check(&self, value: Duration) -> Result<Option<Duration>, SettingsError> {
        if value.is_zero() && self.off {
            return Ok(None);
        }
        if value >= self.floor && value <= self.ceiling {
            return Ok(Some(value));
        }
        let problem = if value < self.floor {
            format!("is below its floor of {} ({})", show(self.floor), self.why)
        } else {
            format!("is above its ceiling of {}", show(self.ceiling))
        };
        Err(SettingsError::Duration {
            flag: self.flag,
            env: self.env,
            value: show(value),
            problem,
            range: self.range(),
        })
    }

    /// What it accepts, in words: `between 100ms and 1h`, `or 0 to turn it off`.
    pub(crate) fn range(&self) -> String {
        let off = if self.off {
            ", or 0 to turn it off"
        } else {
            ""
        };
        format!(
            "between {} and {}{off}",
            show(self.floor),
            show(self.ceiling)
        )
    }
}

/// A duration as the flags take it: `0`, `500ms`, `30s`, `10m`, `168h`.
pub(crate) fn show(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0".into(),
        _ if ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) => format!("{}m", ms / 60_000),
        _ if ms.is_multiple_of(1000) => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_off_only_where_documented_and_refused_elsewhere_naming_the_fix() {
        assert_eq!(RESYNC.check(Duration::ZERO).unwrap(), None);
        assert_eq!(REFRESH_EVERY.check(Duration::ZERO).unwrap(), None);
        let err = TAKEOVER_EVERY
            .check(Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "--takeover-every 0 is below its floor of 100ms (a replica standing by would try the ledger's lock without pause); set --takeover-every (SUBSYNC_TAKEOVER_EVERY) between 100ms and 1h"
        );
        for rule in [DEBOUNCE, API_TIMEOUT] {
            assert!(rule.check(Duration::ZERO).is_err(), "{}", rule.flag);
        }
    }

    #[test]
    fn values_under_the_floor_or_over_the_ceiling_are_refused() {
        let err = RESYNC.check(ms(10)).unwrap_err().to_string();
        assert!(
            err.starts_with("--resync 10ms is below its floor of 1s")
                && err.ends_with("between 1s and 168h, or 0 to turn it off"),
            "{err}"
        );
        let err = DEBOUNCE
            .check(Duration::from_secs(u64::MAX / 1000))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is above its ceiling of 10m"), "{err}");
        for rule in ALL {
            assert_eq!(rule.check(rule.floor).unwrap(), Some(rule.floor));
            assert_eq!(rule.check(rule.ceiling).unwrap(), Some(rule.ceiling));
        }
    }

    #[test]
    fn durations_are_shown_as_the_flags_take_them() {
        assert_eq!(show(ms(500)), "500ms");
        assert_eq!(show(secs(90)), "90s");
        assert_eq!(show(secs(600)), "10m");
        assert_eq!(show(secs(7 * 24 * 3600)), "168h");
    }
}
