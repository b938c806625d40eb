use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::CoreError;
use crate::model::{ApiKey, Role, Session, User};

/// Users and their password hashes.
///
/// Every method MUST return `Err(CoreError::Unavailable)` when the database cannot be reached
/// and `Err(CoreError::Internal)` for other storage failures, never with SQL in the message.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Stores a new user. MUST return `Err(CoreError::Conflict)` with code
    /// `USER_ALREADY_EXISTS` when the (lower-cased) email is taken.
    async fn create(&self, user: &User, password_hash: &str) -> Result<(), CoreError>;

    /// The user with this lower-cased email and their password hash.
    async fn find_by_email(&self, email: &str) -> Result<Option<(User, String)>, CoreError>;

    async fn find_by_id(&self, id: &str) -> Result<Option<User>, CoreError>;

    /// Replaces the password hash; `Ok(false)` when the user does not exist.
    async fn set_password(
        &self,
        id: &str,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, CoreError>;

    /// Changes the role; `Ok(false)` when the user does not exist.
    async fn set_role(&self, id: &str, role: Role, at: DateTime<Utc>) -> Result<bool, CoreError>;

    /// Deletes the user together with their sessions, API keys and items, in one
    /// transaction. `Ok(false)` when the user does not exist.
    async fn delete(&self, id: &str) -> Result<bool, CoreError>;
}

/// Sessions, found by the SHA-256 of their token.
///
/// Same error contract as [`UserRepository`].
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SessionRepository: Send + Sync {
    async fn create(&self, session: &Session) -> Result<(), CoreError>;

    /// The session with this token hash, expired or not (the caller checks expiry).
    async fn find_by_token_hash(&self, token_hash: &str) -> Result<Option<Session>, CoreError>;

    /// Moves the expiry of a session (sliding sessions).
    async fn extend(
        &self,
        id: &str,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<(), CoreError>;

    /// Deletes one session; absent is not an error.
    async fn delete(&self, id: &str) -> Result<(), CoreError>;

    /// Deletes every session of the user except `keep` and returns the token hashes removed
    /// (so cached copies can be dropped).
    async fn delete_for_user<'a>(
        &self,
        user_id: &str,
        keep: Option<&'a str>,
    ) -> Result<Vec<String>, CoreError>;
}

/// API keys, found by their non-secret `lookup` slice.
///
/// Same error contract as [`UserRepository`].
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ApiKeyRepository: Send + Sync {
    /// Stores a new key. MUST return `Err(CoreError::Conflict)` if `lookup` is taken (the
    /// caller then draws another key).
    async fn create(&self, key: &ApiKey) -> Result<(), CoreError>;

    async fn find_by_lookup(&self, lookup: &str) -> Result<Option<ApiKey>, CoreError>;

    /// The user's keys, newest first.
    async fn list_for_user(&self, user_id: &str) -> Result<Vec<ApiKey>, CoreError>;

    /// Deletes the key if it belongs to `user_id` and returns it; `None` otherwise.
    async fn delete(&self, id: &str, user_id: &str) -> Result<Option<ApiKey>, CoreError>;
}

/// Password hashing (argon2id in production). Slow on purpose: adapters run it off the
/// request threads.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// A self-describing hash (PHC string) of `password` with a fresh salt.
    async fn hash(&self, password: &str) -> Result<String, CoreError>;

    /// True when `password` matches `hash`; `Ok(false)` for a malformed hash.
    async fn verify(&self, password: &str, hash: &str) -> Result<bool, CoreError>;
}

/// Unpredictable strings for session tokens and API keys.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait SecretGenerator: Send + Sync {
    /// `length` characters drawn uniformly from `[A-Za-z0-9]` by a cryptographic RNG.
    fn alphanumeric(&self, length: usize) -> String;
}
