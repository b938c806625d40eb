//! `SchemaSource` for `SchemaLocation::File` (`NETWORK_CONFIG_SOURCE=local`).

use std::path::Path;

use async_trait::async_trait;
use dpg_core::ports::{
    FetchOutcome, FetchedDocument, SchemaLocation, SchemaSource, SourceValidators,
};
use dpg_core::{CoreError, ErrorCode};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

/// Largest document read by default, from a file or a URL.
pub const DEFAULT_MAX_DOCUMENT_BYTES: u64 = 8 * 1024 * 1024;

/// Reads network documents from local files. Relative paths are resolved against the
/// working directory, as the reference does.
#[derive(Debug, Clone)]
pub struct FileSchemaSource {
    max_bytes: u64,
}

impl Default for FileSchemaSource {
    fn default() -> Self {
        Self::new()
    }
}

impl FileSchemaSource {
    pub fn new() -> Self {
        Self::with_max_bytes(DEFAULT_MAX_DOCUMENT_BYTES)
    }

    /// Files larger than `max_bytes` are refused.
    pub fn with_max_bytes(max_bytes: u64) -> Self {
        FileSchemaSource { max_bytes }
    }
}

#[async_trait]
impl SchemaSource for FileSchemaSource {
    /// The etag is a hash of the content, so an unchanged file answers `NotModified` whatever
    /// its modification time.
    async fn fetch(
        &self,
        location: &SchemaLocation,
        known: Option<SourceValidators>,
    ) -> Result<FetchOutcome, CoreError> {
        let SchemaLocation::File(path) = location else {
            return Err(CoreError::internal(format!(
                "FileSchemaSource cannot fetch {}: not a file location",
                location.as_str()
            )));
        };
        let bytes = read_capped(Path::new(path), self.max_bytes)
            .await
            .map_err(|problem| read_failed(path, &problem))?;
        let etag = content_etag(&bytes);
        if known.and_then(|k| k.etag).as_deref() == Some(etag.as_str()) {
            return Ok(FetchOutcome::NotModified);
        }
        let body = serde_json::from_slice(&bytes)
            .map_err(|e| read_failed(path, &format!("not valid JSON: {e}")))?;
        Ok(FetchOutcome::Fetched(FetchedDocument {
            body,
            validators: SourceValidators {
                etag: Some(etag),
                last_modified: None,
            },
        }))
    }
}

async fn read_capped(path: &Path, max_bytes: u64) -> Result<Vec<u8>, String> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| e.to_string())?;
    let length = file.metadata().await.map_err(|e| e.to_string())?.len();
    if length > max_bytes {
        return Err(too_large(max_bytes));
    }
    // The file may grow between the size check and the read: never read past the cap.
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| e.to_string())?;
    if u64::try_from(bytes.len()).map_or(true, |n| n > max_bytes) {
        return Err(too_large(max_bytes));
    }
    Ok(bytes)
}

fn too_large(max_bytes: u64) -> String {
    format!("larger than {max_bytes} bytes")
}

/// A strong etag: the SHA-256 of the content.
fn content_etag(bytes: &[u8]) -> String {
    format!("\"sha256-{}\"", hex::encode(Sha256::digest(bytes)))
}

fn read_failed(path: &str, problem: &str) -> CoreError {
    tracing::warn!(path, problem, "network document file unreadable");
    CoreError::Upstream {
        code: ErrorCode::RemoteSchemaFetchFailed,
        message: format!("Failed to read schema file {path}: {problem}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, content: &str) -> String {
        let path = dir.path().join(name);
        std::fs::write(&path, content).expect("write fixture");
        path.to_string_lossy().into_owned()
    }

    fn fetched(outcome: FetchOutcome) -> FetchedDocument {
        match outcome {
            FetchOutcome::Fetched(document) => document,
            FetchOutcome::NotModified => panic!("expected a document"),
        }
    }

    fn upstream_message(err: CoreError) -> String {
        match err {
            CoreError::Upstream { code, message } => {
                assert_eq!(code, ErrorCode::RemoteSchemaFetchFailed);
                message
            }
            other => panic!("expected Upstream, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn reads_json_and_answers_not_modified_while_unchanged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, "network.json", r#"{"name": "a"}"#);
        let location = SchemaLocation::File(path.clone());
        let source = FileSchemaSource::new();

        let first = fetched(source.fetch(&location, None).await.expect("read"));
        assert_eq!(first.body, json!({"name": "a"}));
        let etag = first.validators.etag.clone();
        assert!(etag.is_some());

        let again = source
            .fetch(&location, Some(first.validators.clone()))
            .await
            .expect("read");
        assert_eq!(again, FetchOutcome::NotModified);

        std::fs::write(&path, r#"{"name": "b"}"#).expect("rewrite");
        let changed = fetched(
            source
                .fetch(&location, Some(first.validators))
                .await
                .expect("read"),
        );
        assert_eq!(changed.body, json!({"name": "b"}));
        assert_ne!(changed.validators.etag, etag);
    }

    #[tokio::test]
    async fn missing_file_is_upstream_naming_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir
            .path()
            .join("absent.json")
            .to_string_lossy()
            .into_owned();
        let err = FileSchemaSource::new()
            .fetch(&SchemaLocation::File(path.clone()), None)
            .await
            .expect_err("missing");
        assert!(upstream_message(err).contains(&path));
    }

    #[tokio::test]
    async fn bad_json_is_upstream_naming_the_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, "broken.json", "{\"name\": ");
        let err = FileSchemaSource::new()
            .fetch(&SchemaLocation::File(path.clone()), None)
            .await
            .expect_err("bad json");
        let message = upstream_message(err);
        assert!(
            message.contains(&path) && message.contains("not valid JSON"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn files_over_the_cap_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, "big.json", &format!("\"{}\"", "x".repeat(100)));
        let err = FileSchemaSource::with_max_bytes(64)
            .fetch(&SchemaLocation::File(path), None)
            .await
            .expect_err("too large");
        assert!(upstream_message(err).contains("larger than 64 bytes"));
    }

    #[tokio::test]
    async fn url_locations_are_a_wiring_error() {
        let err = FileSchemaSource::new()
            .fetch(
                &SchemaLocation::Url("https://registry.test/n.json".into()),
                None,
            )
            .await
            .expect_err("not a file");
        assert!(matches!(err, CoreError::Internal(_)), "{err:?}");
    }
}
