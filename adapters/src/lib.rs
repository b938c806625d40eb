//! dpg-adapters: implementations of the core ports, one module per technology.

pub mod crypto;
pub mod fs;
pub mod http;
pub mod identity;
pub mod memory;
pub mod metered_cache;
pub mod peer_http;
pub mod redis;
pub mod sql;
pub mod system;
