//! Opening the database: one pool per process, PostgreSQL or SQLite chosen by the URL.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, DatabaseConnection, DbBackend, DbErr};

use super::errors::storage_error;

/// Which database a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlBackend {
    Postgres,
    Sqlite,
}

impl SqlBackend {
    /// `postgres://`/`postgresql://` or `sqlite:`; `None` for anything else.
    pub fn from_url(url: &str) -> Option<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(SqlBackend::Postgres)
        } else if url.starts_with("sqlite:") {
            Some(SqlBackend::Sqlite)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SqlBackend::Postgres => "postgres",
            SqlBackend::Sqlite => "sqlite",
        }
    }
}

/// Pool sizing and waiting.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSettings {
    /// Most connections open at once; `None` picks a default per backend (PostgreSQL 20,
    /// SQLite file 4, SQLite in memory 1).
    pub max_connections: Option<u32>,
    /// How long a call waits for a connection before failing as unavailable: a dead database
    /// must not hold requests for long.
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: None,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// Connection counts of the pool, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub in_use: u32,
    pub idle: u32,
    pub max: u32,
}

/// Why the database could not be opened or migrated (start-up errors, for operators).
#[derive(Debug, thiserror::Error)]
pub enum SqlSetupError {
    #[error("unsupported database URL: expected postgres://... or sqlite://path?mode=rwc")]
    UnsupportedUrl,
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    #[error("could not create the directory {path} for the SQLite database: {source}")]
    CreateDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not connect to the {backend} database: {source}")]
    Connect {
        backend: &'static str,
        #[source]
        source: DbErr,
    },
    #[error("refusing to migrate: {0}")]
    ForeignSchema(String),
    #[error("database migration failed: {0}")]
    Migration(String),
}

/// The connection pool of one instance's database.
#[derive(Clone)]
pub struct SqlDatabase {
    conn: DatabaseConnection,
    backend: SqlBackend,
}

impl std::fmt::Debug for SqlDatabase {
    // The connection options hold the URL and its password: show the backend only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlDatabase")
            .field("backend", &self.backend)
            .finish()
    }
}

impl SqlDatabase {
    /// Connects with default pool settings.
    pub async fn connect(url: &str) -> Result<Self, SqlSetupError> {
        Self::connect_with(url, &PoolSettings::default()).await
    }

    /// Connects to `postgres://...` or `sqlite://path?mode=rwc` (creating the SQLite file's
    /// directory). Fails when the database does not answer within the acquire timeout.
    pub async fn connect_with(url: &str, settings: &PoolSettings) -> Result<Self, SqlSetupError> {
        let backend = SqlBackend::from_url(url).ok_or(SqlSetupError::UnsupportedUrl)?;
        let options = match backend {
            SqlBackend::Postgres => postgres_options(url, settings)?,
            SqlBackend::Sqlite => sqlite_options(url, settings).await?,
        };
        let conn = sea_orm::Database::connect(options)
            .await
            .map_err(|source| SqlSetupError::Connect {
                backend: backend.as_str(),
                source,
            })?;
        Ok(SqlDatabase { conn, backend })
    }

    pub fn backend(&self) -> SqlBackend {
        self.backend
    }

    /// Round trip to the database.
    pub async fn ping(&self) -> Result<(), dpg_core::error::CoreError> {
        self.conn
            .ping()
            .await
            .map_err(|e| storage_error("ping", &e))
    }

    pub fn pool_stats(&self) -> PoolStats {
        let (size, idle, max) = match self.backend {
            SqlBackend::Postgres => {
                let pool = self.conn.get_postgres_connection_pool();
                (
                    pool.size(),
                    pool.num_idle(),
                    pool.options().get_max_connections(),
                )
            }
            SqlBackend::Sqlite => {
                let pool = self.conn.get_sqlite_connection_pool();
                (
                    pool.size(),
                    pool.num_idle(),
                    pool.options().get_max_connections(),
                )
            }
        };
        let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
        PoolStats {
            in_use: size - idle,
            idle,
            max,
        }
    }

    /// Closes every connection (graceful shutdown); later calls fail as unavailable.
    pub async fn close(&self) {
        if let Err(err) = self.conn.close_by_ref().await {
            tracing::warn!(error = %err, "closing the database pool failed");
        }
    }

    pub(super) fn connection(&self) -> &DatabaseConnection {
        &self.conn
    }

    pub(super) fn db_backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }
}

fn postgres_options(url: &str, settings: &PoolSettings) -> Result<ConnectOptions, SqlSetupError> {
    // Checked here so that no error message ever echoes the URL (and its password).
    url::Url::parse(url).map_err(|e| SqlSetupError::InvalidUrl(e.to_string()))?;
    let mut options = common_options(url, settings, 20);
    options
        .min_connections(1)
        .idle_timeout(Duration::from_secs(600))
        .max_lifetime(Duration::from_secs(1800))
        .set_application_name("dpg")
        // A database that stops answering mid-query must not hold a request forever.
        .map_sqlx_postgres_opts(|pg| pg.options([("statement_timeout", "30s")]));
    Ok(options)
}

async fn sqlite_options(
    url: &str,
    settings: &PoolSettings,
) -> Result<ConnectOptions, SqlSetupError> {
    let parsed = SqliteConnectOptions::from_str(url)
        .map_err(|e| SqlSetupError::InvalidUrl(e.to_string()))?;
    if is_in_memory(url) {
        // Every connection of an in-memory database shares it only while one stays open.
        let mut options = common_options(url, settings, 1);
        options
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
        return Ok(options);
    }
    if let Some(dir) = parsed
        .get_filename()
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|source| SqlSetupError::CreateDirectory {
                path: dir.to_path_buf(),
                source,
            })?;
    }
    let mut options = common_options(url, settings, 4);
    options
        .idle_timeout(Duration::from_secs(600))
        // WAL lets readers proceed while one connection writes.
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
        });
    Ok(options)
}

fn common_options(url: &str, settings: &PoolSettings, default_max: u32) -> ConnectOptions {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(settings.max_connections.unwrap_or(default_max).max(1))
        .acquire_timeout(settings.acquire_timeout)
        // Check a pooled connection only after it sat idle (a peer may have dropped it).
        .test_before_acquire_if_idle_for(Duration::from_secs(30))
        // sqlx logs every statement at INFO; statements are debug detail, slow ones a warning.
        .sqlx_logging(true)
        .sqlx_logging_level(log::LevelFilter::Debug)
        .sqlx_slow_statements_logging_settings(log::LevelFilter::Warn, Duration::from_secs(1));
    options
}

fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_follows_the_url_scheme() {
        assert_eq!(
            SqlBackend::from_url("postgres://u@h/db"),
            Some(SqlBackend::Postgres)
        );
        assert_eq!(
            SqlBackend::from_url("postgresql://u@h/db"),
            Some(SqlBackend::Postgres)
        );
        assert_eq!(
            SqlBackend::from_url("sqlite://data/dpg.db?mode=rwc"),
            Some(SqlBackend::Sqlite)
        );
        assert_eq!(
            SqlBackend::from_url("sqlite::memory:"),
            Some(SqlBackend::Sqlite)
        );
        assert_eq!(SqlBackend::from_url("mysql://h/db"), None);
    }

    #[tokio::test]
    async fn sqlite_connect_creates_the_parent_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/deeper/dpg.sqlite");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let db = SqlDatabase::connect(&url).await.expect("connects");
        db.ping().await.expect("answers");
        assert!(path.exists());
        let stats = db.pool_stats();
        assert_eq!(stats.max, 4);
        assert!(stats.in_use + stats.idle <= stats.max);
    }

    #[tokio::test]
    async fn in_memory_sqlite_keeps_its_schema_on_one_connection() {
        let db = SqlDatabase::connect("sqlite::memory:")
            .await
            .expect("connects");
        db.migrate().await.expect("migrates");
        db.migrate().await.expect("migrates again");
        assert_eq!(db.pool_stats().max, 1);
        let store = crate::sql::SqlSchemaStore::new(&db);
        use dpg_core::ports::SchemaStore;
        assert_eq!(store.load().await.expect("table exists"), Vec::new());
    }

    /// Whether the bundled SQLite was built with `option` (`sqlite_compileoption_used`).
    async fn sqlite_built_with(option: &str) -> bool {
        use sea_orm::{ConnectionTrait, Statement, Value};
        let db = SqlDatabase::connect("sqlite::memory:")
            .await
            .expect("connects");
        let row = db
            .connection()
            .query_one_raw(Statement::from_sql_and_values(
                sea_orm::DbBackend::Sqlite,
                "SELECT sqlite_compileoption_used(?) AS used",
                [Value::from(option)],
            ))
            .await
            .expect("query")
            .expect("one row");
        row.try_get::<i64>("", "used").expect("integer") == 1
    }

    /// Without query planner stability SQLite plans a statement again whenever a new value
    /// is bound to its `LIMIT ?`: every page query would be parsed and planned anew
    /// (`.cargo/config.toml` builds the bundled SQLite with it).
    #[tokio::test]
    async fn sqlite_keeps_query_plans_across_bound_limits() {
        assert!(sqlite_built_with("ENABLE_QPSG").await);
    }

    /// With memory statistics on, every allocation SQLite makes (one per column of every row
    /// handed to the driver) takes a global mutex (`.cargo/config.toml` turns them off).
    #[tokio::test]
    async fn sqlite_allocates_without_a_global_lock() {
        assert!(sqlite_built_with("DEFAULT_MEMSTATUS=0").await);
        assert!(!sqlite_built_with("DEFAULT_MEMSTATUS=1").await);
    }

    #[tokio::test]
    async fn invalid_urls_are_refused_without_echoing_them() {
        let err = SqlDatabase::connect("postgres://user:secret@[bad/db")
            .await
            .expect_err("refused");
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(matches!(
            SqlDatabase::connect("mysql://h/db").await,
            Err(SqlSetupError::UnsupportedUrl)
        ));
    }
}
