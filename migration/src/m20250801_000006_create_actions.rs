//! `actions`, `action_events` and `action_idempotency_keys` (reference-contract §7.2, without
//! partitions or foreign keys: mirrored events and copies of initiated actions have no local
//! items).
//!
//! Distribution: every key of `actions` and `action_events` contains `action_id`, so a
//! distributed PostgreSQL can co-locate an action with its events by that column (items use
//! (network, domain); an action joins two items of different domains, so neither pair fits).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

pub const NAME: &str = "m20250801_000006_create_actions";
pub const ACTIONS: &str = "actions";
pub const EVENTS: &str = "action_events";
pub const IDEMPOTENCY_KEYS: &str = "action_idempotency_keys";

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        NAME
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Actions {
    Table,
    ActionName,
    ActionId,
    ActionStatus,
    UpdateCount,
    SourceItemOwner,
    TargetItemOwner,
    SourceItemId,
    TargetItemId,
    RequirementsSnapshot,
    Remarks,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ActionEvents {
    Table,
    ActionName,
    EventId,
    OriginInstanceDomain,
    ActionId,
    ActionStatus,
    UpdateCount,
    SourceItemOwner,
    SourceItemLatitude,
    SourceItemLongitude,
    TargetItemOwner,
    TargetItemLatitude,
    TargetItemLongitude,
    SourceItemId,
    TargetItemId,
    EventPayload,
    Remarks,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ActionIdempotencyKeys {
    Table,
    SourceInstance,
    IdempotencyKey,
    ActionId,
    ExpiresAt,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager.create_table(actions_table(backend)).await?;
        manager.create_table(events_table(backend)).await?;
        manager.create_table(idempotency_table()).await?;
        for index in indexes() {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [IDEMPOTENCY_KEYS, EVENTS, ACTIONS] {
            manager
                .drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

fn json_column(name: impl IntoIden, backend: DbBackend) -> ColumnDef {
    let mut column = ColumnDef::new(name);
    match backend {
        DbBackend::Postgres => column.json_binary(),
        _ => column.json(),
    };
    column.not_null();
    column
}

/// `<side>_item_network`, `_domain`, `_type`, `_id`, `_instance_url` (Appendix A.4).
fn item_columns(table: &mut TableCreateStatement, side: &str) {
    for suffix in ["network", "domain", "type"] {
        table.col(
            ColumnDef::new(Alias::new(format!("{side}_item_{suffix}")))
                .text()
                .not_null(),
        );
    }
    table.col(
        ColumnDef::new(Alias::new(format!("{side}_item_id")))
            .uuid()
            .not_null(),
    );
    table.col(
        ColumnDef::new(Alias::new(format!("{side}_item_instance_url")))
            .text()
            .not_null(),
    );
}

fn timestamp(name: impl IntoIden) -> ColumnDef {
    let mut column = ColumnDef::new(name);
    column.timestamp_with_time_zone().not_null();
    column
}

fn actions_table(backend: DbBackend) -> TableCreateStatement {
    let mut table = Table::create();
    table
        .table(Actions::Table)
        .col(ColumnDef::new(Actions::ActionName).text().not_null())
        .col(ColumnDef::new(Actions::ActionId).uuid().not_null())
        .col(ColumnDef::new(Actions::ActionStatus).text().not_null())
        .col(ColumnDef::new(Actions::UpdateCount).integer().not_null());
    item_columns(&mut table, "source");
    table.col(ColumnDef::new(Actions::SourceItemOwner).text().null());
    item_columns(&mut table, "target");
    table
        .col(ColumnDef::new(Actions::TargetItemOwner).text().null())
        .col(json_column(Actions::RequirementsSnapshot, backend))
        .col(ColumnDef::new(Actions::Remarks).text().null())
        .col(timestamp(Actions::CreatedAt))
        .col(timestamp(Actions::UpdatedAt))
        .primary_key(Index::create().name("actions_pk").col(Actions::ActionId))
        .check((
            Alias::new("actions_update_count_chk"),
            Expr::col(Actions::UpdateCount).gte(0),
        ))
        .to_owned()
}

fn events_table(backend: DbBackend) -> TableCreateStatement {
    let mut table = Table::create();
    table
        .table(ActionEvents::Table)
        .col(ColumnDef::new(ActionEvents::ActionName).text().not_null())
        .col(ColumnDef::new(ActionEvents::EventId).uuid().not_null())
        .col(
            ColumnDef::new(ActionEvents::OriginInstanceDomain)
                .text()
                .not_null(),
        )
        .col(ColumnDef::new(ActionEvents::ActionId).uuid().not_null())
        .col(ColumnDef::new(ActionEvents::ActionStatus).text().not_null())
        .col(
            ColumnDef::new(ActionEvents::UpdateCount)
                .integer()
                .not_null(),
        );
    item_columns(&mut table, "source");
    table
        .col(ColumnDef::new(ActionEvents::SourceItemOwner).text().null())
        .col(
            ColumnDef::new(ActionEvents::SourceItemLatitude)
                .double()
                .null(),
        )
        .col(
            ColumnDef::new(ActionEvents::SourceItemLongitude)
                .double()
                .null(),
        );
    item_columns(&mut table, "target");
    table
        .col(ColumnDef::new(ActionEvents::TargetItemOwner).text().null())
        .col(
            ColumnDef::new(ActionEvents::TargetItemLatitude)
                .double()
                .null(),
        )
        .col(
            ColumnDef::new(ActionEvents::TargetItemLongitude)
                .double()
                .null(),
        )
        .col(json_column(ActionEvents::EventPayload, backend))
        .col(ColumnDef::new(ActionEvents::Remarks).text().null())
        .col(timestamp(ActionEvents::CreatedAt))
        .primary_key(
            Index::create()
                .name("action_events_pk")
                .col(ActionEvents::ActionId)
                .col(ActionEvents::EventId),
        )
        .to_owned()
}

fn idempotency_table() -> TableCreateStatement {
    Table::create()
        .table(ActionIdempotencyKeys::Table)
        .col(
            ColumnDef::new(ActionIdempotencyKeys::SourceInstance)
                .text()
                .not_null(),
        )
        .col(
            ColumnDef::new(ActionIdempotencyKeys::IdempotencyKey)
                .text()
                .not_null(),
        )
        .col(
            ColumnDef::new(ActionIdempotencyKeys::ActionId)
                .uuid()
                .not_null(),
        )
        .col(timestamp(ActionIdempotencyKeys::ExpiresAt))
        .col(timestamp(ActionIdempotencyKeys::CreatedAt))
        .primary_key(
            Index::create()
                .name("action_idempotency_keys_pk")
                .col(ActionIdempotencyKeys::SourceInstance)
                .col(ActionIdempotencyKeys::IdempotencyKey),
        )
        .to_owned()
}

fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        // The receiver's idempotency key: a re-delivered event is recognised and ignored.
        Index::create()
            .name("action_events_origin_action_update_idx")
            .table(ActionEvents::Table)
            .col(ActionEvents::ActionName)
            .col(ActionEvents::OriginInstanceDomain)
            .col(ActionEvents::ActionId)
            .col(ActionEvents::UpdateCount)
            .unique()
            .to_owned(),
        // Owner-scoped listings in their order (actions by updated_at, events by created_at).
        Index::create()
            .name("actions_source_owner_idx")
            .table(Actions::Table)
            .col(Actions::SourceItemOwner)
            .col(Actions::UpdatedAt)
            .to_owned(),
        Index::create()
            .name("actions_target_owner_idx")
            .table(Actions::Table)
            .col(Actions::TargetItemOwner)
            .col(Actions::UpdatedAt)
            .to_owned(),
        Index::create()
            .name("actions_source_item_idx")
            .table(Actions::Table)
            .col(Actions::SourceItemId)
            .to_owned(),
        Index::create()
            .name("actions_target_item_idx")
            .table(Actions::Table)
            .col(Actions::TargetItemId)
            .to_owned(),
        Index::create()
            .name("action_events_source_owner_idx")
            .table(ActionEvents::Table)
            .col(ActionEvents::SourceItemOwner)
            .col(ActionEvents::CreatedAt)
            .to_owned(),
        Index::create()
            .name("action_events_target_owner_idx")
            .table(ActionEvents::Table)
            .col(ActionEvents::TargetItemOwner)
            .col(ActionEvents::CreatedAt)
            .to_owned(),
        Index::create()
            .name("action_events_source_item_idx")
            .table(ActionEvents::Table)
            .col(ActionEvents::SourceItemId)
            .to_owned(),
        Index::create()
            .name("action_events_target_item_idx")
            .table(ActionEvents::Table)
            .col(ActionEvents::TargetItemId)
            .to_owned(),
        // Pruning of expired keys.
        Index::create()
            .name("action_idempotency_keys_expires_idx")
            .table(ActionIdempotencyKeys::Table)
            .col(ActionIdempotencyKeys::ExpiresAt)
            .to_owned(),
    ]
}
