//! Loading, refreshing and serving the Network Schema documents.
//!
//! A load fetches every document first (configured networks, one hop of cross-network
//! origins, this instance's custom item schemas), then builds a new catalog and swaps it in.
//! Any failure leaves the catalog in force untouched. The fetched set is saved as the last
//! good copy, from which the instance boots when its sources are unreachable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures::lock::Mutex as AsyncMutex;
use serde_json::Value;

use crate::error::{CoreError, ErrorCode};
use crate::model::InstanceIdentity;
use crate::network::catalog::own_custom_schema_urls;
use crate::network::refs::inline_external_refs;
use crate::network::{
    CatalogHandle, CatalogOrigin, NetworkCatalog, NetworkDocument, SchemaCompiler,
};
use crate::ports::{
    Clock, FetchOutcome, SchemaLocation, SchemaSource, SchemaStore, SourceValidators,
    StoredDocument, StoredKind,
};

pub struct SchemaServiceDeps {
    pub source: Arc<dyn SchemaSource>,
    pub store: Arc<dyn SchemaStore>,
    pub clock: Arc<dyn Clock>,
    pub identity: Arc<InstanceIdentity>,
    pub catalog: Arc<CatalogHandle>,
    pub compiler: SchemaCompiler,
    /// The configured network documents, in order.
    pub locations: Vec<SchemaLocation>,
}

/// The outcome of the last load attempt, for health reports.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadStatus {
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed; `None` after a success.
    pub last_error: Option<String>,
}

/// What a successful (re)load produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadReport {
    /// Entries of the schema index (the reference's `schema_count`).
    pub schema_count: usize,
    /// False when a conditional refresh found nothing changed.
    pub changed: bool,
}

pub struct NetworkSchemaService {
    deps: SchemaServiceDeps,
    /// What the catalog in force was built from; the validators drive conditional refreshes.
    documents: Mutex<Vec<StoredDocument>>,
    status: Mutex<LoadStatus>,
    /// One load at a time; a reload requested during another waits for it.
    loading: AsyncMutex<()>,
}

impl NetworkSchemaService {
    pub fn new(deps: SchemaServiceDeps) -> Self {
        NetworkSchemaService {
            deps,
            documents: Mutex::new(Vec::new()),
            status: Mutex::new(LoadStatus {
                last_attempt_at: None,
                last_error: None,
            }),
            loading: AsyncMutex::new(()),
        }
    }

    pub fn catalog(&self) -> Arc<NetworkCatalog> {
        self.deps.catalog.current()
    }

    pub fn status(&self) -> LoadStatus {
        lock(&self.status).clone()
    }

    /// First load. Falls back to the last good copy when the sources fail; fails only when
    /// there is neither.
    pub async fn boot(&self) -> Result<CatalogOrigin, CoreError> {
        let _guard = self.loading.lock().await;
        match self.fetch_and_swap(false).await {
            Ok(_) => Ok(CatalogOrigin::Sources),
            Err(fetch_error) => {
                let stored = match self.deps.store.load().await {
                    Ok(stored) => stored,
                    Err(store_error) => {
                        tracing::error!(error = %store_error, "last good network documents unreadable");
                        Vec::new()
                    }
                };
                if stored.is_empty() {
                    return Err(fetch_error);
                }
                let saved_at = stored
                    .iter()
                    .map(|d| d.fetched_at)
                    .max()
                    .unwrap_or_else(|| self.deps.clock.now());
                let origin = CatalogOrigin::LastGoodCopy { saved_at };
                let catalog = self.build(&stored, origin.clone())?;
                tracing::warn!(
                    error = %fetch_error,
                    saved_at = %saved_at,
                    "network documents unreachable: serving the last good copy"
                );
                self.deps.catalog.replace(catalog);
                *lock(&self.documents) = stored;
                Ok(origin)
            }
        }
    }

    /// Unconditional reload (`POST /api/v1/network/refetch_schemas`).
    pub async fn reload(&self) -> Result<ReloadReport, CoreError> {
        let _guard = self.loading.lock().await;
        self.fetch_and_swap(false).await
    }

    /// Periodic refresh with conditional requests; rebuilds only when something changed.
    pub async fn refresh(&self) -> Result<ReloadReport, CoreError> {
        let _guard = self.loading.lock().await;
        self.fetch_and_swap(true).await
    }

    async fn fetch_and_swap(&self, conditional: bool) -> Result<ReloadReport, CoreError> {
        let now = self.deps.clock.now();
        let known = if conditional {
            lock(&self.documents).clone()
        } else {
            Vec::new()
        };
        let result = self
            .fetch_all(&known)
            .await
            .and_then(|(documents, changed)| {
                if !changed {
                    return Ok((None, documents));
                }
                let catalog = self.build(&documents, CatalogOrigin::Sources)?;
                Ok((Some(catalog), documents))
            });
        let mut status = LoadStatus {
            last_attempt_at: Some(now),
            last_error: None,
        };
        let outcome = match result {
            Ok((Some(catalog), documents)) => {
                let schema_count = catalog.schema_index(&self.deps.identity).len();
                self.deps.catalog.replace(catalog);
                if let Err(err) = self.deps.store.save(&documents).await {
                    tracing::warn!(error = %err, "could not save the last good network documents");
                }
                *lock(&self.documents) = documents;
                tracing::info!(schema_count, "network documents loaded");
                Ok(ReloadReport {
                    schema_count,
                    changed: true,
                })
            }
            Ok((None, _)) => Ok(ReloadReport {
                schema_count: self.catalog().schema_index(&self.deps.identity).len(),
                changed: false,
            }),
            Err(err) => {
                status.last_error = Some(err.to_string());
                Err(err)
            }
        };
        *lock(&self.status) = status;
        outcome
    }

    /// Fetches every document; `known` enables conditional requests. Returns the full set
    /// and whether anything differs from `known`.
    async fn fetch_all(
        &self,
        known: &[StoredDocument],
    ) -> Result<(Vec<StoredDocument>, bool), CoreError> {
        let mut fetched = Vec::new();
        let mut networks: Vec<NetworkDocument> = Vec::new();
        let mut changed = known.is_empty();
        for location in &self.deps.locations {
            let (doc, was_changed) = self.fetch_one(StoredKind::Network, location, known).await?;
            changed |= was_changed;
            networks.push(parse_stored(&doc)?);
            fetched.push(doc);
        }
        // One hop only: origins of origins are not followed.
        let origins: Vec<_> = networks
            .iter()
            .flat_map(|doc| doc.cross_network_origins.clone())
            .collect();
        for origin in origins {
            if networks.iter().any(|doc| doc.name == origin.name) {
                continue;
            }
            let location = SchemaLocation::Url(origin.schema_url.trim().to_string());
            let (doc, was_changed) = self
                .fetch_one(StoredKind::CrossNetworkOrigin, &location, known)
                .await?;
            let network = parse_stored(&doc)?;
            if network.name != origin.name {
                return Err(CoreError::invalid(
                    ErrorCode::SchemaReloadFailed,
                    format!(
                        "Cross-network origin \"{}\" loaded schema for network \"{}\".",
                        origin.name, network.name
                    ),
                ));
            }
            changed |= was_changed;
            networks.push(network);
            fetched.push(doc);
        }
        for url in own_custom_schema_urls(&networks, &self.deps.identity) {
            let location = SchemaLocation::Url(url);
            let (doc, was_changed) = self.fetch_one(StoredKind::Schema, &location, known).await?;
            if !doc.body.is_object() {
                return Err(CoreError::invalid(
                    ErrorCode::SchemaReloadFailed,
                    format!(
                        "Custom item schema {} is not a JSON Schema object",
                        doc.location
                    ),
                ));
            }
            changed |= was_changed;
            fetched.push(doc);
        }
        changed |= fetched.len() != known.len();
        Ok((fetched, changed))
    }

    async fn fetch_one(
        &self,
        kind: StoredKind,
        location: &SchemaLocation,
        known: &[StoredDocument],
    ) -> Result<(StoredDocument, bool), CoreError> {
        let previous = known
            .iter()
            .find(|d| d.kind == kind && d.location == location.as_str());
        let validators = previous.map(|d| SourceValidators {
            etag: d.etag.clone(),
            last_modified: d.last_modified.clone(),
        });
        match self.deps.source.fetch(location, validators).await? {
            FetchOutcome::NotModified => match previous {
                Some(previous) => Ok((previous.clone(), false)),
                None => Err(CoreError::internal(format!(
                    "{} answered not-modified to an unconditional request",
                    location.as_str()
                ))),
            },
            FetchOutcome::Fetched(fetched) => {
                let body = match location {
                    SchemaLocation::Url(url) => {
                        inline_external_refs(fetched.body, url, self.deps.source.as_ref()).await?
                    }
                    SchemaLocation::File(_) => fetched.body,
                };
                let changed = previous.is_none_or(|p| p.body != body);
                Ok((
                    StoredDocument {
                        kind,
                        location: location.as_str().to_string(),
                        body,
                        etag: fetched.validators.etag,
                        last_modified: fetched.validators.last_modified,
                        fetched_at: self.deps.clock.now(),
                    },
                    changed,
                ))
            }
        }
    }

    fn build(
        &self,
        documents: &[StoredDocument],
        origin: CatalogOrigin,
    ) -> Result<NetworkCatalog, CoreError> {
        let mut networks = Vec::new();
        let mut custom_schemas: HashMap<String, Value> = HashMap::new();
        for doc in documents {
            match doc.kind {
                StoredKind::Network | StoredKind::CrossNetworkOrigin => {
                    networks.push(parse_stored(doc)?)
                }
                StoredKind::Schema => {
                    custom_schemas.insert(doc.location.clone(), doc.body.clone());
                }
            }
        }
        Ok(NetworkCatalog::build(
            networks,
            &custom_schemas,
            &self.deps.identity,
            &self.deps.compiler,
            self.deps.clock.now(),
            origin,
        ))
    }
}

/// Parses a stored network document; documents fetched from a URL carry it as `source_url`.
fn parse_stored(doc: &StoredDocument) -> Result<NetworkDocument, CoreError> {
    let mut parsed = NetworkDocument::parse(&doc.body).map_err(|err| match err {
        CoreError::Invalid {
            message,
            violations,
            ..
        } => CoreError::invalid_with(
            ErrorCode::SchemaReloadFailed,
            format!("{}: {message}", doc.location),
            violations,
        ),
        other => other,
    })?;
    if is_url(&doc.location) {
        parsed.source_url = Some(doc.location.clone());
    }
    Ok(parsed)
}

fn is_url(location: &str) -> bool {
    location.starts_with("http://") || location.starts_with("https://")
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ServedBindings;
    use crate::ports::{FetchedDocument, MockClock, MockSchemaSource, MockSchemaStore};
    use serde_json::json;

    const REGISTRY: &str = "https://registry.example.com/yellow_dot/network.json";

    fn identity() -> Arc<InstanceIdentity> {
        Arc::new(InstanceIdentity {
            base_url: "https://student.example.org".into(),
            name: "dpg".into(),
            served: ServedBindings::parse("yellow_dot/student").expect("served"),
        })
    }

    fn network(name: &str, title: &str) -> Value {
        json!({"name": name, "domains": [{"name": "student", "item_schemas": {"profile_1.0": {"type": "object", "title": title}}}]})
    }

    fn fetched(body: Value, etag: &str) -> FetchOutcome {
        FetchOutcome::Fetched(FetchedDocument {
            body,
            validators: SourceValidators {
                etag: Some(etag.into()),
                last_modified: None,
            },
        })
    }

    fn service(
        source: MockSchemaSource,
        store: MockSchemaStore,
        locations: &[&str],
    ) -> NetworkSchemaService {
        let mut clock = MockClock::new();
        clock.expect_now().returning(Utc::now);
        NetworkSchemaService::new(SchemaServiceDeps {
            source: Arc::new(source),
            store: Arc::new(store),
            clock: Arc::new(clock),
            identity: identity(),
            catalog: Arc::new(CatalogHandle::new(NetworkCatalog::empty(Utc::now()))),
            compiler: SchemaCompiler::new(false),
            locations: locations
                .iter()
                .map(|l| SchemaLocation::Url(l.to_string()))
                .collect(),
        })
    }

    fn title(svc: &NetworkSchemaService) -> Value {
        svc.catalog()
            .item_schema("yellow_dot", "student", "profile_1.0")
            .expect("loaded")
            .schema["title"]
            .clone()
    }

    #[tokio::test]
    async fn boot_loads_sources_sets_source_url_and_saves_the_copy() {
        let mut source = MockSchemaSource::new();
        source
            .expect_fetch()
            .returning(|_, _| Ok(fetched(network("yellow_dot", "v1"), "e1")));
        let mut store = MockSchemaStore::new();
        store
            .expect_save()
            .withf(|docs| {
                docs.len() == 1
                    && docs[0].location == REGISTRY
                    && docs[0].etag.as_deref() == Some("e1")
            })
            .times(1)
            .returning(|_| Ok(()));
        let svc = service(source, store, &[REGISTRY]);
        assert_eq!(svc.boot().await.expect("boots"), CatalogOrigin::Sources);
        assert_eq!(title(&svc), "v1");
        let schema = svc
            .catalog()
            .item_schema("yellow_dot", "student", "profile_1.0")
            .expect("loaded")
            .schema_url
            .clone();
        assert_eq!(
            schema,
            format!("{REGISTRY}#/item_schemas/yellow_dot/student/profile_1.0")
        );
    }

    #[tokio::test]
    async fn boot_falls_back_to_the_last_good_copy_and_fails_without_one() {
        let mut source = MockSchemaSource::new();
        source.expect_fetch().returning(|_, _| {
            Err(CoreError::Upstream {
                code: ErrorCode::RemoteSchemaFetchFailed,
                message: "down".into(),
            })
        });
        let mut store = MockSchemaStore::new();
        let saved_at = Utc::now() - chrono::Duration::hours(1);
        store.expect_load().times(1).returning(move || {
            Ok(vec![StoredDocument {
                kind: StoredKind::Network,
                location: REGISTRY.into(),
                body: network("yellow_dot", "stored"),
                etag: None,
                last_modified: None,
                fetched_at: saved_at,
            }])
        });
        let svc = service(source, store, &[REGISTRY]);
        assert_eq!(
            svc.boot().await.expect("boots"),
            CatalogOrigin::LastGoodCopy { saved_at }
        );
        assert_eq!(title(&svc), "stored");
        assert!(svc.status().last_error.is_some());

        let mut source = MockSchemaSource::new();
        source.expect_fetch().returning(|_, _| {
            Err(CoreError::Upstream {
                code: ErrorCode::RemoteSchemaFetchFailed,
                message: "down".into(),
            })
        });
        let mut empty = MockSchemaStore::new();
        empty.expect_load().returning(|| Ok(vec![]));
        assert_eq!(
            service(source, empty, &[REGISTRY])
                .boot()
                .await
                .expect_err("no copy")
                .code(),
            ErrorCode::RemoteSchemaFetchFailed
        );
    }

    #[tokio::test]
    async fn a_failed_reload_keeps_the_catalog_in_force() {
        let calls = Arc::new(Mutex::new(0));
        let mut source = MockSchemaSource::new();
        let counter = calls.clone();
        source.expect_fetch().returning(move |_, _| {
            let mut n = counter.lock().expect("lock");
            *n += 1;
            if *n == 1 {
                Ok(fetched(network("yellow_dot", "v1"), "e1"))
            } else {
                Ok(fetched(
                    json!({"name": "yellow_dot", "domains": [{"name": ""}]}),
                    "e2",
                ))
            }
        });
        let mut store = MockSchemaStore::new();
        store.expect_save().times(1).returning(|_| Ok(()));
        let svc = service(source, store, &[REGISTRY]);
        svc.boot().await.expect("boots");
        let err = svc.reload().await.expect_err("invalid document");
        assert_eq!(err.code(), ErrorCode::SchemaReloadFailed);
        assert!(err.to_string().contains("domains[0].name"), "{err}");
        assert_eq!(title(&svc), "v1");
        assert!(svc.status().last_error.is_some());
    }

    #[tokio::test]
    async fn refresh_sends_validators_and_skips_rebuild_when_unchanged() {
        let mut source = MockSchemaSource::new();
        source
            .expect_fetch()
            .withf(|_, known| known.is_none())
            .times(1)
            .returning(|_, _| Ok(fetched(network("yellow_dot", "v1"), "e1")));
        source
            .expect_fetch()
            .withf(|_, known| known.as_ref().and_then(|k| k.etag.as_deref()) == Some("e1"))
            .times(1)
            .returning(|_, _| Ok(FetchOutcome::NotModified));
        let mut store = MockSchemaStore::new();
        store.expect_save().times(1).returning(|_| Ok(()));
        let svc = service(source, store, &[REGISTRY]);
        svc.boot().await.expect("boots");
        let loaded_at = svc.catalog().loaded_at;
        let report = svc.refresh().await.expect("refreshes");
        assert!(!report.changed);
        assert_eq!(svc.catalog().loaded_at, loaded_at);
    }

    #[tokio::test]
    async fn loads_one_hop_of_cross_network_origins_and_checks_their_name() {
        let origin_url = "https://registry.example.com/blue_dot/network.json";
        let mut base = network("yellow_dot", "v1");
        base["cross_network_origins"] = json!([{"name": "blue_dot", "schema_url": origin_url}]);
        let mut source = MockSchemaSource::new();
        let base_body = base.clone();
        source
            .expect_fetch()
            .withf(|location, _| location.as_str() == REGISTRY)
            .returning(move |_, _| Ok(fetched(base_body.clone(), "b")));
        source
            .expect_fetch()
            .withf(move |location, _| location.as_str() == origin_url)
            .times(1)
            .returning(|_, _| Ok(fetched(json!({"name": "blue_dot", "cross_network_origins": [{"name": "green", "schema_url": "https://x.example/g.json"}]}), "o")));
        let mut store = MockSchemaStore::new();
        store.expect_save().returning(|_| Ok(()));
        let svc = service(source, store, &[REGISTRY]);
        svc.boot().await.expect("boots");
        let names: Vec<String> = svc.catalog().networks().map(|n| n.name.clone()).collect();
        assert_eq!(
            names,
            vec!["yellow_dot", "blue_dot"],
            "origins of origins are not followed"
        );

        let mut source = MockSchemaSource::new();
        source
            .expect_fetch()
            .withf(|location, _| location.as_str() == REGISTRY)
            .returning(move |_, _| Ok(fetched(base.clone(), "b")));
        source
            .expect_fetch()
            .returning(|_, _| Ok(fetched(json!({"name": "red_dot"}), "o")));
        let mut store = MockSchemaStore::new();
        store.expect_load().returning(|| Ok(vec![]));
        let err = service(source, store, &[REGISTRY])
            .boot()
            .await
            .expect_err("name mismatch");
        assert!(
            err.to_string().contains(
                "Cross-network origin \"blue_dot\" loaded schema for network \"red_dot\"."
            )
        );
    }

    #[tokio::test]
    async fn fetches_this_instance_custom_item_schemas() {
        let custom = "https://schemas.example.org/student.json";
        let mut base = network("yellow_dot", "inline");
        base["instances"] = json!([
            {"domain_name": "student", "instance_url": "https://student.example.org", "custom_item_schema_urls": {"profile_1.0": custom}},
            {"domain_name": "student", "instance_url": "https://other.example.org", "custom_item_schema_urls": {"profile_1.0": "https://other.example.org/s.json"}}
        ]);
        let mut source = MockSchemaSource::new();
        source
            .expect_fetch()
            .withf(|location, _| location.as_str() == REGISTRY)
            .returning(move |_, _| Ok(fetched(base.clone(), "b")));
        source
            .expect_fetch()
            .withf(move |location, _| location.as_str() == custom)
            .times(1)
            .returning(|_, _| Ok(fetched(json!({"type": "object", "title": "custom"}), "c")));
        let mut store = MockSchemaStore::new();
        store
            .expect_save()
            .withf(|docs| docs.iter().any(|d| d.kind == StoredKind::Schema))
            .returning(|_| Ok(()));
        let svc = service(source, store, &[REGISTRY]);
        svc.boot().await.expect("boots");
        assert_eq!(title(&svc), "custom");
        let schema_url = svc
            .catalog()
            .item_schema("yellow_dot", "student", "profile_1.0")
            .expect("x")
            .schema_url
            .clone();
        assert_eq!(schema_url, custom);
    }
}
