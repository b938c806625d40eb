//! One `SchemaSource` for every location kind.

use std::sync::Arc;

use async_trait::async_trait;
use dpg_core::CoreError;
use dpg_core::ports::{FetchOutcome, SchemaLocation, SchemaSource, SourceValidators};

/// Sends file locations to one source and URL locations to another (in production the
/// `FileSchemaSource` and the `HttpSchemaSource`).
pub struct SchemaSourceRouter {
    files: Arc<dyn SchemaSource>,
    urls: Arc<dyn SchemaSource>,
}

impl SchemaSourceRouter {
    pub fn new(files: Arc<dyn SchemaSource>, urls: Arc<dyn SchemaSource>) -> Self {
        SchemaSourceRouter { files, urls }
    }
}

#[async_trait]
impl SchemaSource for SchemaSourceRouter {
    async fn fetch(
        &self,
        location: &SchemaLocation,
        known: Option<SourceValidators>,
    ) -> Result<FetchOutcome, CoreError> {
        match location {
            SchemaLocation::File(_) => self.files.fetch(location, known).await,
            SchemaLocation::Url(_) => self.urls.fetch(location, known).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use dpg_core::ports::FetchedDocument;
    use serde_json::{Value, json};

    use super::*;

    /// Answers every fetch with its own name and records what it was asked.
    struct NamedSource {
        name: &'static str,
        seen: Mutex<Vec<(SchemaLocation, Option<SourceValidators>)>>,
    }

    impl NamedSource {
        fn new(name: &'static str) -> Arc<Self> {
            Arc::new(NamedSource {
                name,
                seen: Mutex::default(),
            })
        }

        fn seen(&self) -> Vec<(SchemaLocation, Option<SourceValidators>)> {
            self.seen.lock().expect("lock").clone()
        }
    }

    #[async_trait]
    impl SchemaSource for NamedSource {
        async fn fetch(
            &self,
            location: &SchemaLocation,
            known: Option<SourceValidators>,
        ) -> Result<FetchOutcome, CoreError> {
            self.seen
                .lock()
                .expect("lock")
                .push((location.clone(), known));
            Ok(FetchOutcome::Fetched(FetchedDocument {
                body: json!(self.name),
                validators: SourceValidators::default(),
            }))
        }
    }

    fn body(outcome: FetchOutcome) -> Value {
        match outcome {
            FetchOutcome::Fetched(document) => document.body,
            FetchOutcome::NotModified => Value::Null,
        }
    }

    #[tokio::test]
    async fn each_location_kind_goes_to_its_source() {
        let (files, urls) = (NamedSource::new("files"), NamedSource::new("urls"));
        let router = SchemaSourceRouter::new(files.clone(), urls.clone());
        let file = SchemaLocation::File("examples/network.json".into());
        let url = SchemaLocation::Url("https://registry.test/network.json".into());
        let known = SourceValidators {
            etag: Some("\"x\"".into()),
            last_modified: None,
        };

        assert_eq!(
            body(router.fetch(&file, None).await.expect("file")),
            json!("files")
        );
        assert_eq!(
            body(router.fetch(&url, Some(known.clone())).await.expect("url")),
            json!("urls")
        );

        assert_eq!(files.seen(), vec![(file, None)]);
        assert_eq!(urls.seen(), vec![(url, Some(known))]);
    }
}
