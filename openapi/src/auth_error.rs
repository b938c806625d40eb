//! The error responses of the Better Auth routes, in Better Auth's shape; also what the
//! authentication extractor answers with.

use dpg_core::{CoreError, ErrorCode};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

use crate::error::ErrorBody;

/// Better Auth's error body.
#[derive(Debug, Clone, Object)]
pub struct AuthErrorBody {
    pub message: String,
    pub code: String,
}

#[derive(Debug, ApiResponse)]
pub enum AuthError {
    /// Invalid input.
    #[oai(status = 400)]
    BadRequest(Json<AuthErrorBody>),
    /// Not signed in, or wrong credentials.
    #[oai(status = 401)]
    Unauthorized(Json<AuthErrorBody>),
    /// Not allowed (e.g. sign-up is closed).
    #[oai(status = 403)]
    Forbidden(Json<AuthErrorBody>),
    /// No such key.
    #[oai(status = 404)]
    NotFound(Json<AuthErrorBody>),
    /// The request body is larger than the limit (refused before the handler, in the
    /// framework shape).
    #[oai(status = 413)]
    PayloadTooLarge(Json<Box<ErrorBody>>),
    /// The request body is not JSON (refused before the handler, in the framework shape).
    #[oai(status = 415)]
    UnsupportedMediaType(Json<Box<ErrorBody>>),
    /// The account already exists.
    #[oai(status = 422)]
    Unprocessable(Json<AuthErrorBody>),
    /// Too many attempts; retry after the given number of seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<AuthErrorBody>, #[oai(header = "Retry-After")] u64),
    /// Unexpected failure.
    #[oai(status = 500)]
    Internal(Json<AuthErrorBody>),
    /// The account store is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<AuthErrorBody>),
}

impl From<CoreError> for AuthError {
    fn from(err: CoreError) -> Self {
        let body = |code: ErrorCode, message: String| {
            Json(AuthErrorBody {
                message,
                code: code.as_str().to_string(),
            })
        };
        match err {
            CoreError::Invalid { code, message, .. } => AuthError::BadRequest(body(code, message)),
            CoreError::Unauthorized { code, message } => {
                AuthError::Unauthorized(body(code, message))
            }
            CoreError::Forbidden { code, message } => AuthError::Forbidden(body(code, message)),
            CoreError::NotFound { code, message } => AuthError::NotFound(body(code, message)),
            CoreError::Conflict { code, message } => AuthError::Unprocessable(body(code, message)),
            CoreError::RateLimited { retry_after_secs } => AuthError::TooManyRequests(
                body(
                    ErrorCode::RateLimited,
                    format!("Too many requests; retry in {retry_after_secs} s"),
                ),
                retry_after_secs,
            ),
            CoreError::Unavailable { code, message } => AuthError::Unavailable(body(code, message)),
            other => {
                tracing::error!(error = %other, "account operation failed");
                AuthError::Internal(body(
                    ErrorCode::InternalServerError,
                    "Internal server error".to_string(),
                ))
            }
        }
    }
}

pub(crate) fn unauthorized() -> AuthError {
    AuthError::Unauthorized(Json(AuthErrorBody {
        message: "Unauthorized".to_string(),
        code: ErrorCode::Unauthorized.as_str().to_string(),
    }))
}
