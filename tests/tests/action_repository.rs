//! Contract suite of the `ActionRepository` and `Outbox` ports, run against SQLite and
//! PostgreSQL: transactional writes, idempotent creates, atomic counts, idempotent event
//! ingestion, owner-scoped fetches that count an owner only where its item lives, the
//! backfill of that locality, and outbox claims that never hand one entry to two dispatchers.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use dpg_adapters::sql::{SqlActionRepository, SqlDatabase, SqlItemRepository, SqlOutbox};
use dpg_core::error::CoreError;
use dpg_core::model::{
    ActionEvent, ActionQuery, ActionRecord, Item, ItemRef, Locality, OutboxEntry, OutboxState,
    OwnershipRole,
};
use dpg_core::ports::{
    ActionRepository, Created, IdempotencyKey, ItemRepository, NewAction, Outbox, StatusChange,
};
use dpg_tests::support::postgres::TestDatabase;
use serde_json::json;
use tokio::sync::Barrier;
use uuid::Uuid;

const TARGET: &str = "http://tutor.example.org";
const SOURCE: &str = "http://student.example.org";

/// A migrated database with both adapters on one pool; the database is dropped with it.
struct Backend {
    actions: Arc<SqlActionRepository>,
    outbox: Arc<SqlOutbox>,
    db: SqlDatabase,
    database: TestDatabase,
}

impl Backend {
    /// An outbox on a pool of its own, as another replica would have.
    async fn second_outbox(&self) -> SqlOutbox {
        let db = self.database.connect().await.expect("second pool");
        SqlOutbox::new(&db)
    }
}

async fn backend(database: TestDatabase) -> Backend {
    let db = database.migrated().await.expect("test database migrates");
    Backend {
        actions: Arc::new(SqlActionRepository::new(&db)),
        outbox: Arc::new(SqlOutbox::new(&db)),
        db,
        database,
    }
}

async fn sqlite_backend() -> Backend {
    backend(TestDatabase::sqlite().expect("temporary SQLite database")).await
}

async fn postgres_backend() -> Backend {
    backend(
        TestDatabase::postgres()
            .await
            .expect("PostgreSQL test database"),
    )
    .await
}

fn at(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_750_000_000_000 + millis).expect("valid timestamp")
}

fn item(domain: &str, instance_url: &str) -> ItemRef {
    ItemRef {
        network: "yellow_dot".into(),
        domain: domain.into(),
        item_type: "profile_1.0".into(),
        item_id: Uuid::new_v4(),
        instance_url: instance_url.into(),
    }
}

/// Both items count as local, so both owners see the action (as on an instance that holds
/// both items); see `owners_count_only_where_their_item_lives` for the other cases.
fn action(source_owner: &str, target_owner: &str, created: DateTime<Utc>) -> ActionRecord {
    ActionRecord {
        action_name: "connect".into(),
        action_id: Uuid::new_v4(),
        action_status: "created".into(),
        update_count: 0,
        source: item("student", SOURCE),
        source_item_owner: Some(source_owner.into()),
        target: item("tutor", TARGET),
        target_item_owner: Some(target_owner.into()),
        locality: Locality {
            source: true,
            target: true,
        },
        requirements_snapshot: json!({"subject": "maths", "hours": 2}),
        remarks: None,
        created_at: created,
        updated_at: created,
    }
}

/// An event of `action` with the given status and count, stamped `created`.
fn event(action: &ActionRecord, status: &str, count: u32, created: DateTime<Utc>) -> ActionEvent {
    ActionEvent {
        action_name: action.action_name.clone(),
        event_id: Uuid::new_v4(),
        origin_instance_domain: TARGET.into(),
        action_id: action.action_id,
        action_status: status.into(),
        update_count: count,
        source: action.source.clone(),
        source_item_owner: action.source_item_owner.clone(),
        source_item_latitude: None,
        source_item_longitude: None,
        target: action.target.clone(),
        target_item_owner: action.target_item_owner.clone(),
        target_item_latitude: Some(12.9716),
        target_item_longitude: Some(77.5946),
        locality: action.locality,
        event_payload: json!({"status": status, "remark": format!("Action status set to {status}")}),
        remarks: None,
        created_at: created,
    }
}

/// A create with its initial event, an outbox entry for the source, and optionally a key.
fn new_action(action: &ActionRecord, key: Option<IdempotencyKey>) -> NewAction {
    let event = event(action, "created", 0, action.created_at);
    NewAction {
        action: action.clone(),
        outbox: Some(OutboxEntry::for_event(Uuid::new_v4(), SOURCE, &event)),
        event,
        idempotency: key,
    }
}

fn key(name: &str, expires_at: DateTime<Utc>) -> IdempotencyKey {
    IdempotencyKey {
        source_instance: SOURCE.into(),
        key: name.into(),
        expires_at,
    }
}

fn status_change(action: &ActionRecord, status: &str, when: DateTime<Utc>) -> StatusChange {
    // The count is a placeholder: the repository sets the new one.
    let event = event(action, status, 0, when);
    StatusChange {
        action_id: action.action_id,
        action_status: status.into(),
        remarks: Some(format!("now {status}")),
        at: when,
        outbox: Some(OutboxEntry::for_event(Uuid::new_v4(), SOURCE, &event)),
        event: ActionEvent {
            remarks: Some(format!("now {status}")),
            ..event
        },
    }
}

fn query(user: &str, role: OwnershipRole) -> ActionQuery {
    ActionQuery {
        user: user.into(),
        role,
        action_id: None,
        action_name: None,
        action_status: None,
        item_id: None,
        update_count: None,
        limit: 100,
        offset: 0,
    }
}

/// The stored copy of an action, which the test knows is there.
async fn stored_copy(b: &Backend, action_id: Uuid) -> ActionRecord {
    b.actions
        .find(action_id)
        .await
        .expect("find")
        .expect("copy")
}

async fn create_new(repo: &dyn ActionRepository, new: &NewAction) -> ActionRecord {
    match repo.create(new).await.expect("create") {
        Created::New(stored) => stored,
        other => panic!("expected a new action, got {other:?}"),
    }
}

fn ids(actions: &[ActionRecord]) -> Vec<Uuid> {
    actions.iter().map(|a| a.action_id).collect()
}

/// The contract, one async fn per behaviour, each on an empty migrated database.
mod suite {
    use super::*;

    pub async fn create_stores_the_action_its_event_and_its_outbox_entry(b: &Backend) {
        let stored = action("asha", "ravi", at(1_234));
        let new = new_action(&stored, None);
        assert_eq!(create_new(&*b.actions, &new).await, stored);

        assert_eq!(
            b.actions.find(stored.action_id).await.expect("find"),
            Some(stored.clone())
        );
        assert_eq!(b.actions.find(Uuid::new_v4()).await.expect("find"), None);
        assert_eq!(
            b.actions.events_of(stored.action_id).await.expect("events"),
            vec![new.event.clone()]
        );
        let entries = b.outbox.list_undelivered(10).await.expect("list");
        assert_eq!(entries, vec![new.outbox.clone().expect("entry")]);
        let counts = b.outbox.counts(at(11_234)).await.expect("counts");
        assert_eq!((counts.pending, counts.delivered, counts.dead), (1, 0, 0));
        assert_eq!(counts.oldest_pending_seconds, Some(10));
    }

    pub async fn a_create_without_outbox_entry_writes_none(b: &Backend) {
        let stored = action("asha", "ravi", at(0));
        let new = NewAction {
            outbox: None,
            ..new_action(&stored, None)
        };
        create_new(&*b.actions, &new).await;
        assert!(
            b.outbox
                .list_undelivered(10)
                .await
                .expect("list")
                .is_empty()
        );
        assert_eq!(
            b.actions
                .events_of(stored.action_id)
                .await
                .expect("events")
                .len(),
            1
        );
    }

    pub async fn the_same_key_twice_replays_the_first_action_with_its_status(b: &Backend) {
        let first = action("asha", "ravi", at(0));
        create_new(
            &*b.actions,
            &new_action(&first, Some(key("k1", at(60_000)))),
        )
        .await;
        b.actions
            .update_status(&status_change(&first, "accepted", at(1_000)))
            .await
            .expect("update")
            .expect("exists");

        let retry = action("asha", "ravi", at(2_000));
        let replayed = b
            .actions
            .create(&new_action(&retry, Some(key("k1", at(62_000)))))
            .await
            .expect("create");
        let Created::Replayed(replayed) = replayed else {
            panic!("expected a replay, got {replayed:?}");
        };
        assert_eq!(replayed.action_id, first.action_id);
        assert_eq!(replayed.action_status, "accepted");
        assert_eq!(replayed.update_count, 1);

        assert_eq!(b.actions.find(retry.action_id).await.expect("find"), None);
        assert!(
            b.actions
                .events_of(retry.action_id)
                .await
                .expect("events")
                .is_empty()
        );
        let all = b
            .actions
            .fetch_actions(&query("asha", OwnershipRole::All))
            .await
            .expect("fetch");
        assert_eq!(all.total, 1);
        // Initial entry and the update's: nothing from the replay.
        assert_eq!(b.outbox.list_undelivered(10).await.expect("list").len(), 2);

        // The key belongs to its source instance only.
        let other_source = IdempotencyKey {
            source_instance: "http://other.example.org".into(),
            ..key("k1", at(62_000))
        };
        let elsewhere = action("asha", "ravi", at(2_000));
        create_new(&*b.actions, &new_action(&elsewhere, Some(other_source))).await;
    }

    pub async fn an_expired_key_may_be_used_for_a_new_action(b: &Backend) {
        let first = action("asha", "ravi", at(0));
        create_new(&*b.actions, &new_action(&first, Some(key("k1", at(1_000))))).await;

        // At the moment of expiry the key is free again.
        let second = action("asha", "ravi", at(1_000));
        create_new(
            &*b.actions,
            &new_action(&second, Some(key("k1", at(100_000)))),
        )
        .await;

        let third = action("asha", "ravi", at(5_000));
        match b
            .actions
            .create(&new_action(&third, Some(key("k1", at(105_000)))))
            .await
            .expect("create")
        {
            Created::Replayed(replayed) => assert_eq!(replayed.action_id, second.action_id),
            other => panic!("expected a replay of the second action, got {other:?}"),
        }
        let all = b
            .actions
            .fetch_actions(&query("asha", OwnershipRole::All))
            .await
            .expect("fetch");
        assert_eq!(all.total, 2);
    }

    pub async fn concurrent_creates_with_one_key_store_one_action(b: &Backend) {
        let start = Arc::new(Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let repo = Arc::clone(&b.actions);
                let start = Arc::clone(&start);
                let new = new_action(&action("asha", "ravi", at(0)), Some(key("k", at(60_000))));
                tokio::spawn(async move {
                    start.wait().await;
                    repo.create(&new).await
                })
            })
            .collect();
        let mut created = Vec::new();
        let mut replayed = Vec::new();
        for task in tasks {
            match task.await.expect("task").expect("create") {
                Created::New(a) => created.push(a.action_id),
                Created::Replayed(a) => replayed.push(a.action_id),
            }
        }
        assert_eq!(created.len(), 1, "exactly one create stores");
        assert_eq!(replayed.len(), 7);
        assert!(replayed.iter().all(|id| *id == created[0]));

        let all = b
            .actions
            .fetch_actions(&query("asha", OwnershipRole::All))
            .await
            .expect("fetch");
        assert_eq!(ids(&all.rows), created);
        let events = b
            .actions
            .fetch_events(&query("asha", OwnershipRole::All))
            .await
            .expect("fetch");
        assert_eq!(events.total, 1);
        assert_eq!(b.outbox.list_undelivered(100).await.expect("list").len(), 1);
    }

    pub async fn concurrent_status_updates_each_get_their_own_count(b: &Backend) {
        let stored = action("asha", "ravi", at(0));
        create_new(&*b.actions, &new_action(&stored, None)).await;

        let start = Arc::new(Barrier::new(20));
        let tasks: Vec<_> = (1..=20)
            .map(|n| {
                let repo = Arc::clone(&b.actions);
                let start = Arc::clone(&start);
                let change = status_change(&stored, &format!("s{n}"), at(n * 10));
                tokio::spawn(async move {
                    start.wait().await;
                    repo.update_status(&change).await
                })
            })
            .collect();
        let mut counts = Vec::new();
        for task in tasks {
            let (record, event) = task
                .await
                .expect("task")
                .expect("update")
                .expect("the action exists");
            assert_eq!(record.update_count, event.update_count);
            assert_eq!(record.action_status, event.action_status);
            counts.push(record.update_count);
        }
        counts.sort_unstable();
        assert_eq!(counts, (1..=20).collect::<Vec<u32>>());

        let events = b.actions.events_of(stored.action_id).await.expect("events");
        assert_eq!(
            events.iter().map(|e| e.update_count).collect::<Vec<_>>(),
            (0..=20).collect::<Vec<u32>>()
        );
        let entries = b.outbox.list_undelivered(100).await.expect("list");
        assert_eq!(entries.len(), 21);
        let mut outbox_counts: Vec<u32> = entries
            .iter()
            .map(|e| {
                assert_eq!(e.body["update_count"], json!(e.update_count));
                e.update_count
            })
            .collect();
        outbox_counts.sort_unstable();
        assert_eq!(outbox_counts, (0..=20).collect::<Vec<u32>>());
        let found = b
            .actions
            .find(stored.action_id)
            .await
            .expect("find")
            .expect("exists");
        assert_eq!(found.update_count, 20);
    }

    pub async fn a_status_update_keeps_remarks_when_none_are_given(b: &Backend) {
        let stored = action("asha", "ravi", at(0));
        create_new(&*b.actions, &new_action(&stored, None)).await;

        let (record, event) = b
            .actions
            .update_status(&status_change(&stored, "accepted", at(1_000)))
            .await
            .expect("update")
            .expect("exists");
        assert_eq!(record.remarks.as_deref(), Some("now accepted"));
        assert_eq!(record.updated_at, at(1_000));
        assert_eq!(record.created_at, at(0));
        assert_eq!(event.update_count, 1);

        let mut change = status_change(&stored, "completed", at(2_000));
        change.remarks = None;
        change.event.remarks = None;
        change.outbox = None;
        let (record, event) = b
            .actions
            .update_status(&change)
            .await
            .expect("update")
            .expect("exists");
        assert_eq!(record.action_status, "completed");
        assert_eq!(record.update_count, 2);
        assert_eq!(record.remarks.as_deref(), Some("now accepted"));
        assert_eq!(event.remarks, None);
        assert_eq!(
            b.actions.find(stored.action_id).await.expect("find"),
            Some(record)
        );
        let stored_events = b.actions.events_of(stored.action_id).await.expect("events");
        assert_eq!(stored_events.last(), Some(&event));
        // Without an outbox entry, only the create's and the first update's rows exist.
        assert_eq!(b.outbox.list_undelivered(10).await.expect("list").len(), 2);

        let missing = status_change(&action("a", "b", at(0)), "accepted", at(3_000));
        assert_eq!(
            b.actions.update_status(&missing).await.expect("update"),
            None
        );
        assert!(
            b.actions
                .events_of(missing.action_id)
                .await
                .expect("events")
                .is_empty()
        );
    }

    pub async fn store_event_ignores_duplicates_and_moves_the_copy_only_forward(b: &Backend) {
        let copy = action("asha", "ravi", at(0));
        b.actions.record_initiated(&copy).await.expect("record");
        // A second answer for the same action changes nothing.
        let mut again = copy.clone();
        again.action_status = "bogus".into();
        b.actions.record_initiated(&again).await.expect("record");
        assert_eq!(
            b.actions.find(copy.action_id).await.expect("find"),
            Some(copy.clone())
        );

        let mut second = event(&copy, "accepted", 2, at(2_000));
        second.remarks = Some("see you".into());
        assert_eq!(
            b.actions.store_event(&second).await.expect("store"),
            Some(second.event_id)
        );
        let found = stored_copy(b, copy.action_id).await;
        assert_eq!(
            (
                found.action_status.as_str(),
                found.update_count,
                found.remarks.as_deref()
            ),
            ("accepted", 2, Some("see you"))
        );
        assert_eq!(found.updated_at, at(2_000));

        // Redelivery (a new event id, the same key): ignored.
        let redelivered = ActionEvent {
            event_id: Uuid::new_v4(),
            ..second.clone()
        };
        assert_eq!(
            b.actions.store_event(&redelivered).await.expect("store"),
            None
        );

        // An older event arriving late is stored but does not move the copy back.
        let first = event(&copy, "seen", 1, at(3_000));
        assert_eq!(
            b.actions.store_event(&first).await.expect("store"),
            Some(first.event_id)
        );
        let found = stored_copy(b, copy.action_id).await;
        assert_eq!(
            (found.action_status.as_str(), found.update_count),
            ("accepted", 2)
        );

        // A newer one without remarks keeps the stored remarks (as on the target).
        let third = event(&copy, "completed", 3, at(4_000));
        b.actions.store_event(&third).await.expect("store");
        let found = stored_copy(b, copy.action_id).await;
        assert_eq!(
            (
                found.action_status.as_str(),
                found.update_count,
                found.remarks.as_deref()
            ),
            ("completed", 3, Some("see you"))
        );

        // The same count from another origin is another event.
        let elsewhere = ActionEvent {
            event_id: Uuid::new_v4(),
            origin_instance_domain: "http://other.example.org".into(),
            ..third.clone()
        };
        assert!(
            b.actions
                .store_event(&elsewhere)
                .await
                .expect("store")
                .is_some()
        );

        let counts: Vec<u32> = b
            .actions
            .events_of(copy.action_id)
            .await
            .expect("events")
            .iter()
            .map(|e| e.update_count)
            .collect();
        assert_eq!(counts, vec![1, 2, 3, 3]);
        assert_eq!(
            b.actions.events_of(copy.action_id).await.expect("events")[1],
            second
        );
    }

    pub async fn events_without_a_copy_are_stored_and_a_late_copy_starts_from_them(b: &Backend) {
        let copy = action("asha", "ravi", at(0));
        let mut newest = event(&copy, "accepted", 2, at(2_000));
        newest.remarks = Some("ok".into());
        b.actions
            .store_event(&event(&copy, "seen", 1, at(1_000)))
            .await
            .expect("store");
        b.actions.store_event(&newest).await.expect("store");
        assert_eq!(b.actions.find(copy.action_id).await.expect("find"), None);

        b.actions.record_initiated(&copy).await.expect("record");
        let found = stored_copy(b, copy.action_id).await;
        assert_eq!(
            (
                found.action_status.as_str(),
                found.update_count,
                found.remarks.as_deref()
            ),
            ("accepted", 2, Some("ok"))
        );
        assert_eq!(found.requirements_snapshot, copy.requirements_snapshot);
    }

    /// The target's answer and its first event race on the source: whichever commits last,
    /// the copy ends at the event.
    pub async fn a_copy_recorded_while_its_event_arrives_ends_at_the_event(b: &Backend) {
        for round in 0..10 {
            let copy = action("asha", "ravi", at(round));
            let first = event(&copy, "accepted", 1, at(round + 1));
            let start = Arc::new(Barrier::new(2));
            let record = {
                let (repo, start, copy) =
                    (Arc::clone(&b.actions), Arc::clone(&start), copy.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    repo.record_initiated(&copy).await
                })
            };
            let store = {
                let (repo, start) = (Arc::clone(&b.actions), Arc::clone(&start));
                tokio::spawn(async move {
                    start.wait().await;
                    repo.store_event(&first).await
                })
            };
            record.await.expect("task").expect("record");
            assert!(store.await.expect("task").expect("store").is_some());
            let found = stored_copy(b, copy.action_id).await;
            assert_eq!(
                (found.action_status.as_str(), found.update_count),
                ("accepted", 1),
                "round {round}"
            );
        }
    }

    pub async fn store_events_answers_each_event_in_order_and_stores_a_key_once(b: &Backend) {
        let copy = action("asha", "ravi", at(0));
        b.actions.record_initiated(&copy).await.expect("record");
        let other = action("asha", "ravi", at(0));
        let seen = event(&copy, "seen", 1, at(1_000));
        b.actions.store_event(&seen).await.expect("store");

        let newest = event(&copy, "completed", 3, at(3_000));
        let redelivered = ActionEvent {
            event_id: Uuid::new_v4(),
            ..seen.clone()
        };
        let of_other = event(&other, "accepted", 1, at(1_500));
        let mut second = event(&copy, "accepted", 2, at(2_000));
        second.remarks = Some("see you".into());
        let second_again = ActionEvent {
            event_id: Uuid::new_v4(),
            ..second.clone()
        };
        let batch = [
            newest.clone(),
            redelivered,
            of_other.clone(),
            second.clone(),
            second_again,
        ];
        assert_eq!(
            b.actions.store_events(&batch).await.expect("store"),
            vec![
                Some(newest.event_id),
                None,
                Some(of_other.event_id),
                Some(second.event_id),
                None
            ]
        );
        // The copy is at the highest count of the batch, whatever the order in it.
        let found = stored_copy(b, copy.action_id).await;
        assert_eq!(
            (
                found.action_status.as_str(),
                found.update_count,
                found.updated_at
            ),
            ("completed", 3, at(3_000))
        );
        let stored = b.actions.events_of(copy.action_id).await.expect("events");
        assert_eq!(
            stored
                .iter()
                .map(|e| (e.update_count, e.event_id))
                .collect::<Vec<_>>(),
            vec![
                (1, seen.event_id),
                (2, second.event_id),
                (3, newest.event_id)
            ]
        );
        assert_eq!(stored[1], second);
        assert_eq!(
            b.actions.events_of(other.action_id).await.expect("events"),
            vec![of_other]
        );
        // Nothing to store, nothing stored.
        assert_eq!(b.actions.store_events(&[]).await.expect("store"), vec![]);
        // Everything again: all duplicates.
        assert_eq!(
            b.actions.store_events(&batch).await.expect("store"),
            vec![None; batch.len()]
        );
    }

    /// Two batches over the same actions in opposite orders, at once: both finish (no
    /// deadlock on the per-action locks) and each key is stored by exactly one of them.
    pub async fn concurrent_batches_over_the_same_actions_store_each_key_once(b: &Backend) {
        const ACTIONS: usize = 50;
        for round in 0..3 {
            let copies: Vec<ActionRecord> = (0..ACTIONS)
                .map(|i| action("asha", "ravi", at(round * 100 + i as i64)))
                .collect();
            for copy in &copies {
                b.actions.record_initiated(copy).await.expect("record");
            }
            let forward: Vec<ActionEvent> = copies
                .iter()
                .map(|c| event(c, "accepted", 1, at(10_000)))
                .collect();
            let backward: Vec<ActionEvent> = copies
                .iter()
                .rev()
                .flat_map(|c| {
                    [
                        event(c, "completed", 2, at(20_000)),
                        event(c, "accepted", 1, at(10_000)),
                    ]
                })
                .collect();
            let start = Arc::new(Barrier::new(2));
            let run = |events: Vec<ActionEvent>| {
                let (repo, start) = (Arc::clone(&b.actions), Arc::clone(&start));
                tokio::spawn(async move {
                    start.wait().await;
                    repo.store_events(&events).await
                })
            };
            let (one, two) = (run(forward.clone()), run(backward.clone()));
            let one = one.await.expect("task").expect("first batch");
            let two = two.await.expect("task").expect("second batch");
            let stored: HashSet<Uuid> = one.iter().chain(&two).flatten().copied().collect();
            assert_eq!(stored.len(), 2 * ACTIONS, "round {round}: each key once");
            for copy in &copies {
                let found = stored_copy(b, copy.action_id).await;
                assert_eq!(
                    (found.action_status.as_str(), found.update_count),
                    ("completed", 2),
                    "round {round}"
                );
                assert_eq!(
                    b.actions
                        .events_of(copy.action_id)
                        .await
                        .expect("events")
                        .len(),
                    2
                );
            }
        }
    }

    pub async fn find_many_answers_only_the_stored_actions(b: &Backend) {
        let created = create_new(
            &*b.actions,
            &new_action(&action("asha", "ravi", at(0)), None),
        )
        .await;
        let copy = action("asha", "ravi", at(5));
        b.actions.record_initiated(&copy).await.expect("record");
        let mut found = b
            .actions
            .find_many(&[
                copy.action_id,
                Uuid::new_v4(),
                created.action_id,
                copy.action_id,
            ])
            .await
            .expect("find many");
        found.sort_by_key(|a| a.created_at);
        assert_eq!(found, vec![created, copy]);
        assert_eq!(b.actions.find_many(&[]).await.expect("none"), vec![]);
        assert_eq!(
            b.actions
                .find_many(&[Uuid::new_v4()])
                .await
                .expect("unknown"),
            vec![]
        );
    }

    pub async fn fetch_actions_filters_by_owner_role_and_fields_in_order(b: &Backend) {
        // a1, a2: asha initiated; a3: asha received; a4: asha on both sides.
        let mut a1 = action("asha", "ravi", at(0));
        a1.updated_at = at(10);
        let mut a2 = action("asha", "meena", at(1));
        a2.updated_at = at(40);
        let mut a3 = action("ravi", "asha", at(2));
        a3.updated_at = at(30);
        let mut a4 = action("asha", "asha", at(3));
        a4.updated_at = at(20);
        a4.action_name = "enrol".into();
        // Same timestamps as a1: action_id breaks the tie.
        let mut a5 = action("zoe", "ravi", at(0));
        a5.updated_at = at(10);
        for a in [&a1, &a2, &a3, &a4, &a5] {
            create_new(&*b.actions, &new_action(a, None)).await;
        }
        let fetch = |q: ActionQuery| {
            let repo = Arc::clone(&b.actions);
            async move { repo.fetch_actions(&q).await.expect("fetch") }
        };

        let all = fetch(query("asha", OwnershipRole::All)).await;
        assert_eq!(all.total, 4);
        assert_eq!(
            all.rows,
            vec![a2.clone(), a3.clone(), a4.clone(), a1.clone()]
        );
        let initiated = fetch(query("asha", OwnershipRole::Initiated)).await;
        assert_eq!(
            ids(&initiated.rows),
            ids(&[a2.clone(), a4.clone(), a1.clone()])
        );
        let received = fetch(query("asha", OwnershipRole::Received)).await;
        assert_eq!(ids(&received.rows), ids(&[a3.clone(), a4.clone()]));
        assert_eq!(fetch(query("nobody", OwnershipRole::All)).await.total, 0);

        let mut ravi = fetch(query("ravi", OwnershipRole::All)).await;
        assert_eq!(ravi.total, 3);
        let mut tied = vec![a1.action_id, a5.action_id];
        tied.sort_unstable_by(|x, y| y.cmp(x));
        assert_eq!(ravi.rows.remove(0).action_id, a3.action_id);
        assert_eq!(ids(&ravi.rows), tied);

        // item_id follows the role: source item for initiated, target for received.
        let mut q = query("asha", OwnershipRole::Initiated);
        q.item_id = Some(a3.target.item_id);
        assert_eq!(fetch(q.clone()).await.total, 0);
        q.role = OwnershipRole::Received;
        assert_eq!(ids(&fetch(q.clone()).await.rows), vec![a3.action_id]);
        q.role = OwnershipRole::All;
        q.item_id = Some(a1.source.item_id);
        assert_eq!(ids(&fetch(q).await.rows), vec![a1.action_id]);

        let mut q = query("asha", OwnershipRole::All);
        q.action_name = Some("enrol".into());
        assert_eq!(ids(&fetch(q).await.rows), vec![a4.action_id]);
        let mut q = query("asha", OwnershipRole::All);
        q.action_id = Some(a2.action_id);
        assert_eq!(ids(&fetch(q).await.rows), vec![a2.action_id]);
        // Another user's action is invisible even by id.
        let mut q = query("asha", OwnershipRole::All);
        q.action_id = Some(a5.action_id);
        assert_eq!(fetch(q).await.total, 0);

        b.actions
            .update_status(&status_change(&a1, "accepted", at(50)))
            .await
            .expect("update");
        let mut q = query("asha", OwnershipRole::All);
        q.action_status = Some("accepted".into());
        assert_eq!(ids(&fetch(q).await.rows), vec![a1.action_id]);
        // The update moved a1 to the front.
        let mut q = query("asha", OwnershipRole::All);
        q.limit = 2;
        q.offset = 1;
        let page = fetch(q).await;
        assert_eq!(page.total, 4);
        assert_eq!(ids(&page.rows), vec![a2.action_id, a3.action_id]);
    }

    pub async fn fetch_events_filters_by_owner_role_and_count_in_order(b: &Backend) {
        let a1 = action("asha", "ravi", at(0));
        let a2 = action("ravi", "asha", at(5));
        create_new(&*b.actions, &new_action(&a1, None)).await;
        create_new(&*b.actions, &new_action(&a2, None)).await;
        b.actions
            .update_status(&status_change(&a1, "accepted", at(10)))
            .await
            .expect("update");
        // Same created_at as a1's update: event_id breaks the tie.
        b.actions
            .update_status(&status_change(&a2, "accepted", at(10)))
            .await
            .expect("update");
        let fetch = |q: ActionQuery| {
            let repo = Arc::clone(&b.actions);
            async move { repo.fetch_events(&q).await.expect("fetch") }
        };

        let all = fetch(query("asha", OwnershipRole::All)).await;
        assert_eq!(all.total, 4);
        let times: Vec<DateTime<Utc>> = all.rows.iter().map(|e| e.created_at).collect();
        assert_eq!(times, vec![at(10), at(10), at(5), at(0)]);
        assert!(all.rows[0].event_id > all.rows[1].event_id);

        let initiated = fetch(query("asha", OwnershipRole::Initiated)).await;
        assert!(initiated.rows.iter().all(|e| e.action_id == a1.action_id));
        assert_eq!(initiated.total, 2);
        let received = fetch(query("asha", OwnershipRole::Received)).await;
        assert!(received.rows.iter().all(|e| e.action_id == a2.action_id));

        let mut q = query("asha", OwnershipRole::All);
        q.update_count = Some(1);
        let updates = fetch(q).await;
        assert_eq!(updates.total, 2);
        assert!(updates.rows.iter().all(|e| e.update_count == 1));
        let mut q = query("asha", OwnershipRole::Received);
        q.item_id = Some(a2.target.item_id);
        q.action_status = Some("created".into());
        let created = fetch(q).await;
        assert_eq!(created.rows.len(), 1);
        assert_eq!(created.rows[0].update_count, 0);
        let mut q = query("asha", OwnershipRole::All);
        q.limit = 1;
        q.offset = 3;
        let last = fetch(q).await;
        assert_eq!(last.total, 4);
        assert_eq!(last.rows.len(), 1);
        assert_eq!(last.rows[0].created_at, at(0));
        assert_eq!(
            fetch(query("ravi", OwnershipRole::Received))
                .await
                .rows
                .len(),
            2
        );
    }

    pub async fn owners_count_only_where_their_item_lives(b: &Backend) {
        let located = |source, target| Locality { source, target };
        // x1: B's view of A's u1 acting on ravi's item; x2: A's view of its ravi acting on
        // B's u1; x3: B's view of A's u1 acting on B's u1 (same id, two people).
        let mut x1 = action("u1", "ravi", at(0));
        x1.locality = located(false, true);
        let mut x2 = action("ravi", "u1", at(1));
        x2.locality = located(true, false);
        let mut x3 = action("u1", "u1", at(2));
        x3.locality = located(false, true);
        for a in [&x1, &x2, &x3] {
            let stored = create_new(&*b.actions, &new_action(a, None)).await;
            assert_eq!(stored.locality, a.locality);
            let found = b.actions.find(a.action_id).await.expect("find");
            assert_eq!(found.map(|f| f.locality), Some(a.locality));
        }
        // A mirrored event on A: the target owner is B's u1.
        let mirrored = event(&x2, "accepted", 1, at(3));
        assert!(
            b.actions
                .store_event(&mirrored)
                .await
                .expect("store")
                .is_some()
        );

        for (user, role, want) in [
            ("u1", OwnershipRole::All, vec![x3.action_id]),
            ("u1", OwnershipRole::Initiated, vec![]),
            ("u1", OwnershipRole::Received, vec![x3.action_id]),
            ("ravi", OwnershipRole::All, vec![x2.action_id, x1.action_id]),
            ("ravi", OwnershipRole::Initiated, vec![x2.action_id]),
            ("ravi", OwnershipRole::Received, vec![x1.action_id]),
        ] {
            let actions = b
                .actions
                .fetch_actions(&query(user, role))
                .await
                .expect("fetch");
            assert_eq!(ids(&actions.rows), want, "actions of {user} as {role:?}");
            assert_eq!(actions.total, want.len() as u64);
            let events = b
                .actions
                .fetch_events(&query(user, role))
                .await
                .expect("fetch");
            let mut of: Vec<Uuid> = events.rows.iter().map(|e| e.action_id).collect();
            of.dedup();
            assert_eq!(of, want, "events of {user} as {role:?}");
        }
    }

    /// Rows written before the locality columns existed: the migration marks a side local
    /// only when an item here matches it (id, URL as spelled, creator).
    pub async fn the_locality_backfill_trusts_only_matching_local_items(b: &Backend) {
        let items = SqlItemRepository::new(&b.db);
        let local = |r: &ItemRef, owner: &str| Item {
            network: r.network.clone(),
            domain: r.domain.clone(),
            item_type: r.item_type.clone(),
            item_id: r.item_id,
            instance_url: r.instance_url.clone(),
            schema_url: format!("{}/schema", r.instance_url),
            state: json!({}),
            latitude: None,
            longitude: None,
            created_by: owner.into(),
            created_at: at(0),
            updated_at: at(0),
        };
        // Both items here, with these creators.
        let both = action("asha", "ravi", at(0));
        items
            .insert(&local(&both.source, "asha"))
            .await
            .expect("item");
        items
            .insert(&local(&both.target, "ravi"))
            .await
            .expect("item");
        // Items elsewhere: the owner ids equal local creators, the items are not ours.
        let remote = action("asha", "ravi", at(1));
        // Our item ids, but another instance's URL (source) and another owner (target).
        let mut claimed = action("asha", "mallory", at(2));
        claimed.source.item_id = both.source.item_id;
        claimed.source.instance_url = "http://elsewhere.example.org".into();
        claimed.target.item_id = both.target.item_id;
        // Another spelling of our URL stays hidden rather than guessed.
        let mut spelled = action("asha", "ravi", at(3));
        spelled.source.item_id = both.source.item_id;
        spelled.source.instance_url = format!("{SOURCE}/");
        spelled.target.item_id = both.target.item_id;
        for a in [&both, &remote, &claimed, &spelled] {
            create_new(&*b.actions, &new_action(a, None)).await;
        }

        // Back to the schema before the migration, then migrate again.
        for table in ["actions", "action_events"] {
            for side in ["source", "target"] {
                b.database
                    .execute(&format!("ALTER TABLE {table} DROP COLUMN {side}_is_local"))
                    .await
                    .expect("drop column");
            }
        }
        b.database
            .execute(
                "DELETE FROM dpg_schema_migrations \
                 WHERE version = 'm20250901_000008_action_item_locality'",
            )
            .await
            .expect("forget the migration");
        // A new pool: statements prepared on the old columns are not reused.
        let db = b.database.connect().await.expect("pool");
        db.migrate().await.expect("migration");
        let repo = SqlActionRepository::new(&db);

        let located = |source, target| Locality { source, target };
        for (a, want) in [
            (&both, located(true, true)),
            (&remote, located(false, false)),
            (&claimed, located(false, false)),
            (&spelled, located(false, true)),
        ] {
            let found = repo.find(a.action_id).await.expect("find").expect("stored");
            assert_eq!(found.locality, want, "action {}", a.action_id);
            let events = repo.events_of(a.action_id).await.expect("events");
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].locality, want, "event of {}", a.action_id);
        }
        let page = repo
            .fetch_actions(&query("asha", OwnershipRole::All))
            .await
            .expect("fetch");
        assert_eq!(ids(&page.rows), vec![both.action_id]);
    }

    pub async fn prune_removes_only_expired_idempotency_keys(b: &Backend) {
        let old = action("asha", "ravi", at(0));
        create_new(&*b.actions, &new_action(&old, Some(key("old", at(1_000))))).await;
        let live = action("asha", "ravi", at(0));
        create_new(
            &*b.actions,
            &new_action(&live, Some(key("live", at(10_000)))),
        )
        .await;

        assert_eq!(
            b.actions
                .prune_idempotency_keys(at(5_000))
                .await
                .expect("prune"),
            1
        );
        assert_eq!(
            b.actions
                .prune_idempotency_keys(at(5_000))
                .await
                .expect("prune"),
            0
        );
        let retry = action("asha", "ravi", at(6_000));
        match b
            .actions
            .create(&new_action(&retry, Some(key("live", at(16_000)))))
            .await
            .expect("create")
        {
            Created::Replayed(a) => assert_eq!(a.action_id, live.action_id),
            other => panic!("the live key still replays, got {other:?}"),
        }
        let fresh = action("asha", "ravi", at(6_000));
        create_new(
            &*b.actions,
            &new_action(&fresh, Some(key("old", at(16_000)))),
        )
        .await;
    }

    /// `n` actions created at 0, 1, 2 ... ms, each with one pending outbox entry.
    async fn pending_entries(b: &Backend, n: i64) -> Vec<OutboxEntry> {
        let mut entries = Vec::new();
        for i in 0..n {
            let new = new_action(&action("asha", "ravi", at(i)), None);
            create_new(&*b.actions, &new).await;
            entries.push(new.outbox.expect("entry"));
        }
        entries
    }

    pub async fn two_claimers_never_get_the_same_entry(b: &Backend) {
        let entries = pending_entries(b, 40).await;
        let other = Arc::new(b.second_outbox().await);
        let start = Arc::new(Barrier::new(2));
        let claimer = |outbox: Arc<dyn Outbox>| {
            let start = Arc::clone(&start);
            async move {
                start.wait().await;
                let mut mine = Vec::new();
                loop {
                    let claimed = outbox
                        .claim_due(at(100_000), 3, at(400_000), &[])
                        .await
                        .expect("claim");
                    if claimed.is_empty() {
                        return mine;
                    }
                    mine.extend(claimed.into_iter().map(|e| e.id));
                    tokio::task::yield_now().await;
                }
            }
        };
        let first = tokio::spawn(claimer(b.outbox.clone()));
        let second = tokio::spawn(claimer(other));
        let (first, second) = (first.await.expect("task"), second.await.expect("task"));
        // Which claimer wins how many depends on scheduling: shown, not asserted.
        eprintln!("claims split {} / {}", first.len(), second.len());
        let mut all: Vec<Uuid> = first.iter().chain(second.iter()).copied().collect();
        let distinct: HashSet<Uuid> = all.iter().copied().collect();
        assert_eq!(distinct.len(), all.len(), "an entry was claimed twice");
        all.sort_unstable();
        let mut expected: Vec<Uuid> = entries.iter().map(|e| e.id).collect();
        expected.sort_unstable();
        assert_eq!(all, expected, "every entry claimed once");
    }

    pub async fn claims_take_due_entries_oldest_first_and_leases_expire(b: &Backend) {
        let entries = pending_entries(b, 3).await;
        // Not due before its time.
        b.outbox
            .reschedule(entries[0].id, 1, at(50_000), "connection refused")
            .await
            .expect("reschedule");

        let claimed = b
            .outbox
            .claim_due(at(10_000), 10, at(40_000), &[])
            .await
            .expect("claim");
        assert_eq!(
            claimed.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![entries[1].id, entries[2].id]
        );
        assert_eq!(claimed[0], entries[1]);
        // Leased: invisible until the lease ends.
        assert!(
            b.outbox
                .claim_due(at(20_000), 10, at(60_000), &[])
                .await
                .expect("claim")
                .is_empty()
        );
        let reclaimed = b
            .outbox
            .claim_due(at(40_000), 1, at(70_000), &[])
            .await
            .expect("claim");
        assert_eq!(
            reclaimed.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![entries[1].id]
        );
        let later = b
            .outbox
            .claim_due(at(60_000), 10, at(90_000), &[])
            .await
            .expect("claim");
        let later: Vec<Uuid> = later.iter().map(|e| e.id).collect();
        assert_eq!(later, vec![entries[2].id, entries[0].id]);
        assert!(
            b.outbox
                .claim_due(at(60_000), 0, at(90_000), &[])
                .await
                .expect("claim")
                .is_empty()
        );

        // Released entries are due again at the given time, lease gone.
        b.outbox
            .release(&[entries[0].id, entries[2].id], at(65_000))
            .await
            .expect("release");
        assert!(
            b.outbox
                .claim_due(at(64_000), 10, at(95_000), &[])
                .await
                .expect("claim")
                .is_empty()
        );
        let released = b
            .outbox
            .claim_due(at(65_000), 10, at(95_000), &[])
            .await
            .expect("claim");
        assert_eq!(released.len(), 2);
        let first = released
            .iter()
            .find(|e| e.id == entries[0].id)
            .expect("released");
        assert_eq!(first.attempts, 1);
        assert_eq!(first.last_error.as_deref(), Some("connection refused"));
        assert_eq!(first.next_attempt_at, at(65_000));
    }

    pub async fn claims_leave_skipped_destinations_alone(b: &Backend) {
        let entries = pending_entries(b, 3).await;
        let destination = entries[0].destination.clone();

        let skipped = b
            .outbox
            .claim_due(
                at(1_000),
                10,
                at(30_000),
                std::slice::from_ref(&destination),
            )
            .await
            .expect("claim");
        assert!(skipped.is_empty(), "{skipped:?}");
        let others = ["http://elsewhere.example".to_string()];
        let claimed = b
            .outbox
            .claim_due(at(1_000), 10, at(30_000), &others)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 3);
        assert!(claimed.iter().all(|e| e.destination == destination));
    }

    /// Marks that arrive together may be written together; every one of them lands.
    pub async fn concurrent_delivered_marks_all_land(b: &Backend) {
        let entries = pending_entries(b, 30).await;
        b.outbox
            .claim_due(at(1_000), 30, at(30_000), &[])
            .await
            .expect("claim");

        let marks = entries
            .iter()
            .enumerate()
            .map(|(i, e)| b.outbox.mark_delivered(e.id, at(2_000 + i as i64)));
        for result in futures::future::join_all(marks).await {
            result.expect("delivered");
        }

        let counts = b.outbox.counts(at(10_000)).await.expect("counts");
        assert_eq!((counts.pending, counts.delivered, counts.dead), (0, 30, 0));
        assert!(
            b.outbox
                .claim_due(at(40_000), 30, at(70_000), &[])
                .await
                .expect("claim")
                .is_empty()
        );
        // Marked no later than the last delivery of the group they were written with.
        assert_eq!(
            b.outbox.prune_delivered(at(2_030)).await.expect("prune"),
            30
        );
    }

    pub async fn the_outbox_lifecycle_from_failure_to_delivery(b: &Backend) {
        let entries = pending_entries(b, 3).await;
        let (e0, e1, e2) = (&entries[0], &entries[1], &entries[2]);

        b.outbox
            .claim_due(at(1_000), 10, at(30_000), &[])
            .await
            .expect("claim");
        b.outbox
            .reschedule(e0.id, 3, at(60_000), "503 from peer")
            .await
            .expect("reschedule");
        b.outbox
            .dead_letter(e1.id, at(2_000), "gave up after 10 attempts")
            .await
            .expect("dead letter");
        b.outbox
            .mark_delivered(e2.id, at(3_000))
            .await
            .expect("delivered");

        let counts = b.outbox.counts(at(10_000)).await.expect("counts");
        assert_eq!((counts.pending, counts.delivered, counts.dead), (1, 1, 1));
        assert_eq!(counts.oldest_pending_seconds, Some(10));

        let listed = b.outbox.list_undelivered(10).await.expect("list");
        assert_eq!(
            listed.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![e1.id, e0.id]
        );
        let dead = &listed[0];
        assert_eq!(dead.state, OutboxState::Dead);
        assert_eq!(dead.finished_at, Some(at(2_000)));
        assert_eq!(
            dead.last_error.as_deref(),
            Some("gave up after 10 attempts")
        );
        let pending = &listed[1];
        assert_eq!(pending.state, OutboxState::Pending);
        assert_eq!(pending.attempts, 3);
        assert_eq!(pending.next_attempt_at, at(60_000));
        assert_eq!(pending.last_error.as_deref(), Some("503 from peer"));
        assert_eq!(b.outbox.list_undelivered(1).await.expect("list").len(), 1);

        // A dead entry is not claimed, nor is one whose time has not come.
        assert!(
            b.outbox
                .claim_due(at(40_000), 10, at(70_000), &[])
                .await
                .expect("claim")
                .is_empty()
        );

        assert_eq!(
            b.outbox
                .redrive(Some("http://nowhere.example".into()), at(41_000))
                .await
                .expect("redrive"),
            0
        );
        assert_eq!(
            b.outbox
                .redrive(Some(SOURCE.into()), at(41_000))
                .await
                .expect("redrive"),
            1
        );
        let redriven = b
            .outbox
            .claim_due(at(41_000), 10, at(70_000), &[])
            .await
            .expect("claim");
        assert_eq!(redriven.len(), 1);
        assert_eq!(redriven[0].id, e1.id);
        assert_eq!(redriven[0].state, OutboxState::Pending);
        assert_eq!(redriven[0].attempts, 0);
        assert_eq!(redriven[0].finished_at, None);
        b.outbox
            .dead_letter(e1.id, at(42_000), "again")
            .await
            .expect("dead");
        assert_eq!(
            b.outbox.redrive(None, at(43_000)).await.expect("redrive"),
            1
        );

        b.outbox
            .mark_delivered(e1.id, at(44_000))
            .await
            .expect("delivered");
        b.outbox
            .mark_delivered(e0.id, at(45_000))
            .await
            .expect("delivered");
        let counts = b.outbox.counts(at(50_000)).await.expect("counts");
        assert_eq!((counts.pending, counts.delivered, counts.dead), (0, 3, 0));
        assert_eq!(counts.oldest_pending_seconds, None);
        assert!(
            b.outbox
                .list_undelivered(10)
                .await
                .expect("list")
                .is_empty()
        );

        // Finished at 3 000, 44 000 and 45 000: strictly before 44 000 goes.
        assert_eq!(
            b.outbox.prune_delivered(at(44_000)).await.expect("prune"),
            1
        );
        assert_eq!(
            b.outbox.prune_delivered(at(46_000)).await.expect("prune"),
            2
        );
        assert_eq!(
            b.outbox.counts(at(50_000)).await.expect("counts").delivered,
            0
        );
    }

    pub async fn a_failing_destination_is_deferred_and_woken(b: &Backend) {
        let entries = pending_entries(b, 2).await;
        let elsewhere = {
            let a = action("asha", "ravi", at(5));
            let mut new = new_action(&a, None);
            let event = new.event.clone();
            new.outbox = Some(OutboxEntry::for_event(
                Uuid::new_v4(),
                "http://other.example",
                &event,
            ));
            create_new(&*b.actions, &new).await;
            new.outbox.expect("entry")
        };

        assert_eq!(
            b.outbox
                .defer_destination(SOURCE, at(60_000), at(90_000))
                .await
                .expect("defer"),
            2
        );
        // Already due after the bound: left alone, even though asked for later.
        assert_eq!(
            b.outbox
                .defer_destination(SOURCE, at(60_000), at(120_000))
                .await
                .expect("defer"),
            0
        );
        // Due before this bound: moved.
        assert_eq!(
            b.outbox
                .defer_destination(SOURCE, at(95_000), at(100_000))
                .await
                .expect("defer"),
            2
        );
        // Leased past the wake below, so that only the woken entries are due then.
        let due = b
            .outbox
            .claim_due(at(10_000), 10, at(50_000), &[])
            .await
            .expect("claim");
        assert_eq!(
            due.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![elsewhere.id]
        );

        assert_eq!(
            b.outbox
                .wake_destination(SOURCE, at(30_000))
                .await
                .expect("wake"),
            2
        );
        assert_eq!(
            b.outbox
                .wake_destination(SOURCE, at(30_000))
                .await
                .expect("wake"),
            0
        );
        let woken = b
            .outbox
            .claim_due(at(30_000), 10, at(40_000), &[])
            .await
            .expect("claim");
        let mut woken: Vec<Uuid> = woken.iter().map(|e| e.id).collect();
        woken.sort_unstable();
        let mut expected: Vec<Uuid> = entries.iter().map(|e| e.id).collect();
        expected.sort_unstable();
        assert_eq!(woken, expected);
        assert!(woken.iter().all(|id| *id != elsewhere.id));
    }

    pub async fn time_values_survive_the_round_trip_at_millisecond_precision(b: &Backend) {
        let precise = at(0) + TimeDelta::nanoseconds(123_456_789);
        let stored = action("asha", "ravi", precise);
        let created = create_new(&*b.actions, &new_action(&stored, None)).await;
        assert_eq!(created.created_at, at(123));
        let found = b
            .actions
            .find(stored.action_id)
            .await
            .expect("find")
            .expect("exists");
        assert_eq!(found.created_at, at(123));
        assert_eq!(found, created);
    }
}

macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let backend = super::sqlite_backend().await;
                    super::suite::$name(&backend).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let backend = super::postgres_backend().await;
                    super::suite::$name(&backend).await;
                }
            )*
        }
    };
}

contract_tests!(
    create_stores_the_action_its_event_and_its_outbox_entry,
    a_create_without_outbox_entry_writes_none,
    the_same_key_twice_replays_the_first_action_with_its_status,
    an_expired_key_may_be_used_for_a_new_action,
    concurrent_creates_with_one_key_store_one_action,
    concurrent_status_updates_each_get_their_own_count,
    a_status_update_keeps_remarks_when_none_are_given,
    store_event_ignores_duplicates_and_moves_the_copy_only_forward,
    events_without_a_copy_are_stored_and_a_late_copy_starts_from_them,
    a_copy_recorded_while_its_event_arrives_ends_at_the_event,
    store_events_answers_each_event_in_order_and_stores_a_key_once,
    concurrent_batches_over_the_same_actions_store_each_key_once,
    find_many_answers_only_the_stored_actions,
    fetch_actions_filters_by_owner_role_and_fields_in_order,
    fetch_events_filters_by_owner_role_and_count_in_order,
    owners_count_only_where_their_item_lives,
    the_locality_backfill_trusts_only_matching_local_items,
    prune_removes_only_expired_idempotency_keys,
    two_claimers_never_get_the_same_entry,
    claims_take_due_entries_oldest_first_and_leases_expire,
    the_outbox_lifecycle_from_failure_to_delivery,
    concurrent_delivered_marks_all_land,
    claims_leave_skipped_destinations_alone,
    a_failing_destination_is_deferred_and_woken,
    time_values_survive_the_round_trip_at_millisecond_precision,
);

/// Failures reach the caller as the port's error variants, without SQL, and a failed write
/// leaves nothing behind.
mod failures {
    use super::*;

    async fn closed_database_is_unavailable(b: Backend) {
        let stored = action("asha", "ravi", at(0));
        b.db.close().await;
        let unavailable = Err(CoreError::storage_unavailable());
        assert_eq!(
            b.actions.create(&new_action(&stored, None)).await,
            unavailable.clone().map(|()| Created::New(stored.clone()))
        );
        assert_eq!(
            b.actions
                .update_status(&status_change(&stored, "accepted", at(1)))
                .await,
            unavailable.clone().map(|()| None)
        );
        assert_eq!(
            b.actions
                .fetch_actions(&query("asha", OwnershipRole::All))
                .await
                .map(|page| page.total),
            unavailable.clone().map(|()| 0)
        );
        assert_eq!(
            b.outbox.claim_due(at(0), 10, at(1), &[]).await,
            unavailable.clone().map(|()| Vec::new())
        );
        assert_eq!(
            b.outbox.counts(at(0)).await.map(|c| c.pending),
            unavailable.clone().map(|()| 0)
        );
        assert_eq!(
            b.actions
                .store_events(&[event(&stored, "accepted", 1, at(1))])
                .await,
            unavailable.clone().map(|()| Vec::new())
        );
        assert_eq!(
            b.actions.find_many(&[stored.action_id]).await,
            unavailable.map(|()| Vec::new())
        );
    }

    fn assert_internal_without_sql(err: CoreError) {
        let CoreError::Internal(message) = &err else {
            panic!("expected an internal error, got {err:?}");
        };
        for sql_word in ["INSERT", "SELECT", "UPDATE", "relation", "no such table"] {
            assert!(!message.contains(sql_word), "{message}");
        }
    }

    /// Without an outbox table the create fails as a whole: no action and no event remain.
    async fn a_failed_write_stores_nothing(b: Backend) {
        b.database
            .execute("DROP TABLE outbox")
            .await
            .expect("drop the outbox");
        let stored = action("asha", "ravi", at(0));
        let err = b
            .actions
            .create(&new_action(&stored, Some(key("k", at(60_000)))))
            .await
            .expect_err("the outbox is gone");
        assert_internal_without_sql(err);
        assert_eq!(b.actions.find(stored.action_id).await.expect("find"), None);
        assert!(
            b.actions
                .events_of(stored.action_id)
                .await
                .expect("events")
                .is_empty()
        );

        // The key was not kept either: without an outbox entry the same key creates.
        let again = action("asha", "ravi", at(1));
        let new = NewAction {
            outbox: None,
            ..new_action(&again, Some(key("k", at(60_000))))
        };
        create_new(&*b.actions, &new).await;

        let err = b
            .actions
            .update_status(&status_change(&again, "accepted", at(2)))
            .await
            .expect_err("the outbox is gone");
        assert_internal_without_sql(err);
        let found = b
            .actions
            .find(again.action_id)
            .await
            .expect("find")
            .expect("exists");
        assert_eq!(
            (found.action_status.as_str(), found.update_count),
            ("created", 0)
        );
        assert_eq!(
            b.actions
                .events_of(again.action_id)
                .await
                .expect("events")
                .len(),
            1
        );
        assert_internal_without_sql(b.outbox.list_undelivered(10).await.expect_err("gone"));

        // A batch fails as a whole: the first event's row does not outlive the failure of
        // moving its copy (the table is gone).
        b.database
            .execute("DROP TABLE actions")
            .await
            .expect("drop the actions");
        let batch = [
            event(&again, "accepted", 1, at(3)),
            event(&stored, "accepted", 1, at(3)),
        ];
        assert_internal_without_sql(b.actions.store_events(&batch).await.expect_err("gone"));
        for event in &batch {
            assert_eq!(
                b.actions
                    .events_of(event.action_id)
                    .await
                    .expect("events")
                    .iter()
                    .filter(|e| e.update_count == 1)
                    .count(),
                0
            );
        }
    }

    #[tokio::test]
    async fn sqlite_closed_database_is_unavailable() {
        closed_database_is_unavailable(sqlite_backend().await).await;
    }

    #[tokio::test]
    async fn postgres_closed_database_is_unavailable() {
        closed_database_is_unavailable(postgres_backend().await).await;
    }

    #[tokio::test]
    async fn sqlite_a_failed_write_stores_nothing() {
        a_failed_write_stores_nothing(sqlite_backend().await).await;
    }

    #[tokio::test]
    async fn postgres_a_failed_write_stores_nothing() {
        a_failed_write_stores_nothing(postgres_backend().await).await;
    }
}
