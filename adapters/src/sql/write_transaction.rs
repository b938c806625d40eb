//! Transactions that write.

use sea_orm::{
    DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};

/// Begins a transaction that will write. On SQLite it is `BEGIN IMMEDIATE`: the write lock is
/// taken at once, so concurrent writers queue on the busy timeout instead of failing when a
/// read snapshot taken earlier in a deferred transaction turns out to be stale. PostgreSQL
/// keeps its default isolation (READ COMMITTED); row locks order its writers.
pub(super) async fn begin_write(conn: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    match conn.get_database_backend() {
        DbBackend::Sqlite => {
            conn.begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
        }
        _ => conn.begin().await,
    }
}
