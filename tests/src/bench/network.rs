//! `bench --network`: network-wide reads (`GET /api/v1/network/item/fetch`) on networks of
//! release `dpg` children that all read one generated network document, instance 1 being
//! the aggregator the load goes to.
//!
//! Three instances first (the third behind a [`FaultProxy`], so that it can be black-holed),
//! then ten without a proxy. Every phase fills [`NetworkReport`] as it completes, so a
//! failure keeps what was measured.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use dpg_tests::support::fault_proxy::{Fault, FaultProxy};
use dpg_tests::support::keys::{INSTANCE_KEY_ENV, InstanceKey};
use serde_json::{Value, json};
use tempfile::TempDir;
use uuid::Uuid;

use super::child::DpgChild;
use super::load::{self, Measured, Until};
use super::network_report::label;
use super::phases::{USERS, create_body};

pub const NETWORK: &str = "yellow_dot";
pub const DOMAIN: &str = "student";
pub const FETCH: &str = "/api/v1/network/item/fetch";
pub const FETCH_LOCAL: &str = "/api/v1/network/item/fetch_local";
const CREATE: &str = "/api/v1/item/create";
/// Page size of every network read and local page.
pub const LIMIT: u32 = 20;
/// Pages of one cursor walk.
pub const WALK_PAGES: usize = 100;
/// Cursor walks, one after the other; also the number of `offset` page-100 reads.
pub const WALKS: usize = 20;
/// `offset` of page 100.
pub const OFFSET_PAGE_100: u32 = (WALK_PAGES as u32 - 1) * LIMIT;
/// `NETWORK_FETCH_BUDGET_PER_MINUTE` of every instance: far above any run's misses.
pub const FETCH_BUDGET_PER_MINUTE: u32 = 1_000_000_000;
/// `NETWORK_CACHE_MAX_TTL_SECONDS` of every instance: high, so that every request of a run
/// can carry its own `cache_ttl_seconds` (the ttl is part of the page's cache key).
pub const MAX_CACHE_TTL_SECONDS: u64 = 1_000_000_000;
/// The first `cache_ttl_seconds` handed out: above the document's `minimum_cache_ttl_seconds`
/// (300), below which values are raised to the minimum and would share one key.
const FIRST_TTL: u64 = 1_000;
/// `cache_ttl_seconds` values reserved for one phase (more than any phase sends).
const TTL_BLOCK: u64 = 10_000_000;
/// The application's defaults, which this mode leaves alone.
pub const PEER_TIMEOUT_MS: u64 = 2_000;
pub const PEER_BREAKER_FAILURES: u64 = 5;
pub const PEER_BREAKER_OPEN_SECONDS: u64 = 10;
/// Instance (0-based) behind the fault proxy in the network of three.
const PROXIED: usize = 2;
/// How long waiting for every breaker to close before a measurement may take.
const BREAKER_RESET_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
pub struct NetworkSettings {
    pub items_per_instance: u64,
    pub x10_items_per_instance: u64,
    pub concurrency: usize,
    pub seconds: u64,
}

/// One measurement of the network mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// The items created before the reads, interleaved across the instances.
    Seed,
    /// `GET /health/live` on the aggregator: what the HTTP stack and this load generator
    /// manage on this machine.
    Baseline,
    /// `fetch_local` limit 20 offset 0 on instance `n` (0-based) directly.
    LocalPage(usize),
    CacheHit,
    /// [`Miss::Ttl`].
    CacheMiss,
    /// [`Miss::Name`].
    NameMiss,
    /// [`Miss::Id`].
    IdMiss,
    /// [`Op::CacheMiss`], one request at a time.
    CacheMissAlone,
    /// [`Op::IdMiss`], one request at a time.
    IdMissAlone,
    CursorPage1,
    CursorPage100,
    OffsetPage100,
    /// [`Op::CacheMiss`] with instance 3 black-holed.
    BlackHole,
    /// [`Op::IdMiss`] with instance 3 black-holed.
    BlackHoleId,
}

/// How a cache-miss phase makes every request's page key new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// The base query with its own `cache_ttl_seconds`: the page misses, the peers' counts
    /// (cached by filter) do not.
    Ttl,
    /// Also `item_state[name]=S<k>` (every instance holds one item of each name, k below
    /// `names`): the peers' counts miss too, and every count and page filters on a JSON field.
    Name { names: u64 },
    /// Also `item_id=<random>` (no such item): every peer is asked for its count, which is 0,
    /// so no page is fetched.
    Id,
}

impl Op {
    /// Whether the requests went one after the other (no meaningful requests/s).
    pub fn sequential(self) -> bool {
        matches!(
            self,
            Op::CursorPage1 | Op::CursorPage100 | Op::OffsetPage100
        )
    }
}

/// What one network measured.
#[derive(Debug, Default)]
pub struct NetworkReport {
    /// `network x3`, `network x10`.
    pub name: String,
    pub instances: usize,
    pub items_per_instance: u64,
    pub measurements: Vec<(Op, Measured)>,
    /// Facts worth a line under the table (checks that failed, odd answers).
    pub notes: Vec<String>,
}

impl NetworkReport {
    pub fn get(&self, op: Op) -> Option<&Measured> {
        self.measurements
            .iter()
            .find(|(o, _)| *o == op)
            .map(|(_, measured)| measured)
    }
}

/// Hands out `cache_ttl_seconds` values never used before in this run.
#[derive(Debug)]
pub struct Ttls {
    next_block: AtomicU64,
}

impl Ttls {
    pub fn new() -> Self {
        Ttls {
            next_block: AtomicU64::new(FIRST_TTL),
        }
    }

    /// The first value of a fresh block of [`TTL_BLOCK`] values.
    fn block(&self) -> u64 {
        self.next_block.fetch_add(TTL_BLOCK, Ordering::Relaxed)
    }
}

/// How the instances of a [`BenchNetwork`] treat each other's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// No keys and no `peer_auth` in the document (its default, `permissive`): peer calls
    /// go unsigned and are accepted.
    Default,
    /// No keys and `peer_auth: off`: peer calls go unsigned and nothing is verified.
    Off,
    /// Every instance signs with its own fresh Ed25519 key, listed in the document, and the
    /// network has `peer_auth: required`.
    Required,
}

/// A network of `dpg` children reading one generated document.
pub struct BenchNetwork {
    pub children: Vec<DpgChild>,
    /// The URL peers call for each instance (the proxy's for the proxied one).
    pub public_urls: Vec<String>,
    pub proxy: Option<FaultProxy>,
    /// Each instance's key, in a [`Trust::Required`] network.
    pub keys: Vec<Option<InstanceKey>>,
    _document_dir: TempDir,
}

impl BenchNetwork {
    /// Starts `size` instances serving `yellow_dot/student`, `proxied` behind a fault proxy,
    /// all listed for `student` in one document derived from `dev_network`, with `trust`.
    pub async fn start(
        dpg: &Path,
        dev_network: &Path,
        size: usize,
        proxied: Option<usize>,
        trust: Trust,
        client: &reqwest::Client,
    ) -> anyhow::Result<BenchNetwork> {
        let ports = free_ports(size)?;
        let proxy = match proxied {
            Some(index) => {
                let port = ports
                    .get(index)
                    .copied()
                    .ok_or_else(|| anyhow!("instance {index} is not among {size}"))?;
                Some(
                    FaultProxy::start(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
                        .await
                        .context("the fault proxy did not start")?,
                )
            }
            None => None,
        };
        let public_urls: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(index, port)| match (&proxy, proxied) {
                (Some(proxy), Some(p)) if p == index => proxy.url(),
                _ => format!("http://127.0.0.1:{port}"),
            })
            .collect();
        let document_dir = tempfile::Builder::new()
            .prefix("dpg-bench-network-")
            .tempdir()
            .context("could not create a temporary directory")?;
        let document_path = document_dir.path().join("network.json");
        let keys: Vec<Option<InstanceKey>> = (0..size)
            .map(|index| {
                (trust == Trust::Required)
                    .then(|| InstanceKey::generate(format!("bench{}-key", index + 1)))
            })
            .collect();
        let document = network_document(dev_network, &public_urls, &keys, trust)?;
        std::fs::write(&document_path, serde_json::to_vec_pretty(&document)?)
            .with_context(|| format!("could not write {}", document_path.display()))?;

        let starts = ports
            .iter()
            .zip(&public_urls)
            .enumerate()
            .map(|(index, (port, url))| {
                let mut env = instance_env(index, url);
                if let Some(key) = &keys[index] {
                    env.push((INSTANCE_KEY_ENV.to_string(), key.env_value()));
                }
                let document_path = document_path.clone();
                async move { DpgChild::start_on(dpg, &document_path, *port, &env, client).await }
            });
        let started = futures::future::join_all(starts).await;
        let mut children = Vec::with_capacity(size);
        let mut failures = Vec::new();
        for (index, outcome) in started.into_iter().enumerate() {
            match outcome {
                Ok(child) => children.push(child),
                Err(error) => failures.push(format!("instance {}: {error:#}", index + 1)),
            }
        }
        if !failures.is_empty() {
            for child in children {
                let _ = child.stop().await;
            }
            bail!("not every instance started:\n{}", failures.join("\n"));
        }
        Ok(BenchNetwork {
            children,
            public_urls,
            proxy,
            keys,
            _document_dir: document_dir,
        })
    }

    /// The aggregator every network read goes to.
    pub fn aggregator(&self) -> anyhow::Result<&DpgChild> {
        self.children
            .first()
            .ok_or_else(|| anyhow!("the network has no instance"))
    }

    pub fn pids(&self) -> String {
        self.children
            .iter()
            .map(|child| child.pid().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Stops every child (SIGTERM by PID) and the proxy; reports the first failure, with the
    /// end of that instance's log.
    pub async fn stop(self, name: &str) -> anyhow::Result<()> {
        let mut first_error = None;
        for (index, child) in self.children.into_iter().enumerate() {
            let tail = child.log_tail(10);
            match child.stop().await {
                Ok(how) => eprintln!("[{name}] instance {} {how}", index + 1),
                Err(error) => {
                    eprintln!(
                        "[{name}] instance {} could not be stopped: {error:#}\n\
                         last lines of its log:\n{tail}",
                        index + 1
                    );
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(proxy) = self.proxy {
            proxy.shutdown().await;
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// The variables of instance `index` on top of [`DpgChild`]'s embedded defaults.
fn instance_env(index: usize, public_url: &str) -> Vec<(String, String)> {
    [
        ("API_DOMAIN", public_url.to_string()),
        ("SERVED_DOMAINS", format!("{NETWORK}/{DOMAIN}")),
        ("INSTANCE_NAME", format!("bench{}", index + 1)),
        (
            "NETWORK_FETCH_BUDGET_PER_MINUTE",
            FETCH_BUDGET_PER_MINUTE.to_string(),
        ),
        (
            "NETWORK_CACHE_MAX_TTL_SECONDS",
            MAX_CACHE_TTL_SECONDS.to_string(),
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect()
}

/// `examples/dev.network.json` with every instance listed for `student` (with its key, when
/// it has one) and nothing else, and the `peer_auth` mode of `trust`.
pub fn network_document(
    dev_network: &Path,
    urls: &[String],
    keys: &[Option<InstanceKey>],
    trust: Trust,
) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(dev_network)
        .with_context(|| format!("could not read {}", dev_network.display()))?;
    let mut document: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", dev_network.display()))?;
    let instances = urls
        .iter()
        .enumerate()
        .map(|(index, url)| {
            let mut entry = json!({
                "domain_name": DOMAIN,
                "instance_name": format!("Bench student instance {}", index + 1),
                "instance_url": url,
                "custom_item_schema_urls": {}
            });
            if let Some(Some(key)) = keys.get(index) {
                entry["keys"] = json!([key.listing()]);
            }
            entry
        })
        .collect();
    let object = document
        .as_object_mut()
        .ok_or_else(|| anyhow!("{} is not a JSON object", dev_network.display()))?;
    object.insert("instances".to_string(), Value::Array(instances));
    match trust {
        Trust::Default => {}
        Trust::Off => {
            object.insert("peer_auth".to_string(), json!("off"));
        }
        Trust::Required => {
            object.insert("peer_auth".to_string(), json!("required"));
        }
    }
    object.insert(
        "description".to_string(),
        json!("Generated by the network-read benchmark."),
    );
    Ok(document)
}

/// `count` distinct loopback ports that are free now (the listeners are closed before the
/// children bind them).
fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| {
            std::net::TcpListener::bind(("127.0.0.1", 0))
                .context("could not find a free loopback port")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect()
}

/// The network of three: seed, local pages, cache hit and miss, cursor walks, black hole.
pub async fn measure_three(
    dpg: &Path,
    dev_network: &Path,
    client: &reqwest::Client,
    settings: NetworkSettings,
    report: &mut NetworkReport,
) -> anyhow::Result<()> {
    let name = report.name.clone();
    eprintln!("[{name}] starting 3 instances (instance 3 behind a fault proxy) ...");
    let network =
        BenchNetwork::start(dpg, dev_network, 3, Some(PROXIED), Trust::Default, client).await?;
    eprintln!(
        "[{name}] ready: {} (pids {})",
        network.public_urls.join(", "),
        network.pids()
    );
    let measured = three_phases(&network, client, settings, report).await;
    let stopped = network.stop(&name).await;
    measured?;
    stopped
}

async fn three_phases(
    network: &BenchNetwork,
    client: &reqwest::Client,
    settings: NetworkSettings,
    report: &mut NetworkReport,
) -> anyhow::Result<()> {
    let name = report.name.clone();
    let ttls = Ttls::new();
    let aggregator = network.aggregator()?;
    let timed = Until::Elapsed(Duration::from_secs(settings.seconds));
    let c = settings.concurrency;

    seed(network, client, settings, report).await?;

    for (index, child) in network.children.iter().enumerate() {
        eprintln!(
            "[{name}] POST {FETCH_LOCAL} on instance {} directly ({} s) ...",
            index + 1,
            settings.seconds
        );
        let url = child.url(FETCH_LOCAL);
        let measured = load::run_inspected(
            client,
            c,
            timed,
            move |client, n| {
                // `cache_ttl_seconds` is accepted and ignored: distinct bodies, same page.
                client.post(&url).json(&json!({
                    "item_network": NETWORK, "item_domain": DOMAIN,
                    "limit": LIMIT, "offset": 0, "cache_ttl_seconds": n
                }))
            },
            check_local_page,
        )
        .await?;
        report.measurements.push((Op::LocalPage(index), measured));
    }

    eprintln!(
        "[{name}] GET /health/live on instance 1 ({} s) ...",
        settings.seconds
    );
    let live = aggregator.url("/health/live");
    let measured = load::run(client, c, timed, move |client, _| client.get(&live)).await?;
    report.measurements.push((Op::Baseline, measured));

    let all = Tagging {
        urls: Arc::new(network.public_urls.clone()),
        watched: None,
    };
    eprintln!(
        "[{name}] GET {FETCH}, cache hit ({} s) ...",
        settings.seconds
    );
    let hit = base_query(aggregator);
    // The first read fills the cache; the measured ones find the page there.
    let warm = read_page(client, &hit).await?;
    // Parsed once: the load generator then only copies it per request.
    let hit: reqwest::Url = hit.parse().context("the cache-hit URL")?;
    if warm.partial {
        report.notes.push(format!(
            "{name}: the page of the cache-hit phase was partial when cached."
        ));
    }
    let measured = with_page_misses(aggregator, client, async {
        load::run_inspected(
            client,
            c,
            timed,
            move |client, _| client.get(hit.clone()),
            page_kind,
        )
        .await
    })
    .await?;
    report.measurements.push((Op::CacheHit, measured));

    let names = Miss::Name {
        names: settings.items_per_instance,
    };
    for (op, miss) in [(Op::CacheMiss, Miss::Ttl), (Op::IdMiss, Miss::Id)] {
        settle(aggregator, client, &ttls, &all, op, report).await?;
        eprintln!(
            "[{name}] GET {FETCH}, cache miss: {} ({} s) ...",
            miss.describe(),
            settings.seconds
        );
        let measured = miss_phase(aggregator, client, c, timed, &ttls, miss, all.clone()).await?;
        report.measurements.push((op, measured));
    }

    settle(aggregator, client, &ttls, &all, Op::CursorPage1, report).await?;
    cursor_phases(aggregator, client, &ttls, report).await?;

    // Last of the healthy reads: it may overload the peers past their deadline.
    settle(aggregator, client, &ttls, &all, Op::NameMiss, report).await?;
    eprintln!(
        "[{name}] GET {FETCH}, cache miss: {} ({} s) ...",
        names.describe(),
        settings.seconds
    );
    let measured = miss_phase(aggregator, client, c, timed, &ttls, names, all.clone()).await?;
    report.measurements.push((Op::NameMiss, measured));

    let proxy = network
        .proxy
        .as_ref()
        .ok_or_else(|| anyhow!("instance 3 has no fault proxy"))?;
    let watched = Tagging {
        watched: Some(PROXIED),
        ..all.clone()
    };
    for (op, miss) in [(Op::BlackHole, Miss::Ttl), (Op::BlackHoleId, Miss::Id)] {
        settle(aggregator, client, &ttls, &all, op, report).await?;
        eprintln!(
            "[{name}] instance 3 black-holed; cache miss: {} ({} s) ...",
            miss.describe(),
            settings.seconds
        );
        proxy.set(Fault::BlackHole);
        let measured = miss_phase(aggregator, client, c, timed, &ttls, miss, watched.clone()).await;
        proxy.set(Fault::Pass);
        report.measurements.push((op, measured?));
    }
    Ok(())
}

/// The network of ten: seed, then cache misses as in the network of three.
pub async fn measure_ten(
    dpg: &Path,
    dev_network: &Path,
    client: &reqwest::Client,
    settings: NetworkSettings,
    report: &mut NetworkReport,
) -> anyhow::Result<()> {
    let name = report.name.clone();
    eprintln!("[{name}] starting 10 instances ...");
    let network = BenchNetwork::start(dpg, dev_network, 10, None, Trust::Default, client).await?;
    eprintln!("[{name}] ready (pids {})", network.pids());
    let measured = async {
        let ttls = Ttls::new();
        let aggregator = network.aggregator()?;
        let timed = Until::Elapsed(Duration::from_secs(settings.seconds));
        seed(&network, client, settings, report).await?;
        eprintln!(
            "[{name}] GET {FETCH}, cache miss: distinct cache_ttl_seconds ({} s) ...",
            settings.seconds
        );
        let tagging = Tagging {
            urls: Arc::new(network.public_urls.clone()),
            watched: None,
        };
        let measured = miss_phase(
            aggregator,
            client,
            settings.concurrency,
            timed,
            &ttls,
            Miss::Ttl,
            tagging,
        )
        .await?;
        report.measurements.push((Op::CacheMiss, measured));
        anyhow::Ok(())
    }
    .await;
    let stopped = network.stop(&name).await;
    measured?;
    stopped
}

/// Creates `report.items_per_instance` items on every instance through its own create route,
/// item n on instance n % size, so that creation times interleave across the instances.
pub async fn seed(
    network: &BenchNetwork,
    client: &reqwest::Client,
    settings: NetworkSettings,
    report: &mut NetworkReport,
) -> anyhow::Result<()> {
    let size = network.children.len() as u64;
    let total = report.items_per_instance * size;
    eprintln!(
        "[{}] seeding {} items per instance ({total} creates) ...",
        report.name, report.items_per_instance
    );
    let urls: Vec<String> = network.children.iter().map(|c| c.url(CREATE)).collect();
    let measured = load::run(
        client,
        settings.concurrency,
        Until::Requests(total),
        move |client, n| {
            let k = n / size;
            let url = usize::try_from(n % size)
                .ok()
                .and_then(|index| urls.get(index))
                .map_or("", String::as_str);
            client
                .post(url)
                .header("x-dev-user-id", format!("u{}", k % USERS))
                .json(&create_body(k))
        },
    )
    .await?;
    let failed = measured.errors;
    report.measurements.push((Op::Seed, measured));
    if failed > 0 {
        bail!("{failed} of {total} creates failed; the reads would not be comparable");
    }
    Ok(())
}

/// `GET /api/v1/network/item/fetch?item_network=yellow_dot&item_domain=student&limit=20`.
fn base_query(aggregator: &DpgChild) -> String {
    format!(
        "{}?item_network={NETWORK}&item_domain={DOMAIN}&limit={LIMIT}",
        aggregator.url(FETCH)
    )
}

impl Miss {
    pub fn describe(self) -> &'static str {
        match self {
            Miss::Ttl => "distinct cache_ttl_seconds",
            Miss::Name { .. } => "distinct item_state[name] filters",
            Miss::Id => "distinct item_id filters (no such item)",
        }
    }
}

/// Cache misses of the base query, each request with its own `cache_ttl_seconds` and, per
/// `miss`, its own filter; answers tagged per `tagging`.
pub async fn miss_phase(
    aggregator: &DpgChild,
    client: &reqwest::Client,
    concurrency: usize,
    until: Until,
    ttls: &Ttls,
    miss: Miss,
    tagging: Tagging,
) -> anyhow::Result<Measured> {
    let base = base_query(aggregator);
    let first = ttls.block();
    with_page_misses(aggregator, client, async {
        load::run_inspected(
            client,
            concurrency,
            until,
            move |client, n| {
                let ttl = first + n;
                client.get(match miss {
                    Miss::Ttl => format!("{base}&cache_ttl_seconds={ttl}"),
                    Miss::Name { names } => format!(
                        "{base}&cache_ttl_seconds={ttl}&item_state[name]=S{}",
                        n % names.max(1)
                    ),
                    Miss::Id => {
                        format!("{base}&cache_ttl_seconds={ttl}&item_id={}", Uuid::new_v4())
                    }
                })
            },
            move |body| inspect_page(body, &tagging),
        )
        .await
    })
    .await
}

/// Runs `phase` and records the aggregator's `network-page` cache misses during it.
async fn with_page_misses(
    aggregator: &DpgChild,
    client: &reqwest::Client,
    phase: impl std::future::Future<Output = anyhow::Result<Measured>>,
) -> anyhow::Result<Measured> {
    let before = page_misses(aggregator, client).await;
    let mut measured = phase.await?;
    let after = page_misses(aggregator, client).await;
    measured.cache_misses = before.zip(after).map(|(b, a)| a.saturating_sub(b));
    Ok(measured)
}

async fn page_misses(child: &DpgChild, client: &reqwest::Client) -> Option<u64> {
    child
        .counter(
            client,
            "dpg_cache_misses_total",
            "keyspace=\"network-page\"",
        )
        .await
}

/// How network pages are tagged: every instance's public URL, and the one watched.
#[derive(Debug, Clone)]
pub struct Tagging {
    pub urls: Arc<Vec<String>>,
    pub watched: Option<usize>,
}

/// The tag of a network page: its kind (`complete`, `partial` or `stale`), the watched
/// instance's status in `meta.peers` (`-` when none is watched), and the other instances
/// whose status is not `ok` (`instance <n> <status>`, comma-separated; empty when none).
pub fn tag(kind: &str, watched: &str, others: &str) -> String {
    format!("{kind}|{watched}|{others}")
}

/// The three parts of a [`tag`].
pub fn untag(tag: &str) -> (&str, &str, &str) {
    let mut parts = tag.splitn(3, '|');
    (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or("-"),
        parts.next().unwrap_or_default(),
    )
}

/// What the load generator reads of a page. The whole body is still parsed as JSON, but items
/// are only counted, not built: the generator shares the CPUs of the instances it measures.
#[derive(serde::Deserialize)]
struct PageView<'a> {
    #[serde(borrow, default)]
    meta: MetaView<'a>,
    items: Vec<serde::de::IgnoredAny>,
}

#[derive(Default, serde::Deserialize)]
struct MetaView<'a> {
    #[serde(default)]
    stale: Option<bool>,
    #[serde(default)]
    partial: Option<bool>,
    #[serde(borrow, default)]
    peers: Vec<PeerView<'a>>,
}

#[derive(serde::Deserialize)]
struct PeerView<'a> {
    #[serde(borrow)]
    instance_url: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    status: std::borrow::Cow<'a, str>,
}

fn page_view(body: &[u8]) -> Result<PageView<'_>, String> {
    serde_json::from_slice(body).map_err(|error| format!("answer is not a page: {error}"))
}

/// Checks a network page (`items` at most [`LIMIT`], a `meta`) and tags it.
pub fn inspect_page(body: &[u8], tagging: &Tagging) -> Result<Option<String>, String> {
    let page = page_view(body)?;
    if page.items.len() > LIMIT as usize {
        return Err(format!("{} items on a page of {LIMIT}", page.items.len()));
    }
    let meta = &page.meta;
    let kind = if meta.stale == Some(true) {
        "stale"
    } else if meta.partial == Some(true) {
        "partial"
    } else {
        "complete"
    };
    let status_of = |url: &str| {
        meta.peers
            .iter()
            .find(|peer| peer.instance_url == url)
            .map_or("not listed", |peer| &*peer.status)
    };
    let watched = match tagging.watched.and_then(|index| tagging.urls.get(index)) {
        Some(url) => status_of(url),
        None => "-",
    };
    let others: Vec<String> = tagging
        .urls
        .iter()
        .enumerate()
        .filter(|(index, _)| Some(*index) != tagging.watched)
        .filter_map(|(index, url)| {
            let status = status_of(url);
            (status != "ok").then(|| format!("instance {} {status}", index + 1))
        })
        .collect();
    Ok(Some(tag(kind, watched, &others.join(", "))))
}

/// Tags a network page by its kind only, found by searching the body rather than parsing
/// it, so that the load generator spends little of the machine's CPU on cache hits.
fn page_kind(body: &[u8]) -> Result<Option<String>, String> {
    let has = |needle: &[u8]| memchr::memmem::find(body, needle).is_some();
    if !has(b"\"items\":[") {
        return Err("answer has no items array".to_string());
    }
    let kind = if has(b"\"stale\":true") {
        "stale"
    } else if has(b"\"partial\":true") {
        "partial"
    } else {
        "complete"
    };
    Ok(Some(tag(kind, "-", "")))
}

/// Checks a local page: `limit` items (every instance holds far more).
fn check_local_page(body: &[u8]) -> Result<Option<String>, String> {
    let page = page_view(body)?;
    match page.items.len() {
        n if n == LIMIT as usize => Ok(None),
        n => Err(format!("{n} items on a local page of {LIMIT}")),
    }
}

/// One network page read on its own.
struct Page {
    latency_us: u64,
    partial: bool,
    next_cursor: Option<String>,
    item_ids: Vec<String>,
}

async fn read_page(client: &reqwest::Client, url: &str) -> anyhow::Result<Page> {
    let sent = Instant::now();
    let response = client.get(url).send().await.context("request failed")?;
    let status = response.status();
    let body = response.bytes().await.context("body not read")?;
    let latency_us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
    if !status.is_success() {
        let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
        bail!("HTTP {status}: {text}");
    }
    let page: Value = serde_json::from_slice(&body).context("the answer is not JSON")?;
    let item_ids = page["items"]
        .as_array()
        .ok_or_else(|| anyhow!("the answer has no items array"))?
        .iter()
        .map(|item| item["item_id"].as_str().unwrap_or_default().to_string())
        .collect();
    Ok(Page {
        latency_us,
        partial: page["meta"]["partial"].as_bool() == Some(true),
        next_cursor: page["meta"]["next_cursor"].as_str().map(str::to_string),
        item_ids,
    })
}

/// Sequential samples gathered into a [`Measured`].
#[derive(Default)]
struct Samples {
    latencies_us: Vec<u64>,
    errors: u64,
    error_samples: Vec<String>,
    tags: BTreeMap<String, Vec<u64>>,
}

impl Samples {
    fn ok(&mut self, page: &Page) {
        self.latencies_us.push(page.latency_us);
        let kind = if page.partial { "partial" } else { "complete" };
        self.tags
            .entry(tag(kind, "-", ""))
            .or_default()
            .push(page.latency_us);
    }

    fn failed(&mut self, error: &anyhow::Error) {
        self.errors += 1;
        if self.error_samples.len() < 5 {
            self.error_samples.push(format!("{error:#}"));
        }
    }

    fn into_measured(mut self, elapsed: Duration) -> Measured {
        self.latencies_us.sort_unstable();
        for latencies in self.tags.values_mut() {
            latencies.sort_unstable();
        }
        Measured {
            requests: self.latencies_us.len() as u64 + self.errors,
            errors: self.errors,
            elapsed,
            latencies_us: self.latencies_us,
            error_samples: self.error_samples,
            cache_misses: None,
            instance_cpu_us: None,
            tags: self.tags,
        }
    }
}

/// [`WALKS`] cursor walks of [`WALK_PAGES`] pages, one after the other, each with its own
/// `cache_ttl_seconds` (so every page misses); then page 100 by `offset`, as often.
async fn cursor_phases(
    aggregator: &DpgChild,
    client: &reqwest::Client,
    ttls: &Ttls,
    report: &mut NetworkReport,
) -> anyhow::Result<()> {
    eprintln!(
        "[{}] {WALKS} cursor walks of {WALK_PAGES} pages, one after the other ...",
        report.name
    );
    let base = base_query(aggregator);
    let first = ttls.block();
    let (mut page1, mut page100) = (Samples::default(), Samples::default());
    let started = Instant::now();
    let mut page100_ids: Option<Vec<String>> = None;
    let mut short_walks = 0;
    for walk in 0..WALKS as u64 {
        let mut cursor: Option<String> = None;
        for number in 1..=WALK_PAGES {
            let mut url = format!("{base}&cache_ttl_seconds={}", first + walk);
            if let Some(cursor) = &cursor {
                url.push_str("&cursor=");
                url.extend(url::form_urlencoded::byte_serialize(cursor.as_bytes()));
            }
            let samples = match number {
                1 => Some(&mut page1),
                WALK_PAGES => Some(&mut page100),
                _ => None,
            };
            match read_page(client, &url).await {
                Ok(page) => {
                    if let Some(samples) = samples {
                        samples.ok(&page);
                    }
                    if number == WALK_PAGES && page100_ids.is_none() {
                        page100_ids = Some(page.item_ids.clone());
                    }
                    match page.next_cursor {
                        Some(next) => cursor = Some(next),
                        None if number < WALK_PAGES => {
                            short_walks += 1;
                            break;
                        }
                        None => {}
                    }
                }
                Err(error) => {
                    if let Some(samples) = samples {
                        samples.failed(&error);
                    } else {
                        page100.failed(&error.context(format!("page {number} of a walk")));
                    }
                    break;
                }
            }
        }
    }
    let elapsed = started.elapsed();
    if short_walks > 0 {
        report.notes.push(format!(
            "{}: {short_walks} cursor walk(s) ended before page {WALK_PAGES} (no \
             meta.next_cursor).",
            report.name
        ));
    }
    report
        .measurements
        .push((Op::CursorPage1, page1.into_measured(elapsed)));
    report
        .measurements
        .push((Op::CursorPage100, page100.into_measured(elapsed)));

    eprintln!(
        "[{}] page {WALK_PAGES} by offset={OFFSET_PAGE_100}, {WALKS} times ...",
        report.name
    );
    let first = ttls.block();
    let mut offset = Samples::default();
    let started = Instant::now();
    let mut differing = 0;
    for n in 0..WALKS as u64 {
        let url = format!(
            "{base}&offset={OFFSET_PAGE_100}&cache_ttl_seconds={}",
            first + n
        );
        match read_page(client, &url).await {
            Ok(page) => {
                if page100_ids
                    .as_ref()
                    .is_some_and(|ids| *ids != page.item_ids)
                {
                    differing += 1;
                }
                offset.ok(&page);
            }
            Err(error) => offset.failed(&error),
        }
    }
    if differing > 0 {
        report.notes.push(format!(
            "{}: page {WALK_PAGES} by offset={OFFSET_PAGE_100} held other items than page \
             {WALK_PAGES} of the first cursor walk in {differing} of {WALKS} reads (no item \
             was written meanwhile).",
            report.name
        ));
    }
    report
        .measurements
        .push((Op::OffsetPage100, offset.into_measured(started.elapsed())));
    Ok(())
}

/// [`close_breakers`] before `op`, noting in the report when it had to wait.
async fn settle(
    aggregator: &DpgChild,
    client: &reqwest::Client,
    ttls: &Ttls,
    tagging: &Tagging,
    op: Op,
    report: &mut NetworkReport,
) -> anyhow::Result<()> {
    if let Some((waited, seen)) = close_breakers(aggregator, client, ttls, tagging).await? {
        eprintln!(
            "[{}] waited {:.1} s for every instance to answer ok ({seen})",
            report.name,
            waited.as_secs_f64()
        );
        report.notes.push(format!(
            "{}: before \"{}\", waited {:.1} s until every instance answered `ok` again \
             (first probe: {seen}).",
            report.name,
            label(op, report.instances),
            waited.as_secs_f64()
        ));
    }
    Ok(())
}

/// Before a measurement: reads pages whose counts are never cached (a random `item_id`, so
/// every breaker is consulted and an open one lets its probe through once its time is up)
/// until every instance answers `ok`. Returns the time waited when some breaker was open.
async fn close_breakers(
    aggregator: &DpgChild,
    client: &reqwest::Client,
    ttls: &Ttls,
    tagging: &Tagging,
) -> anyhow::Result<Option<(Duration, String)>> {
    let base = base_query(aggregator);
    let first = ttls.block();
    let started = Instant::now();
    let mut n = 0u64;
    let mut first_seen: Option<String> = None;
    while started.elapsed() < BREAKER_RESET_TIMEOUT {
        let url = format!(
            "{base}&cache_ttl_seconds={}&item_id={}",
            first + n,
            Uuid::new_v4()
        );
        n += 1;
        let response = client.get(&url).send().await.context("request failed")?;
        let body = response.bytes().await.context("body not read")?;
        let others = match inspect_page(&body, tagging) {
            Ok(Some(tag)) => untag(&tag).2.to_string(),
            Ok(None) | Err(_) => "no page".to_string(),
        };
        if others.is_empty() {
            return Ok(first_seen.map(|seen| (started.elapsed(), seen)));
        }
        first_seen.get_or_insert(others);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!(
        "the breakers did not close within {} s (not ok: {})",
        BREAKER_RESET_TIMEOUT.as_secs(),
        first_seen.unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagging(watched: Option<usize>) -> Tagging {
        Tagging {
            urls: Arc::new(vec![
                "http://a".into(),
                "http://b".into(),
                "http://c".into(),
            ]),
            watched,
        }
    }

    #[test]
    fn pages_are_tagged_by_kind_and_peer_status() {
        let body = br#"{"meta":{"total":2,"partial":true,"stale":false,"peers":[
            {"instance_url":"http://a","status":"ok"},
            {"instance_url":"http:\/\/b","status":"timeout"}]},
            "items":[{"item_id":"x","item_state":{"k":[1,2]}},{}]}"#;
        assert_eq!(
            inspect_page(body, &tagging(Some(1))).expect("a page"),
            Some(tag("partial", "timeout", "instance 3 not listed"))
        );
        let stale = br#"{"meta":{"stale":true,"partial":true},"items":[]}"#;
        assert_eq!(
            inspect_page(stale, &tagging(None)),
            Ok(Some(tag(
                "stale",
                "-",
                "instance 1 not listed, instance 2 not listed, instance 3 not listed"
            )))
        );
    }

    #[test]
    fn broken_or_oversized_pages_are_errors() {
        assert!(inspect_page(b"{\"items\":[", &tagging(None)).is_err());
        assert!(inspect_page(br#"{"meta":{}}"#, &tagging(None)).is_err());
        let many = format!("{{\"items\":[{}]}}", vec!["1"; 21].join(","));
        assert_eq!(
            inspect_page(many.as_bytes(), &tagging(None)),
            Err("21 items on a page of 20".to_string())
        );
        let twenty = format!("{{\"items\":[{}]}}", vec!["{}"; 20].join(","));
        assert_eq!(check_local_page(twenty.as_bytes()), Ok(None));
        assert!(check_local_page(br#"{"items":[{}]}"#).is_err());
    }
}
