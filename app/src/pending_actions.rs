//! Stands in for the action storage until its SQL adapter is wired: every call answers 503
//! `STORAGE_UNAVAILABLE`, so the action routes exist and fail safely.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dpg_core::CoreError;
use dpg_core::model::{ActionEvent, ActionQuery, ActionRecord, Page};
use dpg_core::ports::{ActionRepository, Created, NewAction, StatusChange};
use uuid::Uuid;

pub struct PendingActionRepository;

#[async_trait]
impl ActionRepository for PendingActionRepository {
    async fn create(&self, _new: &NewAction) -> Result<Created, CoreError> {
        Err(CoreError::storage_unavailable())
    }

    async fn record_initiated(&self, _action: &ActionRecord) -> Result<(), CoreError> {
        Err(CoreError::storage_unavailable())
    }

    async fn find(&self, _action_id: Uuid) -> Result<Option<ActionRecord>, CoreError> {
        Err(CoreError::storage_unavailable())
    }

    async fn update_status(
        &self,
        _change: &StatusChange,
    ) -> Result<Option<(ActionRecord, ActionEvent)>, CoreError> {
        Err(CoreError::storage_unavailable())
    }

    async fn store_event(&self, _event: &ActionEvent) -> Result<Option<Uuid>, CoreError> {
        Err(CoreError::storage_unavailable())
    }

    async fn fetch_actions(&self, _query: &ActionQuery) -> Result<Page<ActionRecord>, CoreError> {
        Err(CoreError::storage_unavailable())
    }

    async fn fetch_events(&self, _query: &ActionQuery) -> Result<Page<ActionEvent>, CoreError> {
        Err(CoreError::storage_unavailable())
    }

    async fn events_of(&self, _action_id: Uuid) -> Result<Vec<ActionEvent>, CoreError> {
        Err(CoreError::storage_unavailable())
    }

    async fn prune_idempotency_keys(&self, _now: DateTime<Utc>) -> Result<u64, CoreError> {
        Ok(0)
    }
}
