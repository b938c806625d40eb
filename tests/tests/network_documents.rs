//! Loading network documents from a registry: boot from the last good copy when it is down,
//! periodic conditional refresh, and refusal of private addresses outside development.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dpg_tests::support::instance::{InstanceEnv, TestInstance, dev_network};
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{EndpointExt, Request, Response, Route, Server, get, handler};
use serde_json::{Value, json};

/// A registry serving one network document with an ETag; it can be switched off.
#[derive(Clone)]
struct Registry {
    document: Arc<Mutex<Value>>,
    up: Arc<Mutex<bool>>,
    conditional_hits: Arc<Mutex<u32>>,
}

#[handler]
fn network_json(req: &Request, Data(registry): Data<&Registry>) -> Response {
    if !*registry.up.lock().expect("lock") {
        return Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .finish();
    }
    let body = registry.document.lock().expect("lock").to_string();
    let etag = format!(
        "\"{:x}\"",
        body.len() * 31 + body.bytes().map(usize::from).sum::<usize>()
    );
    if req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        *registry.conditional_hits.lock().expect("lock") += 1;
        return Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .finish();
    }
    Response::builder()
        .header("etag", etag)
        .content_type("application/json")
        .body(body)
}

async fn start_registry(document: Value) -> (Registry, String) {
    let registry = Registry {
        document: Arc::new(Mutex::new(document)),
        up: Arc::new(Mutex::new(true)),
        conditional_hits: Arc::new(Mutex::new(0)),
    };
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .expect("bind");
    let addr = acceptor.local_addr()[0]
        .as_socket_addr()
        .copied()
        .expect("addr");
    let app = Route::new()
        .at("/yellow_dot/network.json", get(network_json))
        .data(registry.clone());
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    (registry, format!("http://{addr}"))
}

fn remote_env(registry_url: &str) -> InstanceEnv {
    InstanceEnv::new()
        .set("NETWORK_CONFIG_SOURCE", "remote")
        .set("SCHEMA_REGISTRY_URL", registry_url)
        .set("SERVED_DOMAINS", "yellow_dot/student")
}

async fn get_json(instance: &TestInstance, path: &str) -> (StatusCode, Value) {
    let response = instance
        .client
        .get(instance.url(path))
        .send()
        .await
        .expect("request");
    let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn boots_from_the_last_good_copy_when_the_registry_is_down() {
    let (registry, url) = start_registry(dev_network()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let first = TestInstance::start(dir.path().to_path_buf(), remote_env(&url))
        .await
        .expect("boots online");
    let (_, health) = get_json(&first, "/").await;
    assert_eq!(health["network_config_source"], "remote");
    assert_eq!(health["network_config"]["origin"], "sources");
    let (_, schema) = get_json(&first, "/api/v1/network/schemas?kind=x&network=yellow_dot").await;
    let entry = schema
        .as_array()
        .and_then(|a| a.iter().find(|e| e["kind"] == "network_config"))
        .cloned()
        .expect("doc");
    assert_eq!(
        entry["schema"]["source_url"],
        format!("{url}/yellow_dot/network.json")
    );
    first.stop().await.expect("stop");

    *registry.up.lock().expect("lock") = false;
    let second = TestInstance::start(dir.path().to_path_buf(), remote_env(&url))
        .await
        .expect("boots offline");
    let (_, health) = get_json(&second, "/").await;
    assert_eq!(
        health["network_config"]["origin"], "last_good_copy",
        "{health}"
    );
    assert!(health["network_config"]["saved_at"].is_string());
    assert!(
        health["network_config"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("503")),
        "{health}"
    );
    let created = second
        .client
        .post(second.url("/api/v1/item/create"))
        .json(&json!({"item_network": "yellow_dot", "item_domain": "student", "item_type": "profile_1.0",
                      "item_state": {"name": "A", "grade": "9", "city": "C"}}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status().as_u16(), 201);

    // A fresh data directory has no copy: the instance refuses to start, saying why.
    let empty = tempfile::tempdir().expect("tempdir");
    let err = TestInstance::start(empty.path().to_path_buf(), remote_env(&url))
        .await
        .err()
        .expect("cannot boot");
    assert!(format!("{err:#}").contains("503"), "{err:#}");
}

#[tokio::test]
async fn refreshes_periodically_with_conditional_requests() {
    let (registry, url) = start_registry(dev_network()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let instance = TestInstance::start(
        dir.path().to_path_buf(),
        remote_env(&url).set("SCHEMA_REFRESH_INTERVAL_SECONDS", "1"),
    )
    .await
    .expect("boots");
    let deadline = Instant::now() + Duration::from_secs(20);
    while *registry.conditional_hits.lock().expect("lock") == 0 {
        assert!(
            Instant::now() < deadline,
            "no conditional refresh within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    registry.document.lock().expect("lock")["domains"][0]["item_schemas"]["profile_9.0"] =
        json!({"type": "object"});
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = get_json(
            &instance,
            "/api/v1/network/schema/yellow_dot/student/profile_9.0",
        )
        .await;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "changed document not picked up within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let (_registry, url) = start_registry(dev_network()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let err = TestInstance::start(
        dir.path().to_path_buf(),
        remote_env(&url).set("SCHEMA_FETCH_ALLOW_PRIVATE", "false"),
    )
    .await
    .err()
    .expect("loopback registry refused");
    let message = format!("{err:#}");
    assert!(message.contains("127.0.0.1"), "{message}");

    // A custom item schema of this instance pointing at a metadata endpoint.
    let mut network = dev_network();
    network["instances"][0]["custom_item_schema_urls"] =
        json!({"profile_1.0": "http://169.254.169.254/latest/meta-data"});
    let file = dir.path().join("network.json");
    std::fs::write(&file, serde_json::to_vec(&network).expect("json")).expect("write");
    let err = TestInstance::start(
        dir.path().join("b"),
        InstanceEnv::new()
            .set("API_DOMAIN", "http://127.0.0.1:2742")
            .set("NETWORK_CONFIG_LOCAL_FILE", file.display().to_string())
            .set("SCHEMA_FETCH_ALLOW_PRIVATE", "false"),
    )
    .await
    .err()
    .expect("metadata address refused");
    let message = format!("{err:#}");
    assert!(message.contains("169.254.169.254"), "{message}");
}
