//! No lost events under faults, across real instances: a student on A (the source of the
//! actions) connects to a tutor on B (the target, whose outbox sends every event to A).
//! A goes down, answers are lost after A stored the event, A is black-holed, one event is
//! refused for good, and many status updates race; every event still reaches A exactly once.
//!
//! Instance 0 (B) serves `tutor`; instance 1 (A) serves `student`. Time bounds are generous:
//! waits poll with deadlines, and the outbox runs with small backoffs so the file stays fast.
//! Every case runs embedded and on PostgreSQL + Redis.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use dpg_tests::support::fault_proxy::Fault;
use dpg_tests::support::network::{NETWORK, NetworkBuilder, STUDENT, TUTOR, TestNetwork};
use serde_json::{Value, json};

const B: usize = 0;
const A: usize = 1;
const EVENT_STORE: &str = "/api/v1/event/store";
const EVENT_STORE_BATCH: &str = "/api/v1/event/store_batch";

fn student() -> Value {
    json!({"item_network": NETWORK, "item_domain": STUDENT, "item_type": "profile_1.0",
           "item_state": {"name": "Asha", "grade": "10", "city": "Pune"}})
}

fn tutor() -> Value {
    json!({"item_network": NETWORK, "item_domain": TUTOR, "item_type": "profile_1.0",
           "item_state": {"name": "Ravi", "subjects": ["maths"], "experience_years": 4}})
}

/// A 3-instance signed network whose outboxes poll often and back off briefly.
fn network() -> NetworkBuilder {
    TestNetwork::builder(3)
        .env_all("OUTBOX_POLL_INTERVAL_MS", "50")
        .env_all("OUTBOX_BACKOFF_BASE_MS", "50")
        .env_all("OUTBOX_BACKOFF_CAP_SECONDS", "1")
        .env_all("OUTBOX_LEASE_SECONDS", "3")
}

/// A request to instance `index` as `user` (development identity), or as the development
/// identity itself (an administrator) when `user` is `None`.
async fn call(
    net: &TestNetwork,
    index: usize,
    user: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let instance = net.instance(index);
    let mut request = instance.client.request(method, instance.url(path));
    if let Some(user) = user {
        request = request.header("x-dev-user-id", user);
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

/// Asha's student item on A and Ravi's tutor item on B; Asha connects to Ravi. Returns the
/// action id.
async fn connect(net: &TestNetwork) -> String {
    let student = net.create(A, "asha", &student()).await.expect("student");
    let tutor = net.create(B, "ravi", &tutor()).await.expect("tutor");
    let body = json!({
        "action_name": "connect",
        "source_item": {"item_network": NETWORK, "item_domain": STUDENT,
                        "item_type": "profile_1.0", "item_id": student["item_id"]},
        "target_item": {"item_network": NETWORK, "item_domain": TUTOR,
                        "item_type": "profile_1.0", "item_id": tutor["item_id"],
                        "item_instance_url": net.url(B)},
        "requirements_snapshot": {"subject": "maths", "goal": "board exam"}
    });
    let (status, performed) = call(
        net,
        A,
        Some("asha"),
        reqwest::Method::POST,
        "/api/v1/action/perform",
        Some(&body),
    )
    .await;
    assert_eq!(status, 201, "{performed}");
    performed["action_id"]
        .as_str()
        .expect("action id")
        .to_string()
}

const STATUSES: [&str; 3] = ["accepted", "rejected", "pending"];

/// Ravi moves the action on B; returns the new `update_count`. B answers at once, whatever
/// state A is in.
async fn update(net: &TestNetwork, action_id: &str, status: &str, remarks: &str) -> u64 {
    let started = Instant::now();
    let (code, reply) = call(
        net,
        B,
        Some("ravi"),
        reqwest::Method::POST,
        "/api/v1/action/update-status",
        Some(&json!({"action_id": action_id, "action_status": status, "remarks": remarks})),
    )
    .await;
    assert_eq!(code, 200, "{reply}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "update-status took {:?}",
        started.elapsed()
    );
    reply["update_count"].as_u64().expect("update_count")
}

/// The events of the action that `user` sees on instance `index`: their `update_count`s
/// in ascending order (duplicates kept) and the total the API reports.
async fn events(net: &TestNetwork, index: usize, user: &str, action_id: &str) -> (Vec<u64>, u64) {
    let (status, body) = call(
        net,
        index,
        Some(user),
        reqwest::Method::GET,
        &format!("/api/v1/event/fetch?action_id={action_id}&limit=100"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut counts: Vec<u64> = body["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events in {body}"))
        .iter()
        .map(|e| e["update_count"].as_u64().expect("update_count"))
        .collect();
    counts.sort_unstable();
    (counts, body["meta"]["total"].as_u64().expect("total"))
}

/// Events on A, as Asha sees them.
async fn on_a(net: &TestNetwork, action_id: &str) -> (Vec<u64>, u64) {
    events(net, A, "asha", action_id).await
}

/// B's outbox as its administrator sees it: `{counts, undelivered}`.
async fn outbox(net: &TestNetwork) -> Value {
    let (status, body) = call(
        net,
        B,
        None,
        reqwest::Method::GET,
        "/api/v1/admin/outbox?limit=1000",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn counts(outbox: &Value) -> (u64, u64, u64) {
    let c = &outbox["counts"];
    let n = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("no {k} in {c}"));
    (n("pending"), n("delivered"), n("dead"))
}

fn undelivered(outbox: &Value) -> &Vec<Value> {
    outbox["undelivered"]
        .as_array()
        .unwrap_or_else(|| panic!("no undelivered list in {outbox}"))
}

/// Polls `probe` every 50 ms until it returns `Ok`, for at most `within`; panics with the
/// last `Err` otherwise.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not within {within:?}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Waits until A holds exactly the events `expected` (each once).
async fn a_holds(net: &TestNetwork, action_id: &str, expected: &[u64], within: Duration) {
    let expected = expected.to_vec();
    eventually("events reach A", within, || async {
        let (counts, total) = on_a(net, action_id).await;
        if counts == expected && total == expected.len() as u64 {
            Ok(())
        } else {
            Err(format!("{counts:?} (total {total}), expected {expected:?}"))
        }
    })
    .await;
}

/// Waits until B's outbox has delivered everything: nothing pending, nothing dead.
async fn b_delivered_all(net: &TestNetwork, delivered: u64, within: Duration) {
    eventually("B's outbox drains", within, || async {
        let outbox = outbox(net).await;
        match counts(&outbox) {
            (0, d, 0) if d == delivered => Ok(()),
            other => Err(format!("(pending, delivered, dead) = {other:?}: {outbox}")),
        }
    })
    .await;
}

/// The source instance is stopped while the target keeps emitting events, then started again
/// on the same port and data: every event arrives once, none is dead.
async fn source_down_while_the_target_emits_events(builder: NetworkBuilder) {
    let mut net = builder
        .env(B, "PEER_TIMEOUT_MS", "1000")
        .start()
        .await
        .expect("network");
    let action_id = connect(&net).await;
    a_holds(&net, &action_id, &[0], Duration::from_secs(15)).await;

    net.halt_instance(A).await.expect("A stops");
    let mut expected = vec![0];
    for (k, status) in STATUSES.iter().cycle().take(6).enumerate() {
        let count = update(
            &net,
            &action_id,
            status,
            &format!("update {k} while A is down"),
        )
        .await;
        expected.push(count);
    }
    assert_eq!(expected, (0..=6).collect::<Vec<u64>>());

    // B tried while A was down and keeps every event pending.
    eventually("B fails to reach A", Duration::from_secs(15), || async {
        let outbox = outbox(&net).await;
        let attempts: u64 = undelivered(&outbox)
            .iter()
            .map(|e| e["attempts"].as_u64().unwrap_or(0))
            .sum();
        let unreachable = undelivered(&outbox)
            .iter()
            .any(|e| e["last_error"] == "unreachable");
        if counts(&outbox) == (6, 1, 0) && attempts >= 2 && unreachable {
            Ok(())
        } else {
            Err(outbox.to_string())
        }
    })
    .await;

    let restarted = Instant::now();
    net.restart_instance(A).await.expect("A starts again");
    a_holds(&net, &action_id, &expected, Duration::from_secs(20)).await;
    eprintln!("A converged {:?} after its restart", restarted.elapsed());
    b_delivered_all(&net, 7, Duration::from_secs(10)).await;

    // The copy on A reflects the last status.
    let (_, copy) = call(
        &net,
        A,
        Some("asha"),
        reqwest::Method::GET,
        &format!("/api/v1/action/fetch?action_id={action_id}"),
        None,
    )
    .await;
    assert_eq!(copy["actions"][0]["update_count"], 6, "{copy}");
    net.stop().await.expect("stops");
}

#[tokio::test]
async fn source_down_while_the_target_emits_events_loses_nothing() {
    source_down_while_the_target_emits_events(network()).await;
}

#[tokio::test]
async fn source_down_while_the_target_emits_events_on_postgres_and_redis() {
    source_down_while_the_target_emits_events(network().postgres_redis()).await;
}

/// Events pile up while A is down and leave in batches once it is back. A source without
/// the batch route (as a TypeScript instance: 404) is tried once and then gets every event
/// alone; nothing is lost either way.
async fn a_backlog_goes_in_batches_only_where_the_source_has_the_route(
    builder: NetworkBuilder,
    source_has_the_route: bool,
) {
    let mut net = builder.proxied(A).start().await.expect("network");
    if !source_has_the_route {
        let proxy = net.proxy(A).expect("proxy");
        proxy.set(Fault::on_path(EVENT_STORE_BATCH, Fault::Status(404)));
    }
    let action_id = connect(&net).await;
    a_holds(&net, &action_id, &[0], Duration::from_secs(15)).await;

    net.halt_instance(A).await.expect("A stops");
    let mut expected = vec![0];
    for (k, status) in STATUSES.iter().cycle().take(12).enumerate() {
        expected.push(update(&net, &action_id, status, &format!("backlog {k}")).await);
    }
    let singles_before = net.proxy(A).expect("proxy").count(EVENT_STORE);
    net.restart_instance(A).await.expect("A starts again");
    a_holds(&net, &action_id, &expected, Duration::from_secs(20)).await;
    b_delivered_all(&net, 13, Duration::from_secs(10)).await;

    let proxy = net.proxy(A).expect("proxy");
    let batches = proxy.count(EVENT_STORE_BATCH);
    let singles = proxy.count(EVENT_STORE) - singles_before;
    if source_has_the_route {
        assert!(batches >= 1, "no batch for a backlog of 12");
        assert_eq!(proxy.matched(), 0);
        assert!(singles < 12, "{singles} of 12 events went alone");
    } else {
        assert_eq!(
            (batches, proxy.matched()),
            (1, 1),
            "one try, then single events"
        );
        assert!(singles >= 12, "{singles} single events");
    }
    net.stop().await.expect("stops");
}

mod a_backlog_goes_in_batches_only_where_the_source_has_the_route {
    use super::*;

    #[tokio::test]
    async fn between_instances_of_this_implementation() {
        super::a_backlog_goes_in_batches_only_where_the_source_has_the_route(network(), true).await;
    }

    #[tokio::test]
    async fn to_a_source_without_the_route() {
        super::a_backlog_goes_in_batches_only_where_the_source_has_the_route(network(), false)
            .await;
    }

    #[tokio::test]
    async fn on_postgres_and_redis() {
        super::a_backlog_goes_in_batches_only_where_the_source_has_the_route(
            network().postgres_redis(),
            true,
        )
        .await;
    }
}

/// The source stores the event, but its answer never reaches the target (connection reset,
/// a 503 in its place, or silence until the target's deadline): the target sends again and
/// the source absorbs the duplicate.
async fn a_lost_answer_is_sent_again_and_the_duplicate_absorbed(builder: NetworkBuilder) {
    let net = builder
        .proxied(A)
        .env(B, "PEER_TIMEOUT_MS", "1000")
        .start()
        .await
        .expect("network");
    let proxy = net.proxy(A).expect("proxy");
    let action_id = connect(&net).await;
    a_holds(&net, &action_id, &[0], Duration::from_secs(15)).await;

    let mut expected = vec![0];
    let mut delivered = 1;
    for (phase, lost) in [
        ("reset", Fault::after_forward(Fault::Reset)),
        ("503", Fault::after_forward(Fault::Status(503))),
        ("timeout", Fault::after_forward(Fault::BlackHole)),
    ] {
        proxy.set(lost);
        let sent_before = proxy.count(EVENT_STORE);
        let mut produced = Vec::new();
        for status in &STATUSES[..2] {
            produced.push(update(&net, &action_id, status, &format!("answer lost: {phase}")).await);
        }
        expected.extend(&produced);
        // A stored every event, yet B knows of none of them: each attempt failed as far as B
        // can tell.
        a_holds(&net, &action_id, &expected, Duration::from_secs(15)).await;
        eventually(
            "B records the failed attempts",
            Duration::from_secs(10),
            || async {
                let seen = outbox(&net).await;
                let failed = undelivered(&seen)
                    .iter()
                    .all(|e| e["attempts"].as_u64() >= Some(1) && e["last_error"].is_string());
                if counts(&seen) == (2, delivered, 0) && failed {
                    Ok(())
                } else {
                    Err(format!("{phase}: {seen}"))
                }
            },
        )
        .await;

        proxy.set(Fault::Pass);
        delivered += 2;
        b_delivered_all(&net, delivered, Duration::from_secs(15)).await;
        let sent = proxy.count(EVENT_STORE) - sent_before;
        assert!(sent >= 4, "{phase}: each event sent again, {sent} requests");
        a_holds(&net, &action_id, &expected, Duration::from_secs(1)).await;
    }
    assert_eq!(expected, [0, 1, 2, 3, 4, 5, 6]);
    net.stop().await.expect("stops");
}

mod a_lost_answer_is_sent_again_and_the_duplicate_absorbed {
    use super::*;

    #[tokio::test]
    async fn embedded() {
        super::a_lost_answer_is_sent_again_and_the_duplicate_absorbed(network()).await;
    }

    #[tokio::test]
    async fn on_postgres_and_redis() {
        super::a_lost_answer_is_sent_again_and_the_duplicate_absorbed(network().postgres_redis())
            .await;
    }
}

/// The target stops while a delivery is out (A stored the event, B is still waiting for the
/// answer) and is started again: the claim's lease runs out, B sends the event again and A
/// absorbs the duplicate.
async fn a_target_stopped_between_send_and_mark_sends_again_after_its_lease(
    builder: NetworkBuilder,
) {
    let mut net = builder
        .proxied(A)
        .env(B, "PEER_TIMEOUT_MS", "4000")
        .env(B, "OUTBOX_LEASE_SECONDS", "5")
        .env(B, "OUTBOX_DRAIN_TIMEOUT_SECONDS", "1")
        .start()
        .await
        .expect("network");
    let action_id = connect(&net).await;
    a_holds(&net, &action_id, &[0], Duration::from_secs(15)).await;

    let proxy = net.proxy(A).expect("proxy");
    proxy.set(Fault::after_forward(Fault::BlackHole));
    let sent_before = proxy.count(EVENT_STORE);
    let count = update(&net, &action_id, "accepted", "sent, never marked").await;
    a_holds(&net, &action_id, &[0, count], Duration::from_secs(15)).await;
    let seen = outbox(&net).await;
    assert_eq!(counts(&seen), (1, 1, 0), "still in flight: {seen}");
    assert_eq!(undelivered(&seen)[0]["attempts"], 0, "{seen}");

    // B stops with the delivery in flight: the drain gives up on it after its bound.
    let halted = Instant::now();
    net.halt_instance(B).await.expect("B stops");
    assert!(
        halted.elapsed() < Duration::from_secs(10),
        "stopping took {:?}",
        halted.elapsed()
    );
    let proxy = net.proxy(A).expect("proxy");
    proxy.set(Fault::Pass);
    net.restart_instance(B).await.expect("B starts again");

    b_delivered_all(&net, 2, Duration::from_secs(15)).await;
    eprintln!("delivered {:?} after B was stopped", halted.elapsed());
    let proxy = net.proxy(A).expect("proxy");
    assert!(
        proxy.count(EVENT_STORE) - sent_before >= 2,
        "the event was sent again"
    );
    a_holds(&net, &action_id, &[0, 1], Duration::from_secs(1)).await;
    net.stop().await.expect("stops");
}

mod a_target_stopped_between_send_and_mark_sends_again_after_its_lease {
    use super::*;

    #[tokio::test]
    async fn embedded() {
        super::a_target_stopped_between_send_and_mark_sends_again_after_its_lease(network()).await;
    }

    #[tokio::test]
    async fn on_postgres_and_redis() {
        super::a_target_stopped_between_send_and_mark_sends_again_after_its_lease(
            network().postgres_redis(),
        )
        .await;
    }
}

/// Timeout of B's calls to A in the black-hole test.
const BLACK_HOLE_TIMEOUT: Duration = Duration::from_millis(200);

/// A black-holed source: every attempt ends at B's peer deadline, only one probe is out at
/// a time, the waits between probes grow, and once A answers again everything arrives.
async fn a_black_holed_source_gets_bounded_probes_with_growing_waits(builder: NetworkBuilder) {
    let timeout = BLACK_HOLE_TIMEOUT;
    let net = builder
        .proxied(A)
        .env(B, "PEER_TIMEOUT_MS", timeout.as_millis().to_string())
        .env(B, "OUTBOX_LEASE_SECONDS", "1")
        .env(B, "OUTBOX_BACKOFF_CAP_SECONDS", "2")
        .start()
        .await
        .expect("network");
    let proxy = net.proxy(A).expect("proxy");
    proxy.set(Fault::BlackHole);
    let action_id = connect(&net).await;

    // The first delivery times out within the deadline.
    let first = eventually(
        "the first attempt times out",
        Duration::from_secs(10),
        || async {
            let outbox = outbox(&net).await;
            match undelivered(&outbox).first() {
                Some(entry) if entry["attempts"].as_u64() >= Some(1) => Ok(entry.clone()),
                _ => Err(outbox.to_string()),
            }
        },
    )
    .await;
    assert_eq!(first["last_error"], "timed out", "{first}");

    // More events while A is silent: B's API does not wait for A.
    for (k, status) in STATUSES.iter().enumerate() {
        update(&net, &action_id, status, &format!("black hole {k}")).await;
    }
    let early = outbox(&net).await;

    // Watch 13 attempts: 12 waits after failures 1..=12.
    const ATTEMPTS: usize = 13;
    let arrivals = eventually("B keeps probing A", Duration::from_secs(45), || async {
        let arrivals = proxy.arrivals(EVENT_STORE);
        if arrivals.len() >= ATTEMPTS {
            Ok(arrivals)
        } else {
            Err(format!("{} attempts", arrivals.len()))
        }
    })
    .await;
    let late = outbox(&net).await;
    let gaps: Vec<Duration> = arrivals
        .windows(2)
        .map(|w| w[1] - w[0])
        .take(ATTEMPTS - 1)
        .collect();
    eprintln!(
        "gaps between attempts: {gaps:?}; at most {} in flight",
        proxy.peak_in_flight()
    );

    // One probe at a time: each attempt starts after the previous one timed out (two in
    // flight together would arrive within a few milliseconds of each other).
    for (i, gap) in gaps.iter().enumerate() {
        assert!(
            *gap >= timeout / 2,
            "attempt {} overlapped: {gaps:?}",
            i + 2
        );
    }
    // And the proxy never held two of B's requests at once.
    assert_eq!(proxy.peak_in_flight(), 1, "{gaps:?}");
    // Bounded: after failure n the wait is at most min(cap, base * 2^(n-1)), plus the
    // timeout and a generous allowance for scheduling.
    let cap = Duration::from_secs(2);
    for (i, gap) in gaps.iter().enumerate() {
        let ceiling = (Duration::from_millis(50) * (1u32 << i.min(10))).min(cap);
        assert!(
            *gap <= timeout + ceiling + Duration::from_millis(1500),
            "wait {} exceeded its ceiling {ceiling:?}: {gaps:?}",
            i + 1
        );
    }
    // Growing: without growth every wait would stay within the first ceiling (50 ms). With
    // full jitter one wait beyond 400 ms among waits 5..=12 (ceilings 800 ms, 1.6 s, then
    // 2 s) fails to happen with probability below 1e-5.
    assert!(
        gaps.iter()
            .any(|g| *g > timeout + Duration::from_millis(400)),
        "the waits did not grow: {gaps:?}"
    );
    // The admin view agrees: more attempts, later next attempts, and every failure a timeout.
    let total = |outbox: &Value| -> u64 {
        undelivered(outbox)
            .iter()
            .map(|e| e["attempts"].as_u64().unwrap_or(0))
            .sum()
    };
    let latest = |outbox: &Value| -> String {
        undelivered(outbox)
            .iter()
            .filter_map(|e| e["next_attempt_at"].as_str())
            .max()
            .unwrap_or_default()
            .to_string()
    };
    assert!(total(&late) > total(&early), "{early}\n{late}");
    assert!(latest(&late) > latest(&early), "{early}\n{late}");
    assert_eq!(counts(&late), (4, 0, 0), "{late}");
    for entry in undelivered(&late) {
        if entry["attempts"].as_u64() > Some(0) {
            assert_eq!(entry["last_error"], "timed out", "{entry}");
        }
    }

    // A answers again: the next probe finds it and the backlog follows.
    proxy.set(Fault::Pass);
    a_holds(&net, &action_id, &[0, 1, 2, 3], Duration::from_secs(15)).await;
    b_delivered_all(&net, 4, Duration::from_secs(10)).await;
    net.stop().await.expect("stops");
}

mod a_black_holed_source_gets_bounded_probes_with_growing_waits {
    use super::*;

    #[tokio::test]
    async fn embedded() {
        super::a_black_holed_source_gets_bounded_probes_with_growing_waits(network()).await;
    }

    #[tokio::test]
    async fn on_postgres_and_redis() {
        super::a_black_holed_source_gets_bounded_probes_with_growing_waits(
            network().postgres_redis(),
        )
        .await;
    }
}

/// A poison event, refused by A with a non-retryable 422: dead-lettered after one attempt,
/// the events after it flow, and a redrive delivers it once A takes it.
async fn a_poison_event_is_dead_lettered_once_and_redriven(builder: NetworkBuilder) {
    let net = builder.proxied(A).start().await.expect("network");
    let proxy = net.proxy(A).expect("proxy");
    proxy.set(Fault::when_body_contains("poison-pill", Fault::Status(422)));
    let action_id = connect(&net).await;

    let mut produced = vec![0];
    for (status, remarks) in [
        ("accepted", "before"),
        ("rejected", "poison-pill"),
        ("pending", "after"),
        ("accepted", "later"),
    ] {
        produced.push(update(&net, &action_id, status, remarks).await);
    }
    assert_eq!(produced, [0, 1, 2, 3, 4]);

    a_holds(&net, &action_id, &[0, 1, 3, 4], Duration::from_secs(15)).await;
    let dead = eventually(
        "the poison event is dead",
        Duration::from_secs(10),
        || async {
            let outbox = outbox(&net).await;
            if counts(&outbox) == (0, 4, 1) {
                Ok(outbox)
            } else {
                Err(outbox.to_string())
            }
        },
    )
    .await;
    let entry = &undelivered(&dead)[0];
    assert_eq!(entry["state"], "dead", "{entry}");
    assert_eq!(entry["update_count"], 2, "{entry}");
    let reason = entry["last_error"].as_str().unwrap_or_default();
    assert!(reason.contains("422"), "{entry}");
    // Not retried: a retry would come within a few polls and backoffs (50 ms each here).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(proxy.matched(), 1, "the poison event was sent once");
    assert_eq!(counts(&outbox(&net).await), (0, 4, 1));

    proxy.set(Fault::Pass);
    let (status, redriven) = call(
        &net,
        B,
        None,
        reqwest::Method::POST,
        "/api/v1/admin/outbox/redrive",
        None,
    )
    .await;
    assert_eq!(status, 200, "{redriven}");
    assert_eq!(redriven["redriven"], 1, "{redriven}");
    a_holds(&net, &action_id, &[0, 1, 2, 3, 4], Duration::from_secs(10)).await;
    b_delivered_all(&net, 5, Duration::from_secs(10)).await;
    net.stop().await.expect("stops");
}

mod a_poison_event_is_dead_lettered_once_and_redriven {
    use super::*;

    #[tokio::test]
    async fn embedded() {
        super::a_poison_event_is_dead_lettered_once_and_redriven(network()).await;
    }

    #[tokio::test]
    async fn on_postgres_and_redis() {
        super::a_poison_event_is_dead_lettered_once_and_redriven(network().postgres_redis()).await;
    }
}

/// 20 status updates at once over HTTP: each gets its own count, B keeps 21 events and A
/// receives each once.
async fn concurrent_status_updates(builder: NetworkBuilder) {
    let net = builder.start().await.expect("network");
    let action_id = connect(&net).await;
    let updates = (0..20).map(|k| {
        let net = &net;
        let action_id = &action_id;
        async move { update(net, action_id, STATUSES[k % 3], &format!("racer {k}")).await }
    });
    let counts_given: BTreeSet<u64> = futures::future::join_all(updates)
        .await
        .into_iter()
        .collect();
    assert_eq!(counts_given, (1..=20).collect::<BTreeSet<u64>>());

    let all: Vec<u64> = (0..=20).collect();
    let (on_b, total) = events(&net, B, "ravi", &action_id).await;
    assert_eq!((on_b, total), (all.clone(), 21));
    a_holds(&net, &action_id, &all, Duration::from_secs(20)).await;
    b_delivered_all(&net, 21, Duration::from_secs(10)).await;
    net.stop().await.expect("stops");
}

#[tokio::test]
async fn concurrent_status_updates_each_count_once() {
    concurrent_status_updates(network()).await;
}

#[tokio::test]
async fn concurrent_status_updates_each_count_once_on_postgres_and_redis() {
    concurrent_status_updates(network().postgres_redis()).await;
}
