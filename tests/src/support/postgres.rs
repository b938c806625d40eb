//! Databases for tests: a fresh PostgreSQL database per test on the server from
//! `DPG_TEST_POSTGRES_URL`, or a fresh SQLite file in a temporary directory.
//!
//! An unreachable PostgreSQL is an error for the caller to fail on, never a reason to skip.

use anyhow::{Context, anyhow};
use dpg_adapters::sql::SqlDatabase;
use sea_orm::sqlx::postgres::PgConnection;
use sea_orm::sqlx::{self, AssertSqlSafe, Connection};
use sea_orm::{ConnectionTrait, Database};
use tempfile::TempDir;
use uuid::Uuid;

pub const POSTGRES_URL_ENV: &str = "DPG_TEST_POSTGRES_URL";
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Prefix of every database these helpers create (`dpg_t_<random>`).
pub const TEST_DATABASE_PREFIX: &str = "dpg_t_";

/// The PostgreSQL server that tests use (any existing database on it).
pub fn postgres_url() -> String {
    std::env::var(POSTGRES_URL_ENV).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string())
}

/// A fresh, empty database on the test server, dropped (with its connections) when this value
/// is dropped.
#[derive(Debug)]
pub struct TestPostgres {
    admin_url: String,
    name: String,
    url: String,
}

impl TestPostgres {
    pub async fn create() -> anyhow::Result<Self> {
        let admin_url = postgres_url();
        let name = format!("{TEST_DATABASE_PREFIX}{}", Uuid::new_v4().simple());
        let mut url = url::Url::parse(&admin_url)
            .with_context(|| format!("{POSTGRES_URL_ENV} is not a valid URL"))?;
        url.set_path(&name);
        let mut admin = admin_connection(&admin_url).await?;
        // The name is generated above (hex only); identifiers cannot be bound.
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .with_context(|| format!("could not create test database {name}"))?;
        admin.close().await.ok();
        Ok(TestPostgres {
            admin_url,
            name,
            url: url.to_string(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A pool on this database, not migrated.
    pub async fn connect(&self) -> anyhow::Result<SqlDatabase> {
        SqlDatabase::connect(&self.url)
            .await
            .with_context(|| format!("could not connect to test database {}", self.name))
    }

    /// A pool on this database with every migration applied.
    pub async fn migrated(&self) -> anyhow::Result<SqlDatabase> {
        let db = self.connect().await?;
        db.migrate().await.context("migrations failed")?;
        Ok(db)
    }

    /// Runs SQL directly (to set up what the program would refuse to create itself).
    pub async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        execute(&self.url, sql).await
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop may run inside or outside a runtime: use a thread with a runtime of its own.
        let dropped = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(drop_database(&admin_url, &name))
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("could not drop test database {}: {error:#}", self.name),
            Err(_) => eprintln!(
                "could not drop test database {}: the dropping thread panicked",
                self.name
            ),
        }
    }
}

async fn admin_connection(admin_url: &str) -> anyhow::Result<PgConnection> {
    // The URL may hold a password: name the variable, not its value.
    PgConnection::connect(admin_url).await.map_err(|error| {
        anyhow!("PostgreSQL from {POSTGRES_URL_ENV} (default {DEFAULT_POSTGRES_URL}) does not answer: {error}")
    })
}

async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = admin_connection(admin_url).await?;
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    admin.close().await.ok();
    Ok(())
}

/// A fresh SQLite database file in a temporary directory (removed on drop). The file lives in
/// a subdirectory that does not exist yet, as a first start would find it.
#[derive(Debug)]
pub struct TestSqlite {
    dir: TempDir,
    url: String,
}

impl TestSqlite {
    pub fn create() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("could not create a temporary directory")?;
        let path = dir.path().join(SQLITE_SUBDIRECTORY).join("dpg.sqlite");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Ok(TestSqlite { dir, url })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn connect(&self) -> anyhow::Result<SqlDatabase> {
        SqlDatabase::connect(&self.url)
            .await
            .context("could not open the test SQLite database")
    }

    pub async fn migrated(&self) -> anyhow::Result<SqlDatabase> {
        let db = self.connect().await?;
        db.migrate().await.context("migrations failed")?;
        Ok(db)
    }

    /// Runs SQL directly, before or after the program opened the file.
    pub async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(self.dir.path().join(SQLITE_SUBDIRECTORY))?;
        execute(&self.url, sql).await
    }
}

const SQLITE_SUBDIRECTORY: &str = "data";

/// Either kind of test database, so that one suite runs against both.
#[derive(Debug)]
pub enum TestDatabase {
    Postgres(TestPostgres),
    Sqlite(TestSqlite),
}

impl TestDatabase {
    pub async fn postgres() -> anyhow::Result<Self> {
        Ok(TestDatabase::Postgres(TestPostgres::create().await?))
    }

    pub fn sqlite() -> anyhow::Result<Self> {
        Ok(TestDatabase::Sqlite(TestSqlite::create()?))
    }

    pub fn url(&self) -> &str {
        match self {
            TestDatabase::Postgres(db) => db.url(),
            TestDatabase::Sqlite(db) => db.url(),
        }
    }

    pub async fn connect(&self) -> anyhow::Result<SqlDatabase> {
        match self {
            TestDatabase::Postgres(db) => db.connect().await,
            TestDatabase::Sqlite(db) => db.connect().await,
        }
    }

    pub async fn migrated(&self) -> anyhow::Result<SqlDatabase> {
        match self {
            TestDatabase::Postgres(db) => db.migrated().await,
            TestDatabase::Sqlite(db) => db.migrated().await,
        }
    }

    pub async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        match self {
            TestDatabase::Postgres(db) => db.execute(sql).await,
            TestDatabase::Sqlite(db) => db.execute(sql).await,
        }
    }
}

async fn execute(url: &str, sql: &str) -> anyhow::Result<()> {
    let conn = Database::connect(url)
        .await
        .context("could not connect to the test database")?;
    conn.execute_unprepared(sql)
        .await
        .context("test SQL failed")?;
    conn.close().await.ok();
    Ok(())
}
