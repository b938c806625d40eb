//! Contract suite of the `SchemaStore` port on SQLite and PostgreSQL.

use chrono::{DateTime, Utc};
use dpg_adapters::sql::{SqlDatabase, SqlSchemaStore};
use dpg_core::ports::{SchemaStore, StoredDocument, StoredKind};
use dpg_tests::support::postgres::TestDatabase;
use serde_json::json;

struct Backend {
    store: SqlSchemaStore,
    _db: SqlDatabase,
    _database: TestDatabase,
}

async fn backend(database: TestDatabase) -> Backend {
    let db = database.migrated().await.expect("test database migrates");
    Backend {
        store: SqlSchemaStore::new(&db),
        _db: db,
        _database: database,
    }
}

fn at(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_750_000_000_000 + millis).expect("valid timestamp")
}

fn document(
    kind: StoredKind,
    location: &str,
    body: serde_json::Value,
    fetched_ms: i64,
) -> StoredDocument {
    StoredDocument {
        kind,
        location: location.to_string(),
        body,
        etag: None,
        last_modified: None,
        fetched_at: at(fetched_ms),
    }
}

fn first_set() -> Vec<StoredDocument> {
    let mut network = document(
        StoredKind::Network,
        "https://registry.example/networks/jobs.json",
        // Keys deliberately out of alphabetical order: the stored text keeps them as fetched.
        json!({"network": "jobs", "domains": {"seeker": {"items": {}}}, "actions": [], "zeta": 1.50, "alpha": null}),
        123,
    );
    network.etag = Some("\"abc\"".to_string());
    network.last_modified = Some("Wed, 21 Oct 2015 07:28:00 GMT".to_string());
    vec![
        network,
        document(
            StoredKind::CrossNetworkOrigin,
            "https://other.example/network.json",
            json!({"network": "education", "peer_auth": "permissive"}),
            999,
        ),
        document(
            StoredKind::Schema,
            "https://schemas.example/job.json",
            json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "private": true}),
            0,
        ),
    ]
}

mod suite {
    use super::*;

    pub async fn nothing_saved_loads_empty(store: &dyn SchemaStore) {
        assert_eq!(store.load().await.expect("load"), Vec::new());
    }

    pub async fn save_then_load_round_trips_in_order(store: &dyn SchemaStore) {
        let documents = first_set();
        store.save(&documents).await.expect("save");
        let loaded = store.load().await.expect("load");
        assert_eq!(loaded, documents);
        // The body's text survives byte for byte, key order included.
        for (loaded, saved) in loaded.iter().zip(&documents) {
            assert_eq!(
                serde_json::to_string(&loaded.body).expect("serializes"),
                serde_json::to_string(&saved.body).expect("serializes")
            );
        }
    }

    pub async fn save_replaces_the_whole_set(store: &dyn SchemaStore) {
        store.save(&first_set()).await.expect("save");
        let replacement = vec![document(
            StoredKind::Network,
            "/etc/dpg/network.json",
            json!({"network": "replaced"}),
            5,
        )];
        store.save(&replacement).await.expect("save again");
        assert_eq!(store.load().await.expect("load"), replacement);
        store.save(&[]).await.expect("save nothing");
        assert_eq!(store.load().await.expect("load"), Vec::new());
    }

    pub async fn many_documents_are_saved(store: &dyn SchemaStore) {
        let documents: Vec<StoredDocument> = (0..450)
            .map(|i| {
                document(
                    StoredKind::Schema,
                    &format!("https://schemas.example/{i}.json"),
                    json!({"i": i}),
                    i,
                )
            })
            .collect();
        store.save(&documents).await.expect("save");
        assert_eq!(store.load().await.expect("load"), documents);
    }
}

macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let backend = super::backend(super::TestDatabase::sqlite().expect("sqlite")).await;
                    super::suite::$name(&backend.store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let database = super::TestDatabase::postgres().await.expect("PostgreSQL test database");
                    let backend = super::backend(database).await;
                    super::suite::$name(&backend.store).await;
                }
            )*
        }
    };
}

contract_tests!(
    nothing_saved_loads_empty,
    save_then_load_round_trips_in_order,
    save_replaces_the_whole_set,
    many_documents_are_saved,
);
