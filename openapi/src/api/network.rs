//! `/api/v1/network/*` schema routes.

use std::sync::Arc;

use dpg_core::model::Binding;
use dpg_core::{CoreError, ErrorCode};
use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use serde_json::Value;

use super::ApiTags;
use crate::auth::Authenticated;
use crate::dto::{RefetchOut, SchemaEntryOut};
use crate::error::ApiError;
use crate::state::ApiState;

pub struct NetworkSchemaApi;

#[OpenApi(prefix_path = "/api/v1/network", tag = "ApiTags::Network")]
impl NetworkSchemaApi {
    /// List loaded schemas
    ///
    /// The loaded network documents (kind `network_config`, defaults applied), each domain's
    /// item schemas and this instance's custom item schemas, sorted by `cache_key`. Every
    /// parameter is an exact-match filter.
    #[oai(path = "/schemas", method = "get", operation_id = "listSchemas")]
    async fn list(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        network: Query<Option<String>>,
        domain: Query<Option<String>>,
        item_type: Query<Option<String>>,
        schema_url: Query<Option<String>>,
    ) -> Json<Vec<SchemaEntryOut>> {
        let matches = |wanted: &Option<String>, actual: Option<&str>| {
            wanted.as_deref().is_none_or(|w| Some(w) == actual)
        };
        let entries = state
            .schemas
            .catalog()
            .schema_index(&state.identity)
            .into_iter()
            .filter(|e| {
                matches(&network.0, Some(&e.network))
                    && matches(&domain.0, e.domain.as_deref())
                    && matches(&item_type.0, e.item_type.as_deref())
                    && matches(&schema_url.0, e.schema_url.as_deref())
            })
            .map(SchemaEntryOut::from)
            .collect();
        Json(entries)
    }

    /// Get an item schema
    ///
    /// The JSON Schema items of this type are validated against on this instance (its
    /// custom schema if it publishes one, else the network's). Locally created items carry
    /// this URL as `item_schema_url` when the network has no registry URL.
    #[oai(
        path = "/schema/:network/:domain/:itemType",
        method = "get",
        operation_id = "getItemSchema"
    )]
    async fn item_schema(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        network: Path<String>,
        domain: Path<String>,
        #[oai(name = "itemType")] item_type: Path<String>,
    ) -> Result<Json<Value>, ApiError> {
        let catalog = state.schemas.catalog();
        let schema = catalog.item_schema(&network.0, &domain.0, &item_type.0)?;
        if !state.identity.served.contains(&network.0, &domain.0) {
            return Err(catalog
                .unserved(&state.identity, Binding::new(network.0, domain.0))
                .into());
        }
        Ok(Json(schema.schema.clone()))
    }

    /// Reload the network documents
    ///
    /// Fetches every network document, cross-network origin and custom item schema again
    /// and swaps them in atomically. On failure the documents in force keep serving and the
    /// error says what failed.
    #[oai(
        path = "/refetch_schemas",
        method = "post",
        operation_id = "refetchSchemas"
    )]
    async fn refetch(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        Authenticated(caller): Authenticated,
    ) -> Result<Json<RefetchOut>, ApiError> {
        caller.require_admin()?;
        let report = state.schemas.reload().await.map_err(|err| {
            metrics::counter!("dpg_schema_reloads_total", "outcome" => "failed").increment(1);
            reload_error(err)
        })?;
        metrics::counter!("dpg_schema_reloads_total", "outcome" => "changed").increment(1);
        Ok(Json(RefetchOut {
            refreshed: true,
            schema_count: report.schema_count as u64,
        }))
    }
}

/// A failed reload is the registry's fault, never the caller's: 502 with the reason. A URL
/// refused by the address policy (loopback, private, link-local) was never contacted: 403
/// `SCHEMA_URL_FORBIDDEN`, so that the administrator sees a policy decision, not an outage.
fn reload_error(err: CoreError) -> ApiError {
    if err.code() == ErrorCode::SchemaUrlForbidden {
        return err.into();
    }
    let message = match &err {
        CoreError::Invalid { message, .. }
        | CoreError::Upstream { message, .. }
        | CoreError::Forbidden { message, .. } => message.clone(),
        other => return other.clone().into(),
    };
    let code = match err.code() {
        ErrorCode::RemoteSchemaFetchFailed => ErrorCode::RemoteSchemaFetchFailed,
        _ => ErrorCode::SchemaReloadFailed,
    };
    CoreError::Upstream { code, message }.into()
}
