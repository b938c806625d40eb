//! Creating a PostgreSQL database for a local network of instances (`dpg devnet`).

use sea_orm::{ConnectionTrait, Database, Statement};

use super::database::SqlSetupError;

/// Makes sure the database `name` exists on the server of `server_url` (any database the
/// user may connect to); with `recreate`, drops it first (closing its connections).
pub async fn ensure_postgres_database(
    server_url: &str,
    name: &str,
    recreate: bool,
) -> Result<(), SqlSetupError> {
    // Identifiers cannot be bound as parameters: only plain names are accepted.
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(SqlSetupError::InvalidUrl(format!(
            "database name {name:?} must be lowercase letters, digits and _"
        )));
    }
    let connect = |source| SqlSetupError::Connect {
        backend: "postgresql",
        source,
    };
    let server = Database::connect(server_url).await.map_err(connect)?;
    if recreate {
        server
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await
            .map_err(connect)?;
    }
    let exists = server
        .query_one_raw(Statement::from_sql_and_values(
            server.get_database_backend(),
            "SELECT 1 FROM pg_database WHERE datname = $1",
            [name.into()],
        ))
        .await
        .map_err(connect)?
        .is_some();
    if !exists {
        server
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .map_err(connect)?;
    }
    server.close().await.map_err(connect)?;
    Ok(())
}
