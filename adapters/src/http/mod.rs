//! Network documents and JSON Schemas over HTTP(S), with a guard against fetching internal
//! addresses (server-side request forgery), and the router that picks a source per location.

mod address_policy;
mod guarded_resolver;
mod router;
mod schema_source;

pub use address_policy::{AddressClass, AddressPolicy, classify};
pub use router::SchemaSourceRouter;
pub use schema_source::{HttpSchemaSource, HttpSourceConfig};
