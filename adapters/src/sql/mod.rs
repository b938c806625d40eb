//! SQL storage on PostgreSQL and SQLite through SeaORM: connection and migrations
//! ([`SqlDatabase`]), items ([`SqlItemRepository`]) and the last good network documents
//! ([`SqlSchemaStore`]). ORM models stay private to this module.

mod database;
mod entity;
mod errors;
mod geo;
mod item_filter;
mod item_repository;
mod migrate;
mod schema_store;
mod state_containment;

pub use database::{PoolSettings, PoolStats, SqlBackend, SqlDatabase, SqlSetupError};
pub use item_repository::SqlItemRepository;
pub use schema_store::SqlSchemaStore;
