//! The `sessions` table (see the migration) and its mapping to `dpg_core::model::Session`.

use dpg_core::model::Session;
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;

use super::item::to_millis;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub user_id: String,
    #[sea_orm(column_type = "Text")]
    pub token_hash: String,
    pub expires_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(column_type = "Text", nullable)]
    pub ip_address: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub user_agent: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn into_session(self) -> Session {
        Session {
            id: self.id,
            user_id: self.user_id,
            token_hash: self.token_hash,
            expires_at: self.expires_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            ip_address: self.ip_address,
            user_agent: self.user_agent,
        }
    }
}

/// A whole row for `session`, with millisecond timestamps.
pub fn active_model(session: &Session) -> ActiveModel {
    ActiveModel {
        id: Set(session.id.clone()),
        user_id: Set(session.user_id.clone()),
        token_hash: Set(session.token_hash.clone()),
        expires_at: Set(to_millis(session.expires_at)),
        created_at: Set(to_millis(session.created_at)),
        updated_at: Set(to_millis(session.updated_at)),
        ip_address: Set(session.ip_address.clone()),
        user_agent: Set(session.user_agent.clone()),
    }
}
