use std::time::Duration;

use async_trait::async_trait;

use crate::error::CoreError;

/// A shared key-value cache with expiry (Redis in production, in-process when embedded).
///
/// Every method MUST return `Err(CoreError::Unavailable)` when the backend cannot be reached
/// within a short bound, and never block a request for long: callers treat the cache as an
/// optimisation and degrade to uncached work on error. Keys are namespaced by the adapter.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Cache: Send + Sync {
    /// The value, or `None` when absent or expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CoreError>;

    /// The values of several keys in one round trip, in the order of `keys`.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CoreError>;

    /// Stores `value` for `ttl`, replacing any previous value.
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CoreError>;

    /// Stores `value` for `ttl` only if the key is absent. MUST return `true` when this call
    /// stored it and `false` when a live value already existed (atomic across replicas).
    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, CoreError>;

    /// Adds `delta` to the integer at `key` (absent counts as 0), refreshes its expiry to `ttl`
    /// and returns the new value. Atomic across replicas. MUST return `Invalid` if the stored
    /// value is not an integer.
    async fn increment(&self, key: &str, delta: i64, ttl: Duration) -> Result<i64, CoreError>;

    /// [`Cache::increment`] of each of `keys`, in one round trip where the backend allows it;
    /// the new values in the order of `keys`. Atomic per key, not across keys: a failure may
    /// leave earlier keys incremented.
    async fn increment_each(
        &self,
        keys: &[String],
        delta: i64,
        ttl: Duration,
    ) -> Result<Vec<i64>, CoreError> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.increment(key, delta, ttl).await?);
        }
        Ok(values)
    }

    /// Removes one key; absent keys are not an error.
    async fn delete(&self, key: &str) -> Result<(), CoreError>;

    /// Removes every key starting with `prefix` and returns how many were removed.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, CoreError>;

    /// Cheap liveness check for readiness reports.
    async fn ping(&self) -> Result<(), CoreError>;

    /// Whether other processes (replicas) use the same entries. Work coordinated across
    /// replicas through the cache (locks) is needed only then.
    fn shared_across_processes(&self) -> bool {
        true
    }
}
