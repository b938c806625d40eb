//! The system clock, timer, randomness and id generator.

use chrono::{DateTime, SubsecRound, Utc};
use dpg_core::ports::{Clock, IdGenerator};
use uuid::Uuid;

/// Wall-clock time, truncated to milliseconds (what the wire and the database keep).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(3)
    }
}

/// Time-ordered UUIDs (v7): unique across instances, and new rows land at the end of
/// indexes instead of at random places.
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidV7Generator;

impl IdGenerator for UuidV7Generator {
    fn new_id(&self) -> Uuid {
        Uuid::now_v7()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;

    #[test]
    fn clock_is_millisecond_precise() {
        assert_eq!(SystemClock.now().nanosecond() % 1_000_000, 0);
    }

    #[test]
    fn ids_are_v7_and_distinct() {
        let (a, b) = (UuidV7Generator.new_id(), UuidV7Generator.new_id());
        assert_ne!(a, b);
        assert_eq!(a.get_version_num(), 7);
    }
}

/// Sleeping on the tokio runtime.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioTimer;

#[async_trait::async_trait]
impl dpg_core::ports::Timer for TokioTimer {
    async fn sleep(&self, duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// Jitter from the thread-local generator.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRandom;

impl dpg_core::ports::Random for SystemRandom {
    fn up_to(&self, max: u64) -> u64 {
        rand::random_range(0..=max)
    }
}
