use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::CoreError;
use crate::model::{ActionEvent, ActionQuery, ActionRecord, OutboxCounts, OutboxEntry, Page};

/// A retried perform is recognised by (source instance, key) for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// Normalized base URL of the source instance.
    pub source_instance: String,
    /// The client's `Idempotency-Key` (or one the source generated).
    pub key: String,
    /// After this the key may be reused for a new action.
    pub expires_at: DateTime<Utc>,
}

/// Target side of a perform: everything stored in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAction {
    pub action: ActionRecord,
    /// The initial `created` event.
    pub event: ActionEvent,
    /// Delivery of `event` to the source instance, when it lives elsewhere.
    pub outbox: Option<OutboxEntry>,
    pub idempotency: Option<IdempotencyKey>,
}

/// What [`ActionRepository::create`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// Stored now.
    New(ActionRecord),
    /// The idempotency key was already used (and has not expired): the action it created,
    /// with its current status. Nothing was stored.
    Replayed(ActionRecord),
}

/// Target side of a status update, applied in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    pub action_id: Uuid,
    pub action_status: String,
    /// `None` keeps the stored remarks (the reference's rule); the event carries the value
    /// as sent, which may be `None`.
    pub remarks: Option<String>,
    pub at: DateTime<Utc>,
    /// The event to store. Its `update_count` is a placeholder: the repository sets it to
    /// the action's new count.
    pub event: ActionEvent,
    /// Delivery of the event (same rule for `update_count`: the entry's `update_count` and
    /// `body.update_count` are set to the new count).
    pub outbox: Option<OutboxEntry>,
}

/// Actions and their events.
///
/// Every method MUST return `Err(CoreError::Unavailable)` when the database cannot be reached
/// and `Err(CoreError::Internal)` for any other storage failure; driver messages (SQL text)
/// never reach the error message.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ActionRepository: Send + Sync {
    /// Stores a new action, its initial event and its outbox entry atomically. With an
    /// idempotency key whose (source instance, key) is already stored and not expired,
    /// stores nothing and returns [`Created::Replayed`] with that action; concurrent
    /// creates with one key store one action.
    async fn create(&self, new: &NewAction) -> Result<Created, CoreError>;

    /// Source side: keeps a copy of an action this instance initiated (from the target's
    /// answer). Does nothing when an action with this id is already stored.
    async fn record_initiated(&self, action: &ActionRecord) -> Result<(), CoreError>;

    /// The action with this id, if stored here.
    async fn find(&self, action_id: Uuid) -> Result<Option<ActionRecord>, CoreError>;

    /// The actions stored here among `action_ids`, in any order; an id with no stored action
    /// is left out, a repeated id is answered once. MUST read nothing for an empty slice.
    async fn find_many(&self, action_ids: &[Uuid]) -> Result<Vec<ActionRecord>, CoreError>;

    /// Atomically: `update_count + 1`, status, remarks (kept when `None`), `updated_at`;
    /// inserts the event and the outbox entry with the new count. Concurrent changes each get
    /// their own count. `Ok(None)` when there is no such action.
    async fn update_status(
        &self,
        change: &StatusChange,
    ) -> Result<Option<(ActionRecord, ActionEvent)>, CoreError>;

    /// Stores a received event unless one with the same (`action_name`,
    /// `origin_instance_domain`, `action_id`, `update_count`) exists: `Ok(Some(event_id))`
    /// when stored, `Ok(None)` for a duplicate. In the same transaction, a stored copy of the
    /// action (see [`ActionRepository::record_initiated`]) takes the event's status, count
    /// and remarks when the event's count is higher than its own (events may arrive out of
    /// order).
    async fn store_event(&self, event: &ActionEvent) -> Result<Option<Uuid>, CoreError>;

    /// [`ActionRepository::store_event`] for each of `events`, all in one transaction: one
    /// answer per event, in the order given (`Some(event_id)` stored, `None` duplicate). An
    /// event with the key of an earlier one in the slice is a duplicate of it. On error
    /// nothing is stored. Concurrent calls with overlapping actions MUST NOT deadlock (lock
    /// the actions in one global order). An empty slice stores nothing.
    async fn store_events(&self, events: &[ActionEvent]) -> Result<Vec<Option<Uuid>>, CoreError>;

    /// Actions visible to `query.user` (reference-contract §6.6): an owner column matches only
    /// on a side the row's stored `locality` marks local. Ordered `updated_at` desc,
    /// `created_at` desc, `action_id` desc.
    async fn fetch_actions(&self, query: &ActionQuery) -> Result<Page<ActionRecord>, CoreError>;

    /// Events visible to `query.user`, by the same rule, ordered `created_at` desc,
    /// `event_id` desc.
    async fn fetch_events(&self, query: &ActionQuery) -> Result<Page<ActionEvent>, CoreError>;

    /// Every stored event of one action, oldest count first (tests, reconciliation).
    async fn events_of(&self, action_id: Uuid) -> Result<Vec<ActionEvent>, CoreError>;

    /// Removes expired idempotency keys; returns how many.
    async fn prune_idempotency_keys(&self, now: DateTime<Utc>) -> Result<u64, CoreError>;
}

/// The transactional outbox (rows are written by [`ActionRepository`]); read and advanced by
/// the dispatcher. Replicas may run dispatchers at once: a claimed entry is invisible to other
/// claimers until its lease ends.
///
/// Error contract as [`ActionRepository`].
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Up to `limit` pending entries with `next_attempt_at <= now`, oldest due first, leased
    /// until `lease_until` (PostgreSQL: `FOR UPDATE SKIP LOCKED`; other claimers skip them).
    /// Entries for the destinations in `skip` (spelled as stored) are left alone.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
        skip: &[String],
    ) -> Result<Vec<OutboxEntry>, CoreError>;

    /// Gives leased entries back, due at `due` (attempts unchanged).
    async fn release(&self, ids: &[Uuid], due: DateTime<Utc>) -> Result<(), CoreError>;

    async fn mark_delivered(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), CoreError>;

    /// A failed attempt: `attempts`, next due time and the reason (no peer body, no secrets).
    async fn reschedule(
        &self,
        id: Uuid,
        attempts: u32,
        next_attempt_at: DateTime<Utc>,
        last_error: &str,
    ) -> Result<(), CoreError>;

    async fn dead_letter(&self, id: Uuid, at: DateTime<Utc>, reason: &str)
    -> Result<(), CoreError>;

    /// Pending entries for `destination` due before `due_before` become due at `until`
    /// (a failing peer's backlog waits for its probe). Entries due at or after
    /// `due_before` are left alone, so that repeated failures rewrite only the entries
    /// that arrived since, not the whole backlog. Returns how many were deferred.
    async fn defer_destination(
        &self,
        destination: &str,
        due_before: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<u64, CoreError>;

    /// Pending entries for `destination` due now, attempts kept (the peer is back).
    async fn wake_destination(
        &self,
        destination: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, CoreError>;

    /// Dead entries (all, or for one destination) back to pending, due now, attempts reset.
    async fn redrive(
        &self,
        destination: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<u64, CoreError>;

    async fn counts(&self, now: DateTime<Utc>) -> Result<OutboxCounts, CoreError>;

    /// Pending and dead entries (newest first, at most `limit`), for operators.
    async fn list_undelivered(&self, limit: u32) -> Result<Vec<OutboxEntry>, CoreError>;

    /// Deletes delivered entries finished before `before`; returns how many.
    async fn prune_delivered(&self, before: DateTime<Utc>) -> Result<u64, CoreError>;
}
