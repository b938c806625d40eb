//! Black-box HTTP tests of one instance on the embedded default (SQLite, in-process cache,
//! development identity), through the real app on a loopback port.

use dpg_tests::support::instance::{InstanceEnv, TestInstance};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

async fn embedded() -> (TestInstance, TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let instance = TestInstance::start(dir.path().to_path_buf(), InstanceEnv::new())
        .await
        .expect("instance boots");
    (instance, dir)
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn call(
    instance: &TestInstance,
    method: Method,
    path: &str,
    user: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut request = instance.client.request(method, instance.url(path));
    if let Some(user) = user {
        request = request.header("x-dev-user-id", user);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Reply {
        status,
        headers,
        body,
    }
}

async fn raw(
    instance: &TestInstance,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let mut request = instance
        .client
        .request(method, instance.url(path))
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

fn student(name: &str, city: &str) -> Value {
    json!({"item_network": "yellow_dot", "item_domain": "student", "item_type": "profile_1.0",
           "item_state": {"name": name, "grade": "10", "city": city}})
}

async fn create(instance: &TestInstance, user: &str, body: Value) -> String {
    let reply = call(
        instance,
        Method::POST,
        "/api/v1/item/create",
        Some(user),
        Some(body),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body["item_id"].as_str().expect("item_id").to_string()
}

async fn own_items(instance: &TestInstance, user: &str, query: &str) -> Value {
    let reply = call(
        instance,
        Method::GET,
        &format!("/api/v1/item/fetch?item_network=yellow_dot&item_domain=student{query}"),
        Some(user),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

#[tokio::test]
async fn health_docs_and_metrics() {
    let (instance, _dir) = embedded().await;
    let health = call(&instance, Method::GET, "/", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["service"], "dpg");
    assert_eq!(health.body["status"], "ok");
    assert_eq!(health.body["network_config_source"], "local");
    assert_eq!(
        health.body["served_domains"],
        json!([
            {"network": "yellow_dot", "domain": "student", "key": "yellow_dot/student"},
            {"network": "yellow_dot", "domain": "tutor", "key": "yellow_dot/tutor"}
        ])
    );
    assert_eq!(health.body["network_config"]["origin"], "sources");
    assert!(health.headers.contains_key("x-request-id"));

    assert_eq!(
        call(&instance, Method::GET, "/health/live", None, None)
            .await
            .status,
        StatusCode::OK
    );
    let ready = call(&instance, Method::GET, "/health/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["checks"]["database"], "ok");
    assert_eq!(ready.body["checks"]["network_documents"], 1);

    for path in ["/openapi.json", "/api/reference/openapi.json"] {
        let spec = call(&instance, Method::GET, path, None, None).await;
        assert_eq!(spec.status, StatusCode::OK);
        assert_eq!(spec.body["servers"][0]["url"], instance.base_url);
        assert!(spec.body["paths"]["/api/v1/item/create"].is_object());
    }
    for path in ["/docs", "/api/reference"] {
        let page = instance
            .client
            .get(instance.url(path))
            .send()
            .await
            .expect("docs");
        assert_eq!(page.status(), StatusCode::OK);
        assert!(
            page.text().await.expect("html").contains("swagger"),
            "{path} is not Swagger UI"
        );
    }

    let echoed = instance
        .client
        .get(instance.url("/"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .expect("health");
    assert_eq!(echoed.headers()["x-request-id"], "trace-abc-123");

    let metrics = instance
        .client
        .get(instance.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    let text = metrics.text().await.expect("text");
    assert!(text.contains("dpg_http_requests_total"), "{text}");
    assert!(text.contains("dpg_db_pool_connections"), "{text}");
}

#[tokio::test]
async fn create_fetch_update_delete_round_trip() {
    let (instance, _dir) = embedded().await;
    let id = create(&instance, "dev-user", student("Asha", "Pune")).await;

    let page = own_items(&instance, "dev-user", "").await;
    assert_eq!(page["meta"], json!({"total": 1, "limit": 20, "offset": 0}));
    let item = &page["items"][0];
    assert_eq!(item["item_id"], id.as_str());
    assert_eq!(item["item_instance_url"], instance.base_url);
    assert_eq!(
        item["item_schema_url"],
        format!(
            "{}/api/v1/network/schema/yellow_dot/student/profile_1.0",
            instance.base_url
        )
    );
    assert_eq!(item["created_by"], "dev-user");
    assert_eq!(item["item_latitude"], Value::Null);
    let created_at = item["created_at"].as_str().expect("created_at");
    assert_eq!(
        created_at.len(),
        24,
        "{created_at} is not YYYY-MM-DDTHH:mm:ss.sssZ"
    );
    assert!(created_at.ends_with('Z'));
    let keys: Vec<&str> = item
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 12, "{keys:?}");

    // The warm page is invalidated by a write: the new item shows at once.
    let second = create(&instance, "dev-user", student("Ravi", "Delhi")).await;
    let page = own_items(&instance, "dev-user", "").await;
    assert_eq!(page["meta"]["total"], 2);
    assert_eq!(page["items"][0]["item_id"], second.as_str(), "newest first");

    let other = own_items(&instance, "someone-else", "").await;
    assert_eq!(other["meta"]["total"], 0, "local fetch is owner-scoped");

    let path = format!("/api/v1/item/{id}");
    let updated = call(
        &instance,
        Method::PATCH,
        &path,
        Some("dev-user"),
        Some(json!({"item_state": {"name": "Asha", "grade": "11", "city": "Pune"}, "item_latitude": 18.52, "item_longitude": 73.85})),
    )
    .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["item"]["item_state"]["grade"], "11");
    assert_eq!(updated.body["item"]["item_latitude"], 18.52);

    let near = own_items(
        &instance,
        "dev-user",
        "&item_latitude=18.5&item_longitude=73.8&radius_meters=10000",
    )
    .await;
    assert_eq!(near["meta"]["total"], 1);
    let far = own_items(
        &instance,
        "dev-user",
        "&item_latitude=28.6&item_longitude=77.2&radius_meters=10000",
    )
    .await;
    assert_eq!(far["meta"]["total"], 0);
    let by_state = own_items(&instance, "dev-user", "&item_state%5Bcity%5D=Delhi").await;
    assert_eq!(by_state["meta"]["total"], 1);
    assert_eq!(by_state["items"][0]["item_id"], second.as_str());

    let not_owner = call(
        &instance,
        Method::PATCH,
        &path,
        Some("intruder"),
        Some(json!({"item_state": {}})),
    )
    .await;
    assert_eq!(not_owner.status, StatusCode::NOT_FOUND);
    assert_eq!(not_owner.body["error"], "ITEM_NOT_FOUND_OR_FORBIDDEN");
    assert_eq!(
        call(&instance, Method::DELETE, &path, Some("intruder"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let deleted = call(&instance, Method::DELETE, &path, Some("dev-user"), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        own_items(&instance, "dev-user", "").await["meta"]["total"],
        1
    );
    assert_eq!(
        call(&instance, Method::DELETE, &path, Some("dev-user"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn create_rejects_bad_items_with_the_reference_bodies_and_stores_nothing() {
    let (instance, _dir) = embedded().await;
    let post = |body: Value| {
        call(
            &instance,
            Method::POST,
            "/api/v1/item/create",
            Some("dev-user"),
            Some(body),
        )
    };

    let missing = post(
        json!({"item_network": "yellow_dot", "item_domain": "student", "item_type": "profile_1.0",
                              "item_state": {"name": "Bad", "grade": "7"}}),
    )
    .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.body["error"], "INVALID_ITEM_STATE");
    let message = missing.body["message"].as_str().expect("message");
    assert!(message.starts_with("Invalid item_state: "), "{message}");
    assert!(
        message.contains("must have required property 'city'"),
        "{message}"
    );
    assert!(
        message.contains("must be equal to one of the allowed values"),
        "{message}"
    );
    assert_eq!(missing.body["violations"].as_array().map(Vec::len), Some(2));

    let no_state = post(
        json!({"item_network": "yellow_dot", "item_domain": "student", "item_type": "profile_1.0"}),
    )
    .await;
    assert_eq!(
        no_state.body,
        json!({"error": "INVALID_ITEM_STATE", "message": "Invalid item_state: must be object",
        "violations": [{"path": "", "message": "must be object"}]})
    );

    let unknown_type = post(json!({"item_network": "yellow_dot", "item_domain": "student", "item_type": "profile_9.9", "item_state": {}})).await;
    assert_eq!(unknown_type.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        unknown_type.body,
        json!({"error": "INVALID_ITEM_STATE", "message": "Item type \"profile_9.9\" is not defined for domain \"student\" in network \"yellow_dot\"."})
    );

    let unserved = post(json!({"item_network": "yellow_dot", "item_domain": "coaching_center", "item_type": "profile_1.0", "item_state": {}})).await;
    assert_eq!(unserved.status, StatusCode::FORBIDDEN);
    assert_eq!(
        unserved.body,
        json!({
            "error": "UNSERVED_DOMAIN_BINDING",
            "message": "This API instance does not serve \"yellow_dot/coaching_center\".",
            "requested": {"network": "yellow_dot", "domain": "coaching_center", "key": "yellow_dot/coaching_center"},
            "allowed_bindings": ["yellow_dot/student", "yellow_dot/tutor"],
            "allowed_networks": ["yellow_dot"],
            "allowed_domains": ["student", "tutor"],
            "allowed_item_types_by_binding": {"yellow_dot/student": ["profile_1.0", "profile_1.1"], "yellow_dot/tutor": ["profile_1.0"]}
        })
    );
    let unknown_network = post(json!({"item_network": "blue_dot", "item_domain": "seeker", "item_type": "x", "item_state": {}})).await;
    assert_eq!(unknown_network.status, StatusCode::FORBIDDEN);

    let wrong_type = post(json!({"item_network": 5, "item_domain": "student", "item_type": "profile_1.0", "item_state": {}})).await;
    assert_eq!(wrong_type.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong_type.body["code"], "FST_ERR_VALIDATION");
    assert!(
        wrong_type.body["message"]
            .as_str()
            .expect("m")
            .starts_with("body/item_network "),
        "{}",
        wrong_type.body
    );

    let missing_field = post(json!({"item_domain": "student", "item_type": "profile_1.0"})).await;
    assert_eq!(missing_field.body["message"], "body/item_network Required");

    let bad_geo = post(json!({"item_network": "yellow_dot", "item_domain": "student", "item_type": "profile_1.0",
        "item_state": {"name": "G", "grade": "9", "city": "X"}, "item_latitude": 95.0, "item_longitude": 10.0}))
    .await;
    assert_eq!(bad_geo.status, StatusCode::BAD_REQUEST);
    let half_geo = post(
        json!({"item_network": "yellow_dot", "item_domain": "student", "item_type": "profile_1.0",
        "item_state": {"name": "G", "grade": "9", "city": "X"}, "item_latitude": 45.0}),
    )
    .await;
    assert_eq!(half_geo.status, StatusCode::BAD_REQUEST);

    // Server-generated fields sent by a client are ignored, never stored.
    let mut spoof = student("Spoof", "Goa");
    spoof["item_id"] = json!("00000000-0000-4000-8000-000000000000");
    spoof["item_schema_url"] = json!("http://169.254.169.254/latest/meta-data");
    spoof["created_by"] = json!("someone-else");
    let spoofed_id = create(&instance, "dev-user", spoof).await;
    assert_ne!(spoofed_id, "00000000-0000-4000-8000-000000000000");
    let page = own_items(&instance, "dev-user", "").await;
    assert_eq!(
        page["meta"]["total"], 1,
        "only the valid create stored anything"
    );
    assert!(
        page["items"][0]["item_schema_url"]
            .as_str()
            .expect("url")
            .starts_with(&instance.base_url)
    );
}

#[tokio::test]
async fn framework_errors_use_the_reference_envelopes() {
    let (instance, _dir) = embedded().await;
    let path = "/api/v1/item/create";
    let json_type = Some("application/json");

    let malformed = raw(
        &instance,
        Method::POST,
        path,
        json_type,
        b"{\"item_network\":".to_vec(),
    )
    .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        malformed.body,
        json!({"statusCode": 400, "code": "FST_ERR_CTP_INVALID_JSON_BODY", "error": "Bad Request",
               "message": "Body is not valid JSON but content-type is set to 'application/json'"})
    );
    let empty = raw(&instance, Method::POST, path, json_type, Vec::new()).await;
    assert_eq!(empty.body["code"], "FST_ERR_CTP_EMPTY_JSON_BODY");
    let text = raw(
        &instance,
        Method::POST,
        path,
        Some("text/html"),
        b"<b>".to_vec(),
    )
    .await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(text.body["code"], "FST_ERR_CTP_INVALID_MEDIA_TYPE");
    let no_body = raw(&instance, Method::POST, path, None, Vec::new()).await;
    assert_eq!(no_body.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_body.body["code"], "FST_ERR_VALIDATION");

    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let too_deep = raw(&instance, Method::POST, path, json_type, deep.into_bytes()).await;
    assert_eq!(too_deep.status, StatusCode::BAD_REQUEST);
    assert_eq!(too_deep.body["statusCode"], 400);

    let mut huge = student("Big", "X");
    huge["item_state"]["city"] = json!("x".repeat(2 * 1024 * 1024));
    let too_large = raw(
        &instance,
        Method::POST,
        path,
        json_type,
        serde_json::to_vec(&huge).expect("json"),
    )
    .await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.body["code"], "FST_ERR_CTP_BODY_TOO_LARGE");
    // Without Content-Length (chunked), the cap holds while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..40).map(|_| Ok(vec![b' '; 64 * 1024])).collect();
    let chunked = instance
        .client
        .post(instance.url(path))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .expect("sent");
    assert_eq!(chunked.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let unknown = call(&instance, Method::GET, "/nope", None, None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.body["message"], "Route GET:/nope not found");
    let wrong_method = call(&instance, Method::PUT, "/api/v1/item/create", None, None).await;
    assert_eq!(wrong_method.status, StatusCode::NOT_FOUND);
    assert_eq!(
        wrong_method.body["message"],
        "Route PUT:/api/v1/item/create not found"
    );

    let bad_uuid = call(
        &instance,
        Method::PATCH,
        "/api/v1/item/not-a-uuid",
        None,
        Some(json!({"item_state": {}})),
    )
    .await;
    assert_eq!(bad_uuid.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_uuid.body["code"], "FST_ERR_VALIDATION");
    assert!(
        bad_uuid.body["message"]
            .as_str()
            .expect("m")
            .starts_with("params/itemId"),
        "{}",
        bad_uuid.body
    );
    assert_eq!(
        own_items(&instance, "dev-user", "").await["meta"]["total"],
        0,
        "nothing stored by any of these"
    );
}

#[tokio::test]
async fn fetch_rejects_abusive_queries() {
    let (instance, _dir) = embedded().await;
    let base = "/api/v1/item/fetch?item_network=yellow_dot&item_domain=student";
    for (query, expected) in [
        ("&limit=0", "INVALID_PAGINATION"),
        ("&limit=101", "INVALID_PAGINATION"),
        ("&offset=10001", "INVALID_PAGINATION"),
        ("&limit=abc", "FST_ERR_VALIDATION"),
        ("&offset=-1", "FST_ERR_VALIDATION"),
        ("&item_id=not-a-uuid", "FST_ERR_VALIDATION"),
        ("&item_id=a&item_id=b", "FST_ERR_VALIDATION"),
        ("&radius_meters=5", "INVALID_GEO_FILTER"),
        (
            "&item_latitude=91&item_longitude=0&radius_meters=5",
            "INVALID_GEO_FILTER",
        ),
        (
            "&item_latitude=1&item_longitude=1&radius_meters=0",
            "INVALID_GEO_FILTER",
        ),
        ("&item_state=abc", "FST_ERR_VALIDATION"),
        ("&item_state[a][b][c][d][e][f]=1", "FST_ERR_VALIDATION"),
    ] {
        let reply = call(
            &instance,
            Method::GET,
            &format!("{base}{query}"),
            None,
            None,
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            reply.body
        );
        let code = reply
            .body
            .get("code")
            .or_else(|| reply.body.get("error"))
            .cloned()
            .unwrap_or_default();
        let code = if reply.body.get("statusCode").is_some() {
            reply.body["code"].clone()
        } else {
            code
        };
        assert_eq!(code, expected, "{query}: {}", reply.body);
    }
    let missing = call(
        &instance,
        Method::GET,
        "/api/v1/item/fetch?item_network=yellow_dot",
        None,
        None,
    )
    .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(
        missing.body["message"]
            .as_str()
            .expect("m")
            .starts_with("querystring/item_domain"),
        "{}",
        missing.body
    );
    let unserved = call(
        &instance,
        Method::GET,
        "/api/v1/item/fetch?item_network=yellow_dot&item_domain=coaching_center",
        None,
        None,
    )
    .await;
    assert_eq!(unserved.status, StatusCode::FORBIDDEN);
    assert_eq!(unserved.body["error"], "UNSERVED_DOMAIN_BINDING");
}

#[tokio::test]
async fn patch_is_strict_validated_and_cannot_rewrite_urls() {
    let (instance, _dir) = embedded().await;
    let id = create(&instance, "dev-user", student("Asha", "Pune")).await;
    let path = format!("/api/v1/item/{id}");
    let patch = |body: Value| {
        call(
            &instance,
            Method::PATCH,
            &path,
            Some("dev-user"),
            Some(body),
        )
    };

    let empty = patch(json!({})).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        empty.body["message"],
        "body/ At least one field must be provided for update"
    );
    let unknown_key = patch(json!({"item_type": "profile_1.1"})).await;
    assert_eq!(unknown_key.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        unknown_key.body["message"],
        "body/ Unrecognized key: \"item_type\""
    );
    let schema_bypass = patch(json!({"item_state": {"not_in_schema": true}})).await;
    assert_eq!(schema_bypass.status, StatusCode::BAD_REQUEST);
    assert_eq!(schema_bypass.body["error"], "INVALID_ITEM_STATE");
    let ssrf = patch(json!({"item_schema_url": "http://169.254.169.254/latest/meta-data"})).await;
    assert_eq!(ssrf.status, StatusCode::BAD_REQUEST);
    assert_eq!(ssrf.body["error"], "IMMUTABLE_FIELD");
    let moved = patch(json!({"item_instance_url": "http://10.0.0.1:2742"})).await;
    assert_eq!(moved.body["error"], "IMMUTABLE_FIELD");
    let half_geo = patch(json!({"item_latitude": 10.0})).await;
    assert_eq!(half_geo.status, StatusCode::BAD_REQUEST);

    let stored = &own_items(&instance, "dev-user", "").await["items"][0];
    assert_eq!(
        stored["item_state"],
        json!({"name": "Asha", "grade": "10", "city": "Pune"}),
        "nothing changed"
    );
    assert!(
        stored["item_schema_url"]
            .as_str()
            .expect("url")
            .starts_with(&instance.base_url)
    );
    assert_eq!(stored["created_at"], stored["updated_at"]);
}

#[tokio::test]
async fn schema_routes_report_unknown_names_as_404() {
    let (instance, _dir) = embedded().await;
    let list = call(
        &instance,
        Method::GET,
        "/api/v1/network/schemas",
        None,
        None,
    )
    .await;
    assert_eq!(list.status, StatusCode::OK);
    let entries = list.body.as_array().expect("array");
    let network = entries
        .iter()
        .find(|e| e["kind"] == "network_config")
        .expect("network entry");
    assert_eq!(network["network"], "yellow_dot");
    assert_eq!(network["schema"]["domains"][0]["name"], "student");
    assert_eq!(network["cache_key"].as_str().map(str::len), Some(64));
    assert_eq!(
        entries.len(),
        1 + 4,
        "network document and its four item schemas"
    );
    let tutor = call(
        &instance,
        Method::GET,
        "/api/v1/network/schemas?domain=tutor",
        None,
        None,
    )
    .await;
    assert_eq!(tutor.body.as_array().map(Vec::len), Some(1));

    let schema = call(
        &instance,
        Method::GET,
        "/api/v1/network/schema/yellow_dot/student/profile_1.0",
        None,
        None,
    )
    .await;
    assert_eq!(schema.status, StatusCode::OK);
    assert_eq!(schema.body["title"], "Student Profile 1.0");
    for (path, code) in [
        (
            "/api/v1/network/schema/yellow_dot/student/profile_9",
            "ITEM_TYPE_NOT_FOUND",
        ),
        (
            "/api/v1/network/schema/yellow_dot/nope/profile_1.0",
            "DOMAIN_NOT_FOUND",
        ),
        (
            "/api/v1/network/schema/blue_dot/seeker/profile_1.0",
            "NETWORK_NOT_CONFIGURED",
        ),
    ] {
        let reply = call(&instance, Method::GET, path, None, None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.body["error"], code, "{path}");
    }
    let unserved = call(
        &instance,
        Method::GET,
        "/api/v1/network/schema/yellow_dot/coaching_center/profile_1.0",
        None,
        None,
    )
    .await;
    assert_eq!(unserved.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn refetch_reloads_atomically_and_a_failed_reload_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let network_file = dir.path().join("network.json");
    let mut network = dpg_tests::support::instance::dev_network();
    std::fs::write(&network_file, serde_json::to_vec(&network).expect("json")).expect("write");
    let instance = TestInstance::start(
        dir.path().join("data"),
        InstanceEnv::new().set(
            "NETWORK_CONFIG_LOCAL_FILE",
            network_file.display().to_string(),
        ),
    )
    .await
    .expect("boots");

    let ok = call(
        &instance,
        Method::POST,
        "/api/v1/network/refetch_schemas",
        None,
        None,
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body, json!({"refreshed": true, "schema_count": 5}));

    // A new item type appears after a reload.
    network["domains"][0]["item_schemas"]["profile_2.0"] =
        json!({"type": "object", "required": ["name"]});
    std::fs::write(&network_file, serde_json::to_vec(&network).expect("json")).expect("write");
    let reloaded = call(
        &instance,
        Method::POST,
        "/api/v1/network/refetch_schemas",
        None,
        None,
    )
    .await;
    assert_eq!(reloaded.body["schema_count"], 6);
    create(&instance, "dev-user", json!({"item_network": "yellow_dot", "item_domain": "student", "item_type": "profile_2.0", "item_state": {"name": "N"}})).await;

    // A broken document is refused with the field named; the previous one keeps serving.
    std::fs::write(&network_file, br#"{"name": "yellow_dot", "domains": [{"name": "student", "minimum_cache_ttl_seconds": -1}]}"#)
        .expect("write");
    let failed = call(
        &instance,
        Method::POST,
        "/api/v1/network/refetch_schemas",
        None,
        None,
    )
    .await;
    assert_eq!(failed.status, StatusCode::BAD_GATEWAY, "{}", failed.body);
    assert_eq!(failed.body["error"], "SCHEMA_RELOAD_FAILED");
    assert!(
        failed.body["message"]
            .as_str()
            .expect("m")
            .contains("minimum_cache_ttl_seconds"),
        "{}",
        failed.body
    );
    create(&instance, "dev-user", json!({"item_network": "yellow_dot", "item_domain": "student", "item_type": "profile_2.0", "item_state": {"name": "M"}})).await;
    let health = call(&instance, Method::GET, "/", None, None).await;
    assert!(
        health.body["network_config"]["last_error"]
            .as_str()
            .is_some()
    );

    std::fs::write(&network_file, b"{ not json").expect("write");
    let unparseable = call(
        &instance,
        Method::POST,
        "/api/v1/network/refetch_schemas",
        None,
        None,
    )
    .await;
    assert_eq!(unparseable.status, StatusCode::BAD_GATEWAY);
    assert_eq!(unparseable.body["error"], "REMOTE_SCHEMA_FETCH_FAILED");
    instance.stop().await.expect("clean stop");
}
