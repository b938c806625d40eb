//! `network_documents`: the last good set of network documents (port `SchemaStore`), shared by
//! the replicas of an instance. A small instance-wide table, replaced as a whole.

use sea_orm_migration::prelude::*;

pub const NAME: &str = "m20250601_000002_create_network_documents";
pub const TABLE: &str = "network_documents";

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        NAME
    }
}

#[derive(DeriveIden)]
enum NetworkDocuments {
    Table,
    Ordinal,
    Kind,
    Location,
    Body,
    Etag,
    LastModified,
    FetchedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(NetworkDocuments::Table)
                    // Position in the saved set, so a load returns the documents in save order.
                    .col(
                        ColumnDef::new(NetworkDocuments::Ordinal)
                            .integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(NetworkDocuments::Kind).text().not_null())
                    .col(ColumnDef::new(NetworkDocuments::Location).text().not_null())
                    // The JSON text as fetched: a json/jsonb column would reorder keys or
                    // respell numbers of the document the instance serves back.
                    .col(ColumnDef::new(NetworkDocuments::Body).text().not_null())
                    .col(ColumnDef::new(NetworkDocuments::Etag).text().null())
                    .col(ColumnDef::new(NetworkDocuments::LastModified).text().null())
                    .col(
                        ColumnDef::new(NetworkDocuments::FetchedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .name("network_documents_pk")
                            .col(NetworkDocuments::Ordinal),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(NetworkDocuments::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
