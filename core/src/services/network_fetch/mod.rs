//! Network-wide reads (`GET /api/v1/network/item/fetch`): count on every instance of the
//! domain in parallel, fetch from the contributing ones, merge into the one global order.
//!
//! Survives its peers: per-peer deadlines (in the transport) and a total deadline, a circuit
//! breaker per peer, partial pages with per-peer status, the last complete page when nobody
//! answers, single-flight on cache misses, untrusted answers checked.

mod breaker;
mod cursor;
mod document;
mod peers;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt, Shared};
use sha2::{Digest, Sha256};

pub use breaker::{Breaker, BreakerSettings, BreakerState};
pub use cursor::NetworkCursor;
pub use document::{PeerReport, PeerStatus};
pub use peers::{Peer, check_item, peers_of};

use self::document::{NetworkMeta, PageItem, encode_page, mark_stale, strip_private};
use self::peers::PeersMemo;
use super::own_counts::OwnCounts;
use super::page_cache::{generation_of, network_generation_key, tagged, value_at};
use super::peer_items::refuse_private_filter;
use super::rate_limit::{Limit, RateLimiter};
use crate::error::CoreError;
use crate::model::{ClientInfo, InstanceIdentity, ItemFilter, ItemKey};
use crate::network::{CatalogHandle, NetworkCatalog};
use crate::ports::{Cache, Clock, ItemRepository, PeerError, PeerPage, PeerTransport, Timer};

/// A count above this is not believed: no instance holds ten billion items of one domain.
const MAX_BELIEVABLE_COUNT: u64 = 10_000_000_000;
/// Items asked of a peer per call when paging by offset (the reference's maximum limit).
const CHUNK: u32 = 100;
/// How often a replica waiting on another replica's fan-out looks for its page.
const FOLLOWER_POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct NetworkFetchSettings {
    /// Upper bound of a client's `cache_ttl_seconds`.
    pub max_cache_ttl: Duration,
    /// Lifetime of a partial page: short, so a recovered peer shows up quickly.
    pub partial_ttl: Duration,
    /// How old a complete page may be to stand in when no peer answers.
    pub stale_limit: Duration,
    /// Bound of one whole fan-out (count and fetch phases).
    pub total_deadline: Duration,
    pub breaker: BreakerSettings,
    /// Cache misses one client may cause (each costs calls to every peer).
    pub client_budget: Limit,
}

impl Default for NetworkFetchSettings {
    fn default() -> Self {
        NetworkFetchSettings {
            max_cache_ttl: Duration::from_secs(3600),
            partial_ttl: Duration::from_secs(5),
            stale_limit: Duration::from_secs(3600),
            total_deadline: Duration::from_secs(5),
            breaker: BreakerSettings::default(),
            client_budget: Limit::per(120, Duration::from_secs(60)),
        }
    }
}

pub struct NetworkFetchDeps {
    pub repository: Arc<dyn ItemRepository>,
    pub catalog: Arc<CatalogHandle>,
    pub identity: Arc<InstanceIdentity>,
    pub transport: Arc<dyn PeerTransport>,
    pub cache: Arc<dyn Cache>,
    pub clock: Arc<dyn Clock>,
    pub timer: Arc<dyn Timer>,
}

/// How the client pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    Offset(u32),
    Cursor(NetworkCursor),
}

#[derive(Debug, Clone)]
pub struct NetworkQuery {
    /// Without owner: network reads see every owner's items.
    pub filter: ItemFilter,
    pub limit: u32,
    pub paging: Paging,
    pub cache_ttl_seconds: Option<u64>,
    pub request_id: String,
    pub client: ClientInfo,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NetworkOutcome {
    /// The page document.
    Page(Vec<u8>),
    /// No instance answered and no recent page stands in.
    NoPeer {
        peers: Vec<PeerReport>,
        retry_after_secs: u64,
    },
}

type Flight = Shared<BoxFuture<'static, Result<Arc<NetworkOutcome>, CoreError>>>;

pub struct NetworkFetchService {
    deps: NetworkFetchDeps,
    settings: NetworkFetchSettings,
    limiter: RateLimiter,
    breakers: Mutex<HashMap<String, Breaker>>,
    /// Peers that answered `fetch_local` with `meta.next_cursor`.
    cursor_capable: Mutex<HashSet<String>>,
    in_flight: Mutex<HashMap<String, Flight>>,
    own_counts: OwnCounts,
    peers: PeersMemo,
}

/// One peer's contribution to a fan-out.
struct PeerOutcome {
    report: PeerReport,
    items: Vec<PageItem>,
}

impl NetworkFetchService {
    pub fn new(deps: NetworkFetchDeps, settings: NetworkFetchSettings) -> Self {
        let limiter = RateLimiter::new(deps.cache.clone(), deps.clock.clone());
        let own_counts = OwnCounts::new(deps.repository.clone(), deps.cache.clone());
        NetworkFetchService {
            own_counts,
            deps,
            settings,
            limiter,
            breakers: Mutex::new(HashMap::new()),
            cursor_capable: Mutex::new(HashSet::new()),
            in_flight: Mutex::new(HashMap::new()),
            peers: PeersMemo::default(),
        }
    }

    /// Breaker state of every peer called so far, for metrics.
    pub fn breaker_states(&self) -> Vec<(String, &'static str)> {
        lock(&self.breakers)
            .iter()
            .map(|(peer, b)| (peer.clone(), b.state.name()))
            .collect()
    }

    pub async fn fetch(self: &Arc<Self>, query: NetworkQuery) -> Result<NetworkOutcome, CoreError> {
        let catalog = self.deps.catalog.current();
        let domain = catalog.domain(&query.filter.network, &query.filter.domain)?;
        let minimum = domain.minimum_cache_ttl_seconds;
        refuse_private_filter(&catalog, &query.filter)?;
        query.filter.check_text()?;
        if query.filter.created_by.is_some() {
            return Err(CoreError::internal("network reads are never owner-scoped"));
        }
        let requested = query.cache_ttl_seconds.unwrap_or(minimum);
        let ttl =
            Duration::from_secs(minimum.max(requested.min(self.settings.max_cache_ttl.as_secs())));
        let key = page_key(&query, ttl);
        let (generation, page) = self.lookup(&query.filter, &key).await;
        if let Some(page) = page {
            return Ok(NetworkOutcome::Page(page));
        }
        // Joining a fan-out already under way is free; starting one costs the client budget.
        let existing = lock(&self.in_flight).get(&key).cloned();
        let flight = match existing {
            Some(flight) => flight,
            None => {
                if let Some(ip) = &query.client.ip {
                    self.limiter
                        .hit(
                            &format!("network-fetch:ip:{ip}"),
                            self.settings.client_budget,
                        )
                        .await?;
                }
                let mut in_flight = lock(&self.in_flight);
                match in_flight.get(&key) {
                    Some(flight) => flight.clone(),
                    None => {
                        let this = self.clone();
                        let (key_for_flight, catalog) = (key.clone(), catalog.clone());
                        let flight = async move {
                            this.fan_out_once(&catalog, query, ttl, &key_for_flight, generation)
                                .await
                                .map(Arc::new)
                        }
                        .boxed()
                        .shared();
                        in_flight.insert(key.clone(), flight.clone());
                        flight
                    }
                }
            }
        };
        let result = flight.await;
        lock(&self.in_flight).remove(&key);
        result.map(|outcome| (*outcome).clone())
    }

    /// One fan-out per key across replicas: a replica that finds another one's lock waits
    /// for its page (within the total deadline) before doing the work itself.
    async fn fan_out_once(
        &self,
        catalog: &Arc<NetworkCatalog>,
        query: NetworkQuery,
        ttl: Duration,
        key: &str,
        generation: Option<String>,
    ) -> Result<NetworkOutcome, CoreError> {
        // Within one process the in-flight map already makes it one fan-out.
        let lock_key = (generation.is_some() && self.deps.cache.shared_across_processes())
            .then(|| format!("{key}:lock"));
        if let (Some(generation), Some(lock_key)) = (&generation, &lock_key)
            && let Ok(false) = self
                .deps
                .cache
                .set_if_absent(lock_key, b"1", self.settings.total_deadline)
                .await
        {
            let waited_until = Instant::now() + self.settings.total_deadline;
            while Instant::now() < waited_until {
                self.deps.timer.sleep(FOLLOWER_POLL).await;
                if let Some(page) = self.cached_page(key, generation).await {
                    return Ok(NetworkOutcome::Page(page));
                }
            }
        }
        let outcome = self
            .fan_out(catalog, &query, ttl, key, generation.as_deref())
            .await;
        if let Some(lock_key) = &lock_key {
            let _ = self.deps.cache.delete(lock_key).await;
        }
        outcome
    }

    async fn fan_out(
        &self,
        catalog: &Arc<NetworkCatalog>,
        query: &NetworkQuery,
        ttl: Duration,
        key: &str,
        generation: Option<&str>,
    ) -> Result<NetworkOutcome, CoreError> {
        let started = Instant::now();
        let deadline = started + self.settings.total_deadline;
        // Half of the total for counting, so a peer that hangs there leaves time to fetch.
        let count_deadline = started + self.settings.total_deadline / 2;
        let peers = self.peers.of(catalog, &query.filter, &self.deps.identity)?;
        let counts = futures::future::join_all(
            peers
                .iter()
                .map(|peer| self.count_phase(peer, query, ttl, count_deadline, generation)),
        )
        .await;
        let answered = counts
            .iter()
            .any(|(report, _)| report.status == PeerStatus::Ok);
        if !peers.is_empty() && !answered {
            let reports = counts.into_iter().map(|(report, _)| report).collect();
            return self.stale_or_nothing(key, reports).await;
        }
        let total = counts
            .iter()
            .filter_map(|(_, count)| *count)
            .fold(0u64, u64::saturating_add);
        let fetches =
            futures::future::join_all(peers.iter().zip(counts).map(|(peer, (report, count))| {
                self.fetch_phase(peer, report, count, query, deadline)
            }))
            .await;
        let partial = fetches.iter().any(|o| o.report.status != PeerStatus::Ok);
        let reports: Vec<PeerReport> = fetches.iter().map(|o| o.report.clone()).collect();
        let (items, next_cursor) = merge(fetches, &peers, query);
        let items = strip_private(catalog, items);
        let offset = match query.paging {
            Paging::Offset(offset) => offset,
            Paging::Cursor(_) => 0,
        };
        let meta = NetworkMeta {
            total,
            limit: query.limit,
            offset,
            partial,
            stale: false,
            peers: reports,
            next_cursor: next_cursor.map(|c| c.encode()),
        };
        let page = encode_page(&meta, &items)?;
        if let Some(generation) = generation {
            self.store(key, generation, &page, partial, ttl).await;
        }
        Ok(NetworkOutcome::Page(page))
    }

    async fn count_phase(
        &self,
        peer: &Peer,
        query: &NetworkQuery,
        ttl: Duration,
        deadline: Instant,
        generation: Option<&str>,
    ) -> (PeerReport, Option<u64>) {
        let started = Instant::now();
        let report = |status: PeerStatus, count: Option<u64>| PeerReport {
            instance_url: peer.url.clone(),
            status,
            count,
            latency_ms: started.elapsed().as_millis() as u64,
        };
        let filter = &query.filter;
        if peer.is_self {
            if !self
                .deps
                .identity
                .served
                .contains(&filter.network, &filter.domain)
            {
                return (report(PeerStatus::Skipped, None), None);
            }
            let count = self.own_counts.count_at(filter, generation);
            return match self.before(deadline, count).await {
                Some(Ok(count)) => (report(PeerStatus::Ok, Some(count)), Some(count)),
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "own count failed during a network read");
                    (report(PeerStatus::Error, None), None)
                }
                None => {
                    tracing::warn!("own count missed the network read's deadline");
                    (report(PeerStatus::Timeout, None), None)
                }
            };
        }
        let count_key = format!(
            "network-count:{}:{}:{}:{}",
            filter.network,
            filter.domain,
            peer.key,
            filter.fingerprint()
        );
        if let Ok(Some(raw)) = self.deps.cache.get(&count_key).await
            && let Some(count) = std::str::from_utf8(&raw)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
        {
            // A known count does not make a dead peer worth waiting for in the fetch phase.
            if self.refused(peer) {
                return (report(PeerStatus::CircuitOpen, None), None);
            }
            return (report(PeerStatus::Ok, Some(count)), Some(count));
        }
        if !self.allow(peer) {
            return (report(PeerStatus::CircuitOpen, None), None);
        }
        let call = self
            .deps
            .transport
            .count_local(&peer.url, filter, &query.request_id);
        let result = match self.within(deadline, call).await {
            Ok(count) if count > MAX_BELIEVABLE_COUNT => Err(PeerError::Invalid(format!(
                "count {count} is not believable"
            ))),
            other => other,
        };
        self.record(peer, &result);
        match result {
            Ok(count) => {
                let _ = self
                    .deps
                    .cache
                    .set(&count_key, count.to_string().as_bytes(), ttl)
                    .await;
                (report(PeerStatus::Ok, Some(count)), Some(count))
            }
            Err(err) => (report(PeerStatus::from(&err), None), None),
        }
    }

    async fn fetch_phase(
        &self,
        peer: &Peer,
        mut report: PeerReport,
        count: Option<u64>,
        query: &NetworkQuery,
        deadline: Instant,
    ) -> PeerOutcome {
        let nothing = |report: PeerReport| PeerOutcome {
            report,
            items: Vec::new(),
        };
        let Some(count) = count.filter(|c| *c > 0) else {
            return nothing(report);
        };
        let started = Instant::now();
        let result = if peer.is_self {
            self.own_items(query, count, deadline).await
        } else {
            self.peer_items(peer, query, count, deadline).await
        };
        report.latency_ms += started.elapsed().as_millis() as u64;
        match result {
            Ok(items) => PeerOutcome { report, items },
            Err(status) => {
                report.status = status;
                nothing(report)
            }
        }
    }

    async fn own_items(
        &self,
        query: &NetworkQuery,
        count: u64,
        deadline: Instant,
    ) -> Result<Vec<PageItem>, PeerStatus> {
        let (after, limit) = match &query.paging {
            Paging::Offset(offset) => (None, want(*offset, query.limit, count)),
            Paging::Cursor(cursor) => (cursor.after, query.limit),
        };
        let find = self.deps.repository.find_after(&query.filter, after, limit);
        match self.before(deadline, find).await {
            Some(Ok(items)) => Ok(items.into_iter().map(PageItem::Own).collect()),
            Some(Err(err)) => {
                tracing::warn!(error = %err, "own items failed during a network read");
                Err(PeerStatus::Error)
            }
            None => {
                tracing::warn!("own items missed the network read's deadline");
                Err(PeerStatus::Timeout)
            }
        }
    }

    async fn peer_items(
        &self,
        peer: &Peer,
        query: &NetworkQuery,
        count: u64,
        deadline: Instant,
    ) -> Result<Vec<PageItem>, PeerStatus> {
        let pages: Vec<PeerPage> = match &query.paging {
            Paging::Offset(offset) => {
                let wanted = want(*offset, query.limit, count);
                (0..wanted)
                    .step_by(CHUNK as usize)
                    .map(|start| PeerPage {
                        limit: CHUNK.min(wanted - start),
                        offset: start,
                        cursor: None,
                    })
                    .collect()
            }
            Paging::Cursor(cursor) if self.is_cursor_capable(peer) => vec![PeerPage {
                limit: query.limit,
                offset: 0,
                cursor: cursor.after.map(ItemKey::to_cursor),
            }],
            Paging::Cursor(cursor) => vec![PeerPage {
                limit: query.limit,
                offset: cursor.consumed.get(&peer.key).copied().unwrap_or(0),
                cursor: None,
            }],
        };
        // Takes the probe of a breaker whose time is up; refuses while it is open.
        if !self.allow(peer) {
            return Err(PeerStatus::CircuitOpen);
        }
        let calls = pages.iter().map(|page| async move {
            let result = self
                .within(
                    deadline,
                    self.deps.transport.fetch_local(
                        &peer.url,
                        &query.filter,
                        page,
                        &query.request_id,
                    ),
                )
                .await;
            (page.limit, result)
        });
        let answers = futures::future::join_all(calls).await;
        let mut items = Vec::new();
        for (limit, answer) in answers {
            let answer = match answer {
                Ok(answer) => answer,
                Err(err) => {
                    self.record(peer, &Err::<(), _>(err.clone()));
                    return Err(PeerStatus::from(&err));
                }
            };
            if answer.items.len() > limit as usize {
                self.record(
                    peer,
                    &Err::<(), _>(PeerError::Invalid("too many items".into())),
                );
                tracing::warn!(peer = %peer.key, "peer sent more items than asked for");
                return Err(PeerStatus::Invalid);
            }
            if answer.cursor_capable {
                lock(&self.cursor_capable).insert(peer.key.clone());
            }
            for item in &answer.items {
                if let Err(reason) = check_item(item, peer, &query.filter) {
                    self.record(peer, &Err::<(), _>(PeerError::Invalid(reason.clone())));
                    tracing::warn!(peer = %peer.key, reason, "peer sent an invalid item");
                    return Err(PeerStatus::Invalid);
                }
            }
            items.extend(answer.items.into_iter().map(PageItem::Peer));
        }
        self.record(peer, &Ok::<(), PeerError>(()));
        Ok(items)
    }

    async fn within<T>(
        &self,
        deadline: Instant,
        call: impl std::future::Future<Output = Result<T, PeerError>>,
    ) -> Result<T, PeerError> {
        self.before(deadline, call)
            .await
            .unwrap_or(Err(PeerError::Timeout))
    }

    /// `call`'s output, or `None` when `deadline` passes first.
    async fn before<T>(
        &self,
        deadline: Instant,
        call: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return None;
        }
        futures::select_biased! {
            result = call.fuse() => Some(result),
            () = self.deps.timer.sleep(remaining).fuse() => None,
        }
    }

    fn refused(&self, peer: &Peer) -> bool {
        let now = self.deps.clock.now();
        lock(&self.breakers)
            .get(&peer.key)
            .is_some_and(|breaker| breaker.refuses(now))
    }

    fn allow(&self, peer: &Peer) -> bool {
        let now = self.deps.clock.now();
        lock(&self.breakers)
            .entry(peer.key.clone())
            .or_default()
            .allow(now)
    }

    /// A peer's refusal (4xx) says nothing about its health; everything else that failed does.
    fn record<T>(&self, peer: &Peer, result: &Result<T, PeerError>) {
        let healthy = match result {
            Ok(_) => true,
            Err(PeerError::Status(code)) => (400..500).contains(code),
            Err(_) => false,
        };
        let now = self.deps.clock.now();
        lock(&self.breakers)
            .entry(peer.key.clone())
            .or_default()
            .record(healthy, now, &self.settings.breaker);
    }

    fn is_cursor_capable(&self, peer: &Peer) -> bool {
        lock(&self.cursor_capable).contains(&peer.key)
    }

    /// This instance's write generation of the filter's domain and the page under `key` if
    /// it was stored at that generation, in one cache round trip. No generation when the
    /// cache is down: the read then goes uncached.
    async fn lookup(&self, filter: &ItemFilter, key: &str) -> (Option<String>, Option<Vec<u8>>) {
        let keys = [
            network_generation_key(&filter.network, &filter.domain),
            key.to_string(),
        ];
        let mut values = match self.deps.cache.get_many(&keys).await {
            Ok(values) => values.into_iter(),
            Err(err) => {
                tracing::warn!(error = %err, "cache unavailable; network read goes uncached");
                return (None, None);
            }
        };
        let Some(generation) = generation_of(values.next().flatten()) else {
            return (None, None);
        };
        let page = values
            .next()
            .flatten()
            .and_then(|stored| value_at(stored, &generation));
        (Some(generation), page)
    }

    async fn cached_page(&self, key: &str, generation: &str) -> Option<Vec<u8>> {
        let stored = self.deps.cache.get(key).await.ok()??;
        value_at(stored, generation)
    }

    async fn store(&self, key: &str, generation: &str, page: &[u8], partial: bool, ttl: Duration) {
        let value = tagged(page, generation);
        let ttl = if partial {
            ttl.min(self.settings.partial_ttl)
        } else {
            ttl
        };
        let _ = self.deps.cache.set(key, &value, ttl).await;
        if !partial {
            let _ = self
                .deps
                .cache
                .set(&stale_key(key), page, self.settings.stale_limit)
                .await;
        }
    }

    async fn stale_or_nothing(
        &self,
        key: &str,
        reports: Vec<PeerReport>,
    ) -> Result<NetworkOutcome, CoreError> {
        if let Ok(Some(page)) = self.deps.cache.get(&stale_key(key)).await
            && let Some(page) = mark_stale(&page, &reports)
        {
            return Ok(NetworkOutcome::Page(page));
        }
        let retry_after_secs = self.settings.breaker.open_for.as_secs().max(1);
        Ok(NetworkOutcome::NoPeer {
            peers: reports,
            retry_after_secs,
        })
    }
}

/// How many of a peer's first items an offset page may need.
fn want(offset: u32, limit: u32, count: u64) -> u32 {
    u32::try_from(count)
        .unwrap_or(u32::MAX)
        .min(offset.saturating_add(limit))
}

/// Merges every peer's items into the global order and cuts the page; returns the page and
/// the cursor of the next one (when the page is full).
fn merge(
    outcomes: Vec<PeerOutcome>,
    peers: &[Peer],
    query: &NetworkQuery,
) -> (Vec<PageItem>, Option<NetworkCursor>) {
    let mut all: Vec<(ItemKey, PageItem, usize)> = outcomes
        .into_iter()
        .enumerate()
        .flat_map(|(index, outcome)| {
            outcome
                .items
                .into_iter()
                .map(move |item| (item.key(), item, index))
        })
        .collect();
    all.sort_by(|a, b| a.0.order(&b.0));
    let limit = query.limit as usize;
    let (start, mut consumed) = match &query.paging {
        Paging::Offset(offset) => (*offset as usize, BTreeMap::new()),
        Paging::Cursor(cursor) => (0, cursor.consumed.clone()),
    };
    let end = (start + limit).min(all.len());
    let start = start.min(end);
    // Items taken so far from each peer, for peers paged by offset.
    let taken_from = match query.paging {
        Paging::Offset(_) => &all[..end],
        Paging::Cursor(_) => &all[start..end],
    };
    for (_, _, index) in taken_from {
        if let Some(peer) = peers.get(*index).filter(|p| !p.is_self) {
            *consumed.entry(peer.key.clone()).or_insert(0) += 1;
        }
    }
    all.truncate(end);
    let page: Vec<PageItem> = all.drain(start..).map(|(_, item, _)| item).collect();
    let next = (page.len() == limit).then(|| NetworkCursor {
        after: page.last().map(PageItem::key),
        consumed,
    });
    (page, next)
}

fn page_key(query: &NetworkQuery, ttl: Duration) -> String {
    let paging = match &query.paging {
        Paging::Offset(offset) => format!("o{offset}"),
        Paging::Cursor(cursor) => format!("c{}", cursor.encode()),
    };
    let digest = hex::encode(Sha256::digest(
        format!(
            "{}|{}|{}|{}",
            query.filter.fingerprint(),
            query.limit,
            paging,
            ttl.as_secs()
        )
        .as_bytes(),
    ));
    format!(
        "network-page:{}:{}:{digest}",
        query.filter.network, query.filter.domain
    )
}

fn stale_key(page_key: &str) -> String {
    format!("stale:{page_key}")
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl From<&PeerError> for PeerStatus {
    fn from(err: &PeerError) -> Self {
        match err {
            PeerError::Timeout => PeerStatus::Timeout,
            PeerError::Unreachable(_) | PeerError::Status(_) => PeerStatus::Error,
            PeerError::Invalid(_) => PeerStatus::Invalid,
        }
    }
}

#[cfg(test)]
mod tests;
