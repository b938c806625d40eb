//! The `network_documents` table (see the migration) and its mapping to `StoredDocument`.

use dpg_core::error::CoreError;
use dpg_core::ports::{StoredDocument, StoredKind};
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;

use super::item::to_millis;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "network_documents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub ordinal: i32,
    #[sea_orm(column_type = "Text")]
    pub kind: String,
    #[sea_orm(column_type = "Text")]
    pub location: String,
    /// JSON text, kept byte for byte.
    #[sea_orm(column_type = "Text")]
    pub body: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub etag: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_modified: Option<String>,
    pub fetched_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub fn active_model(ordinal: i32, document: &StoredDocument) -> Result<ActiveModel, CoreError> {
    let body = serde_json::to_string(&document.body)
        .map_err(|e| CoreError::internal(format!("network document is not serializable: {e}")))?;
    Ok(ActiveModel {
        ordinal: Set(ordinal),
        kind: Set(kind_name(document.kind).to_string()),
        location: Set(document.location.clone()),
        body: Set(body),
        etag: Set(document.etag.clone()),
        last_modified: Set(document.last_modified.clone()),
        fetched_at: Set(to_millis(document.fetched_at)),
    })
}

impl Model {
    pub fn into_document(self) -> Result<StoredDocument, CoreError> {
        let kind = kind_from_name(&self.kind).ok_or_else(|| {
            CoreError::internal(format!(
                "stored network document has unknown kind {:?}",
                self.kind
            ))
        })?;
        let body = serde_json::from_str(&self.body).map_err(|e| {
            CoreError::internal(format!(
                "stored network document {} is not JSON: {e}",
                self.location
            ))
        })?;
        Ok(StoredDocument {
            kind,
            location: self.location,
            body,
            etag: self.etag,
            last_modified: self.last_modified,
            fetched_at: self.fetched_at,
        })
    }
}

fn kind_name(kind: StoredKind) -> &'static str {
    match kind {
        StoredKind::Network => "network",
        StoredKind::CrossNetworkOrigin => "cross_network_origin",
        StoredKind::Schema => "schema",
    }
}

fn kind_from_name(name: &str) -> Option<StoredKind> {
    [
        StoredKind::Network,
        StoredKind::CrossNetworkOrigin,
        StoredKind::Schema,
    ]
    .into_iter()
    .find(|kind| kind_name(*kind) == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip_and_match_the_serde_spelling() {
        for kind in [
            StoredKind::Network,
            StoredKind::CrossNetworkOrigin,
            StoredKind::Schema,
        ] {
            assert_eq!(kind_from_name(kind_name(kind)), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).expect("serializes"),
                kind_name(kind)
            );
        }
        assert_eq!(kind_from_name("other"), None);
    }
}
