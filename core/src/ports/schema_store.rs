use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::CoreError;

/// What a stored document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredKind {
    /// A configured network document.
    Network,
    /// A network loaded through `cross_network_origins`.
    CrossNetworkOrigin,
    /// A JSON Schema fetched from a URL (custom item schema, `$ref` target).
    Schema,
}

/// One document of the last good set, as fetched (before parsing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDocument {
    pub kind: StoredKind,
    /// The path or URL it was fetched from.
    pub location: String,
    pub body: Value,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub fetched_at: DateTime<Utc>,
}

/// The last good set of documents, shared by the replicas of one instance so that an
/// instance can boot while its registry is unreachable.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SchemaStore: Send + Sync {
    /// Replaces the whole stored set atomically: a reader sees the old set or the new one,
    /// never a mix. MUST return `Err(Unavailable)` when the backing store is unreachable.
    async fn save(&self, documents: &[StoredDocument]) -> Result<(), CoreError>;

    /// The stored set; empty when nothing was ever saved. MUST return `Err(Unavailable)`
    /// when the backing store is unreachable and `Err(Internal)` when it is unreadable.
    async fn load(&self) -> Result<Vec<StoredDocument>, CoreError>;
}
