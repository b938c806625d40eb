//! The dispatcher against an in-memory outbox with leases, a scripted peer with an
//! idempotent receiver, and a manual clock that only moves when the dispatcher waits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::*;
use crate::model::{ItemFilter, OutboxState};
use crate::ports::{
    BatchAnswer, MockClock, MockOutbox, MockPeerTransport, PeerAnswer, PeerError, PeerPage,
    PeerPageAnswer, PeerTransport, Random, Timer,
};

const A: &str = "http://a.example.org";
const B: &str = "http://b.example.org";
const C: &str = "http://c.example.org";

fn start() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0).single().expect("time")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().expect("lock")
}

// ---------------------------------------------------------------- clock, timer, random

struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    fn advance(&self, by: Duration) {
        let mut now = lock(&self.0);
        *now += chrono::Duration::from_std(by).expect("duration");
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *lock(&self.0)
    }
}

/// Sleeping moves the manual clock forward in `step`s, letting other futures run between.
struct ManualTimer {
    clock: Arc<ManualClock>,
    step: Duration,
}

#[async_trait]
impl Timer for ManualTimer {
    async fn sleep(&self, duration: Duration) {
        let mut left = duration;
        loop {
            let step = left.min(self.step);
            self.clock.advance(step);
            left -= step;
            tokio::task::yield_now().await;
            if left.is_zero() {
                break;
            }
        }
    }
}

/// A deterministic xorshift generator; also the fake's source of failures.
struct Seeded(Mutex<u64>);

impl Seeded {
    fn new(seed: u64) -> Self {
        Seeded(Mutex::new(seed | 1))
    }
    fn next(&self) -> u64 {
        let mut x = lock(&self.0);
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }
    /// True with probability `percent` / 100.
    fn chance(&self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

impl Random for Seeded {
    fn up_to(&self, max: u64) -> u64 {
        self.next() % (max.saturating_add(1)).max(1)
    }
}

/// Always the ceiling: the longest wait the policy allows.
struct Longest;

impl Random for Longest {
    fn up_to(&self, max: u64) -> u64 {
        max
    }
}

// ---------------------------------------------------------------- in-memory outbox

#[derive(Clone)]
struct Row {
    entry: OutboxEntry,
    leased_until: Option<DateTime<Utc>>,
}

#[derive(Default)]
struct MemoryOutbox {
    rows: Mutex<Vec<Row>>,
    /// Percentage of `mark_delivered` calls that fail (a crash right after the send).
    mark_failures: u64,
    random: Option<Seeded>,
    /// Claims that fail before the storage "comes back".
    claim_outage: std::sync::atomic::AtomicU32,
    /// Every `claim_due` call.
    claims: std::sync::atomic::AtomicU32,
    /// Entries rewritten by `defer_destination`, in all.
    deferred: Mutex<u64>,
}

impl MemoryOutbox {
    fn add(&self, entry: OutboxEntry) {
        lock(&self.rows).push(Row {
            entry,
            leased_until: None,
        });
    }

    fn entries(&self) -> Vec<OutboxEntry> {
        lock(&self.rows).iter().map(|r| r.entry.clone()).collect()
    }

    fn in_state(&self, state: OutboxState) -> Vec<OutboxEntry> {
        self.entries()
            .into_iter()
            .filter(|e| e.state == state)
            .collect()
    }

    fn entry(&self, id: Uuid) -> OutboxEntry {
        self.entries()
            .into_iter()
            .find(|e| e.id == id)
            .expect("entry")
    }

    fn with<R>(&self, id: Uuid, f: impl FnOnce(&mut Row) -> R) -> Option<R> {
        lock(&self.rows)
            .iter_mut()
            .find(|r| r.entry.id == id)
            .map(f)
    }
}

#[async_trait]
impl Outbox for MemoryOutbox {
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
        skip: &[String],
    ) -> Result<Vec<OutboxEntry>, CoreError> {
        self.claims.fetch_add(1, Ordering::SeqCst);
        if self
            .claim_outage
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(CoreError::storage_unavailable());
        }
        let mut rows = lock(&self.rows);
        let mut due: Vec<&mut Row> = rows
            .iter_mut()
            .filter(|r| {
                r.entry.state == OutboxState::Pending
                    && !skip.contains(&r.entry.destination)
                    && r.entry.next_attempt_at <= now
                    && r.leased_until.is_none_or(|until| until <= now)
            })
            .collect();
        due.sort_by_key(|r| (r.entry.next_attempt_at, r.entry.created_at));
        Ok(due
            .into_iter()
            .take(limit as usize)
            .map(|r| {
                r.leased_until = Some(lease_until);
                r.entry.clone()
            })
            .collect())
    }

    async fn release(&self, ids: &[Uuid], due: DateTime<Utc>) -> Result<(), CoreError> {
        for id in ids {
            self.with(*id, |r| {
                r.leased_until = None;
                r.entry.next_attempt_at = due;
            });
        }
        Ok(())
    }

    async fn mark_delivered(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), CoreError> {
        if let Some(random) = &self.random
            && random.chance(self.mark_failures)
        {
            return Err(CoreError::storage_unavailable());
        }
        self.with(id, |r| {
            r.leased_until = None;
            r.entry.state = OutboxState::Delivered;
            r.entry.finished_at = Some(at);
        });
        Ok(())
    }

    async fn reschedule(
        &self,
        id: Uuid,
        attempts: u32,
        next_attempt_at: DateTime<Utc>,
        last_error: &str,
    ) -> Result<(), CoreError> {
        self.with(id, |r| {
            r.leased_until = None;
            r.entry.attempts = attempts;
            r.entry.next_attempt_at = next_attempt_at;
            r.entry.last_error = Some(last_error.to_string());
        });
        Ok(())
    }

    async fn dead_letter(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), CoreError> {
        self.with(id, |r| {
            r.leased_until = None;
            r.entry.state = OutboxState::Dead;
            r.entry.finished_at = Some(at);
            r.entry.last_error = Some(reason.to_string());
        });
        Ok(())
    }

    async fn defer_destination(
        &self,
        destination: &str,
        due_before: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<u64, CoreError> {
        let mut n = 0;
        for r in lock(&self.rows).iter_mut() {
            if r.entry.state == OutboxState::Pending
                && r.entry.destination == destination
                && r.entry.next_attempt_at < due_before
            {
                r.entry.next_attempt_at = until;
                n += 1;
            }
        }
        *lock(&self.deferred) += n;
        Ok(n)
    }

    async fn wake_destination(
        &self,
        destination: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, CoreError> {
        let mut n = 0;
        for r in lock(&self.rows).iter_mut() {
            if r.entry.state == OutboxState::Pending && r.entry.destination == destination {
                r.entry.next_attempt_at = now;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn redrive(
        &self,
        destination: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<u64, CoreError> {
        let mut n = 0;
        for r in lock(&self.rows).iter_mut() {
            if r.entry.state == OutboxState::Dead
                && destination
                    .as_ref()
                    .is_none_or(|d| *d == r.entry.destination)
            {
                r.entry.state = OutboxState::Pending;
                r.entry.attempts = 0;
                r.entry.next_attempt_at = now;
                r.entry.finished_at = None;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn counts(&self, now: DateTime<Utc>) -> Result<OutboxCounts, CoreError> {
        let entries = self.entries();
        let count = |s| entries.iter().filter(|e| e.state == s).count() as u64;
        Ok(OutboxCounts {
            pending: count(OutboxState::Pending),
            delivered: count(OutboxState::Delivered),
            dead: count(OutboxState::Dead),
            oldest_pending_seconds: entries
                .iter()
                .filter(|e| e.state == OutboxState::Pending)
                .map(|e| (now - e.created_at).num_seconds().max(0) as u64)
                .max(),
        })
    }

    async fn list_undelivered(&self, limit: u32) -> Result<Vec<OutboxEntry>, CoreError> {
        let mut out: Vec<_> = self
            .entries()
            .into_iter()
            .filter(|e| e.state != OutboxState::Delivered)
            .collect();
        out.sort_by_key(|e| std::cmp::Reverse(e.created_at));
        out.truncate(limit as usize);
        Ok(out)
    }

    async fn prune_delivered(&self, before: DateTime<Utc>) -> Result<u64, CoreError> {
        let mut rows = lock(&self.rows);
        let len = rows.len();
        rows.retain(|r| {
            !(r.entry.state == OutboxState::Delivered
                && r.entry.finished_at.is_some_and(|at| at < before))
        });
        Ok((len - rows.len()) as u64)
    }
}

// ---------------------------------------------------------------- scripted peer

type Script = Box<dyn Fn(&str, &Value) -> Script1 + Send + Sync>;

/// What the peer does with one call.
enum Script1 {
    /// Fails before the receiver sees anything.
    Refuse(Result<u16, PeerError>),
    /// The receiver applies (idempotently), then the answer is `answer`.
    Apply(Result<u16, PeerError>),
}

type Call = (String, Value, DateTime<Utc>, bool);

struct Peer {
    clock: Arc<ManualClock>,
    script: Script,
    /// Yields while "on the wire", so attempts overlap.
    yields: std::sync::atomic::AtomicUsize,
    in_flight: Mutex<HashMap<String, usize>>,
    max_in_flight: Mutex<HashMap<String, usize>>,
    /// (destination, body, started at, whether another call to it was in flight).
    calls: Mutex<Vec<Call>>,
    /// (destination, action_id, update_count) -> times applied.
    applied: Mutex<HashMap<(String, String, u64), u32>>,
    /// Calls that reached the receiver, duplicates included.
    received: AtomicU64,
    /// Whether the peer has the batch route (else it answers batches as unknown routes).
    batches: AtomicBool,
    /// Batch requests answered, and refused as an unknown route.
    batch_requests: AtomicU64,
    batch_refusals: AtomicU64,
    /// When set, every batch is refused as a whole with this status (e.g. 413).
    refuse_batches_with: Mutex<Option<u16>>,
    /// Events per request that reached the peer, in order.
    request_sizes: Mutex<Vec<usize>>,
}

impl Peer {
    fn new(clock: Arc<ManualClock>, script: Script) -> Self {
        Peer {
            clock,
            script,
            yields: 3.into(),
            in_flight: Mutex::default(),
            max_in_flight: Mutex::default(),
            calls: Mutex::default(),
            applied: Mutex::default(),
            received: AtomicU64::new(0),
            batches: AtomicBool::new(false),
            batch_requests: AtomicU64::new(0),
            batch_refusals: AtomicU64::new(0),
            refuse_batches_with: Mutex::new(None),
            request_sizes: Mutex::default(),
        }
    }

    /// One request carrying `bodies` (one call recorded per body): each body's answer.
    async fn request(&self, peer_url: &str, bodies: &[Value]) -> Vec<Result<u16, PeerError>> {
        let overlapping = {
            let mut in_flight = lock(&self.in_flight);
            let n = in_flight.entry(peer_url.to_string()).or_default();
            *n += 1;
            let mut max = lock(&self.max_in_flight);
            let m = max.entry(peer_url.to_string()).or_default();
            *m = (*m).max(*n);
            *n > 1
        };
        lock(&self.request_sizes).push(bodies.len());
        for body in bodies {
            lock(&self.calls).push((
                peer_url.to_string(),
                body.clone(),
                self.clock.now(),
                overlapping,
            ));
        }
        let yields = self.yields.load(Ordering::SeqCst);
        for _ in 0..yields {
            tokio::task::yield_now().await;
        }
        let answers = bodies
            .iter()
            .map(|body| match (self.script)(peer_url, body) {
                Script1::Refuse(answer) => answer,
                Script1::Apply(answer) => {
                    self.received.fetch_add(1, Ordering::Relaxed);
                    *lock(&self.applied)
                        .entry(key_of(peer_url, body))
                        .or_default() += 1;
                    answer
                }
            })
            .collect();
        for _ in 0..yields {
            tokio::task::yield_now().await;
        }
        *lock(&self.in_flight)
            .entry(peer_url.to_string())
            .or_default() -= 1;
        answers
    }

    fn calls_to(&self, destination: &str) -> Vec<(Value, DateTime<Utc>, bool)> {
        lock(&self.calls)
            .iter()
            .filter(|c| c.0 == destination)
            .map(|c| (c.1.clone(), c.2, c.3))
            .collect()
    }

    fn max_in_flight(&self, destination: &str) -> usize {
        lock(&self.max_in_flight)
            .get(destination)
            .copied()
            .unwrap_or(0)
    }
}

fn key_of(destination: &str, body: &Value) -> (String, String, u64) {
    (
        destination.to_string(),
        body["action_id"].as_str().unwrap_or_default().to_string(),
        body["update_count"].as_u64().unwrap_or_default(),
    )
}

#[async_trait]
impl PeerTransport for Peer {
    async fn count_local(&self, _: &str, _: &ItemFilter, _: &str) -> Result<u64, PeerError> {
        unreachable!("not used by the outbox")
    }

    async fn fetch_local(
        &self,
        _: &str,
        _: &ItemFilter,
        _: &PeerPage,
        _: &str,
    ) -> Result<PeerPageAnswer, PeerError> {
        unreachable!("not used by the outbox")
    }

    async fn perform_action(
        &self,
        _: &str,
        _: &Value,
        _: &str,
        _: &str,
    ) -> Result<PeerAnswer, PeerError> {
        unreachable!("not used by the outbox")
    }

    async fn store_event(
        &self,
        peer_url: &str,
        body: &Value,
        request_id: &str,
    ) -> Result<u16, PeerError> {
        assert!(request_id.starts_with("outbox-"));
        let mut answers = self.request(peer_url, std::slice::from_ref(body)).await;
        answers.remove(0)
    }

    async fn store_events(
        &self,
        peer_url: &str,
        bodies: Vec<Value>,
        request_id: &str,
    ) -> Result<BatchAnswer, PeerError> {
        assert!(request_id.starts_with("outbox-batch-"));
        assert!(bodies.len() > 1, "a single event goes alone");
        if !self.batches.load(Ordering::SeqCst) {
            self.batch_refusals.fetch_add(1, Ordering::SeqCst);
            return Ok(BatchAnswer::Unsupported);
        }
        if let Some(status) = *lock(&self.refuse_batches_with) {
            self.batch_refusals.fetch_add(1, Ordering::SeqCst);
            return Ok(BatchAnswer::Refused(status));
        }
        self.batch_requests.fetch_add(1, Ordering::SeqCst);
        let answers = self.request(peer_url, &bodies).await;
        // A failure of the peer itself (no answer) fails the whole request.
        if let Some(Err(error)) = answers
            .iter()
            .find(|a| matches!(a, Err(e) if !matches!(e, PeerError::Status(_))))
        {
            return Err(error.clone());
        }
        Ok(BatchAnswer::Statuses(
            answers
                .into_iter()
                .map(|a| match a {
                    Ok(status) | Err(PeerError::Status(status)) => status,
                    Err(_) => unreachable!("handled above"),
                })
                .collect(),
        ))
    }
}

// ---------------------------------------------------------------- harness

fn entry(n: u32, destination: &str, created_at: DateTime<Utc>) -> OutboxEntry {
    let action_id = Uuid::from_u128(u128::from(n) + 1000);
    OutboxEntry {
        id: Uuid::from_u128(u128::from(n) + 1),
        destination: destination.to_string(),
        action_name: "connect".into(),
        action_id,
        update_count: n,
        body: json!({"action_name": "connect", "action_id": action_id.to_string(), "update_count": n}),
        state: OutboxState::Pending,
        attempts: 0,
        next_attempt_at: created_at,
        last_error: None,
        created_at,
        finished_at: None,
    }
}

struct World {
    clock: Arc<ManualClock>,
    outbox: Arc<MemoryOutbox>,
    peer: Arc<Peer>,
    step: Duration,
}

impl World {
    fn new(script: Script) -> World {
        World::with_outbox(MemoryOutbox::default(), script)
    }

    fn with_outbox(outbox: MemoryOutbox, script: Script) -> World {
        let clock = Arc::new(ManualClock(Mutex::new(start())));
        World {
            peer: Arc::new(Peer::new(clock.clone(), script)),
            clock,
            outbox: Arc::new(outbox),
            step: Duration::from_millis(100),
        }
    }

    fn dispatcher(&self, settings: OutboxSettings, random: Arc<dyn Random>) -> OutboxDispatcher {
        OutboxDispatcher::new(
            OutboxDeps {
                outbox: self.outbox.clone(),
                transport: self.peer.clone(),
                clock: self.clock.clone(),
                timer: Arc::new(ManualTimer {
                    clock: self.clock.clone(),
                    step: self.step,
                }),
                random,
            },
            settings,
        )
    }

    fn elapsed(&self) -> Duration {
        (self.clock.now() - start()).to_std().expect("elapsed")
    }

    /// Runs `dispatcher` until `done` holds or `limit` of simulated time has passed.
    async fn run_until(
        &self,
        dispatcher: &OutboxDispatcher,
        limit: Duration,
        done: impl Fn(&World) -> bool,
    ) -> DrainReport {
        let deadline = self.clock.now() + chrono::Duration::from_std(limit).expect("limit");
        let stop = std::future::poll_fn(|cx| {
            if done(self) || self.clock.now() >= deadline {
                Poll::Ready(())
            } else {
                // The manual timer wakes the task at every step; this keeps it honest.
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        });
        dispatcher.run(stop).await
    }

    /// `n` entries for `destination`, all due at the start.
    fn backlog(&self, n: u32, destination: &str) {
        for k in 0..n {
            self.outbox.add(entry(k, destination, start()));
        }
    }

    /// A dispatcher with the default settings, run until nothing is pending (at most
    /// `limit` of simulated time).
    async fn drain_with_defaults(&self, limit: Duration) -> OutboxDispatcher {
        let dispatcher = self.dispatcher(settings(), Arc::new(Longest));
        self.run_until(&dispatcher, limit, World::all_finished)
            .await;
        dispatcher
    }

    fn all_finished(&self) -> bool {
        self.outbox.in_state(OutboxState::Pending).is_empty()
    }
}

fn settings() -> OutboxSettings {
    OutboxSettings::default()
}

fn fine() -> Script {
    Box::new(|_, _| Script1::Apply(Ok(201)))
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn delivers_due_entries_and_marks_them_delivered() {
    let world = World::new(fine());
    for n in 0..5 {
        world.outbox.add(entry(n, A, start()));
    }
    let dispatcher = world.dispatcher(settings(), Arc::new(Longest));
    world
        .run_until(&dispatcher, Duration::from_secs(60), World::all_finished)
        .await;
    assert_eq!(world.outbox.in_state(OutboxState::Delivered).len(), 5);
    assert_eq!(dispatcher.stats().attempts_delivered, 5);
    assert!(
        world.elapsed() < Duration::from_secs(2),
        "{:?}",
        world.elapsed()
    );
}

#[tokio::test]
async fn a_notified_row_goes_without_waiting_for_the_poll() {
    let world = World::new(fine());
    let dispatcher = world.dispatcher(
        OutboxSettings {
            poll_interval: Duration::from_secs(600),
            ..settings()
        },
        Arc::new(Longest),
    );
    let notifier = dispatcher.notifier();
    let produced = AtomicBool::new(false);
    let producer = async {
        // Let the dispatcher go idle first.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        world.outbox.add(entry(1, A, world.clock.now()));
        produced.store(true, Ordering::SeqCst);
        notifier.notify();
    };
    let at_production = Arc::new(Mutex::new(None));
    let (_, _) = tokio::join!(
        producer,
        world.run_until(&dispatcher, Duration::from_secs(3600), |w| {
            if produced.load(Ordering::SeqCst) && lock(&at_production).is_none() {
                *lock(&at_production) = Some(w.clock.now());
            }
            !w.outbox.in_state(OutboxState::Delivered).is_empty()
        })
    );
    let produced_at = lock(&at_production).expect("produced");
    let took = (world.clock.now() - produced_at).to_std().expect("time");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test]
async fn concurrency_per_destination_never_exceeds_the_limit() {
    let world = World::new(fine());
    for n in 0..60 {
        world
            .outbox
            .add(entry(n, [A, B, C][n as usize % 3], start()));
    }
    let dispatcher = world.dispatcher(
        OutboxSettings {
            concurrency_per_destination: 3,
            ..settings()
        },
        Arc::new(Longest),
    );
    world
        .run_until(&dispatcher, Duration::from_secs(600), World::all_finished)
        .await;
    assert_eq!(world.outbox.in_state(OutboxState::Delivered).len(), 60);
    for destination in [A, B, C] {
        assert_eq!(world.peer.max_in_flight(destination), 3, "{destination}");
    }
}

#[tokio::test]
async fn a_long_backlog_does_not_hold_back_another_destination() {
    let world = World::new(fine());
    for n in 0..300 {
        world.outbox.add(entry(n, A, start()));
    }
    let later = start() + chrono::Duration::seconds(1);
    world.outbox.add(entry(1000, B, later));
    world.clock.advance(Duration::from_secs(2));
    let dispatcher = world.dispatcher(settings(), Arc::new(Longest));

    world
        .run_until(&dispatcher, Duration::from_secs(600), |w| {
            !w.peer.calls_to(B).is_empty()
        })
        .await;

    // Oldest first alone would send all 300 of A's entries before B's newer one.
    let sent_to_a = world.peer.calls_to(A).len();
    assert!(
        sent_to_a < 100,
        "B waited for {sent_to_a} of A's deliveries"
    );
}

impl Peer {
    fn applied_once_each(&self, expected: usize) {
        let applied = lock(&self.applied);
        assert_eq!(applied.len(), expected);
        assert!(applied.values().all(|n| *n == 1), "an event applied twice");
    }
}

#[tokio::test]
async fn a_backlog_goes_to_a_peer_with_the_batch_route_in_batches() {
    let world = World::new(fine());
    world.peer.batches.store(true, Ordering::SeqCst);
    world.backlog(300, A);
    let dispatcher = world.drain_with_defaults(Duration::from_secs(600)).await;
    assert_eq!(world.outbox.in_state(OutboxState::Delivered).len(), 300);
    world.peer.applied_once_each(300);
    let batches = world.peer.batch_requests.load(Ordering::SeqCst);
    assert!(batches >= 5, "{batches} batches");
    // Every event went once: in a batch or alone.
    assert_eq!(world.peer.calls_to(A).len(), 300);
    assert_eq!(dispatcher.stats().attempts_delivered, 300);
    assert!(
        world.peer.max_in_flight(A) <= settings().concurrency_per_destination,
        "the per-destination limit counts requests"
    );
}

#[tokio::test]
async fn a_peer_without_the_batch_route_gets_single_events_after_one_try() {
    let world = World::new(fine());
    world.backlog(300, A);
    world.drain_with_defaults(Duration::from_secs(600)).await;
    assert_eq!(world.outbox.in_state(OutboxState::Delivered).len(), 300);
    world.peer.applied_once_each(300);
    assert_eq!(world.peer.batch_refusals.load(Ordering::SeqCst), 1);
    assert_eq!(world.peer.calls_to(A).len(), 300);
}

#[tokio::test]
async fn a_batch_refused_as_a_whole_sends_its_events_alone_and_keeps_batching() {
    let world = World::new(fine());
    world.peer.batches.store(true, Ordering::SeqCst);
    *lock(&world.peer.refuse_batches_with) = Some(413);
    world.backlog(40, A);
    world.drain_with_defaults(Duration::from_secs(600)).await;
    assert_eq!(world.outbox.in_state(OutboxState::Delivered).len(), 40);
    world.peer.applied_once_each(40);
    assert!(world.outbox.in_state(OutboxState::Dead).is_empty());
    // The peer keeps being offered batches: a refusal says nothing about the route.
    assert!(world.peer.batch_refusals.load(Ordering::SeqCst) > 1);
}

#[tokio::test]
async fn each_event_of_a_batch_gets_the_verdict_of_its_own_status() {
    let world = World::new(Box::new(|_, body| {
        match body["update_count"].as_u64().unwrap_or_default() % 10 {
            3 => Script1::Refuse(Ok(422)),
            7 => Script1::Refuse(Ok(503)),
            _ => Script1::Apply(Ok(201)),
        }
    }));
    world.peer.batches.store(true, Ordering::SeqCst);
    world.backlog(60, A);
    let dispatcher = world.dispatcher(settings(), Arc::new(Longest));
    world
        .run_until(&dispatcher, Duration::from_secs(30), |w| {
            w.outbox.in_state(OutboxState::Delivered).len()
                + w.outbox.in_state(OutboxState::Dead).len()
                == 54
        })
        .await;
    let ending_in = |state: OutboxState| -> Vec<u32> {
        let mut counts: Vec<u32> = world
            .outbox
            .in_state(state)
            .iter()
            .map(|e| e.update_count % 10)
            .collect();
        counts.sort_unstable();
        counts.dedup();
        counts
    };
    assert_eq!(ending_in(OutboxState::Dead), [3]);
    assert_eq!(ending_in(OutboxState::Pending), [7], "503 is retried");
    assert_eq!(world.outbox.in_state(OutboxState::Delivered).len(), 48);
    let retried = world.outbox.in_state(OutboxState::Pending);
    assert!(retried.iter().all(|e| e.attempts >= 1));
    assert!(world.peer.batch_requests.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn a_batch_without_an_answer_retries_every_event_and_the_peer_gets_one_probe() {
    let up = Arc::new(AtomicBool::new(false));
    let script_up = up.clone();
    let world = World::new(Box::new(move |_, _| {
        if script_up.load(Ordering::SeqCst) {
            Script1::Apply(Ok(201))
        } else {
            Script1::Refuse(Err(PeerError::Timeout))
        }
    }));
    world.peer.batches.store(true, Ordering::SeqCst);
    world.backlog(100, A);
    let dispatcher = world.dispatcher(settings(), Arc::new(Longest));
    world
        .run_until(&dispatcher, Duration::from_secs(3600), |w| {
            lock(&w.peer.request_sizes).len() >= 10
        })
        .await;
    assert!(world.outbox.in_state(OutboxState::Delivered).is_empty());
    let sizes = lock(&world.peer.request_sizes).clone();
    assert!(sizes.len() >= 10, "{sizes:?}");
    // The first requests (up to the per-destination limit) started before the peer was
    // known to fail, one of them a batch; every later one is a probe with one event.
    let limit = settings().concurrency_per_destination;
    assert!(sizes[..limit].iter().any(|n| *n > 1), "{sizes:?}");
    assert!(sizes[limit..].iter().all(|n| *n == 1), "{sizes:?}");
    let retried = world.outbox.in_state(OutboxState::Pending);
    assert_eq!(retried.len(), 100);
    assert!(
        retried.iter().filter(|e| e.attempts >= 1).count() >= sizes[0],
        "every event of the failed batch counts an attempt"
    );
    up.store(true, Ordering::SeqCst);
    world
        .run_until(&dispatcher, Duration::from_secs(3600), World::all_finished)
        .await;
    assert_eq!(world.outbox.in_state(OutboxState::Delivered).len(), 100);
    world.peer.applied_once_each(100);
}

#[tokio::test]
async fn probes_of_a_failing_destination_do_not_rewrite_its_whole_backlog() {
    let up = Arc::new(AtomicBool::new(false));
    let world = World::new(b_down_until(up.clone()));
    world.backlog(300, B);
    let dispatcher = world.dispatcher(settings(), Arc::new(Longest));
    world
        .run_until(&dispatcher, Duration::from_secs(3600), |w| {
            w.peer.calls_to(B).len() >= 12
        })
        .await;
    assert!(dispatcher.stats().attempts_retried >= 12);
    // A failure defers the backlog a probe interval past the next probe; the failures
    // before that find nothing new to defer. Rewriting it on every probe would be 12 x 300.
    let deferred = *lock(&world.outbox.deferred);
    assert!(
        deferred <= 5 * 300,
        "{deferred} rewrites for a backlog of 300 over 12 probes"
    );
    // The backlog waits beyond the probe, yet the next probe goes on time and, answered,
    // brings the whole backlog back at once.
    let since = world.elapsed();
    up.store(true, Ordering::SeqCst);
    world
        .run_until(&dispatcher, Duration::from_secs(3600), |w| {
            !w.outbox.in_state(OutboxState::Delivered).is_empty()
        })
        .await;
    let waited = world.elapsed() - since;
    assert!(
        waited <= settings().backoff_cap_young + Duration::from_secs(5),
        "first delivery {waited:?} after the peer came back"
    );
    let woken_at = world.elapsed();
    world
        .run_until(&dispatcher, Duration::from_secs(3600), World::all_finished)
        .await;
    assert_eq!(world.outbox.in_state(OutboxState::Delivered).len(), 300);
    let rest = world.elapsed() - woken_at;
    assert!(
        rest < settings().backoff_cap_young,
        "{rest:?} for the rest of the backlog"
    );
}

#[tokio::test]
async fn a_backlog_being_sent_is_not_rescanned_after_every_delivery() {
    let world = World::new(fine());
    world.backlog(300, A);
    // Room for one destination's share only: refills come once per claim batch.
    let dispatcher = world.dispatcher(
        OutboxSettings {
            max_in_flight: 64,
            ..settings()
        },
        Arc::new(Longest),
    );

    world
        .run_until(&dispatcher, Duration::from_secs(600), World::all_finished)
        .await;

    assert_eq!(world.outbox.in_state(OutboxState::Delivered).len(), 300);
    // A claim that skips the busy destination finds nothing else due; repeating it after
    // each delivery would scan the whole backlog 300 times. Refills take one per batch.
    let claims = world.outbox.claims.load(Ordering::SeqCst);
    assert!(claims < 40, "{claims} claims for 300 deliveries");
}

#[tokio::test]
async fn with_room_to_spare_a_saturated_destination_is_rescanned_at_most_once_per_poll() {
    let world = World::new(fine());
    world.backlog(300, A);
    let dispatcher = world.drain_with_defaults(Duration::from_secs(600)).await;
    assert_eq!(world.outbox.in_state(OutboxState::Delivered).len(), 300);
    let claims = u64::from(world.outbox.claims.load(Ordering::SeqCst));
    let refills = 300 / u64::from(settings().claim_batch);
    let polls = world.elapsed().as_secs() / dispatcher.settings().poll_interval.as_secs();
    assert!(
        claims <= refills + polls + 5,
        "{claims} claims: {refills} refills, {polls} poll intervals"
    );
}

/// B answers 503 until `up` is set.
fn b_down_until(up: Arc<AtomicBool>) -> Script {
    Box::new(move |destination, _| {
        if destination == B && !up.load(Ordering::SeqCst) {
            Script1::Refuse(Ok(503))
        } else {
            Script1::Apply(Ok(201))
        }
    })
}

#[tokio::test]
async fn a_failing_destination_gets_one_probe_at_a_time_while_others_flow() {
    let up = Arc::new(AtomicBool::new(false));
    let world = World::new(b_down_until(up.clone()));
    for n in 0..40 {
        world
            .outbox
            .add(entry(n, if n % 2 == 0 { A } else { B }, start()));
    }
    let dispatcher = world.dispatcher(settings(), Arc::new(Seeded::new(7)));
    world
        .run_until(&dispatcher, Duration::from_secs(600), |w| {
            w.outbox
                .in_state(OutboxState::Delivered)
                .iter()
                .filter(|e| e.destination == A)
                .count()
                == 20
        })
        .await;
    world
        .run_until(&dispatcher, Duration::from_secs(600), |_| false)
        .await;
    let calls = world.peer.calls_to(B);
    let first_failure_seen = calls[0].1;
    let after: Vec<_> = calls
        .iter()
        .filter(|c| c.1 > first_failure_seen + chrono::Duration::seconds(1))
        .collect();
    assert!(!after.is_empty(), "probes go out");
    assert!(after.iter().all(|c| !c.2), "probes never overlap");
    // Ten minutes of a dead peer: the initial burst plus probes with growing delays, not
    // an attempt per entry per second.
    assert!(calls.len() < 40, "{} calls to a dead peer", calls.len());
    assert!(
        world
            .outbox
            .in_state(OutboxState::Pending)
            .iter()
            .all(|e| e.destination == B)
    );

    up.store(true, Ordering::SeqCst);
    world
        .run_until(&dispatcher, Duration::from_secs(300), World::all_finished)
        .await;
    assert_eq!(world.outbox.in_state(OutboxState::Delivered).len(), 40);
}

#[tokio::test]
async fn peer_contact_resets_the_backoff_and_wakes_the_backlog_at_once() {
    let up = Arc::new(AtomicBool::new(false));
    let world = World::new(b_down_until(up.clone()));
    for n in 0..10 {
        world.outbox.add(entry(n, B, start()));
    }
    // Long delays: without the contact the backlog would wait ten minutes.
    let dispatcher = world.dispatcher(
        OutboxSettings {
            backoff_base: Duration::from_secs(600),
            backoff_cap_young: Duration::from_secs(600),
            ..settings()
        },
        Arc::new(Longest),
    );
    world
        .run_until(&dispatcher, Duration::from_secs(30), |_| false)
        .await;
    let waiting = world.outbox.in_state(OutboxState::Pending);
    assert_eq!(waiting.len(), 10);
    assert!(
        waiting
            .iter()
            .all(|e| e.next_attempt_at > world.clock.now() + chrono::Duration::seconds(300))
    );

    up.store(true, Ordering::SeqCst);
    // The Network Schema may spell it with a trailing slash.
    dispatcher.peer_contacted("http://b.example.org/");
    let contacted_at = world.clock.now();
    world
        .run_until(&dispatcher, Duration::from_secs(300), World::all_finished)
        .await;
    assert_eq!(world.outbox.in_state(OutboxState::Delivered).len(), 10);
    let took = (world.clock.now() - contacted_at).to_std().expect("time");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test]
async fn entries_past_the_horizon_are_dead_lettered() {
    let world = World::new(Box::new(|_, _| Script1::Refuse(Ok(503))));
    let horizon = chrono::Duration::hours(72);
    world
        .outbox
        .add(entry(1, A, start() - horizon - chrono::Duration::hours(1)));
    world.outbox.add(entry(
        2,
        B,
        start() - horizon + chrono::Duration::seconds(30),
    ));
    let dispatcher = world.dispatcher(settings(), Arc::new(Longest));
    world
        .run_until(&dispatcher, Duration::from_secs(3600), World::all_finished)
        .await;
    let old = world.outbox.entry(Uuid::from_u128(2));
    let almost = world.outbox.entry(Uuid::from_u128(3));
    assert_eq!(old.state, OutboxState::Dead);
    assert!(world.peer.calls_to(A).is_empty(), "never sent");
    assert!(
        old.last_error
            .as_deref()
            .is_some_and(|r| r.contains("72 h"))
    );
    assert_eq!(almost.state, OutboxState::Dead);
    let deadline = almost.created_at + horizon;
    let calls = world.peer.calls_to(B);
    assert!(!calls.is_empty());
    assert!(
        calls.iter().all(|c| c.1 < deadline),
        "no attempt after the horizon"
    );
    assert!(almost.finished_at.is_some_and(|at| at >= deadline));
}

#[tokio::test]
async fn a_poison_entry_is_dead_lettered_once_while_others_flow_and_redrive_retries_it() {
    let world = World::new(Box::new(|_, body| {
        if body["update_count"] == 3 {
            Script1::Refuse(Ok(400))
        } else {
            Script1::Apply(Ok(201))
        }
    }));
    for n in 0..10 {
        world.outbox.add(entry(n, A, start()));
    }
    let dispatcher = world.dispatcher(settings(), Arc::new(Longest));
    world
        .run_until(&dispatcher, Duration::from_secs(60), World::all_finished)
        .await;
    let dead = world.outbox.in_state(OutboxState::Dead);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].update_count, 3);
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some("status 400: rejected by the receiver")
    );
    assert_eq!(world.outbox.in_state(OutboxState::Delivered).len(), 9);
    assert_eq!(
        world.peer.calls_to(A).len(),
        10,
        "the poison entry went once"
    );

    let admin = OutboxAdmin::new(
        world.outbox.clone(),
        world.clock.clone(),
        dispatcher.notifier(),
    );
    let overview = admin.overview(50).await.expect("overview");
    assert_eq!((overview.counts.dead, overview.undelivered.len()), (1, 1));
    assert_eq!(
        admin.redrive(Some(B.to_string())).await.expect("redrive"),
        0
    );
    assert_eq!(admin.redrive(None).await.expect("redrive"), 1);
    world
        .run_until(&dispatcher, Duration::from_secs(60), World::all_finished)
        .await;
    assert_eq!(world.peer.calls_to(A).len(), 11, "redriven once");
    assert_eq!(world.outbox.in_state(OutboxState::Dead).len(), 1);
}

#[tokio::test]
async fn shutdown_releases_unstarted_claims_and_finishes_deliveries_in_flight() {
    let world = World::new(fine());
    world.peer.yields.store(20, Ordering::SeqCst);
    for n in 0..6 {
        world.outbox.add(entry(n, A, start()));
    }
    let dispatcher = world.dispatcher(
        OutboxSettings {
            concurrency_per_destination: 2,
            ..settings()
        },
        Arc::new(Longest),
    );
    let report = world
        .run_until(&dispatcher, Duration::from_secs(60), |w| {
            !w.peer.calls_to(A).is_empty()
        })
        .await;
    assert_eq!(
        report,
        DrainReport {
            released: 4,
            abandoned: 0
        }
    );
    assert_eq!(world.outbox.in_state(OutboxState::Delivered).len(), 2);
    let rows = lock(&world.outbox.rows).clone();
    assert!(
        rows.iter()
            .filter(|r| r.entry.state == OutboxState::Pending)
            .all(|r| r.leased_until.is_none() && r.entry.next_attempt_at <= world.clock.now())
    );
}

#[tokio::test]
async fn deliveries_abandoned_at_shutdown_are_sent_again_after_their_lease() {
    let world = World::new(fine());
    // Slower than the drain bound.
    world.peer.yields.store(10_000, Ordering::SeqCst);
    for n in 0..4 {
        world.outbox.add(entry(n, A, start()));
    }
    let dispatcher = world.dispatcher(
        OutboxSettings {
            concurrency_per_destination: 2,
            ..settings()
        },
        Arc::new(Longest),
    );
    let report = world
        .run_until(&dispatcher, Duration::from_secs(60), |w| {
            !w.peer.calls_to(A).is_empty()
        })
        .await;
    assert_eq!(
        report,
        DrainReport {
            released: 2,
            abandoned: 2
        }
    );
    assert_eq!(dispatcher.stats().in_flight, 0, "no slot stays taken");
    world.peer.yields.store(3, Ordering::SeqCst);
    world
        .run_until(&dispatcher, Duration::from_secs(120), World::all_finished)
        .await;
    assert_eq!(world.outbox.in_state(OutboxState::Delivered).len(), 4);
}

#[tokio::test]
async fn a_storage_outage_delays_deliveries_without_stopping_the_loop() {
    let world = World::with_outbox(
        MemoryOutbox {
            claim_outage: 5.into(),
            ..MemoryOutbox::default()
        },
        fine(),
    );
    for n in 0..3 {
        world.outbox.add(entry(n, A, start()));
    }
    let dispatcher = world.dispatcher(settings(), Arc::new(Longest));
    world
        .run_until(&dispatcher, Duration::from_secs(60), World::all_finished)
        .await;
    assert_eq!(world.outbox.in_state(OutboxState::Delivered).len(), 3);
    assert!(
        world.elapsed() >= Duration::from_secs(5),
        "one poll per failed claim"
    );
}

#[tokio::test]
async fn refused_keys_are_retried_per_entry_without_failing_the_peer() {
    // The receiver does not know this instance's key yet (401), for one entry only.
    let world = World::new(Box::new(|_, body| {
        if body["update_count"] == 0 {
            Script1::Refuse(Ok(401))
        } else {
            Script1::Apply(Ok(201))
        }
    }));
    for n in 0..6 {
        world.outbox.add(entry(n, A, start()));
    }
    let dispatcher = world.dispatcher(settings(), Arc::new(Longest));
    world
        .run_until(&dispatcher, Duration::from_secs(120), |w| {
            w.outbox.in_state(OutboxState::Delivered).len() == 5
        })
        .await;
    let refused = world.outbox.entry(Uuid::from_u128(1));
    assert_eq!(refused.state, OutboxState::Pending);
    assert!(refused.attempts >= 1);
    assert_eq!(
        refused.last_error.as_deref(),
        Some("status 401 (keys may still be propagating)")
    );
    // The other entries never waited for a probe.
    assert!(
        world.elapsed() < Duration::from_secs(3),
        "{:?}",
        world.elapsed()
    );
}

#[tokio::test]
async fn delivered_entries_are_pruned_after_the_retention() {
    let world = World::new(fine());
    let mut old = entry(1, A, start() - chrono::Duration::days(9));
    old.state = OutboxState::Delivered;
    old.finished_at = Some(start() - chrono::Duration::days(8));
    let mut recent = entry(2, A, start() - chrono::Duration::days(2));
    recent.state = OutboxState::Delivered;
    recent.finished_at = Some(start() - chrono::Duration::days(1));
    world.outbox.add(old);
    world.outbox.add(recent);
    let dispatcher = world.dispatcher(settings(), Arc::new(Longest));
    world
        .run_until(&dispatcher, Duration::from_secs(5), |_| false)
        .await;
    let left: Vec<u32> = world
        .outbox
        .entries()
        .iter()
        .map(|e| e.update_count)
        .collect();
    assert_eq!(left, [2]);
    assert_eq!(dispatcher.stats().counts.map(|c| c.delivered), Some(1));
}

/// The port contract of one successful attempt, with mocks.
#[tokio::test]
async fn an_attempt_uses_the_ports_as_specified() {
    let now = start();
    let sent = entry(1, A, now);
    let id = sent.id;
    let mut outbox = MockOutbox::new();
    let claimed = Arc::new(AtomicBool::new(false));
    let marked = Arc::new(AtomicBool::new(false));
    outbox
        .expect_counts()
        .returning(|_| Ok(OutboxCounts::default()));
    outbox
        .expect_prune_delivered()
        .withf(move |before| *before == now - chrono::Duration::days(7))
        .returning(|_| Ok(0));
    let once = claimed.clone();
    outbox
        .expect_claim_due()
        .withf(move |at, limit, lease, skip| {
            *at == now
                && *limit == 32
                && *lease == now + chrono::Duration::seconds(30)
                && skip.is_empty()
        })
        .returning(move |_, _, _, _| {
            Ok(if once.swap(true, Ordering::SeqCst) {
                Vec::new()
            } else {
                vec![sent.clone()]
            })
        });
    let flag = marked.clone();
    outbox
        .expect_mark_delivered()
        .withf(move |i, at| *i == id && *at == now)
        .times(1)
        .returning(move |_, _| {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
    outbox.expect_release().never();
    let mut transport = MockPeerTransport::new();
    transport
        .expect_store_event()
        .withf(move |peer, body, request_id| {
            peer == A && body["update_count"] == 1 && request_id == format!("outbox-{id}")
        })
        .times(1)
        .returning(|_, _, _| Ok(201));
    let mut clock = MockClock::new();
    clock.expect_now().return_const(now);
    struct Yield;
    #[async_trait]
    impl Timer for Yield {
        async fn sleep(&self, _: Duration) {
            tokio::task::yield_now().await;
        }
    }
    let dispatcher = OutboxDispatcher::new(
        OutboxDeps {
            outbox: Arc::new(outbox),
            transport: Arc::new(transport),
            clock: Arc::new(clock),
            timer: Arc::new(Yield),
            random: Arc::new(Longest),
        },
        settings(),
    );
    let stop = std::future::poll_fn(|cx| {
        if marked.load(Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    });
    let report = dispatcher.run(stop).await;
    assert_eq!(
        report,
        DrainReport {
            released: 0,
            abandoned: 0
        }
    );
}

// ---------------------------------------------------------------- delivery model

mod model {
    use super::*;
    use proptest::prelude::*;

    /// One simulated life of a dispatcher: it runs for `steps` timer steps, then the
    /// process "crashes" (its future is dropped, deliveries in flight included).
    async fn live(world: &World, seed: u64, steps: u32) {
        let dispatcher = world.dispatcher(settings(), Arc::new(Seeded::new(seed)));
        let crash = async {
            for _ in 0..steps {
                tokio::task::yield_now().await;
            }
        };
        futures::pin_mut!(crash);
        let run = dispatcher.run(std::future::pending::<()>());
        futures::pin_mut!(run);
        futures::future::select(run, crash).await;
    }

    fn check(
        seed: u64,
        per_destination: u32,
        refuse: u64,
        lose_answer: u64,
        lives: Vec<u32>,
        batches: bool,
    ) {
        let random = Arc::new(Seeded::new(seed));
        let script_random = random.clone();
        let script: Script = Box::new(move |_, _| {
            if script_random.chance(refuse) {
                Script1::Refuse(if script_random.chance(50) {
                    Ok(503)
                } else {
                    Err(PeerError::Unreachable("refused".into()))
                })
            } else if script_random.chance(lose_answer) {
                // Applied, but the answer is lost: the sender must retry.
                Script1::Apply(Err(PeerError::Timeout))
            } else {
                Script1::Apply(Ok(201))
            }
        });
        let outbox = MemoryOutbox {
            mark_failures: 10,
            random: Some(Seeded::new(seed.rotate_left(17))),
            ..MemoryOutbox::default()
        };
        let mut world = World::with_outbox(outbox, script);
        world.step = Duration::from_secs(1);
        // A peer with the batch route gets the waiting entries in batches.
        world.peer.batches.store(batches, Ordering::SeqCst);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let mut produced = 0u32;
        runtime.block_on(async {
            for (life, steps) in lives.iter().enumerate() {
                // Producers keep writing between crashes.
                for _ in 0..per_destination {
                    let destination = [A, B, C][produced as usize % 3];
                    world
                        .outbox
                        .add(entry(produced, destination, world.clock.now()));
                    produced += 1;
                }
                live(&world, seed.wrapping_add(life as u64), *steps).await;
            }
            let dispatcher = world.dispatcher(settings(), Arc::new(Seeded::new(seed ^ 0xdead)));
            world
                .run_until(
                    &dispatcher,
                    Duration::from_secs(12 * 3600),
                    World::all_finished,
                )
                .await;
        });
        let delivered = world.outbox.in_state(OutboxState::Delivered);
        assert_eq!(delivered.len() as u32, produced, "every entry delivered");
        let applied = lock(&world.peer.applied).clone();
        let expected: std::collections::HashSet<_> = world
            .outbox
            .entries()
            .iter()
            .map(|e| key_of(&e.destination, &e.body))
            .collect();
        let got: std::collections::HashSet<_> = applied.keys().cloned().collect();
        assert_eq!(got, expected, "delivered set equals produced set");
        // The idempotent receiver stores each event once, however often it arrives.
        let received = world.peer.received.load(Ordering::Relaxed);
        assert!(received >= u64::from(produced));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn with_failures_and_crashes_every_event_arrives_once(
            seed in any::<u64>(),
            per_destination in 1u32..40,
            refuse in 0u64..60,
            lose_answer in 0u64..30,
            lives in proptest::collection::vec(1u32..200, 1..4),
            batches in any::<bool>(),
        ) {
            check(seed, per_destination, refuse, lose_answer, lives, batches);
        }
    }
}
