//! The peer routes of actions: `POST /api/v1/network/action/perform` (the target side of a
//! perform, called by the source instance), `POST /api/v1/event/store` (the source side
//! of event mirroring, called by the target instance) and `POST /api/v1/event/store_batch`
//! (the same for a backlog of events in one request).

use std::sync::Arc;

use dpg_core::services::PeerCaller;
use dpg_core::services::actions::{IncomingEvent, ReceiveRequest, Received};
use dpg_core::{CoreError, ErrorCode};
use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::param::Header;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use crate::action_dto::{
    EventResultOut, EventStoredOut, NetworkPerformIn, PerformedOut, StoreEventIn, StoreEventsBody,
    StoreEventsOut, action_name, requirements, source_owner,
};
use crate::body::{JsonBody, from_value};
use crate::error::{ApiError, ErrorBody};
use crate::peer::SignedPeer;
use crate::state::ApiState;

pub struct NetworkActionApi;

/// Events received from peers, whatever their answer: one per event of a batch.
const EVENTS_RECEIVED: &str = "dpg_events_received_total";

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

#[derive(ApiResponse)]
enum StoreEventsResponse {
    /// Each event was answered on its own: one result per event, in order.
    #[oai(status = 200)]
    Answered(Json<StoreEventsOut>),
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
        metrics::counter!(EVENTS_RECEIVED, "route" => "single").increment(1);
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

    /// Store a backlog of mirrored events
    ///
    /// For an instance catching up with this one: up to 100 bodies of
    /// `POST /api/v1/event/store` in one request, each checked and stored exactly as that
    /// route would, and answered on its own with the status, `event_id`, and error code and
    /// message that route would have given it (an element that is not a valid body is a 400
    /// of its own). Authenticated like that route; a signed request spends its nonce once.
    /// The request fails as a whole only when the body is not an object with an `events`
    /// array of 1 to 100 elements (400 `INVALID_EVENT_REQUEST`), on authentication, and when
    /// every event was refused for want of a signature (401, nothing stored). TypeScript
    /// instances do not have this route: senders fall back to `POST /api/v1/event/store`,
    /// which stays.
    #[oai(
        path = "/api/v1/event/store_batch",
        method = "post",
        operation_id = "storeEvents"
    )]
    async fn store_events(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        SignedPeer(caller): SignedPeer,
        body: StoreEventsBody,
    ) -> Result<StoreEventsResponse, ApiError> {
        let elements = body.into_events().map_err(|message| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorBody::application(ErrorCode::InvalidEventRequest.as_str(), message),
            )
        })?;
        metrics::counter!(EVENTS_RECEIVED, "route" => "batch")
            .increment(u64::try_from(elements.len()).unwrap_or(u64::MAX));
        // A malformed element is answered as the single route would answer it as a body.
        let mut answers: Vec<Option<Result<Option<Uuid>, ApiError>>> =
            Vec::with_capacity(elements.len());
        let mut valid: Vec<IncomingEvent> = Vec::with_capacity(elements.len());
        for element in elements {
            match from_value::<StoreEventIn>(element).and_then(StoreEventIn::into_domain) {
                Ok(event) => {
                    valid.push(event);
                    answers.push(None);
                }
                Err(rejection) => answers.push(Some(Err(ApiError::from(rejection)))),
            }
        }
        let mut stored = state.actions.store_events(&caller, valid).await.into_iter();
        let answers: Vec<Result<Option<Uuid>, ApiError>> = answers
            .into_iter()
            .map(|answer| {
                answer.unwrap_or_else(|| match stored.next() {
                    Some(Ok((_, event_id))) => Ok(event_id),
                    Some(Err(err)) => Err(ApiError::from(err)),
                    None => Err(ApiError::from(CoreError::internal(
                        "an event of a batch got no answer",
                    ))),
                })
            })
            .collect();
        // Every event refused for want of a signature: the request itself lacks the
        // authentication its networks require, and nothing was stored.
        let unauthenticated = matches!(caller, PeerCaller::Unsigned)
            && answers
                .iter()
                .all(|answer| matches!(answer, Err(ApiError::Unauthorized(_))));
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            results.push(match answer {
                Err(err) if unauthenticated => return Err(err),
                Ok(event_id) => EventResultOut {
                    status: StatusCode::CREATED.as_u16(),
                    event_id: event_id.map(|id| id.to_string()),
                    code: None,
                    message: None,
                },
                Err(err) => refused(&err),
            });
        }
        Ok(StoreEventsResponse::Answered(Json(StoreEventsOut {
            results,
        })))
    }
}

/// The result of an event the single route would have refused with `err`.
fn refused(err: &ApiError) -> EventResultOut {
    let (status, body) = err.parts();
    EventResultOut {
        status: status.as_u16(),
        event_id: None,
        code: Some(body.machine_code().to_string()),
        message: Some(body.message.clone()),
    }
}
