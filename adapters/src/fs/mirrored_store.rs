//! The shared copy of the last good set (the database) mirrored to a local disk copy.

use std::sync::Arc;

use async_trait::async_trait;
use dpg_core::CoreError;
use dpg_core::ports::{SchemaStore, StoredDocument};

use super::DiskSchemaStore;

/// Saves to both copies and loads from the primary, falling back to the disk copy when the
/// primary fails or holds nothing, so an instance boots while its database is down too.
pub struct MirroredSchemaStore {
    primary: Arc<dyn SchemaStore>,
    disk: DiskSchemaStore,
}

impl MirroredSchemaStore {
    pub fn new(primary: Arc<dyn SchemaStore>, disk: DiskSchemaStore) -> Self {
        MirroredSchemaStore { primary, disk }
    }
}

#[async_trait]
impl SchemaStore for MirroredSchemaStore {
    /// Both copies are written whatever happens to the other one. A primary failure is
    /// returned; a disk failure alone is only logged, because the shared copy, which every
    /// replica reads first, is up to date.
    async fn save(&self, documents: &[StoredDocument]) -> Result<(), CoreError> {
        let (primary, disk) =
            futures::join!(self.primary.save(documents), self.disk.save(documents));
        if let Err(e) = &disk {
            tracing::warn!(path = %self.disk.path().display(), error = %e, "schema disk copy not updated");
        }
        primary
    }

    async fn load(&self) -> Result<Vec<StoredDocument>, CoreError> {
        let primary_error = match self.primary.load().await {
            Ok(documents) if !documents.is_empty() => {
                tracing::info!(
                    documents = documents.len(),
                    "last good schemas loaded from the primary store"
                );
                return Ok(documents);
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "primary schema store unreadable, trying the disk copy");
                Some(e)
            }
        };
        match (self.disk.load().await, primary_error) {
            (Ok(documents), _) if !documents.is_empty() => {
                tracing::info!(
                    documents = documents.len(),
                    path = %self.disk.path().display(),
                    "last good schemas loaded from the disk copy"
                );
                Ok(documents)
            }
            // Nothing on disk either: report the primary's failure rather than "never saved".
            (Ok(_), Some(primary_error)) => Err(primary_error),
            (Ok(empty), None) => Ok(empty),
            (Err(disk_error), Some(primary_error)) => {
                tracing::error!(error = %disk_error, "schema disk copy unreadable as well");
                Err(primary_error)
            }
            (Err(disk_error), None) => {
                tracing::warn!(error = %disk_error, "primary schema store empty and disk copy unreadable");
                Ok(Vec::new())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;
    use crate::fs::disk_store::tests::document;

    /// A primary that holds a set in memory and can be switched to failing.
    #[derive(Default)]
    struct FakePrimary {
        documents: Mutex<Vec<StoredDocument>>,
        failing: bool,
    }

    impl FakePrimary {
        fn failing() -> Self {
            FakePrimary {
                failing: true,
                ..Self::default()
            }
        }
    }

    #[async_trait]
    impl SchemaStore for FakePrimary {
        async fn save(&self, documents: &[StoredDocument]) -> Result<(), CoreError> {
            if self.failing {
                return Err(CoreError::storage_unavailable());
            }
            *self.documents.lock().expect("lock") = documents.to_vec();
            Ok(())
        }

        async fn load(&self) -> Result<Vec<StoredDocument>, CoreError> {
            if self.failing {
                return Err(CoreError::storage_unavailable());
            }
            Ok(self.documents.lock().expect("lock").clone())
        }
    }

    fn set(name: &str) -> Vec<StoredDocument> {
        vec![document(&format!("{name}.json"), json!({"name": name}))]
    }

    #[tokio::test]
    async fn save_writes_both_copies_and_load_prefers_the_primary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let primary = Arc::new(FakePrimary::default());
        let store = MirroredSchemaStore::new(primary.clone(), DiskSchemaStore::new(dir.path()));
        store.save(&set("a")).await.expect("save");
        assert_eq!(
            DiskSchemaStore::new(dir.path()).load().await.expect("disk"),
            set("a")
        );
        assert_eq!(primary.load().await.expect("primary"), set("a"));

        // Another replica updated the primary: it wins over this replica's disk copy.
        *primary.documents.lock().expect("lock") = set("b");
        assert_eq!(store.load().await.expect("load"), set("b"));
    }

    #[tokio::test]
    async fn primary_failure_on_save_is_returned_after_the_disk_copy_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MirroredSchemaStore::new(
            Arc::new(FakePrimary::failing()),
            DiskSchemaStore::new(dir.path()),
        );
        let err = store.save(&set("a")).await.expect_err("primary down");
        assert!(matches!(err, CoreError::Unavailable { .. }), "{err:?}");
        assert_eq!(
            DiskSchemaStore::new(dir.path()).load().await.expect("disk"),
            set("a")
        );
    }

    #[tokio::test]
    async fn load_falls_back_to_disk_when_the_primary_fails_or_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        DiskSchemaStore::new(dir.path())
            .save(&set("disk"))
            .await
            .expect("seed");

        let failing = MirroredSchemaStore::new(
            Arc::new(FakePrimary::failing()),
            DiskSchemaStore::new(dir.path()),
        );
        assert_eq!(failing.load().await.expect("fallback"), set("disk"));

        let empty = MirroredSchemaStore::new(
            Arc::new(FakePrimary::default()),
            DiskSchemaStore::new(dir.path()),
        );
        assert_eq!(empty.load().await.expect("fallback"), set("disk"));
    }

    #[tokio::test]
    async fn primary_error_is_kept_when_there_is_no_disk_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let failing = MirroredSchemaStore::new(
            Arc::new(FakePrimary::failing()),
            DiskSchemaStore::new(dir.path()),
        );
        let err = failing.load().await.expect_err("nothing anywhere");
        assert!(matches!(err, CoreError::Unavailable { .. }), "{err:?}");

        let empty = MirroredSchemaStore::new(
            Arc::new(FakePrimary::default()),
            DiskSchemaStore::new(dir.path()),
        );
        assert_eq!(empty.load().await.expect("never saved"), Vec::new());
    }
}
