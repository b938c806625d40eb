//! `UserRepository` on SQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dpg_core::error::{CoreError, ErrorCode};
use dpg_core::model::{Role, User};
use dpg_core::ports::UserRepository;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter, TransactionTrait,
};

use super::database::SqlDatabase;
use super::entity::item::to_millis;
use super::entity::{api_key, item, session, user};
use super::errors::{is_unique_violation, storage_error};

/// Users in the `users` table of PostgreSQL or SQLite.
#[derive(Clone)]
pub struct SqlUserRepository {
    conn: DatabaseConnection,
    backend: DbBackend,
}

impl std::fmt::Debug for SqlUserRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlUserRepository")
            .field("backend", &self.backend)
            .finish()
    }
}

impl SqlUserRepository {
    pub fn new(database: &SqlDatabase) -> Self {
        SqlUserRepository {
            conn: database.connection().clone(),
            backend: database.db_backend(),
        }
    }
}

#[async_trait]
impl UserRepository for SqlUserRepository {
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user.id))]
    async fn create(&self, user: &User, password_hash: &str) -> Result<(), CoreError> {
        match user::Entity::insert(user::active_model(user, password_hash))
            .exec_without_returning(&self.conn)
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if is_unique_violation(&err) => Err(CoreError::Conflict {
                code: ErrorCode::UserAlreadyExists,
                message: "User already exists".to_string(),
            }),
            Err(err) => Err(storage_error("insert user", &err)),
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn find_by_email(&self, email: &str) -> Result<Option<(User, String)>, CoreError> {
        user::Entity::find()
            .filter(user::Column::Email.eq(email))
            .one(&self.conn)
            .await
            .map(|row| row.map(user::Model::into_user_and_hash))
            .map_err(|e| storage_error("find user by email", &e))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn find_by_id(&self, id: &str) -> Result<Option<User>, CoreError> {
        user::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map(|row| row.map(user::Model::into_user))
            .map_err(|e| storage_error("find user by id", &e))
    }

    #[tracing::instrument(level = "debug", skip(self, password_hash))]
    async fn set_password(
        &self,
        id: &str,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, CoreError> {
        let result = user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::val(password_hash))
            .col_expr(user::Column::UpdatedAt, Expr::val(to_millis(at)))
            .filter(user::Column::Id.eq(id))
            .exec(&self.conn)
            .await
            .map_err(|e| storage_error("set user password", &e))?;
        Ok(result.rows_affected > 0)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn set_role(&self, id: &str, role: Role, at: DateTime<Utc>) -> Result<bool, CoreError> {
        let result = user::Entity::update_many()
            .col_expr(user::Column::Role, Expr::val(role.as_str()))
            .col_expr(user::Column::UpdatedAt, Expr::val(to_millis(at)))
            .filter(user::Column::Id.eq(id))
            .exec(&self.conn)
            .await
            .map_err(|e| storage_error("set user role", &e))?;
        Ok(result.rows_affected > 0)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete(&self, id: &str) -> Result<bool, CoreError> {
        let failed = |e: sea_orm::DbErr| storage_error("delete user", &e);
        let txn = self.conn.begin().await.map_err(failed)?;
        // The user row first: it tells whether there is anything to delete, and on
        // PostgreSQL it locks the user against sessions or keys created meanwhile.
        let removed = user::Entity::delete_many()
            .filter(user::Column::Id.eq(id))
            .exec(&txn)
            .await
            .map_err(failed)?;
        if removed.rows_affected == 0 {
            txn.rollback().await.map_err(failed)?;
            return Ok(false);
        }
        // The foreign keys cascade already; deleting explicitly keeps the contract on a
        // connection where SQLite's foreign key enforcement is off.
        session::Entity::delete_many()
            .filter(session::Column::UserId.eq(id))
            .exec(&txn)
            .await
            .map_err(failed)?;
        api_key::Entity::delete_many()
            .filter(api_key::Column::UserId.eq(id))
            .exec(&txn)
            .await
            .map_err(failed)?;
        item::Entity::delete_many()
            .filter(item::Column::CreatedBy.eq(id))
            .exec(&txn)
            .await
            .map_err(failed)?;
        txn.commit().await.map_err(failed)?;
        Ok(true)
    }
}
