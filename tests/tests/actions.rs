//! Actions across real instances: a student on one instance connects to a tutor on another
//! (signed peers, `peer_auth: required`), the tutor moves the action, both sides see what
//! they own; every rejection of the contract, peer authorization and BOLA.
//!
//! Instance 0 serves `tutor` (and `student`); instances 1 and 2 serve `student`.

use dpg_tests::support::network::{NETWORK, STUDENT, TUTOR, TestNetwork};
use serde_json::{Value, json};

const B: usize = 0;
const A: usize = 1;
const OTHER: usize = 2;

fn student() -> Value {
    json!({"item_network": NETWORK, "item_domain": STUDENT, "item_type": "profile_1.0",
           "item_state": {"name": "Asha", "grade": "10", "city": "Pune"}})
}

fn tutor() -> Value {
    json!({"item_network": NETWORK, "item_domain": TUTOR, "item_type": "profile_1.0",
           "item_state": {"name": "Ravi", "subjects": ["maths"], "experience_years": 4}})
}

/// A user's request to instance `index` (development identity from `x-dev-user-id`).
async fn call(
    net: &TestNetwork,
    index: usize,
    user: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let instance = net.instance(index);
    let mut request = instance
        .client
        .request(method, instance.url(path))
        .header("x-dev-user-id", user);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
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

async fn post(
    net: &TestNetwork,
    index: usize,
    user: &str,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    call(
        net,
        index,
        user,
        reqwest::Method::POST,
        path,
        Some(body),
        &[],
    )
    .await
}

async fn get(net: &TestNetwork, index: usize, user: &str, path: &str) -> (u16, Value) {
    call(net, index, user, reqwest::Method::GET, path, None, &[]).await
}

/// One change to a valid perform body, for table-driven rejections.
type Change = Box<dyn Fn(&mut Value)>;

struct Pair {
    student_id: String,
    tutor_id: String,
}

/// Asha's student item on A, Ravi's tutor item on B.
async fn pair(net: &TestNetwork) -> Pair {
    let student = net.create(A, "asha", &student()).await.expect("student");
    let tutor = net.create(B, "ravi", &tutor()).await.expect("tutor");
    Pair {
        student_id: student["item_id"].as_str().expect("id").to_string(),
        tutor_id: tutor["item_id"].as_str().expect("id").to_string(),
    }
}

fn perform_body(net: &TestNetwork, pair: &Pair) -> Value {
    json!({
        "action_name": "connect",
        "source_item": {"item_network": NETWORK, "item_domain": STUDENT,
                        "item_type": "profile_1.0", "item_id": pair.student_id},
        "target_item": {"item_network": NETWORK, "item_domain": TUTOR,
                        "item_type": "profile_1.0", "item_id": pair.tutor_id,
                        "item_instance_url": net.url(B)},
        "requirements_snapshot": {"subject": "maths", "goal": "board exam"}
    })
}

async fn perform(net: &TestNetwork, pair: &Pair, key: &str) -> (u16, Value) {
    call(
        net,
        A,
        "asha",
        reqwest::Method::POST,
        "/api/v1/action/perform",
        Some(&perform_body(net, pair)),
        &[("idempotency-key", key)],
    )
    .await
}

async fn update(net: &TestNetwork, user: &str, action_id: &str, status: &str) -> (u16, Value) {
    post(
        net,
        B,
        user,
        "/api/v1/action/update-status",
        &json!({"action_id": action_id, "action_status": status, "remarks": format!("now {status}")}),
    )
    .await
}

fn rows<'a>(body: &'a Value, key: &str) -> &'a Vec<Value> {
    body[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {body}"))
}

async fn connect_and_update_twice(net: TestNetwork) {
    let pair = pair(&net).await;
    let (status, performed) = perform(&net, &pair, "retry-me-1").await;
    assert_eq!(status, 201, "{performed}");
    let keys: Vec<&str> = performed
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "action_id",
            "action_name",
            "action_status",
            "update_count",
            "source_item_id",
            "target_item_id"
        ]
    );
    assert_eq!(performed["action_status"], "created");
    assert_eq!(performed["update_count"], 0);
    let action_id = performed["action_id"].as_str().expect("id").to_string();

    // A retried perform with the same key is the same action.
    let (status, again) = perform(&net, &pair, "retry-me-1").await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["action_id"], action_id.as_str());
    let (_, on_b) = get(
        &net,
        B,
        "ravi",
        "/api/v1/action/fetch?ownership_role=received",
    )
    .await;
    assert_eq!(on_b["meta"]["total"], 1, "one action for one key: {on_b}");
    let received = &rows(&on_b, "actions")[0];
    assert_eq!(received["source_item_owner"], "asha");
    assert_eq!(received["target_item_owner"], "ravi");
    assert_eq!(received["ownership_roles"], json!(["received"]));

    // The initiator sees the action on their own instance at once.
    let (status, on_a) = get(
        &net,
        A,
        "asha",
        "/api/v1/action/fetch?ownership_role=initiated",
    )
    .await;
    assert_eq!(status, 200, "{on_a}");
    let initiated = &rows(&on_a, "actions")[0];
    assert_eq!(initiated["action_id"], action_id.as_str());
    assert_eq!(initiated["ownership_roles"], json!(["initiated"]));
    assert_eq!(initiated["source_item_instance_url"], net.url(A));

    let (status, first) = update(&net, "ravi", &action_id, "accepted").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        first,
        json!({"action_id": action_id, "action_name": "connect",
                             "action_status": "accepted", "update_count": 1})
    );
    let (status, second) = update(&net, "ravi", &action_id, "rejected").await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["update_count"], 2);

    let (status, events) = get(
        &net,
        B,
        "ravi",
        &format!("/api/v1/event/fetch?action_id={action_id}"),
    )
    .await;
    assert_eq!(status, 200, "{events}");
    let counts: Vec<u64> = rows(&events, "events")
        .iter()
        .map(|e| e["update_count"].as_u64().expect("count"))
        .collect();
    assert_eq!(counts, [2, 1, 0], "{events}");
    let accepted = &rows(&events, "events")[1];
    assert_eq!(
        accepted["event_payload"],
        json!({"status": "accepted", "remark": "now accepted"})
    );
    assert_eq!(accepted["origin_instance_domain"], net.url(B));

    // The target's outbox delivers every event to the source instance.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, mirrored) = get(
            &net,
            A,
            "asha",
            &format!("/api/v1/event/fetch?action_id={action_id}"),
        )
        .await;
        if mirrored["meta"]["total"] == 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "events never reached A: {mirrored}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Sent again by B itself (signed): duplicates, stored once, in any order.
    for event in rows(&events, "events")
        .iter()
        .rev()
        .chain(rows(&events, "events").iter().take(1))
    {
        let mirror = mirror_body(event);
        let reply = net
            .peer_post(B, A, "/api/v1/event/store", &mirror)
            .await
            .expect("answered");
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let (_, mirrored) = get(
        &net,
        A,
        "asha",
        &format!("/api/v1/event/fetch?action_id={action_id}"),
    )
    .await;
    assert_eq!(mirrored["meta"]["total"], 3, "each event once: {mirrored}");
    assert_eq!(
        rows(&mirrored, "events")[0]["ownership_roles"],
        json!(["initiated"])
    );
    let (_, copy) = get(
        &net,
        A,
        "asha",
        &format!("/api/v1/action/fetch?action_id={action_id}"),
    )
    .await;
    assert_eq!(rows(&copy, "actions")[0]["action_status"], "rejected");
    assert_eq!(rows(&copy, "actions")[0]["update_count"], 2);
}

/// The `event/store` body of a fetched event (reference-contract §1.10).
fn mirror_body(event: &Value) -> Value {
    let item = |side: &str| {
        json!({
            "item_network": event[format!("{side}_item_network")],
            "item_domain": event[format!("{side}_item_domain")],
            "item_type": event[format!("{side}_item_type")],
            "item_id": event[format!("{side}_item_id")],
            "item_instance_url": event[format!("{side}_item_instance_url")],
        })
    };
    let mut body = json!({
        "origin_instance_domain": event["origin_instance_domain"],
        "action_name": event["action_name"],
        "action_id": event["action_id"],
        "action_status": event["action_status"],
        "update_count": event["update_count"],
        "source_item": item("source"),
        "target_item": item("target"),
        "source_item_owner": event["source_item_owner"],
        "target_item_owner": event["target_item_owner"],
        "event_payload": event["event_payload"],
    });
    if let Some(remarks) = event["remarks"].as_str() {
        body["remarks"] = json!(remarks);
    }
    body
}

#[tokio::test]
async fn a_student_connects_to_a_tutor_on_another_instance() {
    let net = TestNetwork::builder(3).start().await.expect("network");
    connect_and_update_twice(net).await;
}

#[tokio::test]
async fn a_student_connects_to_a_tutor_on_postgres_and_redis() {
    let net = TestNetwork::builder(3)
        .postgres_redis()
        .start()
        .await
        .expect("network");
    connect_and_update_twice(net).await;
}

/// Actions and events `user` sees on instance `index` in every role, as
/// `(role, actions total, events total)`.
async fn visible_counts(
    net: &TestNetwork,
    index: usize,
    user: &str,
) -> Vec<(&'static str, u64, u64)> {
    let mut counts = Vec::new();
    for role in ["all", "initiated", "received"] {
        let total = |body: &Value| {
            body["meta"]["total"]
                .as_u64()
                .unwrap_or_else(|| panic!("{body}"))
        };
        let (status, actions) = get(
            net,
            index,
            user,
            &format!("/api/v1/action/fetch?ownership_role={role}"),
        )
        .await;
        assert_eq!(status, 200, "{actions}");
        let (status, events) = get(
            net,
            index,
            user,
            &format!("/api/v1/event/fetch?ownership_role={role}"),
        )
        .await;
        assert_eq!(status, 200, "{events}");
        counts.push((role, total(&actions), total(&events)));
    }
    counts
}

/// User ids are local to an instance (reference-contract §8.5): an owner id that came from
/// another instance names nobody here, even when a local user has the same id.
async fn foreign_owner_ids_name_nobody_here(net: TestNetwork) {
    // u1 of A owns the student; u1 of B is someone else and owns nothing yet.
    let student = net.create(A, "u1", &student()).await.expect("student");
    let ravis = net.create(B, "ravi", &tutor()).await.expect("tutor");
    let pair = Pair {
        student_id: student["item_id"].as_str().expect("id").to_string(),
        tutor_id: ravis["item_id"].as_str().expect("id").to_string(),
    };
    let (status, performed) = post(
        &net,
        A,
        "u1",
        "/api/v1/action/perform",
        &perform_body(&net, &pair),
    )
    .await;
    assert_eq!(status, 201, "{performed}");
    let action_id = performed["action_id"].as_str().expect("id").to_string();

    // On B the action names A's u1 as source owner: B's u1 must not see it.
    assert_eq!(
        visible_counts(&net, B, "u1").await,
        [("all", 0, 0), ("initiated", 0, 0), ("received", 0, 0)]
    );
    assert_eq!(
        visible_counts(&net, B, "ravi").await,
        [("all", 1, 1), ("initiated", 0, 0), ("received", 1, 1)]
    );
    let (_, on_b) = get(&net, B, "ravi", "/api/v1/action/fetch").await;
    assert_eq!(
        rows(&on_b, "actions")[0]["source_item_owner"],
        "u1",
        "the wire keeps the foreign id"
    );

    // On A, u1 initiated it; once the created event arrives, A's ravi (named like B's
    // tutor owner, which the mirrored event carries) must still see nothing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while visible_counts(&net, A, "u1").await
        != [("all", 1, 1), ("initiated", 1, 1), ("received", 0, 0)]
    {
        assert!(
            std::time::Instant::now() < deadline,
            "A's u1: {:?}",
            visible_counts(&net, A, "u1").await
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, on_a) = get(
        &net,
        A,
        "u1",
        &format!("/api/v1/event/fetch?action_id={action_id}"),
    )
    .await;
    assert_eq!(rows(&on_a, "events")[0]["target_item_owner"], "ravi");
    assert_eq!(
        rows(&on_a, "events")[0]["ownership_roles"],
        json!(["initiated"])
    );
    assert_eq!(
        visible_counts(&net, A, "ravi").await,
        [("all", 0, 0), ("initiated", 0, 0), ("received", 0, 0)]
    );

    // Now B's u1 owns a tutor that A's u1 connects to: B's u1 received it and initiated
    // nothing, although both owner columns say "u1".
    let own = net
        .create(B, "u1", &tutor())
        .await
        .expect("tutor of B's u1");
    let second = Pair {
        student_id: pair.student_id.clone(),
        tutor_id: own["item_id"].as_str().expect("id").to_string(),
    };
    let (status, performed) = post(
        &net,
        A,
        "u1",
        "/api/v1/action/perform",
        &perform_body(&net, &second),
    )
    .await;
    assert_eq!(status, 201, "{performed}");
    assert_eq!(
        visible_counts(&net, B, "u1").await,
        [("all", 1, 1), ("initiated", 0, 0), ("received", 1, 1)]
    );
    let (_, on_b) = get(&net, B, "u1", "/api/v1/action/fetch").await;
    let received = &rows(&on_b, "actions")[0];
    assert_eq!(received["action_id"], performed["action_id"]);
    assert_eq!(received["source_item_owner"], "u1");
    assert_eq!(received["ownership_roles"], json!(["received"]));
    let (_, events) = get(&net, B, "u1", "/api/v1/event/fetch").await;
    assert_eq!(
        rows(&events, "events")[0]["ownership_roles"],
        json!(["received"])
    );
}

#[tokio::test]
async fn foreign_owner_ids_name_nobody_here_on_sqlite() {
    let net = TestNetwork::builder(3).start().await.expect("network");
    foreign_owner_ids_name_nobody_here(net).await;
}

#[tokio::test]
async fn foreign_owner_ids_name_nobody_here_on_postgres_and_redis() {
    let net = TestNetwork::builder(3)
        .postgres_redis()
        .start()
        .await
        .expect("network");
    foreign_owner_ids_name_nobody_here(net).await;
}

#[tokio::test]
async fn a_student_and_a_tutor_of_one_instance_connect_without_a_peer_call() {
    let net = TestNetwork::builder(3).start().await.expect("network");
    let student = net.create(B, "asha", &student()).await.expect("student");
    let tutor = net.create(B, "ravi", &tutor()).await.expect("tutor");
    let pair = Pair {
        student_id: student["item_id"].as_str().expect("id").to_string(),
        tutor_id: tutor["item_id"].as_str().expect("id").to_string(),
    };
    let (status, performed) = post(
        &net,
        B,
        "asha",
        "/api/v1/action/perform",
        &perform_body(&net, &pair),
    )
    .await;
    assert_eq!(status, 201, "{performed}");
    let (_, actions) = get(&net, B, "asha", "/api/v1/action/fetch").await;
    assert_eq!(
        rows(&actions, "actions")[0]["ownership_roles"],
        json!(["initiated"])
    );
    let (_, events) = get(&net, B, "ravi", "/api/v1/event/fetch").await;
    assert_eq!(events["meta"]["total"], 1, "{events}");
    assert_eq!(rows(&events, "events")[0]["source_item_owner"], "asha");
}

#[tokio::test]
async fn every_rejection_of_perform_has_its_code() {
    let net = TestNetwork::builder(3).start().await.expect("network");
    let pair = pair(&net).await;
    let base = perform_body(&net, &pair);
    let cases: Vec<(&str, Change, u16, &str)> = vec![
        (
            "not the owner",
            Box::new(|_| {}),
            404,
            "SOURCE_ITEM_NOT_FOUND",
        ),
        (
            "unknown action",
            Box::new(|b| b["action_name"] = json!("hire")),
            400,
            "INVALID_ACTION_REQUEST",
        ),
        (
            "requirements",
            Box::new(|b| b["requirements_snapshot"] = json!({"subject": "maths"})),
            400,
            "INVALID_ACTION_REQUEST",
        ),
        (
            "unlisted target",
            Box::new(|b| b["target_item"]["item_instance_url"] = json!("http://127.0.0.1:9")),
            400,
            "INVALID_TARGET_INSTANCE",
        ),
        (
            "unknown domain",
            Box::new(|b| b["target_item"]["item_domain"] = json!("counsellor")),
            400,
            "INVALID_TARGET_ITEM",
        ),
        (
            "missing target item",
            Box::new(|b| {
                b["target_item"]["item_id"] = json!("00000000-0000-4000-8000-000000000000")
            }),
            404,
            "TARGET_ITEM_NOT_FOUND",
        ),
        (
            "unserved source",
            Box::new(|b| b["source_item"]["item_domain"] = json!("coaching_center")),
            403,
            "UNSERVED_DOMAIN_BINDING",
        ),
    ];
    for (name, change, status, code) in cases {
        let mut body = base.clone();
        change(&mut body);
        let user = if name == "not the owner" {
            "bob"
        } else {
            "asha"
        };
        let (got, reply) = post(&net, A, user, "/api/v1/action/perform", &body).await;
        assert_eq!(
            (got, reply["error"].as_str()),
            (status, Some(code)),
            "{name}: {reply}"
        );
    }
    let mut bad_uuid = base.clone();
    bad_uuid["source_item"]["item_id"] = json!("11111111-2222-3333-4444-555555555555");
    let (got, reply) = post(&net, A, "asha", "/api/v1/action/perform", &bad_uuid).await;
    assert_eq!(got, 400, "{reply}");
    assert_eq!(reply["message"], "body/source_item/item_id Invalid UUID");
}

#[tokio::test]
async fn only_the_tutor_moves_the_action_and_only_owners_see_it() {
    let net = TestNetwork::builder(3).start().await.expect("network");
    let pair = pair(&net).await;
    let (_, performed) = perform(&net, &pair, "k-bola").await;
    let action_id = performed["action_id"].as_str().expect("id").to_string();

    let (status, reply) = update(&net, "mallory", &action_id, "accepted").await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (404, Some("ACTION_NOT_FOUND")),
        "{reply}"
    );
    let (status, reply) = update(&net, "ravi", &action_id, "maybe").await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (400, Some("INVALID_ACTION_EVENT")),
        "{reply}"
    );
    assert_eq!(reply["violations"][0]["path"], "/status");
    let (status, reply) = update(
        &net,
        "ravi",
        "00000000-0000-4000-8000-000000000000",
        "accepted",
    )
    .await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (404, Some("ACTION_NOT_FOUND"))
    );

    // User ids are local to an instance (reference-contract §8.5): on A, only A's users count.
    for (index, user) in [(B, "mallory"), (A, "mallory")] {
        let (status, actions) = get(&net, index, user, "/api/v1/action/fetch").await;
        assert_eq!(status, 200);
        assert_eq!(actions["meta"]["total"], 0, "{user} on {index}: {actions}");
        let (_, events) = get(&net, index, user, "/api/v1/event/fetch").await;
        assert_eq!(events["meta"]["total"], 0, "{user} on {index}: {events}");
    }
    let (status, reply) = get(&net, B, "ravi", "/api/v1/action/fetch?limit=101").await;
    assert_eq!(status, 400, "{reply}");
}

#[tokio::test]
async fn peers_act_only_for_themselves() {
    let net = TestNetwork::builder(3).start().await.expect("network");
    let pair = pair(&net).await;
    let network_body = json!({
        "action_name": "connect",
        "source_item": {"item_network": NETWORK, "item_domain": STUDENT, "item_type": "profile_1.0",
                        "item_id": pair.student_id, "item_instance_url": net.url(A)},
        "target_item": {"item_network": NETWORK, "item_domain": TUTOR, "item_type": "profile_1.0",
                        "item_id": pair.tutor_id, "item_instance_url": net.url(B)},
        "source_item_owner": "asha",
        "requirements_snapshot": {"subject": "maths", "goal": "olympiad"}
    });
    // Another member claiming to be A.
    let reply = net
        .peer_post(OTHER, B, "/api/v1/network/action/perform", &network_body)
        .await
        .expect("answered");
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (403, Some("SIGNER_NOT_INSTANCE")),
        "{}",
        reply.body
    );
    // Nobody at all.
    let reply = net
        .post_raw(
            B,
            "/api/v1/network/action/perform",
            &[("content-type".into(), "application/json".into())],
            network_body.to_string().into_bytes(),
        )
        .await
        .expect("answered");
    assert_eq!(reply.status, 401, "{}", reply.body);
    // A itself.
    let reply = net
        .peer_post(A, B, "/api/v1/network/action/perform", &network_body)
        .await
        .expect("answered");
    assert_eq!(reply.status, 201, "{}", reply.body);

    let (_, events) = get(&net, B, "ravi", "/api/v1/event/fetch").await;
    let mirror = mirror_body(&rows(&events, "events")[0]);
    let reply = net
        .peer_post(OTHER, A, "/api/v1/event/store", &mirror)
        .await
        .expect("answered");
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (403, Some("SIGNER_NOT_INSTANCE")),
        "{}",
        reply.body
    );
    let reply = net
        .post_raw(
            A,
            "/api/v1/event/store",
            &[("content-type".into(), "application/json".into())],
            mirror.to_string().into_bytes(),
        )
        .await
        .expect("answered");
    assert_eq!(reply.status, 401, "{}", reply.body);
    let reply = net
        .peer_post(B, A, "/api/v1/event/store", &mirror)
        .await
        .expect("answered");
    assert_eq!(reply.status, 201, "{}", reply.body);
    // B's outbox may have delivered it already: then this one is a duplicate too.
    assert!(reply.body["event_id"].is_string() || reply.body["event_id"].is_null());
    let reply = net
        .peer_post(B, A, "/api/v1/event/store", &mirror)
        .await
        .expect("answered");
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["event_id"], Value::Null, "a duplicate");
}

#[tokio::test]
async fn a_failing_or_silent_target_is_a_bounded_502_without_its_body() {
    use dpg_tests::support::fault_proxy::Fault;
    use std::time::{Duration, Instant};

    let net = TestNetwork::builder(3)
        .proxied(B)
        .env_all("PEER_TIMEOUT_MS", "500")
        .start()
        .await
        .expect("network");
    let pair = pair(&net).await;
    let proxy = net.proxy(B).expect("proxy");
    for (name, fault) in [
        ("500", Fault::Status(500)),
        ("not JSON", Fault::Garbage),
        ("reset", Fault::Reset),
        ("black hole", Fault::BlackHole),
    ] {
        proxy.set(fault);
        let started = Instant::now();
        let (status, reply) =
            perform(&net, &pair, &format!("fault-{}", name.replace(' ', "-"))).await;
        assert_eq!(status, 502, "{name}: {reply}");
        assert_eq!(
            reply["error"], "TARGET_INSTANCE_UNAVAILABLE",
            "{name}: {reply}"
        );
        assert_eq!(
            reply.as_object().map(|o| o.len()),
            Some(2),
            "{name}: {reply}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name} took {:?}",
            started.elapsed()
        );
    }
    proxy.set(Fault::Pass);
    let (status, reply) = perform(&net, &pair, "fault-none").await;
    assert_eq!(status, 201, "{reply}");
}

const STORE_BATCH: &str = "/api/v1/event/store_batch";

/// Events with this count stored on A for the action, as Asha sees them.
async fn stored_with_count(net: &TestNetwork, action_id: &str, count: u32) -> u64 {
    let (status, page) = get(
        net,
        A,
        "asha",
        &format!("/api/v1/event/fetch?action_id={action_id}&update_count={count}"),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["meta"]["total"].as_u64().expect("total")
}

#[tokio::test]
async fn a_backlog_of_events_is_answered_event_by_event() {
    let net = TestNetwork::builder(3).start().await.expect("network");
    backlog_answered_event_by_event(net).await;
}

#[tokio::test]
async fn a_backlog_of_events_is_answered_event_by_event_on_postgres_and_redis() {
    let net = TestNetwork::builder(3)
        .postgres_redis()
        .start()
        .await
        .expect("network");
    backlog_answered_event_by_event(net).await;
}

async fn backlog_answered_event_by_event(net: TestNetwork) {
    let pair = pair(&net).await;
    let (status, performed) = perform(&net, &pair, "batch-1").await;
    assert_eq!(status, 201, "{performed}");
    let action_id = performed["action_id"].as_str().expect("id").to_string();
    let (_, events) = get(
        &net,
        B,
        "ravi",
        &format!("/api/v1/event/fetch?action_id={action_id}"),
    )
    .await;
    // A count B never sent, so that A has not seen it from B's outbox.
    let event = |count: u32| {
        let mut body = mirror_body(&rows(&events, "events")[0]);
        body["update_count"] = json!(count);
        body["action_status"] = json!("accepted");
        body["event_payload"] = json!({"status": "accepted", "remark": "caught up"});
        body
    };
    let fresh = event(7);
    let mut elsewhere = event(8);
    elsewhere["source_item"]["item_id"] = json!("0190a000-0000-7000-8000-0000000000ff");
    let mut malformed = event(9);
    malformed["action_id"] = json!("not-a-uuid");
    let reply = net
        .peer_post(
            B,
            A,
            STORE_BATCH,
            &json!({"events": [fresh, fresh, elsewhere, malformed]}),
        )
        .await
        .expect("answered");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let results = rows(&reply.body, "results");
    assert_eq!(results.len(), 4, "{}", reply.body);
    assert_eq!(results[0]["status"], 201, "{}", reply.body);
    assert!(results[0]["event_id"].is_string(), "{}", reply.body);
    assert_eq!(
        results[1..],
        [
            json!({"status": 201, "event_id": null, "code": null, "message": null}),
            json!({"status": 404, "event_id": null, "code": "SOURCE_ITEM_NOT_FOUND",
                   "message": "Source item does not exist on this instance"}),
            json!({"status": 400, "event_id": null, "code": "FST_ERR_VALIDATION",
                   "message": "body/action_id Invalid UUID"}),
        ]
    );
    assert_eq!(stored_with_count(&net, &action_id, 7).await, 1);
    // The single route says the same of each refused event.
    for (body, result) in [(&elsewhere, &results[2]), (&malformed, &results[3])] {
        let single = net
            .peer_post(B, A, "/api/v1/event/store", body)
            .await
            .expect("answered");
        assert_eq!(single.status, result["status"], "{}", single.body);
        let code = single.body.get("code").unwrap_or(&single.body["error"]);
        assert_eq!(
            (code, &single.body["message"]),
            (&result["code"], &result["message"])
        );
    }

    // Elements that are no event body at all are refused one by one, too.
    let mut unnamed = event(10);
    unnamed
        .as_object_mut()
        .expect("object")
        .remove("origin_instance_domain");
    let reply = net
        .peer_post(B, A, STORE_BATCH, &json!({"events": [unnamed, 5]}))
        .await
        .expect("answered");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let results = rows(&reply.body, "results");
    assert_eq!(
        results
            .iter()
            .map(|r| (r["status"].clone(), r["message"].clone()))
            .collect::<Vec<_>>(),
        [
            (json!(400), json!("body/origin_instance_domain Required")),
            (
                json!(400),
                json!("body/ invalid type: integer `5`, expected struct StoreEventIn")
            ),
        ]
    );

    // Another member cannot speak for B: each event says so, nothing is stored.
    let reply = net
        .peer_post(OTHER, A, STORE_BATCH, &json!({"events": [event(11)]}))
        .await
        .expect("answered");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        rows(&reply.body, "results")[0]["code"],
        "SIGNER_NOT_INSTANCE",
        "{}",
        reply.body
    );
    assert_eq!(stored_with_count(&net, &action_id, 11).await, 0);
}

#[tokio::test]
async fn a_batch_is_refused_whole_when_malformed_or_unsigned() {
    let net = TestNetwork::builder(3).start().await.expect("network");
    let pair = pair(&net).await;
    let (status, performed) = perform(&net, &pair, "batch-2").await;
    assert_eq!(status, 201, "{performed}");
    let action_id = performed["action_id"].as_str().expect("id").to_string();
    let (_, events) = get(
        &net,
        B,
        "ravi",
        &format!("/api/v1/event/fetch?action_id={action_id}"),
    )
    .await;
    let mut event = mirror_body(&rows(&events, "events")[0]);
    event["update_count"] = json!(5);
    event["action_status"] = json!("accepted");
    event["event_payload"] = json!({"status": "accepted", "remark": "caught up"});

    let too_many: Vec<Value> = (0..101).map(|_| event.clone()).collect();
    for body in [
        json!({"events": too_many}),
        json!({"events": []}),
        json!({"events": event}),
        json!({}),
        json!([event]),
    ] {
        let reply = net
            .peer_post(B, A, STORE_BATCH, &body)
            .await
            .expect("answered");
        assert_eq!(
            (reply.status, reply.body["error"].as_str()),
            (400, Some("INVALID_EVENT_REQUEST")),
            "{}",
            reply.body
        );
        assert!(reply.body["message"].is_string(), "{}", reply.body);
    }
    assert_eq!(stored_with_count(&net, &action_id, 5).await, 0);

    // `peer_auth: required`: an unsigned batch is refused as a whole, nothing stored.
    let reply = net
        .post_raw(
            A,
            STORE_BATCH,
            &[("content-type".into(), "application/json".into())],
            json!({"events": [event, event]}).to_string().into_bytes(),
        )
        .await
        .expect("answered");
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (401, Some("SIGNATURE_REQUIRED")),
        "{}",
        reply.body
    );
    assert_eq!(stored_with_count(&net, &action_id, 5).await, 0);

    // Signed by B: stored (the 101 above were refused before any was looked at).
    let reply = net
        .peer_post(B, A, STORE_BATCH, &json!({"events": [event]}))
        .await
        .expect("answered");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(rows(&reply.body, "results")[0]["status"], 201);
    assert_eq!(stored_with_count(&net, &action_id, 5).await, 1);
}
