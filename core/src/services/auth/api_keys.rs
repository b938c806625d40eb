//! API keys: created with a session, shown once, stored hashed, revocable, optionally expiring.

use super::credentials::{check_name, hash_secret};
use super::{AuthService, require_session};
use crate::error::{CoreError, ErrorCode};
use crate::model::{ApiKey, Caller, ClientInfo};

/// Random characters after the prefix.
pub(super) const KEY_RANDOM_CHARS: usize = 64;
/// The leading random characters that index the key (not enough to use it).
pub(super) const LOOKUP_CHARS: usize = 16;
/// Characters of the key kept readable (`start`) for people to recognise it.
const START_CHARS: usize = 6;
/// Longest accepted `expiresIn`: ten years.
const MAX_EXPIRES_IN_SECS: u64 = 10 * 365 * 24 * 3600;

/// A key just created; `key` is the only time the secret is shown.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedApiKey {
    pub api_key: ApiKey,
    pub key: String,
}

impl AuthService {
    /// Creates an API key for the caller, who must be signed in with a session (a key cannot
    /// mint keys).
    pub async fn create_api_key(
        &self,
        caller: &Caller,
        name: Option<&str>,
        expires_in_secs: Option<u64>,
        client: &ClientInfo,
    ) -> Result<CreatedApiKey, CoreError> {
        require_session(
            caller,
            "API keys are created with a session, not with another key",
        )?;
        let name = name.map(check_name).transpose()?.ok_or_else(|| {
            CoreError::invalid(ErrorCode::NameRequired, "API Key name is required.")
        })?;
        if let Some(secs) = expires_in_secs
            && !(1..=MAX_EXPIRES_IN_SECS).contains(&secs)
        {
            return Err(CoreError::invalid(
                ErrorCode::InvalidInput,
                "expiresIn must be between 1 second and 10 years",
            ));
        }
        if let Some(ip) = &client.ip {
            self.limiter
                .hit(
                    &format!("api-key:ip:{ip}"),
                    self.settings.limits.key_creation_per_account,
                )
                .await?;
        }
        self.limiter
            .hit(
                &format!("api-key:account:{}", caller.user_id),
                self.settings.limits.key_creation_per_account,
            )
            .await?;
        let now = self.now();
        let prefix = self.settings.api_key_prefix.clone();
        // A lookup collision is astronomically unlikely; retry a couple of times anyway.
        let mut last_error = None;
        for _ in 0..3 {
            let random = self.deps.secrets.alphanumeric(KEY_RANDOM_CHARS);
            let key = format!("{prefix}{random}");
            let api_key = ApiKey {
                id: self.deps.ids.new_id().to_string(),
                user_id: caller.user_id.clone(),
                name: name.clone(),
                prefix: prefix.clone(),
                start: key
                    .chars()
                    .take(prefix.chars().count() + START_CHARS)
                    .collect(),
                lookup: random.chars().take(LOOKUP_CHARS).collect(),
                key_hash: hash_secret(&key),
                enabled: true,
                expires_at: expires_in_secs.map(|secs| {
                    now + chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
                }),
                created_at: now,
                updated_at: now,
            };
            match self.deps.api_keys.create(&api_key).await {
                Ok(()) => return Ok(CreatedApiKey { api_key, key }),
                Err(err @ CoreError::Conflict { .. }) => last_error = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last_error.unwrap_or_else(|| CoreError::internal("api key creation failed")))
    }

    /// The caller's keys, newest first (never their secrets).
    pub async fn list_api_keys(&self, caller: &Caller) -> Result<Vec<ApiKey>, CoreError> {
        self.deps.api_keys.list_for_user(&caller.user_id).await
    }

    /// Revokes one of the caller's keys; 404 `KEY_NOT_FOUND` for any other key.
    pub async fn delete_api_key(&self, caller: &Caller, key_id: &str) -> Result<(), CoreError> {
        require_session(
            caller,
            "API keys are revoked with a session, not with a key",
        )?;
        let deleted = self.deps.api_keys.delete(key_id, &caller.user_id).await?;
        let Some(key) = deleted else {
            return Err(CoreError::not_found(
                ErrorCode::KeyNotFound,
                "API Key not found",
            ));
        };
        self.forget_key(&key.key_hash).await;
        Ok(())
    }
}
