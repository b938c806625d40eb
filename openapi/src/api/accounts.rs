//! `/api/auth/*`: accounts with Better Auth's paths and JSON shapes, so its clients keep
//! working. Errors here use Better Auth's `{message, code}` body.

use std::borrow::Cow;
use std::sync::Arc;

use dpg_core::model::{ApiKey, Session, User};
use dpg_core::ports::Authenticator;
use dpg_core::services::auth::{CreatedApiKey, SignUp};
use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Deserialize;

use super::ApiTags;
use crate::auth::{AccountCaller, SECURE_SESSION_COOKIE, SESSION_COOKIE, client_info, credentials};
use crate::auth_error::AuthError;
use crate::body::JsonBody;
use crate::dto::wire_time;
use crate::state::{ApiState, CookieSettings};

pub struct AccountApi;

/// A user as Better Auth shows it.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct UserOut {
    pub id: String,
    pub name: String,
    pub email: String,
    pub email_verified: bool,
    #[oai(nullable)]
    pub image: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// `user` or `admin`.
    pub role: String,
    pub banned: bool,
}

impl From<&User> for UserOut {
    fn from(user: &User) -> Self {
        UserOut {
            id: user.id.clone(),
            name: user.name.clone(),
            email: user.email.clone(),
            email_verified: user.email_verified,
            image: user.image.clone(),
            created_at: wire_time(user.created_at),
            updated_at: wire_time(user.updated_at),
            role: user.role.as_str().to_string(),
            banned: false,
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct SessionOut {
    pub id: String,
    pub token: String,
    pub user_id: String,
    pub expires_at: String,
    pub created_at: String,
    pub updated_at: String,
    #[oai(nullable)]
    pub ip_address: Option<String>,
    #[oai(nullable)]
    pub user_agent: Option<String>,
}

impl SessionOut {
    fn new(session: &Session, token: &str) -> Self {
        SessionOut {
            id: session.id.clone(),
            token: token.to_string(),
            user_id: session.user_id.clone(),
            expires_at: wire_time(session.expires_at),
            created_at: wire_time(session.created_at),
            updated_at: wire_time(session.updated_at),
            ip_address: session.ip_address.clone(),
            user_agent: session.user_agent.clone(),
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct SignUpOut {
    /// The session token (also set as the session cookie); send it as `Authorization: Bearer`.
    pub token: String,
    pub user: UserOut,
}

#[derive(Debug, Clone, Object)]
pub struct SignInOut {
    pub redirect: bool,
    pub token: String,
    #[oai(nullable)]
    pub url: Option<String>,
    pub user: UserOut,
}

#[derive(Debug, Clone, Object)]
pub struct SessionWithUserOut {
    pub session: SessionOut,
    pub user: UserOut,
}

/// A `T` or `null`, documented as a nullable `T` (poem-openapi documents a bare
/// `Option<T>` body as `T`, which a `null` answer would violate).
pub struct Nullable<T>(pub Option<T>);

impl<T: Type> Type for Nullable<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        format!("nullable_{}", T::name()).into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            nullable: true,
            all_of: vec![T::schema_ref()],
            ..MetaSchema::ANY
        }))
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_ref().and_then(Type::as_raw_value)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        match &self.0 {
            Some(value) => value.raw_element_iter(),
            None => Box::new(std::iter::empty()),
        }
    }
}

impl<T: ToJSON> ToJSON for Nullable<T> {
    fn to_json(&self) -> Option<serde_json::Value> {
        Some(
            self.0
                .as_ref()
                .and_then(ToJSON::to_json)
                .unwrap_or(serde_json::Value::Null),
        )
    }
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SuccessOut {
    pub success: bool,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Object)]
pub struct ChangePasswordOut {
    /// A new session token when other sessions were revoked, else null.
    #[oai(nullable)]
    pub token: Option<String>,
    pub user: UserOut,
}

/// An API key. `key` is present only in the answer to its creation.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ApiKeyOut {
    pub id: String,
    pub name: String,
    /// The first characters of the key, to recognise it.
    pub start: String,
    pub prefix: String,
    pub user_id: String,
    pub reference_id: String,
    pub enabled: bool,
    pub expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The secret: shown once, never again.
    pub key: Option<String>,
}

impl ApiKeyOut {
    fn new(key: &ApiKey, secret: Option<String>) -> Self {
        ApiKeyOut {
            id: key.id.clone(),
            name: key.name.clone(),
            start: key.start.clone(),
            prefix: key.prefix.clone(),
            user_id: key.user_id.clone(),
            reference_id: key.user_id.clone(),
            enabled: key.enabled,
            expires_at: key.expires_at.map(wire_time),
            created_at: wire_time(key.created_at),
            updated_at: wire_time(key.updated_at),
            key: secret,
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct ApiKeyListOut {
    pub api_keys: Vec<ApiKeyOut>,
    pub total: u64,
}

#[derive(Debug, Clone, Object, Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct SignUpIn {
    pub name: String,
    pub email: String,
    /// 8 to 128 characters.
    pub password: String,
    pub image: Option<String>,
    #[serde(rename = "callbackURL")]
    #[oai(rename = "callbackURL")]
    pub callback_url: Option<String>,
    pub remember_me: Option<bool>,
}

#[derive(Debug, Clone, Object, Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct SignInIn {
    pub email: String,
    pub password: String,
    pub remember_me: Option<bool>,
    #[serde(rename = "callbackURL")]
    #[oai(rename = "callbackURL")]
    pub callback_url: Option<String>,
}

#[derive(Debug, Clone, Object, Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ChangePasswordIn {
    pub new_password: String,
    pub current_password: String,
    pub revoke_other_sessions: Option<bool>,
}

#[derive(Debug, Clone, Object, Deserialize)]
pub struct DeleteUserIn {
    /// The account's password, to confirm.
    pub password: String,
}

#[derive(Debug, Clone, Object, Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct CreateApiKeyIn {
    pub name: Option<String>,
    /// Lifetime in seconds; no expiry when absent.
    pub expires_in: Option<u64>,
}

#[derive(Debug, Clone, Object, Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct DeleteApiKeyIn {
    pub key_id: String,
}

#[derive(ApiResponse)]
enum SignedUpResponse {
    /// Signed up and in; the session cookie is set and the token also comes in `set-auth-token`.
    #[oai(status = 200)]
    Ok(
        Json<SignUpOut>,
        #[oai(header = "Set-Cookie")] String,
        #[oai(header = "set-auth-token")] String,
    ),
}

#[derive(ApiResponse)]
enum SignedInResponse {
    /// Signed in; the session cookie is set and the token also comes in `set-auth-token`.
    #[oai(status = 200)]
    Ok(
        Json<SignInOut>,
        #[oai(header = "Set-Cookie")] String,
        #[oai(header = "set-auth-token")] String,
    ),
}

#[derive(ApiResponse)]
enum SignedOutResponse {
    /// Signed out; the session cookie is cleared.
    #[oai(status = 200)]
    Ok(Json<SuccessOut>, #[oai(header = "Set-Cookie")] String),
}

#[OpenApi(prefix_path = "/api/auth", tag = "ApiTags::Auth")]
impl AccountApi {
    /// Sign up with email and password
    ///
    /// Opens an account and signs it in. When sign-up is closed (`AUTH_SIGNUP_ENABLED=false`)
    /// only an administrator may open accounts.
    #[oai(path = "/sign-up/email", method = "post", operation_id = "signUpEmail")]
    async fn sign_up(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        req: &Request,
        body: JsonBody<SignUpIn>,
    ) -> Result<SignedUpResponse, AuthError> {
        let body = body.0;
        let by = state
            .accounts
            .authenticate(&credentials(req))
            .await
            .ok()
            .flatten();
        let signed = state
            .accounts
            .sign_up(
                SignUp {
                    name: body.name,
                    email: body.email,
                    password: body.password,
                    image: body.image,
                },
                by.as_ref(),
                &client_info(req, state.trust_forwarded_for),
            )
            .await?;
        let token = signed.session.token.clone();
        Ok(SignedUpResponse::Ok(
            Json(SignUpOut {
                token: token.clone(),
                user: UserOut::from(&signed.user),
            }),
            session_cookie(&state.cookies, &token),
            token,
        ))
    }

    /// Sign in with email and password
    #[oai(path = "/sign-in/email", method = "post", operation_id = "signInEmail")]
    async fn sign_in(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        req: &Request,
        body: JsonBody<SignInIn>,
    ) -> Result<SignedInResponse, AuthError> {
        let signed = state
            .accounts
            .sign_in(
                &body.0.email,
                &body.0.password,
                &client_info(req, state.trust_forwarded_for),
            )
            .await?;
        let token = signed.session.token.clone();
        Ok(SignedInResponse::Ok(
            Json(SignInOut {
                redirect: false,
                token: token.clone(),
                url: None,
                user: UserOut::from(&signed.user),
            }),
            session_cookie(&state.cookies, &token),
            token,
        ))
    }

    /// Sign out
    ///
    /// Ends the session of the cookie or bearer token and clears the cookie.
    #[oai(path = "/sign-out", method = "post", operation_id = "signOut")]
    async fn sign_out(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        req: &Request,
    ) -> Result<SignedOutResponse, AuthError> {
        if let Some(token) = session_token(req) {
            state.accounts.sign_out(&token).await?;
        }
        Ok(SignedOutResponse::Ok(
            Json(SuccessOut {
                success: true,
                message: None,
            }),
            clear_cookie(&state.cookies),
        ))
    }

    /// Current session
    ///
    /// The session of the cookie or bearer token and its user; `null` when signed out.
    #[oai(path = "/get-session", method = "get", operation_id = "getSession")]
    async fn get_session(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        req: &Request,
    ) -> Result<Json<Nullable<SessionWithUserOut>>, AuthError> {
        let Some(token) = session_token(req) else {
            return Ok(Json(Nullable(None)));
        };
        let found = state.accounts.session(&token).await?;
        Ok(Json(Nullable(found.map(|(session, user)| {
            SessionWithUserOut {
                session: SessionOut::new(&session, &token),
                user: UserOut::from(&user),
            }
        }))))
    }

    /// Change password
    ///
    /// Checks the current password; with `revokeOtherSessions` every other session ends and
    /// a new token is returned.
    #[oai(
        path = "/change-password",
        method = "post",
        operation_id = "changePassword"
    )]
    async fn change_password(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        AccountCaller(caller): AccountCaller,
        req: &Request,
        body: JsonBody<ChangePasswordIn>,
    ) -> Result<Json<ChangePasswordOut>, AuthError> {
        let body = body.0;
        let (user, session) = state
            .accounts
            .change_password(
                &caller,
                &body.current_password,
                &body.new_password,
                body.revoke_other_sessions.unwrap_or(false),
                &client_info(req, state.trust_forwarded_for),
            )
            .await?;
        Ok(Json(ChangePasswordOut {
            token: session.map(|s| s.token),
            user: UserOut::from(&user),
        }))
    }

    /// Delete account
    ///
    /// Deletes the signed-in user with their sessions, API keys and items.
    #[oai(path = "/delete-user", method = "post", operation_id = "deleteUser")]
    async fn delete_user(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        AccountCaller(caller): AccountCaller,
        body: JsonBody<DeleteUserIn>,
    ) -> Result<SignedOutResponse, AuthError> {
        state
            .accounts
            .delete_user(&caller, &body.0.password)
            .await?;
        Ok(SignedOutResponse::Ok(
            Json(SuccessOut {
                success: true,
                message: Some("User deleted".to_string()),
            }),
            clear_cookie(&state.cookies),
        ))
    }

    /// Create an API key
    ///
    /// Needs a session. The answer carries the key once; only its hash is kept.
    #[oai(
        path = "/api-key/create",
        method = "post",
        operation_id = "createApiKey"
    )]
    async fn create_api_key(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        AccountCaller(caller): AccountCaller,
        req: &Request,
        body: JsonBody<CreateApiKeyIn>,
    ) -> Result<Json<ApiKeyOut>, AuthError> {
        let CreatedApiKey { api_key, key } = state
            .accounts
            .create_api_key(
                &caller,
                body.0.name.as_deref(),
                body.0.expires_in,
                &client_info(req, state.trust_forwarded_for),
            )
            .await?;
        Ok(Json(ApiKeyOut::new(&api_key, Some(key))))
    }

    /// List your API keys
    #[oai(path = "/api-key/list", method = "get", operation_id = "listApiKeys")]
    async fn list_api_keys(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        AccountCaller(caller): AccountCaller,
    ) -> Result<Json<ApiKeyListOut>, AuthError> {
        let keys = state.accounts.list_api_keys(&caller).await?;
        Ok(Json(ApiKeyListOut {
            total: keys.len() as u64,
            api_keys: keys.iter().map(|k| ApiKeyOut::new(k, None)).collect(),
        }))
    }

    /// Revoke an API key
    #[oai(
        path = "/api-key/delete",
        method = "post",
        operation_id = "deleteApiKey"
    )]
    async fn delete_api_key(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        AccountCaller(caller): AccountCaller,
        body: JsonBody<DeleteApiKeyIn>,
    ) -> Result<Json<SuccessOut>, AuthError> {
        state
            .accounts
            .delete_api_key(&caller, &body.0.key_id)
            .await?;
        Ok(Json(SuccessOut {
            success: true,
            message: None,
        }))
    }
}

fn session_token(req: &Request) -> Option<String> {
    let credentials = credentials(req);
    credentials
        .bearer_token
        .or(credentials.session_cookie)
        .map(|token| token.split('.').next().unwrap_or_default().to_string())
        .filter(|token| !token.is_empty())
}

fn session_cookie(settings: &CookieSettings, token: &str) -> String {
    cookie(settings, token, settings.max_age_secs)
}

fn clear_cookie(settings: &CookieSettings) -> String {
    cookie(settings, "", 0)
}

fn cookie(settings: &CookieSettings, value: &str, max_age: u64) -> String {
    if settings.secure {
        format!(
            "{SECURE_SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Lax"
        )
    } else {
        format!("{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax")
    }
}
