//! SQL storage on PostgreSQL and SQLite through SeaORM: connection and migrations
//! ([`SqlDatabase`]), items ([`SqlItemRepository`]), the last good network documents
//! ([`SqlSchemaStore`]) and accounts ([`SqlUserRepository`], [`SqlSessionRepository`],
//! [`SqlApiKeyRepository`]). ORM models stay private to this module.

mod api_key_repository;
mod database;
mod entity;
mod errors;
mod geo;
mod item_filter;
mod item_repository;
mod migrate;
mod provision;
mod schema_store;
mod session_repository;
mod state_containment;
mod user_repository;

pub use api_key_repository::SqlApiKeyRepository;
pub use database::{PoolSettings, PoolStats, SqlBackend, SqlDatabase, SqlSetupError};
pub use item_repository::SqlItemRepository;
pub use provision::ensure_postgres_database;
pub use schema_store::SqlSchemaStore;
pub use session_repository::SqlSessionRepository;
pub use user_repository::SqlUserRepository;
