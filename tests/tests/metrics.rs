//! `/metrics` covers every part of an instance once it has done its work: HTTP by route and
//! status, peer calls by peer and outcome, breaker states, cache hits and misses, the outbox,
//! schema reloads, signature failures by reason and database pool usage.

use std::time::{Duration, Instant};

use dpg_tests::support::network::{NETWORK, STUDENT, TUTOR, TestNetwork};
use serde_json::{Value, json};

/// Instance 0 serves tutors (and students); the others students.
const TARGET: usize = 0;
const SOURCE: usize = 1;

async fn post_as(net: &TestNetwork, index: usize, user: &str, path: &str, body: &Value) -> Value {
    let instance = net.instance(index);
    let response = instance
        .client
        .post(instance.url(path))
        .header("x-dev-user-id", user)
        .json(body)
        .send()
        .await
        .expect("answered");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.expect("json")
}

async fn get_as(net: &TestNetwork, index: usize, user: &str, path: &str) -> Value {
    let instance = net.instance(index);
    instance
        .client
        .get(instance.url(path))
        .header("x-dev-user-id", user)
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json")
}

/// The sample lines of `family` (`name{labels} value`), histograms by their `_count`.
fn samples<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(family).is_some_and(|rest| {
                rest.starts_with('{') || rest.starts_with(' ') || rest.starts_with("_count")
            })
        })
        .collect()
}

fn assert_family(text: &str, family: &str, labels: &[&str]) {
    let lines = samples(text, family);
    assert!(!lines.is_empty(), "/metrics has no {family}");
    for label in labels {
        assert!(
            lines.iter().any(|line| line.contains(label)),
            "{family} has no sample with {label}: {lines:?}"
        );
    }
}

#[tokio::test]
async fn metrics_cover_http_peers_breakers_cache_outbox_reloads_signatures_and_pool() {
    let net = TestNetwork::builder(3).start().await.expect("network");
    let student = post_as(
        &net,
        SOURCE,
        "asha",
        "/api/v1/item/create",
        &json!({"item_network": NETWORK, "item_domain": STUDENT, "item_type": "profile_1.0",
                "item_state": {"name": "Asha", "grade": "10", "city": "Pune"}}),
    )
    .await;
    let tutor = post_as(
        &net,
        TARGET,
        "ravi",
        "/api/v1/item/create",
        &json!({"item_network": NETWORK, "item_domain": TUTOR, "item_type": "profile_1.0",
                "item_state": {"name": "Ravi", "subjects": ["maths"], "experience_years": 4}}),
    )
    .await;

    // A network read twice: peer calls on the miss, a cache hit on the repeat.
    for _ in 0..2 {
        let reply = net.network_fetch(TARGET, STUDENT, "").await.expect("read");
        assert_eq!(reply.status, 200);
    }

    // An action and a status event delivered by the outbox to the source instance.
    let performed = post_as(
        &net,
        SOURCE,
        "asha",
        "/api/v1/action/perform",
        &json!({
            "action_name": "connect",
            "source_item": {"item_network": NETWORK, "item_domain": STUDENT,
                "item_type": "profile_1.0", "item_id": student["item_id"]},
            "target_item": {"item_network": NETWORK, "item_domain": TUTOR,
                "item_type": "profile_1.0", "item_id": tutor["item_id"],
                "item_instance_url": net.url(TARGET)},
            "requirements_snapshot": {"subject": "maths", "goal": "board exam"}
        }),
    )
    .await;
    let action_id = performed["action_id"]
        .as_str()
        .expect("action id")
        .to_string();
    post_as(
        &net,
        TARGET,
        "ravi",
        "/api/v1/action/update-status",
        &json!({"action_id": action_id, "action_status": "accepted", "remarks": "yes"}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = get_as(
            &net,
            SOURCE,
            "asha",
            &format!("/api/v1/event/fetch?action_id={action_id}"),
        )
        .await;
        if events["events"].as_array().is_some_and(|e| e.len() >= 2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "events never reached the source: {events}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A forged peer request, and a schema reload.
    let forged = net
        .post_raw(
            TARGET,
            "/api/v1/network/item/count_local",
            &[
                ("content-type".into(), "application/json".into()),
                ("signature-input".into(), "sig1=();created=1".into()),
                ("signature".into(), "sig1=:AAAA:".into()),
            ],
            json!({"item_network": NETWORK, "item_domain": STUDENT})
                .to_string()
                .into_bytes(),
        )
        .await
        .expect("answered");
    assert_eq!(forged.status, 401);
    post_as(
        &net,
        TARGET,
        "admin",
        "/api/v1/network/refetch_schemas",
        &json!({}),
    )
    .await;

    let text = net.metrics_text(TARGET).await.expect("metrics");
    assert_family(
        &text,
        "dpg_http_requests_total",
        &[
            "route=\"/api/v1/item/create\"",
            "status=\"201\"",
            "status=\"401\"",
        ],
    );
    assert_family(&text, "dpg_http_request_duration_seconds", &["route="]);
    assert_family(
        &text,
        "dpg_peer_requests_total",
        &[
            "operation=\"count_local\"",
            "operation=\"event_store\"",
            "outcome=\"ok\"",
        ],
    );
    assert_family(&text, "dpg_peer_request_duration_seconds", &["peer="]);
    assert_family(&text, "dpg_peer_breaker_state", &["state=\"closed\""]);
    assert_family(&text, "dpg_cache_hits_total", &["keyspace="]);
    assert_family(&text, "dpg_cache_misses_total", &["keyspace="]);
    assert_family(
        &text,
        "dpg_outbox_entries",
        &["state=\"pending\"", "state=\"delivered\"", "state=\"dead\""],
    );
    assert_family(&text, "dpg_outbox_delivery_attempts_total", &["outcome="]);
    assert_family(&text, "dpg_schema_reloads_total", &["outcome="]);
    assert_family(&text, "dpg_peer_signature_failures_total", &["reason="]);
    assert_family(
        &text,
        "dpg_peer_requests_received_total",
        &["signature=\"signed\""],
    );
    assert_family(
        &text,
        "dpg_db_pool_connections",
        &["state=\"in_use\"", "state=\"idle\"", "state=\"max\""],
    );
    net.stop().await.expect("stopped");
}
