//! Helpers that give each test its own PostgreSQL database, Redis key prefix, SQLite file,
//! and real instances on loopback.

pub mod fault_proxy;
pub mod instance;
pub mod keys;
pub mod network;
pub mod postgres;
pub mod redis;
pub mod tls_proxy;
