//! Black-box HTTP tests of the action and event routes on one embedded instance: body and
//! query validation in the reference's shapes, and the checks made before any storage.

use dpg_tests::support::instance::{InstanceEnv, TestInstance};
use reqwest::Method;
use serde_json::{Value, json};
use tempfile::TempDir;

async fn embedded() -> (TestInstance, TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let instance = TestInstance::start(dir.path().to_path_buf(), InstanceEnv::new())
        .await
        .expect("instance boots");
    (instance, dir)
}

async fn call(
    instance: &TestInstance,
    method: Method,
    path: &str,
    user: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = instance
        .client
        .request(method, instance.url(path))
        .header("x-dev-user-id", user);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("answered");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

const ID: &str = "0190a000-0000-7000-8000-000000000001";

fn perform_body(source_id: &str) -> Value {
    json!({
        "action_name": "connect",
        "source_item": {"item_network": "yellow_dot", "item_domain": "student",
                        "item_type": "profile_1.0", "item_id": source_id},
        "target_item": {"item_network": "yellow_dot", "item_domain": "tutor",
                        "item_type": "profile_1.0", "item_id": ID,
                        "item_instance_url": "http://localhost:2742"},
        "requirements_snapshot": {"subject": "maths", "goal": "board exam"}
    })
}

#[tokio::test]
async fn malformed_action_bodies_are_validation_errors() {
    let (instance, _dir) = embedded().await;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/api/v1/action/perform",
            {
                let mut b = perform_body(ID);
                b["action_name"] = json!("");
                b
            },
            "body/action_name Too small: expected string to have >=1 characters",
        ),
        (
            "/api/v1/action/perform",
            perform_body("11111111-2222-3333-4444-555555555555"),
            "body/source_item/item_id Invalid UUID",
        ),
        (
            "/api/v1/action/perform",
            {
                let mut b = perform_body(ID);
                b["requirements_snapshot"] = json!([]);
                b
            },
            "body/requirements_snapshot Invalid input: expected record, received array",
        ),
        (
            "/api/v1/action/perform",
            {
                let mut b = perform_body(ID);
                b["target_item"]["item_instance_url"] = json!("not a url");
                b
            },
            "body/target_item/item_instance_url Invalid URL",
        ),
        (
            "/api/v1/action/update-status",
            json!({"action_id": "nope", "action_status": "accepted"}),
            "body/action_id Invalid UUID",
        ),
    ];
    for (path, body, message) in cases {
        let (status, reply) = call(&instance, Method::POST, path, "asha", Some(&body)).await;
        assert_eq!(status, 400, "{path}: {reply}");
        assert_eq!(reply["code"], "FST_ERR_VALIDATION", "{reply}");
        assert_eq!(reply["message"], message, "{reply}");
    }
    let (status, reply) = call(
        &instance,
        Method::POST,
        "/api/v1/action/update-status",
        "ravi",
        Some(&json!({"action_id": ID, "action_status": "accepted", "remarks": null})),
    )
    .await;
    assert_eq!(status, 400, "null remarks: {reply}");
}

#[tokio::test]
async fn listing_queries_are_bounded() {
    let (instance, _dir) = embedded().await;
    for query in [
        "/api/v1/action/fetch?limit=101",
        "/api/v1/action/fetch?offset=10001",
        "/api/v1/event/fetch?ownership_role=everyone",
        "/api/v1/event/fetch?action_id=x",
        "/api/v1/action/fetch?action_name=a&action_name=b",
    ] {
        let (status, reply) = call(&instance, Method::GET, query, "asha", None).await;
        assert_eq!(status, 400, "{query}: {reply}");
    }
}

#[tokio::test]
async fn perform_is_checked_before_anything_is_stored_or_sent() {
    let (instance, _dir) = embedded().await;
    let (status, created) = call(
        &instance,
        Method::POST,
        "/api/v1/item/create",
        "asha",
        Some(
            &json!({"item_network": "yellow_dot", "item_domain": "student",
                      "item_type": "profile_1.0",
                      "item_state": {"name": "Asha", "grade": "10", "city": "Pune"}}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let item_id = created["item_id"].as_str().expect("id");

    let (status, reply) = call(
        &instance,
        Method::POST,
        "/api/v1/action/perform",
        "mallory",
        Some(&perform_body(item_id)),
    )
    .await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (404, Some("SOURCE_ITEM_NOT_FOUND")),
        "{reply}"
    );

    let mut unknown = perform_body(item_id);
    unknown["action_name"] = json!("hire");
    let (status, reply) = call(
        &instance,
        Method::POST,
        "/api/v1/action/perform",
        "asha",
        Some(&unknown),
    )
    .await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(
        reply,
        json!({"error": "INVALID_ACTION_REQUEST",
        "message": "Action \"hire\" is not defined for network \"yellow_dot\"."})
    );

    let mut requirements = perform_body(item_id);
    requirements["requirements_snapshot"] = json!({"subject": "maths"});
    let (status, reply) = call(
        &instance,
        Method::POST,
        "/api/v1/action/perform",
        "asha",
        Some(&requirements),
    )
    .await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(
        reply["message"],
        "Invalid action requirements: must have required property 'goal'"
    );
    assert_eq!(
        reply["violations"][0]["message"],
        "must have required property 'goal'"
    );

    let (status, reply) = call(
        &instance,
        Method::POST,
        "/api/v1/action/perform",
        "asha",
        Some(&{
            let mut b = perform_body(item_id);
            b["target_item"]["item_instance_url"] = json!("http://10.0.0.1");
            b
        }),
    )
    .await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (400, Some("INVALID_TARGET_INSTANCE")),
        "{reply}"
    );
}

#[tokio::test]
async fn an_event_from_a_non_member_is_refused() {
    let (instance, _dir) = embedded().await;
    let body = json!({
        "origin_instance_domain": "http://10.0.0.1",
        "action_name": "connect", "action_id": ID, "action_status": "accepted", "update_count": 1,
        "source_item": {"item_network": "yellow_dot", "item_domain": "student",
                        "item_type": "profile_1.0", "item_id": ID, "item_instance_url": instance.base_url},
        "target_item": {"item_network": "yellow_dot", "item_domain": "tutor",
                        "item_type": "profile_1.0", "item_id": ID, "item_instance_url": "http://10.0.0.1"},
        "event_payload": {"status": "accepted", "remark": "ok"}
    });
    let (status, reply) = call(
        &instance,
        Method::POST,
        "/api/v1/event/store",
        "x",
        Some(&body),
    )
    .await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (403, Some("EVENT_ORIGIN_FORBIDDEN")),
        "{reply}"
    );
}
