//! Health of each destination as this dispatcher sees it: deliveries in flight, claimed
//! entries waiting for a slot, and whether the peer is failing (then only one probe at a
//! time goes out and its backlog waits).

use std::collections::{BTreeSet, HashMap, VecDeque};

use chrono::{DateTime, Utc};

use crate::model::{NormalizedUrls, OutboxEntry, normalize_instance_url};

/// What to do with a claimed entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Send it now (`probe`: it tests a failing peer).
    Start { probe: bool },
    /// Keep it until a slot frees (the destination is busy or its probe is out).
    Hold,
    /// Give it back, due at this time (the failing peer's next probe).
    Defer(DateTime<Utc>),
}

/// What a finished attempt changed for its destination.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    None,
    /// The peer answered after failing: wake its backlog.
    Recovered,
    /// The peer became (or stays) failing: its backlog waits until `next_probe_at`; the held
    /// entries are returned for release.
    Failing {
        next_probe_at: DateTime<Utc>,
        held: Vec<OutboxEntry>,
    },
    /// An attempt started before the peer was known failing failed too: nothing changes,
    /// the entry waits for the probe like the rest of the backlog.
    StillFailing {
        next_probe_at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone)]
struct Failing {
    since: DateTime<Utc>,
    failures: u32,
    next_probe_at: DateTime<Utc>,
    probe_in_flight: bool,
}

#[derive(Debug, Default)]
struct State {
    /// The destination as the stored entries spell it (the outbox is keyed on it).
    spellings: BTreeSet<String>,
    /// Requests in flight (the per-destination limit counts these).
    in_flight: usize,
    /// Entries in flight beyond the first of each request (batches).
    riders: usize,
    /// The peer answered a batch as a peer without the batch route does: single events
    /// until then.
    no_batch_until: Option<DateTime<Utc>>,
    failing: Option<Failing>,
    held: VecDeque<(OutboxEntry, DateTime<Utc>)>,
    last_wake: Option<DateTime<Utc>>,
}

impl State {
    /// Healthy (probes go alone) and not known to lack the batch route.
    fn takes_batches(&self, now: DateTime<Utc>) -> bool {
        self.failing.is_none() && self.no_batch_until.is_none_or(|until| now >= until)
    }
}

/// All destinations, keyed by normalized instance URL.
#[derive(Debug)]
pub struct Destinations {
    per_destination: usize,
    states: HashMap<String, State>,
    /// Destinations as spelled, normalized: the same few are looked up on every delivery
    /// and every signed request.
    normalized: NormalizedUrls,
}

impl Destinations {
    pub fn new(per_destination: usize) -> Self {
        Destinations {
            per_destination: per_destination.max(1),
            states: HashMap::new(),
            normalized: NormalizedUrls::default(),
        }
    }

    /// The key of `destination`: its normalized URL.
    fn key(&mut self, destination: &str) -> String {
        self.normalized.normalize(destination)
    }

    fn state(&mut self, destination: &str) -> &mut State {
        let key = self.key(destination);
        let state = self.states.entry(key).or_default();
        if !state.spellings.contains(destination) {
            state.spellings.insert(destination.to_string());
        }
        state
    }

    /// Decides about a freshly claimed entry; `Hold` keeps it (with its claim time).
    pub fn admit(
        &mut self,
        entry: OutboxEntry,
        now: DateTime<Utc>,
    ) -> (Admit, Option<OutboxEntry>) {
        let per = self.per_destination;
        let state = self.state(&entry.destination);
        let admit = decide(state, per, now);
        match admit {
            Admit::Start { probe } => {
                state.in_flight += 1;
                if probe && let Some(failing) = state.failing.as_mut() {
                    failing.probe_in_flight = true;
                }
                (admit, Some(entry))
            }
            Admit::Hold => {
                state.held.push_back((entry, now));
                (admit, None)
            }
            Admit::Defer(_) => (admit, Some(entry)),
        }
    }

    /// Held entries that may start now, each with whether it is a probe.
    pub fn startable(&mut self, now: DateTime<Utc>) -> Vec<(OutboxEntry, bool)> {
        let per = self.per_destination;
        let mut out = Vec::new();
        for state in self.states.values_mut() {
            while !state.held.is_empty() {
                match decide(state, per, now) {
                    Admit::Start { probe } => {
                        let Some((entry, _)) = state.held.pop_front() else {
                            break;
                        };
                        state.in_flight += 1;
                        if probe && let Some(failing) = state.failing.as_mut() {
                            failing.probe_in_flight = true;
                        }
                        out.push((entry, probe));
                    }
                    _ => break,
                }
            }
        }
        out
    }

    /// Held entries of `destination` to send in one request with an entry that starts now:
    /// at most `max` whose sizes fit in `budget` bytes, oldest first. None while the
    /// destination fails (probes go alone) or is known to lack the batch route.
    pub fn take_riders(
        &mut self,
        destination: &str,
        max: usize,
        mut budget: usize,
        size: impl Fn(&OutboxEntry) -> usize,
        now: DateTime<Utc>,
    ) -> Vec<OutboxEntry> {
        let state = self.state(destination);
        if !state.takes_batches(now) {
            return Vec::new();
        }
        let mut riders = Vec::new();
        while riders.len() < max {
            let Some((entry, _)) = state.held.front() else {
                break;
            };
            let Some(rest) = budget.checked_sub(size(entry)) else {
                break;
            };
            budget = rest;
            if let Some((entry, _)) = state.held.pop_front() {
                riders.push(entry);
            }
        }
        state.riders += riders.len();
        riders
    }

    /// Riders that did not go (the batch was refused) wait again at the head of the queue.
    pub fn give_back(&mut self, destination: &str, riders: Vec<OutboxEntry>, now: DateTime<Utc>) {
        let state = self.state(destination);
        state.riders = state.riders.saturating_sub(riders.len());
        for entry in riders.into_iter().rev() {
            state.held.push_front((entry, now));
        }
    }

    /// The destination answered a batch as a peer without the batch route: it gets single
    /// events until `until`, then batches are tried again (it may have been upgraded).
    pub fn without_batches_until(&mut self, destination: &str, until: DateTime<Utc>) {
        self.state(destination).no_batch_until = Some(until);
    }

    /// Held entries claimed at or before `claimed_before` (their lease is running out) or
    /// all of them (`None`, at shutdown): to be released.
    pub fn take_held(&mut self, claimed_before: Option<DateTime<Utc>>) -> Vec<OutboxEntry> {
        let mut out = Vec::new();
        for state in self.states.values_mut() {
            let (old, keep): (Vec<_>, Vec<_>) = state
                .held
                .drain(..)
                .partition(|(_, at)| claimed_before.is_none_or(|limit| *at <= limit));
            state.held = keep.into_iter().collect();
            out.extend(old.into_iter().map(|(entry, _)| entry));
        }
        out
    }

    /// Records the end of an attempt that carried `riders` entries besides its first.
    /// `peer_down` is `None` when the peer answered in a way that shows it is up,
    /// `Some(delay)` when it looks unavailable (`delay`: the jittered wait before the next
    /// probe, chosen by the caller from [`Self::failures`]).
    pub fn finished(
        &mut self,
        destination: &str,
        probe: bool,
        riders: usize,
        peer_down: Option<std::time::Duration>,
        now: DateTime<Utc>,
    ) -> Change {
        let state = self.state(destination);
        state.in_flight = state.in_flight.saturating_sub(1);
        state.riders = state.riders.saturating_sub(riders);
        match (peer_down, state.failing.as_mut()) {
            (None, Some(_)) => {
                // Any answer from the peer shows it is back, probe or not.
                state.failing = None;
                state.last_wake = Some(now);
                Change::Recovered
            }
            (None, None) => Change::None,
            (Some(delay), failing) => {
                let next_probe_at = now + chrono_duration(delay);
                match failing {
                    Some(failing) if !probe => {
                        return Change::StillFailing {
                            next_probe_at: failing.next_probe_at,
                        };
                    }
                    Some(failing) => {
                        failing.failures += 1;
                        failing.next_probe_at = next_probe_at;
                        failing.probe_in_flight = false;
                    }
                    None => {
                        state.failing = Some(Failing {
                            since: now,
                            failures: 1,
                            next_probe_at,
                            probe_in_flight: false,
                        });
                    }
                }
                let held = state.held.drain(..).map(|(entry, _)| entry).collect();
                Change::Failing {
                    next_probe_at,
                    held,
                }
            }
        }
    }

    /// Consecutive failures of a destination so far and since when it fails (for the probe
    /// backoff); `(0, None)` when healthy.
    pub fn failures(&self, destination: &str) -> (u32, Option<DateTime<Utc>>) {
        let key = match self.normalized.get(destination) {
            Some(key) => key.to_string(),
            None => normalize_instance_url(destination),
        };
        self.states
            .get(&key)
            .and_then(|s| s.failing.as_ref())
            .map_or((0, None), |f| (f.failures, Some(f.since)))
    }

    /// The peer proved it is up (a valid signed request): it is healthy again. Returns the
    /// spellings whose backlog to wake, or nothing when a healthy peer was woken recently.
    pub fn contacted(
        &mut self,
        destination: &str,
        now: DateTime<Utc>,
        min_interval: std::time::Duration,
    ) -> Vec<String> {
        let key = self.key(destination);
        let state = self.states.entry(key).or_default();
        let was_failing = state.failing.take().is_some();
        let recent = state
            .last_wake
            .is_some_and(|at| now < at + chrono_duration(min_interval));
        if !was_failing && recent {
            return Vec::new();
        }
        state.last_wake = Some(now);
        let mut spellings: BTreeSet<String> = state.spellings.clone();
        spellings.insert(destination.to_string());
        spellings.into_iter().collect()
    }

    /// Deliveries abandoned at shutdown no longer hold slots (their leases will run out).
    pub fn forget_in_flight(&mut self) {
        for state in self.states.values_mut() {
            state.in_flight = 0;
            state.riders = 0;
            if let Some(failing) = state.failing.as_mut() {
                failing.probe_in_flight = false;
            }
        }
    }

    /// Entries in flight (requests and their riders).
    pub fn in_flight(&self) -> usize {
        self.states.values().map(|s| s.in_flight + s.riders).sum()
    }

    pub fn held(&self) -> usize {
        self.states.values().map(|s| s.held.len()).sum()
    }

    /// The stored spellings of the destinations with enough entries in flight or held:
    /// `busy`, or for a destination that may take batches, enough to fill every request slot
    /// with a batch of `batch`. Claims leave their backlog alone so that other destinations
    /// get their turn.
    pub fn saturated(&self, busy: usize, batch: usize, now: DateTime<Utc>) -> Vec<String> {
        let per_batches = self.per_destination * batch;
        self.states
            .values()
            .filter(|s| {
                let enough = if s.takes_batches(now) {
                    busy.max(per_batches)
                } else {
                    busy
                };
                s.in_flight + s.riders + s.held.len() >= enough
            })
            .flat_map(|s| s.spellings.iter().cloned())
            .collect()
    }

    #[cfg(test)]
    pub fn is_failing(&self, destination: &str) -> bool {
        self.failures(destination).1.is_some()
    }
}

fn decide(state: &State, per: usize, now: DateTime<Utc>) -> Admit {
    match &state.failing {
        None if state.in_flight < per => Admit::Start { probe: false },
        None => Admit::Hold,
        Some(failing) if failing.probe_in_flight || state.in_flight > 0 => Admit::Hold,
        Some(failing) if now >= failing.next_probe_at => Admit::Start { probe: true },
        Some(failing) => Admit::Defer(failing.next_probe_at),
    }
}

pub fn chrono_duration(duration: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OutboxState;
    use chrono::TimeZone;
    use std::time::Duration;
    use uuid::Uuid;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0)
            .single()
            .expect("time")
    }

    fn entry(n: u128, destination: &str) -> OutboxEntry {
        OutboxEntry {
            id: Uuid::from_u128(n),
            destination: destination.to_string(),
            action_name: "connect".into(),
            action_id: Uuid::from_u128(1),
            update_count: n as u32,
            body: serde_json::json!({}),
            state: OutboxState::Pending,
            attempts: 0,
            next_attempt_at: at(0),
            last_error: None,
            created_at: at(0),
            finished_at: None,
        }
    }

    const A: &str = "http://a.example.org";

    #[test]
    fn healthy_destination_takes_up_to_n_then_holds() {
        let mut d = Destinations::new(2);
        let admits: Vec<Admit> = (0..4).map(|n| d.admit(entry(n, A), at(0)).0).collect();
        assert_eq!(
            admits,
            [
                Admit::Start { probe: false },
                Admit::Start { probe: false },
                Admit::Hold,
                Admit::Hold
            ]
        );
        assert_eq!(d.finished(A, false, 0, None, at(1)), Change::None);
        assert_eq!(d.startable(at(1)).len(), 1);
        assert_eq!(d.held(), 1);
    }

    #[test]
    fn failing_destination_sends_one_probe_after_its_delay() {
        let mut d = Destinations::new(4);
        d.admit(entry(1, A), at(0));
        d.admit(entry(2, A), at(0));
        let change = d.finished(A, false, 0, Some(Duration::from_secs(10)), at(1));
        assert!(matches!(change, Change::Failing { next_probe_at, .. } if next_probe_at == at(11)));
        // The other attempt, started before, fails too: the schedule stands.
        let change = d.finished(A, false, 0, Some(Duration::from_secs(99)), at(2));
        assert_eq!(
            change,
            Change::StillFailing {
                next_probe_at: at(11)
            }
        );
        assert_eq!(d.admit(entry(3, A), at(5)).0, Admit::Defer(at(11)));
        assert_eq!(d.admit(entry(4, A), at(11)).0, Admit::Start { probe: true });
        assert_eq!(d.admit(entry(5, A), at(11)).0, Admit::Hold);
        // The probe fails: held entries go back, the delay grows.
        let Change::Failing {
            next_probe_at,
            held,
        } = d.finished(A, true, 0, Some(Duration::from_secs(20)), at(12))
        else {
            panic!("failing expected");
        };
        assert_eq!((next_probe_at, held.len()), (at(32), 1));
        assert_eq!(d.failures(A).0, 2);
        assert_eq!(d.admit(entry(6, A), at(32)).0, Admit::Start { probe: true });
        assert_eq!(d.finished(A, true, 0, None, at(33)), Change::Recovered);
        assert!(!d.is_failing(A));
    }

    #[test]
    fn riders_come_from_the_held_queue_within_count_and_size() {
        let mut d = Destinations::new(1);
        for n in 0..6 {
            d.admit(entry(n, A), at(0));
        }
        let size = |e: &OutboxEntry| if e.id == Uuid::from_u128(4) { 100 } else { 10 };
        let ids = |riders: &[OutboxEntry]| -> Vec<u128> {
            riders.iter().map(|e| e.id.as_u128()).collect()
        };
        // Oldest first; stops at the first entry over the budget, keeping the order.
        let riders = d.take_riders(A, 10, 35, size, at(0));
        assert_eq!(ids(&riders), [1, 2, 3]);
        assert_eq!((d.in_flight(), d.held()), (4, 2));
        d.give_back(A, riders, at(1));
        assert_eq!((d.in_flight(), d.held()), (1, 5));
        let riders = d.take_riders(A, 2, 1000, size, at(1));
        assert_eq!(ids(&riders), [1, 2], "given back at the head of the queue");
        assert_eq!(d.finished(A, false, 2, None, at(2)), Change::None);
        assert_eq!(d.in_flight(), 0);
        // No riders for a destination without the route, until the recheck.
        d.without_batches_until(A, at(60));
        assert!(d.take_riders(A, 10, 1000, size, at(59)).is_empty());
        assert_eq!(d.take_riders(A, 10, 1000, size, at(60)).len(), 3);
    }

    #[test]
    fn a_failing_destination_takes_no_riders() {
        let mut d = Destinations::new(4);
        d.admit(entry(1, A), at(0));
        d.finished(A, false, 0, Some(Duration::from_secs(10)), at(0));
        d.admit(entry(2, A), at(10));
        assert_eq!(d.admit(entry(3, A), at(10)).0, Admit::Hold);
        assert!(d.take_riders(A, 10, 1000, |_| 1, at(10)).is_empty());
    }

    #[test]
    fn contact_heals_and_is_rate_limited_while_healthy() {
        let mut d = Destinations::new(4);
        d.admit(entry(1, "http://a.example.org/"), at(0));
        d.finished(A, false, 0, Some(Duration::from_secs(60)), at(0));
        assert_eq!(
            d.contacted(A, at(1), Duration::from_secs(5)),
            vec![
                "http://a.example.org".to_string(),
                "http://a.example.org/".to_string()
            ]
        );
        assert!(!d.is_failing(A));
        assert!(d.contacted(A, at(2), Duration::from_secs(5)).is_empty());
        assert!(!d.contacted(A, at(7), Duration::from_secs(5)).is_empty());
    }
}
