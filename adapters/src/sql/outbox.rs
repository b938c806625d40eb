//! `Outbox` on SQL: claims with leases, so that dispatchers of several replicas never deliver
//! one entry at the same time.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dpg_core::error::CoreError;
use dpg_core::model::{OutboxCounts, OutboxEntry, OutboxState};
use dpg_core::ports::Outbox;
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};
use uuid::Uuid;

use super::database::SqlDatabase;
use super::entity::item::to_millis;
use super::entity::outbox::{self, Column, Entity, into_entries};
use super::errors::storage_error;
use super::group_writer::{DeliveredMarks, GroupWriter};

/// The outbox in the `outbox` table of PostgreSQL or SQLite.
#[derive(Clone)]
pub struct SqlOutbox {
    conn: DatabaseConnection,
    backend: DbBackend,
    delivered: Arc<GroupWriter<DeliveredMarks>>,
}

impl std::fmt::Debug for SqlOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlOutbox")
            .field("backend", &self.backend)
            .finish()
    }
}

impl SqlOutbox {
    pub fn new(database: &SqlDatabase) -> Self {
        let conn = database.connection().clone();
        SqlOutbox {
            delivered: Arc::new(GroupWriter::new(DeliveredMarks { conn: conn.clone() }, 1)),
            conn,
            backend: database.db_backend(),
        }
    }

    /// `state = 'pending'` as a literal, not a bound value: PostgreSQL's generic plans of a
    /// prepared statement use the partial `outbox_due_idx` only when they can see the value.
    fn pending() -> Condition {
        Condition::all().add(Expr::col((Entity, Column::State)).eq(Expr::cust("'pending'")))
    }

    /// Ids of the rows matching `condition`, for a multi-row update. On PostgreSQL the rows
    /// are locked in id order first: two such updates (a release and a deferral of the same
    /// destination, say) then wait for each other instead of deadlocking.
    fn in_lock_order(&self, condition: Condition) -> Condition {
        let mut ids = Query::select();
        ids.column(Column::Id)
            .from(Entity)
            .cond_where(condition)
            .order_by(Column::Id, sea_orm::Order::Asc);
        if self.backend == DbBackend::Postgres {
            ids.lock(LockType::Update);
        }
        Condition::all().add(Column::Id.in_subquery(ids))
    }

    /// Moves `destination`'s pending entries that match `due_filter` to `due`.
    async fn reschedule_destination(
        &self,
        destination: &str,
        due: DateTime<Utc>,
        due_filter: sea_orm::sea_query::SimpleExpr,
        op: &'static str,
    ) -> Result<u64, CoreError> {
        Entity::update_many()
            .col_expr(Column::NextAttemptAt, Expr::val(due))
            .filter(
                self.in_lock_order(
                    Self::pending()
                        .add(Column::Destination.eq(destination))
                        .add(due_filter),
                ),
            )
            .exec(&self.conn)
            .await
            .map(|result| result.rows_affected)
            .map_err(|e| storage_error(op, &e))
    }

    /// Pending and due at `now`, and not leased by another claimer.
    fn due(now: DateTime<Utc>) -> Condition {
        let now = to_millis(now);
        Self::pending().add(Column::NextAttemptAt.lte(now)).add(
            Condition::any()
                .add(Column::LeaseUntil.is_null())
                .add(Column::LeaseUntil.lte(now)),
        )
    }
}

#[async_trait]
impl Outbox for SqlOutbox {
    /// One statement: `UPDATE outbox SET lease_until = .. WHERE id IN (SELECT id .. LIMIT n
    /// FOR UPDATE SKIP LOCKED) RETURNING *`. On PostgreSQL a row another claimer holds is
    /// skipped, and one it leased meanwhile fails the re-checked condition; SQLite runs one
    /// writing statement at a time.
    #[tracing::instrument(level = "debug", skip(self))]
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
        skip: &[String],
    ) -> Result<Vec<OutboxEntry>, CoreError> {
        let op = "claim outbox entries";
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut candidates = Query::select();
        let mut due = Self::due(now);
        if !skip.is_empty() {
            due = due.add(Column::Destination.is_not_in(skip.iter().cloned()));
        }
        candidates
            .column(Column::Id)
            .from(Entity)
            .cond_where(due)
            .order_by(Column::NextAttemptAt, sea_orm::Order::Asc)
            .order_by(Column::CreatedAt, sea_orm::Order::Asc)
            .order_by(Column::Id, sea_orm::Order::Asc)
            .limit(u64::from(limit));
        if self.backend == DbBackend::Postgres {
            candidates.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let mut statement = Entity::update_many()
            .col_expr(Column::LeaseUntil, Expr::val(to_millis(lease_until)))
            .filter(Column::Id.in_subquery(candidates))
            .into_query();
        statement.returning_all();
        let rows = self
            .conn
            .query_all(&statement)
            .await
            .map_err(|e| storage_error(op, &e))?;
        let mut claimed = rows
            .iter()
            .map(|row| outbox::Model::from_query_result(row, ""))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| storage_error(op, &e))?;
        // RETURNING keeps no order: oldest due first, as documented.
        claimed.sort_by(|a, b| {
            (a.next_attempt_at, a.created_at, a.id).cmp(&(b.next_attempt_at, b.created_at, b.id))
        });
        into_entries(claimed)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn release(&self, ids: &[Uuid], due: DateTime<Utc>) -> Result<(), CoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        Entity::update_many()
            .col_expr(Column::NextAttemptAt, Expr::val(to_millis(due)))
            .col_expr(Column::LeaseUntil, Expr::val(None::<DateTime<Utc>>))
            .filter(self.in_lock_order(Self::pending().add(Column::Id.is_in(ids.iter().copied()))))
            .exec(&self.conn)
            .await
            .map(drop)
            .map_err(|e| storage_error("release outbox entries", &e))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn mark_delivered(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), CoreError> {
        self.delivered.write((id, at)).await
    }

    #[tracing::instrument(level = "debug", skip(self, last_error))]
    async fn reschedule(
        &self,
        id: Uuid,
        attempts: u32,
        next_attempt_at: DateTime<Utc>,
        last_error: &str,
    ) -> Result<(), CoreError> {
        Entity::update_many()
            .col_expr(Column::Attempts, Expr::val(outbox_count(attempts)))
            .col_expr(Column::NextAttemptAt, Expr::val(to_millis(next_attempt_at)))
            .col_expr(Column::LastError, Expr::val(last_error))
            .col_expr(Column::LeaseUntil, Expr::val(None::<DateTime<Utc>>))
            .filter(Self::pending())
            .filter(Column::Id.eq(id))
            .exec(&self.conn)
            .await
            .map(drop)
            .map_err(|e| storage_error("reschedule outbox entry", &e))
    }

    #[tracing::instrument(level = "debug", skip(self, reason))]
    async fn dead_letter(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), CoreError> {
        Entity::update_many()
            .col_expr(Column::State, Expr::val(OutboxState::Dead.as_str()))
            .col_expr(Column::FinishedAt, Expr::val(to_millis(at)))
            .col_expr(Column::LastError, Expr::val(reason))
            .col_expr(Column::LeaseUntil, Expr::val(None::<DateTime<Utc>>))
            .filter(Self::pending())
            .filter(Column::Id.eq(id))
            .exec(&self.conn)
            .await
            .map(drop)
            .map_err(|e| storage_error("dead-letter outbox entry", &e))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn defer_destination(
        &self,
        destination: &str,
        due_before: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<u64, CoreError> {
        self.reschedule_destination(
            destination,
            to_millis(until),
            Column::NextAttemptAt.lt(to_millis(due_before)),
            "defer outbox destination",
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn wake_destination(
        &self,
        destination: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, CoreError> {
        let now = to_millis(now);
        self.reschedule_destination(
            destination,
            now,
            Column::NextAttemptAt.gt(now),
            "wake outbox destination",
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn redrive(
        &self,
        destination: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<u64, CoreError> {
        // `last_error` stays: it tells operators why the entry had died.
        let mut dead = Condition::all().add(Column::State.eq(OutboxState::Dead.as_str()));
        if let Some(destination) = destination {
            dead = dead.add(Column::Destination.eq(destination));
        }
        Entity::update_many()
            .col_expr(Column::State, Expr::val(OutboxState::Pending.as_str()))
            .col_expr(Column::Attempts, Expr::val(0))
            .col_expr(Column::NextAttemptAt, Expr::val(to_millis(now)))
            .col_expr(Column::FinishedAt, Expr::val(None::<DateTime<Utc>>))
            .col_expr(Column::LeaseUntil, Expr::val(None::<DateTime<Utc>>))
            .filter(self.in_lock_order(dead))
            .exec(&self.conn)
            .await
            .map(|result| result.rows_affected)
            .map_err(|e| storage_error("redrive outbox entries", &e))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn counts(&self, now: DateTime<Utc>) -> Result<OutboxCounts, CoreError> {
        let op = "count outbox entries";
        // One pass over the table for all three states.
        let per_state: Vec<(String, i64)> = Entity::find()
            .select_only()
            .column(Column::State)
            .column_as(Expr::col(Column::Id).count(), "entries")
            .group_by(Column::State)
            .into_tuple()
            .all(&self.conn)
            .await
            .map_err(|e| storage_error(op, &e))?;
        let count = |state: OutboxState| {
            per_state
                .iter()
                .find(|(name, _)| name == state.as_str())
                .map_or(0, |(_, n)| u64::try_from(*n).unwrap_or(0))
        };
        let oldest = Entity::find()
            .filter(Self::pending())
            .order_by_asc(Column::CreatedAt)
            .one(&self.conn)
            .await
            .map_err(|e| storage_error(op, &e))?;
        let oldest_pending_seconds =
            oldest.map(|row| u64::try_from((now - row.created_at).num_seconds()).unwrap_or(0));
        Ok(OutboxCounts {
            pending: count(OutboxState::Pending),
            delivered: count(OutboxState::Delivered),
            dead: count(OutboxState::Dead),
            oldest_pending_seconds,
        })
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn list_undelivered(&self, limit: u32) -> Result<Vec<OutboxEntry>, CoreError> {
        let op = "list undelivered outbox entries";
        // Each state by its own index range, newest first, then merged: one statement over
        // both states would sort every pending row of a large backlog.
        let newest = |state: OutboxState| {
            Entity::find()
                .filter(Column::State.eq(state.as_str()))
                .order_by_desc(Column::CreatedAt)
                .order_by_desc(Column::Id)
                .limit(u64::from(limit))
                .all(&self.conn)
        };
        let (pending, dead) =
            futures::try_join!(newest(OutboxState::Pending), newest(OutboxState::Dead))
                .map_err(|e| storage_error(op, &e))?;
        let mut rows: Vec<outbox::Model> = pending.into_iter().chain(dead).collect();
        rows.sort_by_key(|row| std::cmp::Reverse((row.created_at, row.id)));
        rows.truncate(limit as usize);
        into_entries(rows)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn prune_delivered(&self, before: DateTime<Utc>) -> Result<u64, CoreError> {
        Entity::delete_many()
            .filter(Column::State.eq(OutboxState::Delivered.as_str()))
            .filter(Column::FinishedAt.lt(to_millis(before)))
            .exec(&self.conn)
            .await
            .map(|result| result.rows_affected)
            .map_err(|e| storage_error("prune delivered outbox entries", &e))
    }
}

fn outbox_count(attempts: u32) -> i32 {
    super::entity::action::to_count(attempts)
}
