//! Fixed-window rate limits kept in the cache, so replicas share one budget. When the cache
//! is down the limits fail open (logged): availability over throttling.

use std::sync::Arc;
use std::time::Duration;

use crate::error::CoreError;
use crate::ports::{Cache, Clock};

/// At most `max` hits per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

impl Limit {
    pub const fn per(max: u32, window: Duration) -> Limit {
        Limit { max, window }
    }
}

pub struct RateLimiter {
    cache: Arc<dyn Cache>,
    clock: Arc<dyn Clock>,
    /// Hits counted here and not yet added to the shared counter, per bucket.
    pending: std::sync::Mutex<std::collections::HashMap<String, Pending>>,
}

/// This process's share of a bucket's current window.
#[derive(Debug, Clone, Copy, Default)]
struct Pending {
    window: i64,
    /// Hits not yet added to the shared counter.
    hits: u32,
    /// The shared count after our last flush.
    shared: i64,
}

impl RateLimiter {
    pub fn new(cache: Arc<dyn Cache>, clock: Arc<dyn Clock>) -> Self {
        RateLimiter {
            cache,
            clock,
            pending: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Like [`RateLimiter::hit`] for generous budgets on hot paths: hits are counted in this
    /// process and added to the shared counter `batch` at a time, so most calls cost no
    /// round trip. The budget may be overshot by at most `batch` per replica.
    pub async fn hit_batched(
        &self,
        bucket: &str,
        limit: Limit,
        batch: u32,
    ) -> Result<(), CoreError> {
        let window_ms = i64::try_from(limit.window.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let now_ms = self.clock.now().timestamp_millis();
        let window = now_ms.div_euclid(window_ms);
        let flush = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let entry = pending.entry(bucket.to_string()).or_default();
            if entry.window != window {
                *entry = Pending {
                    window,
                    ..Pending::default()
                };
            }
            entry.hits += 1;
            if entry.shared + i64::from(entry.hits) > i64::from(limit.max) || entry.hits >= batch {
                std::mem::take(&mut entry.hits)
            } else {
                return Ok(());
            }
        };
        let key = format!("rate:{bucket}:{window}");
        match self
            .cache
            .increment(&key, i64::from(flush), limit.window)
            .await
        {
            Ok(count) => {
                if let Some(entry) = self
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_mut(bucket)
                    && entry.window == window
                {
                    entry.shared = count;
                }
                if count > i64::from(limit.max) {
                    let remaining_ms = (window + 1) * window_ms - now_ms;
                    let retry_after_secs = u64::try_from((remaining_ms + 999) / 1000)
                        .unwrap_or(1)
                        .max(1);
                    return Err(CoreError::RateLimited { retry_after_secs });
                }
                Ok(())
            }
            Err(err) => {
                tracing::warn!(error = %err, bucket, "rate limit not enforced: cache unavailable");
                Ok(())
            }
        }
    }

    /// Counts one hit on `bucket`; `Err(RateLimited)` with the seconds until the window ends
    /// once the limit is passed.
    pub async fn hit(&self, bucket: &str, limit: Limit) -> Result<(), CoreError> {
        let window_ms = i64::try_from(limit.window.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let now_ms = self.clock.now().timestamp_millis();
        let window = now_ms.div_euclid(window_ms);
        let key = format!("rate:{bucket}:{window}");
        match self.cache.increment(&key, 1, limit.window).await {
            Ok(count) if count > i64::from(limit.max) => {
                let remaining_ms = (window + 1) * window_ms - now_ms;
                let retry_after_secs = u64::try_from((remaining_ms + 999) / 1000)
                    .unwrap_or(1)
                    .max(1);
                Err(CoreError::RateLimited { retry_after_secs })
            }
            Ok(_) => Ok(()),
            Err(err) => {
                tracing::warn!(error = %err, bucket, "rate limit not enforced: cache unavailable");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MockCache, MockClock};
    use chrono::{TimeZone, Utc};
    use std::sync::Mutex;

    fn limiter(cache: MockCache, now_ms: i64) -> RateLimiter {
        let mut clock = MockClock::new();
        clock
            .expect_now()
            .returning(move || Utc.timestamp_millis_opt(now_ms).single().expect("time"));
        RateLimiter::new(Arc::new(cache), Arc::new(clock))
    }

    #[tokio::test]
    async fn refuses_past_the_limit_until_the_window_ends() {
        let counter = Arc::new(Mutex::new(0i64));
        let mut cache = MockCache::new();
        let seen = counter.clone();
        cache
            .expect_increment()
            .withf(|key, delta, ttl| {
                key == "rate:sign-in:ip:1.2.3.4:16666"
                    && *delta == 1
                    && *ttl == Duration::from_secs(60)
            })
            .returning(move |_, _, _| {
                let mut n = seen.lock().expect("lock");
                *n += 1;
                Ok(*n)
            });
        // 1_000_000 s into the epoch: window 16666 began 40 s earlier, 20 s are left in it.
        let limiter = limiter(cache, 1_000_000_000);
        let limit = Limit::per(2, Duration::from_secs(60));
        assert!(limiter.hit("sign-in:ip:1.2.3.4", limit).await.is_ok());
        assert!(limiter.hit("sign-in:ip:1.2.3.4", limit).await.is_ok());
        assert_eq!(
            limiter.hit("sign-in:ip:1.2.3.4", limit).await,
            Err(CoreError::RateLimited {
                retry_after_secs: 20
            })
        );
    }

    #[tokio::test]
    async fn batched_hits_reach_the_shared_counter_in_batches_and_still_stop_at_the_limit() {
        let shared = Arc::new(Mutex::new(0i64));
        let calls = Arc::new(Mutex::new(0u32));
        let mut cache = MockCache::new();
        let (seen, counted) = (shared.clone(), calls.clone());
        cache.expect_increment().returning(move |_, delta, _| {
            *counted.lock().expect("lock") += 1;
            let mut n = seen.lock().expect("lock");
            *n += delta;
            Ok(*n)
        });
        let limiter = limiter(cache, 1_000_000_000);
        let limit = Limit::per(25, Duration::from_secs(60));
        let mut allowed = 0;
        for _ in 0..40 {
            if limiter.hit_batched("writes:key:k", limit, 10).await.is_ok() {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 25, "no more than the budget in one process");
        assert!(
            *calls.lock().expect("lock") < 40,
            "far fewer round trips than hits"
        );
        assert!(
            *shared.lock().expect("lock") >= 25,
            "every allowed hit reached the shared counter"
        );
    }

    #[tokio::test]
    async fn fails_open_when_the_cache_is_down() {
        let mut cache = MockCache::new();
        cache
            .expect_increment()
            .returning(|_, _, _| Err(CoreError::storage_unavailable()));
        let limiter = limiter(cache, 0);
        for _ in 0..5 {
            assert!(
                limiter
                    .hit("b", Limit::per(1, Duration::from_secs(1)))
                    .await
                    .is_ok()
            );
        }
    }
}
