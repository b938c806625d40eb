//! Federation: several real instances of one network on loopback, each with its own data,
//! read through `GET /api/v1/network/item/fetch`. Network pages must equal the pages of a
//! single instance holding every item; slow, dead and hostile peers must degrade a read
//! (partial, stale, 503) within bounds, never fail or hang it.
//!
//! Bounds are generous correctness limits, not throughput goals.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use dpg_tests::support::fault_proxy::Fault;
use dpg_tests::support::network::{
    COUNT_LOCAL, FETCH_LOCAL, NETWORK, NETWORK_FETCH, Reply, STUDENT, TUTOR, TestNetwork, ids,
};
use serde_json::{Value, json};

const GRADES: [&str; 5] = ["8", "9", "10", "11", "12"];
const CITIES: [&str; 3] = ["Pune", "Goa", "Delhi"];

fn student(k: usize) -> Value {
    json!({"item_network": NETWORK, "item_domain": STUDENT, "item_type": "profile_1.0",
           "item_state": {"name": format!("Student {k}"), "grade": GRADES[k % GRADES.len()],
                          "city": CITIES[k % CITIES.len()]}})
}

fn tutor(k: usize) -> Value {
    json!({"item_network": NETWORK, "item_domain": TUTOR, "item_type": "profile_1.0",
           "item_state": {"name": format!("Tutor {k}"), "subjects": ["maths"],
                          "experience_years": k}})
}

fn items(reply: &Reply) -> Vec<Value> {
    reply.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {}", reply.body))
        .clone()
}

/// The status `meta.peers` (or a 503's `peers`) reports for `url`.
fn peer_status(peers: &Value, url: &str) -> String {
    peers
        .as_array()
        .unwrap_or_else(|| panic!("no peers list: {peers}"))
        .iter()
        .find(|p| p["instance_url"] == url)
        .unwrap_or_else(|| panic!("{url} is not in {peers}"))["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn grade_of(item: &Value) -> &str {
    item["item_state"]["grade"].as_str().unwrap_or_default()
}

/// Asserts a complete page: 200, not partial nor stale, every one of `peers` answered ok.
fn assert_complete(reply: &Reply, peers: usize, context: &str) {
    assert_eq!(reply.status, 200, "{context}: {}", reply.body);
    let meta = &reply.body["meta"];
    assert_eq!(meta["partial"], false, "{context}: {meta}");
    assert_eq!(meta["stale"], false, "{context}: {meta}");
    let reports = meta["peers"].as_array().expect("meta.peers");
    assert_eq!(reports.len(), peers, "{context}: {meta}");
    assert!(
        reports.iter().all(|p| p["status"] == "ok"),
        "{context}: {meta}"
    );
}

/// Consecutive items of the expected order come from different instances: creation
/// interleaved, so the merge is really exercised.
fn assert_interleaved(expected: &[Value]) {
    for pair in expected.windows(2) {
        assert_ne!(
            pair[0]["item_instance_url"], pair[1]["item_instance_url"],
            "seeding did not interleave instances"
        );
    }
}

/// Walks the network pages of `limit` from instance `index` by cursor; returns every item.
async fn cursor_walk(net: &TestNetwork, index: usize, limit: usize, total: usize) -> Vec<Value> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..=total / limit + 1 {
        let query = match &cursor {
            Some(cursor) => format!("&limit={limit}&cursor={cursor}"),
            None => format!("&limit={limit}"),
        };
        let reply = net
            .network_fetch(index, STUDENT, &query)
            .await
            .expect("answered");
        assert_complete(&reply, 3, &format!("cursor page from {index}"));
        assert_eq!(reply.body["meta"]["total"], total);
        let page = items(&reply);
        assert!(page.len() <= limit);
        seen.extend(page);
        match reply.body["meta"]["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return seen,
        }
    }
    panic!("the cursor walk of {limit} from instance {index} did not end");
}

#[tokio::test]
async fn offset_pages_from_every_instance_equal_the_single_instance_order() {
    let net = TestNetwork::builder(3)
        .alias(1)
        .start()
        .await
        .expect("network boots");
    net.seed_round_robin(STUDENT, 60, student)
        .await
        .expect("seeded");
    let expected = net.all_items(STUDENT).await.expect("every item");
    assert_eq!(expected.len(), 60);
    assert_interleaved(&expected);
    let urls: BTreeSet<&str> = (0..3).map(|i| net.url(i)).collect();
    // The document lists instance 1 twice for student, once as localhost.
    let alias = net.alias.as_deref().expect("alias");
    assert_eq!(alias, net.url(1).replace("127.0.0.1", "localhost"));
    let listed: Vec<&str> = net.document["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter(|i| i["domain_name"] == STUDENT)
        .map(|i| i["instance_url"].as_str().expect("url"))
        .collect();
    assert_eq!(listed.len(), 4);
    assert!(listed.contains(&alias));

    for index in 0..3 {
        for (limit, offset) in [
            (20, 0),
            (7, 0),
            (7, 13),
            (25, 40),
            (100, 0),
            (10, 55),
            (10, 60),
            (10, 100),
        ] {
            let context = format!("instance {index}, limit {limit}, offset {offset}");
            let reply = net
                .network_fetch(index, STUDENT, &format!("&limit={limit}&offset={offset}"))
                .await
                .expect("answered");
            assert_complete(&reply, 3, &context);
            let meta = &reply.body["meta"];
            assert_eq!(meta["total"], 60, "{context}");
            assert_eq!(meta["limit"], limit, "{context}");
            assert_eq!(meta["offset"], offset, "{context}");
            // The alias of instance 1 is one instance: three reports, one per URL.
            let reported: BTreeSet<&str> = meta["peers"]
                .as_array()
                .expect("peers")
                .iter()
                .map(|p| p["instance_url"].as_str().expect("instance_url"))
                .collect();
            assert_eq!(reported, urls, "{context}");
            let counts: Vec<u64> = meta["peers"]
                .as_array()
                .expect("peers")
                .iter()
                .map(|p| p["count"].as_u64().expect("count"))
                .collect();
            assert_eq!(counts, [20, 20, 20], "{context}");
            let start = offset.min(60);
            let end = (offset + limit).min(60);
            let page = items(&reply);
            assert_eq!(ids(&page), ids(&expected[start..end]), "{context}");
            assert_eq!(page, expected[start..end], "{context}: items differ");
        }
    }
}

#[tokio::test]
async fn cursor_walks_from_every_instance_yield_every_item_once_in_order() {
    let net = TestNetwork::builder(3)
        .start()
        .await
        .expect("network boots");
    net.seed_round_robin(STUDENT, 60, student)
        .await
        .expect("seeded");
    let expected = net.all_items(STUDENT).await.expect("every item");
    assert_eq!(expected.len(), 60);
    for index in 0..3 {
        for limit in [7, 20, 100] {
            let walked = cursor_walk(&net, index, limit, 60).await;
            assert_eq!(
                ids(&walked),
                ids(&expected),
                "cursor walk of {limit} from instance {index}"
            );
        }
    }
}

#[tokio::test]
async fn private_fields_never_leave_an_instance_nor_filter_a_read() {
    let net = TestNetwork::builder(3)
        .private_field(STUDENT, "city")
        .start()
        .await
        .expect("network boots");
    let placed = net
        .seed_round_robin(STUDENT, 15, student)
        .await
        .expect("seeded");

    // Stored, and shown to the owner on their own instance.
    let own = net
        .instance(placed[0])
        .client
        .get(net.instance(placed[0]).url(&format!(
            "/api/v1/item/fetch?item_network={NETWORK}&item_domain={STUDENT}"
        )))
        .header("x-dev-user-id", "user-0")
        .send()
        .await
        .expect("own fetch")
        .json::<Value>()
        .await
        .expect("json");
    assert!(
        own["items"][0]["item_state"]["city"].is_string(),
        "the owner sees the private field: {own}"
    );

    let expected = net.all_items(STUDENT).await.expect("every item");
    assert_eq!(expected.len(), 15);
    for item in &expected {
        let state = &item["item_state"];
        assert!(state.get("city").is_none(), "fetch_local leaked: {item}");
        assert!(state["name"].is_string() && state["grade"].is_string());
    }
    for index in 0..3 {
        let reply = net
            .network_fetch(index, STUDENT, "&limit=100")
            .await
            .expect("answered");
        assert_complete(&reply, 3, "network fetch");
        let page = items(&reply);
        assert_eq!(ids(&page), ids(&expected));
        for item in &page {
            assert!(
                item["item_state"].get("city").is_none(),
                "network fetch leaked: {item}"
            );
        }

        // A public field filters as usual.
        let reply = net
            .network_fetch(index, STUDENT, "&limit=100&item_state[grade]=10")
            .await
            .expect("answered");
        assert_complete(&reply, 3, "public filter");
        let tenth: Vec<Value> = expected
            .iter()
            .filter(|i| grade_of(i) == "10")
            .cloned()
            .collect();
        assert!(!tenth.is_empty());
        assert_eq!(ids(&items(&reply)), ids(&tenth));

        for query in [
            "&item_state[city]=Pune",
            "&item_type=profile_1.0&item_state[city]=Pune",
            "&item_state[grade]=10&item_state[city]=Goa",
        ] {
            let reply = net
                .network_fetch(index, STUDENT, query)
                .await
                .expect("answered");
            assert_eq!(reply.status, 400, "{query}: {}", reply.body);
            assert_eq!(reply.body["error"], "PRIVATE_FIELD_FILTER", "{query}");
        }
        let filter = json!({"item_network": NETWORK, "item_domain": STUDENT,
                            "item_state": {"city": "Pune"}});
        let reply = net
            .peer_post((index + 1) % 3, index, COUNT_LOCAL, &filter)
            .await
            .expect("answered");
        assert_eq!(reply.status, 400, "count_local: {}", reply.body);
        assert_eq!(reply.body["error"], "PRIVATE_FIELD_FILTER");
        let mut paged = filter.clone();
        paged["limit"] = json!(10);
        paged["offset"] = json!(0);
        let reply = net
            .peer_post((index + 1) % 3, index, FETCH_LOCAL, &paged)
            .await
            .expect("answered");
        assert_eq!(reply.status, 400, "fetch_local: {}", reply.body);
        assert_eq!(reply.body["error"], "PRIVATE_FIELD_FILTER");
    }
}

#[tokio::test]
async fn peer_routes_refuse_bindings_the_instance_does_not_serve() {
    let net = TestNetwork::builder(3)
        .start()
        .await
        .expect("network boots");
    let tutors = json!({"item_network": NETWORK, "item_domain": TUTOR});
    let paged = json!({"item_network": NETWORK, "item_domain": TUTOR, "limit": 10, "offset": 0});
    for index in [1, 2] {
        for (path, body) in [(COUNT_LOCAL, &tutors), (FETCH_LOCAL, &paged)] {
            let reply = net.peer_post(0, index, path, body).await.expect("answered");
            assert_eq!(reply.status, 403, "{path} on {index}: {}", reply.body);
            assert_eq!(reply.body["error"], "UNSERVED_DOMAIN_BINDING");
        }
    }
    // Instance 0 serves tutor.
    let reply = net
        .peer_post(1, 0, COUNT_LOCAL, &tutors)
        .await
        .expect("answered");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, json!({"count": 0}));
    let reply = net
        .peer_post(1, 0, FETCH_LOCAL, &paged)
        .await
        .expect("answered");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["items"], json!([]));
}

#[tokio::test]
async fn postgres_and_redis_instances_agree_on_the_order() {
    let net = TestNetwork::builder(3)
        .postgres_redis()
        .start()
        .await
        .expect("network boots on PostgreSQL + Redis");
    net.seed_round_robin(STUDENT, 24, student)
        .await
        .expect("seeded");
    let expected = net.all_items(STUDENT).await.expect("every item");
    assert_eq!(expected.len(), 24);
    assert_interleaved(&expected);
    for index in 0..3 {
        for (limit, offset) in [(10, 0), (10, 5), (10, 20), (5, 30)] {
            let context = format!("instance {index}, limit {limit}, offset {offset}");
            let reply = net
                .network_fetch(index, STUDENT, &format!("&limit={limit}&offset={offset}"))
                .await
                .expect("answered");
            assert_complete(&reply, 3, &context);
            assert_eq!(reply.body["meta"]["total"], 24, "{context}");
            let (start, end) = (offset.min(24), (offset + limit).min(24));
            assert_eq!(ids(&items(&reply)), ids(&expected[start..end]), "{context}");
        }
        let walked = cursor_walk(&net, index, 9, 24).await;
        assert_eq!(ids(&walked), ids(&expected), "cursor walk from {index}");
    }
    net.stop().await.expect("stops");
}

#[tokio::test]
async fn a_black_holed_peer_gives_a_partial_page_within_the_deadline() {
    let net = TestNetwork::builder(3)
        .proxied(2)
        .env(0, "PEER_TIMEOUT_MS", "500")
        .env(0, "NETWORK_FETCH_DEADLINE_MS", "2000")
        .start()
        .await
        .expect("network boots");
    net.seed_round_robin(STUDENT, 30, student)
        .await
        .expect("seeded");
    let expected = net.all_items(STUDENT).await.expect("every item");
    let reachable: Vec<Value> = expected
        .iter()
        .filter(|i| i["item_instance_url"] != net.url(2))
        .cloned()
        .collect();
    assert_eq!(reachable.len(), 20);

    // While every peer answers, the count of instance 2 is cached.
    let reply = net
        .network_fetch(0, STUDENT, "&limit=50")
        .await
        .expect("answered");
    assert_complete(&reply, 3, "before the black hole");
    assert_eq!(ids(&items(&reply)), ids(&expected));

    let proxy = net.proxy(2).expect("proxy");
    proxy.set(Fault::BlackHole);
    // The fetch phase hangs (count cached), then the count phase hangs (new filter).
    for (query, total) in [("&limit=40", 30), ("&limit=40&item_type=profile_1.0", 20)] {
        let reply = net
            .network_fetch(0, STUDENT, query)
            .await
            .expect("answered");
        assert_eq!(reply.status, 200, "{query}: {}", reply.body);
        assert!(
            reply.elapsed < Duration::from_secs(5),
            "{query} took {:?}",
            reply.elapsed
        );
        let meta = &reply.body["meta"];
        assert_eq!(meta["partial"], true, "{query}: {meta}");
        assert_eq!(meta["stale"], false, "{query}: {meta}");
        assert_eq!(meta["total"], total, "{query}: {meta}");
        assert_eq!(peer_status(&meta["peers"], net.url(2)), "timeout", "{meta}");
        assert_eq!(peer_status(&meta["peers"], net.url(0)), "ok", "{meta}");
        assert_eq!(peer_status(&meta["peers"], net.url(1)), "ok", "{meta}");
        assert_eq!(ids(&items(&reply)), ids(&reachable), "{query}");
    }
}

#[tokio::test]
async fn with_every_peer_down_a_seen_page_is_served_stale_and_an_unseen_one_is_503() {
    // Instance 1 reads tutors, which only instance 0 serves.
    let net = TestNetwork::builder(3)
        .proxied(0)
        .minimum_cache_ttl_seconds(1)
        .env(1, "PEER_TIMEOUT_MS", "500")
        .env(1, "NETWORK_FETCH_DEADLINE_MS", "2000")
        .start()
        .await
        .expect("network boots");
    net.seed_round_robin(TUTOR, 5, tutor).await.expect("seeded");
    let expected = net.all_items(TUTOR).await.expect("every tutor");
    assert_eq!(expected.len(), 5);

    let reply = net
        .network_fetch(1, TUTOR, "&limit=5")
        .await
        .expect("answered");
    assert_complete(&reply, 1, "while up");
    assert_eq!(items(&reply), expected);

    let proxy = net.proxy(0).expect("proxy");
    proxy.set(Fault::Reset);
    // Past the page's (and the count's) one-second lifetime.
    tokio::time::sleep(Duration::from_millis(1300)).await;

    let reply = net
        .network_fetch(1, TUTOR, "&limit=5")
        .await
        .expect("answered");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.elapsed < Duration::from_secs(5),
        "{:?}",
        reply.elapsed
    );
    let meta = &reply.body["meta"];
    assert_eq!(meta["stale"], true, "{meta}");
    assert_eq!(peer_status(&meta["peers"], net.url(0)), "error", "{meta}");
    assert_eq!(items(&reply), expected);

    let reply = net
        .network_fetch(1, TUTOR, "&limit=4")
        .await
        .expect("answered");
    assert_unavailable(&reply, net.url(0), "error");

    proxy.set(Fault::BlackHole);
    let reply = net
        .network_fetch(1, TUTOR, "&limit=3")
        .await
        .expect("answered");
    assert_unavailable(&reply, net.url(0), "timeout");
    let reply = net
        .network_fetch(1, TUTOR, "&limit=5")
        .await
        .expect("answered");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.elapsed < Duration::from_secs(5),
        "{:?}",
        reply.elapsed
    );
    assert_eq!(reply.body["meta"]["stale"], true, "{}", reply.body);
    assert_eq!(items(&reply), expected);
}

fn assert_unavailable(reply: &Reply, url: &str, status: &str) {
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(
        reply.elapsed < Duration::from_secs(5),
        "{:?}",
        reply.elapsed
    );
    assert_eq!(reply.body["error"], "NO_PEER_AVAILABLE", "{}", reply.body);
    assert_eq!(
        peer_status(&reply.body["peers"], url),
        status,
        "{}",
        reply.body
    );
    let retry_after: u64 = reply
        .headers
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!(retry_after >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_misses_call_every_peer_once() {
    // Clients reach instance 0 through a proxy too, which counts their requests as they
    // arrive; the peers answer slowly, so every request arrives before the page exists.
    // The default client budget (120 misses a minute) stays: joining a fan-out is free.
    let net = std::sync::Arc::new(
        TestNetwork::builder(3)
            .proxied(0)
            .proxied(1)
            .proxied(2)
            .env(0, "PEER_TIMEOUT_MS", "10000")
            .env(0, "NETWORK_FETCH_DEADLINE_MS", "20000")
            .start()
            .await
            .expect("network boots"),
    );
    net.seed_round_robin(STUDENT, 9, student)
        .await
        .expect("seeded");
    let expected = net.all_items(STUDENT).await.expect("every item");
    let front = net.proxy(0).expect("proxy");
    let peers = [net.proxy(1).expect("proxy"), net.proxy(2).expect("proxy")];
    for proxy in peers {
        proxy.set(Fault::Latency(Duration::from_millis(4000)));
        assert_eq!(proxy.total(), 0);
    }

    let started = Instant::now();
    let requests: Vec<_> = (0..500)
        .map(|_| {
            let net = net.clone();
            tokio::spawn(async move {
                net.get_public(
                    0,
                    &format!(
                        "{NETWORK_FETCH}?item_network={NETWORK}&item_domain={STUDENT}&limit=9"
                    ),
                )
                .await
            })
        })
        .collect();
    while front.count(NETWORK_FETCH) < 500 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "only {} requests arrived",
            front.count(NETWORK_FETCH)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Every request arrived before any peer was asked for items: all of them missed.
    for proxy in peers {
        assert_eq!(
            proxy.count(FETCH_LOCAL),
            0,
            "the page was being built before every request arrived"
        );
    }
    for request in requests {
        let reply = request.await.expect("task").expect("answered");
        assert_complete(&reply, 3, "concurrent miss");
        assert_eq!(ids(&items(&reply)), ids(&expected));
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    for (index, proxy) in [(1, peers[0]), (2, peers[1])] {
        assert_eq!(proxy.count(COUNT_LOCAL), 1, "count_local calls to {index}");
        assert_eq!(proxy.count(FETCH_LOCAL), 1, "fetch_local calls to {index}");
    }
}

#[tokio::test]
async fn a_recovered_peer_is_back_in_complete_pages() {
    let net = TestNetwork::builder(3)
        .proxied(2)
        .minimum_cache_ttl_seconds(1)
        .env(0, "PEER_BREAKER_FAILURES", "1")
        .env(0, "PEER_BREAKER_OPEN_SECONDS", "1")
        .env(0, "PEER_TIMEOUT_MS", "500")
        .env(0, "NETWORK_FETCH_DEADLINE_MS", "2000")
        .start()
        .await
        .expect("network boots");
    net.seed_round_robin(STUDENT, 12, student)
        .await
        .expect("seeded");
    let expected = net.all_items(STUDENT).await.expect("every item");
    let proxy = net.proxy(2).expect("proxy");

    proxy.set(Fault::Reset);
    let reply = net
        .network_fetch(0, STUDENT, "&limit=12")
        .await
        .expect("answered");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["meta"]["partial"], true);
    assert_eq!(
        peer_status(&reply.body["meta"]["peers"], net.url(2)),
        "error"
    );
    // One failure opened the breaker: the next read does not call the peer.
    let calls = proxy.total();
    let reply = net
        .network_fetch(0, STUDENT, "&limit=11")
        .await
        .expect("answered");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["meta"]["partial"], true);
    assert_eq!(
        peer_status(&reply.body["meta"]["peers"], net.url(2)),
        "circuit_open"
    );
    assert_eq!(proxy.total(), calls, "an open breaker called the peer");

    proxy.set(Fault::Pass);
    let recovered = Instant::now();
    let mut attempt = 0usize;
    loop {
        // A different page each time (pages live one second; twelve limits take longer).
        let limit = 1 + attempt % 12;
        let reply = net
            .network_fetch(0, STUDENT, &format!("&limit={limit}"))
            .await
            .expect("answered");
        assert_eq!(reply.status, 200, "{}", reply.body);
        if reply.body["meta"]["partial"] == false {
            assert_complete(&reply, 3, "after recovery");
            assert_eq!(ids(&items(&reply)), ids(&expected[..limit]));
            break;
        }
        assert!(
            recovered.elapsed() < Duration::from_secs(15),
            "the peer is still missing: {}",
            reply.body["meta"]
        );
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn hostile_answers_mark_the_peer_invalid_and_the_read_still_succeeds() {
    let net = TestNetwork::builder(3)
        .proxied(2)
        .env(0, "PEER_BREAKER_FAILURES", "1000")
        .start()
        .await
        .expect("network boots");
    net.seed_round_robin(STUDENT, 30, student)
        .await
        .expect("seeded");
    let expected = net.all_items(STUDENT).await.expect("every item");
    let foreign = net.local_items(1, STUDENT).await.expect("items of 1");
    let own = net.local_items(2, STUDENT).await.expect("items of 2");
    let mut other_domain = own[0].clone();
    other_domain["item_domain"] = json!(TUTOR);
    let mut missing_key = own[0].clone();
    missing_key
        .as_object_mut()
        .expect("item")
        .remove("created_by");

    let replace = |body: Value| Fault::Replace(body.to_string());
    let scenarios = [
        ("negative count", replace(json!({"count": -1, "items": []}))),
        (
            "count beyond 64 bits",
            Fault::Replace(r#"{"count": 18446744073709551616, "items": []}"#.into()),
        ),
        ("count as text", replace(json!({"count": "5", "items": []}))),
        (
            "items of another instance",
            replace(
                json!({"count": 3, "meta": {"total": 3, "limit": 3, "offset": 0},
                           "items": foreign[..3]}),
            ),
        ),
        (
            "items of another domain",
            replace(json!({"count": 1, "items": [other_domain]})),
        ),
        (
            "malformed items",
            replace(json!({"count": 2, "items": [{"item_id": "nope"}, 7]})),
        ),
        (
            "an item without created_by",
            replace(json!({"count": 1, "items": [missing_key]})),
        ),
        (
            "more items than asked",
            replace(json!({"count": 1, "items": own[..2]})),
        ),
        ("garbage", Fault::Garbage),
        ("a 50 MiB body", Fault::Oversized(50 * 1024 * 1024)),
    ];
    let proxy = net.proxy(2).expect("proxy");
    // Ten distinct filters, so that no cached count or page hides a scenario.
    let filters = GRADES
        .iter()
        .flat_map(|grade| [(*grade, ""), (*grade, "&item_type=profile_1.0")]);
    for ((name, fault), (grade, extra)) in scenarios.into_iter().zip(filters) {
        proxy.set(fault);
        let reply = net
            .network_fetch(
                0,
                STUDENT,
                &format!("&limit=100&item_state[grade]={grade}{extra}"),
            )
            .await
            .expect("answered");
        assert_eq!(reply.status, 200, "{name}: {}", reply.body);
        assert!(
            reply.elapsed < Duration::from_secs(10),
            "{name} took {:?}",
            reply.elapsed
        );
        let meta = &reply.body["meta"];
        assert_eq!(meta["partial"], true, "{name}: {meta}");
        assert_eq!(
            peer_status(&meta["peers"], net.url(2)),
            "invalid",
            "{name}: {meta}"
        );
        assert_eq!(peer_status(&meta["peers"], net.url(1)), "ok", "{name}");
        let good: Vec<Value> = expected
            .iter()
            .filter(|i| i["item_instance_url"] != net.url(2) && grade_of(i) == grade)
            .cloned()
            .collect();
        assert_eq!(ids(&items(&reply)), ids(&good), "{name}");
    }

    proxy.set(Fault::Status(500));
    let reply = net
        .network_fetch(0, STUDENT, "&limit=100")
        .await
        .expect("answered");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        peer_status(&reply.body["meta"]["peers"], net.url(2)),
        "error"
    );
}

/// `{"count": 18446744073709551615}` is a valid JSON count, so only the sum of the counts
/// can notice it.
#[tokio::test]
async fn a_peer_claiming_the_largest_count_is_invalid_and_the_read_still_succeeds() {
    let net = TestNetwork::builder(3)
        .proxied(2)
        .start()
        .await
        .expect("network boots");
    net.seed_round_robin(STUDENT, 6, student)
        .await
        .expect("seeded");
    let expected = net.all_items(STUDENT).await.expect("every item");
    let proxy = net.proxy(2).expect("proxy");
    proxy.set(Fault::Replace(
        json!({"count": u64::MAX, "items": []}).to_string(),
    ));
    let reply = net
        .network_fetch(0, STUDENT, "&limit=100")
        .await
        .expect("answered");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let meta = &reply.body["meta"];
    assert_eq!(peer_status(&meta["peers"], net.url(2)), "invalid", "{meta}");
    assert_eq!(meta["partial"], true, "{meta}");
    let good: Vec<Value> = expected
        .iter()
        .filter(|i| i["item_instance_url"] != net.url(2))
        .cloned()
        .collect();
    assert_eq!(ids(&items(&reply)), ids(&good));
}
