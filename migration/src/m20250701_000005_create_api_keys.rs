//! `api_keys`: machine credentials of users, found by their non-secret `lookup` slice; only the
//! SHA-256 of a key is stored. Deleting a user deletes their keys.

use sea_orm_migration::prelude::*;

use crate::m20250701_000003_create_users::Users;

pub const NAME: &str = "m20250701_000005_create_api_keys";
pub const TABLE: &str = "api_keys";

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        NAME
    }
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    UserId,
    Name,
    Prefix,
    Start,
    Lookup,
    KeyHash,
    Enabled,
    ExpiresAt,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(ColumnDef::new(ApiKeys::Id).text().not_null())
                    .col(ColumnDef::new(ApiKeys::UserId).text().not_null())
                    .col(ColumnDef::new(ApiKeys::Name).text().not_null())
                    .col(ColumnDef::new(ApiKeys::Prefix).text().not_null())
                    .col(ColumnDef::new(ApiKeys::Start).text().not_null())
                    .col(ColumnDef::new(ApiKeys::Lookup).text().not_null())
                    .col(ColumnDef::new(ApiKeys::KeyHash).text().not_null())
                    .col(
                        ColumnDef::new(ApiKeys::Enabled)
                            .boolean()
                            .not_null()
                            .default(true),
                    )
                    .col(
                        ColumnDef::new(ApiKeys::ExpiresAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ApiKeys::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ApiKeys::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(Index::create().name("api_keys_pk").col(ApiKeys::Id))
                    .foreign_key(
                        ForeignKey::create()
                            .name("api_keys_user_fk")
                            .from(ApiKeys::Table, ApiKeys::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("api_keys_lookup_key")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::Lookup)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // A user's keys, newest first.
        manager
            .create_index(
                Index::create()
                    .name("api_keys_user_created_idx")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::UserId)
                    .col(ApiKeys::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ApiKeys::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
