//! Readiness: can this instance serve requests right now?

use std::sync::Arc;

use crate::network::CatalogHandle;
use crate::ports::{Cache, ItemRepository};

/// The state of each dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub database_ok: bool,
    pub cache_ok: bool,
    pub network_documents: usize,
}

impl Readiness {
    /// Ready when the database answers and a network document is loaded; the cache is
    /// reported but optional (reads degrade to uncached).
    pub fn is_ready(&self) -> bool {
        self.database_ok && self.network_documents > 0
    }
}

pub struct HealthService {
    repository: Arc<dyn ItemRepository>,
    cache: Arc<dyn Cache>,
    catalog: Arc<CatalogHandle>,
}

impl HealthService {
    pub fn new(
        repository: Arc<dyn ItemRepository>,
        cache: Arc<dyn Cache>,
        catalog: Arc<CatalogHandle>,
    ) -> Self {
        HealthService {
            repository,
            cache,
            catalog,
        }
    }

    pub async fn readiness(&self) -> Readiness {
        let (database, cache) = futures::join!(self.repository.ping(), self.cache.ping());
        Readiness {
            database_ok: database.is_ok(),
            cache_ok: cache.is_ok(),
            network_documents: self.catalog.current().networks().count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CoreError;
    use crate::network::NetworkCatalog;
    use crate::ports::{MockCache, MockItemRepository};

    #[tokio::test]
    async fn not_ready_without_database_or_documents_but_cache_is_optional() {
        let mut repository = MockItemRepository::new();
        repository
            .expect_ping()
            .returning(|| Err(CoreError::storage_unavailable()));
        let mut cache = MockCache::new();
        cache
            .expect_ping()
            .returning(|| Err(CoreError::storage_unavailable()));
        let catalog = Arc::new(CatalogHandle::new(
            NetworkCatalog::empty(chrono::Utc::now()),
        ));
        let readiness = HealthService::new(Arc::new(repository), Arc::new(cache), catalog)
            .readiness()
            .await;
        assert_eq!(
            readiness,
            Readiness {
                database_ok: false,
                cache_ok: false,
                network_documents: 0
            }
        );
        assert!(!readiness.is_ready());
        assert!(
            Readiness {
                database_ok: true,
                cache_ok: false,
                network_documents: 1
            }
            .is_ready()
        );
    }
}
