//! Helpers that give each test its own PostgreSQL database, Redis key prefix, SQLite file.

pub mod postgres;
pub mod redis;
