//! The Network Schema: documents, the loaded catalog and JSON Schema validation.

pub mod catalog;
pub mod document;
pub mod validation;

pub use catalog::{CatalogOrigin, ItemSchema, NetworkCatalog, SchemaIndexEntry};
pub use document::{NetworkDocument, PeerAuthMode};
pub use validation::{CompiledSchema, SchemaCompiler};
