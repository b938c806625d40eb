//! A `Cache` decorator that counts hits, misses and errors for Prometheus.

use std::time::Duration;

use async_trait::async_trait;
use dpg_core::error::CoreError;
use dpg_core::ports::Cache;

pub const HITS_TOTAL: &str = "dpg_cache_hits_total";
pub const MISSES_TOTAL: &str = "dpg_cache_misses_total";
pub const ERRORS_TOTAL: &str = "dpg_cache_errors_total";

/// Wraps any cache; counters carry the label `backend` (e.g. `redis`, `memory`).
///
/// Hits and misses are counted on `get`; errors on every operation.
#[derive(Debug, Clone)]
pub struct MeteredCache<C> {
    inner: C,
    backend: &'static str,
}

impl<C: Cache> MeteredCache<C> {
    pub fn new(inner: C, backend: &'static str) -> Self {
        MeteredCache { inner, backend }
    }

    pub fn into_inner(self) -> C {
        self.inner
    }

    /// Hits and misses by keyspace: the key up to its first `:` (a fixed, small set).
    fn record_lookup(&self, key: &str, hit: bool) {
        let keyspace = key.split(':').next().unwrap_or_default().to_string();
        let name = if hit { HITS_TOTAL } else { MISSES_TOTAL };
        metrics::counter!(name, "backend" => self.backend, "keyspace" => keyspace).increment(1);
    }

    fn count<T>(&self, result: Result<T, CoreError>) -> Result<T, CoreError> {
        if result.is_err() {
            metrics::counter!(ERRORS_TOTAL, "backend" => self.backend).increment(1);
        }
        result
    }
}

#[async_trait]
impl<C: Cache> Cache for MeteredCache<C> {
    fn shared_across_processes(&self) -> bool {
        self.inner.shared_across_processes()
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CoreError> {
        let result = self.inner.get(key).await;
        if let Ok(value) = &result {
            self.record_lookup(key, value.is_some());
        }
        self.count(result)
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CoreError> {
        let result = self.inner.get_many(keys).await;
        if let Ok(values) = &result {
            for (key, value) in keys.iter().zip(values) {
                self.record_lookup(key, value.is_some());
            }
        }
        self.count(result)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CoreError> {
        self.count(self.inner.set(key, value, ttl).await)
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, CoreError> {
        self.count(self.inner.set_if_absent(key, value, ttl).await)
    }

    async fn increment(&self, key: &str, delta: i64, ttl: Duration) -> Result<i64, CoreError> {
        self.count(self.inner.increment(key, delta, ttl).await)
    }

    async fn increment_each(
        &self,
        keys: &[String],
        delta: i64,
        ttl: Duration,
    ) -> Result<Vec<i64>, CoreError> {
        self.count(self.inner.increment_each(keys, delta, ttl).await)
    }

    async fn delete(&self, key: &str) -> Result<(), CoreError> {
        self.count(self.inner.delete(key).await)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, CoreError> {
        self.count(self.inner.delete_prefix(prefix).await)
    }

    async fn ping(&self) -> Result<(), CoreError> {
        self.count(self.inner.ping().await)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use dpg_core::error::ErrorCode;
    use dpg_core::ports::MockCache;
    use metrics::{
        Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };

    use super::*;

    /// Records counters as `name{label=value,...}` -> total.
    #[derive(Default)]
    struct CountingRecorder {
        counters: Mutex<BTreeMap<String, Arc<Total>>>,
    }

    #[derive(Default)]
    struct Total(AtomicU64);

    impl CounterFn for Total {
        fn increment(&self, value: u64) {
            self.0.fetch_add(value, Ordering::Relaxed);
        }
        fn absolute(&self, value: u64) {
            self.0.fetch_max(value, Ordering::Relaxed);
        }
    }

    impl CountingRecorder {
        fn totals(&self) -> BTreeMap<String, u64> {
            let counters = self.counters.lock().expect("lock");
            counters
                .iter()
                .map(|(name, total)| (name.clone(), total.0.load(Ordering::Relaxed)))
                .collect()
        }
    }

    impl Recorder for CountingRecorder {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            let mut counters = self.counters.lock().expect("lock");
            Counter::from_arc(counters.entry(name).or_default().clone())
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    fn unavailable() -> CoreError {
        CoreError::storage_unavailable()
    }

    #[test]
    fn counts_hits_misses_and_errors_per_backend() {
        let mut inner = MockCache::new();
        let mut replies = vec![
            Ok(Some(b"v".to_vec())),
            Ok(Some(b"v".to_vec())),
            Ok(None),
            Err(unavailable()),
        ]
        .into_iter();
        inner
            .expect_get()
            .times(4)
            .returning(move |_| replies.next().unwrap_or(Ok(None)));
        inner
            .expect_set()
            .times(1)
            .returning(|_, _, _| Err(unavailable()));
        inner.expect_increment().times(1).returning(|_, _, _| {
            Err(CoreError::invalid(
                ErrorCode::InvalidInput,
                "not an integer",
            ))
        });
        inner.expect_ping().times(1).returning(|| Ok(()));
        let cache = MeteredCache::new(inner, "test");
        let recorder = CountingRecorder::default();

        metrics::with_local_recorder(&recorder, || {
            futures::executor::block_on(async {
                for _ in 0..4 {
                    let _ = cache.get("k").await;
                }
                let _ = cache.set("k", b"v", Duration::from_secs(1)).await;
                let _ = cache.increment("n", 1, Duration::from_secs(1)).await;
                let _ = cache.ping().await;
            });
        });

        let expected: BTreeMap<String, u64> = [
            ("dpg_cache_errors_total{backend=test}".to_string(), 3),
            (
                "dpg_cache_hits_total{backend=test,keyspace=k}".to_string(),
                2,
            ),
            (
                "dpg_cache_misses_total{backend=test,keyspace=k}".to_string(),
                1,
            ),
        ]
        .into();
        assert_eq!(recorder.totals(), expected);
    }

    #[test]
    fn passes_results_through_unchanged() {
        let mut inner = MockCache::new();
        inner.expect_set_if_absent().returning(|_, _, _| Ok(false));
        inner.expect_delete_prefix().returning(|_| Ok(7));
        let cache = MeteredCache::new(inner, "test");

        futures::executor::block_on(async {
            assert!(
                !cache
                    .set_if_absent("k", b"v", Duration::from_secs(1))
                    .await
                    .expect("set_if_absent")
            );
            assert_eq!(cache.delete_prefix("p").await.expect("delete_prefix"), 7);
        });
    }
}
