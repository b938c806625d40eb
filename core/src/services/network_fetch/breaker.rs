//! A circuit breaker per peer: after repeated failures a peer is not called for a while,
//! then one probe decides whether it is back. Pure state, driven by the caller's clock.

use std::time::Duration;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker refuses calls before letting one probe through.
    pub open_for: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            failure_threshold: 5,
            open_for: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed {
        failures: u32,
    },
    Open {
        until: DateTime<Utc>,
    },
    /// One probe is out; other calls are refused until it reports.
    HalfOpen,
}

impl BreakerState {
    pub fn name(&self) -> &'static str {
        match self {
            BreakerState::Closed { .. } => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breaker {
    pub state: BreakerState,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            state: BreakerState::Closed { failures: 0 },
        }
    }
}

impl Breaker {
    /// Whether a call may go out now. An open breaker whose time is up lets exactly one
    /// probe through.
    pub fn allow(&mut self, now: DateTime<Utc>) -> bool {
        match self.state {
            BreakerState::Closed { .. } => true,
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen;
                true
            }
            BreakerState::Open { .. } | BreakerState::HalfOpen => false,
        }
    }

    /// Whether the breaker currently refuses calls, without taking the probe: an open breaker
    /// before its time, or a probe already out.
    pub fn refuses(&self, now: DateTime<Utc>) -> bool {
        match self.state {
            BreakerState::Closed { .. } => false,
            BreakerState::Open { until } => now < until,
            BreakerState::HalfOpen => true,
        }
    }

    pub fn record(&mut self, success: bool, now: DateTime<Utc>, settings: &BreakerSettings) {
        let open = || BreakerState::Open {
            until: now
                + chrono::Duration::from_std(settings.open_for)
                    .unwrap_or(chrono::Duration::seconds(10)),
        };
        self.state = match (self.state, success) {
            (_, true) => BreakerState::Closed { failures: 0 },
            (BreakerState::HalfOpen, false) => open(),
            (BreakerState::Closed { failures }, false)
                if failures + 1 >= settings.failure_threshold =>
            {
                open()
            }
            (BreakerState::Closed { failures }, false) => BreakerState::Closed {
                failures: failures + 1,
            },
            // A late failure of a call that went out before the breaker opened.
            (state @ BreakerState::Open { .. }, false) => state,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).single().expect("time")
    }

    #[test]
    fn opens_after_the_threshold_then_probes_once() {
        let settings = BreakerSettings {
            failure_threshold: 3,
            open_for: Duration::from_secs(10),
        };
        let mut breaker = Breaker::default();
        for _ in 0..2 {
            assert!(breaker.allow(at(0)));
            breaker.record(false, at(0), &settings);
        }
        assert!(breaker.allow(at(0)), "still closed below the threshold");
        breaker.record(false, at(0), &settings);
        assert_eq!(breaker.state, BreakerState::Open { until: at(10) });
        assert!(!breaker.allow(at(9)));
        assert!(breaker.allow(at(10)), "one probe after the open time");
        assert!(!breaker.allow(at(10)), "only one probe at a time");
        breaker.record(false, at(11), &settings);
        assert_eq!(
            breaker.state,
            BreakerState::Open { until: at(21) },
            "a failed probe reopens"
        );
        assert!(breaker.allow(at(21)));
        breaker.record(true, at(21), &settings);
        assert_eq!(breaker.state, BreakerState::Closed { failures: 0 });
        assert!(breaker.allow(at(21)));
    }

    #[test]
    fn a_success_resets_the_count() {
        let settings = BreakerSettings {
            failure_threshold: 2,
            open_for: Duration::from_secs(1),
        };
        let mut breaker = Breaker::default();
        breaker.record(false, at(0), &settings);
        breaker.record(true, at(0), &settings);
        breaker.record(false, at(0), &settings);
        assert_eq!(breaker.state, BreakerState::Closed { failures: 1 });
    }
}
