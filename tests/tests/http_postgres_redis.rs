//! The production backends through the real app: PostgreSQL for storage, Redis for the
//! cache, including a cache outage that must degrade reads, not fail them.

use dpg_core::ports::Cache;
use dpg_tests::support::instance::{InstanceEnv, TestInstance};
use dpg_tests::support::postgres::TestPostgres;
use dpg_tests::support::redis::{redis_url, unique_namespace};
use serde_json::{Value, json};

fn student(name: &str) -> Value {
    json!({"item_network": "yellow_dot", "item_domain": "student", "item_type": "profile_1.0",
           "item_state": {"name": name, "grade": "9", "city": "Goa"}})
}

async fn fetch_total(instance: &TestInstance, user: &str) -> u64 {
    let reply: Value = instance
        .client
        .get(instance.url("/api/v1/item/fetch?item_network=yellow_dot&item_domain=student"))
        .header("x-dev-user-id", user)
        .send()
        .await
        .expect("fetch")
        .json()
        .await
        .expect("json");
    reply["meta"]["total"].as_u64().expect("total")
}

async fn create(instance: &TestInstance, user: &str, body: Value) -> String {
    let response = instance
        .client
        .post(instance.url("/api/v1/item/create"))
        .header("x-dev-user-id", user)
        .json(&body)
        .send()
        .await
        .expect("create");
    assert_eq!(response.status().as_u16(), 201);
    let body: Value = response.json().await.expect("json");
    body["item_id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn items_on_postgres_with_a_redis_cache() {
    let database = TestPostgres::create()
        .await
        .expect("PostgreSQL must be reachable");
    let namespace = unique_namespace("http_pg");
    let dir = tempfile::tempdir().expect("tempdir");
    let instance = TestInstance::start(
        dir.path().to_path_buf(),
        InstanceEnv::new()
            .set("DATABASE_URL", database.url())
            .set("REDIS_URL", redis_url())
            .set("REDIS_KEY_PREFIX", namespace.clone()),
    )
    .await
    .expect("boots on PostgreSQL + Redis");

    let ready: Value = instance
        .client
        .get(instance.url("/health/ready"))
        .send()
        .await
        .expect("ready")
        .json()
        .await
        .expect("json");
    assert_eq!(
        ready["checks"],
        json!({"database": "ok", "cache": "ok", "network_documents": 1,
               "outbox": {"pending": 0, "delivered": 0, "dead": 0, "oldest_pending_seconds": null}})
    );

    let first = create(&instance, "u1", student("A")).await;
    assert_eq!(fetch_total(&instance, "u1").await, 1);
    // The page is now cached in Redis under this instance's namespace.
    let probe =
        dpg_adapters::redis::RedisCache::new(&redis_url(), namespace.clone()).expect("cache");
    assert!(
        probe
            .delete_prefix("local-item-fetch:")
            .await
            .expect("redis")
            >= 1,
        "page was cached in Redis"
    );

    create(&instance, "u1", student("B")).await;
    assert_eq!(
        fetch_total(&instance, "u1").await,
        2,
        "a write invalidates the cached page"
    );
    assert_eq!(fetch_total(&instance, "u2").await, 0);

    let patched = instance
        .client
        .patch(instance.url(&format!("/api/v1/item/{first}")))
        .header("x-dev-user-id", "u1")
        .json(&json!({"item_state": {"name": "A2", "grade": "9", "city": "Goa"}}))
        .send()
        .await
        .expect("patch");
    assert_eq!(patched.status().as_u16(), 200);
    let deleted = instance
        .client
        .delete(instance.url(&format!("/api/v1/item/{first}")))
        .header("x-dev-user-id", "u1")
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status().as_u16(), 204);
    assert_eq!(fetch_total(&instance, "u1").await, 1);

    // NUL characters, which PostgreSQL cannot store or compare, are a client error.
    let nul_state = instance
        .client
        .post(instance.url("/api/v1/item/create"))
        .json(&json!({"item_network": "yellow_dot", "item_domain": "student", "item_type": "profile_1.0",
                      "item_state": {"name": "A\u{0}B", "grade": "9", "city": "Goa"}}))
        .send()
        .await
        .expect("create");
    assert_eq!(nul_state.status().as_u16(), 400);
    let nul_filter = instance
        .client
        .get(instance.url("/api/v1/item/fetch?item_network=yellow_dot&item_domain=student&item_type=a%00b&item_state[city]=G%00"))
        .send()
        .await
        .expect("fetch");
    assert_eq!(nul_filter.status().as_u16(), 400);

    // The last good network documents are in the database.
    let stored = database.execute("SELECT 1 FROM network_documents").await;
    assert!(stored.is_ok(), "{stored:?}");
    instance.stop().await.expect("stop");
}

#[tokio::test]
async fn a_redis_outage_degrades_reads_instead_of_failing_them() {
    let database = TestPostgres::create()
        .await
        .expect("PostgreSQL must be reachable");
    let dir = tempfile::tempdir().expect("tempdir");
    let instance = TestInstance::start(
        dir.path().to_path_buf(),
        InstanceEnv::new()
            .set("DATABASE_URL", database.url())
            // Nothing listens on port 1: every cache call fails fast.
            .set("REDIS_URL", "redis://127.0.0.1:1"),
    )
    .await
    .expect("boots without its cache");

    let ready = instance
        .client
        .get(instance.url("/health/ready"))
        .send()
        .await
        .expect("ready");
    assert_eq!(
        ready.status().as_u16(),
        200,
        "the cache is optional for readiness"
    );
    let ready: Value = ready.json().await.expect("json");
    assert_eq!(ready["checks"]["cache"], "unavailable");

    create(&instance, "u1", student("A")).await;
    assert_eq!(fetch_total(&instance, "u1").await, 1);
    create(&instance, "u1", student("B")).await;
    assert_eq!(fetch_total(&instance, "u1").await, 2);
}
