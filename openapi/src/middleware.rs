//! The layer every request passes: request id, limits, error envelopes, metrics, access log.

use std::sync::Arc;
use std::time::Instant;

use poem::PathPattern;
use poem::http::{HeaderValue, Method, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};
use tracing::Instrument;

use crate::body::{BodyLimits, too_large};
use crate::cors::{CorsDecision, decorate};
use crate::error::{ErrorBody, framework_error_response, json_response};
use crate::state::ApiState;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request id of the current request, for handlers and peer calls.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Wraps the whole route tree.
pub async fn request_context<E: Endpoint>(
    inner: E,
    mut req: Request,
    state: Arc<ApiState>,
    limits: BodyLimits,
) -> poem::Result<Response> {
    let started = Instant::now();
    let request_id = incoming_request_id(&req).unwrap_or_else(new_request_id);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    req.extensions_mut().insert(limits);
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let span =
        tracing::info_span!("request", request_id = %request_id, method = %method, path = %path);

    let cors = state
        .cors
        .decide(&req, &state.schemas.catalog(), &state.identity);
    let mut response = async {
        let allowed_origin = match cors {
            CorsDecision::Respond(response) => return response,
            CorsDecision::Allowed(origin) => Some(origin),
            CorsDecision::NotCors => None,
        };
        // GET and HEAD bodies are never read (as in the reference), so their size is not
        // refused either: those operations do not answer 413.
        let reads_body = !matches!(method, Method::GET | Method::HEAD);
        let mut response = if reads_body
            && declared_length(&req).is_some_and(|length| length > limits.max_bytes)
        {
            too_large_response()
        } else {
            call_inner(&inner, req, &method, &path).await
        };
        match allowed_origin {
            Some(origin) => decorate(&mut response, &origin),
            None => {
                response
                    .headers_mut()
                    .append(poem::http::header::VARY, HeaderValue::from_static("Origin"));
            }
        }
        response
    }
    .instrument(span.clone())
    .await;

    let status = response.status();
    let route = response
        .data::<PathPattern>()
        .map(|p| p.0.to_string())
        .unwrap_or_else(|| "-".to_string());
    let elapsed = started.elapsed();
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!("dpg_http_requests_total", &labels).increment(1);
    metrics::histogram!("dpg_http_request_duration_seconds", &labels[..2])
        .record(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request done"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    Ok(response)
}

/// A process-unique id without a random draw per request: a random prefix chosen once per
/// process, then a counter.
fn new_request_id() -> String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_string());
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{n:x}")
}

/// A client-supplied id is kept when it is short and plain, so it can be logged safely.
fn incoming_request_id(req: &Request) -> Option<String> {
    let value = req.headers().get(REQUEST_ID_HEADER)?.to_str().ok()?;
    let plain = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    plain.then(|| value.to_string())
}

fn declared_length(req: &Request) -> Option<usize> {
    req.headers()
        .get(poem::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

async fn call_inner<E: Endpoint>(
    inner: &E,
    req: Request,
    method: &poem::http::Method,
    path: &str,
) -> Response {
    match inner.call(req).await {
        Ok(response) => response.into_response(),
        Err(err) => {
            let status = err.status();
            if err.is_from_response() {
                err.into_response()
            } else if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
                route_not_found(method, path)
            } else {
                framework_error_response(err)
            }
        }
    }
}

fn too_large_response() -> Response {
    poem::error::ResponseError::as_response(&too_large())
}

fn route_not_found(method: &poem::http::Method, path: &str) -> Response {
    let mut body = ErrorBody::framework(
        StatusCode::NOT_FOUND,
        "FST_ERR_NOT_FOUND",
        format!("Route {method}:{path} not found"),
    );
    body.code = None;
    json_response(StatusCode::NOT_FOUND, &body)
}
