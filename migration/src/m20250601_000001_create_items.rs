//! The `items` table. Unlike the reference's layout it has no partitions and no foreign key to a
//! user table, and every key starts with (item_network, item_domain) so that a distributed
//! PostgreSQL can use that pair as distribution key.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

pub const NAME: &str = "m20250601_000001_create_items";
pub const TABLE: &str = "items";

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        NAME
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Items {
    Table,
    ItemNetwork,
    ItemDomain,
    ItemType,
    ItemId,
    ItemInstanceUrl,
    ItemSchemaUrl,
    ItemState,
    ItemLatitude,
    ItemLongitude,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    GeoX,
    GeoY,
    GeoZ,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager.create_table(items_table(backend)).await?;
        for index in indexes() {
            manager.create_index(index).await?;
        }
        if backend == DbBackend::Postgres {
            // Serves `item_state @> ...`; sea-query cannot express an operator class.
            manager
                .get_connection()
                .execute_unprepared(
                    "CREATE INDEX items_state_gin_idx ON items USING GIN (item_state jsonb_path_ops)",
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Items::Table).to_owned())
            .await
    }

    /// SQLite runs DDL in transactions too, so a failed step leaves nothing half-made.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

fn items_table(backend: DbBackend) -> TableCreateStatement {
    let mut state = ColumnDef::new(Items::ItemState);
    match backend {
        DbBackend::Postgres => state.json_binary(),
        _ => state.json(),
    };
    Table::create()
        .table(Items::Table)
        .col(ColumnDef::new(Items::ItemNetwork).text().not_null())
        .col(ColumnDef::new(Items::ItemDomain).text().not_null())
        .col(ColumnDef::new(Items::ItemType).text().not_null())
        .col(ColumnDef::new(Items::ItemId).uuid().not_null())
        .col(ColumnDef::new(Items::ItemInstanceUrl).text().not_null())
        .col(ColumnDef::new(Items::ItemSchemaUrl).text().not_null())
        .col(state.not_null())
        .col(ColumnDef::new(Items::ItemLatitude).double().null())
        .col(ColumnDef::new(Items::ItemLongitude).double().null())
        .col(ColumnDef::new(Items::CreatedBy).text().not_null())
        .col(
            ColumnDef::new(Items::CreatedAt)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .col(
            ColumnDef::new(Items::UpdatedAt)
                .timestamp_with_time_zone()
                .not_null(),
        )
        // Unit vector of (latitude, longitude): radius queries need no trigonometry in SQL.
        .col(ColumnDef::new(Items::GeoX).double().null())
        .col(ColumnDef::new(Items::GeoY).double().null())
        .col(ColumnDef::new(Items::GeoZ).double().null())
        .primary_key(
            Index::create()
                .name("items_pk")
                .col(Items::ItemNetwork)
                .col(Items::ItemDomain)
                .col(Items::ItemType)
                .col(Items::ItemId),
        )
        .check((
            Alias::new("items_geo_lat_chk"),
            Expr::col(Items::ItemLatitude)
                .is_null()
                .or(Expr::col(Items::ItemLatitude).between(-90.0, 90.0)),
        ))
        .check((
            Alias::new("items_geo_lng_chk"),
            Expr::col(Items::ItemLongitude)
                .is_null()
                .or(Expr::col(Items::ItemLongitude).between(-180.0, 180.0)),
        ))
        .check((
            Alias::new("items_geo_pair_chk"),
            all_null(&[Items::ItemLatitude, Items::ItemLongitude])
                .or(none_null(&[Items::ItemLatitude, Items::ItemLongitude])),
        ))
        .check((
            Alias::new("items_geo_vector_chk"),
            all_null(&[Items::ItemLatitude, Items::GeoX, Items::GeoY, Items::GeoZ]).or(none_null(
                &[Items::ItemLatitude, Items::GeoX, Items::GeoY, Items::GeoZ],
            )),
        ))
        .to_owned()
}

fn all_null(columns: &[Items]) -> Expr {
    let mut condition = Condition::all();
    for column in columns {
        condition = condition.add(Expr::col(*column).is_null());
    }
    condition.into()
}

fn none_null(columns: &[Items]) -> Expr {
    let mut condition = Condition::all();
    for column in columns {
        condition = condition.add(Expr::col(*column).is_not_null());
    }
    condition.into()
}

fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        // Listing order: newest first within a network/domain, item_id breaking ties.
        Index::create()
            .name("items_listing_idx")
            .table(Items::Table)
            .col(Items::ItemNetwork)
            .col(Items::ItemDomain)
            .col(Items::CreatedAt)
            .col(Items::ItemId)
            .to_owned(),
        // Owner look-ups by id (update, delete) cross networks and domains.
        Index::create()
            .name("items_item_id_idx")
            .table(Items::Table)
            .col(Items::ItemId)
            .to_owned(),
        // Owner-scoped listing (local fetch) in the listing order, so a page walks only the
        // owner's rows instead of the whole domain.
        Index::create()
            .name("items_owner_listing_idx")
            .table(Items::Table)
            .col(Items::ItemNetwork)
            .col(Items::ItemDomain)
            .col(Items::CreatedBy)
            .col(Items::CreatedAt)
            .col(Items::ItemId)
            .to_owned(),
        // Bounding-box pre-filter of radius queries.
        Index::create()
            .name("items_geo_idx")
            .table(Items::Table)
            .col(Items::ItemNetwork)
            .col(Items::ItemDomain)
            .col(Items::ItemLatitude)
            .col(Items::ItemLongitude)
            .to_owned(),
    ]
}
