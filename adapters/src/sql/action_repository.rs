//! `ActionRepository` on SQL: actions, their events, idempotency keys, and the outbox rows
//! written in the same transactions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dpg_core::error::CoreError;
use dpg_core::model::{ActionEvent, ActionQuery, ActionRecord, OutboxEntry, Page};
use dpg_core::ports::{ActionRepository, Created, IdempotencyKey, NewAction, StatusChange};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait,
    FromQueryResult, Iterable, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    Select, Statement,
};
use serde_json::Value;
use uuid::Uuid;

use super::action_query::{action_columns, event_columns, visible};
use super::database::SqlDatabase;
use super::entity::item::to_millis;
use super::entity::{action, action_event, idempotency_key, outbox};
use super::errors::storage_error;
use super::write_transaction::begin_write;

/// How often [`ActionRepository::create`] starts over when the action that holds its
/// idempotency key vanished between two steps (the key expired and was taken meanwhile).
const CREATE_ATTEMPTS: usize = 3;

/// Actions and events in the `actions`, `action_events`, `action_idempotency_keys` and
/// `outbox` tables of PostgreSQL or SQLite.
///
/// A create's "now" is its action's `created_at` (the service's clock): an idempotency key
/// with `expires_at <= created_at` is free for the new action.
#[derive(Clone)]
pub struct SqlActionRepository {
    conn: DatabaseConnection,
    backend: DbBackend,
}

impl std::fmt::Debug for SqlActionRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlActionRepository")
            .field("backend", &self.backend)
            .finish()
    }
}

impl SqlActionRepository {
    pub fn new(database: &SqlDatabase) -> Self {
        SqlActionRepository {
            conn: database.connection().clone(),
            backend: database.db_backend(),
        }
    }

    /// One attempt of `create`; `None` means start over.
    async fn try_create(&self, new: &NewAction) -> Result<Option<Created>, CoreError> {
        let op = "create action";
        let txn = begin_write(&self.conn)
            .await
            .map_err(|e| storage_error(op, &e))?;
        // The key goes first: a losing concurrent create waits here for the winner and then
        // stores nothing.
        if let Some(key) = &new.idempotency {
            let now = new.action.created_at;
            if !take_key(&txn, key, new.action.action_id, now).await? {
                txn.rollback().await.map_err(|e| storage_error(op, &e))?;
                return self.replay(key, now).await;
            }
        }
        action::Entity::insert(action::active_model(&new.action))
            .exec_without_returning(&txn)
            .await
            .map_err(|e| storage_error(op, &e))?;
        insert_event(&txn, &new.event, op).await?;
        if let Some(entry) = &new.outbox {
            insert_outbox(&txn, entry, op).await?;
        }
        txn.commit().await.map_err(|e| storage_error(op, &e))?;
        Ok(Some(Created::New(stored(&new.action))))
    }

    /// The action an unexpired key points to; `None` when the key or its action is gone.
    async fn replay(
        &self,
        key: &IdempotencyKey,
        now: DateTime<Utc>,
    ) -> Result<Option<Created>, CoreError> {
        let op = "replay idempotent create";
        let held = idempotency_key::Entity::find()
            .filter(idempotency_key::Column::SourceInstance.eq(key.source_instance.as_str()))
            .filter(idempotency_key::Column::IdempotencyKey.eq(key.key.as_str()))
            .filter(idempotency_key::Column::ExpiresAt.gt(to_millis(now)))
            .one(&self.conn)
            .await
            .map_err(|e| storage_error(op, &e))?;
        let Some(held) = held else {
            return Ok(None);
        };
        Ok(self.find(held.action_id).await?.map(Created::Replayed))
    }
}

/// Stores `key` for `action_id`, replacing an expired row. False when an unexpired row holds
/// it (nothing changed). On PostgreSQL a concurrent holder's uncommitted row makes this wait
/// for its commit or rollback.
async fn take_key(
    txn: &DatabaseTransaction,
    key: &IdempotencyKey,
    action_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, CoreError> {
    use idempotency_key::Column;
    let row = idempotency_key::ActiveModel {
        source_instance: sea_orm::Set(key.source_instance.clone()),
        idempotency_key: sea_orm::Set(key.key.clone()),
        action_id: sea_orm::Set(action_id),
        expires_at: sea_orm::Set(to_millis(key.expires_at)),
        created_at: sea_orm::Set(to_millis(now)),
    };
    let taken = idempotency_key::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([Column::SourceInstance, Column::IdempotencyKey])
                .update_columns([Column::ActionId, Column::ExpiresAt, Column::CreatedAt])
                .action_and_where(
                    Expr::col((idempotency_key::Entity, Column::ExpiresAt)).lte(to_millis(now)),
                )
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await
        .map_err(|e| storage_error("store idempotency key", &e))?;
    Ok(taken > 0)
}

async fn insert_event(
    txn: &DatabaseTransaction,
    event: &ActionEvent,
    op: &'static str,
) -> Result<(), CoreError> {
    action_event::Entity::insert(action_event::active_model(event))
        .exec_without_returning(txn)
        .await
        .map(drop)
        .map_err(|e| storage_error(op, &e))
}

async fn insert_outbox(
    txn: &DatabaseTransaction,
    entry: &OutboxEntry,
    op: &'static str,
) -> Result<(), CoreError> {
    outbox::Entity::insert(outbox::active_model(entry))
        .exec_without_returning(txn)
        .await
        .map(drop)
        .map_err(|e| storage_error(op, &e))
}

/// The record as the database holds it (millisecond timestamps).
fn stored(action: &ActionRecord) -> ActionRecord {
    ActionRecord {
        created_at: to_millis(action.created_at),
        updated_at: to_millis(action.updated_at),
        ..action.clone()
    }
}

/// Increments the count and applies the change; the updated row, if the action exists. The
/// row stays locked (PostgreSQL) or the database stays write-locked (SQLite) until commit, so
/// concurrent changes each see the count of the one before.
async fn bump(
    txn: &DatabaseTransaction,
    change: &StatusChange,
) -> Result<Option<action::Model>, CoreError> {
    use action::Column;
    let op = "update action status";
    let mut update = action::Entity::update_many()
        .col_expr(Column::UpdateCount, Expr::col(Column::UpdateCount).add(1))
        .col_expr(
            Column::ActionStatus,
            Expr::val(change.action_status.as_str()),
        )
        .col_expr(Column::UpdatedAt, Expr::val(to_millis(change.at)));
    if let Some(remarks) = &change.remarks {
        update = update.col_expr(Column::Remarks, Expr::val(remarks.as_str()));
    }
    let mut statement = update
        .filter(Column::ActionId.eq(change.action_id))
        .into_query();
    // Named and table-qualified, not `*`: a pooled SQLite connection that read the schema
    // before a migration added columns would expand `*` to the old columns, or take an
    // unqualified new name for a string literal, and sqlx keeps that shape of the row. An
    // unknown qualified column makes SQLite reload the schema and prepare again.
    statement.returning(
        Query::returning().columns(Column::iter().map(|column| (action::Entity, column))),
    );
    let row = txn
        .query_one(&statement)
        .await
        .map_err(|e| storage_error(op, &e))?;
    row.map(|row| action::Model::from_query_result(&row, ""))
        .transpose()
        .map_err(|e| storage_error(op, &e))
}

/// Moves a stored copy of the event's action forward when the event is newer.
async fn advance_copy(txn: &DatabaseTransaction, event: &ActionEvent) -> Result<(), CoreError> {
    use action::Column;
    let count = action::to_count(event.update_count);
    let mut update = action::Entity::update_many()
        .col_expr(
            Column::ActionStatus,
            Expr::val(event.action_status.as_str()),
        )
        .col_expr(Column::UpdateCount, Expr::val(count))
        .col_expr(Column::UpdatedAt, Expr::val(to_millis(event.created_at)));
    // As on the target: an event without remarks kept the stored ones.
    if let Some(remarks) = &event.remarks {
        update = update.col_expr(Column::Remarks, Expr::val(remarks.as_str()));
    }
    update
        .filter(Column::ActionId.eq(event.action_id))
        .filter(Column::ActionName.eq(event.action_name.as_str()))
        .filter(Column::UpdateCount.lt(count))
        .exec(txn)
        .await
        .map(drop)
        .map_err(|e| storage_error("advance action copy", &e))
}

/// Serialises, per action, the transactions that reconcile a stored copy with received
/// events ([`ActionRepository::store_event`], [`ActionRepository::record_initiated`]): under
/// READ COMMITTED each could miss the other's uncommitted row and leave the copy behind.
/// SQLite needs nothing: `BEGIN IMMEDIATE` already runs one writer at a time.
async fn lock_action(
    txn: &DatabaseTransaction,
    backend: DbBackend,
    action_id: Uuid,
) -> Result<(), CoreError> {
    if backend != DbBackend::Postgres {
        return Ok(());
    }
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        "SELECT pg_advisory_xact_lock($1)",
        [lock_key(action_id).into()],
    ))
    .await
    .map(drop)
    .map_err(|e| storage_error("lock action", &e))
}

/// The advisory lock key of an action. Any 64 bits of a random id make a good key; a rare
/// collision only serialises two unrelated actions for a moment.
fn lock_key(action_id: Uuid) -> i64 {
    action_id.as_u64_pair().0.cast_signed()
}

/// [`ActionRepository::store_events`] on PostgreSQL: one statement, so one transaction,
/// calling `dpg_store_event` for each event in ascending lock-key order (two batches then
/// take their advisory locks in one order and never wait on each other in a cycle). The
/// keys still come from [`lock_key`]. Answers whether each event was stored, in the order
/// given.
async fn store_events_in_one_statement(
    conn: &DatabaseConnection,
    events: &[ActionEvent],
) -> Result<Vec<bool>, CoreError> {
    let op = "store events";
    // Stable: among events of one action the earlier one in the slice goes first, so of two
    // with one key the earlier is stored and the later is its duplicate.
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| lock_key(events[i].action_id));
    let mut calls = Vec::with_capacity(events.len());
    for &i in &order {
        let row = action_event::row_json(&events[i]).map_err(|e| storage_error(op, &e))?;
        calls.push(serde_json::json!({"lock_key": lock_key(events[i].action_id), "event": row}));
    }
    // `jsonb_array_elements` yields the calls in array order and each row's select list is
    // evaluated as the row is produced: the functions run in that order.
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT t.n AS n, dpg_store_event((t.call ->> 'lock_key')::bigint, t.call -> 'event') \
             AS stored FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(call, n)",
            [Value::Array(calls).into()],
        ))
        .await
        .map_err(|e| storage_error(op, &e))?;
    let mut stored = vec![None; events.len()];
    for row in rows {
        let n = row
            .try_get::<i64>("", "n")
            .map_err(|e| storage_error(op, &e))?;
        let was_stored = row
            .try_get::<bool>("", "stored")
            .map_err(|e| storage_error(op, &e))?;
        let slot = usize::try_from(n - 1)
            .ok()
            .and_then(|position| order.get(position))
            .and_then(|&i| stored.get_mut(i));
        match slot {
            Some(slot) => *slot = Some(was_stored),
            None => {
                return Err(CoreError::internal(format!(
                    "storage failure during {op}: answer for call {n} of {}",
                    events.len()
                )));
            }
        }
    }
    stored
        .into_iter()
        .map(|answer| {
            answer.ok_or_else(|| {
                CoreError::internal(format!(
                    "storage failure during {op}: a call went unanswered"
                ))
            })
        })
        .collect()
}

/// Inserts a received event unless its key is taken, and moves a stored copy of its action
/// forward when it was inserted (the SQLite side of [`ActionRepository::store_event`]).
async fn insert_received(
    txn: &DatabaseTransaction,
    event: &ActionEvent,
    op: &'static str,
) -> Result<bool, CoreError> {
    use action_event::Column;
    let inserted = action_event::Entity::insert(action_event::active_model(event))
        .on_conflict(
            OnConflict::columns([
                Column::ActionName,
                Column::OriginInstanceDomain,
                Column::ActionId,
                Column::UpdateCount,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(txn)
        .await
        .map_err(|e| storage_error(op, &e))?;
    if inserted == 0 {
        return Ok(false);
    }
    advance_copy(txn, event).await?;
    Ok(true)
}

/// The event with the highest count stored for an action, if any.
async fn latest_event(
    txn: &DatabaseTransaction,
    action: &ActionRecord,
) -> Result<Option<ActionEvent>, CoreError> {
    use action_event::Column;
    action_event::Entity::find()
        .filter(Column::ActionId.eq(action.action_id))
        .filter(Column::ActionName.eq(action.action_name.as_str()))
        .order_by_desc(Column::UpdateCount)
        .order_by_desc(Column::CreatedAt)
        .one(txn)
        .await
        .map(|row| row.map(action_event::Model::into_event))
        .map_err(|e| storage_error("find latest event", &e))
}

/// How many rows `select` matches, and the query's slice of them in the order `order` gives
/// (the count runs unordered).
async fn counted_page<E>(
    conn: &DatabaseConnection,
    select: Select<E>,
    query: &ActionQuery,
    op: &'static str,
    order: impl FnOnce(Select<E>) -> Select<E>,
) -> Result<(u64, Vec<E::Model>), CoreError>
where
    E: EntityTrait,
    E::Model: Send + Sync,
{
    let total = select
        .clone()
        .count(conn)
        .await
        .map_err(|e| storage_error(op, &e))?;
    let rows = order(select)
        .limit(u64::from(query.limit))
        .offset(u64::from(query.offset))
        .all(conn)
        .await
        .map_err(|e| storage_error(op, &e))?;
    Ok((total, rows))
}

#[async_trait]
impl ActionRepository for SqlActionRepository {
    #[tracing::instrument(level = "debug", skip_all, fields(action_id = %new.action.action_id))]
    async fn create(&self, new: &NewAction) -> Result<Created, CoreError> {
        for _ in 0..CREATE_ATTEMPTS {
            if let Some(created) = self.try_create(new).await? {
                return Ok(created);
            }
        }
        tracing::error!("idempotency key kept changing hands during create");
        Err(CoreError::internal(
            "storage failure during create action: idempotency key contended",
        ))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(action_id = %action.action_id))]
    async fn record_initiated(&self, action: &ActionRecord) -> Result<(), CoreError> {
        let op = "record initiated action";
        let txn = begin_write(&self.conn)
            .await
            .map_err(|e| storage_error(op, &e))?;
        lock_action(&txn, self.backend, action.action_id).await?;
        let inserted = action::Entity::insert(action::active_model(action))
            .on_conflict(
                OnConflict::column(action::Column::ActionId)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(|e| storage_error(op, &e))?;
        // The target's events may have arrived before its answer did: start from the newest.
        if inserted > 0
            && let Some(event) = latest_event(&txn, action).await?
        {
            advance_copy(&txn, &event).await?;
        }
        txn.commit().await.map_err(|e| storage_error(op, &e))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn find(&self, action_id: Uuid) -> Result<Option<ActionRecord>, CoreError> {
        action::Entity::find_by_id(action_id)
            .one(&self.conn)
            .await
            .map(|row| row.map(action::Model::into_record))
            .map_err(|e| storage_error("find action", &e))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(actions = action_ids.len()))]
    async fn find_many(&self, action_ids: &[Uuid]) -> Result<Vec<ActionRecord>, CoreError> {
        if action_ids.is_empty() {
            return Ok(Vec::new());
        }
        action::Entity::find()
            .filter(action::Column::ActionId.is_in(action_ids.iter().copied()))
            .all(&self.conn)
            .await
            .map(|rows| rows.into_iter().map(action::Model::into_record).collect())
            .map_err(|e| storage_error("find actions", &e))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(action_id = %change.action_id))]
    async fn update_status(
        &self,
        change: &StatusChange,
    ) -> Result<Option<(ActionRecord, ActionEvent)>, CoreError> {
        let op = "update action status";
        let txn = begin_write(&self.conn)
            .await
            .map_err(|e| storage_error(op, &e))?;
        let Some(row) = bump(&txn, change).await? else {
            txn.rollback().await.map_err(|e| storage_error(op, &e))?;
            return Ok(None);
        };
        let record = row.into_record();
        let count = record.update_count;
        let event = ActionEvent {
            update_count: count,
            ..change.event.clone()
        };
        insert_event(&txn, &event, op).await?;
        if let Some(entry) = &change.outbox {
            let mut entry = entry.clone();
            entry.update_count = count;
            if let Value::Object(body) = &mut entry.body {
                body.insert("update_count".into(), Value::from(count));
            }
            insert_outbox(&txn, &entry, op).await?;
        }
        txn.commit().await.map_err(|e| storage_error(op, &e))?;
        let event = ActionEvent {
            created_at: to_millis(event.created_at),
            ..event
        };
        Ok(Some((record, event)))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(action_id = %event.action_id, update_count = event.update_count))]
    async fn store_event(&self, event: &ActionEvent) -> Result<Option<Uuid>, CoreError> {
        // A batch of one: the same statement (PostgreSQL) or transaction (SQLite).
        let mut stored = self.store_events(std::slice::from_ref(event)).await?;
        stored
            .pop()
            .ok_or_else(|| CoreError::internal("storage failure during store event: no answer"))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(events = events.len()))]
    async fn store_events(&self, events: &[ActionEvent]) -> Result<Vec<Option<Uuid>>, CoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let stored = if self.backend == DbBackend::Postgres {
            store_events_in_one_statement(&self.conn, events).await?
        } else {
            // One writer at a time (`BEGIN IMMEDIATE`): no locks to order.
            let op = "store events";
            let txn = begin_write(&self.conn)
                .await
                .map_err(|e| storage_error(op, &e))?;
            let mut stored = Vec::with_capacity(events.len());
            for event in events {
                stored.push(insert_received(&txn, event, op).await?);
            }
            txn.commit().await.map_err(|e| storage_error(op, &e))?;
            stored
        };
        Ok(events
            .iter()
            .zip(stored)
            .map(|(event, stored)| stored.then_some(event.event_id))
            .collect())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user = %query.user))]
    async fn fetch_actions(&self, query: &ActionQuery) -> Result<Page<ActionRecord>, CoreError> {
        use action::Column;
        let op = "fetch actions";
        let select = action::Entity::find().filter(visible(query, &action_columns()));
        let (total, rows) = counted_page(&self.conn, select, query, op, |select| {
            select
                .order_by_desc(Column::UpdatedAt)
                .order_by_desc(Column::CreatedAt)
                .order_by_desc(Column::ActionId)
        })
        .await?;
        Ok(Page {
            total,
            rows: rows.into_iter().map(action::Model::into_record).collect(),
        })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user = %query.user))]
    async fn fetch_events(&self, query: &ActionQuery) -> Result<Page<ActionEvent>, CoreError> {
        use action_event::Column;
        let op = "fetch events";
        let select = action_event::Entity::find().filter(visible(query, &event_columns()));
        let (total, rows) = counted_page(&self.conn, select, query, op, |select| {
            select
                .order_by_desc(Column::CreatedAt)
                .order_by_desc(Column::EventId)
        })
        .await?;
        Ok(Page {
            total,
            rows: rows
                .into_iter()
                .map(action_event::Model::into_event)
                .collect(),
        })
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn events_of(&self, action_id: Uuid) -> Result<Vec<ActionEvent>, CoreError> {
        use action_event::Column;
        action_event::Entity::find()
            .filter(Column::ActionId.eq(action_id))
            .order_by_asc(Column::UpdateCount)
            .order_by_asc(Column::CreatedAt)
            .order_by_asc(Column::EventId)
            .all(&self.conn)
            .await
            .map(|rows| {
                rows.into_iter()
                    .map(action_event::Model::into_event)
                    .collect()
            })
            .map_err(|e| storage_error("list events of action", &e))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn prune_idempotency_keys(&self, now: DateTime<Utc>) -> Result<u64, CoreError> {
        idempotency_key::Entity::delete_many()
            .filter(idempotency_key::Column::ExpiresAt.lte(to_millis(now)))
            .exec(&self.conn)
            .await
            .map(|result| result.rows_affected)
            .map_err(|e| storage_error("prune idempotency keys", &e))
    }
}
