//! Request and response bodies, with the reference's JSON field names.

use chrono::{DateTime, Utc};
use dpg_core::model::Item;
use dpg_core::network::SchemaIndexEntry;
use poem_openapi::Object;
use poem_openapi::types::MaybeUndefined;
use serde::Deserialize;
use serde_json::Value;

/// Timestamps as JavaScript's `Date#toISOString` writes them: UTC, milliseconds, `Z`.
pub fn wire_time(time: DateTime<Utc>) -> String {
    dpg_core::model::wire_time::format(&time)
}

/// Body of `POST /api/v1/item/create`. `item_id`, URLs, owner and timestamps are generated;
/// if sent they are ignored.
#[derive(Debug, Clone, Object, Deserialize)]
pub struct CreateItemIn {
    /// Network of the item, e.g. `yellow_dot`.
    pub item_network: String,
    /// Domain of the item, e.g. `student`.
    pub item_domain: String,
    /// Item type: a key of the domain's `item_schemas`, e.g. `profile_1.0`.
    pub item_type: String,
    /// The item's data, validated against the item type's JSON Schema.
    pub item_state: Option<Value>,
    /// Latitude in degrees (-90..90); give both coordinates or neither.
    pub item_latitude: Option<f64>,
    /// Longitude in degrees (-180..180).
    pub item_longitude: Option<f64>,
}

#[derive(Debug, Clone, Object)]
pub struct CreatedItemOut {
    pub item_type: String,
    pub item_id: String,
}

/// Body of `PATCH /api/v1/item/{itemId}`: at least one field, no others. `item_state` is
/// replaced whole and must satisfy the item's schema; the URLs are fixed by the instance and
/// accepted only unchanged.
#[derive(Debug, Clone, Object, Deserialize)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct UpdateItemIn {
    #[serde(default)]
    pub item_instance_url: Option<String>,
    #[serde(default)]
    pub item_schema_url: Option<String>,
    #[serde(default)]
    pub item_state: MaybeUndefined<Value>,
    #[serde(default)]
    pub item_latitude: MaybeUndefined<f64>,
    #[serde(default)]
    pub item_longitude: MaybeUndefined<f64>,
}

impl UpdateItemIn {
    pub fn is_empty(&self) -> bool {
        self.item_instance_url.is_none()
            && self.item_schema_url.is_none()
            && self.item_state.is_undefined()
            && self.item_latitude.is_undefined()
            && self.item_longitude.is_undefined()
    }
}

/// An item (reference-contract Appendix A.1); every key is always present.
#[derive(Debug, Clone, Object)]
pub struct ItemOut {
    pub item_network: String,
    pub item_domain: String,
    pub item_type: String,
    pub item_id: String,
    pub item_instance_url: String,
    pub item_schema_url: String,
    pub item_state: Value,
    /// Null when the item has no coordinates.
    #[oai(nullable)]
    pub item_latitude: Option<f64>,
    #[oai(nullable)]
    pub item_longitude: Option<f64>,
    pub created_by: String,
    /// ISO 8601, UTC, milliseconds.
    pub created_at: String,
    pub updated_at: String,
}

impl From<Item> for ItemOut {
    fn from(item: Item) -> Self {
        ItemOut {
            item_network: item.network,
            item_domain: item.domain,
            item_type: item.item_type,
            item_id: item.item_id.to_string(),
            item_instance_url: item.instance_url,
            item_schema_url: item.schema_url,
            item_state: item.state,
            item_latitude: item.latitude,
            item_longitude: item.longitude,
            created_by: item.created_by,
            created_at: wire_time(item.created_at),
            updated_at: wire_time(item.updated_at),
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct PageMeta {
    /// Number of all matching items.
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
}

#[derive(Debug, Clone, Object)]
pub struct ItemPageOut {
    pub meta: PageMeta,
    pub items: Vec<ItemOut>,
}

#[derive(Debug, Clone, Object)]
pub struct UpdatedItemOut {
    pub item: ItemOut,
}

/// One cached schema (`GET /api/v1/network/schemas`).
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SchemaEntryOut {
    pub cache_key: String,
    /// `network_config`, `domain_item_schema` or `instance_custom_item_schema`.
    pub kind: String,
    pub network: String,
    pub domain: Option<String>,
    pub item_type: Option<String>,
    pub instance_url: Option<String>,
    pub schema_url: Option<String>,
    /// `inline` or `remote`.
    pub source: String,
    pub cached_at: String,
    pub file_name: String,
    /// The network document (for `network_config`) or the JSON Schema.
    pub schema: Value,
}

impl From<SchemaIndexEntry> for SchemaEntryOut {
    fn from(entry: SchemaIndexEntry) -> Self {
        SchemaEntryOut {
            cache_key: entry.cache_key,
            kind: entry.kind.to_string(),
            network: entry.network,
            domain: entry.domain,
            item_type: entry.item_type,
            instance_url: entry.instance_url,
            schema_url: entry.schema_url,
            source: entry.source.to_string(),
            cached_at: wire_time(entry.cached_at),
            file_name: entry.file_name,
            schema: entry.schema,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct RefetchOut {
    pub refreshed: bool,
    /// Number of entries of the schema index after the reload.
    pub schema_count: u64,
}

#[derive(Debug, Clone, Object)]
pub struct ServedDomainOut {
    pub network: String,
    pub domain: String,
    pub key: String,
}

/// Where the network documents in force came from.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct NetworkConfigStatusOut {
    /// `sources` (fetched at boot or on reload) or `last_good_copy` (sources unreachable).
    pub origin: String,
    pub loaded_at: String,
    /// When the last good copy was fetched, if that is what is served.
    pub saved_at: Option<String>,
    pub networks: Vec<String>,
    /// Why the last load attempt failed, if it did.
    pub last_error: Option<String>,
    pub last_attempt_at: Option<String>,
}

/// `GET /`: the reference's health body plus the network-document status.
#[derive(Debug, Clone, Object)]
pub struct HealthOut {
    pub service: String,
    pub status: String,
    pub served_domains: Vec<ServedDomainOut>,
    /// `local` or `remote`.
    pub network_config_source: String,
    pub network_config: NetworkConfigStatusOut,
}

#[derive(Debug, Clone, Object)]
pub struct LivenessOut {
    pub status: String,
}

#[derive(Debug, Clone, Object)]
pub struct ReadinessChecksOut {
    /// `ok` or `unavailable`.
    pub database: String,
    /// `ok` or `unavailable` (reported only; the cache is optional for serving).
    pub cache: String,
    /// Number of loaded network documents.
    pub network_documents: u64,
    /// Event deliveries to other instances (reported only; absent without an outbox).
    #[oai(skip_serializing_if_is_none)]
    pub outbox: Option<OutboxCountsOut>,
}

/// Totals of the event outbox.
#[derive(Debug, Clone, Object)]
pub struct OutboxCountsOut {
    /// Waiting for (another) delivery attempt.
    pub pending: u64,
    /// Delivered and not yet pruned.
    pub delivered: u64,
    /// Given up on (`dpg outbox redrive` or `POST /api/v1/admin/outbox/redrive` sends them again).
    pub dead: u64,
    /// Age in seconds of the oldest pending delivery; null when none is pending.
    #[oai(nullable)]
    pub oldest_pending_seconds: Option<u64>,
}

impl From<dpg_core::model::OutboxCounts> for OutboxCountsOut {
    fn from(c: dpg_core::model::OutboxCounts) -> Self {
        OutboxCountsOut {
            pending: c.pending,
            delivered: c.delivered,
            dead: c.dead,
            oldest_pending_seconds: c.oldest_pending_seconds,
        }
    }
}

/// One undelivered event, as operators see it (the event body is not shown).
#[derive(Debug, Clone, Object)]
pub struct OutboxEntryOut {
    pub id: String,
    /// Base URL of the instance the event goes to.
    pub destination: String,
    pub action_name: String,
    pub action_id: String,
    pub update_count: u32,
    /// `pending` or `dead`.
    pub state: String,
    /// Failed attempts so far.
    pub attempts: u32,
    pub next_attempt_at: String,
    /// Why the last attempt failed (status or error kind; never the peer's answer).
    #[oai(nullable)]
    pub last_error: Option<String>,
    pub created_at: String,
    #[oai(nullable)]
    pub finished_at: Option<String>,
}

impl From<dpg_core::model::OutboxEntry> for OutboxEntryOut {
    fn from(e: dpg_core::model::OutboxEntry) -> Self {
        OutboxEntryOut {
            id: e.id.to_string(),
            destination: e.destination,
            action_name: e.action_name,
            action_id: e.action_id.to_string(),
            update_count: e.update_count,
            state: e.state.as_str().to_string(),
            attempts: e.attempts,
            next_attempt_at: wire_time(e.next_attempt_at),
            last_error: e.last_error,
            created_at: wire_time(e.created_at),
            finished_at: e.finished_at.map(wire_time),
        }
    }
}

/// `GET /api/v1/admin/outbox`.
#[derive(Debug, Clone, Object)]
pub struct OutboxOut {
    pub counts: OutboxCountsOut,
    /// Pending and dead entries, newest first.
    pub undelivered: Vec<OutboxEntryOut>,
}

/// `POST /api/v1/admin/outbox/redrive`.
#[derive(Debug, Clone, Object)]
pub struct RedriveOut {
    /// Dead entries made pending again.
    pub redriven: u64,
}

#[derive(Debug, Clone, Object)]
pub struct ReadinessOut {
    /// `ready` or `not_ready`.
    pub status: String,
    pub checks: ReadinessChecksOut,
}
