//! Redis for tests: the server from `DPG_TEST_REDIS_URL` and a key namespace per test.
//!
//! An unreachable Redis is an error for the caller to fail on, never a reason to skip.

use anyhow::{Context, anyhow};
use dpg_adapters::redis::RedisCache;
use dpg_core::ports::Cache;
use uuid::Uuid;

pub const REDIS_URL_ENV: &str = "DPG_TEST_REDIS_URL";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The Redis that tests use.
pub fn redis_url() -> String {
    std::env::var(REDIS_URL_ENV).unwrap_or_else(|_| DEFAULT_REDIS_URL.to_string())
}

/// A namespace no other test (or run) shares, readable in `redis-cli --scan`.
pub fn unique_namespace(test_name: &str) -> String {
    format!("dpg-test:{test_name}:{}:", Uuid::new_v4().simple())
}

/// A cache on the test Redis under a fresh namespace, checked to answer.
pub async fn redis_cache(test_name: &str) -> anyhow::Result<RedisCache> {
    let url = redis_url();
    let cache = RedisCache::new(&url, unique_namespace(test_name))
        .with_context(|| format!("{REDIS_URL_ENV} is not a valid Redis URL"))?;
    // The URL may hold a password: name the variable, not its value.
    cache.ping().await.map_err(|error| {
        anyhow!("Redis from {REDIS_URL_ENV} (default {DEFAULT_REDIS_URL}) does not answer: {error}")
    })?;
    Ok(cache)
}
