//! `/api/v1/admin/*`: operators' tools, administrators only.

use std::sync::Arc;

use dpg_core::services::OutboxAdmin;
use dpg_core::{CoreError, ErrorCode};
use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;

use super::ApiTags;
use crate::auth::Authenticated;
use crate::dto::{OutboxOut, RedriveOut};
use crate::error::ApiError;
use crate::state::ApiState;

/// Most undelivered entries listed at once.
const MAX_LISTED: u32 = 1000;

pub struct AdminApi;

fn outbox(state: &ApiState) -> Result<&Arc<OutboxAdmin>, ApiError> {
    state.outbox.as_ref().ok_or_else(|| {
        CoreError::Unavailable {
            code: ErrorCode::StorageUnavailable,
            message: "This instance has no event outbox".to_string(),
        }
        .into()
    })
}

#[OpenApi(prefix_path = "/api/v1/admin", tag = "ApiTags::Admin")]
impl AdminApi {
    /// Event outbox
    ///
    /// Totals of the event deliveries to other instances and the undelivered entries
    /// (pending and dead), newest first. `limit`: at most 1000, default 100.
    #[oai(path = "/outbox", method = "get", operation_id = "adminOutbox")]
    async fn outbox(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        Authenticated(caller): Authenticated,
        limit: Query<Option<u32>>,
    ) -> Result<Json<OutboxOut>, ApiError> {
        caller.require_admin()?;
        let limit = limit.0.unwrap_or(100).clamp(1, MAX_LISTED);
        let overview = outbox(state)?.overview(limit).await?;
        Ok(Json(OutboxOut {
            counts: overview.counts.into(),
            undelivered: overview.undelivered.into_iter().map(Into::into).collect(),
        }))
    }

    /// Redrive dead events
    ///
    /// Makes dead-lettered deliveries (all, or those to one `destination` base URL) pending
    /// again, due at once, with their attempt count reset.
    #[oai(
        path = "/outbox/redrive",
        method = "post",
        operation_id = "adminOutboxRedrive"
    )]
    async fn redrive(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        Authenticated(caller): Authenticated,
        destination: Query<Option<String>>,
    ) -> Result<Json<RedriveOut>, ApiError> {
        caller.require_admin()?;
        let redriven = outbox(state)?.redrive(destination.0).await?;
        tracing::info!(redriven, "outbox dead letters redriven");
        Ok(Json(RedriveOut { redriven }))
    }
}
