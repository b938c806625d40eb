//! The `items` table (see the migration) and its mapping to `dpg_core::model::Item`.

use chrono::{DateTime, Utc};
use dpg_core::model::Item;
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use sea_orm::sqlx::Row;
use sea_orm::{FromQueryResult, QueryResult};

use crate::sql::geo::UnitVector;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "items")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub item_network: String,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub item_domain: String,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub item_type: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub item_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub item_instance_url: String,
    #[sea_orm(column_type = "Text")]
    pub item_schema_url: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub item_state: Json,
    pub item_latitude: Option<f64>,
    pub item_longitude: Option<f64>,
    #[sea_orm(column_type = "Text")]
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub geo_x: Option<f64>,
    pub geo_y: Option<f64>,
    pub geo_z: Option<f64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The columns an [`Item`] is read from, in the order [`ItemRecord`] decodes them; the geo
/// columns only serve radius filters.
pub const ITEM_COLUMNS: [Column; 12] = [
    Column::ItemNetwork,
    Column::ItemDomain,
    Column::ItemType,
    Column::ItemId,
    Column::ItemInstanceUrl,
    Column::ItemSchemaUrl,
    Column::ItemState,
    Column::ItemLatitude,
    Column::ItemLongitude,
    Column::CreatedBy,
    Column::CreatedAt,
    Column::UpdatedAt,
];

/// An item decoded by column position from a select of [`ITEM_COLUMNS`]. Pages are read this
/// way because decoding by name formats each column's name and every NULL coordinate's error
/// message, which cost more than the query itself.
pub struct ItemRecord(pub Item);

impl FromQueryResult for ItemRecord {
    fn from_query_result(row: &QueryResult, _prefix: &str) -> Result<Self, DbErr> {
        Ok(ItemRecord(Item {
            network: row.try_get_by_index(0)?,
            domain: row.try_get_by_index(1)?,
            item_type: row.try_get_by_index(2)?,
            item_id: row.try_get_by_index(3)?,
            instance_url: row.try_get_by_index(4)?,
            schema_url: row.try_get_by_index(5)?,
            state: row.try_get_by_index(6)?,
            latitude: optional_number(row, 7)?,
            longitude: optional_number(row, 8)?,
            created_by: row.try_get_by_index(9)?,
            created_at: row.try_get_by_index(10)?,
            updated_at: row.try_get_by_index(11)?,
        }))
    }
}

/// A nullable float read from the driver's row, where NULL is a plain `None`.
fn optional_number(row: &QueryResult, index: usize) -> Result<Option<f64>, DbErr> {
    let decoded = if let Some(row) = row.try_as_sqlite_row() {
        row.try_get(index)
    } else if let Some(row) = row.try_as_pg_row() {
        row.try_get(index)
    } else {
        return row.try_get_by_index(index);
    };
    decoded.map_err(|e| DbErr::Type(format!("column {index}: {e}")))
}

/// A whole row for `item`, with millisecond timestamps and the point's unit vector.
pub fn active_model(item: &Item) -> ActiveModel {
    let vector = UnitVector::of_item(item.latitude, item.longitude);
    ActiveModel {
        item_network: Set(item.network.clone()),
        item_domain: Set(item.domain.clone()),
        item_type: Set(item.item_type.clone()),
        item_id: Set(item.item_id),
        item_instance_url: Set(item.instance_url.clone()),
        item_schema_url: Set(item.schema_url.clone()),
        item_state: Set(item.state.clone()),
        item_latitude: Set(item.latitude),
        item_longitude: Set(item.longitude),
        created_by: Set(item.created_by.clone()),
        created_at: Set(to_millis(item.created_at)),
        updated_at: Set(to_millis(item.updated_at)),
        geo_x: Set(vector.map(|v| v.x)),
        geo_y: Set(vector.map(|v| v.y)),
        geo_z: Set(vector.map(|v| v.z)),
    }
}

/// Stored timestamps are UTC milliseconds, the precision of the wire, so that both databases
/// give back exactly what was written (and order it the same way).
pub fn to_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_truncated_to_milliseconds() {
        let at = DateTime::parse_from_rfc3339("2025-01-02T03:04:05.678901234Z")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(to_millis(at).to_rfc3339(), "2025-01-02T03:04:05.678+00:00");
        let before_epoch = DateTime::parse_from_rfc3339("1969-12-31T23:59:59.9999Z")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(
            to_millis(before_epoch).to_rfc3339(),
            "1969-12-31T23:59:59.999+00:00"
        );
    }
}
