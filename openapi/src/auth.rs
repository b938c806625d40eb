//! Who is calling: request credentials handed to the `Authenticator` port.

use dpg_core::CoreError;
use dpg_core::model::Caller;
use dpg_core::ports::Credentials;
use poem::Request;
use poem::http::StatusCode;

use crate::error::{ApiError, ErrorBody};
use crate::state::ApiState;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "dpg.session_token";

pub fn credentials(req: &Request) -> Credentials {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let bearer_token = header("authorization").and_then(|value| {
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string())
    });
    Credentials {
        api_key: header("x-api-key"),
        bearer_token,
        session_cookie: header("cookie").and_then(|cookies| cookie_value(&cookies, SESSION_COOKIE)),
        dev_user_id: header("x-dev-user-id"),
    }
}

fn cookie_value(cookies: &str, name: &str) -> Option<String> {
    cookies
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

/// The authenticated caller; the reference's middleware bodies when there is none.
pub async fn caller(state: &ApiState, req: &Request) -> Result<Caller, ApiError> {
    match state.authenticator.authenticate(&credentials(req)).await {
        Ok(Some(caller)) => Ok(caller),
        Ok(None) => Err(unauthenticated()),
        Err(CoreError::Forbidden { code, message }) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorBody::auth(StatusCode::FORBIDDEN, code.as_str(), message),
        )),
        Err(CoreError::Unauthorized { code, message }) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorBody::auth(StatusCode::UNAUTHORIZED, code.as_str(), message),
        )),
        Err(other) => Err(other.into()),
    }
}

fn unauthenticated() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorBody::auth(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "Missing or invalid authentication",
        ),
    )
}
