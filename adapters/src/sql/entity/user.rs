//! The `users` table (see the migration) and its mapping to `dpg_core::model::User`.

use dpg_core::model::{Role, User};
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;

use super::item::to_millis;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    #[sea_orm(column_type = "Text")]
    pub email: String,
    pub email_verified: bool,
    #[sea_orm(column_type = "Text", nullable)]
    pub image: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub role: String,
    #[sea_orm(column_type = "Text")]
    pub password_hash: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn into_user(self) -> User {
        User {
            id: self.id,
            name: self.name,
            email: self.email,
            email_verified: self.email_verified,
            image: self.image,
            role: Role::parse(&self.role),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// The user and their password hash.
    pub fn into_user_and_hash(mut self) -> (User, String) {
        let hash = std::mem::take(&mut self.password_hash);
        (self.into_user(), hash)
    }
}

/// A whole row for `user`, with millisecond timestamps.
pub fn active_model(user: &User, password_hash: &str) -> ActiveModel {
    ActiveModel {
        id: Set(user.id.clone()),
        name: Set(user.name.clone()),
        email: Set(user.email.clone()),
        email_verified: Set(user.email_verified),
        image: Set(user.image.clone()),
        role: Set(user.role.as_str().to_string()),
        password_hash: Set(password_hash.to_string()),
        created_at: Set(to_millis(user.created_at)),
        updated_at: Set(to_millis(user.updated_at)),
    }
}
