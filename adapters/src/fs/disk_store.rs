//! The last good document set as one JSON file, replaced atomically.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dpg_core::ports::{SchemaStore, StoredDocument};
use dpg_core::{CoreError, ErrorCode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Name of the copy inside the configured directory.
pub const DISK_COPY_FILE_NAME: &str = "last-good-schemas.json";

/// Bumped when the file layout changes, so an old file is reported instead of misread.
const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct DiskCopy {
    format: u32,
    saved_at: DateTime<Utc>,
    documents: Vec<StoredDocument>,
}

/// Keeps the last good set in `<directory>/last-good-schemas.json`. Each save writes a
/// temporary file in the same directory, flushes it to disk and renames it over the copy, so
/// a crash leaves either the old copy or the new one, never half of one.
#[derive(Debug, Clone)]
pub struct DiskSchemaStore {
    path: PathBuf,
}

impl DiskSchemaStore {
    /// The directory is created on the first save.
    pub fn new(directory: impl Into<PathBuf>) -> Self {
        DiskSchemaStore {
            path: directory.into().join(DISK_COPY_FILE_NAME),
        }
    }

    /// The file the copy lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl SchemaStore for DiskSchemaStore {
    async fn save(&self, documents: &[StoredDocument]) -> Result<(), CoreError> {
        let copy = DiskCopy {
            format: FORMAT_VERSION,
            saved_at: Utc::now(),
            documents: documents.to_vec(),
        };
        let bytes = serde_json::to_vec_pretty(&copy)
            .map_err(|e| CoreError::internal(format!("serializing the schema disk copy: {e}")))?;
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| CoreError::internal(format!("schema disk copy writer stopped: {e}")))?;
        written.map_err(|e| {
            tracing::error!(path = %self.path.display(), error = %e, "writing the schema disk copy failed");
            unavailable("The schema disk copy could not be written")
        })
    }

    async fn load(&self) -> Result<Vec<StoredDocument>, CoreError> {
        let bytes = match tokio::fs::read(&self.path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "reading the schema disk copy failed");
                return Err(unavailable("The schema disk copy could not be read"));
            }
        };
        let copy: DiskCopy = serde_json::from_slice(&bytes).map_err(|e| {
            CoreError::internal(format!(
                "schema disk copy {} is corrupt: {e}",
                self.path.display()
            ))
        })?;
        if copy.format != FORMAT_VERSION {
            return Err(CoreError::internal(format!(
                "schema disk copy {} has format {}, expected {FORMAT_VERSION}",
                self.path.display(),
                copy.format
            )));
        }
        Ok(copy.documents)
    }
}

/// Temp file in the target's directory (rename is only atomic within one filesystem), fsync,
/// rename, then fsync the directory so the rename itself survives a power cut.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let directory = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(directory)?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(DISK_COPY_FILE_NAME);
    let temp = directory.join(format!(".{file_name}.{}.tmp", Uuid::new_v4().simple()));
    let result = write_and_rename(&temp, path, bytes).and_then(|()| sync_directory(directory));
    if result.is_err() {
        // Best effort: a leftover temp file is harmless, only untidy.
        let _ = fs::remove_file(&temp);
    }
    result
}

fn write_and_rename(temp: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(temp, path)
}

#[cfg(unix)]
fn sync_directory(directory: &Path) -> io::Result<()> {
    File::open(directory)?.sync_all()
}

#[cfg(not(unix))]
fn sync_directory(_directory: &Path) -> io::Result<()> {
    // Directories cannot be opened for syncing here; the rename is still atomic.
    Ok(())
}

fn unavailable(message: &str) -> CoreError {
    CoreError::Unavailable {
        code: ErrorCode::StorageUnavailable,
        message: message.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::TimeZone;
    use dpg_core::ports::StoredKind;
    use serde_json::json;

    use super::*;

    pub(crate) fn document(location: &str, body: serde_json::Value) -> StoredDocument {
        StoredDocument {
            kind: StoredKind::Network,
            location: location.to_string(),
            body,
            etag: Some("\"e1\"".into()),
            last_modified: None,
            fetched_at: Utc
                .with_ymd_and_hms(2025, 1, 2, 3, 4, 5)
                .single()
                .expect("valid time"),
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn missing_copy_loads_as_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DiskSchemaStore::new(dir.path().join("not-yet"));
        assert_eq!(store.load().await.expect("load"), Vec::new());
    }

    #[tokio::test]
    async fn save_then_load_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DiskSchemaStore::new(dir.path().join("cache"));
        let first = vec![document("a.json", json!({"name": "a"}))];
        let second = vec![
            document("b.json", json!({"name": "b"})),
            document("c.json", json!({"name": "c", "n": [1, 2]})),
        ];
        store.save(&first).await.expect("save");
        assert_eq!(store.load().await.expect("load"), first);
        store.save(&second).await.expect("save");
        assert_eq!(store.load().await.expect("load"), second);
        assert_eq!(
            entries(&dir.path().join("cache")),
            vec![DISK_COPY_FILE_NAME.to_string()]
        );
    }

    #[tokio::test]
    async fn concurrent_saves_leave_one_whole_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DiskSchemaStore::new(dir.path());
        let sets: Vec<Vec<StoredDocument>> = (0..8)
            .map(|i| {
                vec![document(
                    &format!("{i}.json"),
                    json!({"i": i, "pad": "x".repeat(10_000)}),
                )]
            })
            .collect();
        let saves = sets.iter().map(|set| store.save(set));
        for result in futures::future::join_all(saves).await {
            result.expect("save");
        }
        let loaded = store.load().await.expect("load");
        assert!(sets.contains(&loaded), "loaded a set that was never saved");
        assert_eq!(entries(dir.path()), vec![DISK_COPY_FILE_NAME.to_string()]);
    }

    #[test]
    fn a_failed_rename_keeps_the_target_and_removes_the_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A non-empty directory where the copy should go: the rename over it fails.
        let target = dir.path().join(DISK_COPY_FILE_NAME);
        fs::create_dir(&target).expect("mkdir");
        fs::write(target.join("keep"), b"old").expect("write");
        let err = write_atomically(&target, b"new").expect_err("rename over a directory fails");
        assert_ne!(err.kind(), io::ErrorKind::NotFound);
        assert_eq!(fs::read(target.join("keep")).expect("untouched"), b"old");
        assert_eq!(entries(dir.path()), vec![DISK_COPY_FILE_NAME.to_string()]);
    }

    #[tokio::test]
    async fn corrupt_copy_is_internal_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DiskSchemaStore::new(dir.path());
        fs::write(store.path(), b"{\"format\": 1, \"documents\": [").expect("write");
        match store.load().await {
            Err(CoreError::Internal(message)) => {
                assert!(
                    message.contains("corrupt") && message.contains(DISK_COPY_FILE_NAME),
                    "{message}"
                );
            }
            other => panic!("expected Internal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn unknown_format_is_internal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DiskSchemaStore::new(dir.path());
        fs::write(
            store.path(),
            br#"{"format": 99, "saved_at": "2025-01-01T00:00:00Z", "documents": []}"#,
        )
        .expect("write");
        let err = store.load().await.expect_err("format");
        assert!(
            matches!(&err, CoreError::Internal(m) if m.contains("format 99")),
            "{err:?}"
        );
    }
}
