//! The `Cache` port on moka: one process, per-entry expiry, bounded by bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dpg_core::error::{CoreError, ErrorCode};
use dpg_core::ports::Cache;
use moka::Expiry;
use moka::ops::compute::Op;
use moka::sync::Cache as MokaCache;

/// Default bound on keys plus values held in memory.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// moka refuses expiries past 1000 years; nothing we cache needs more than a century.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// A cache private to this process (embedded mode, tests). Clones share the same entries.
///
/// Integers written by `increment` are stored as decimal text, as Redis does, so callers
/// see the same bytes whichever adapter is configured.
#[derive(Clone)]
pub struct MemoryCache {
    entries: MokaCache<String, Stored>,
}

#[derive(Clone)]
struct Stored {
    bytes: Arc<[u8]>,
    ttl: Duration,
}

impl Stored {
    fn new(bytes: &[u8], ttl: Duration) -> Self {
        Stored {
            bytes: bytes.into(),
            ttl: ttl.min(MAX_TTL),
        }
    }
}

/// Every write sets the expiry to the TTL given with that write; reads leave it alone.
struct TtlOfLastWrite;

impl Expiry<String, Stored> for TtlOfLastWrite {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Stored,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Stored,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

impl MemoryCache {
    /// A cache holding at most [`DEFAULT_MAX_BYTES`] of keys and values.
    pub fn new() -> Self {
        Self::with_max_bytes(DEFAULT_MAX_BYTES)
    }

    /// A cache holding at most `max_bytes` of keys and values; the least useful entries
    /// are evicted first when it is full.
    pub fn with_max_bytes(max_bytes: u64) -> Self {
        let entries = MokaCache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, value: &Stored| {
                u32::try_from(key.len() + value.bytes.len()).unwrap_or(u32::MAX)
            })
            .expire_after(TtlOfLastWrite)
            .build();
        MemoryCache { entries }
    }
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache")
            .field("entries", &self.entries.entry_count())
            .field("weighted_size", &self.entries.weighted_size())
            .finish()
    }
}

/// Reads a stored counter with Redis's rules: canonical decimal text of an `i64` only.
fn parse_counter(bytes: &[u8]) -> Result<i64, CoreError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse::<i64>().ok().filter(|n| n.to_string() == text))
        .ok_or_else(not_an_integer)
}

fn not_an_integer() -> CoreError {
    CoreError::invalid(
        ErrorCode::InvalidInput,
        "cached value is not an integer or out of range",
    )
}

#[async_trait]
impl Cache for MemoryCache {
    fn shared_across_processes(&self) -> bool {
        false
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CoreError> {
        Ok(self.entries.get(key).map(|stored| stored.bytes.to_vec()))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CoreError> {
        Ok(keys
            .iter()
            .map(|key| self.entries.get(key).map(|stored| stored.bytes.to_vec()))
            .collect())
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CoreError> {
        self.entries.insert(key.to_owned(), Stored::new(value, ttl));
        Ok(())
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, CoreError> {
        let entry = self
            .entries
            .entry_by_ref(key)
            .or_insert_with(|| Stored::new(value, ttl));
        Ok(entry.is_fresh())
    }

    async fn increment(&self, key: &str, delta: i64, ttl: Duration) -> Result<i64, CoreError> {
        let mut new_value = 0;
        // The compute closure runs under moka's per-key lock, so concurrent increments serialize.
        self.entries
            .entry_by_ref(key)
            .and_try_compute_with(|current| {
                let old_value = match current {
                    Some(entry) => parse_counter(&entry.value().bytes)?,
                    None => 0,
                };
                new_value = old_value.checked_add(delta).ok_or_else(not_an_integer)?;
                Ok::<_, CoreError>(Op::Put(Stored::new(new_value.to_string().as_bytes(), ttl)))
            })?;
        Ok(new_value)
    }

    async fn delete(&self, key: &str) -> Result<(), CoreError> {
        self.entries.invalidate(key);
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, CoreError> {
        // `invalidate_entries_if` cannot report a count; a scan of live keys can.
        let matching: Vec<Arc<String>> = self
            .entries
            .iter()
            .map(|(key, _)| key)
            .filter(|key| key.starts_with(prefix))
            .collect();
        let removed = matching
            .iter()
            .filter(|key| self.entries.remove(key.as_str()).is_some())
            .count();
        Ok(u64::try_from(removed).unwrap_or(u64::MAX))
    }

    async fn ping(&self) -> Result<(), CoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn counters_follow_redis_integer_rules() {
        let cases: &[(&[u8], Option<i64>)] = &[
            (b"0", Some(0)),
            (b"42", Some(42)),
            (b"-7", Some(-7)),
            (b"9223372036854775807", Some(i64::MAX)),
            (b"9223372036854775808", None),
            (b"+1", None),
            (b"01", None),
            (b" 1", None),
            (b"1.5", None),
            (b"", None),
            (b"abc", None),
            (&[0xff, 0x31], None),
        ];
        for (bytes, expected) in cases {
            assert_eq!(parse_counter(bytes).ok(), *expected, "input {bytes:?}");
        }
    }

    #[tokio::test]
    async fn increment_overflow_is_invalid_and_keeps_the_value() {
        let cache = MemoryCache::new();
        cache
            .set("n", i64::MAX.to_string().as_bytes(), LONG)
            .await
            .expect("set");

        let result = cache.increment("n", 1, LONG).await;

        assert!(
            matches!(result, Err(CoreError::Invalid { .. })),
            "got {result:?}"
        );
        assert_eq!(
            cache.get("n").await.expect("get"),
            Some(i64::MAX.to_string().into_bytes())
        );
    }

    #[tokio::test]
    async fn capacity_bounds_the_bytes_held() {
        let max_bytes = 4 * 1024;
        let cache = MemoryCache::with_max_bytes(max_bytes);
        for i in 0..100 {
            cache
                .set(&format!("key-{i:03}"), &[0u8; 200], LONG)
                .await
                .expect("set");
        }
        cache.entries.run_pending_tasks();

        assert!(cache.entries.weighted_size() <= max_bytes, "{cache:?}");
        assert!(cache.entries.entry_count() > 0, "{cache:?}");
    }

    #[tokio::test]
    async fn delete_prefix_does_not_count_expired_entries() {
        let cache = MemoryCache::new();
        cache.set("p:live", b"1", LONG).await.expect("set");
        cache
            .set("p:gone", b"1", Duration::ZERO)
            .await
            .expect("set");

        assert_eq!(cache.delete_prefix("p:").await.expect("delete_prefix"), 1);
        assert_eq!(cache.get("p:live").await.expect("get"), None);
    }

    #[tokio::test]
    async fn clones_share_entries() {
        let cache = MemoryCache::new();
        let clone = cache.clone();
        clone.set("k", b"v", LONG).await.expect("set");

        assert_eq!(cache.get("k").await.expect("get"), Some(b"v".to_vec()));
    }

    #[tokio::test]
    async fn absurd_ttls_are_capped_instead_of_rejected() {
        let cache = MemoryCache::new();
        cache.set("k", b"v", Duration::MAX).await.expect("set");
        assert_eq!(
            cache
                .increment("n", 1, Duration::MAX)
                .await
                .expect("increment"),
            1
        );

        assert_eq!(cache.get("k").await.expect("get"), Some(b"v".to_vec()));
    }
}
