//! The user routes of actions and events: perform (source side), update-status (target
//! side) and the owner-scoped listings.

use std::sync::Arc;

use dpg_core::model::{ActionRecord, OwnershipRole};
use dpg_core::services::actions::{
    ActionFilter, OwnedPage, PerformOutcome, PerformRequest, StatusUpdate,
};
use poem::Request;
use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, OpenApi};
use serde_json::{Value, json};
use uuid::Uuid;

use super::ApiTags;
use crate::action_dto::{
    ActionPageOut, EventPageOut, PerformActionIn, PerformedOut, StatusUpdatedOut, UpdateStatusIn,
    action_name, non_empty, requirements, uuid,
};
use crate::auth::Authenticated;
use crate::body::JsonBody;
use crate::encoded::EncodedJson;
use crate::error::{ApiError, Rejection};
use crate::middleware::RequestId;
use crate::query::reject_repeated;
use crate::state::ApiState;

pub struct ActionApi;

#[derive(ApiResponse)]
enum PerformResponse {
    /// The target instance stored the action.
    #[oai(status = 201)]
    Created(Json<PerformedOut>),
    /// The target instance refused the action: its status and body, relayed unchanged.
    Relayed(StatusCode, Json<Value>),
}

/// Which side of the actions to list.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "lowercase")]
pub enum OwnershipRoleIn {
    All,
    /// Actions on your items' behalf (you own the source item).
    Initiated,
    /// Actions on your items (you own the target item).
    Received,
}

const LIST_SCALARS: &[&str] = &[
    "action_id",
    "action_name",
    "action_status",
    "item_id",
    "ownership_role",
    "update_count",
    "limit",
    "offset",
];

impl From<&ActionRecord> for PerformedOut {
    fn from(record: &ActionRecord) -> Self {
        PerformedOut {
            action_id: record.action_id.to_string(),
            action_name: record.action_name.clone(),
            action_status: record.action_status.clone(),
            update_count: record.update_count,
            source_item_id: record.source.item_id.to_string(),
            target_item_id: record.target.item_id.to_string(),
        }
    }
}

pub(crate) fn request_id(req: &Request) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default()
}

fn page_bytes(page: OwnedPage, key: &str) -> Result<Vec<u8>, ApiError> {
    let document = json!({
        "meta": {"total": page.total, "limit": page.limit, "offset": page.offset},
        key: page.rows,
    });
    serde_json::to_vec(&document)
        .map_err(|e| dpg_core::CoreError::internal(format!("cannot encode a page: {e}")).into())
}

#[OpenApi(tag = "ApiTags::Action")]
impl ActionApi {
    /// Perform an action
    ///
    /// Asks the instance of the target item to record an action from one of your items
    /// (`source_item`, on this instance) to `target_item`. The action must be allowed by the
    /// target network's `actions[action_name].interactions` and `requirements_snapshot` must
    /// satisfy its `requirement_schema`. Send an `Idempotency-Key` to make retries safe: the
    /// target creates one action per key. A refusal of the target instance (4xx) is relayed
    /// with its status and body; a target that fails or cannot be reached gives 502
    /// `TARGET_INSTANCE_UNAVAILABLE`.
    #[oai(
        path = "/api/v1/action/perform",
        method = "post",
        operation_id = "performAction"
    )]
    async fn perform(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        Authenticated(caller): Authenticated,
        req: &Request,
        /// Retries with the same key create one action (kept 24 hours by the target).
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<String>>,
        body: JsonBody<PerformActionIn>,
    ) -> Result<PerformResponse, ApiError> {
        let body = body.0;
        let request = PerformRequest {
            action_name: action_name(body.action_name)?,
            source: body.source_item.into_domain("source_item")?,
            target: body.target_item.into_domain("target_item")?,
            requirements_snapshot: requirements(body.requirements_snapshot)?,
            idempotency_key: idempotency_key.0,
            request_id: request_id(req),
        };
        Ok(match state.actions.perform(&caller, request).await? {
            PerformOutcome::Created(record) => {
                PerformResponse::Created(Json(PerformedOut::from(&*record)))
            }
            PerformOutcome::Relayed { status, body } => PerformResponse::Relayed(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                Json(body),
            ),
        })
    }

    /// Update an action's status
    ///
    /// Moves an action on one of your items (you own its target item, on this instance) to a
    /// new status. The event payload (`status`, `remark` and the properties the interaction's
    /// `event_schema` takes from the requirements) must satisfy `event_schema`; every
    /// violation is listed. Each update gets its own `update_count` and event, delivered to
    /// the source item's instance.
    #[oai(
        path = "/api/v1/action/update-status",
        method = "post",
        operation_id = "updateActionStatus"
    )]
    async fn update_status(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        Authenticated(caller): Authenticated,
        body: JsonBody<UpdateStatusIn>,
    ) -> Result<Json<StatusUpdatedOut>, ApiError> {
        let body = body.0;
        let update = StatusUpdate {
            action_id: uuid("body/action_id", &body.action_id)?,
            action_status: non_empty("action_status", body.action_status)?,
            remarks: body.remarks.map(|r| non_empty("remarks", r)).transpose()?,
        };
        let record = state.actions.update_status(&caller, update).await?;
        Ok(Json(StatusUpdatedOut {
            action_id: record.action_id.to_string(),
            action_name: record.action_name,
            action_status: record.action_status,
            update_count: record.update_count,
        }))
    }

    /// Fetch your actions
    ///
    /// Actions stored on this instance that involve your items: `initiated` (you own the
    /// source item), `received` (you own the target item) or `all`. Most recently updated
    /// first.
    #[oai(
        path = "/api/v1/action/fetch",
        method = "get",
        operation_id = "fetchActions"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn fetch_actions(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        Authenticated(caller): Authenticated,
        req: &Request,
        action_id: Query<Option<Uuid>>,
        action_name: Query<Option<String>>,
        action_status: Query<Option<String>>,
        /// With `initiated`, the source item; with `received`, the target item; else either.
        item_id: Query<Option<Uuid>>,
        /// `all` (default), `initiated` or `received`.
        ownership_role: Query<Option<OwnershipRoleIn>>,
        /// Page size, 1–100 (default 20).
        limit: Query<Option<u32>>,
        /// Rows to skip, 0–10000 (default 0).
        offset: Query<Option<u32>>,
    ) -> Result<EncodedJson<ActionPageOut>, ApiError> {
        reject_repeated(req.uri().query().unwrap_or_default(), LIST_SCALARS)?;
        let filter = ActionFilter {
            role: role(ownership_role.0),
            action_id: action_id.0,
            action_name: optional("action_name", action_name.0)?,
            action_status: optional("action_status", action_status.0)?,
            item_id: item_id.0,
            update_count: None,
            limit: limit.0,
            offset: offset.0,
        };
        let page = state.actions.fetch_actions(&caller, filter).await?;
        Ok(EncodedJson::new(page_bytes(page, "actions")?))
    }

    /// Fetch your events
    ///
    /// Status events stored on this instance that involve your items, newest first. On the
    /// source item's instance they arrive from the target's instance shortly after each
    /// update.
    #[oai(
        path = "/api/v1/event/fetch",
        method = "get",
        operation_id = "fetchEvents"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn fetch_events(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        Authenticated(caller): Authenticated,
        req: &Request,
        action_id: Query<Option<Uuid>>,
        action_name: Query<Option<String>>,
        action_status: Query<Option<String>>,
        /// With `initiated`, the source item; with `received`, the target item; else either.
        item_id: Query<Option<Uuid>>,
        /// `all` (default), `initiated` or `received`.
        ownership_role: Query<Option<OwnershipRoleIn>>,
        /// Only the event with this count.
        update_count: Query<Option<u32>>,
        /// Page size, 1–100 (default 20).
        limit: Query<Option<u32>>,
        /// Rows to skip, 0–10000 (default 0).
        offset: Query<Option<u32>>,
    ) -> Result<EncodedJson<EventPageOut>, ApiError> {
        reject_repeated(req.uri().query().unwrap_or_default(), LIST_SCALARS)?;
        let filter = ActionFilter {
            role: role(ownership_role.0),
            action_id: action_id.0,
            action_name: optional("action_name", action_name.0)?,
            action_status: optional("action_status", action_status.0)?,
            item_id: item_id.0,
            update_count: update_count.0,
            limit: limit.0,
            offset: offset.0,
        };
        let page = state.actions.fetch_events(&caller, filter).await?;
        Ok(EncodedJson::new(page_bytes(page, "events")?))
    }
}

fn role(role: Option<OwnershipRoleIn>) -> OwnershipRole {
    match role {
        None | Some(OwnershipRoleIn::All) => OwnershipRole::All,
        Some(OwnershipRoleIn::Initiated) => OwnershipRole::Initiated,
        Some(OwnershipRoleIn::Received) => OwnershipRole::Received,
    }
}

fn optional(name: &str, value: Option<String>) -> Result<Option<String>, Rejection> {
    match value {
        Some(v) if v.is_empty() => Err(Rejection::validation(format!(
            "querystring/{name} Too small: expected string to have >=1 characters"
        ))),
        other => Ok(other),
    }
}
