//! The `Cache` port's contract, run against every adapter (in-process and Redis), plus the
//! Redis adapter's behaviour when Redis is shared, down or silent.
//!
//! Times here are correctness bounds with wide margins, not measurements.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dpg_adapters::memory::MemoryCache;
use dpg_adapters::metered_cache::MeteredCache;
use dpg_adapters::redis::{RedisCache, RedisCacheConfig};
use dpg_core::error::{CoreError, ErrorCode};
use dpg_core::ports::Cache;
use dpg_tests::support::redis::{redis_cache, unique_namespace};

type SharedCache = Arc<dyn Cache>;

/// Long enough never to expire during a test; short enough not to litter a shared Redis.
const LONG: Duration = Duration::from_secs(60);
/// Short TTL for expiry cases, and how long past it we wait before expecting it gone.
const SHORT: Duration = Duration::from_millis(400);
const EXPIRY_MARGIN: Duration = Duration::from_millis(800);

async fn wait_past(ttl: Duration) {
    tokio::time::sleep(ttl + EXPIRY_MARGIN).await;
}

async fn get(cache: &SharedCache, key: &str) -> Option<Vec<u8>> {
    cache.get(key).await.expect("get")
}

// ---- the contract --------------------------------------------------------------------

async fn get_of_absent_key_is_none(cache: SharedCache) {
    assert_eq!(get(&cache, "absent").await, None);
}

async fn set_then_get_returns_the_bytes(cache: SharedCache) {
    let value = [0u8, 1, 2, 255, b'{', b'}'];
    cache.set("k", &value, LONG).await.expect("set");

    assert_eq!(get(&cache, "k").await, Some(value.to_vec()));
}

async fn get_many_answers_in_key_order_with_gaps(cache: SharedCache) {
    cache.set("a", b"1", LONG).await.expect("set");
    cache.set("c", b"3", LONG).await.expect("set");
    let keys = ["a", "b", "c", "a"].map(String::from);

    let values = cache.get_many(&keys).await.expect("get_many");

    assert_eq!(
        values,
        vec![
            Some(b"1".to_vec()),
            None,
            Some(b"3".to_vec()),
            Some(b"1".to_vec())
        ]
    );
    assert_eq!(
        cache.get_many(&[]).await.expect("empty"),
        Vec::<Option<Vec<u8>>>::new()
    );
}

async fn set_overwrites(cache: SharedCache) {
    cache.set("k", b"first", LONG).await.expect("set");
    cache.set("k", b"second", LONG).await.expect("set");

    assert_eq!(get(&cache, "k").await, Some(b"second".to_vec()));
}

async fn set_expires_after_its_ttl(cache: SharedCache) {
    cache.set("k", b"v", SHORT).await.expect("set");
    assert_eq!(get(&cache, "k").await, Some(b"v".to_vec()));

    wait_past(SHORT).await;

    assert_eq!(get(&cache, "k").await, None);
}

async fn set_if_absent_stores_only_the_first_value(cache: SharedCache) {
    assert!(
        cache
            .set_if_absent("k", b"first", LONG)
            .await
            .expect("first")
    );
    assert!(
        !cache
            .set_if_absent("k", b"second", LONG)
            .await
            .expect("second")
    );

    assert_eq!(get(&cache, "k").await, Some(b"first".to_vec()));
}

async fn set_if_absent_succeeds_again_after_expiry(cache: SharedCache) {
    assert!(
        cache
            .set_if_absent("k", b"first", SHORT)
            .await
            .expect("first")
    );
    wait_past(SHORT).await;

    assert!(
        cache
            .set_if_absent("k", b"second", LONG)
            .await
            .expect("after expiry")
    );
    assert_eq!(get(&cache, "k").await, Some(b"second".to_vec()));
}

async fn increment_of_absent_key_starts_from_zero(cache: SharedCache) {
    assert_eq!(cache.increment("n", 5, LONG).await.expect("increment"), 5);
    // Stored as decimal text, whichever the adapter.
    assert_eq!(get(&cache, "n").await, Some(b"5".to_vec()));
}

async fn increment_adds_the_delta(cache: SharedCache) {
    assert_eq!(cache.increment("n", 1, LONG).await.expect("+1"), 1);
    assert_eq!(cache.increment("n", 10, LONG).await.expect("+10"), 11);
    assert_eq!(cache.increment("n", -20, LONG).await.expect("-20"), -9);
}

async fn increment_continues_from_an_integer_set_as_text(cache: SharedCache) {
    cache.set("n", b"41", LONG).await.expect("set");

    assert_eq!(cache.increment("n", 1, LONG).await.expect("increment"), 42);
}

async fn increment_extends_the_expiry_to_its_ttl(cache: SharedCache) {
    cache.increment("n", 1, SHORT).await.expect("short");
    cache.increment("n", 1, LONG).await.expect("long");

    wait_past(SHORT).await;

    assert_eq!(get(&cache, "n").await, Some(b"2".to_vec()));
}

async fn increment_shortens_the_expiry_to_its_ttl(cache: SharedCache) {
    cache.increment("n", 1, LONG).await.expect("long");
    cache.increment("n", 1, SHORT).await.expect("short");

    wait_past(SHORT).await;

    assert_eq!(get(&cache, "n").await, None);
}

async fn increment_after_expiry_starts_over(cache: SharedCache) {
    cache.increment("n", 7, SHORT).await.expect("first");
    wait_past(SHORT).await;

    assert_eq!(
        cache.increment("n", 1, LONG).await.expect("after expiry"),
        1
    );
}

async fn concurrent_increments_are_atomic(cache: SharedCache) {
    const TASKS: i64 = 50;
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.increment("n", 1, LONG).await })
        })
        .collect();

    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("task").expect("increment"));
    }
    results.sort_unstable();

    assert_eq!(results, (1..=TASKS).collect::<Vec<_>>());
    assert_eq!(get(&cache, "n").await, Some(TASKS.to_string().into_bytes()));
}

fn assert_invalid_input<T: std::fmt::Debug>(result: &Result<T, CoreError>) {
    assert!(
        matches!(
            result,
            Err(CoreError::Invalid {
                code: ErrorCode::InvalidInput,
                ..
            })
        ),
        "got {result:?}"
    );
}

async fn increment_of_a_non_integer_is_invalid_and_changes_nothing(cache: SharedCache) {
    cache.set("text", b"abc", SHORT).await.expect("set");

    let result = cache.increment("text", 1, LONG).await;

    assert_invalid_input(&result);
    assert_eq!(get(&cache, "text").await, Some(b"abc".to_vec()));
    // The failed increment did not extend the value's expiry either.
    wait_past(SHORT).await;
    assert_eq!(get(&cache, "text").await, None);
}

async fn increment_each_increments_every_key_in_order(cache: SharedCache) {
    cache.set("b", b"10", LONG).await.expect("set");
    let keys = ["a", "b", "c"].map(String::from);

    assert_eq!(
        cache.increment_each(&keys, 2, LONG).await.expect("first"),
        vec![2, 12, 2]
    );
    assert_eq!(
        cache.increment_each(&keys, 1, LONG).await.expect("second"),
        vec![3, 13, 3]
    );
    assert_eq!(get(&cache, "b").await, Some(b"13".to_vec()));
    assert_eq!(
        cache.increment_each(&[], 1, LONG).await.expect("none"),
        Vec::<i64>::new()
    );
}

async fn increment_each_sets_the_expiry_of_every_key(cache: SharedCache) {
    cache.increment("a", 1, LONG).await.expect("long");
    let keys = ["a", "b"].map(String::from);

    cache.increment_each(&keys, 1, SHORT).await.expect("short");
    wait_past(SHORT).await;

    assert_eq!(get(&cache, "a").await, None);
    assert_eq!(get(&cache, "b").await, None);
}

async fn increment_each_reports_a_non_integer_as_invalid(cache: SharedCache) {
    cache.set("text", b"abc", LONG).await.expect("set");
    let keys = ["text", "n"].map(String::from);

    let result = cache.increment_each(&keys, 1, LONG).await;

    assert_invalid_input(&result);
    assert_eq!(get(&cache, "text").await, Some(b"abc".to_vec()));
}

async fn delete_removes_one_key_and_ignores_absent_ones(cache: SharedCache) {
    cache.set("a", b"1", LONG).await.expect("set");
    cache.set("b", b"2", LONG).await.expect("set");

    cache.delete("a").await.expect("delete");
    cache
        .delete("never-set")
        .await
        .expect("delete of absent key");

    assert_eq!(get(&cache, "a").await, None);
    assert_eq!(get(&cache, "b").await, Some(b"2".to_vec()));
}

async fn delete_prefix_removes_exactly_the_prefix(cache: SharedCache) {
    for key in [
        "page:a:1",
        "page:a:2",
        "page:a:3",
        "page:ab",
        "page:b:1",
        "other:page:a:1",
    ] {
        cache.set(key, b"v", LONG).await.expect("set");
    }

    assert_eq!(
        cache.delete_prefix("page:a:").await.expect("delete_prefix"),
        3
    );

    for gone in ["page:a:1", "page:a:2", "page:a:3"] {
        assert_eq!(get(&cache, gone).await, None, "{gone}");
    }
    for kept in ["page:ab", "page:b:1", "other:page:a:1"] {
        assert_eq!(get(&cache, kept).await, Some(b"v".to_vec()), "{kept}");
    }
    assert_eq!(cache.delete_prefix("page:a:").await.expect("again"), 0);
}

async fn delete_prefix_takes_glob_characters_literally(cache: SharedCache) {
    // Each prefix, and keys that a glob reading of it would also match.
    let cases = [
        ("star*", "star*:1", "starX:1"),
        ("what?", "what?:1", "whatX:1"),
        ("set[ab]", "set[ab]:1", "seta:1"),
        ("back\\", "back\\:1", "back:1"),
    ];
    for (_, literal, lookalike) in cases {
        cache.set(literal, b"v", LONG).await.expect("set");
        cache.set(lookalike, b"v", LONG).await.expect("set");
    }

    for (prefix, literal, lookalike) in cases {
        assert_eq!(
            cache.delete_prefix(prefix).await.expect("delete_prefix"),
            1,
            "{prefix}"
        );
        assert_eq!(get(&cache, literal).await, None, "{literal}");
        assert_eq!(
            get(&cache, lookalike).await,
            Some(b"v".to_vec()),
            "{lookalike}"
        );
    }
}

async fn delete_prefix_handles_more_keys_than_one_batch(cache: SharedCache) {
    const KEYS: u64 = 1_200;
    for i in 0..KEYS {
        cache
            .set(&format!("bulk:{i}"), b"v", LONG)
            .await
            .expect("set");
    }
    cache.set("kept", b"v", LONG).await.expect("set");

    assert_eq!(
        cache.delete_prefix("bulk:").await.expect("delete_prefix"),
        KEYS
    );
    assert_eq!(get(&cache, "bulk:0").await, None);
    assert_eq!(get(&cache, "kept").await, Some(b"v".to_vec()));
}

async fn ping_answers(cache: SharedCache) {
    cache.ping().await.expect("ping");
}

/// Runs every listed case once per adapter, as its own test.
macro_rules! contract_suite {
    ($($case:ident),+ $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Arc::new(super::MemoryCache::new())).await;
                }
            )+
        }

        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let cache = super::redis_cache(stringify!($case)).await.expect("test Redis");
                    super::$case(super::Arc::new(cache)).await;
                }
            )+
        }
    };
}

contract_suite!(
    get_of_absent_key_is_none,
    set_then_get_returns_the_bytes,
    get_many_answers_in_key_order_with_gaps,
    set_overwrites,
    set_expires_after_its_ttl,
    set_if_absent_stores_only_the_first_value,
    set_if_absent_succeeds_again_after_expiry,
    increment_of_absent_key_starts_from_zero,
    increment_adds_the_delta,
    increment_continues_from_an_integer_set_as_text,
    increment_extends_the_expiry_to_its_ttl,
    increment_shortens_the_expiry_to_its_ttl,
    increment_after_expiry_starts_over,
    increment_each_increments_every_key_in_order,
    increment_each_sets_the_expiry_of_every_key,
    increment_each_reports_a_non_integer_as_invalid,
    concurrent_increments_are_atomic,
    increment_of_a_non_integer_is_invalid_and_changes_nothing,
    delete_removes_one_key_and_ignores_absent_ones,
    delete_prefix_removes_exactly_the_prefix,
    delete_prefix_takes_glob_characters_literally,
    delete_prefix_handles_more_keys_than_one_batch,
    ping_answers,
);

// ---- Redis only ----------------------------------------------------------------------

#[tokio::test]
async fn redis_namespaces_isolate_instances() {
    let first = redis_cache("namespaces_first").await.expect("test Redis");
    let second = redis_cache("namespaces_second").await.expect("test Redis");

    first.set("k", b"first", LONG).await.expect("set");
    assert_eq!(second.get("k").await.expect("get"), None);
    second.set("k", b"second", LONG).await.expect("set");
    second.increment("n", 1, LONG).await.expect("increment");

    assert_eq!(first.get("k").await.expect("get"), Some(b"first".to_vec()));
    assert_eq!(second.delete_prefix("").await.expect("delete_prefix"), 2);
    assert_eq!(first.get("k").await.expect("get"), Some(b"first".to_vec()));
}

#[tokio::test]
async fn redis_namespace_with_glob_characters_is_literal() {
    let url = dpg_tests::support::redis::redis_url();
    let base = unique_namespace("glob_namespace");
    let starred = RedisCache::new(&url, format!("{base}*:")).expect("cache");
    let plain = RedisCache::new(&url, format!("{base}x:")).expect("cache");
    starred.set("k", b"v", LONG).await.expect("set");
    plain.set("k", b"v", LONG).await.expect("set");

    assert_eq!(starred.delete_prefix("").await.expect("delete_prefix"), 1);
    assert_eq!(plain.get("k").await.expect("get"), Some(b"v".to_vec()));
}

#[tokio::test]
async fn only_redis_entries_are_shared_across_processes() {
    assert!(!MemoryCache::new().shared_across_processes());
    assert!(!MeteredCache::new(MemoryCache::new(), "memory").shared_across_processes());
    let redis = redis_cache("shared_across_processes")
        .await
        .expect("test Redis");
    assert!(redis.shared_across_processes());
    assert!(MeteredCache::new(redis, "redis").shared_across_processes());
}

/// Bound on one failed call, far above the few hundred milliseconds the timeouts allow.
const FAILURE_BOUND: Duration = Duration::from_secs(2);

/// Every operation fails with `Unavailable` within the bound instead of hanging.
async fn assert_every_operation_unavailable(cache: &RedisCache) {
    let operations: Vec<(&str, futures::future::BoxFuture<'_, Result<(), CoreError>>)> = vec![
        ("get", Box::pin(async { cache.get("k").await.map(drop) })),
        (
            "get_many",
            Box::pin(async { cache.get_many(&["k".to_string()]).await.map(drop) }),
        ),
        ("set", Box::pin(cache.set("k", b"v", LONG))),
        (
            "set_if_absent",
            Box::pin(async { cache.set_if_absent("k", b"v", LONG).await.map(drop) }),
        ),
        (
            "increment",
            Box::pin(async { cache.increment("n", 1, LONG).await.map(drop) }),
        ),
        ("delete", Box::pin(cache.delete("k"))),
        (
            "delete_prefix",
            Box::pin(async { cache.delete_prefix("p").await.map(drop) }),
        ),
        ("ping", Box::pin(cache.ping())),
    ];
    for (name, operation) in operations {
        let started = Instant::now();
        let result = tokio::time::timeout(FAILURE_BOUND, operation)
            .await
            .unwrap_or_else(|_| panic!("{name} still waiting after {FAILURE_BOUND:?}"));
        let elapsed = started.elapsed();

        match result {
            Err(CoreError::Unavailable { code, message }) => {
                assert_eq!(code, ErrorCode::StorageUnavailable, "{name}");
                assert_eq!(message, "cache unavailable", "{name}");
            }
            other => panic!("{name}: expected Unavailable, got {other:?}"),
        }
        assert!(elapsed < FAILURE_BOUND, "{name} took {elapsed:?}");
    }
}

#[tokio::test]
async fn redis_on_a_closed_port_is_built_and_reports_unavailable_quickly() {
    let cache = RedisCache::new("redis://127.0.0.1:1", unique_namespace("closed_port"))
        .expect("building must not need Redis");

    assert_every_operation_unavailable(&cache).await;
}

#[tokio::test]
async fn redis_that_accepts_but_never_answers_reports_unavailable_quickly() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    // Accept connections and hold them open without ever replying.
    let silent_server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let cache = RedisCache::new(&format!("redis://{address}"), unique_namespace("silent"))
        .expect("building must not need Redis");

    assert_every_operation_unavailable(&cache).await;
    silent_server.abort();
}

#[tokio::test]
async fn redis_with_a_malformed_url_is_refused_at_build_time() {
    let result = RedisCache::new("not a url", "ns:");

    assert!(
        matches!(result, Err(CoreError::Invalid { .. })),
        "got {result:?}"
    );
}

#[tokio::test]
async fn redis_config_debug_hides_the_url() {
    let config = RedisCacheConfig::new("redis://user:secret@127.0.0.1:6379", "ns:");

    assert!(!format!("{config:?}").contains("secret"));
}

/// A TCP relay to the test Redis whose connections can all be cut at once, as a Redis restart
/// would.
struct CuttableRelay {
    address: std::net::SocketAddr,
    relays: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl CuttableRelay {
    async fn start() -> CuttableRelay {
        let upstream = dpg_tests::support::redis::redis_url();
        let upstream = upstream
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let relays = Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = relays.clone();
        let acceptor = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let relay = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                held.lock().expect("relays").push(relay);
            }
        });
        CuttableRelay {
            address,
            relays,
            acceptor,
        }
    }

    /// Closes every relayed connection; new ones are still accepted.
    fn cut(&self) {
        for relay in self.relays.lock().expect("relays").drain(..) {
            relay.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_connections_that_died_cost_one_failed_call_each_then_are_replaced() {
    const POOL: u32 = 4;
    let relay = CuttableRelay::start().await;
    let mut config = RedisCacheConfig::new(
        format!("redis://{}", relay.address),
        unique_namespace("cut_connections"),
    );
    config.max_connections = POOL;
    let cache = Arc::new(RedisCache::with_config(config).expect("cache"));
    // Open the whole pool: concurrent calls each hold a connection.
    let writes = (0..20).map(|i| {
        let cache = cache.clone();
        async move { cache.set(&format!("k{i}"), b"v", LONG).await }
    });
    for result in futures::future::join_all(writes).await {
        result.expect("set before the cut");
    }

    relay.cut();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut failures = 0;
    for _ in 0..(2 * POOL) {
        if cache.get("k0").await.is_err() {
            failures += 1;
        }
    }

    assert!(
        failures <= POOL,
        "{failures} failed calls for {POOL} dead connections"
    );
    for _ in 0..10 {
        assert_eq!(
            cache
                .get("k0")
                .await
                .expect("get after the dead connections were replaced"),
            Some(b"v".to_vec())
        );
    }
    relay.acceptor.abort();
}
