//! Filesystem adapters: network documents from local files, and the on-disk copy of the last
//! good document set (alone, or mirroring the shared database copy).

mod disk_store;
mod file_source;
mod mirrored_store;

pub use disk_store::{DISK_COPY_FILE_NAME, DiskSchemaStore};
pub use file_source::{DEFAULT_MAX_DOCUMENT_BYTES, FileSchemaSource};
pub use mirrored_store::MirroredSchemaStore;
