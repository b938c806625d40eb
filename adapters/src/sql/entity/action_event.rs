//! The `action_events` table (see the migration) and its mapping to
//! `dpg_core::model::ActionEvent`.

use dpg_core::model::{ActionEvent, ItemRef, Locality};
use sea_orm::ActiveValue::Set;
use sea_orm::TryIntoModel;
use sea_orm::entity::prelude::*;

use super::action::{from_count, to_count};
use super::item::to_millis;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "action_events")]
pub struct Model {
    #[sea_orm(column_type = "Text")]
    pub action_name: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub origin_instance_domain: String,
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
    pub source_item_latitude: Option<f64>,
    pub source_item_longitude: Option<f64>,
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
    pub target_item_latitude: Option<f64>,
    pub target_item_longitude: Option<f64>,
    pub source_is_local: bool,
    pub target_is_local: bool,
    #[sea_orm(column_type = "JsonBinary")]
    pub event_payload: Json,
    #[sea_orm(column_type = "Text", nullable)]
    pub remarks: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn into_event(self) -> ActionEvent {
        ActionEvent {
            action_name: self.action_name,
            event_id: self.event_id,
            origin_instance_domain: self.origin_instance_domain,
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
            source_item_latitude: self.source_item_latitude,
            source_item_longitude: self.source_item_longitude,
            target: ItemRef {
                network: self.target_item_network,
                domain: self.target_item_domain,
                item_type: self.target_item_type,
                item_id: self.target_item_id,
                instance_url: self.target_item_instance_url,
            },
            target_item_owner: self.target_item_owner,
            target_item_latitude: self.target_item_latitude,
            target_item_longitude: self.target_item_longitude,
            locality: Locality {
                source: self.source_is_local,
                target: self.target_is_local,
            },
            event_payload: self.event_payload,
            remarks: self.remarks,
            created_at: self.created_at,
        }
    }
}

/// A whole row for `event`, with a millisecond timestamp.
/// The row of `event` as a JSON object keyed by column, as `jsonb_populate_record` reads it
/// (PostgreSQL's `dpg_store_event`): the values of [`active_model`].
pub fn row_json(event: &ActionEvent) -> Result<serde_json::Value, DbErr> {
    let row: Model = active_model(event).try_into_model()?;
    serde_json::to_value(row).map_err(|e| DbErr::Json(e.to_string()))
}

pub fn active_model(event: &ActionEvent) -> ActiveModel {
    ActiveModel {
        action_name: Set(event.action_name.clone()),
        event_id: Set(event.event_id),
        origin_instance_domain: Set(event.origin_instance_domain.clone()),
        action_id: Set(event.action_id),
        action_status: Set(event.action_status.clone()),
        update_count: Set(to_count(event.update_count)),
        source_item_network: Set(event.source.network.clone()),
        source_item_domain: Set(event.source.domain.clone()),
        source_item_type: Set(event.source.item_type.clone()),
        source_item_id: Set(event.source.item_id),
        source_item_instance_url: Set(event.source.instance_url.clone()),
        source_item_owner: Set(event.source_item_owner.clone()),
        source_item_latitude: Set(event.source_item_latitude),
        source_item_longitude: Set(event.source_item_longitude),
        target_item_network: Set(event.target.network.clone()),
        target_item_domain: Set(event.target.domain.clone()),
        target_item_type: Set(event.target.item_type.clone()),
        target_item_id: Set(event.target.item_id),
        target_item_instance_url: Set(event.target.instance_url.clone()),
        target_item_owner: Set(event.target_item_owner.clone()),
        target_item_latitude: Set(event.target_item_latitude),
        target_item_longitude: Set(event.target_item_longitude),
        source_is_local: Set(event.locality.source),
        target_is_local: Set(event.locality.target),
        event_payload: Set(event.event_payload.clone()),
        remarks: Set(event.remarks.clone()),
        created_at: Set(to_millis(event.created_at)),
    }
}
