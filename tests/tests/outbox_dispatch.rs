//! The outbox dispatcher on the SQL outbox: two replicas share one backlog, the peer fails
//! now and then, every event arrives and the idempotent receiver stores each once.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use dpg_adapters::sql::{SqlActionRepository, SqlOutbox};
use dpg_adapters::system::{SystemClock, SystemRandom, TokioTimer};
use dpg_core::model::{ActionEvent, ActionRecord, ItemFilter, ItemRef, Locality, OutboxEntry};
use dpg_core::ports::{
    ActionRepository, BatchAnswer, NewAction, Outbox, PeerAnswer, PeerError, PeerPage,
    PeerPageAnswer, PeerTransport,
};
use dpg_core::services::{OutboxDeps, OutboxDispatcher, OutboxSettings};
use dpg_tests::support::postgres::TestDatabase;
use serde_json::{Value, json};
use uuid::Uuid;

const SOURCE: &str = "http://student.example.org";
const TARGET: &str = "http://tutor.example.org";

#[derive(Default)]
struct Receiver {
    stored: Mutex<HashSet<(String, u64)>>,
    arrivals: AtomicU64,
    in_flight: Mutex<(usize, usize)>,
    calls: AtomicU64,
}

#[async_trait]
impl PeerTransport for Receiver {
    async fn count_local(&self, _: &str, _: &ItemFilter, _: &str) -> Result<u64, PeerError> {
        Err(PeerError::Timeout)
    }
    async fn fetch_local(
        &self,
        _: &str,
        _: &ItemFilter,
        _: &PeerPage,
        _: &str,
    ) -> Result<PeerPageAnswer, PeerError> {
        Err(PeerError::Timeout)
    }
    async fn perform_action(
        &self,
        _: &str,
        _: &Value,
        _: &str,
        _: &str,
    ) -> Result<PeerAnswer, PeerError> {
        Err(PeerError::Timeout)
    }
    async fn store_event(&self, peer: &str, body: &Value, _: &str) -> Result<u16, PeerError> {
        assert_eq!(peer, SOURCE);
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        self.enter();
        tokio::time::sleep(Duration::from_millis(2)).await;
        let answer = if n % 5 == 3 {
            Ok(503)
        } else {
            self.store(body);
            // Every seventh answer is lost after the receiver stored the event.
            if n % 7 == 6 {
                Err(PeerError::Timeout)
            } else {
                Ok(201)
            }
        };
        self.leave();
        answer
    }

    async fn store_events(
        &self,
        peer: &str,
        bodies: Vec<Value>,
        _: &str,
    ) -> Result<BatchAnswer, PeerError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        self.enter();
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(peer, SOURCE);
        let answer = if n % 5 == 3 {
            Err(PeerError::Status(503))
        } else {
            // Every fourth event of a batch fails on its own (a storage hiccup).
            let statuses = bodies
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    if i % 4 == 3 {
                        503
                    } else {
                        self.store(body);
                        201
                    }
                })
                .collect();
            if n % 7 == 6 {
                Err(PeerError::Timeout)
            } else {
                Ok(BatchAnswer::Statuses(statuses))
            }
        };
        self.leave();
        answer
    }
}

impl Receiver {
    fn enter(&self) {
        let mut f = self.in_flight.lock().expect("lock");
        f.0 += 1;
        f.1 = f.1.max(f.0);
    }

    fn leave(&self) {
        self.in_flight.lock().expect("lock").0 -= 1;
    }

    /// A duplicate is stored once and answered 201 (`event_id: null`), as the reference's
    /// receiver does.
    fn store(&self, body: &Value) {
        self.arrivals.fetch_add(1, Ordering::SeqCst);
        let key = (
            body["action_id"].as_str().unwrap_or_default().to_string(),
            body["update_count"].as_u64().unwrap_or_default(),
        );
        self.stored.lock().expect("lock").insert(key);
    }
}

fn item(domain: &str, url: &str) -> ItemRef {
    ItemRef {
        network: "yellow_dot".into(),
        domain: domain.into(),
        item_type: "profile_1.0".into(),
        item_id: Uuid::new_v4(),
        instance_url: url.into(),
    }
}

fn new_action() -> NewAction {
    let now = Utc::now();
    let action = ActionRecord {
        action_name: "connect".into(),
        action_id: Uuid::new_v4(),
        action_status: "created".into(),
        update_count: 0,
        source: item("student", SOURCE),
        source_item_owner: Some("asha".into()),
        target: item("tutor", TARGET),
        target_item_owner: Some("ravi".into()),
        locality: Locality {
            source: false,
            target: true,
        },
        requirements_snapshot: json!({}),
        remarks: None,
        created_at: now,
        updated_at: now,
    };
    let event = ActionEvent {
        action_name: "connect".into(),
        event_id: Uuid::new_v4(),
        origin_instance_domain: TARGET.into(),
        action_id: action.action_id,
        action_status: "created".into(),
        update_count: 0,
        source: action.source.clone(),
        source_item_owner: action.source_item_owner.clone(),
        source_item_latitude: None,
        source_item_longitude: None,
        target: action.target.clone(),
        target_item_owner: action.target_item_owner.clone(),
        target_item_latitude: None,
        target_item_longitude: None,
        locality: action.locality,
        event_payload: json!({"status": "created"}),
        remarks: None,
        created_at: now,
    };
    NewAction {
        action,
        outbox: Some(OutboxEntry::for_event(Uuid::new_v4(), SOURCE, &event)),
        event,
        idempotency: None,
    }
}

async fn two_replicas_deliver_every_event_once(database: TestDatabase) {
    let db = database.migrated().await.expect("migrated");
    let actions = SqlActionRepository::new(&db);
    let mut produced = HashSet::new();
    for _ in 0..120 {
        let new = new_action();
        produced.insert((new.action.action_id.to_string(), 0u64));
        actions.create(&new).await.expect("create");
    }
    let receiver = Arc::new(Receiver::default());
    let settings = OutboxSettings {
        poll_interval: Duration::from_millis(50),
        backoff_base: Duration::from_millis(10),
        backoff_cap_young: Duration::from_millis(200),
        lease: Duration::from_secs(2),
        ..OutboxSettings::default()
    };
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let pool = database.connect().await.expect("pool");
        let outbox: Arc<dyn Outbox> = Arc::new(SqlOutbox::new(&pool));
        replicas.push((
            Arc::new(OutboxDispatcher::new(
                OutboxDeps {
                    outbox,
                    transport: receiver.clone(),
                    clock: Arc::new(SystemClock),
                    timer: Arc::new(TokioTimer),
                    random: Arc::new(SystemRandom),
                },
                settings.clone(),
            )),
            pool,
        ));
    }
    let outbox = SqlOutbox::new(&db);
    let started = std::time::Instant::now();
    let done = async {
        loop {
            let counts = outbox.counts(Utc::now()).await.expect("counts");
            if counts.pending == 0 || started.elapsed() > Duration::from_secs(60) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runs = replicas.iter().map(|(d, _)| {
        let mut stopped = stopped.clone();
        let d = d.clone();
        async move {
            d.run(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
        }
    });
    let all = futures::future::join_all(runs);
    let driver = async {
        done.await;
        let _ = stop.send(true);
    };
    let (_, reports) = tokio::join!(driver, all);
    let counts = outbox.counts(Utc::now()).await.expect("counts");
    assert_eq!(
        (counts.pending, counts.dead, counts.delivered),
        (0, 0, 120),
        "{reports:?}"
    );
    let stored = receiver.stored.lock().expect("lock").clone();
    assert_eq!(stored, produced);
    let max = receiver.in_flight.lock().expect("lock").1;
    assert!(
        max <= 2 * settings.concurrency_per_destination,
        "{max} in flight"
    );
    eprintln!(
        "delivered 120 in {:?}; {} calls, {} arrivals, max {max} in flight",
        started.elapsed(),
        receiver.calls.load(Ordering::SeqCst),
        receiver.arrivals.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn sqlite_two_replicas_deliver_every_event_once() {
    two_replicas_deliver_every_event_once(TestDatabase::sqlite().expect("sqlite")).await;
}

#[tokio::test]
async fn postgres_two_replicas_deliver_every_event_once() {
    two_replicas_deliver_every_event_once(TestDatabase::postgres().await.expect("postgres")).await;
}
