//! Accounts: sign-up, sign-in, sessions, API keys, and the `Authenticator` that turns request
//! credentials into a caller.
//!
//! Sessions and keys live in the database; the cache only holds short-lived copies of
//! verified credentials (dropped on sign-out, revocation and deletion), so authentication
//! survives restarts and cache outages.

mod accounts;
mod api_keys;
mod authenticate;
mod credentials;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::rate_limit::{Limit, RateLimiter};
use crate::model::{Session, User};
use crate::ports::{
    ApiKeyRepository, Cache, Clock, IdGenerator, PasswordHasher, SecretGenerator,
    SessionRepository, UserRepository,
};

pub use accounts::SignUp;
pub use api_keys::CreatedApiKey;
pub use credentials::{hash_secret, normalize_email};

/// Policies of the account service.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Anyone may sign up; otherwise only administrators open accounts.
    pub signup_enabled: bool,
    pub session_ttl: Duration,
    /// A session used after this long since its last refresh gets a new expiry.
    pub session_refresh_after: Duration,
    /// What API keys start with (e.g. `dpg_`).
    pub api_key_prefix: String,
    /// Lifetime of cached verified credentials (the delay before a revocation made on
    /// another replica applies here).
    pub credential_cache_ttl: Duration,
    pub limits: AuthLimits,
}

/// Rate limits of the account routes and of writes made with API keys.
#[derive(Debug, Clone, Copy)]
pub struct AuthLimits {
    pub sign_in_per_ip: Limit,
    pub sign_in_per_account: Limit,
    pub sign_up_per_ip: Limit,
    pub password_change_per_account: Limit,
    pub key_creation_per_account: Limit,
    pub writes_per_key: Limit,
}

impl Default for AuthLimits {
    fn default() -> Self {
        let minute = Duration::from_secs(60);
        let hour = Duration::from_secs(3600);
        AuthLimits {
            sign_in_per_ip: Limit::per(30, minute),
            sign_in_per_account: Limit::per(10, minute),
            sign_up_per_ip: Limit::per(10, hour),
            password_change_per_account: Limit::per(10, hour),
            key_creation_per_account: Limit::per(20, hour),
            writes_per_key: Limit::per(10_000, hour),
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            signup_enabled: true,
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            session_refresh_after: Duration::from_secs(24 * 3600),
            api_key_prefix: "dpg_".to_string(),
            credential_cache_ttl: Duration::from_secs(5),
            limits: AuthLimits::default(),
        }
    }
}

pub struct AuthServiceDeps {
    pub users: Arc<dyn UserRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub api_keys: Arc<dyn ApiKeyRepository>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub secrets: Arc<dyn SecretGenerator>,
    /// The shared cache (rate limits).
    pub cache: Arc<dyn Cache>,
    /// Short-lived copies of verified credentials: process-local, so checking a session or
    /// key costs no round trip; revocation drops this process's copy at once and other
    /// replicas' copies expire within `credential_cache_ttl`.
    pub credentials: Arc<dyn Cache>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
}

pub struct AuthService {
    deps: AuthServiceDeps,
    settings: AuthSettings,
    limiter: RateLimiter,
}

/// A session just issued: the token is shown to the client once, only its hash is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedSession {
    pub token: String,
    pub session: Session,
}

/// A signed-in user with the session that proves it.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedIn {
    pub user: User,
    pub session: IssuedSession,
}

impl AuthService {
    pub fn new(deps: AuthServiceDeps, settings: AuthSettings) -> Self {
        let limiter = RateLimiter::new(deps.cache.clone(), deps.clock.clone());
        AuthService {
            deps,
            settings,
            limiter,
        }
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    fn now(&self) -> DateTime<Utc> {
        self.deps.clock.now()
    }

    fn session_expiry(&self, from: DateTime<Utc>) -> DateTime<Utc> {
        from + chrono::Duration::from_std(self.settings.session_ttl)
            .unwrap_or(chrono::Duration::days(7))
    }
}

/// Managing the account itself (its password, its keys, its deletion) needs a session: an
/// API key identifies its user to the item routes, but cannot act on the account (as with
/// Better Auth, whose account routes never accept an API key).
fn require_session(caller: &crate::model::Caller, refusal: &str) -> Result<(), crate::CoreError> {
    if matches!(caller.method, crate::model::AuthMethod::ApiKey { .. }) {
        return Err(crate::CoreError::Forbidden {
            code: crate::ErrorCode::Unauthorized,
            message: refusal.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
