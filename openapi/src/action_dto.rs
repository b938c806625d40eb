//! Bodies of the action and event routes (reference-contract §1.6–§1.10, §1.18, Appendix
//! A.2–A.4), and their checks with the reference's `body/<path> <message>` wording.

use dpg_core::model::ItemRef;
use dpg_core::services::actions::{IncomingEvent, SourceItemRef};
use poem::{Request, RequestBody};
use poem_openapi::Object;
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::body::{JsonBody, is_json};
use crate::error::Rejection;

/// The source item of `POST /api/v1/action/perform`: it lives on this instance.
#[derive(Debug, Clone, Deserialize, Object)]
pub struct SourceItemIn {
    pub item_network: String,
    pub item_domain: String,
    pub item_type: String,
    /// UUID of the item.
    pub item_id: String,
}

/// An item on some instance (Appendix A.4).
#[derive(Debug, Clone, Deserialize, Object)]
pub struct ItemRefIn {
    pub item_network: String,
    pub item_domain: String,
    pub item_type: String,
    /// UUID of the item.
    pub item_id: String,
    /// Base URL of the instance holding the item.
    pub item_instance_url: String,
}

/// Body of `POST /api/v1/action/perform`.
#[derive(Debug, Clone, Deserialize, Object)]
pub struct PerformActionIn {
    /// A key of the target network's `actions`, e.g. `connect`.
    pub action_name: String,
    pub source_item: SourceItemIn,
    pub target_item: ItemRefIn,
    /// Checked against the interaction's `requirement_schema`.
    pub requirements_snapshot: Value,
}

/// Body of `POST /api/v1/network/action/perform` (sent by the source instance).
#[derive(Debug, Clone, Deserialize, Object)]
pub struct NetworkPerformIn {
    pub action_name: String,
    pub source_item: ItemRefIn,
    pub target_item: ItemRefIn,
    /// The source item's owner, as the source instance knows it.
    pub source_item_owner: Option<String>,
    pub requirements_snapshot: Value,
}

/// The answer of both perform routes.
#[derive(Debug, Clone, Object)]
pub struct PerformedOut {
    pub action_id: String,
    pub action_name: String,
    pub action_status: String,
    pub update_count: u32,
    pub source_item_id: String,
    pub target_item_id: String,
}

/// Body of `POST /api/v1/action/update-status`.
#[derive(Debug, Clone, Deserialize, Object)]
pub struct UpdateStatusIn {
    /// UUID of the action.
    pub action_id: String,
    /// The new status; must satisfy the interaction's `event_schema`.
    pub action_status: String,
    /// Stored with the action and the event; defaults the event's `remark`.
    #[serde(default, deserialize_with = "present_or_undefined")]
    pub remarks: Option<String>,
}

#[derive(Debug, Clone, Object)]
pub struct StatusUpdatedOut {
    pub action_id: String,
    pub action_name: String,
    pub action_status: String,
    pub update_count: u32,
}

/// Body of `POST /api/v1/event/store` (sent by the instance of the action's target item).
#[derive(Debug, Clone, Deserialize, Object)]
pub struct StoreEventIn {
    /// Base URL of the instance that produced the event.
    pub origin_instance_domain: String,
    pub action_name: String,
    pub action_id: String,
    pub action_status: String,
    pub update_count: u32,
    pub source_item: ItemRefIn,
    pub target_item: ItemRefIn,
    pub source_item_owner: Option<String>,
    pub target_item_owner: Option<String>,
    pub source_item_latitude: Option<f64>,
    pub source_item_longitude: Option<f64>,
    pub target_item_latitude: Option<f64>,
    pub target_item_longitude: Option<f64>,
    /// Checked against the interaction's `event_schema`.
    pub event_payload: Option<Value>,
    #[serde(default, deserialize_with = "present_or_undefined")]
    pub remarks: Option<String>,
}

#[derive(Debug, Clone, Object)]
pub struct EventStoredOut {
    /// Null when the event was already stored (a repeated delivery).
    pub event_id: Option<String>,
    pub action_id: String,
    pub action_name: String,
    pub action_status: String,
    pub update_count: u32,
}

/// The most events one `POST /api/v1/event/store_batch` may carry.
pub const MAX_EVENTS_PER_BATCH: usize = 100;

/// Body of `POST /api/v1/event/store_batch`: a backlog of events from one instance. An
/// element that is not a valid `StoreEventIn` is answered on its own (400) and does not
/// fail the request.
// Documentation only: the route reads the body as `StoreEventsBody`, element by element.
#[derive(Debug, Clone, Object)]
pub struct StoreEventsIn {
    /// 1 to 100 bodies of `POST /api/v1/event/store`, each answered on its own.
    #[oai(validator(min_items = 1, max_items = 100))]
    pub events: Vec<StoreEventIn>,
}

/// The body of `POST /api/v1/event/store_batch` as it arrived, documented as
/// [`StoreEventsIn`].
#[derive(Debug, Clone)]
pub struct StoreEventsBody(pub Value);

impl Payload for StoreEventsBody {
    const CONTENT_TYPE: &'static str = <JsonBody<StoreEventsIn> as Payload>::CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        is_json(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        StoreEventsIn::schema_ref()
    }

    fn register(registry: &mut Registry) {
        StoreEventsIn::register(registry);
    }
}

impl ParsePayload for StoreEventsBody {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let JsonBody(value) = JsonBody::<Value>::from_request(request, body).await?;
        Ok(StoreEventsBody(value))
    }
}

poem_openapi::impl_apirequest_for_payload!(StoreEventsBody,);

impl StoreEventsBody {
    /// The elements of `events`, unparsed; the message says why there are none (not an
    /// object with an `events` array of 1 to [`MAX_EVENTS_PER_BATCH`] elements).
    pub fn into_events(self) -> Result<Vec<Value>, String> {
        let Value::Object(mut body) = self.0 else {
            return Err("The body must be an object with an \"events\" array".into());
        };
        let Some(Value::Array(events)) = body.remove("events") else {
            return Err("\"events\" must be an array of events".into());
        };
        if events.is_empty() || events.len() > MAX_EVENTS_PER_BATCH {
            return Err(format!(
                "\"events\" must hold 1 to {MAX_EVENTS_PER_BATCH} events, not {}",
                events.len()
            ));
        }
        Ok(events)
    }
}

/// How one event of a batch fared: what `POST /api/v1/event/store` would have answered for
/// it alone.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct EventResultOut {
    /// The HTTP status of the single route: 201 stored (or already stored), otherwise the
    /// status of its error (400, 401, 403, 404, 503 ...).
    pub status: u16,
    /// With 201: the id of the event stored now; null when it already was (or on error).
    #[oai(nullable)]
    pub event_id: Option<String>,
    /// The machine code of the single route's error body (e.g. `EVENT_ORIGIN_FORBIDDEN`,
    /// `FST_ERR_VALIDATION`); null with 201.
    #[oai(nullable)]
    pub code: Option<String>,
    /// The message of that error body; null with 201.
    #[oai(nullable)]
    pub message: Option<String>,
}

/// The answer of `POST /api/v1/event/store_batch`.
#[derive(Debug, Clone, Object)]
pub struct StoreEventsOut {
    /// One result per event, in the order of the request.
    pub results: Vec<EventResultOut>,
}

/// `meta` of the action and event listings.
#[derive(Debug, Clone, Object)]
pub struct ListMeta {
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
}

/// An action as its owner sees it (Appendix A.2).
#[derive(Debug, Clone, Object)]
pub struct OwnedActionOut {
    pub action_name: String,
    pub action_id: String,
    pub action_status: String,
    pub update_count: u32,
    pub source_item_network: String,
    pub source_item_domain: String,
    pub source_item_type: String,
    pub source_item_id: String,
    pub source_item_instance_url: String,
    pub source_item_owner: Option<String>,
    pub target_item_network: String,
    pub target_item_domain: String,
    pub target_item_type: String,
    pub target_item_id: String,
    pub target_item_instance_url: String,
    pub target_item_owner: Option<String>,
    pub requirements_snapshot: Value,
    pub remarks: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// `initiated` (you own the source item), `received` (you own the target item).
    pub ownership_roles: Vec<String>,
}

/// An event as its owner sees it (Appendix A.3).
#[derive(Debug, Clone, Object)]
pub struct OwnedEventOut {
    pub action_name: String,
    pub event_id: String,
    pub origin_instance_domain: String,
    pub action_id: String,
    pub action_status: String,
    pub update_count: u32,
    pub source_item_network: String,
    pub source_item_domain: String,
    pub source_item_type: String,
    pub source_item_id: String,
    pub source_item_instance_url: String,
    pub source_item_owner: Option<String>,
    pub source_item_latitude: Option<f64>,
    pub source_item_longitude: Option<f64>,
    pub target_item_network: String,
    pub target_item_domain: String,
    pub target_item_type: String,
    pub target_item_id: String,
    pub target_item_instance_url: String,
    pub target_item_owner: Option<String>,
    pub target_item_latitude: Option<f64>,
    pub target_item_longitude: Option<f64>,
    pub event_payload: Value,
    pub remarks: Option<String>,
    pub created_at: String,
    pub ownership_roles: Vec<String>,
}

#[derive(Debug, Clone, Object)]
pub struct ActionPageOut {
    pub meta: ListMeta,
    pub actions: Vec<OwnedActionOut>,
}

#[derive(Debug, Clone, Object)]
pub struct EventPageOut {
    pub meta: ListMeta,
    pub events: Vec<OwnedEventOut>,
}

/// `remarks: null` is refused like the reference's `z.string().min(1).optional()` does.
fn present_or_undefined<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    let value = Option::<String>::deserialize(d)?;
    match value {
        Some(s) => Ok(Some(s)),
        None => Err(serde::de::Error::custom(
            "Invalid input: expected string, received null",
        )),
    }
}

fn too_small(path: &str) -> Rejection {
    Rejection::validation(format!(
        "body/{path} Too small: expected string to have >=1 characters"
    ))
}

pub(crate) fn non_empty(path: &str, value: String) -> Result<String, Rejection> {
    if value.is_empty() {
        return Err(too_small(path));
    }
    Ok(value)
}

/// The reference's UUID rule (zod): hyphenated, version 1 to 8 and the RFC variant, or the
/// nil and max UUIDs.
pub(crate) fn uuid(path: &str, raw: &str) -> Result<Uuid, Rejection> {
    let bytes = raw.as_bytes();
    let shaped = raw.len() == 36
        && ((b'1'..=b'8').contains(&bytes[14]) && b"89abAB".contains(&bytes[19])
            || raw.eq_ignore_ascii_case("ffffffff-ffff-ffff-ffff-ffffffffffff")
            || raw == "00000000-0000-0000-0000-000000000000");
    match Uuid::parse_str(raw) {
        Ok(id) if shaped => Ok(id),
        _ => Err(Rejection::validation(format!("{path} Invalid UUID"))),
    }
}

/// An absolute URL (trimmed, as the reference hands it on).
fn url(path: &str, raw: &str) -> Result<String, Rejection> {
    let trimmed = raw.trim();
    match url::Url::parse(trimmed) {
        Ok(_) => Ok(trimmed.to_string()),
        Err(_) => Err(Rejection::validation(format!("body/{path} Invalid URL"))),
    }
}

fn record(path: &str, value: Value) -> Result<Value, Rejection> {
    let received = match &value {
        Value::Object(_) => return Ok(value),
        Value::Array(_) => "array",
        Value::Null => "null",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
    };
    Err(Rejection::validation(format!(
        "body/{path} Invalid input: expected record, received {received}"
    )))
}

fn optional_text(path: &str, value: Option<String>) -> Result<Option<String>, Rejection> {
    value.map(|v| non_empty(path, v)).transpose()
}

impl SourceItemIn {
    pub fn into_domain(self, path: &str) -> Result<SourceItemRef, Rejection> {
        Ok(SourceItemRef {
            network: non_empty(&format!("{path}/item_network"), self.item_network)?,
            domain: non_empty(&format!("{path}/item_domain"), self.item_domain)?,
            item_type: non_empty(&format!("{path}/item_type"), self.item_type)?,
            item_id: uuid(&format!("body/{path}/item_id"), &self.item_id)?,
        })
    }
}

impl ItemRefIn {
    pub fn into_domain(self, path: &str) -> Result<ItemRef, Rejection> {
        Ok(ItemRef {
            network: non_empty(&format!("{path}/item_network"), self.item_network)?,
            domain: non_empty(&format!("{path}/item_domain"), self.item_domain)?,
            item_type: non_empty(&format!("{path}/item_type"), self.item_type)?,
            item_id: uuid(&format!("body/{path}/item_id"), &self.item_id)?,
            instance_url: url(
                &format!("{path}/item_instance_url"),
                &self.item_instance_url,
            )?,
        })
    }
}

/// `action_name`, `requirements_snapshot` of both perform bodies.
pub(crate) fn action_name(value: String) -> Result<String, Rejection> {
    non_empty("action_name", value)
}

pub(crate) fn requirements(value: Value) -> Result<Value, Rejection> {
    record("requirements_snapshot", value)
}

pub(crate) fn source_owner(value: Option<String>) -> Result<Option<String>, Rejection> {
    optional_text("source_item_owner", value)
}

impl StoreEventIn {
    pub fn into_domain(self) -> Result<IncomingEvent, Rejection> {
        Ok(IncomingEvent {
            origin_instance_domain: url("origin_instance_domain", &self.origin_instance_domain)?,
            action_name: non_empty("action_name", self.action_name)?,
            action_id: uuid("body/action_id", &self.action_id)?,
            action_status: non_empty("action_status", self.action_status)?,
            update_count: self.update_count,
            source: self.source_item.into_domain("source_item")?,
            target: self.target_item.into_domain("target_item")?,
            source_item_owner: optional_text("source_item_owner", self.source_item_owner)?,
            target_item_owner: optional_text("target_item_owner", self.target_item_owner)?,
            source_item_latitude: self.source_item_latitude,
            source_item_longitude: self.source_item_longitude,
            target_item_latitude: self.target_item_latitude,
            target_item_longitude: self.target_item_longitude,
            event_payload: record(
                "event_payload",
                self.event_payload
                    .unwrap_or_else(|| Value::Object(Default::default())),
            )?,
            remarks: optional_text("remarks", self.remarks)?,
        })
    }
}
