//! Authenticators for the `Authenticator` port that need no credential store.

use async_trait::async_trait;
use dpg_core::CoreError;
use dpg_core::model::Caller;
use dpg_core::ports::{Authenticator, Credentials};

/// Development identity (auth switched off): the caller is the id in `x-dev-user-id`, else
/// `dev-user`. Only ever wired outside production.
#[derive(Debug, Clone, Default)]
pub struct DevelopmentAuthenticator;

pub const DEFAULT_DEV_USER: &str = "dev-user";
/// Longest accepted development user id.
const MAX_DEV_USER_ID: usize = 128;

#[async_trait]
impl Authenticator for DevelopmentAuthenticator {
    async fn authenticate(&self, credentials: &Credentials) -> Result<Option<Caller>, CoreError> {
        let user = credentials
            .dev_user_id
            .as_deref()
            .filter(|id| id.len() <= MAX_DEV_USER_ID && id.chars().all(|c| !c.is_control()))
            .unwrap_or(DEFAULT_DEV_USER);
        Ok(Some(Caller::new(user)))
    }
}

/// Used while no account store is configured: nobody is authenticated, so every protected
/// route answers 401.
#[derive(Debug, Clone, Default)]
pub struct NoAccountsAuthenticator;

#[async_trait]
impl Authenticator for NoAccountsAuthenticator {
    async fn authenticate(&self, _credentials: &Credentials) -> Result<Option<Caller>, CoreError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn development_identity_comes_from_the_header_or_defaults() {
        let auth = DevelopmentAuthenticator;
        let none = auth
            .authenticate(&Credentials::default())
            .await
            .expect("ok");
        assert_eq!(none, Some(Caller::new("dev-user")));
        let named = Credentials {
            dev_user_id: Some("tutor-user".into()),
            ..Credentials::default()
        };
        assert_eq!(
            auth.authenticate(&named).await.expect("ok"),
            Some(Caller::new("tutor-user"))
        );
        let hostile = Credentials {
            dev_user_id: Some("x".repeat(500)),
            ..Credentials::default()
        };
        assert_eq!(
            auth.authenticate(&hostile).await.expect("ok"),
            Some(Caller::new("dev-user"))
        );
    }

    #[tokio::test]
    async fn no_accounts_authenticates_nobody() {
        let creds = Credentials {
            api_key: Some("k".into()),
            ..Credentials::default()
        };
        assert_eq!(
            NoAccountsAuthenticator
                .authenticate(&creds)
                .await
                .expect("ok"),
            None
        );
    }
}
