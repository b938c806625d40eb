//! `SessionRepository` on SQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dpg_core::error::{CoreError, ErrorCode};
use dpg_core::model::Session;
use dpg_core::ports::SessionRepository;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbBackend, EntityTrait, QueryFilter, QuerySelect,
    TransactionTrait,
};

use super::database::SqlDatabase;
use super::entity::item::to_millis;
use super::entity::session::{self, Column, Entity};
use super::errors::{is_unique_violation, storage_error};

/// Sessions in the `sessions` table of PostgreSQL or SQLite.
#[derive(Clone)]
pub struct SqlSessionRepository {
    conn: DatabaseConnection,
    backend: DbBackend,
}

impl std::fmt::Debug for SqlSessionRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSessionRepository")
            .field("backend", &self.backend)
            .finish()
    }
}

impl SqlSessionRepository {
    pub fn new(database: &SqlDatabase) -> Self {
        SqlSessionRepository {
            conn: database.connection().clone(),
            backend: database.db_backend(),
        }
    }
}

#[async_trait]
impl SessionRepository for SqlSessionRepository {
    #[tracing::instrument(level = "debug", skip_all, fields(session_id = %session.id, user_id = %session.user_id))]
    async fn create(&self, session: &Session) -> Result<(), CoreError> {
        match Entity::insert(session::active_model(session))
            .exec_without_returning(&self.conn)
            .await
        {
            Ok(_) => Ok(()),
            // Same id or same token hash: the caller drew a token that is taken.
            Err(err) if is_unique_violation(&err) => Err(CoreError::Conflict {
                code: ErrorCode::InvalidInput,
                message: "Session already exists".to_string(),
            }),
            Err(err) => Err(storage_error("insert session", &err)),
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn find_by_token_hash(&self, token_hash: &str) -> Result<Option<Session>, CoreError> {
        Entity::find()
            .filter(Column::TokenHash.eq(token_hash))
            .one(&self.conn)
            .await
            .map(|row| row.map(session::Model::into_session))
            .map_err(|e| storage_error("find session", &e))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn extend(
        &self,
        id: &str,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        Entity::update_many()
            .col_expr(Column::ExpiresAt, Expr::val(to_millis(expires_at)))
            .col_expr(Column::UpdatedAt, Expr::val(to_millis(at)))
            .filter(Column::Id.eq(id))
            .exec(&self.conn)
            .await
            .map_err(|e| storage_error("extend session", &e))?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete(&self, id: &str) -> Result<(), CoreError> {
        Entity::delete_many()
            .filter(Column::Id.eq(id))
            .exec(&self.conn)
            .await
            .map_err(|e| storage_error("delete session", &e))?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete_for_user<'a>(
        &self,
        user_id: &str,
        keep: Option<&'a str>,
    ) -> Result<Vec<String>, CoreError> {
        let failed = |e: sea_orm::DbErr| storage_error("delete sessions of user", &e);
        // Read, then delete exactly the rows read (SQLite without RETURNING): a session
        // created meanwhile is neither deleted nor reported.
        let txn = self.conn.begin().await.map_err(failed)?;
        let mut condition = Condition::all().add(Column::UserId.eq(user_id));
        if let Some(keep) = keep {
            condition = condition.add(Column::Id.ne(keep));
        }
        let rows: Vec<(String, String)> = Entity::find()
            .filter(condition)
            .select_only()
            .column(Column::Id)
            .column(Column::TokenHash)
            .into_tuple()
            .all(&txn)
            .await
            .map_err(failed)?;
        if rows.is_empty() {
            txn.rollback().await.map_err(failed)?;
            return Ok(Vec::new());
        }
        let (ids, token_hashes): (Vec<String>, Vec<String>) = rows.into_iter().unzip();
        Entity::delete_many()
            .filter(Column::Id.is_in(ids))
            .exec(&txn)
            .await
            .map_err(failed)?;
        txn.commit().await.map_err(failed)?;
        Ok(token_hashes)
    }
}
