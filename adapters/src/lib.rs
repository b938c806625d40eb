//! dpg-adapters: implementations of the core ports, one module per technology.

pub mod fs;
pub mod http;
pub mod memory;
pub mod redis;
pub mod sql;
pub mod system;
