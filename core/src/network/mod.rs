//! The Network Schema: documents, the loaded catalog and JSON Schema validation.

pub mod catalog;
pub mod document;
pub mod privacy;
pub mod refs;
pub mod validation;

pub use catalog::{CatalogOrigin, ItemSchema, NetworkCatalog, SchemaIndexEntry};
pub use document::{NetworkDocument, PeerAuthMode};
pub use validation::{CompiledSchema, SchemaCompiler};

use std::sync::{Arc, RwLock};

/// The catalog in force; replaced as a whole on reload so readers never see a mix.
#[derive(Debug)]
pub struct CatalogHandle(RwLock<Arc<NetworkCatalog>>);

impl CatalogHandle {
    pub fn new(catalog: NetworkCatalog) -> Self {
        CatalogHandle(RwLock::new(Arc::new(catalog)))
    }

    pub fn current(&self) -> Arc<NetworkCatalog> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn replace(&self, catalog: NetworkCatalog) {
        let catalog = Arc::new(catalog);
        match self.0.write() {
            Ok(mut guard) => *guard = catalog,
            Err(poisoned) => *poisoned.into_inner() = catalog,
        }
    }
}
