//! The peer routes of actions: `POST /api/v1/network/action/perform` (the target side of a
//! perform, called by the source instance) and `POST /api/v1/event/store` (the source side
//! of event mirroring, called by the target instance).

use std::sync::Arc;

use dpg_core::services::actions::{ReceiveRequest, Received};
use poem::web::Data;
use poem_openapi::param::Header;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::ApiTags;
use crate::action_dto::{
    EventStoredOut, NetworkPerformIn, PerformedOut, StoreEventIn, action_name, requirements,
    source_owner,
};
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::peer::SignedPeer;
use crate::state::ApiState;

pub struct NetworkActionApi;

#[derive(ApiResponse)]
enum NetworkPerformResponse {
    /// The action was stored (or, for a repeated `Idempotency-Key`, was stored before).
    #[oai(status = 201)]
    Created(Json<PerformedOut>),
}

#[derive(ApiResponse)]
enum StoreEventResponse {
    /// The event is stored; `event_id` is null when it already was.
    #[oai(status = 201)]
    Stored(Json<EventStoredOut>),
}

#[OpenApi(tag = "ApiTags::Action")]
impl NetworkActionApi {
    /// Record an action for a peer
    ///
    /// Called by the instance of the source item: stores the action on the target item,
    /// which lives here, with status `created`, `update_count` 0 and an initial event that is
    /// delivered back to the source instance. The caller must be the source item's instance
    /// (signed, or unsigned where the network's `peer_auth` allows it). Repeating a request
    /// with the same `Idempotency-Key` within 24 hours answers the same action.
    #[oai(
        path = "/api/v1/network/action/perform",
        method = "post",
        operation_id = "performNetworkAction"
    )]
    async fn perform(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        SignedPeer(caller): SignedPeer,
        /// The key the source instance received from its client (or generated).
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<String>>,
        body: JsonBody<NetworkPerformIn>,
    ) -> Result<NetworkPerformResponse, ApiError> {
        let body = body.0;
        let request = ReceiveRequest {
            action_name: action_name(body.action_name)?,
            source: body.source_item.into_domain("source_item")?,
            target: body.target_item.into_domain("target_item")?,
            source_item_owner: source_owner(body.source_item_owner)?,
            requirements_snapshot: requirements(body.requirements_snapshot)?,
            idempotency_key: idempotency_key.0.filter(|k| !k.is_empty()),
        };
        let record = match state.actions.receive(&caller, request).await? {
            Received::Created(record) | Received::Replayed(record) => record,
        };
        Ok(NetworkPerformResponse::Created(Json(PerformedOut::from(
            &record,
        ))))
    }

    /// Store a mirrored event
    ///
    /// Called by the instance of an action's target item after each status change of an
    /// action whose source item lives here. Accepted only from that instance (signed, or
    /// unsigned where `peer_auth` allows it and the sender serves the target domain), and
    /// stored once per (`action_name`, `origin_instance_domain`, `action_id`,
    /// `update_count`), in any order.
    #[oai(
        path = "/api/v1/event/store",
        method = "post",
        operation_id = "storeEvent"
    )]
    async fn store_event(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        SignedPeer(caller): SignedPeer,
        body: JsonBody<StoreEventIn>,
    ) -> Result<StoreEventResponse, ApiError> {
        let incoming = body.0.into_domain()?;
        let (event, event_id) = state.actions.store_event(&caller, incoming).await?;
        Ok(StoreEventResponse::Stored(Json(EventStoredOut {
            event_id: event_id.map(|id| id.to_string()),
            action_id: event.action_id.to_string(),
            action_name: event.action_name,
            action_status: event.action_status,
            update_count: event.update_count,
        })))
    }
}
