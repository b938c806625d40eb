//! The `Cache` port on Redis through a bb8 pool of multiplexed connections.
//!
//! Every key lives under a namespace prefix so that several instances (or tests) can share
//! one Redis. Any Redis or pool failure becomes `CoreError::Unavailable` within a few hundred
//! milliseconds; the instance starts and degrades while Redis is down.

mod cache;
mod config;
mod connector;
mod keys;

pub use cache::RedisCache;
pub use config::RedisCacheConfig;
