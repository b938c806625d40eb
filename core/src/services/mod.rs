//! Use cases, written against the ports only.

pub mod health;
pub mod items;
mod page_cache;
pub mod schemas;

pub use health::{HealthService, Readiness};
pub use items::{ItemService, ItemServiceDeps};
pub use schemas::{LoadStatus, NetworkSchemaService, ReloadReport, SchemaServiceDeps};
