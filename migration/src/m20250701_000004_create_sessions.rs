//! `sessions`: signed-in browsers and clients, found by the SHA-256 of their token. Deleting a
//! user deletes their sessions (the repository does it explicitly too, in one transaction).

use sea_orm_migration::prelude::*;

use crate::m20250701_000003_create_users::Users;

pub const NAME: &str = "m20250701_000004_create_sessions";
pub const TABLE: &str = "sessions";

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        NAME
    }
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    TokenHash,
    ExpiresAt,
    CreatedAt,
    UpdatedAt,
    IpAddress,
    UserAgent,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(ColumnDef::new(Sessions::Id).text().not_null())
                    .col(ColumnDef::new(Sessions::UserId).text().not_null())
                    .col(ColumnDef::new(Sessions::TokenHash).text().not_null())
                    .col(
                        ColumnDef::new(Sessions::ExpiresAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Sessions::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Sessions::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Sessions::IpAddress).text().null())
                    .col(ColumnDef::new(Sessions::UserAgent).text().null())
                    .primary_key(Index::create().name("sessions_pk").col(Sessions::Id))
                    .foreign_key(
                        ForeignKey::create()
                            .name("sessions_user_fk")
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sessions_token_hash_key")
                    .table(Sessions::Table)
                    .col(Sessions::TokenHash)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sessions_user_idx")
                    .table(Sessions::Table)
                    .col(Sessions::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Sessions::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
