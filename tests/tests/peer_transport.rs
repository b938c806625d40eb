//! `HttpPeerTransport` against a fake peer behind the fault proxy: the exact request the
//! peer receives, answer parsing, and every failure mapped to its `PeerError` within bounds.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dpg_adapters::peer_http::{HttpPeerTransport, PeerHttpConfig};
use dpg_core::model::{GeoRadius, ItemFilter, StateFilter};
use dpg_core::ports::{PeerError, PeerPage, PeerTransport};
use dpg_tests::support::fault_proxy::{Fault, FaultProxy};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Json};
use poem::{EndpointExt, Request, Route, Server, handler, post};
use serde_json::{Value, json};
use uuid::Uuid;

const COUNT_PATH: &str = "/api/v1/network/item/count_local";
const FETCH_PATH: &str = "/api/v1/network/item/fetch_local";

/// One request as the fake peer saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    request_id: Option<String>,
    content_type: Option<String>,
    body: Value,
}

#[derive(Default)]
struct PeerState {
    seen: Mutex<Vec<Seen>>,
    /// Answer `meta.next_cursor` (a keyset-capable peer).
    cursor_capable: AtomicBool,
}

impl PeerState {
    fn record(&self, request: &Request, body: &Value) {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        self.seen.lock().expect("lock").push(Seen {
            path: request.uri().path().to_string(),
            request_id: header("x-request-id"),
            content_type: header("content-type"),
            body: body.clone(),
        });
    }
}

#[handler]
fn count_local(
    request: &Request,
    Json(body): Json<Value>,
    state: Data<&Arc<PeerState>>,
) -> Json<Value> {
    state.record(request, &body);
    Json(json!({"count": 7}))
}

#[handler]
fn fetch_local(
    request: &Request,
    Json(body): Json<Value>,
    state: Data<&Arc<PeerState>>,
) -> Json<Value> {
    state.record(request, &body);
    let mut meta = json!({"total": 7, "limit": body["limit"], "offset": body["offset"]});
    if state.cursor_capable.load(Ordering::SeqCst) {
        meta["next_cursor"] = Value::Null;
    }
    Json(json!({"meta": meta, "items": [item(1), item(2)]}))
}

/// A complete item record, as a peer sends it.
fn item(n: u32) -> Value {
    json!({
        "item_network": "dev", "item_domain": "jobs", "item_type": "job",
        "item_id": format!("00000000-0000-4000-8000-00000000000{n}"),
        "item_instance_url": "http://127.0.0.1:9", "item_schema_url": "http://127.0.0.1:9/s",
        "item_state": {"n": n}, "item_latitude": null, "item_longitude": null,
        "created_by": "u", "created_at": "2026-05-13T10:00:00.123Z",
        "updated_at": "2026-05-13T10:00:00.123Z"
    })
}

/// The fake peer and the proxy in front of it.
struct Setup {
    peer: Arc<PeerState>,
    proxy: FaultProxy,
}

impl Setup {
    async fn start() -> Setup {
        let peer = Arc::new(PeerState::default());
        let app = Route::new()
            .at(COUNT_PATH, post(count_local))
            .at(FETCH_PATH, post(fetch_local))
            .data(peer.clone());
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("bind fake peer");
        let addr: SocketAddr = *acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr())
            .expect("socket address");
        tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        let proxy = FaultProxy::start(addr).await.expect("proxy");
        Setup { peer, proxy }
    }

    fn seen(&self) -> Vec<Seen> {
        self.peer.seen.lock().expect("lock").clone()
    }
}

fn transport(call_timeout: Duration) -> HttpPeerTransport {
    HttpPeerTransport::new(PeerHttpConfig {
        call_timeout,
        ..PeerHttpConfig::default()
    })
    .expect("transport")
}

fn filter() -> ItemFilter {
    ItemFilter::new("dev", "jobs")
}

fn full_filter() -> ItemFilter {
    ItemFilter {
        network: "dev".into(),
        domain: "jobs".into(),
        item_type: Some("job".into()),
        item_id: Some(Uuid::nil()),
        instance_url: Some("http://a.test".into()),
        schema_url: Some("http://a.test/s.json".into()),
        state: Some(StateFilter::new(json!({"city": "Pune", "tags": ["x"]})).expect("state")),
        geo: Some(GeoRadius::new(18.5, 73.8, 5000.0).expect("geo")),
        created_by: Some("user-1".into()),
    }
}

fn page(limit: u32, offset: u32, cursor: Option<&str>) -> PeerPage {
    PeerPage {
        limit,
        offset,
        cursor: cursor.map(str::to_string),
    }
}

const SHORT: Duration = Duration::from_millis(300);
/// Generous bound for calls that must end at the deadline, on a loaded machine.
const DEADLINE_BOUND: Duration = Duration::from_secs(3);

#[tokio::test]
async fn count_local_sends_the_reference_body_and_request_id() {
    let setup = Setup::start().await;
    let transport = transport(Duration::from_secs(5));
    // A path in the instance URL is dropped: the endpoint path is absolute.
    let peer_url = format!("{}/mounted/under/a/prefix", setup.proxy.url());
    let count = transport
        .count_local(&peer_url, &full_filter(), "req-123")
        .await
        .expect("count");
    assert_eq!(count, 7);
    let seen = setup.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, COUNT_PATH);
    assert_eq!(seen[0].request_id.as_deref(), Some("req-123"));
    assert_eq!(seen[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(
        seen[0].body,
        json!({
            "item_id": "00000000-0000-0000-0000-000000000000",
            "item_network": "dev",
            "item_domain": "jobs",
            "item_type": "job",
            "item_instance_url": "http://a.test",
            "item_schema_url": "http://a.test/s.json",
            "item_state": {"city": "Pune", "tags": ["x"]},
            "item_latitude": 18.5,
            "item_longitude": 73.8,
            "radius_meters": 5000.0,
        })
    );
    assert_eq!(setup.proxy.count(COUNT_PATH), 1);
}

#[tokio::test]
async fn fetch_local_sends_paging_and_the_cursor_only_when_set() {
    let setup = Setup::start().await;
    let transport = transport(Duration::from_secs(5));
    let url = setup.proxy.url();
    transport
        .fetch_local(&url, &filter(), &page(10, 20, None), "req-a")
        .await
        .expect("offset page");
    transport
        .fetch_local(&url, &filter(), &page(5, 0, Some("opaque")), "req-b")
        .await
        .expect("cursor page");
    let seen = setup.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.path == FETCH_PATH));
    assert_eq!(seen[0].request_id.as_deref(), Some("req-a"));
    assert_eq!(
        seen[0].body,
        json!({"item_network": "dev", "item_domain": "jobs", "limit": 10, "offset": 20})
    );
    assert_eq!(seen[1].request_id.as_deref(), Some("req-b"));
    assert_eq!(
        seen[1].body,
        json!({"item_network": "dev", "item_domain": "jobs", "limit": 5, "offset": 0, "cursor": "opaque"})
    );
    assert_eq!(setup.proxy.count(FETCH_PATH), 2);
}

#[tokio::test]
async fn fetch_local_returns_items_total_and_cursor_capability() {
    let setup = Setup::start().await;
    let transport = transport(Duration::from_secs(5));
    let url = setup.proxy.url();
    let answer = transport
        .fetch_local(&url, &filter(), &page(2, 0, None), "r")
        .await
        .expect("page");
    let sent: Vec<Value> = answer
        .items
        .iter()
        .map(|i| serde_json::to_value(i).expect("json"))
        .collect();
    assert_eq!(sent, vec![item(1), item(2)]);
    assert_eq!(answer.total, Some(7));
    assert!(!answer.cursor_capable);

    setup.peer.cursor_capable.store(true, Ordering::SeqCst);
    let answer = transport
        .fetch_local(&url, &filter(), &page(2, 0, None), "r")
        .await
        .expect("page");
    assert!(
        answer.cursor_capable,
        "next_cursor: null marks a capable peer"
    );

    setup.proxy.set(Fault::Replace(
        r#"{"items":[],"meta":{"total":"3"}}"#.into(),
    ));
    let answer = transport
        .fetch_local(&url, &filter(), &page(2, 0, None), "r")
        .await
        .expect("page");
    assert_eq!(
        (answer.items.len(), answer.total, answer.cursor_capable),
        (0, None, false)
    );
}

#[tokio::test]
async fn calls_reuse_one_pooled_connection() {
    let setup = Setup::start().await;
    let transport = transport(Duration::from_secs(5));
    let url = setup.proxy.url();
    for _ in 0..3 {
        transport
            .count_local(&url, &filter(), "r")
            .await
            .expect("count");
        transport
            .fetch_local(&url, &filter(), &page(1, 0, None), "r")
            .await
            .expect("page");
    }
    assert_eq!(setup.proxy.total(), 6);
    assert_eq!(setup.proxy.connections(), 1);
}

#[tokio::test]
async fn counts_that_are_not_non_negative_integers_are_invalid() {
    let setup = Setup::start().await;
    let transport = transport(Duration::from_secs(5));
    let url = setup.proxy.url();
    for answer in [
        r#"{"count": -1}"#,
        r#"{"count": "7"}"#,
        r#"{"count": 7.5}"#,
        r#"{"count": null}"#,
        r#"{}"#,
        r#"[7]"#,
    ] {
        setup.proxy.set(Fault::Replace(answer.into()));
        let result = transport.count_local(&url, &filter(), "r").await;
        assert!(
            matches!(result, Err(PeerError::Invalid(_))),
            "{answer}: {result:?}"
        );
    }
    setup.proxy.set(Fault::Replace(r#"{"count": 0}"#.into()));
    assert_eq!(transport.count_local(&url, &filter(), "r").await, Ok(0));
}

#[tokio::test]
async fn items_that_are_not_an_array_are_invalid() {
    let setup = Setup::start().await;
    let transport = transport(Duration::from_secs(5));
    let url = setup.proxy.url();
    for answer in [
        r#"{"items": {"0": {}}}"#,
        r#"{"items": "[]"}"#,
        r#"{"meta": {"total": 1}}"#,
        r#"[]"#,
    ] {
        setup.proxy.set(Fault::Replace(answer.into()));
        let result = transport
            .fetch_local(&url, &filter(), &page(1, 0, None), "r")
            .await;
        assert!(
            matches!(result, Err(PeerError::Invalid(_))),
            "{answer}: {result:?}"
        );
    }
}

#[tokio::test]
async fn error_statuses_are_reported_without_the_body() {
    let setup = Setup::start().await;
    let transport = transport(Duration::from_secs(5));
    let url = setup.proxy.url();
    for code in [500, 403, 302] {
        setup.proxy.set(Fault::Status(code));
        assert_eq!(
            transport.count_local(&url, &filter(), "r").await,
            Err(PeerError::Status(code))
        );
        assert_eq!(
            transport
                .fetch_local(&url, &filter(), &page(1, 0, None), "r")
                .await,
            Err(PeerError::Status(code))
        );
    }
}

#[tokio::test]
async fn garbage_is_invalid() {
    let setup = Setup::start().await;
    let transport = transport(Duration::from_secs(5));
    setup.proxy.set(Fault::Garbage);
    let result = transport
        .count_local(&setup.proxy.url(), &filter(), "r")
        .await;
    assert!(matches!(result, Err(PeerError::Invalid(_))), "{result:?}");
}

#[tokio::test]
async fn oversized_answer_is_refused_quickly() {
    let setup = Setup::start().await;
    let transport = transport(Duration::from_secs(30));
    setup.proxy.set(Fault::Oversized(50 * 1024 * 1024));
    let started = Instant::now();
    let result = transport
        .fetch_local(&setup.proxy.url(), &filter(), &page(100, 0, None), "r")
        .await;
    let elapsed = started.elapsed();
    match result {
        Err(PeerError::Invalid(message)) => {
            assert!(message.contains("larger than"), "{message}")
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

#[tokio::test]
async fn black_hole_times_out_at_the_deadline() {
    let setup = Setup::start().await;
    let transport = transport(SHORT);
    setup.proxy.set(Fault::BlackHole);
    let started = Instant::now();
    let result = transport
        .count_local(&setup.proxy.url(), &filter(), "r")
        .await;
    let elapsed = started.elapsed();
    assert_eq!(result, Err(PeerError::Timeout));
    assert!(
        elapsed >= SHORT && elapsed < DEADLINE_BOUND,
        "took {elapsed:?}"
    );
    assert_eq!(
        setup.proxy.count(COUNT_PATH),
        1,
        "the request reached the proxy"
    );
}

#[tokio::test]
async fn slow_body_times_out_at_the_deadline() {
    let setup = Setup::start().await;
    let transport = transport(SHORT);
    setup.proxy.set(Fault::SlowBody);
    let started = Instant::now();
    let result = transport
        .fetch_local(&setup.proxy.url(), &filter(), &page(1, 0, None), "r")
        .await;
    let elapsed = started.elapsed();
    assert_eq!(result, Err(PeerError::Timeout));
    assert!(
        elapsed >= SHORT && elapsed < DEADLINE_BOUND,
        "took {elapsed:?}"
    );
}

#[tokio::test]
async fn reset_is_unreachable_and_the_next_call_recovers() {
    let setup = Setup::start().await;
    let transport = transport(Duration::from_secs(5));
    let url = setup.proxy.url();
    setup.proxy.set(Fault::Reset);
    let result = transport.count_local(&url, &filter(), "r").await;
    assert!(
        matches!(result, Err(PeerError::Unreachable(_))),
        "{result:?}"
    );
    setup.proxy.set(Fault::Pass);
    assert_eq!(transport.count_local(&url, &filter(), "r").await, Ok(7));
}

#[tokio::test]
async fn closed_port_is_unreachable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let transport = transport(Duration::from_secs(5));
    let started = Instant::now();
    let result = transport
        .count_local(&format!("http://{addr}"), &filter(), "r")
        .await;
    assert_eq!(
        result,
        Err(PeerError::Unreachable("connection refused".into()))
    );
    assert!(started.elapsed() < DEADLINE_BOUND);
}

#[tokio::test]
async fn latency_below_the_deadline_is_ok() {
    let setup = Setup::start().await;
    let transport = transport(Duration::from_secs(3));
    setup.proxy.set(Fault::Latency(Duration::from_millis(200)));
    let started = Instant::now();
    assert_eq!(
        transport
            .count_local(&setup.proxy.url(), &filter(), "r")
            .await,
        Ok(7)
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn latency_past_the_deadline_times_out() {
    let setup = Setup::start().await;
    let transport = transport(SHORT);
    setup.proxy.set(Fault::Latency(Duration::from_secs(10)));
    let started = Instant::now();
    assert_eq!(
        transport
            .count_local(&setup.proxy.url(), &filter(), "r")
            .await,
        Err(PeerError::Timeout)
    );
    assert!(started.elapsed() < DEADLINE_BOUND);
}

#[tokio::test]
async fn proxy_refuses_non_loopback_targets() {
    let target: SocketAddr = "192.0.2.1:80".parse().expect("addr");
    assert!(FaultProxy::start(target).await.is_err());
}
