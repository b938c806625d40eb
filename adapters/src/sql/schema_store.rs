//! `SchemaStore` on SQL: the last good network documents, shared by an instance's replicas.

use async_trait::async_trait;
use dpg_core::error::CoreError;
use dpg_core::ports::{SchemaStore, StoredDocument};
use sea_orm::{DatabaseConnection, EntityTrait, QueryOrder, TransactionTrait};

use super::database::SqlDatabase;
use super::entity::network_document::{self, Column, Entity};
use super::errors::storage_error;

/// Rows per INSERT, well below the bound-parameter limits of both databases.
const INSERT_CHUNK: usize = 200;

#[derive(Clone)]
pub struct SqlSchemaStore {
    conn: DatabaseConnection,
}

impl std::fmt::Debug for SqlSchemaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSchemaStore").finish_non_exhaustive()
    }
}

impl SqlSchemaStore {
    pub fn new(database: &SqlDatabase) -> Self {
        SqlSchemaStore {
            conn: database.connection().clone(),
        }
    }
}

#[async_trait]
impl SchemaStore for SqlSchemaStore {
    #[tracing::instrument(level = "debug", skip_all, fields(documents = documents.len()))]
    async fn save(&self, documents: &[StoredDocument]) -> Result<(), CoreError> {
        let mut rows = Vec::with_capacity(documents.len());
        for (index, document) in documents.iter().enumerate() {
            let ordinal = i32::try_from(index)
                .map_err(|_| CoreError::internal("too many network documents to store"))?;
            rows.push(network_document::active_model(ordinal, document)?);
        }
        let fail = |e: sea_orm::DbErr| storage_error("save network documents", &e);
        // One transaction: readers see the old set or the new one, never a mix.
        let txn = self.conn.begin().await.map_err(fail)?;
        Entity::delete_many().exec(&txn).await.map_err(fail)?;
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<_> = rows.by_ref().take(INSERT_CHUNK).collect();
            Entity::insert_many(chunk)
                .exec_without_returning(&txn)
                .await
                .map_err(fail)?;
        }
        txn.commit().await.map_err(fail)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn load(&self) -> Result<Vec<StoredDocument>, CoreError> {
        Entity::find()
            .order_by_asc(Column::Ordinal)
            .all(&self.conn)
            .await
            .map_err(|e| storage_error("load network documents", &e))?
            .into_iter()
            .map(network_document::Model::into_document)
            .collect()
    }
}
