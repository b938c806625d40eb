//! The bb8 connection manager.
//!
//! Like `bb8_redis::RedisConnectionManager`, but with our own connect and response
//! timeouts: that manager always uses the driver's defaults (1 s to connect).

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError};

pub(super) struct RedisConnector {
    client: Client,
    connection_config: AsyncConnectionConfig,
}

impl RedisConnector {
    pub(super) fn new(client: Client, connection_config: AsyncConnectionConfig) -> Self {
        RedisConnector {
            client,
            connection_config,
        }
    }
}

impl bb8::ManageConnection for RedisConnector {
    type Connection = MultiplexedConnection;
    type Error = RedisError;

    async fn connect(&self) -> Result<Self::Connection, Self::Error> {
        self.client
            .get_multiplexed_async_connection_with_config(&self.connection_config)
            .await
    }

    // A multiplexed connection never reconnects by itself: this check on checkout is what
    // drops connections that died with a Redis restart.
    async fn is_valid(&self, connection: &mut Self::Connection) -> Result<(), Self::Error> {
        redis::cmd("PING").query_async::<()>(connection).await
    }

    fn has_broken(&self, _connection: &mut Self::Connection) -> bool {
        false
    }
}

/// Logs connection failures that happen in the pool's background tasks, where no request
/// would otherwise see their cause.
#[derive(Debug, Clone, Copy)]
pub(super) struct LogConnectionErrors;

impl bb8::ErrorSink<RedisError> for LogConnectionErrors {
    fn sink(&self, error: RedisError) {
        tracing::warn!(error = %error, "redis cache connection failed");
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<RedisError>> {
        Box::new(*self)
    }
}
