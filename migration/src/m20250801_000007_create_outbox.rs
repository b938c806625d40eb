//! `outbox`: events waiting for delivery to the source instance, written in the transaction
//! that stores the event. `lease_until` hides a claimed entry from other dispatchers (replicas)
//! until its delivery attempt ends or the lease runs out.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

pub const NAME: &str = "m20250801_000007_create_outbox";
pub const TABLE: &str = "outbox";

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        NAME
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Outbox {
    Table,
    Id,
    Destination,
    ActionName,
    ActionId,
    UpdateCount,
    Body,
    State,
    Attempts,
    NextAttemptAt,
    LastError,
    CreatedAt,
    FinishedAt,
    LeaseUntil,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager.create_table(outbox_table(backend)).await?;
        // Claims read only due pending rows; a partial index keeps delivered history out of it.
        // Same syntax on both databases; sea-query cannot express the WHERE of an index.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX outbox_due_idx ON outbox (next_attempt_at, created_at, id) \
                 WHERE state = 'pending'",
            )
            .await?;
        for index in indexes() {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Outbox::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

fn outbox_table(backend: DbBackend) -> TableCreateStatement {
    let mut body = ColumnDef::new(Outbox::Body);
    match backend {
        DbBackend::Postgres => body.json_binary(),
        _ => body.json(),
    };
    Table::create()
        .table(Outbox::Table)
        .col(ColumnDef::new(Outbox::Id).uuid().not_null())
        .col(ColumnDef::new(Outbox::Destination).text().not_null())
        .col(ColumnDef::new(Outbox::ActionName).text().not_null())
        .col(ColumnDef::new(Outbox::ActionId).uuid().not_null())
        .col(ColumnDef::new(Outbox::UpdateCount).integer().not_null())
        .col(body.not_null())
        .col(ColumnDef::new(Outbox::State).text().not_null())
        .col(ColumnDef::new(Outbox::Attempts).integer().not_null())
        .col(
            ColumnDef::new(Outbox::NextAttemptAt)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .col(ColumnDef::new(Outbox::LastError).text().null())
        .col(
            ColumnDef::new(Outbox::CreatedAt)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .col(
            ColumnDef::new(Outbox::FinishedAt)
                .timestamp_with_time_zone()
                .null(),
        )
        .col(
            ColumnDef::new(Outbox::LeaseUntil)
                .timestamp_with_time_zone()
                .null(),
        )
        .primary_key(Index::create().name("outbox_pk").col(Outbox::Id))
        .check((
            Alias::new("outbox_state_chk"),
            Expr::col(Outbox::State).is_in(["pending", "delivered", "dead"]),
        ))
        .check((
            Alias::new("outbox_attempts_chk"),
            Expr::col(Outbox::Attempts).gte(0),
        ))
        .to_owned()
}

fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        // Deferring and waking one peer's backlog; redrive of one destination.
        Index::create()
            .name("outbox_destination_idx")
            .table(Outbox::Table)
            .col(Outbox::Destination)
            .col(Outbox::State)
            .to_owned(),
        // Counts per state, the operators' list (newest first) and pruning of delivered rows.
        Index::create()
            .name("outbox_state_created_idx")
            .table(Outbox::Table)
            .col(Outbox::State)
            .col(Outbox::CreatedAt)
            .to_owned(),
        Index::create()
            .name("outbox_state_finished_idx")
            .table(Outbox::Table)
            .col(Outbox::State)
            .col(Outbox::FinishedAt)
            .to_owned(),
    ]
}
