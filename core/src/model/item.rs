use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// A stored item (reference-contract Appendix A.1); serialized with the wire's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    #[serde(rename = "item_network")]
    pub network: String,
    #[serde(rename = "item_domain")]
    pub domain: String,
    pub item_type: String,
    pub item_id: Uuid,
    #[serde(rename = "item_instance_url")]
    pub instance_url: String,
    #[serde(rename = "item_schema_url")]
    pub schema_url: String,
    #[serde(rename = "item_state")]
    pub state: Value,
    #[serde(rename = "item_latitude")]
    pub latitude: Option<f64>,
    #[serde(rename = "item_longitude")]
    pub longitude: Option<f64>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a client sends to create an item; everything else is generated.
#[derive(Debug, Clone, PartialEq)]
pub struct NewItem {
    pub network: String,
    pub domain: String,
    pub item_type: String,
    /// `None` when the client sent no `item_state` (validated as absent, like the reference).
    pub state: Option<Value>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

/// A partial update. `Some(None)` clears a coordinate; `None` leaves it alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemChanges {
    pub state: Option<Value>,
    pub latitude: Option<Option<f64>>,
    pub longitude: Option<Option<f64>>,
    /// Sent by clients of the reference; accepted only when equal to the stored value.
    pub instance_url: Option<String>,
    pub schema_url: Option<String>,
}

/// One page of items plus the number of all matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemPage {
    pub total: u64,
    pub items: Vec<Item>,
}
