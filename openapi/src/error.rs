//! Error envelopes. Every failure leaves through here, in one of the reference's shapes
//! (reference-contract §0.2): application errors `{error, message}`, framework errors
//! `{statusCode, code, error, message}`, auth middleware errors `{code, error, message}`.
//! Any of them may add `violations`. 5xx bodies never carry internals.

use std::collections::BTreeMap;

use dpg_core::{CoreError, ErrorCode};
use poem::Response;
use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

/// One failed rule, located by JSON Pointer into the checked document.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct ViolationOut {
    pub path: String,
    pub message: String,
}

/// The requested binding of a 403 `UNSERVED_DOMAIN_BINDING`.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct RequestedBinding {
    pub network: String,
    pub domain: String,
    pub key: String,
}

/// Every error body. Which fields are present depends on the kind of error; `error` and
/// `message` always are.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ErrorBody {
    /// HTTP status, on framework errors (bad JSON, validation, unknown route...).
    #[oai(rename = "statusCode")]
    pub status_code: Option<u16>,
    /// Machine code on framework and authentication errors.
    pub code: Option<String>,
    /// Machine code on application errors; HTTP reason phrase on framework errors.
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
    pub requested: Option<RequestedBinding>,
    pub allowed_bindings: Option<Vec<String>>,
    pub allowed_networks: Option<Vec<String>>,
    pub allowed_domains: Option<Vec<String>>,
    pub allowed_item_types_by_binding: Option<BTreeMap<String, Vec<String>>>,
    /// Individual rule failures, when the input broke a schema.
    pub violations: Option<Vec<ViolationOut>>,
    /// How each instance fared, when a network read found none answering.
    pub peers: Option<Vec<PeerReportOut>>,
}

/// How one instance fared in a network read.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct PeerReportOut {
    pub instance_url: String,
    /// `ok`, `timeout`, `error`, `invalid`, `circuit_open` or `skipped`.
    pub status: String,
    /// The instance's count of matching items; null when it gave none.
    #[oai(nullable)]
    pub count: Option<u64>,
    pub latency_ms: u64,
}

impl ErrorBody {
    /// `{error: CODE, message}`.
    pub fn application(code: &str, message: impl Into<String>) -> Self {
        ErrorBody {
            status_code: None,
            code: None,
            error: code.to_string(),
            message: message.into(),
            requested: None,
            allowed_bindings: None,
            allowed_networks: None,
            allowed_domains: None,
            allowed_item_types_by_binding: None,
            violations: None,
            peers: None,
        }
    }

    /// `{statusCode, code, error: <reason>, message}`.
    pub fn framework(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ErrorBody {
            status_code: Some(status.as_u16()),
            code: Some(code.to_string()),
            ..ErrorBody::application(status.canonical_reason().unwrap_or("Error"), message)
        }
    }

    /// The machine code, wherever the shape puts it: `code` on framework and
    /// authentication errors, `error` on application errors.
    pub fn machine_code(&self) -> &str {
        self.code.as_deref().unwrap_or(&self.error)
    }

    /// `{code, error: <reason>, message}` of the authentication layer.
    pub fn auth(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ErrorBody {
            code: Some(code.to_string()),
            ..ErrorBody::application(status.canonical_reason().unwrap_or("Error"), message)
        }
    }
}

/// Error responses of every operation.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// Invalid input.
    #[oai(status = 400)]
    BadRequest(Json<Box<ErrorBody>>),
    /// Missing or invalid authentication.
    #[oai(status = 401)]
    Unauthorized(Json<Box<ErrorBody>>),
    /// Not allowed, or the network/domain is not served by this instance.
    #[oai(status = 403)]
    Forbidden(Json<Box<ErrorBody>>),
    /// Not found (or not visible to the caller).
    #[oai(status = 404)]
    NotFound(Json<Box<ErrorBody>>),
    /// Already exists.
    #[oai(status = 409)]
    Conflict(Json<Box<ErrorBody>>),
    /// Body larger than the limit.
    #[oai(status = 413)]
    PayloadTooLarge(Json<Box<ErrorBody>>),
    /// Body is not JSON.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<Box<ErrorBody>>),
    /// Too many requests; retry after the given number of seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<Box<ErrorBody>>, #[oai(header = "Retry-After")] u64),
    /// Unexpected failure; the body never carries internals.
    #[oai(status = 500)]
    Internal(Json<Box<ErrorBody>>),
    /// A remote registry or peer failed.
    #[oai(status = 502)]
    BadGateway(Json<Box<ErrorBody>>),
    /// A local dependency is unavailable; retry later.
    #[oai(status = 503)]
    Unavailable(Json<Box<ErrorBody>>),
}

impl ApiError {
    pub fn new(status: StatusCode, body: ErrorBody) -> Self {
        let body = Json(Box::new(body));
        match status {
            StatusCode::BAD_REQUEST => ApiError::BadRequest(body),
            StatusCode::UNAUTHORIZED => ApiError::Unauthorized(body),
            StatusCode::FORBIDDEN => ApiError::Forbidden(body),
            StatusCode::NOT_FOUND => ApiError::NotFound(body),
            StatusCode::CONFLICT => ApiError::Conflict(body),
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(body),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(body),
            StatusCode::BAD_GATEWAY => ApiError::BadGateway(body),
            StatusCode::SERVICE_UNAVAILABLE => ApiError::Unavailable(body),
            _ => ApiError::Internal(body),
        }
    }

    /// The status and body this error answers with.
    pub fn parts(&self) -> (StatusCode, &ErrorBody) {
        let (status, body) = match self {
            ApiError::BadRequest(body) => (StatusCode::BAD_REQUEST, body),
            ApiError::Unauthorized(body) => (StatusCode::UNAUTHORIZED, body),
            ApiError::Forbidden(body) => (StatusCode::FORBIDDEN, body),
            ApiError::NotFound(body) => (StatusCode::NOT_FOUND, body),
            ApiError::Conflict(body) => (StatusCode::CONFLICT, body),
            ApiError::PayloadTooLarge(body) => (StatusCode::PAYLOAD_TOO_LARGE, body),
            ApiError::UnsupportedMediaType(body) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, body),
            ApiError::TooManyRequests(body, _) => (StatusCode::TOO_MANY_REQUESTS, body),
            ApiError::Internal(body) => (StatusCode::INTERNAL_SERVER_ERROR, body),
            ApiError::BadGateway(body) => (StatusCode::BAD_GATEWAY, body),
            ApiError::Unavailable(body) => (StatusCode::SERVICE_UNAVAILABLE, body),
        };
        (status, &*body.0)
    }

    /// The application-level 401 of user-scoped routes.
    pub fn user_required(action: &str) -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorBody::application(
                ErrorCode::Unauthorized.as_str(),
                format!("Authenticated user is required to {action}"),
            ),
        )
    }
}

impl From<CoreError> for ApiError {
    fn from(err: CoreError) -> Self {
        let (status, body) = match err {
            CoreError::Invalid {
                code,
                message,
                violations,
            } => {
                let mut body = ErrorBody::application(code.as_str(), message);
                if !violations.is_empty() {
                    body.violations = Some(
                        violations
                            .into_iter()
                            .map(|v| ViolationOut {
                                path: v.path,
                                message: v.message,
                            })
                            .collect(),
                    );
                }
                (StatusCode::BAD_REQUEST, body)
            }
            CoreError::Unauthorized { code, message } => (
                StatusCode::UNAUTHORIZED,
                ErrorBody::application(code.as_str(), message),
            ),
            CoreError::Forbidden { code, message } => (
                StatusCode::FORBIDDEN,
                ErrorBody::application(code.as_str(), message),
            ),
            CoreError::UnservedBinding(details) => {
                let key = details.requested.key();
                let mut body = ErrorBody::application(
                    ErrorCode::UnservedDomainBinding.as_str(),
                    format!("This API instance does not serve \"{key}\"."),
                );
                body.requested = Some(RequestedBinding {
                    network: details.requested.network.clone(),
                    domain: details.requested.domain.clone(),
                    key,
                });
                body.allowed_bindings = Some(details.allowed_bindings);
                body.allowed_networks = Some(details.allowed_networks);
                body.allowed_domains = Some(details.allowed_domains);
                body.allowed_item_types_by_binding =
                    Some(details.allowed_item_types_by_binding.into_iter().collect());
                (StatusCode::FORBIDDEN, body)
            }
            CoreError::NotFound { code, message } => (
                StatusCode::NOT_FOUND,
                ErrorBody::application(code.as_str(), message),
            ),
            CoreError::Conflict { code, message } => (
                StatusCode::CONFLICT,
                ErrorBody::application(code.as_str(), message),
            ),
            CoreError::RateLimited { retry_after_secs } => {
                return ApiError::TooManyRequests(
                    Json(Box::new(ErrorBody::application(
                        ErrorCode::RateLimited.as_str(),
                        format!("Too many requests; retry in {retry_after_secs} s"),
                    ))),
                    retry_after_secs,
                );
            }
            CoreError::Upstream { code, message } => (
                StatusCode::BAD_GATEWAY,
                ErrorBody::application(code.as_str(), message),
            ),
            CoreError::Unavailable { code, message } => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorBody::application(code.as_str(), message),
            ),
            CoreError::Internal(detail) => {
                tracing::error!(detail = %detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorBody::application(
                        ErrorCode::InternalServerError.as_str(),
                        "Internal server error",
                    ),
                )
            }
        };
        ApiError::new(status, body)
    }
}

/// A request refused before it reached a handler (bad JSON, too large, wrong media type...),
/// rendered directly in the framework shape.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl Rejection {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Rejection {
            status,
            code,
            message: message.into(),
        }
    }

    /// A 400 `FST_ERR_VALIDATION` (schema validation of body, query or path).
    pub fn validation(message: impl Into<String>) -> Self {
        Rejection::new(StatusCode::BAD_REQUEST, "FST_ERR_VALIDATION", message)
    }
}

impl poem::error::ResponseError for Rejection {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        json_response(
            self.status,
            &ErrorBody::framework(self.status, self.code, self.message.clone()),
        )
    }
}

/// Serializes an error body with the JSON content type of every response.
pub fn json_response(status: StatusCode, body: &ErrorBody) -> Response {
    use poem_openapi::types::ToJSON;
    Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(body.to_json_string())
}

/// Turns any framework error that escaped the handlers into one of our shapes, so that no
/// plain-text or empty error reaches a client.
pub fn framework_error_response(err: poem::Error) -> Response {
    use poem_openapi::error::{
        ContentTypeError, ParseParamError, ParsePathError, ParseRequestPayloadError,
    };
    if err.is_from_response() || err.is::<Rejection>() {
        return err.into_response();
    }
    let status = err.status();
    if let Some(param) = err.downcast_ref::<ParseParamError>() {
        return Rejection::validation(format!("querystring/{} {}", param.name, param.reason))
            .as_response_any();
    }
    if let Some(path) = err.downcast_ref::<ParsePathError>() {
        return Rejection::validation(format!("params/{} {}", path.name, path.reason))
            .as_response_any();
    }
    if let Some(payload) = err.downcast_ref::<ParseRequestPayloadError>() {
        return Rejection::validation(format!("body/ {}", payload.reason)).as_response_any();
    }
    if let Some(content_type) = err.downcast_ref::<ContentTypeError>() {
        return match content_type {
            ContentTypeError::ExpectContentType => {
                Rejection::validation("body/ Invalid input: expected object, received null")
                    .as_response_any()
            }
            _ => Rejection::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "FST_ERR_CTP_INVALID_MEDIA_TYPE",
                "Unsupported Media Type",
            )
            .as_response_any(),
        };
    }
    if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
        // The reference answers both with 404 "Route <METHOD>:<path> not found"; the route
        // string is filled in by the caller that knows the request.
        return json_response(
            StatusCode::NOT_FOUND,
            &ErrorBody::framework(
                StatusCode::NOT_FOUND,
                "FST_ERR_NOT_FOUND",
                "Route not found",
            ),
        );
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return Rejection::new(
            status,
            "FST_ERR_CTP_BODY_TOO_LARGE",
            "Request body is too large",
        )
        .as_response_any();
    }
    if status.is_server_error() {
        tracing::error!(error = %err, "unhandled server error");
        return json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &ErrorBody::application(
                ErrorCode::InternalServerError.as_str(),
                "Internal server error",
            ),
        );
    }
    let reason = status.canonical_reason().unwrap_or("Error");
    json_response(status, &ErrorBody::framework(status, "FST_ERR", reason))
}

trait AsResponseAny {
    fn as_response_any(&self) -> Response;
}

impl AsResponseAny for Rejection {
    fn as_response_any(&self) -> Response {
        poem::error::ResponseError::as_response(self)
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        ApiError::new(
            rejection.status,
            ErrorBody::framework(rejection.status, rejection.code, rejection.message),
        )
    }
}
