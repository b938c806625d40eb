//! The `api_keys` table (see the migration) and its mapping to `dpg_core::model::ApiKey`.

use dpg_core::model::ApiKey;
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;

use super::item::to_millis;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub user_id: String,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    #[sea_orm(column_type = "Text")]
    pub prefix: String,
    #[sea_orm(column_type = "Text")]
    pub start: String,
    #[sea_orm(column_type = "Text")]
    pub lookup: String,
    #[sea_orm(column_type = "Text")]
    pub key_hash: String,
    pub enabled: bool,
    pub expires_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn into_api_key(self) -> ApiKey {
        ApiKey {
            id: self.id,
            user_id: self.user_id,
            name: self.name,
            prefix: self.prefix,
            start: self.start,
            lookup: self.lookup,
            key_hash: self.key_hash,
            enabled: self.enabled,
            expires_at: self.expires_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A whole row for `key`, with millisecond timestamps.
pub fn active_model(key: &ApiKey) -> ActiveModel {
    ActiveModel {
        id: Set(key.id.clone()),
        user_id: Set(key.user_id.clone()),
        name: Set(key.name.clone()),
        prefix: Set(key.prefix.clone()),
        start: Set(key.start.clone()),
        lookup: Set(key.lookup.clone()),
        key_hash: Set(key.key_hash.clone()),
        enabled: Set(key.enabled),
        expires_at: Set(key.expires_at.map(to_millis)),
        created_at: Set(to_millis(key.created_at)),
        updated_at: Set(to_millis(key.updated_at)),
    }
}
