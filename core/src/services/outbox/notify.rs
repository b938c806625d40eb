//! An `ActionRepository` that wakes the dispatcher after a write that stored an outbox row,
//! so a new event leaves at once instead of at the next poll. A decorator keeps the action
//! use cases unaware of delivery.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::OutboxNotifier;
use crate::error::CoreError;
use crate::model::{ActionEvent, ActionQuery, ActionRecord, Page};
use crate::ports::{ActionRepository, Created, NewAction, StatusChange};

pub struct NotifyingActions {
    inner: Arc<dyn ActionRepository>,
    notifier: OutboxNotifier,
}

impl NotifyingActions {
    pub fn new(inner: Arc<dyn ActionRepository>, notifier: OutboxNotifier) -> Self {
        NotifyingActions { inner, notifier }
    }
}

#[async_trait]
impl ActionRepository for NotifyingActions {
    async fn create(&self, new: &NewAction) -> Result<Created, CoreError> {
        let created = self.inner.create(new).await?;
        if new.outbox.is_some() && matches!(created, Created::New(_)) {
            self.notifier.notify();
        }
        Ok(created)
    }

    async fn record_initiated(&self, action: &ActionRecord) -> Result<(), CoreError> {
        self.inner.record_initiated(action).await
    }

    async fn find(&self, action_id: Uuid) -> Result<Option<ActionRecord>, CoreError> {
        self.inner.find(action_id).await
    }

    async fn find_many(&self, action_ids: &[Uuid]) -> Result<Vec<ActionRecord>, CoreError> {
        self.inner.find_many(action_ids).await
    }

    async fn update_status(
        &self,
        change: &StatusChange,
    ) -> Result<Option<(ActionRecord, ActionEvent)>, CoreError> {
        let updated = self.inner.update_status(change).await?;
        if change.outbox.is_some() && updated.is_some() {
            self.notifier.notify();
        }
        Ok(updated)
    }

    async fn store_event(&self, event: &ActionEvent) -> Result<Option<Uuid>, CoreError> {
        self.inner.store_event(event).await
    }

    async fn store_events(&self, events: &[ActionEvent]) -> Result<Vec<Option<Uuid>>, CoreError> {
        self.inner.store_events(events).await
    }

    async fn fetch_actions(&self, query: &ActionQuery) -> Result<Page<ActionRecord>, CoreError> {
        self.inner.fetch_actions(query).await
    }

    async fn fetch_events(&self, query: &ActionQuery) -> Result<Page<ActionEvent>, CoreError> {
        self.inner.fetch_events(query).await
    }

    async fn events_of(&self, action_id: Uuid) -> Result<Vec<ActionEvent>, CoreError> {
        self.inner.events_of(action_id).await
    }

    async fn prune_idempotency_keys(&self, now: DateTime<Utc>) -> Result<u64, CoreError> {
        self.inner.prune_idempotency_keys(now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ItemRef, Locality, OutboxEntry};
    use crate::ports::MockActionRepository;
    use crate::services::outbox::Signal;

    fn item(domain: &str) -> ItemRef {
        ItemRef {
            network: "yellow_dot".into(),
            domain: domain.into(),
            item_type: "profile_1.0".into(),
            item_id: Uuid::from_u128(1),
            instance_url: format!("http://{domain}.example.org"),
        }
    }

    fn action() -> ActionRecord {
        ActionRecord {
            action_name: "connect".into(),
            action_id: Uuid::from_u128(7),
            action_status: "created".into(),
            update_count: 0,
            source: item("student"),
            source_item_owner: None,
            target: item("tutor"),
            target_item_owner: None,
            locality: Locality {
                source: false,
                target: true,
            },
            requirements_snapshot: serde_json::json!({}),
            remarks: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn event() -> ActionEvent {
        let a = action();
        ActionEvent {
            action_name: a.action_name,
            event_id: Uuid::from_u128(9),
            origin_instance_domain: "http://tutor.example.org".into(),
            action_id: a.action_id,
            action_status: "created".into(),
            update_count: 0,
            source: a.source,
            source_item_owner: None,
            source_item_latitude: None,
            source_item_longitude: None,
            target: a.target,
            target_item_owner: None,
            target_item_latitude: None,
            target_item_longitude: None,
            locality: a.locality,
            event_payload: serde_json::json!({}),
            remarks: None,
            created_at: a.created_at,
        }
    }

    fn new_action(with_row: bool) -> NewAction {
        let event = event();
        NewAction {
            action: action(),
            outbox: with_row.then(|| {
                OutboxEntry::for_event(Uuid::from_u128(3), "http://student.example.org", &event)
            }),
            event,
            idempotency: None,
        }
    }

    fn change(with_row: bool) -> StatusChange {
        let event = event();
        StatusChange {
            action_id: Uuid::from_u128(7),
            action_status: "accepted".into(),
            remarks: None,
            at: Utc::now(),
            outbox: with_row.then(|| {
                OutboxEntry::for_event(Uuid::from_u128(4), "http://student.example.org", &event)
            }),
            event,
        }
    }

    fn woken(signal: &Signal) -> bool {
        futures::FutureExt::now_or_never(signal.raised()).is_some()
    }

    #[tokio::test]
    async fn only_writes_that_stored_an_outbox_row_wake_the_dispatcher() {
        let signal = Arc::new(Signal::default());
        let mut inner = MockActionRepository::new();
        let mut replay = false;
        inner.expect_create().returning(move |new| {
            replay = !replay;
            Ok(if replay {
                Created::New(new.action.clone())
            } else {
                Created::Replayed(new.action.clone())
            })
        });
        inner.expect_update_status().returning(|change| {
            Ok((change.action_status == "accepted").then(|| (action(), event())))
        });
        let actions = NotifyingActions::new(Arc::new(inner), OutboxNotifier::new(signal.clone()));

        actions.create(&new_action(true)).await.expect("new");
        assert!(woken(&signal), "a new action with a row");
        actions.create(&new_action(true)).await.expect("replayed");
        assert!(!woken(&signal), "a replay stores nothing");
        actions.create(&new_action(false)).await.expect("new");
        assert!(!woken(&signal), "same instance: no row");

        actions.update_status(&change(true)).await.expect("updated");
        assert!(woken(&signal));
        actions
            .update_status(&change(false))
            .await
            .expect("updated");
        assert!(!woken(&signal));
        let missing = StatusChange {
            action_status: "gone".into(),
            ..change(true)
        };
        assert_eq!(actions.update_status(&missing).await.expect("none"), None);
        assert!(!woken(&signal), "no such action");
    }
}
