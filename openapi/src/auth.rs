//! Who is calling. `Authenticated` is the extractor of every protected operation: it runs
//! before the body is read (so an unauthenticated request never reaches body validation),
//! declares the security schemes in the OpenAPI document, and charges writes made with an
//! API key against the key's budget.

use std::sync::Arc;

use dpg_core::CoreError;
use dpg_core::model::{Caller, ClientInfo};
use dpg_core::ports::{Authenticator, Credentials};
use poem::http::{Method, StatusCode};
use poem::{Request, RequestBody};
use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use crate::error::{ApiError, ErrorBody};
use crate::state::ApiState;

/// Name of the session cookie (Better Auth's, so its clients keep working).
pub const SESSION_COOKIE: &str = "better-auth.session_token";
/// The same cookie over HTTPS.
pub const SECURE_SESSION_COOKIE: &str = "__Secure-better-auth.session_token";

pub const API_KEY_SCHEME: &str = "ApiKeyAuth";
pub const COOKIE_SCHEME: &str = "SessionCookie";
pub const BEARER_SCHEME: &str = "BearerAuth";

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
    let session_cookie = header("cookie").and_then(|cookies| {
        cookie_value(&cookies, SECURE_SESSION_COOKIE)
            .or_else(|| cookie_value(&cookies, SESSION_COOKIE))
    });
    Credentials {
        api_key: header("x-api-key"),
        bearer_token,
        session_cookie,
        dev_user_id: header("x-dev-user-id"),
    }
}

fn cookie_value(cookies: &str, name: &str) -> Option<String> {
    cookies
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"').to_string())
        .filter(|value| !value.is_empty())
}

/// The client's address and user agent. `X-Forwarded-For` is believed only when configured.
pub fn client_info(req: &Request, trust_forwarded_for: bool) -> ClientInfo {
    let forwarded = trust_forwarded_for
        .then(|| {
            req.headers()
                .get("x-forwarded-for")?
                .to_str()
                .ok()?
                .split(',')
                .next()
                .map(|ip| ip.trim().to_string())
        })
        .flatten()
        .filter(|ip| !ip.is_empty());
    let ip = forwarded.or_else(|| {
        req.remote_addr()
            .as_socket_addr()
            .map(|addr| addr.ip().to_string())
    });
    let user_agent = req
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(512).collect());
    ClientInfo { ip, user_agent }
}

/// The authenticated caller of a protected operation.
pub struct Authenticated(pub Caller);

/// The caller of an account operation (`/api/auth/*`): always a real account, also when the
/// item routes run with the development identity; Better Auth's 401 body otherwise.
pub struct AccountCaller(pub Caller);

impl<'a> ApiExtractor<'a> for AccountCaller {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        register_schemes(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![COOKIE_SCHEME, BEARER_SCHEME, API_KEY_SCHEME]
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        _options: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        let state = request
            .data::<Arc<ApiState>>()
            .ok_or_else(|| poem::Error::from_status(StatusCode::INTERNAL_SERVER_ERROR))?;
        match state.accounts.authenticate(&credentials(request)).await {
            Ok(Some(caller)) => Ok(AccountCaller(caller)),
            Ok(None) => Err(crate::auth_error::unauthorized().into()),
            Err(err) => Err(crate::auth_error::AuthError::from(err).into()),
        }
    }
}

impl<'a> ApiExtractor<'a> for Authenticated {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        register_schemes(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![API_KEY_SCHEME, COOKIE_SCHEME, BEARER_SCHEME]
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        _options: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        let state = request
            .data::<Arc<ApiState>>()
            .ok_or_else(|| poem::Error::from_status(StatusCode::INTERNAL_SERVER_ERROR))?;
        let caller = authenticate(state, request).await?;
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            state
                .accounts
                .charge_write(&caller)
                .await
                .map_err(ApiError::from)?;
        }
        Ok(Authenticated(caller))
    }
}

/// The three ways to authenticate, declared once in the OpenAPI document.
fn register_schemes(registry: &mut Registry) {
    registry.create_security_scheme(
        API_KEY_SCHEME,
        MetaSecurityScheme {
            ty: "apiKey",
            description: Some("An API key of your account (POST /api/auth/api-key/create)."),
            name: Some("x-api-key"),
            key_in: Some("header"),
            scheme: None,
            bearer_format: None,
            flows: None,
            openid_connect_url: None,
        },
    );
    registry.create_security_scheme(
        COOKIE_SCHEME,
        MetaSecurityScheme {
            ty: "apiKey",
            description: Some("The session cookie set by POST /api/auth/sign-in/email."),
            name: Some(SESSION_COOKIE),
            key_in: Some("cookie"),
            scheme: None,
            bearer_format: None,
            flows: None,
            openid_connect_url: None,
        },
    );
    registry.create_security_scheme(
        BEARER_SCHEME,
        MetaSecurityScheme {
            ty: "http",
            description: Some(
                "The session token returned by sign-in, as `Authorization: Bearer <token>`.",
            ),
            name: None,
            key_in: None,
            scheme: Some("bearer"),
            bearer_format: None,
            flows: None,
            openid_connect_url: None,
        },
    );
}

/// The caller of a protected route, or the reference's middleware bodies (401 without
/// credentials, 403 for a bad API key).
pub async fn authenticate(state: &ApiState, req: &Request) -> Result<Caller, ApiError> {
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
