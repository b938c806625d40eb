//! SQL storage on PostgreSQL and SQLite through SeaORM: connection and migrations
//! ([`SqlDatabase`]), items ([`SqlItemRepository`]), the last good network documents
//! ([`SqlSchemaStore`]), accounts ([`SqlUserRepository`], [`SqlSessionRepository`],
//! [`SqlApiKeyRepository`]), actions and their events ([`SqlActionRepository`]) and the
//! outbox ([`SqlOutbox`]). ORM models stay private to this module.

mod action_query;
mod action_repository;
mod api_key_repository;
mod database;
mod entity;
mod errors;
mod geo;
mod group_writer;
mod item_filter;
mod item_repository;
mod migrate;
mod outbox;
mod provision;
mod schema_store;
mod session_repository;
mod state_containment;
mod user_repository;
mod write_transaction;

pub use action_repository::SqlActionRepository;
pub use api_key_repository::SqlApiKeyRepository;
pub use database::{PoolSettings, PoolStats, SqlBackend, SqlDatabase, SqlSetupError};
pub use item_repository::SqlItemRepository;
pub use outbox::SqlOutbox;
pub use provision::ensure_postgres_database;
pub use schema_store::SqlSchemaStore;
pub use session_repository::SqlSessionRepository;
pub use user_repository::SqlUserRepository;
