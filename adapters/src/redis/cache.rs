//! `RedisCache`: the `Cache` port's operations as Redis commands.

use std::fmt::Display;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use bb8::{Pool, PooledConnection};
use dpg_core::error::{CoreError, ErrorCode};
use dpg_core::ports::Cache;
use redis::{AsyncConnectionConfig, Client, Cmd, FromRedisValue, RedisError, Script, Value};

use super::config::RedisCacheConfig;
use super::connector::{LogConnectionErrors, RedisConnector};
use super::keys::{namespaced, prefix_pattern, ttl_millis};

/// INCRBY then PEXPIRE of every key, each key as one atomic step. A non-integer is reported
/// under our own error code (keys before it stay incremented), and its expiry is left alone.
const INCREMENT_SCRIPT: &str = r"
local values = {}
for i, key in ipairs(KEYS) do
  local value = redis.pcall('INCRBY', key, ARGV[1])
  if type(value) == 'table' and value.err then
    return redis.error_reply('NOTINTEGER ' .. value.err)
  end
  redis.call('PEXPIRE', key, ARGV[2])
  values[i] = value
end
return values
";
/// Sent by digest (EVALSHA), so Redis neither receives nor hashes the source per call.
static INCREMENT: LazyLock<Script> = LazyLock::new(|| Script::new(INCREMENT_SCRIPT));
const NOT_INTEGER_CODE: &str = "NOTINTEGER";

/// Keys examined per SCAN step (and so at most the keys per UNLINK).
const SCAN_BATCH: u32 = 500;

/// The shared cache of an instance (and of all its replicas).
///
/// Clones share the pool. Building one never connects: connections are opened on use, so
/// an instance starts while Redis is down and reports `Unavailable` until it is back.
#[derive(Clone)]
pub struct RedisCache {
    pool: Pool<RedisConnector>,
    namespace: String,
}

impl RedisCache {
    /// A cache at `url` with the default timeouts, every key stored as `<namespace><key>`.
    ///
    /// Must be called inside a Tokio runtime. Fails only on a malformed URL.
    pub fn new(url: &str, namespace: impl Into<String>) -> Result<Self, CoreError> {
        Self::with_config(RedisCacheConfig::new(url, namespace))
    }

    /// A cache with explicit timeouts and pool size.
    ///
    /// Must be called inside a Tokio runtime. Fails only on a malformed URL.
    pub fn with_config(config: RedisCacheConfig) -> Result<Self, CoreError> {
        // The pool spawns its maintenance task at once; outside a runtime that would panic.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(CoreError::internal(
                "RedisCache must be created inside a Tokio runtime",
            ));
        }
        let client = Client::open(config.url.as_str()).map_err(|error| {
            CoreError::invalid(
                ErrorCode::InvalidInput,
                format!("invalid Redis URL: {error}"),
            )
        })?;
        let connection_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout));
        let pool = Pool::builder()
            .max_size(config.max_connections.max(1))
            .connection_timeout(config.acquire_timeout.max(Duration::from_millis(1)))
            // Dead connections are dropped after their first failed command instead.
            .test_on_check_out(false)
            .error_sink(Box::new(LogConnectionErrors))
            .build_unchecked(RedisConnector::new(client, connection_config));
        Ok(RedisCache {
            pool,
            namespace: config.namespace,
        })
    }

    /// The prefix of every stored key.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn key(&self, key: &str) -> String {
        namespaced(&self.namespace, key)
    }

    async fn connection(
        &self,
        operation: &'static str,
    ) -> Result<PooledConnection<'_, RedisConnector>, CoreError> {
        self.pool
            .get()
            .await
            .map_err(|error| unavailable(operation, error))
    }

    async fn query<T: FromRedisValue>(
        &self,
        operation: &'static str,
        command: &Cmd,
    ) -> Result<T, CoreError> {
        let mut connection = self.connection(operation).await?;
        command
            .query_async(&mut *connection)
            .await
            .map_err(|error| unavailable(operation, error))
    }
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("namespace", &self.namespace)
            .field("pool", &self.pool.state())
            .finish()
    }
}

/// Logs the driver detail (one line) and returns what callers may see.
fn unavailable(operation: &'static str, error: impl Display) -> CoreError {
    tracing::warn!(operation, error = %error, "cache unavailable");
    CoreError::Unavailable {
        code: ErrorCode::StorageUnavailable,
        message: "cache unavailable".to_string(),
    }
}

fn increment_error(error: RedisError) -> CoreError {
    if error.code() == Some(NOT_INTEGER_CODE) {
        CoreError::invalid(
            ErrorCode::InvalidInput,
            "cached value is not an integer or out of range",
        )
    } else {
        unavailable("increment", error)
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CoreError> {
        self.query("get", redis::cmd("GET").arg(self.key(key)))
            .await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut command = redis::cmd("MGET");
        for key in keys {
            command.arg(self.key(key));
        }
        self.query("mget", &command).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CoreError> {
        let mut command = redis::cmd("SET");
        command
            .arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(ttl_millis(ttl));
        self.query("set", &command).await
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, CoreError> {
        let mut command = redis::cmd("SET");
        command
            .arg(self.key(key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl_millis(ttl));
        // `OK` when stored, nil when a live value was already there.
        let reply: Value = self.query("set_if_absent", &command).await?;
        Ok(!matches!(reply, Value::Nil))
    }

    async fn increment(&self, key: &str, delta: i64, ttl: Duration) -> Result<i64, CoreError> {
        let values = self.increment_each(&[key.to_string()], delta, ttl).await?;
        values
            .into_iter()
            .next()
            .ok_or_else(|| unavailable("increment", "the script returned no value"))
    }

    async fn increment_each(
        &self,
        keys: &[String],
        delta: i64,
        ttl: Duration,
    ) -> Result<Vec<i64>, CoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = INCREMENT.prepare_invoke();
        for key in keys {
            invocation.key(self.key(key));
        }
        invocation.arg(delta).arg(ttl_millis(ttl));
        let mut connection = self.connection("increment").await?;
        invocation
            .invoke_async(&mut *connection)
            .await
            .map_err(increment_error)
    }

    async fn delete(&self, key: &str) -> Result<(), CoreError> {
        self.query("delete", redis::cmd("UNLINK").arg(self.key(key)))
            .await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, CoreError> {
        const OPERATION: &str = "delete_prefix";
        let pattern = prefix_pattern(&self.namespace, prefix);
        let mut connection = self.connection(OPERATION).await?;
        let mut cursor: u64 = 0;
        let mut removed: u64 = 0;
        loop {
            let (next_cursor, names): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH)
                .query_async(&mut *connection)
                .await
                .map_err(|error| unavailable(OPERATION, error))?;
            if !names.is_empty() {
                // SCAN may return a name twice; UNLINK counts only what it really removed.
                let unlinked: u64 = redis::cmd("UNLINK")
                    .arg(&names)
                    .query_async(&mut *connection)
                    .await
                    .map_err(|error| unavailable(OPERATION, error))?;
                removed += unlinked;
            }
            if next_cursor == 0 {
                return Ok(removed);
            }
            cursor = next_cursor;
        }
    }

    async fn ping(&self) -> Result<(), CoreError> {
        self.query("ping", &redis::cmd("PING")).await
    }
}
