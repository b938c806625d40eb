//! The delivery loop: claim due entries, send them within the per-destination limits,
//! record the outcome, and keep the outbox tidy. Runtime-agnostic: deliveries run as
//! futures inside [`OutboxDispatcher::run`], waiting goes through the Timer port.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use uuid::Uuid;

use super::destinations::{Admit, Change, Destinations, chrono_duration};
use super::policy::{OutboxSettings, Verdict, backoff_ceiling, classify, full_jitter};
use super::{OutboxNotifier, PeerContacts, Signal};
use crate::model::{OutboxCounts, OutboxEntry};
use crate::ports::{BatchAnswer, Clock, Outbox, PeerError, PeerTransport, Random, Timer};

pub struct OutboxDeps {
    pub outbox: Arc<dyn Outbox>,
    pub transport: Arc<dyn PeerTransport>,
    pub clock: Arc<dyn Clock>,
    pub timer: Arc<dyn Timer>,
    pub random: Arc<dyn Random>,
}

/// What the dispatcher has done, for `/metrics` and readiness.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Last counts read from the outbox (refreshed every `counts_every`).
    pub counts: Option<OutboxCounts>,
    /// Attempts since start, by outcome.
    pub attempts_delivered: u64,
    pub attempts_retried: u64,
    pub attempts_dead: u64,
    /// Entries dead-lettered without an attempt (older than the horizon).
    pub expired: u64,
    pub in_flight: usize,
}

/// How a shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// Claimed entries given back unsent.
    pub released: usize,
    /// Deliveries still running when the drain bound passed (their lease makes them due
    /// again; the receiver absorbs a duplicate).
    pub abandoned: usize,
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
    expired: AtomicU64,
}

struct Schedule {
    next_prune: Option<DateTime<Utc>>,
    next_counts: Option<DateTime<Utc>>,
}

/// A claim that came back short: nothing else was due then outside `skipped`. Claiming
/// again while those destinations stay skipped would only rescan their backlogs (once per
/// finished delivery, a whole long backlog each time), so it waits for `until` (a poll
/// interval, in which retries fall due) or for a signal (new rows, woken peers).
struct ShortClaim {
    skipped: BTreeSet<String>,
    until: DateTime<Utc>,
}

pub struct OutboxDispatcher {
    deps: OutboxDeps,
    settings: OutboxSettings,
    destinations: Mutex<Destinations>,
    /// Destinations (as stored) whose backlog to wake on the next round.
    wakes: Mutex<BTreeSet<String>>,
    signal: Arc<Signal>,
    /// Raised when a delivery frees its destination's slot, before its outcome is recorded:
    /// a held entry may start while the record is being written.
    freed: Signal,
    /// One `run` at a time.
    running: AtomicBool,
    counters: Counters,
    counts: Mutex<Option<OutboxCounts>>,
    schedule: Mutex<Schedule>,
    short_claim: Mutex<Option<ShortClaim>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent data behind.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn age(entry: &OutboxEntry, now: DateTime<Utc>) -> Duration {
    (now - entry.created_at).to_std().unwrap_or_default()
}

impl OutboxDispatcher {
    pub fn new(deps: OutboxDeps, settings: OutboxSettings) -> Self {
        OutboxDispatcher {
            destinations: Mutex::new(Destinations::new(settings.concurrency_per_destination)),
            deps,
            settings,
            wakes: Mutex::new(BTreeSet::new()),
            signal: Arc::new(Signal::default()),
            freed: Signal::default(),
            running: AtomicBool::new(false),
            counters: Counters::default(),
            counts: Mutex::new(None),
            schedule: Mutex::new(Schedule {
                next_prune: None,
                next_counts: None,
            }),
            short_claim: Mutex::new(None),
        }
    }

    /// A handle that makes the loop look for due entries at once (after a row is written).
    pub fn notifier(&self) -> OutboxNotifier {
        OutboxNotifier::new(self.signal.clone())
    }

    pub fn settings(&self) -> &OutboxSettings {
        &self.settings
    }

    pub fn stats(&self) -> OutboxStats {
        OutboxStats {
            counts: *lock(&self.counts),
            attempts_delivered: self.counters.delivered.load(Ordering::Relaxed),
            attempts_retried: self.counters.retried.load(Ordering::Relaxed),
            attempts_dead: self.counters.dead.load(Ordering::Relaxed),
            expired: self.counters.expired.load(Ordering::Relaxed),
            in_flight: lock(&self.destinations).in_flight(),
        }
    }

    /// Runs until `shutdown` resolves, then stops claiming, gives back claimed entries not
    /// yet sent and waits (at most `drain_timeout`) for deliveries in flight. Runs once per
    /// dispatcher at a time; a concurrent second call returns at once.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> DrainReport {
        if self.running.swap(true, Ordering::SeqCst) {
            tracing::warn!("the outbox dispatcher is already running");
            return DrainReport {
                released: 0,
                abandoned: 0,
            };
        }
        let shutdown = shutdown.fuse();
        futures::pin_mut!(shutdown);
        let mut in_flight = FuturesUnordered::new();
        loop {
            self.housekeeping().await;
            let now = self.deps.clock.now();
            let startable = lock(&self.destinations).startable(now);
            for (entry, probe) in startable {
                in_flight.push(self.deliver(entry, probe));
            }
            let (started, again) = self.claim_round().await;
            for (entry, probe) in started {
                in_flight.push(self.deliver(entry, probe));
            }
            let wait = if again {
                Duration::ZERO
            } else {
                self.settings.poll_interval
            };
            futures::select_biased! {
                () = shutdown => break,
                () = in_flight.select_next_some() => {},
                () = self.signal.raised().fuse() => self.forget_short_claim(),
                () = self.freed.raised().fuse() => {},
                () = self.deps.timer.sleep(wait).fuse() => {},
            }
        }
        let report = self.drain(in_flight).await;
        self.running.store(false, Ordering::SeqCst);
        report
    }

    async fn drain(
        &self,
        mut in_flight: FuturesUnordered<impl Future<Output = ()>>,
    ) -> DrainReport {
        let held = lock(&self.destinations).take_held(None);
        let released = held.len();
        self.release(&held, self.deps.clock.now()).await;
        let finish = async { while in_flight.next().await.is_some() {} };
        futures::select_biased! {
            () = finish.fuse() => {},
            () = self.deps.timer.sleep(self.settings.drain_timeout).fuse() => {},
        }
        let abandoned = in_flight.len();
        drop(in_flight);
        lock(&self.destinations).forget_in_flight();
        if abandoned > 0 {
            tracing::warn!(
                abandoned,
                "outbox deliveries still running at shutdown; they become due again when their lease ends"
            );
        }
        tracing::info!(released, "outbox dispatcher stopped");
        DrainReport {
            released,
            abandoned,
        }
    }

    /// Claims what fits and holds or defers each entry; returns those to start now and
    /// whether the batch came back full with room for more (go again without waiting).
    async fn claim_round(&self) -> (Vec<(OutboxEntry, bool)>, bool) {
        // Refill in batches while work is queued: a claim per finished delivery would scan the
        // due index and write leases once per event.
        let refill_at = (self.settings.claim_batch as usize)
            .min(self.settings.max_in_flight / 2)
            .max(1);
        let (busy, skip) = {
            let destinations = lock(&self.destinations);
            (
                destinations.in_flight() + destinations.held(),
                destinations.saturated(
                    refill_at,
                    self.settings.batch_events,
                    self.deps.clock.now(),
                ),
            )
        };
        let room = self.settings.max_in_flight.saturating_sub(busy);
        if busy > 0 && room < refill_at {
            return (Vec::new(), false);
        }
        let limit = self
            .settings
            .claim_batch
            .min(u32::try_from(room).unwrap_or(u32::MAX));
        if limit == 0 {
            return (Vec::new(), false);
        }
        let now = self.deps.clock.now();
        if self.nothing_new_since_short_claim(&skip, now) {
            return (Vec::new(), false);
        }
        let lease_until = now + chrono_duration(self.settings.lease);
        let claimed = match self
            .deps
            .outbox
            .claim_due(now, limit, lease_until, &skip)
            .await
        {
            Ok(claimed) => claimed,
            Err(err) => {
                tracing::warn!(error = %err, "outbox claim failed");
                return (Vec::new(), false);
            }
        };
        let full = claimed.len() == limit as usize;
        *lock(&self.short_claim) = (!full).then(|| ShortClaim {
            skipped: skip.iter().cloned().collect(),
            until: now + chrono_duration(self.settings.poll_interval),
        });
        let mut started = Vec::new();
        let mut deferred: BTreeMap<DateTime<Utc>, Vec<OutboxEntry>> = BTreeMap::new();
        for entry in claimed {
            if age(&entry, now) >= self.settings.horizon {
                self.expire(&entry, now).await;
                continue;
            }
            let (admit, entry) = lock(&self.destinations).admit(entry, now);
            match (admit, entry) {
                (Admit::Start { probe }, Some(entry)) => started.push((entry, probe)),
                (Admit::Defer(until), Some(entry)) => {
                    deferred.entry(until).or_default().push(entry)
                }
                _ => {}
            }
        }
        for (until, entries) in deferred {
            self.release(&entries, until).await;
        }
        let again = full && (busy + limit as usize) < self.settings.max_in_flight;
        (started, again)
    }

    /// Whether the last claim came back short, recently, while skipping no more than `skip`
    /// does now: then a claim could find nothing new.
    fn nothing_new_since_short_claim(&self, skip: &[String], now: DateTime<Utc>) -> bool {
        lock(&self.short_claim).as_ref().is_some_and(|short| {
            now < short.until && short.skipped.iter().all(|d| skip.contains(d))
        })
    }

    async fn expire(&self, entry: &OutboxEntry, now: DateTime<Utc>) {
        let horizon = self.settings.horizon.as_secs();
        let reason = if horizon.is_multiple_of(3600) {
            format!("not delivered within {} h", horizon / 3600)
        } else {
            format!("not delivered within {horizon} s")
        };
        self.counters.expired.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(id = %entry.id, destination = %entry.destination, "outbox entry dead-lettered: {reason}");
        if let Err(err) = self.deps.outbox.dead_letter(entry.id, now, &reason).await {
            tracing::warn!(id = %entry.id, error = %err, "cannot dead-letter an outbox entry");
        }
    }

    /// One attempt and its bookkeeping: the entry alone, or with riders (held entries of
    /// the same destination) in one batch when the destination takes batches.
    async fn deliver(&self, entry: OutboxEntry, probe: bool) {
        let riders = if probe {
            Vec::new()
        } else {
            self.take_riders(&entry)
        };
        if riders.is_empty() {
            self.deliver_alone(entry, probe).await;
        } else {
            self.deliver_batch(entry, riders).await;
        }
    }

    fn take_riders(&self, first: &OutboxEntry) -> Vec<OutboxEntry> {
        let max = self.settings.batch_events.saturating_sub(1);
        if max == 0 {
            return Vec::new();
        }
        let budget = self
            .settings
            .batch_bytes
            .saturating_sub(body_size(&first.body));
        lock(&self.destinations).take_riders(
            &first.destination,
            max,
            budget,
            |e| body_size(&e.body),
            self.deps.clock.now(),
        )
    }

    async fn deliver_alone(&self, entry: OutboxEntry, probe: bool) {
        let request_id = format!("outbox-{}", entry.id);
        let answer = self
            .deps
            .transport
            .store_event(&entry.destination, &entry.body, &request_id)
            .await;
        let destination = entry.destination.clone();
        self.conclude(
            &destination,
            probe,
            0,
            &answer,
            vec![(entry, answer.clone())],
        )
        .await;
    }

    async fn deliver_batch(&self, first: OutboxEntry, riders: Vec<OutboxEntry>) {
        let destination = first.destination.clone();
        let request_id = format!("outbox-batch-{}", first.id);
        let bodies: Vec<serde_json::Value> = std::iter::once(&first)
            .chain(&riders)
            .map(|e| e.body.clone())
            .collect();
        let answer = self
            .deps
            .transport
            .store_events(&destination, bodies, &request_id)
            .await;
        let count = riders.len();
        match answer {
            Ok(BatchAnswer::Statuses(statuses)) if statuses.len() == count + 1 => {
                let outcomes = std::iter::once(first)
                    .chain(riders)
                    .zip(statuses)
                    .map(|(entry, status)| (entry, Ok(status)))
                    .collect();
                self.conclude(&destination, false, count, &Ok(200), outcomes)
                    .await;
            }
            Ok(refusal) => {
                // The riders wait for the next request; this entry goes alone, so a
                // refusal that one event causes costs one single delivery, not a dead batch.
                let now = self.deps.clock.now();
                {
                    let mut destinations = lock(&self.destinations);
                    if !matches!(refusal, BatchAnswer::Refused(_)) {
                        let until = now + chrono_duration(self.settings.batch_recheck);
                        destinations.without_batches_until(&destination, until);
                        tracing::info!(%destination, %until, "the destination has no batch route; it gets events one by one");
                    }
                    destinations.give_back(&destination, riders, now);
                }
                self.deliver_alone(first, false).await;
            }
            Err(error) => {
                // Nothing of the request was taken: every entry has the request's answer.
                let answer = Err(error);
                let outcomes = std::iter::once(first)
                    .chain(riders)
                    .map(|entry| (entry, answer.clone()))
                    .collect();
                self.conclude(&destination, false, count, &answer, outcomes)
                    .await;
            }
        }
    }

    /// Records one request's outcome: the destination's health from `request` (the answer
    /// to the request as a whole), then each entry's verdict from its own answer.
    async fn conclude(
        &self,
        destination: &str,
        probe: bool,
        riders: usize,
        request: &Result<u16, PeerError>,
        outcomes: Vec<(OutboxEntry, Result<u16, PeerError>)>,
    ) {
        let now = self.deps.clock.now();
        let probe_delay = peer_unavailable(request).then(|| self.probe_delay(destination, now));
        let change =
            lock(&self.destinations).finished(destination, probe, riders, probe_delay, now);
        self.freed.raise();
        let next_probe_at = match &change {
            Change::Failing { next_probe_at, .. } | Change::StillFailing { next_probe_at } => {
                Some(*next_probe_at)
            }
            _ => None,
        };
        let (delivered, others): (Vec<_>, Vec<_>) = outcomes
            .iter()
            .map(|(entry, answer)| (entry, classify(answer, age(entry, now), &self.settings)))
            .partition(|(_, verdict)| *verdict == Verdict::Delivered);
        self.counters
            .delivered
            .fetch_add(delivered.len() as u64, Ordering::Relaxed);
        // Delivered marks go together (the outbox groups them into one write); retries and
        // dead letters one after another, so a failed batch does not make its whole size of
        // writers wait on each other (SQLite has one writer at a time).
        let marks = delivered
            .iter()
            .map(|(entry, verdict)| self.record(entry, verdict, next_probe_at, now));
        futures::future::join_all(marks).await;
        for (entry, verdict) in &others {
            let counter = match verdict {
                Verdict::Retry { .. } => &self.counters.retried,
                _ => &self.counters.dead,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            self.record(entry, verdict, next_probe_at, now).await;
        }
        match change {
            Change::None | Change::StillFailing { .. } => {}
            Change::Recovered => {
                tracing::info!(%destination, "outbox destination answers again");
                self.wake(destination, now).await;
            }
            Change::Failing {
                next_probe_at,
                held,
            } => {
                tracing::info!(%destination, %next_probe_at, "outbox destination failing; its backlog waits for a probe");
                self.release(&held, next_probe_at).await;
                // The backlog waits a probe interval past the probe (one that succeeds
                // wakes it), so the next failures rewrite only the entries that arrived
                // meanwhile, not a backlog of thousands on every probe.
                let until = next_probe_at + chrono_duration(self.settings.backoff_cap_young);
                if let Err(err) = self
                    .deps
                    .outbox
                    .defer_destination(destination, next_probe_at, until)
                    .await
                {
                    tracing::warn!(error = %err, "cannot defer an outbox destination");
                }
            }
        }
    }

    /// Jittered wait before the next probe of the destination.
    fn probe_delay(&self, destination: &str, now: DateTime<Utc>) -> Duration {
        let (failures, since) = lock(&self.destinations).failures(destination);
        let failing_for = since
            .and_then(|since| (now - since).to_std().ok())
            .unwrap_or_default();
        full_jitter(
            backoff_ceiling(failures, failing_for, &self.settings),
            self.deps.random.as_ref(),
        )
    }

    async fn record(
        &self,
        entry: &OutboxEntry,
        verdict: &Verdict,
        next_probe_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) {
        let outbox = &self.deps.outbox;
        let result = match verdict {
            Verdict::Delivered => outbox.mark_delivered(entry.id, now).await,
            Verdict::Retry { reason, .. } => {
                let delay = full_jitter(
                    backoff_ceiling(entry.attempts, age(entry, now), &self.settings),
                    self.deps.random.as_ref(),
                );
                let mut due = now + chrono_duration(delay);
                if let Some(probe_at) = next_probe_at {
                    due = due.max(probe_at);
                }
                tracing::debug!(id = %entry.id, destination = %entry.destination, %reason, %due, "outbox delivery will be retried");
                outbox
                    .reschedule(entry.id, entry.attempts.saturating_add(1), due, reason)
                    .await
            }
            Verdict::Dead { reason } => {
                tracing::warn!(id = %entry.id, destination = %entry.destination, %reason, "outbox entry dead-lettered");
                outbox.dead_letter(entry.id, now, reason).await
            }
        };
        if let Err(err) = result {
            // The lease runs out and the entry is claimed again; the receiver absorbs a
            // duplicate.
            tracing::warn!(id = %entry.id, error = %err, "cannot record an outbox attempt");
        }
    }

    async fn release(&self, entries: &[OutboxEntry], due: DateTime<Utc>) {
        if entries.is_empty() {
            return;
        }
        let ids: Vec<Uuid> = entries.iter().map(|e| e.id).collect();
        if let Err(err) = self.deps.outbox.release(&ids, due).await {
            tracing::warn!(error = %err, "cannot release outbox claims; their lease will");
        }
        if due <= self.deps.clock.now() {
            self.forget_short_claim();
        }
    }

    async fn wake(&self, destination: &str, now: DateTime<Utc>) {
        if let Err(err) = self.deps.outbox.wake_destination(destination, now).await {
            tracing::warn!(error = %err, "cannot wake an outbox destination");
        }
        self.forget_short_claim();
    }

    /// Entries may be due that the last short claim did not see.
    fn forget_short_claim(&self) {
        *lock(&self.short_claim) = None;
    }

    /// Wakes contacted peers, prunes, refreshes counts and gives back entries held so long
    /// that their lease is running out.
    async fn housekeeping(&self) {
        let now = self.deps.clock.now();
        let wakes = std::mem::take(&mut *lock(&self.wakes));
        for destination in wakes {
            self.wake(&destination, now).await;
        }
        let (prune, refresh) = {
            let mut schedule = lock(&self.schedule);
            let prune = schedule.next_prune.is_none_or(|at| now >= at);
            if prune {
                schedule.next_prune = Some(now + chrono_duration(self.settings.prune_every));
            }
            let refresh = schedule.next_counts.is_none_or(|at| now >= at);
            if refresh {
                schedule.next_counts = Some(now + chrono_duration(self.settings.counts_every));
            }
            (prune, refresh)
        };
        if prune {
            let before = now - chrono_duration(self.settings.retention);
            match self.deps.outbox.prune_delivered(before).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "delivered outbox entries pruned"),
                Err(err) => tracing::warn!(error = %err, "cannot prune the outbox"),
            }
        }
        if refresh {
            match self.deps.outbox.counts(now).await {
                Ok(counts) => *lock(&self.counts) = Some(counts),
                Err(err) => tracing::warn!(error = %err, "cannot count the outbox"),
            }
        }
        let stale = now - chrono_duration(self.settings.lease / 2);
        let held = lock(&self.destinations).take_held(Some(stale));
        self.release(&held, now).await;
    }
}

impl PeerContacts for OutboxDispatcher {
    fn peer_contacted(&self, instance_url: &str) {
        let now = self.deps.clock.now();
        let spellings =
            lock(&self.destinations).contacted(instance_url, now, self.settings.wake_min_interval);
        if spellings.is_empty() {
            return;
        }
        lock(&self.wakes).extend(spellings);
        self.signal.raise();
    }
}

/// The serialized size of an event body, without building the text.
fn body_size(body: &serde_json::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, body);
    count.0
}

/// The peer itself looks unavailable (as opposed to refusing this one entry).
fn peer_unavailable(answer: &Result<u16, PeerError>) -> bool {
    match answer {
        Ok(status) | Err(PeerError::Status(status)) => {
            *status >= 500 || matches!(status, 408 | 429)
        }
        Err(PeerError::Timeout | PeerError::Unreachable(_)) => true,
        Err(PeerError::Invalid(_)) => false,
    }
}
