//! Request credentials to caller: API key first, then session token (bearer or cookie).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::AuthService;
use super::api_keys::{KEY_RANDOM_CHARS, LOOKUP_CHARS};
use super::credentials::{digests_equal, hash_secret};
use crate::error::{CoreError, ErrorCode};
use crate::model::{AuthMethod, Caller, Role, Session};
use crate::ports::{Authenticator, Credentials};

/// Writes counted in this process before they are added to a key's shared budget.
const WRITE_BATCH: u32 = 50;

#[async_trait]
impl Authenticator for AuthService {
    async fn authenticate(&self, credentials: &Credentials) -> Result<Option<Caller>, CoreError> {
        if let Some(key) = &credentials.api_key {
            return self.caller_of_key(key).await.map(Some);
        }
        let token = credentials
            .bearer_token
            .as_deref()
            .or(credentials.session_cookie.as_deref());
        let Some(token) = token else {
            return Ok(None);
        };
        // Clients of the reference may send the signed cookie value `token.signature`.
        let token = token.split('.').next().unwrap_or(token);
        let Some(session) = self.live_session(&hash_secret(token), true).await? else {
            return Ok(None);
        };
        let role = self.role_of(&session.user_id).await?;
        Ok(role.map(|role| Caller {
            user_id: session.user_id.clone(),
            role,
            method: AuthMethod::Session {
                session_id: session.id,
            },
        }))
    }
}

impl AuthService {
    /// Counts a write against the budget of the API key that made it.
    pub async fn charge_write(&self, caller: &Caller) -> Result<(), CoreError> {
        if let AuthMethod::ApiKey { key_id } = &caller.method {
            self.limiter
                .hit_batched(
                    &format!("writes:key:{key_id}"),
                    self.settings.limits.writes_per_key,
                    WRITE_BATCH,
                )
                .await?;
        }
        Ok(())
    }

    async fn caller_of_key(&self, key: &str) -> Result<Caller, CoreError> {
        let invalid = || CoreError::Forbidden {
            code: ErrorCode::InvalidApiKey,
            message: "Invalid API key provided".to_string(),
        };
        let key_hash = hash_secret(key);
        let cache_key = key_cache_key(&key_hash);
        if let Some(cached) = self.cached(&cache_key).await
            && let Some(caller) = CachedCaller::decode(&cached).and_then(|c| c.live(self.now()))
        {
            return Ok(caller);
        }
        let random = key
            .strip_prefix(self.settings.api_key_prefix.as_str())
            .ok_or_else(invalid)?;
        if random.chars().count() != KEY_RANDOM_CHARS
            || !random.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(invalid());
        }
        let lookup: String = random.chars().take(LOOKUP_CHARS).collect();
        let stored = self
            .deps
            .api_keys
            .find_by_lookup(&lookup)
            .await?
            .ok_or_else(invalid)?;
        let now = self.now();
        if !digests_equal(&stored.key_hash, &key_hash)
            || !stored.enabled
            || stored.expires_at.is_some_and(|at| at <= now)
        {
            return Err(invalid());
        }
        let role = self.role_of(&stored.user_id).await?.ok_or_else(invalid)?;
        let caller = Caller {
            user_id: stored.user_id,
            role,
            method: AuthMethod::ApiKey { key_id: stored.id },
        };
        let entry = CachedCaller {
            caller: caller.clone(),
            expires_at: stored.expires_at,
        };
        self.remember(&cache_key, &entry.encode()).await;
        Ok(caller)
    }

    /// The session with this token hash if it has not expired; refreshes its expiry when it
    /// has been in use for a while.
    pub(super) async fn live_session(
        &self,
        token_hash: &str,
        use_cache: bool,
    ) -> Result<Option<Session>, CoreError> {
        let now = self.now();
        let refresh_after = chrono::Duration::from_std(self.settings.session_refresh_after)
            .unwrap_or(chrono::Duration::days(1));
        let cache_key = session_cache_key(token_hash);
        if use_cache
            && let Some(cached) = self.cached(&cache_key).await
            && let Some(session) = decode_session(&cached, token_hash)
            && session.expires_at > now
            && now - session.updated_at < refresh_after
        {
            return Ok(Some(session));
        }
        let Some(mut session) = self.deps.sessions.find_by_token_hash(token_hash).await? else {
            return Ok(None);
        };
        if session.expires_at <= now {
            self.deps.sessions.delete(&session.id).await?;
            return Ok(None);
        }
        if now - session.updated_at >= refresh_after {
            session.expires_at = self.session_expiry(now);
            session.updated_at = now;
            self.deps
                .sessions
                .extend(&session.id, session.expires_at, now)
                .await?;
        }
        self.remember(&cache_key, &encode_session(&session)).await;
        Ok(Some(session))
    }

    /// The role of a user, through the short-lived cache; `None` when the user is gone.
    async fn role_of(&self, user_id: &str) -> Result<Option<Role>, CoreError> {
        let cache_key = format!("auth:role:{user_id}");
        if let Some(cached) = self.cached(&cache_key).await {
            return Ok(Some(Role::parse(&String::from_utf8_lossy(&cached))));
        }
        let Some(user) = self.deps.users.find_by_id(user_id).await? else {
            return Ok(None);
        };
        self.remember(&cache_key, user.role.as_str().as_bytes())
            .await;
        Ok(Some(user.role))
    }

    pub(super) async fn forget_session(&self, token_hash: &str) {
        if let Err(err) = self
            .deps
            .credentials
            .delete(&session_cache_key(token_hash))
            .await
        {
            tracing::warn!(error = %err, "could not drop a cached session; it expires on its own");
        }
    }

    pub(super) async fn forget_key(&self, key_hash: &str) {
        if let Err(err) = self.deps.credentials.delete(&key_cache_key(key_hash)).await {
            tracing::warn!(error = %err, "could not drop a cached API key; it expires on its own");
        }
    }

    async fn cached(&self, key: &str) -> Option<Vec<u8>> {
        match self.deps.credentials.get(key).await {
            Ok(value) => value,
            Err(err) => {
                tracing::warn!(error = %err, "credential cache unavailable; checking the database");
                None
            }
        }
    }

    /// Into the process-local credentials cache, where [`Self::cached`] looks.
    async fn remember(&self, key: &str, value: &[u8]) {
        if let Err(err) = self
            .deps
            .credentials
            .set(key, value, self.settings.credential_cache_ttl)
            .await
        {
            tracing::warn!(error = %err, "could not cache verified credentials");
        }
    }
}

fn session_cache_key(token_hash: &str) -> String {
    format!("auth:session:{token_hash}")
}

/// A session as cached: `id \n user_id \n expires-ms \n updated-ms \n created-ms`.
fn encode_session(session: &Session) -> Vec<u8> {
    format!(
        "{}\n{}\n{}\n{}\n{}",
        session.id,
        session.user_id,
        session.expires_at.timestamp_millis(),
        session.updated_at.timestamp_millis(),
        session.created_at.timestamp_millis()
    )
    .into_bytes()
}

fn decode_session(raw: &[u8], token_hash: &str) -> Option<Session> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut parts = text.split('\n');
    let id = parts.next()?.to_string();
    let user_id = parts.next()?.to_string();
    let mut time = || DateTime::<Utc>::from_timestamp_millis(parts.next()?.parse().ok()?);
    let (expires_at, updated_at, created_at) = (time()?, time()?, time()?);
    Some(Session {
        id,
        user_id,
        token_hash: token_hash.to_string(),
        expires_at,
        created_at,
        updated_at,
        ip_address: None,
        user_agent: None,
    })
}

fn key_cache_key(key_hash: &str) -> String {
    format!("auth:key:{key_hash}")
}

/// A verified key's caller as cached: `user_id \n role \n key_id \n expiry-ms-or-empty`.
struct CachedCaller {
    caller: Caller,
    expires_at: Option<DateTime<Utc>>,
}

impl CachedCaller {
    fn encode(&self) -> Vec<u8> {
        let key_id = match &self.caller.method {
            AuthMethod::ApiKey { key_id } => key_id.as_str(),
            _ => "",
        };
        let expiry = self
            .expires_at
            .map(|at| at.timestamp_millis().to_string())
            .unwrap_or_default();
        format!(
            "{}\n{}\n{}\n{}",
            self.caller.user_id,
            self.caller.role.as_str(),
            key_id,
            expiry
        )
        .into_bytes()
    }

    fn decode(raw: &[u8]) -> Option<CachedCaller> {
        let text = std::str::from_utf8(raw).ok()?;
        let mut parts = text.split('\n');
        let (user_id, role, key_id, expiry) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let expires_at = if expiry.is_empty() {
            None
        } else {
            Some(DateTime::<Utc>::from_timestamp_millis(
                expiry.parse().ok()?,
            )?)
        };
        Some(CachedCaller {
            caller: Caller {
                user_id: user_id.to_string(),
                role: Role::parse(role),
                method: AuthMethod::ApiKey {
                    key_id: key_id.to_string(),
                },
            },
            expires_at,
        })
    }

    fn live(self, now: DateTime<Utc>) -> Option<Caller> {
        (self.expires_at.is_none_or(|at| at > now)).then_some(self.caller)
    }
}
