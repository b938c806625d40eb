//! dpg-openapi: the HTTP interface of a DPG instance — operations, DTOs, error envelopes and
//! the OpenAPI document. Knows the core, not the adapters.

pub mod action_dto;
pub mod api;
pub mod auth;
pub mod auth_error;
pub mod body;
pub mod cors;
pub mod dto;
pub mod encoded;
pub mod error;
pub mod filters;
pub mod middleware;
pub mod peer;
pub mod query;
pub mod state;

use std::sync::Arc;

use poem::endpoint::make_sync;
use poem::middleware::CatchPanic;
use poem::web::Html;
use poem::{Endpoint, EndpointExt, IntoEndpoint, Response, Route};

pub use body::BodyLimits;
pub use state::ApiState;

/// Renders the Prometheus text exposition.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

pub struct HttpSettings {
    pub limits: BodyLimits,
    /// This instance's base URL, listed as the server of the OpenAPI document.
    pub server_url: String,
    pub metrics: Option<MetricsRenderer>,
}

/// The whole route tree: the API, its documentation, metrics.
pub fn app(state: Arc<ApiState>, settings: HttpSettings) -> impl Endpoint<Output = Response> {
    let api = api::service(Some(&settings.server_url));
    let swagger = Html(api.swagger_ui_html());
    let mut route = Route::new()
        .at("/openapi.json", api.spec_endpoint())
        .at("/api/reference/openapi.json", api.spec_endpoint())
        .at(
            "/docs",
            make_sync({
                let page = swagger.0.clone();
                move |_| Html(page.clone())
            }),
        )
        .at(
            "/api/reference",
            make_sync(move |_| Html(swagger.0.clone())),
        );
    if let Some(render) = settings.metrics {
        route = route.at(
            "/metrics",
            make_sync(move |_| {
                Response::builder()
                    .content_type("text/plain; version=0.0.4")
                    .body(render())
            }),
        );
    }
    let limits = settings.limits;
    let context_state = state.clone();
    route
        .nest("/", api.into_endpoint())
        .data(state)
        .with(CatchPanic::new().with_handler(|_| {
            tracing::error!("handler panicked");
            error::json_response(
                poem::http::StatusCode::INTERNAL_SERVER_ERROR,
                &error::ErrorBody::application("INTERNAL_SERVER_ERROR", "Internal server error"),
            )
        }))
        .around(move |inner, req| {
            middleware::request_context(inner, req, context_state.clone(), limits)
        })
}

/// The OpenAPI document as committed in `openapi/openapi.json` (no server list, so it does
/// not depend on the instance that generates it).
pub fn openapi_document() -> String {
    api::service(None).spec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed document must equal the generated one. Regenerate with
    /// `UPDATE_OPENAPI=1 cargo test -p dpg-openapi committed_document` (or `dpg openapi`).
    #[test]
    fn committed_document_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
        let generated = format!("{}\n", openapi_document());
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &generated).expect("write openapi.json");
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "openapi/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p dpg-openapi committed_document`"
        );
    }

    #[test]
    fn protected_operations_declare_every_security_scheme() {
        let doc: serde_json::Value = serde_json::from_str(&openapi_document()).expect("json");
        let schemes = doc["components"]["securitySchemes"]
            .as_object()
            .expect("schemes");
        assert_eq!(schemes["ApiKeyAuth"]["in"], "header");
        assert_eq!(schemes["ApiKeyAuth"]["name"], "x-api-key");
        assert_eq!(schemes["SessionCookie"]["in"], "cookie");
        assert_eq!(schemes["BearerAuth"]["scheme"], "bearer");
        for (method, path) in [
            ("post", "/api/v1/item/create"),
            ("get", "/api/v1/item/fetch"),
            ("patch", "/api/v1/item/{itemId}"),
            ("delete", "/api/v1/item/{itemId}"),
            ("post", "/api/v1/network/refetch_schemas"),
            ("post", "/api/auth/change-password"),
            ("post", "/api/auth/delete-user"),
            ("post", "/api/auth/api-key/create"),
            ("get", "/api/auth/api-key/list"),
            ("post", "/api/auth/api-key/delete"),
        ] {
            let security = doc["paths"][path][method]["security"]
                .as_array()
                .expect("security");
            let names: Vec<&str> = security
                .iter()
                .filter_map(|s| s.as_object()?.keys().next().map(String::as_str))
                .collect();
            for scheme in ["ApiKeyAuth", "SessionCookie", "BearerAuth"] {
                assert!(names.contains(&scheme), "{method} {path} lacks {scheme}");
            }
        }
        assert!(
            doc["paths"]["/api/v1/network/schemas"]["get"]
                .get("security")
                .is_none()
        );
    }

    #[test]
    fn every_operation_has_an_id_and_the_reference_routes_exist() {
        let doc: serde_json::Value = serde_json::from_str(&openapi_document()).expect("json");
        let paths = doc["paths"].as_object().expect("paths");
        for path in [
            "/",
            "/health/live",
            "/health/ready",
            "/api/v1/item/create",
            "/api/v1/item/fetch",
            "/api/v1/item/{itemId}",
            "/api/v1/network/schemas",
            "/api/v1/network/schema/{network}/{domain}/{itemType}",
            "/api/v1/network/refetch_schemas",
        ] {
            assert!(paths.contains_key(path), "missing {path}");
        }
        for (path, item) in paths {
            for (method, op) in item.as_object().expect("path item") {
                assert!(
                    op["operationId"].is_string(),
                    "{method} {path} has no operationId"
                );
            }
        }
    }
}
