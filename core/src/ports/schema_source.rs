use async_trait::async_trait;
use serde_json::Value;

use crate::error::CoreError;

/// Where a document comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SchemaLocation {
    /// A local file path (`NETWORK_CONFIG_SOURCE=local`).
    File(String),
    /// An http(s) URL (registry, cross-network origin, custom item schema).
    Url(String),
}

impl SchemaLocation {
    /// The path or URL as written.
    pub fn as_str(&self) -> &str {
        match self {
            SchemaLocation::File(s) | SchemaLocation::Url(s) => s,
        }
    }
}

/// HTTP cache validators of a fetched document, for conditional refreshes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceValidators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FetchedDocument {
    pub body: Value,
    pub validators: SourceValidators,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FetchOutcome {
    Fetched(FetchedDocument),
    /// The source confirmed that the document did not change since `known` validators.
    NotModified,
}

/// Reads network documents and JSON Schemas.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SchemaSource: Send + Sync {
    /// Fetches one document as JSON. With `known` validators the source MAY answer
    /// `NotModified`. URLs that resolve to loopback, private or link-local addresses MUST be
    /// refused with `Err(CoreError::Forbidden)` unless the adapter was configured to allow them;
    /// redirects are not followed. Unreachable sources, non-2xx answers, bodies that are not JSON
    /// or are too large MUST return `Err(CoreError::Upstream)` whose message names the location.
    async fn fetch(
        &self,
        location: &SchemaLocation,
        known: Option<SourceValidators>,
    ) -> Result<FetchOutcome, CoreError>;
}
