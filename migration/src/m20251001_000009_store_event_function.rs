//! `dpg_store_event(lock_key, event)` on PostgreSQL: stores a received event and moves the
//! stored copy of its action forward, in one call.
//!
//! The same work as a client-driven transaction takes five round trips (begin, lock, insert,
//! update, commit), and a backlog of events arriving from a peer spends most of its time in
//! them. The function runs in the caller's implicit transaction; being volatile, each of its
//! statements takes a fresh snapshot, so the update sees a copy committed by a transaction
//! that held the action's lock before us (see `record_initiated` in the adapters).
//!
//! The event is a JSON object of `action_events` columns; a column missing from it is NULL,
//! so a later migration adding a NOT NULL column to `action_events` fails loudly here until
//! the adapter sends it. SQLite needs nothing: its adapter keeps the transaction.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

pub const NAME: &str = "m20251001_000009_store_event_function";

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        NAME
    }
}

const CREATE: &str = r"
CREATE OR REPLACE FUNCTION dpg_store_event(lock_key bigint, event jsonb) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    stored action_events;
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    stored := jsonb_populate_record(NULL::action_events, event);
    INSERT INTO action_events SELECT (stored).*
        ON CONFLICT (action_name, origin_instance_domain, action_id, update_count) DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- As on the target: an event without remarks keeps the stored ones.
    UPDATE actions
    SET action_status = stored.action_status,
        update_count = stored.update_count,
        updated_at = stored.created_at,
        remarks = COALESCE(stored.remarks, actions.remarks)
    WHERE actions.action_id = stored.action_id
      AND actions.action_name = stored.action_name
      AND actions.update_count < stored.update_count;
    RETURN true;
END
$fn$;
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(CREATE)
            .await
            .map(drop)
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared("DROP FUNCTION IF EXISTS dpg_store_event(bigint, jsonb)")
            .await
            .map(drop)
    }
}
