//! Running the migrations: one replica at a time, and never over another program's tables.

use std::collections::HashSet;

use dpg_migration::{MIGRATION_TABLE, Migrator, MigratorTrait, OWNED_TABLES};
use sea_orm::sqlx::postgres::PgConnection;
use sea_orm::sqlx::{self, Connection};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use super::database::{SqlBackend, SqlDatabase, SqlSetupError};

/// Advisory lock key of our migrations ("dpg_migr" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x6470_675f_6d69_6772;

/// How long a replica waits for another one's migration before giving up.
const MIGRATION_LOCK_TIMEOUT: &str = "SET lock_timeout = '10min'";

impl SqlDatabase {
    /// Applies pending migrations. On PostgreSQL it holds an advisory lock meanwhile, so that
    /// replicas starting together migrate one after the other. Refuses (before changing
    /// anything) a database that holds tables of another program, such as the reference
    /// implementation's partitioned `items`.
    pub async fn migrate(&self) -> Result<(), SqlSetupError> {
        migrate(self).await
    }
}

async fn migrate(database: &SqlDatabase) -> Result<(), SqlSetupError> {
    match database.backend() {
        SqlBackend::Postgres => {
            let lock = MigrationLock::acquire(database).await?;
            let result = migrate_unlocked(database).await;
            lock.release().await;
            result
        }
        // One file, one process: SQLite needs no lock across replicas.
        SqlBackend::Sqlite => migrate_unlocked(database).await,
    }
}

async fn migrate_unlocked(database: &SqlDatabase) -> Result<(), SqlSetupError> {
    let conn = database.connection();
    refuse_foreign_schema(conn).await?;
    Migrator::up(conn, None)
        .await
        .map_err(|e| SqlSetupError::Migration(e.to_string()))?;
    tracing::info!(
        backend = database.backend().as_str(),
        "database schema is up to date"
    );
    Ok(())
}

/// A session-level advisory lock held on a connection of its own (outside the pool), so that
/// the migrations can use the pool freely; if the process dies, the session and the lock end.
struct MigrationLock {
    conn: PgConnection,
}

impl MigrationLock {
    async fn acquire(database: &SqlDatabase) -> Result<Self, SqlSetupError> {
        let options = database
            .connection()
            .get_postgres_connection_pool()
            .connect_options();
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(|e| lock_error("connect for the migration lock", &e))?;
        sqlx::query(MIGRATION_LOCK_TIMEOUT)
            .execute(&mut conn)
            .await
            .map_err(|e| lock_error("set the lock timeout", &e))?;
        tracing::info!("waiting for the migration lock");
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut conn)
            .await
            .map_err(|e| lock_error("take the migration lock", &e))?;
        Ok(MigrationLock { conn })
    }

    async fn release(mut self) {
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut self.conn)
            .await;
        if let Err(err) = unlocked {
            // Closing the session below releases it anyway.
            tracing::warn!(error = %err, "releasing the migration lock failed");
        }
        if let Err(err) = self.conn.close().await {
            tracing::warn!(error = %err, "closing the migration lock connection failed");
        }
    }
}

fn lock_error(step: &str, err: &sqlx::Error) -> SqlSetupError {
    SqlSetupError::Migration(format!("could not {step}: {err}"))
}

/// What a relation of the given name is, if it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Relation {
    Table,
    PartitionedTable,
    Other(String),
}

/// Refuses a database where one of our tables exists without the migration that creates it,
/// or where migrations are recorded that this program does not know.
async fn refuse_foreign_schema<C: ConnectionTrait>(conn: &C) -> Result<(), SqlSetupError> {
    let applied = applied_migrations(conn).await?;
    let known: HashSet<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    let mut unknown: Vec<&String> = applied.difference(&known).collect();
    if !unknown.is_empty() {
        unknown.sort();
        return Err(SqlSetupError::ForeignSchema(format!(
            "the database records migrations this program does not know ({}); it belongs to a newer version or another program",
            unknown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    for owned in OWNED_TABLES {
        let Some(relation) = relation_kind(conn, owned.table).await? else {
            continue;
        };
        match relation {
            Relation::PartitionedTable => {
                return Err(SqlSetupError::ForeignSchema(format!(
                    "table `{}` is partitioned (the TypeScript implementation's layout); use an empty database",
                    owned.table
                )));
            }
            Relation::Other(kind) => {
                return Err(SqlSetupError::ForeignSchema(format!(
                    "`{}` exists but is not a plain table ({kind}); use an empty database",
                    owned.table
                )));
            }
            Relation::Table if !applied.contains(owned.created_by_migration) => {
                return Err(SqlSetupError::ForeignSchema(format!(
                    "table `{}` exists but was not created by this program's migrations; use an empty database",
                    owned.table
                )));
            }
            Relation::Table => {}
        }
    }
    Ok(())
}

async fn applied_migrations<C: ConnectionTrait>(
    conn: &C,
) -> Result<HashSet<String>, SqlSetupError> {
    match relation_kind(conn, MIGRATION_TABLE).await? {
        None => return Ok(HashSet::new()),
        Some(Relation::Table) => {}
        Some(_) => {
            return Err(SqlSetupError::ForeignSchema(format!(
                "`{MIGRATION_TABLE}` exists but is not a plain table"
            )));
        }
    }
    let backend = conn.get_database_backend();
    // The table name is our constant, not input.
    let sql = format!("SELECT version FROM {MIGRATION_TABLE}");
    let rows = conn
        .query_all_raw(Statement::from_string(backend, sql))
        .await
        .map_err(|e| inspect_error(&e))?;
    rows.iter()
        .map(|row| {
            row.try_get::<String>("", "version")
                .map_err(|e| inspect_error(&e))
        })
        .collect()
}

async fn relation_kind<C: ConnectionTrait>(
    conn: &C,
    name: &str,
) -> Result<Option<Relation>, SqlSetupError> {
    let backend = conn.get_database_backend();
    let statement = match backend {
        DbBackend::Postgres => Statement::from_sql_and_values(
            backend,
            "SELECT c.relkind::text AS kind FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relname = $1",
            [name.into()],
        ),
        _ => Statement::from_sql_and_values(
            backend,
            "SELECT type AS kind FROM sqlite_master WHERE name = ?",
            [name.into()],
        ),
    };
    let row = conn
        .query_one_raw(statement)
        .await
        .map_err(|e| inspect_error(&e))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let kind: String = row.try_get("", "kind").map_err(|e| inspect_error(&e))?;
    Ok(Some(match kind.as_str() {
        "r" | "table" => Relation::Table,
        "p" => Relation::PartitionedTable,
        _ => Relation::Other(kind),
    }))
}

fn inspect_error(err: &DbErr) -> SqlSetupError {
    SqlSetupError::Migration(format!("could not inspect the database schema: {err}"))
}
