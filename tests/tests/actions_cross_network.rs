//! A cross-network action between real instances: a `yellow_dot` student on one instance
//! applies to a `blue_dot` job on another, as the interaction declared in the target
//! network's document allows. Both instances load both documents; peers call each other
//! unsigned (`peer_auth: permissive`), as TypeScript peers do.

use std::net::{Ipv4Addr, SocketAddr};

use dpg_app::Listening;
use dpg_tests::support::instance::{InstanceEnv, TestInstance, dev_network};
use reqwest::Method;
use serde_json::{Value, json};

async fn call(
    instance: &TestInstance,
    user: &str,
    method: Method,
    path: &str,
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

fn blue_dot(url: &str) -> Value {
    json!({
        "name": "blue_dot",
        "peer_auth": "permissive",
        "domains": [{"name": "provider", "item_schemas": {"job_1.0": {
            "type": "object", "required": ["title"], "properties": {"title": {"type": "string"}}
        }}}],
        "instances": [{"domain_name": "provider", "instance_url": url}],
        "actions": {"apply": {"interactions": [{
            "from_network": "yellow_dot", "from_domain": "student", "from_items": ["profile_1.0"],
            "to_domain": "provider", "to_items": ["job_1.0"],
            "requirement_schema": {"type": "object", "required": ["cover_note"],
                                   "properties": {"cover_note": {"type": "string", "minLength": 1}}},
            "event_schema": {"type": "object", "additionalProperties": false,
                             "properties": {"status": {"enum": ["shortlisted", "rejected"]},
                                            "remark": {"type": "string"}}}
        }]}}
    })
}

#[tokio::test]
async fn a_student_applies_to_a_job_of_another_network() {
    let docs = tempfile::tempdir().expect("tempdir");
    let a_listener = Listening::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("bind");
    let c_listener = Listening::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("bind");
    let a_url = format!("http://{}", a_listener.local_addr);
    let c_url = format!("http://{}", c_listener.local_addr);
    let mut yellow = dev_network();
    yellow["peer_auth"] = json!("permissive");
    yellow["instances"] = json!([{"domain_name": "student", "instance_url": a_url}]);
    let yellow_path = docs.path().join("yellow_dot.json");
    let blue_path = docs.path().join("blue_dot.json");
    std::fs::write(&yellow_path, yellow.to_string()).expect("write");
    std::fs::write(&blue_path, blue_dot(&c_url).to_string()).expect("write");
    let files = format!("{},{}", yellow_path.display(), blue_path.display());
    let env = |served: &str, url: &str| {
        InstanceEnv::new()
            .set("NETWORK_CONFIG_LOCAL_FILE", files.clone())
            .set("SERVED_DOMAINS", served)
            .set("API_DOMAIN", url)
    };
    let a_dir = tempfile::tempdir().expect("tempdir");
    let c_dir = tempfile::tempdir().expect("tempdir");
    let a = TestInstance::start_on(
        a_listener,
        a_dir.path().to_path_buf(),
        env("yellow_dot/student", &a_url),
    )
    .await
    .expect("A boots");
    let c = TestInstance::start_on(
        c_listener,
        c_dir.path().to_path_buf(),
        env("blue_dot/provider", &c_url),
    )
    .await
    .expect("C boots");

    let (status, student) = call(
        &a,
        "asha",
        Method::POST,
        "/api/v1/item/create",
        Some(&json!({
        "item_network": "yellow_dot", "item_domain": "student", "item_type": "profile_1.0",
        "item_state": {"name": "Asha", "grade": "12", "city": "Pune"}})),
    )
    .await;
    assert_eq!(status, 201, "{student}");
    let (status, job) = call(
        &c,
        "pat",
        Method::POST,
        "/api/v1/item/create",
        Some(&json!({
        "item_network": "blue_dot", "item_domain": "provider", "item_type": "job_1.0",
        "item_state": {"title": "Maths tutor"}})),
    )
    .await;
    assert_eq!(status, 201, "{job}");

    let perform = json!({
        "action_name": "apply",
        "source_item": {"item_network": "yellow_dot", "item_domain": "student",
                        "item_type": "profile_1.0", "item_id": student["item_id"]},
        "target_item": {"item_network": "blue_dot", "item_domain": "provider",
                        "item_type": "job_1.0", "item_id": job["item_id"], "item_instance_url": c_url},
        "requirements_snapshot": {"cover_note": "I teach calculus"}
    });
    let (status, performed) = call(
        &a,
        "asha",
        Method::POST,
        "/api/v1/action/perform",
        Some(&perform),
    )
    .await;
    assert_eq!(status, 201, "{performed}");
    let action_id = performed["action_id"].as_str().expect("id").to_string();

    let (_, received) = call(
        &c,
        "pat",
        Method::GET,
        "/api/v1/action/fetch?ownership_role=received",
        None,
    )
    .await;
    assert_eq!(received["meta"]["total"], 1, "{received}");
    assert_eq!(received["actions"][0]["source_item_network"], "yellow_dot");
    assert_eq!(received["actions"][0]["source_item_owner"], "asha");

    let (status, reply) = call(
        &c,
        "pat",
        Method::POST,
        "/api/v1/action/update-status",
        Some(&json!({"action_id": action_id, "action_status": "hired"})),
    )
    .await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (400, Some("INVALID_ACTION_EVENT")),
        "{reply}"
    );
    let (status, reply) = call(
        &c,
        "pat",
        Method::POST,
        "/api/v1/action/update-status",
        Some(&json!({"action_id": action_id, "action_status": "shortlisted"})),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["update_count"], 1);

    let (_, initiated) = call(
        &a,
        "asha",
        Method::GET,
        "/api/v1/action/fetch?ownership_role=initiated",
        None,
    )
    .await;
    assert_eq!(
        initiated["actions"][0]["action_id"],
        action_id.as_str(),
        "{initiated}"
    );
    assert_eq!(initiated["actions"][0]["target_item_network"], "blue_dot");

    // C's outbox delivers both events to A (unsigned, the networks are permissive).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, events) = call(
            &a,
            "asha",
            Method::GET,
            &format!("/api/v1/event/fetch?action_id={action_id}"),
            None,
        )
        .await;
        if events["meta"]["total"] == 2 {
            // Listed by receipt time; deliveries may arrive in any order.
            let mut statuses: Vec<&str> = events["events"]
                .as_array()
                .expect("events")
                .iter()
                .map(|e| e["action_status"].as_str().unwrap_or_default())
                .collect();
            statuses.sort_unstable();
            assert_eq!(statuses, ["created", "shortlisted"]);
            assert_eq!(events["events"][0]["ownership_roles"], json!(["initiated"]));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "events never reached A: {events}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // A network the source does not list is refused before any call.
    let mut unknown = perform.clone();
    unknown["target_item"]["item_network"] = json!("green_dot");
    let (status, reply) = call(
        &a,
        "asha",
        Method::POST,
        "/api/v1/action/perform",
        Some(&unknown),
    )
    .await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (400, Some("INVALID_ACTION_REQUEST")),
        "{reply}"
    );
    a.stop().await.expect("A stops");
    c.stop().await.expect("C stops");
}
