//! In-process adapters for the embedded mode and for tests.

mod cache;

pub use cache::{DEFAULT_MAX_BYTES, MemoryCache};
