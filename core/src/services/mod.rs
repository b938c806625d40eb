//! Use cases, written against the ports only.

pub mod auth;
pub mod health;
pub mod items;
mod page_cache;
pub mod rate_limit;
pub mod schemas;

pub use auth::{AuthService, AuthServiceDeps, AuthSettings, IssuedSession, SignedIn};
pub use health::{HealthService, Readiness};
pub use items::{ItemService, ItemServiceDeps};
pub use schemas::{LoadStatus, NetworkSchemaService, ReloadReport, SchemaServiceDeps};
