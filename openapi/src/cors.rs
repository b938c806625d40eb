//! CORS: `ALLOWED_ORIGINS` plus the browser origins of the network's instances (recomputed
//! whenever the network documents change). A disallowed origin gets a clean 403.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use dpg_core::ErrorCode;
use dpg_core::model::InstanceIdentity;
use dpg_core::network::NetworkCatalog;
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Request, Response};

use crate::error::{ErrorBody, json_response};

/// The reference's defaults when `ALLOWED_ORIGINS` lists nothing.
pub const DEFAULT_ORIGINS: [&str; 3] = [
    "http://localhost:3000",
    "http://localhost:5173",
    "http://localhost:2742",
];
const ALLOWED_METHODS: &str = "GET, POST, PUT, DELETE, OPTIONS, PATCH";
const EXPOSED_HEADERS: &str = "set-auth-token, x-request-id, retry-after";

pub struct CorsPolicy {
    configured: Vec<String>,
    network: Mutex<NetworkOrigins>,
}

/// Network-derived origins and the catalog version they were computed from.
struct NetworkOrigins {
    computed_for: Option<DateTime<Utc>>,
    origins: Arc<Vec<String>>,
}

/// What to do with a request.
pub enum CorsDecision {
    /// No `Origin`: not a cross-origin browser request.
    NotCors,
    /// Allowed; add these headers to the response.
    Allowed(String),
    /// Answer now (a preflight, or a refusal).
    Respond(Response),
}

impl CorsPolicy {
    /// `configured` is `ALLOWED_ORIGINS`; empty means the reference's defaults.
    pub fn new(configured: Vec<String>) -> Self {
        let configured = if configured.is_empty() {
            DEFAULT_ORIGINS.iter().map(|o| o.to_string()).collect()
        } else {
            configured
                .into_iter()
                .map(|o| o.trim_end_matches('/').to_string())
                .collect()
        };
        CorsPolicy {
            configured,
            network: Mutex::new(NetworkOrigins {
                computed_for: None,
                origins: Arc::new(Vec::new()),
            }),
        }
    }

    pub fn decide(
        &self,
        req: &Request,
        catalog: &NetworkCatalog,
        identity: &InstanceIdentity,
    ) -> CorsDecision {
        let is_options = req.method() == Method::OPTIONS;
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let requested_method = req.headers().get(header::ACCESS_CONTROL_REQUEST_METHOD);
        let Some(origin) = origin else {
            if is_options {
                return CorsDecision::Respond(invalid_preflight());
            }
            return CorsDecision::NotCors;
        };
        if !self.allows(&origin, catalog, identity) {
            let message = format!("Origin {origin} is not allowed to call this instance");
            return CorsDecision::Respond(json_response(
                StatusCode::FORBIDDEN,
                &ErrorBody::application(ErrorCode::CorsOriginNotAllowed.as_str(), message),
            ));
        }
        if is_options {
            if requested_method.is_none() {
                return CorsDecision::Respond(invalid_preflight());
            }
            let mut response = Response::builder().status(StatusCode::NO_CONTENT).finish();
            decorate(&mut response, &origin);
            let headers = response.headers_mut();
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOWED_METHODS),
            );
            if let Some(requested) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
            }
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
            return CorsDecision::Respond(response);
        }
        CorsDecision::Allowed(origin)
    }

    fn allows(&self, origin: &str, catalog: &NetworkCatalog, identity: &InstanceIdentity) -> bool {
        if self.configured.iter().any(|o| o == origin) {
            return true;
        }
        let origins = {
            let mut network = self.network.lock().unwrap_or_else(|p| p.into_inner());
            if network.computed_for != Some(catalog.loaded_at) {
                *network = NetworkOrigins {
                    computed_for: Some(catalog.loaded_at),
                    origins: Arc::new(catalog.peer_origins(identity)),
                };
            }
            network.origins.clone()
        };
        origins.iter().any(|o| o == origin)
    }
}

/// The headers of an allowed cross-origin response.
pub fn decorate(response: &mut Response, origin: &str) {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED_HEADERS),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

fn invalid_preflight() -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &ErrorBody::application(
            ErrorCode::InvalidPreflight.as_str(),
            "Invalid Preflight Request",
        ),
    )
}
