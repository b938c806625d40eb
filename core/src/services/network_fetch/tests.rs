//! The fan-out against in-memory instances: the global order across peers, paging by offset
//! and by cursor (for peers that know cursors and for those that do not), faults, privacy,
//! single-flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

use super::*;
use crate::model::{
    Item, ItemPage, PageRequest, PeerItem, ServedBindings, StateFilter, global_order,
};
use crate::network::{CatalogOrigin, NetworkDocument, SchemaCompiler};
use crate::ports::PeerPageAnswer;
use crate::services::own_counts::own_count_key;

const SELF_URL: &str = "http://127.0.0.1:2742";
/// How long a `Behaviour::Slow` peer takes to answer.
const SLOW: Duration = Duration::from_millis(100);

fn item(instance: &str, millis: i64, id: u128, name: &str) -> Item {
    let at = Utc.timestamp_millis_opt(millis).single().expect("time");
    Item {
        network: "yellow_dot".into(),
        domain: "student".into(),
        item_type: "profile_1.0".into(),
        item_id: Uuid::from_u128(id),
        instance_url: instance.into(),
        schema_url: format!("{instance}/s"),
        state: json!({"name": name, "phone": "secret"}),
        latitude: None,
        longitude: None,
        created_by: "u".into(),
        created_at: at,
        updated_at: at,
    }
}

fn sorted(items: &[Item], filter: &ItemFilter) -> Vec<Item> {
    let mut all: Vec<Item> = items
        .iter()
        .filter(|i| filter.matches(i))
        .cloned()
        .collect();
    all.sort_by(global_order);
    all
}

/// How this instance's own storage behaves.
#[derive(Clone, Copy, PartialEq)]
enum Storage {
    Healthy,
    /// Every count fails.
    Broken,
    /// Every count and read hangs.
    Hanging,
}

/// This instance's items.
struct Store(Vec<Item>, Storage);

#[async_trait]
impl ItemRepository for Store {
    async fn insert(&self, _: &Item) -> Result<(), CoreError> {
        Ok(())
    }
    async fn find(&self, filter: &ItemFilter, page: PageRequest) -> Result<ItemPage, CoreError> {
        Ok(ItemPage {
            total: sorted(&self.0, filter).len() as u64,
            items: self.find_slice(filter, page).await?,
        })
    }
    async fn find_slice(
        &self,
        filter: &ItemFilter,
        page: PageRequest,
    ) -> Result<Vec<Item>, CoreError> {
        Ok(sorted(&self.0, filter)
            .into_iter()
            .skip(page.offset as usize)
            .take(page.limit as usize)
            .collect())
    }
    async fn find_after(
        &self,
        filter: &ItemFilter,
        after: Option<ItemKey>,
        limit: u32,
    ) -> Result<Vec<Item>, CoreError> {
        if self.1 == Storage::Hanging {
            std::future::pending::<()>().await;
        }
        Ok(sorted(&self.0, filter)
            .into_iter()
            .filter(|i| after.is_none_or(|a| ItemKey::of(i).is_after(&a)))
            .take(limit as usize)
            .collect())
    }
    async fn count(&self, filter: &ItemFilter) -> Result<u64, CoreError> {
        match self.1 {
            Storage::Healthy => {}
            Storage::Broken => return Err(CoreError::storage_unavailable()),
            Storage::Hanging => std::future::pending::<()>().await,
        }
        Ok(sorted(&self.0, filter).len() as u64)
    }
    async fn find_owned(&self, _: Uuid, _: &str) -> Result<Option<Item>, CoreError> {
        Ok(None)
    }
    async fn update(&self, _: &Item) -> Result<bool, CoreError> {
        Ok(false)
    }
    async fn delete_owned(&self, _: Uuid, _: &str) -> Result<bool, CoreError> {
        Ok(false)
    }
    async fn ping(&self) -> Result<(), CoreError> {
        Ok(())
    }
}

/// How a fake remote instance behaves.
#[derive(Clone)]
enum Behaviour {
    /// Answers like this implementation (cursor paging).
    Ours,
    /// Answers like the reference: offset paging only, no `next_cursor`.
    Reference,
    Hang,
    Down,
    /// Counts answer; every fetch fails.
    CountsOnly,
    /// Answers like `Ours`, each call after [`SLOW`].
    Slow,
    Answer(Value),
}

struct Remote {
    items: Vec<Item>,
    behaviour: Behaviour,
    counts: AtomicUsize,
    fetches: AtomicUsize,
}

#[derive(Default)]
struct Transport {
    remotes: HashMap<String, Arc<Remote>>,
}

#[async_trait]
impl PeerTransport for Transport {
    async fn count_local(
        &self,
        peer_url: &str,
        filter: &ItemFilter,
        _: &str,
    ) -> Result<u64, PeerError> {
        let remote = self
            .remotes
            .get(peer_url)
            .ok_or(PeerError::Unreachable("unknown".into()))?;
        remote.counts.fetch_add(1, AtomicOrdering::SeqCst);
        if let Behaviour::Slow = remote.behaviour {
            tokio::time::sleep(SLOW).await;
        }
        match &remote.behaviour {
            Behaviour::Hang => std::future::pending().await,
            Behaviour::Down => Err(PeerError::Unreachable("refused".into())),
            Behaviour::Answer(v) => v["count"]
                .as_u64()
                .ok_or(PeerError::Invalid("count".into())),
            _ => Ok(sorted(&remote.items, filter).len() as u64),
        }
    }

    async fn fetch_local(
        &self,
        peer_url: &str,
        filter: &ItemFilter,
        page: &PeerPage,
        _: &str,
    ) -> Result<PeerPageAnswer, PeerError> {
        let remote = self
            .remotes
            .get(peer_url)
            .ok_or(PeerError::Unreachable("unknown".into()))?;
        remote.fetches.fetch_add(1, AtomicOrdering::SeqCst);
        if let Behaviour::Slow = remote.behaviour {
            tokio::time::sleep(SLOW).await;
        }
        let all = sorted(&remote.items, filter);
        let (items, cursor_capable): (Vec<Item>, bool) = match &remote.behaviour {
            Behaviour::Hang => return std::future::pending().await,
            Behaviour::Down | Behaviour::CountsOnly => {
                return Err(PeerError::Unreachable("refused".into()));
            }
            Behaviour::Answer(v) => {
                // As the HTTP transport reads a page: only complete records are items.
                let items = serde_json::from_str(&v["items"].to_string())
                    .map_err(|e| PeerError::Invalid(format!("malformed items: {e}")))?;
                return Ok(PeerPageAnswer {
                    items,
                    total: None,
                    cursor_capable: false,
                });
            }
            Behaviour::Ours | Behaviour::Slow => {
                match page.cursor.as_deref().and_then(ItemKey::from_cursor) {
                    Some(after) => (
                        all.into_iter()
                            .filter(|i| ItemKey::of(i).is_after(&after))
                            .take(page.limit as usize)
                            .collect(),
                        true,
                    ),
                    None => (
                        all.into_iter()
                            .skip(page.offset as usize)
                            .take(page.limit as usize)
                            .collect(),
                        true,
                    ),
                }
            }
            Behaviour::Reference => (
                all.into_iter()
                    .skip(page.offset as usize)
                    .take(page.limit as usize)
                    .collect(),
                false,
            ),
        };
        Ok(PeerPageAnswer {
            items: items.into_iter().map(PeerItem::from).collect(),
            total: None,
            cursor_capable,
        })
    }

    async fn perform_action(
        &self,
        _: &str,
        _: &Value,
        _: &str,
        _: &str,
    ) -> Result<crate::ports::PeerAnswer, PeerError> {
        Err(PeerError::Unreachable("reads only".into()))
    }

    async fn store_event(&self, _: &str, _: &Value, _: &str) -> Result<u16, PeerError> {
        Err(PeerError::Unreachable("reads only".into()))
    }

    async fn store_events(
        &self,
        _: &str,
        _: Vec<Value>,
        _: &str,
    ) -> Result<crate::ports::BatchAnswer, PeerError> {
        Err(PeerError::Unreachable("reads only".into()))
    }
}

/// Counts its reads (each `get` or `get_many` is one round trip to a shared cache) and the
/// locks taken; shared across processes unless built `process_local`.
#[derive(Default)]
struct MemoryCache {
    entries: Mutex<HashMap<String, Vec<u8>>>,
    reads: AtomicUsize,
    locks: AtomicUsize,
    process_local: bool,
}

impl MemoryCache {
    fn round_trips(&self) -> usize {
        self.reads.load(AtomicOrdering::SeqCst)
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CoreError> {
        self.reads.fetch_add(1, AtomicOrdering::SeqCst);
        Ok(lock(&self.entries).get(key).cloned())
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CoreError> {
        self.reads.fetch_add(1, AtomicOrdering::SeqCst);
        let map = lock(&self.entries);
        Ok(keys.iter().map(|k| map.get(k).cloned()).collect())
    }
    async fn set(&self, key: &str, value: &[u8], _: Duration) -> Result<(), CoreError> {
        lock(&self.entries).insert(key.into(), value.to_vec());
        Ok(())
    }
    async fn set_if_absent(&self, key: &str, value: &[u8], _: Duration) -> Result<bool, CoreError> {
        self.locks.fetch_add(1, AtomicOrdering::SeqCst);
        let mut map = lock(&self.entries);
        if map.contains_key(key) {
            return Ok(false);
        }
        map.insert(key.into(), value.to_vec());
        Ok(true)
    }
    async fn increment(&self, key: &str, delta: i64, _: Duration) -> Result<i64, CoreError> {
        let mut map = lock(&self.entries);
        let n = map
            .get(key)
            .and_then(|v| String::from_utf8_lossy(v).parse::<i64>().ok())
            .unwrap_or(0)
            + delta;
        map.insert(key.into(), n.to_string().into_bytes());
        Ok(n)
    }
    async fn delete(&self, key: &str) -> Result<(), CoreError> {
        lock(&self.entries).remove(key);
        Ok(())
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, CoreError> {
        let mut map = lock(&self.entries);
        let before = map.len();
        map.retain(|k, _| !k.starts_with(prefix));
        Ok((before - map.len()) as u64)
    }
    async fn ping(&self) -> Result<(), CoreError> {
        Ok(())
    }
    fn shared_across_processes(&self) -> bool {
        !self.process_local
    }
}

struct SystemClock;
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

struct TokioTimer;
#[async_trait]
impl Timer for TokioTimer {
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

struct Network {
    service: Arc<NetworkFetchService>,
    /// Another process of this instance, sharing its storage and cache.
    replica: Arc<NetworkFetchService>,
    remotes: Vec<Arc<Remote>>,
    cache: Arc<MemoryCache>,
}

fn network(
    own: Vec<Item>,
    remotes: Vec<(&str, Vec<Item>, Behaviour)>,
    settings: NetworkFetchSettings,
) -> Network {
    network_with_store(Store(own, Storage::Healthy), remotes, settings)
}

fn network_with_store(
    store: Store,
    remotes: Vec<(&str, Vec<Item>, Behaviour)>,
    settings: NetworkFetchSettings,
) -> Network {
    network_with_cache(store, remotes, settings, MemoryCache::default())
}

/// This instance and a replica of it (same storage, same cache), and its peers.
fn network_with_cache(
    store: Store,
    remotes: Vec<(&str, Vec<Item>, Behaviour)>,
    settings: NetworkFetchSettings,
    cache: MemoryCache,
) -> Network {
    let mut instances = vec![json!({"domain_name": "student", "instance_url": SELF_URL})];
    let mut transport = Transport::default();
    let mut handles = Vec::new();
    for (url, items, behaviour) in remotes {
        instances.push(json!({"domain_name": "student", "instance_url": url}));
        // An alias of the same instance must be counted once.
        instances.push(json!({"domain_name": "student", "instance_url": format!("{url}/")}));
        let remote = Arc::new(Remote {
            items,
            behaviour,
            counts: AtomicUsize::new(0),
            fetches: AtomicUsize::new(0),
        });
        transport.remotes.insert(url.to_string(), remote.clone());
        handles.push(remote);
    }
    instances.push(json!({"domain_name": "student", "instance_url": "http://localhost:2742"}));
    let doc = NetworkDocument::parse(&json!({
        "name": "yellow_dot",
        "domains": [{"name": "student", "minimum_cache_ttl_seconds": 60, "item_schemas": {"profile_1.0": {
            "type": "object", "properties": {"name": {"type": "string"}, "phone": {"type": "string", "private": true}}
        }}}],
        "instances": instances
    }))
    .expect("doc");
    let identity = Arc::new(InstanceIdentity {
        base_url: SELF_URL.into(),
        name: "self".into(),
        served: ServedBindings::parse("yellow_dot/student").expect("served"),
    });
    let catalog = NetworkCatalog::build(
        vec![doc],
        &HashMap::new(),
        &identity,
        &SchemaCompiler::new(false),
        Utc::now(),
        CatalogOrigin::Sources,
    );
    let cache = Arc::new(cache);
    let repository: Arc<dyn ItemRepository> = Arc::new(store);
    let transport: Arc<dyn PeerTransport> = Arc::new(transport);
    let catalog = Arc::new(CatalogHandle::new(catalog));
    let replica = || {
        let deps = NetworkFetchDeps {
            repository: repository.clone(),
            catalog: catalog.clone(),
            identity: identity.clone(),
            transport: transport.clone(),
            cache: cache.clone(),
            clock: Arc::new(SystemClock),
            timer: Arc::new(TokioTimer),
        };
        Arc::new(NetworkFetchService::new(deps, settings.clone()))
    };
    Network {
        service: replica(),
        replica: replica(),
        remotes: handles,
        cache,
    }
}

fn query(limit: u32, paging: Paging) -> NetworkQuery {
    NetworkQuery {
        filter: ItemFilter::new("yellow_dot", "student"),
        limit,
        paging,
        cache_ttl_seconds: None,
        request_id: "r".into(),
        client: ClientInfo::default(),
    }
}

struct Decoded {
    meta: Value,
    items: Vec<Item>,
}

fn page_of(outcome: NetworkOutcome) -> Decoded {
    let NetworkOutcome::Page(bytes) = outcome else {
        panic!("no page: {outcome:?}")
    };
    let document: Value = serde_json::from_slice(&bytes).expect("json");
    let items = serde_json::from_value(document["items"].clone()).expect("items");
    Decoded {
        meta: document["meta"].clone(),
        items,
    }
}

fn ids(items: &[Item]) -> Vec<Uuid> {
    items.iter().map(|i| i.item_id).collect()
}

/// Items spread over three instances with interleaving (and tied) timestamps.
fn spread(n: usize) -> (Vec<Item>, Vec<Item>, Vec<Item>) {
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let millis = 1_000_000 + (i as i64 / 3) * 7;
        match i % 3 {
            0 => a.push(item(SELF_URL, millis, i as u128 + 1, "a")),
            1 => b.push(item("http://b.example", millis, i as u128 + 1, "b")),
            _ => c.push(item("http://c.example", millis, i as u128 + 1, "c")),
        }
    }
    (a, b, c)
}

#[tokio::test]
async fn offset_pages_follow_the_global_order_and_strip_private_fields() {
    let (a, b, c) = spread(30);
    let everything: Vec<Item> = [a.clone(), b.clone(), c.clone()].concat();
    let net = network(
        a,
        vec![
            ("http://b.example", b, Behaviour::Ours),
            ("http://c.example", c, Behaviour::Reference),
        ],
        NetworkFetchSettings::default(),
    );
    let expected = sorted(&everything, &ItemFilter::new("yellow_dot", "student"));
    for (limit, offset) in [(5, 0), (5, 5), (7, 20), (10, 28), (10, 40)] {
        let page = page_of(
            net.service
                .fetch(query(limit, Paging::Offset(offset)))
                .await
                .expect("page"),
        );
        let want: Vec<Item> = expected
            .iter()
            .skip(offset as usize)
            .take(limit as usize)
            .cloned()
            .collect();
        assert_eq!(
            ids(&page.items),
            ids(&want),
            "limit {limit} offset {offset}"
        );
        assert_eq!(page.meta["total"], 30);
        assert_eq!(page.meta["partial"], false);
        assert_eq!(
            page.meta["peers"].as_array().map(Vec::len),
            Some(3),
            "aliases counted once"
        );
        assert!(
            page.items.iter().all(|i| i.state.get("phone").is_none()),
            "private fields never leave"
        );
    }
}

#[tokio::test]
async fn cursor_walks_cover_everything_once() {
    let (a, b, c) = spread(47);
    let everything: Vec<Item> = [a.clone(), b.clone(), c.clone()].concat();
    let net = network(
        a,
        vec![
            ("http://b.example", b, Behaviour::Ours),
            ("http://c.example", c, Behaviour::Reference),
        ],
        NetworkFetchSettings::default(),
    );
    let expected = sorted(&everything, &ItemFilter::new("yellow_dot", "student"));
    // The first page (by offset) teaches which peers page by cursor.
    let first = first_page(&net, 6).await;
    let mut seen = first.items.clone();
    let mut cursor = first.meta["next_cursor"].as_str().map(str::to_string);
    while let Some(raw) = cursor {
        let page = page_of(
            net.service
                .fetch(query(
                    6,
                    Paging::Cursor(NetworkCursor::decode(&raw).expect("cursor")),
                ))
                .await
                .expect("page"),
        );
        seen.extend(page.items.clone());
        cursor = page.meta["next_cursor"].as_str().map(str::to_string);
    }
    assert_eq!(ids(&seen), ids(&expected));
}

#[tokio::test]
async fn a_hanging_peer_makes_a_partial_page_within_the_deadline() {
    let (a, b, c) = spread(12);
    let settings = NetworkFetchSettings {
        total_deadline: Duration::from_millis(300),
        ..NetworkFetchSettings::default()
    };
    let net = network(
        a,
        vec![
            ("http://b.example", b.clone(), Behaviour::Ours),
            ("http://c.example", c, Behaviour::Hang),
        ],
        settings,
    );
    let started = std::time::Instant::now();
    let page = first_page(&net, 20).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(page.meta["partial"], true);
    assert_eq!(
        page.items.len(),
        8,
        "the items of the instances that answered"
    );
    let statuses: Vec<&str> = page.meta["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .map(|p| p["status"].as_str().expect("s"))
        .collect();
    assert_eq!(statuses, vec!["ok", "ok", "timeout"]);
}

#[tokio::test]
async fn hostile_answers_mark_the_peer_invalid_and_never_fail_the_request() {
    let (a, b, _) = spread(9);
    let mut foreign = item("http://elsewhere.example", 5, 999, "x");
    foreign.created_by = "x".into();
    let hostile = vec![
        json!({"count": 3, "items": [serde_json::to_value(&foreign).expect("json")]}),
        json!({"count": 3, "items": [{"item_id": "not a uuid"}]}),
        json!({"count": 1, "items": [serde_json::to_value(item("http://c.example", 5, 7, "x")).expect("json"), serde_json::to_value(item("http://c.example", 6, 8, "y")).expect("json")]}),
    ];
    for answer in hostile {
        let net = network(
            a.clone(),
            vec![
                ("http://b.example", b.clone(), Behaviour::Ours),
                (
                    "http://c.example",
                    Vec::new(),
                    Behaviour::Answer(answer.clone()),
                ),
            ],
            NetworkFetchSettings::default(),
        );
        let page = first_page(&net, 1).await;
        assert_eq!(page.meta["partial"], true, "{answer}");
        assert_eq!(page.meta["peers"][2]["status"], "invalid", "{answer}");
        assert!(
            page.items
                .iter()
                .all(|i| i.instance_url != "http://elsewhere.example")
        );
    }
}

#[tokio::test]
async fn nobody_answering_gives_the_stale_page_or_nothing() {
    let (a, b, _) = spread(6);
    let net = network(
        Vec::new(),
        vec![("http://b.example", b, Behaviour::Ours)],
        NetworkFetchSettings::default(),
    );
    let fresh = first_page(&net, 5).await;
    assert_eq!(fresh.meta["stale"], false);
    // The fresh copy expires (the stale copy does not), then the peer goes down.
    lock(&net.cache.entries).retain(|k, _| {
        !["network-page:", "network-count:", "network-own-count:"]
            .iter()
            .any(|fresh| k.starts_with(fresh))
    });
    // This instance's own database is down too: nobody answers.
    let down = network_with_store(
        Store(Vec::new(), Storage::Broken),
        vec![("http://b.example", a.clone(), Behaviour::Down)],
        NetworkFetchSettings::default(),
    );
    *lock(&down.cache.entries) = lock(&net.cache.entries).clone();
    let stale = page_of(
        down.service
            .fetch(query(5, Paging::Offset(0)))
            .await
            .expect("page"),
    );
    assert_eq!(stale.meta["stale"], true);
    assert_eq!(ids(&stale.items), ids(&fresh.items));
    assert_eq!(stale.meta["peers"][1]["status"], "error");

    let never = network_with_store(
        Store(Vec::new(), Storage::Broken),
        vec![("http://b.example", a, Behaviour::Down)],
        NetworkFetchSettings::default(),
    );
    match never
        .service
        .fetch(query(5, Paging::Offset(0)))
        .await
        .expect("outcome")
    {
        NetworkOutcome::NoPeer {
            peers,
            retry_after_secs,
        } => {
            assert!(retry_after_secs >= 1);
            assert_eq!(peers[1].status, PeerStatus::Error);
        }
        other => panic!("expected no peer, got {other:?}"),
    }
}

/// Three healthy instances sharing `n` items; also how many this one holds.
fn healthy_three(n: usize) -> (Network, u64) {
    let (a, b, c) = spread(n);
    let mine = a.len() as u64;
    let net = network(
        a,
        vec![
            ("http://b.example", b, Behaviour::Ours),
            ("http://c.example", c, Behaviour::Ours),
        ],
        NetworkFetchSettings::default(),
    );
    (net, mine)
}

async fn first_page(net: &Network, limit: u32) -> Decoded {
    page_of(
        net.service
            .fetch(query(limit, Paging::Offset(0)))
            .await
            .expect("page"),
    )
}

/// What an item write on this instance does to network reads: its generation moves on.
async fn write_here(net: &Network) {
    net.cache
        .increment(
            &network_generation_key("yellow_dot", "student"),
            1,
            Duration::from_secs(60),
        )
        .await
        .expect("bump");
}

#[tokio::test]
async fn concurrent_identical_misses_fan_out_once() {
    let (net, _) = healthy_three(30);
    let calls = (0..200).map(|_| {
        let service = net.service.clone();
        async move { service.fetch(query(10, Paging::Offset(0))).await }
    });
    let pages = futures::future::join_all(calls).await;
    assert!(
        pages
            .iter()
            .all(|p| matches!(p, Ok(NetworkOutcome::Page(_))))
    );
    for remote in &net.remotes {
        assert_eq!(remote.counts.load(AtomicOrdering::SeqCst), 1);
        assert_eq!(remote.fetches.load(AtomicOrdering::SeqCst), 1);
    }
}

#[tokio::test]
async fn replicas_sharing_a_cache_fan_out_once_per_key() {
    let (a, b, c) = spread(30);
    let net = network(
        a,
        vec![
            ("http://b.example", b, Behaviour::Slow),
            ("http://c.example", c, Behaviour::Slow),
        ],
        NetworkFetchSettings::default(),
    );
    let started = std::time::Instant::now();
    let (first, second) = futures::join!(
        net.service.fetch(query(10, Paging::Offset(0))),
        net.replica.fetch(query(10, Paging::Offset(0)))
    );
    assert_eq!(
        page_of(first.expect("page")).items,
        page_of(second.expect("page")).items
    );
    for remote in &net.remotes {
        assert_eq!(remote.counts.load(AtomicOrdering::SeqCst), 1);
        assert_eq!(remote.fetches.load(AtomicOrdering::SeqCst), 1);
    }
    assert!(
        started.elapsed() < NetworkFetchSettings::default().total_deadline,
        "the replica waited for the page, not for its lock to lapse"
    );
    assert_eq!(net.cache.locks.load(AtomicOrdering::SeqCst), 2);
}

#[tokio::test]
async fn a_process_local_cache_takes_no_fan_out_lock() {
    let (a, b, c) = spread(30);
    let cache = MemoryCache {
        process_local: true,
        ..MemoryCache::default()
    };
    let remotes = vec![
        ("http://b.example", b, Behaviour::Ours),
        ("http://c.example", c, Behaviour::Ours),
    ];
    let net = network_with_cache(
        Store(a, Storage::Healthy),
        remotes,
        NetworkFetchSettings::default(),
        cache,
    );
    let page = first_page(&net, 10).await;
    assert_eq!(page.items.len(), 10);
    assert_eq!(net.cache.locks.load(AtomicOrdering::SeqCst), 0);
    assert!(
        lock(&net.cache.entries)
            .keys()
            .any(|k| k.starts_with("network-page:")),
        "the page is cached all the same"
    );
}

#[tokio::test]
async fn a_cached_page_takes_one_cache_round_trip_until_a_write_here_hides_it() {
    let (net, _) = healthy_three(30);
    let first = first_page(&net, 10).await;
    let before = net.cache.round_trips();
    let again = first_page(&net, 10).await;
    assert_eq!(
        net.cache.round_trips() - before,
        1,
        "generation and page together"
    );
    assert_eq!(ids(&again.items), ids(&first.items));
    for remote in &net.remotes {
        assert_eq!(
            remote.fetches.load(AtomicOrdering::SeqCst),
            1,
            "served from the cache"
        );
    }

    // A write on this instance bumps the domain's generation: the next read fans out again.
    write_here(&net).await;
    net.service
        .fetch(query(10, Paging::Offset(0)))
        .await
        .expect("page");
    for remote in &net.remotes {
        assert_eq!(
            remote.fetches.load(AtomicOrdering::SeqCst),
            2,
            "the hidden page is rebuilt"
        );
    }
}

/// The count this instance reported for itself in a page's `meta.peers`.
fn own_count(page: &Decoded) -> Option<u64> {
    page.meta["peers"]
        .as_array()?
        .iter()
        .find(|peer| peer["instance_url"] == SELF_URL)?["count"]
        .as_u64()
}

#[tokio::test]
async fn the_own_count_is_kept_until_a_write_here_changes_the_generation() {
    let (net, mine) = healthy_three(30);
    let first = first_page(&net, 10).await;
    assert_eq!(own_count(&first), Some(mine));
    let own_key = own_count_key(&query(10, Paging::Offset(0)).filter);
    let stored = net
        .cache
        .get(&own_key)
        .await
        .expect("cache")
        .expect("stored");
    assert_eq!(stored, format!("{mine}\n0").into_bytes());

    // Another page of the same filter (a miss) takes the stored count, not the storage's.
    let planted = format!("{}\n0", mine + 5);
    net.cache
        .set(&own_key, planted.as_bytes(), Duration::from_secs(60))
        .await
        .expect("plant");
    let other = first_page(&net, 5).await;
    assert_eq!(own_count(&other), Some(mine + 5));

    // A write here moves the generation on: the stored count no longer counts.
    write_here(&net).await;
    let after = first_page(&net, 5).await;
    assert_eq!(own_count(&after), Some(mine));
}

#[tokio::test]
async fn the_breaker_stops_calling_a_dead_peer_and_private_filters_are_refused() {
    let (a, _, _) = spread(6);
    let settings = NetworkFetchSettings {
        breaker: BreakerSettings {
            failure_threshold: 2,
            open_for: Duration::from_secs(60),
        },
        ..NetworkFetchSettings::default()
    };
    let net = network(
        a,
        vec![("http://b.example", Vec::new(), Behaviour::Down)],
        settings,
    );
    for limit in 1..=4 {
        // Distinct limits: distinct keys, so each is a fresh fan-out.
        net.service
            .fetch(query(limit, Paging::Offset(0)))
            .await
            .expect("page");
    }
    assert_eq!(
        net.remotes[0].counts.load(AtomicOrdering::SeqCst),
        2,
        "no calls once open"
    );
    let page = first_page(&net, 9).await;
    assert_eq!(page.meta["peers"][1]["status"], "circuit_open");
    assert_eq!(
        net.service.breaker_states(),
        vec![("http://b.example".to_string(), "open")]
    );

    let mut probing = query(5, Paging::Offset(0));
    probing.filter.state = Some(StateFilter::new(json!({"phone": "123"})).expect("filter"));
    let err = net.service.fetch(probing).await.expect_err("refused");
    assert_eq!(err.code(), crate::error::ErrorCode::PrivateFieldFilter);
}

#[tokio::test]
async fn a_cached_count_does_not_bring_an_open_breaker_peer_into_the_fetch_phase() {
    let (a, b, _) = spread(6);
    let settings = NetworkFetchSettings {
        breaker: BreakerSettings {
            failure_threshold: 2,
            open_for: Duration::from_secs(60),
        },
        ..NetworkFetchSettings::default()
    };
    let net = network(
        a,
        vec![("http://b.example", b, Behaviour::CountsOnly)],
        settings,
    );
    for limit in 1..=4 {
        // Same filter, so the count stays cached; distinct limits, so each page is a miss.
        let page = page_of(
            net.service
                .fetch(query(limit, Paging::Offset(0)))
                .await
                .expect("page"),
        );
        let expected = if limit <= 2 { "error" } else { "circuit_open" };
        assert_eq!(page.meta["peers"][1]["status"], expected, "limit {limit}");
    }
    assert_eq!(net.remotes[0].counts.load(AtomicOrdering::SeqCst), 1);
    assert_eq!(
        net.remotes[0].fetches.load(AtomicOrdering::SeqCst),
        2,
        "no fetch once the breaker is open"
    );
}

#[tokio::test]
async fn own_storage_slower_than_the_deadline_times_out_like_a_peer() {
    let (_, b, _) = spread(6);
    let settings = NetworkFetchSettings {
        total_deadline: Duration::from_millis(300),
        ..NetworkFetchSettings::default()
    };
    let net = network_with_store(
        Store(Vec::new(), Storage::Hanging),
        vec![("http://b.example", b.clone(), Behaviour::Ours)],
        settings,
    );
    let started = std::time::Instant::now();
    let page = first_page(&net, 10).await;
    assert!(started.elapsed() < Duration::from_secs(3), "bounded");
    assert_eq!(page.meta["peers"][0]["status"], "timeout");
    assert_eq!(page.meta["partial"], true);
    let expected = sorted(&b, &ItemFilter::new("yellow_dot", "student"));
    assert_eq!(ids(&page.items), ids(&expected));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn merged_pages_equal_one_instance_holding_everything(
        sizes in (0usize..25, 0usize..25, 0usize..25),
        steps in proptest::collection::vec((1u32..9, 0u32..40), 1..6),
        times in proptest::collection::vec(0i64..6, 75),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
        runtime.block_on(async {
            let mut id = 0u128;
            let mut make = |instance: &str, n: usize| -> Vec<Item> {
                (0..n).map(|k| { id += 1; item(instance, times[(id as usize) % times.len()] * 10 + (k as i64 % 2), id, "x") }).collect()
            };
            let (a, b, c) = (make(SELF_URL, sizes.0), make("http://b.example", sizes.1), make("http://c.example", sizes.2));
            let everything: Vec<Item> = [a.clone(), b.clone(), c.clone()].concat();
            let expected = sorted(&everything, &ItemFilter::new("yellow_dot", "student"));
            let net = network(a, vec![("http://b.example", b, Behaviour::Ours), ("http://c.example", c, Behaviour::Ours)], NetworkFetchSettings::default());
            for (limit, offset) in &steps {
                let page = page_of(net.service.fetch(query(*limit, Paging::Offset(*offset))).await.expect("page"));
                let want: Vec<Item> = expected.iter().skip(*offset as usize).take(*limit as usize).cloned().collect();
                prop_assert_eq!(ids(&page.items), ids(&want));
            }
            let limit = steps[0].0;
            let mut seen: Vec<Item> = Vec::new();
            let mut next = Some(NetworkCursor::default());
            while let Some(cursor) = next {
                let page = page_of(net.service.fetch(query(limit, Paging::Cursor(cursor))).await.expect("page"));
                seen.extend(page.items.clone());
                next = page.meta["next_cursor"].as_str().map(|c| NetworkCursor::decode(c).expect("cursor"));
                prop_assert!(seen.len() <= expected.len());
            }
            prop_assert_eq!(ids(&seen), ids(&expected));
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn each_client_has_a_budget_of_fan_outs_and_joining_one_is_free() {
    let (a, b, _) = spread(6);
    let settings = NetworkFetchSettings {
        client_budget: Limit::per(2, Duration::from_secs(60)),
        ..NetworkFetchSettings::default()
    };
    let net = network(a, vec![("http://b.example", b, Behaviour::Ours)], settings);
    let from_client = |limit: u32| {
        let mut q = query(limit, Paging::Offset(0));
        q.client = ClientInfo {
            ip: Some("203.0.113.9".into()),
            user_agent: None,
        };
        q
    };
    let joined = futures::future::join_all((0..50).map(|_| {
        let service = net.service.clone();
        let q = from_client(3);
        async move { service.fetch(q).await }
    }))
    .await;
    assert!(
        joined.iter().all(Result::is_ok),
        "one fan-out, fifty answers"
    );
    assert!(
        net.service.fetch(from_client(3)).await.is_ok(),
        "cache hits are free"
    );
    assert!(net.service.fetch(from_client(4)).await.is_ok());
    let refused = net.service.fetch(from_client(5)).await;
    assert!(
        matches!(refused, Err(CoreError::RateLimited { .. })),
        "{refused:?}"
    );
}
