//! The bb8 connection manager.
//!
//! Like `bb8_redis::RedisConnectionManager`, but with our own connect and response
//! timeouts: that manager always uses the driver's defaults (1 s to connect).

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisError, RedisFuture, Value};

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
    type Connection = RedisConnection;
    type Error = RedisError;

    async fn connect(&self) -> Result<Self::Connection, Self::Error> {
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&self.connection_config)
            .await?;
        Ok(RedisConnection {
            connection,
            broken: false,
        })
    }

    async fn is_valid(&self, connection: &mut Self::Connection) -> Result<(), Self::Error> {
        redis::cmd("PING").query_async::<()>(connection).await
    }

    fn has_broken(&self, connection: &mut Self::Connection) -> bool {
        connection.broken
    }
}

/// A multiplexed connection that remembers a transport failure. It never reconnects by itself
/// (a Redis restart kills it for good); instead of a PING before every use, which doubled the
/// round trips of every cache call, the pool drops it after the first command it failed.
pub(super) struct RedisConnection {
    connection: MultiplexedConnection,
    broken: bool,
}

impl RedisConnection {
    fn note<T>(&mut self, result: &Result<T, RedisError>) {
        if let Err(error) = result
            && (error.is_unrecoverable_error() || error.is_io_error() || error.is_timeout())
        {
            self.broken = true;
        }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let result = self.connection.req_packed_command(cmd).await;
            self.note(&result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let result = self
                .connection
                .req_packed_commands(pipeline, offset, count)
                .await;
            self.note(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.connection.get_db()
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
