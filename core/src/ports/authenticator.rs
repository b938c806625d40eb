use async_trait::async_trait;

use crate::error::CoreError;
use crate::model::Caller;

/// Credentials a request presented, as raw strings; the authenticator decides what they mean.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `x-api-key` header.
    pub api_key: Option<String>,
    /// `Authorization: Bearer <token>`.
    pub bearer_token: Option<String>,
    /// Session cookie value.
    pub session_cookie: Option<String>,
    /// `x-dev-user-id` header, honoured only by the development authenticator.
    pub dev_user_id: Option<String>,
}

/// Turns request credentials into a caller.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// MUST return `Ok(None)` when no credentials were presented, `Err(Unauthorized)` or
    /// `Err(Forbidden)` when presented credentials are invalid, and `Err(Unavailable)` only when
    /// the store that checks them is unreachable.
    async fn authenticate(&self, credentials: &Credentials) -> Result<Option<Caller>, CoreError>;
}
