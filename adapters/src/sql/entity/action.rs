//! The `actions` table (see the migration) and its mapping to `dpg_core::model::ActionRecord`.

use dpg_core::model::{ActionRecord, ItemRef, Locality};
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;

use super::item::to_millis;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "actions")]
pub struct Model {
    #[sea_orm(column_type = "Text")]
    pub action_name: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub action_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub action_status: String,
    pub update_count: i32,
    #[sea_orm(column_type = "Text")]
    pub source_item_network: String,
    #[sea_orm(column_type = "Text")]
    pub source_item_domain: String,
    #[sea_orm(column_type = "Text")]
    pub source_item_type: String,
    pub source_item_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub source_item_instance_url: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub source_item_owner: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub target_item_network: String,
    #[sea_orm(column_type = "Text")]
    pub target_item_domain: String,
    #[sea_orm(column_type = "Text")]
    pub target_item_type: String,
    pub target_item_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub target_item_instance_url: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub target_item_owner: Option<String>,
    pub source_is_local: bool,
    pub target_is_local: bool,
    #[sea_orm(column_type = "JsonBinary")]
    pub requirements_snapshot: Json,
    #[sea_orm(column_type = "Text", nullable)]
    pub remarks: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn into_record(self) -> ActionRecord {
        ActionRecord {
            action_name: self.action_name,
            action_id: self.action_id,
            action_status: self.action_status,
            update_count: from_count(self.update_count),
            source: ItemRef {
                network: self.source_item_network,
                domain: self.source_item_domain,
                item_type: self.source_item_type,
                item_id: self.source_item_id,
                instance_url: self.source_item_instance_url,
            },
            source_item_owner: self.source_item_owner,
            target: ItemRef {
                network: self.target_item_network,
                domain: self.target_item_domain,
                item_type: self.target_item_type,
                item_id: self.target_item_id,
                instance_url: self.target_item_instance_url,
            },
            target_item_owner: self.target_item_owner,
            locality: Locality {
                source: self.source_is_local,
                target: self.target_is_local,
            },
            requirements_snapshot: self.requirements_snapshot,
            remarks: self.remarks,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A whole row for `action`, with millisecond timestamps.
pub fn active_model(action: &ActionRecord) -> ActiveModel {
    ActiveModel {
        action_name: Set(action.action_name.clone()),
        action_id: Set(action.action_id),
        action_status: Set(action.action_status.clone()),
        update_count: Set(to_count(action.update_count)),
        source_item_network: Set(action.source.network.clone()),
        source_item_domain: Set(action.source.domain.clone()),
        source_item_type: Set(action.source.item_type.clone()),
        source_item_id: Set(action.source.item_id),
        source_item_instance_url: Set(action.source.instance_url.clone()),
        source_item_owner: Set(action.source_item_owner.clone()),
        target_item_network: Set(action.target.network.clone()),
        target_item_domain: Set(action.target.domain.clone()),
        target_item_type: Set(action.target.item_type.clone()),
        target_item_id: Set(action.target.item_id),
        target_item_instance_url: Set(action.target.instance_url.clone()),
        target_item_owner: Set(action.target_item_owner.clone()),
        source_is_local: Set(action.locality.source),
        target_is_local: Set(action.locality.target),
        requirements_snapshot: Set(action.requirements_snapshot.clone()),
        remarks: Set(action.remarks.clone()),
        created_at: Set(to_millis(action.created_at)),
        updated_at: Set(to_millis(action.updated_at)),
    }
}

/// Counts are `integer` columns (as in the reference); a count past `i32::MAX` cannot be
/// reached one update at a time, so saturating here loses nothing real.
pub fn to_count(count: u32) -> i32 {
    i32::try_from(count).unwrap_or(i32::MAX)
}

/// The columns never hold negative values (check constraint on `actions`, and only
/// [`to_count`] writes them).
pub fn from_count(count: i32) -> u32 {
    u32::try_from(count).unwrap_or(0)
}
