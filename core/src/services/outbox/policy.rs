//! What one delivery attempt means (delivered, retry, dead) and how long to wait before the
//! next one.

use std::time::Duration;

use crate::ports::{PeerError, Random};

/// Everything the dispatcher can be tuned with; the defaults are the documented ones.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxSettings {
    /// How often due entries are looked for when nothing wakes the dispatcher sooner.
    pub poll_interval: Duration,
    /// Requests in flight to one healthy destination.
    pub concurrency_per_destination: usize,
    /// Entries in flight (and claimed entries waiting for a slot) in all.
    pub max_in_flight: usize,
    /// Most events in one request to a peer with the batch route
    /// (`POST /api/v1/event/store_batch`); 1 sends every event alone.
    pub batch_events: usize,
    /// Most bytes of event bodies in one batch (well under the receivers' body limit).
    pub batch_bytes: usize,
    /// A peer that lacks the batch route gets single events this long before batches are
    /// tried on it again.
    pub batch_recheck: Duration,
    /// Entries claimed per round.
    pub claim_batch: u32,
    /// How long a claim hides an entry from other claimers: a crash between send and mark
    /// makes it due again after this.
    pub lease: Duration,
    /// First retry delay ceiling; doubled per failed attempt.
    pub backoff_base: Duration,
    /// Ceiling of the retry delay while the entry (or a failing peer) is young.
    pub backoff_cap_young: Duration,
    /// Ceiling once it is older than `young_for`.
    pub backoff_cap_old: Duration,
    pub young_for: Duration,
    /// 401/403 are retried this long after the entry was created (keys may be propagating).
    pub auth_grace: Duration,
    /// 404 is retried this long (the receiver may not know the action yet).
    pub not_found_grace: Duration,
    /// Entries older than this are dead-lettered.
    pub horizon: Duration,
    /// Delivered entries are kept this long.
    pub retention: Duration,
    /// How often delivered entries are pruned.
    pub prune_every: Duration,
    /// How often the counts for `/metrics` and readiness are refreshed.
    pub counts_every: Duration,
    /// Bound on finishing in-flight deliveries at shutdown.
    pub drain_timeout: Duration,
    /// A healthy peer's backlog is woken at most this often on contact (one update per
    /// signed request would be wasteful).
    pub wake_min_interval: Duration,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        OutboxSettings {
            poll_interval: Duration::from_secs(1),
            concurrency_per_destination: 4,
            max_in_flight: 256,
            batch_events: 50,
            batch_bytes: 256 * 1024,
            batch_recheck: Duration::from_secs(3600),
            claim_batch: 32,
            lease: Duration::from_secs(30),
            backoff_base: Duration::from_secs(1),
            backoff_cap_young: Duration::from_secs(60),
            backoff_cap_old: Duration::from_secs(15 * 60),
            young_for: Duration::from_secs(3600),
            auth_grace: Duration::from_secs(3600),
            not_found_grace: Duration::from_secs(3600),
            horizon: Duration::from_secs(72 * 3600),
            retention: Duration::from_secs(7 * 24 * 3600),
            prune_every: Duration::from_secs(3600),
            counts_every: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            wake_min_interval: Duration::from_secs(5),
        }
    }
}

/// The meaning of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again later. `peer_down`: the peer itself looks unavailable (its other entries
    /// wait for a probe), as opposed to a problem with this entry only.
    Retry {
        reason: String,
        peer_down: bool,
    },
    Dead {
        reason: String,
    },
}

impl Verdict {
    /// Short label for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Verdict::Delivered => "delivered",
            Verdict::Retry { .. } => "retry",
            Verdict::Dead { .. } => "dead",
        }
    }
}

/// Classifies the answer to an attempt on an entry of age `age`. Reasons carry the status
/// or error kind only, never a peer body.
pub fn classify(
    answer: &Result<u16, PeerError>,
    age: Duration,
    settings: &OutboxSettings,
) -> Verdict {
    let retry = |reason: String, peer_down: bool| Verdict::Retry { reason, peer_down };
    let verdict = match answer {
        // 409: the receiver already holds this event (a duplicate is a success).
        Ok(status) if (200..300).contains(status) || *status == 409 => Verdict::Delivered,
        Ok(status @ (408 | 429)) => retry(format!("status {status}"), true),
        Ok(status) if *status >= 500 => retry(format!("status {status}"), true),
        Ok(status @ (401 | 403)) => within(
            age,
            settings.auth_grace,
            *status,
            "keys may still be propagating",
        ),
        Ok(404) => within(
            age,
            settings.not_found_grace,
            404,
            "the receiver may not know the action yet",
        ),
        Ok(status) => Verdict::Dead {
            reason: format!("status {status}: rejected by the receiver"),
        },
        Err(PeerError::Timeout) => retry("timed out".to_string(), true),
        Err(PeerError::Unreachable(_)) => retry("unreachable".to_string(), true),
        // A misbehaving answer (too large, not HTTP): the peer may be fixed later.
        Err(PeerError::Invalid(_)) => retry("invalid answer".to_string(), false),
        Err(PeerError::Status(status)) => {
            return classify(&Ok(*status), age, settings);
        }
    };
    match verdict {
        Verdict::Retry { reason, .. } if age >= settings.horizon => Verdict::Dead {
            reason: format!("{reason}; older than the delivery horizon"),
        },
        other => other,
    }
}

fn within(age: Duration, grace: Duration, status: u16, why: &str) -> Verdict {
    if age < grace {
        Verdict::Retry {
            reason: format!("status {status} ({why})"),
            peer_down: false,
        }
    } else {
        Verdict::Dead {
            reason: format!("status {status} for longer than {} s", grace.as_secs()),
        }
    }
}

/// The largest delay after `failures` failed attempts (0 for the first retry):
/// `min(cap, base * 2^failures)`, the cap depending on `age`.
pub fn backoff_ceiling(failures: u32, age: Duration, settings: &OutboxSettings) -> Duration {
    let cap = if age < settings.young_for {
        settings.backoff_cap_young
    } else {
        settings.backoff_cap_old
    };
    let factor = 1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX);
    settings.backoff_base.saturating_mul(factor).min(cap)
}

/// Full jitter: uniform in `[0, ceiling]`, at millisecond resolution.
pub fn full_jitter(ceiling: Duration, random: &dyn Random) -> Duration {
    let max = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(random.up_to(max).min(max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);

    fn verdict(answer: Result<u16, PeerError>, age: Duration) -> &'static str {
        classify(&answer, age, &OutboxSettings::default()).outcome()
    }

    #[test]
    fn classification_table() {
        let young = MIN;
        let old = HOUR + MIN;
        let horizon = Duration::from_secs(72 * 3600);
        let cases: Vec<(Result<u16, PeerError>, Duration, &str)> = vec![
            (Ok(200), young, "delivered"),
            (Ok(201), old, "delivered"),
            (Ok(204), horizon, "delivered"),
            (Ok(409), young, "delivered"),
            (Ok(500), young, "retry"),
            (Ok(502), old, "retry"),
            (Ok(503), old, "retry"),
            (Ok(408), young, "retry"),
            (Ok(429), old, "retry"),
            (Err(PeerError::Timeout), young, "retry"),
            (Err(PeerError::Unreachable("refused".into())), old, "retry"),
            (Err(PeerError::Status(503)), young, "retry"),
            (Err(PeerError::Invalid("too large".into())), young, "retry"),
            (Ok(401), young, "retry"),
            (Ok(403), young, "retry"),
            (Ok(401), old, "dead"),
            (Ok(403), old, "dead"),
            (Ok(404), young, "retry"),
            (Ok(404), old, "dead"),
            (Ok(400), young, "dead"),
            (Ok(413), young, "dead"),
            (Ok(422), young, "dead"),
            (Ok(503), horizon, "dead"),
            (Err(PeerError::Timeout), horizon, "dead"),
            (Ok(302), young, "dead"),
        ];
        for (answer, age, expected) in cases {
            assert_eq!(
                verdict(answer.clone(), age),
                expected,
                "{answer:?} at {age:?}"
            );
        }
    }

    #[test]
    fn peer_down_only_for_availability_failures() {
        let s = OutboxSettings::default();
        let down = |answer: Result<u16, PeerError>| {
            matches!(
                classify(&answer, MIN, &s),
                Verdict::Retry {
                    peer_down: true,
                    ..
                }
            )
        };
        assert!(down(Ok(503)));
        assert!(down(Ok(429)));
        assert!(down(Err(PeerError::Timeout)));
        assert!(down(Err(PeerError::Unreachable("x".into()))));
        assert!(!down(Ok(401)));
        assert!(!down(Ok(404)));
    }

    #[test]
    fn reasons_carry_no_peer_detail() {
        let s = OutboxSettings::default();
        let answer = Err(PeerError::Unreachable(
            "secret-host.internal: refused".into(),
        ));
        let Verdict::Retry { reason, .. } = classify(&answer, MIN, &s) else {
            panic!("retry expected");
        };
        assert!(!reason.contains("secret"), "{reason}");
    }

    #[test]
    fn ceiling_doubles_then_caps_by_age() {
        let s = OutboxSettings::default();
        assert_eq!(backoff_ceiling(0, MIN, &s), Duration::from_secs(1));
        assert_eq!(backoff_ceiling(3, MIN, &s), Duration::from_secs(8));
        assert_eq!(backoff_ceiling(20, MIN, &s), Duration::from_secs(60));
        assert_eq!(backoff_ceiling(20, 2 * HOUR, &s), Duration::from_secs(900));
        assert_eq!(
            backoff_ceiling(u32::MAX, 2 * HOUR, &s),
            Duration::from_secs(900)
        );
    }

    struct Fixed(u64);
    impl Random for Fixed {
        fn up_to(&self, max: u64) -> u64 {
            self.0.min(max)
        }
    }

    proptest! {
        #[test]
        fn jittered_delay_is_within_zero_and_the_ceiling(
            failures in 0u32..80,
            age_secs in 0u64..400_000,
            base_ms in 1u64..10_000,
            drawn in any::<u64>(),
        ) {
            let s = OutboxSettings {
                backoff_base: Duration::from_millis(base_ms),
                ..OutboxSettings::default()
            };
            let age = Duration::from_secs(age_secs);
            let cap = if age < s.young_for { s.backoff_cap_young } else { s.backoff_cap_old };
            let exact = u128::from(base_ms) * (1u128 << failures.min(100));
            let bound = Duration::from_millis(exact.min(cap.as_millis()) as u64);
            let delay = full_jitter(backoff_ceiling(failures, age, &s), &Fixed(drawn));
            prop_assert!(delay <= bound, "{delay:?} > {bound:?}");
        }
    }
}
