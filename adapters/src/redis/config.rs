//! Where the Redis cache connects and how long it may wait.

use std::time::Duration;

/// Settings of a [`RedisCache`](super::RedisCache). The defaults bound a request to a few
/// hundred milliseconds when Redis is down, slow or black-holed.
#[derive(Clone)]
pub struct RedisCacheConfig {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://`, `unix://`).
    pub url: String,
    /// Prefix of every stored key, e.g. `dpg:<instance>:`.
    pub namespace: String,
    /// Bound on opening one TCP connection and its handshake.
    pub connect_timeout: Duration,
    /// Bound on one command (or script) round trip.
    pub response_timeout: Duration,
    /// Bound on waiting for a pooled connection, including a new connection's set-up.
    pub acquire_timeout: Duration,
    /// Connections kept in the pool; each is multiplexed, so few are needed.
    pub max_connections: u32,
}

impl RedisCacheConfig {
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
    pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
    pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(300);
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 32;

    /// The default timeouts and pool size for `url`, keys under `namespace`.
    pub fn new(url: impl Into<String>, namespace: impl Into<String>) -> Self {
        RedisCacheConfig {
            url: url.into(),
            namespace: namespace.into(),
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            response_timeout: Self::DEFAULT_RESPONSE_TIMEOUT,
            acquire_timeout: Self::DEFAULT_ACQUIRE_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

// The URL may carry a password: never print it.
impl std::fmt::Debug for RedisCacheConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCacheConfig")
            .field("url", &"<redacted>")
            .field("namespace", &self.namespace)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}
