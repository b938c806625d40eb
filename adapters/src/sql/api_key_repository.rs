//! `ApiKeyRepository` on SQL.

use async_trait::async_trait;
use dpg_core::error::{CoreError, ErrorCode};
use dpg_core::model::ApiKey;
use dpg_core::ports::ApiKeyRepository;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};

use super::database::SqlDatabase;
use super::entity::api_key::{self, Column, Entity};
use super::errors::{is_unique_violation, storage_error};

/// API keys in the `api_keys` table of PostgreSQL or SQLite.
#[derive(Clone)]
pub struct SqlApiKeyRepository {
    conn: DatabaseConnection,
    backend: DbBackend,
}

impl std::fmt::Debug for SqlApiKeyRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlApiKeyRepository")
            .field("backend", &self.backend)
            .finish()
    }
}

impl SqlApiKeyRepository {
    pub fn new(database: &SqlDatabase) -> Self {
        SqlApiKeyRepository {
            conn: database.connection().clone(),
            backend: database.db_backend(),
        }
    }
}

#[async_trait]
impl ApiKeyRepository for SqlApiKeyRepository {
    #[tracing::instrument(level = "debug", skip_all, fields(key_id = %key.id, user_id = %key.user_id))]
    async fn create(&self, key: &ApiKey) -> Result<(), CoreError> {
        match Entity::insert(api_key::active_model(key))
            .exec_without_returning(&self.conn)
            .await
        {
            Ok(_) => Ok(()),
            // Same lookup (or id): the caller draws another key.
            Err(err) if is_unique_violation(&err) => Err(CoreError::Conflict {
                code: ErrorCode::InvalidInput,
                message: "API key already exists".to_string(),
            }),
            Err(err) => Err(storage_error("insert api key", &err)),
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn find_by_lookup(&self, lookup: &str) -> Result<Option<ApiKey>, CoreError> {
        Entity::find()
            .filter(Column::Lookup.eq(lookup))
            .one(&self.conn)
            .await
            .map(|row| row.map(api_key::Model::into_api_key))
            .map_err(|e| storage_error("find api key", &e))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn list_for_user(&self, user_id: &str) -> Result<Vec<ApiKey>, CoreError> {
        Entity::find()
            .filter(Column::UserId.eq(user_id))
            .order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::Id)
            .all(&self.conn)
            .await
            .map(|rows| rows.into_iter().map(api_key::Model::into_api_key).collect())
            .map_err(|e| storage_error("list api keys", &e))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete(&self, id: &str, user_id: &str) -> Result<Option<ApiKey>, CoreError> {
        let failed = |e: sea_orm::DbErr| storage_error("delete api key", &e);
        let txn = self.conn.begin().await.map_err(failed)?;
        let found = Entity::find()
            .filter(Column::Id.eq(id))
            .filter(Column::UserId.eq(user_id))
            .one(&txn)
            .await
            .map_err(failed)?;
        let Some(row) = found else {
            txn.rollback().await.map_err(failed)?;
            return Ok(None);
        };
        let removed = Entity::delete_many()
            .filter(Column::Id.eq(id))
            .filter(Column::UserId.eq(user_id))
            .exec(&txn)
            .await
            .map_err(failed)?;
        txn.commit().await.map_err(failed)?;
        // Deleted meanwhile by another call: that call reports it.
        Ok((removed.rows_affected > 0).then(|| row.into_api_key()))
    }
}
