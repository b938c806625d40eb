//! The development identity for the `Authenticator` port (no credential store).

use async_trait::async_trait;
use dpg_core::CoreError;
use dpg_core::model::{Caller, Role};
use dpg_core::ports::{Authenticator, Credentials};

/// Development identity (auth switched off): the caller is the id in `x-dev-user-id`, else
/// `dev-user`, with every right (as the reference runs without its middleware). Only ever
/// wired outside production.
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
        Ok(Some(Caller {
            role: Role::Admin,
            ..Caller::new(user)
        }))
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
        assert_eq!(none.as_ref().map(|c| c.user_id.as_str()), Some("dev-user"));
        assert!(none.is_some_and(|c| c.is_admin()));
        let named = Credentials {
            dev_user_id: Some("tutor-user".into()),
            ..Credentials::default()
        };
        let named = auth.authenticate(&named).await.expect("ok");
        assert_eq!(named.map(|c| c.user_id), Some("tutor-user".to_string()));
        let hostile = Credentials {
            dev_user_id: Some("x".repeat(500)),
            ..Credentials::default()
        };
        let hostile = auth.authenticate(&hostile).await.expect("ok");
        assert_eq!(hostile.map(|c| c.user_id), Some("dev-user".to_string()));
    }
}
