//! Sign-up, sign-in, sign-out, password change, account deletion, administrators.

use super::credentials::{check_name, check_password, hash_secret, normalize_email};
use super::{AuthService, IssuedSession, SignedIn, require_session};
use crate::error::{CoreError, ErrorCode};
use crate::model::{AuthMethod, Caller, ClientInfo, Role, Session, User};

/// Characters of a session token.
const TOKEN_CHARS: usize = 32;

/// What a new account is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignUp {
    pub name: String,
    pub email: String,
    pub password: String,
    pub image: Option<String>,
}

impl AuthService {
    /// Opens an account and signs it in. When sign-up is closed only an administrator may
    /// open accounts (the new account is then not signed in as the administrator's session
    /// stays theirs, but a session is still issued for the new user).
    pub async fn sign_up(
        &self,
        request: SignUp,
        by: Option<&Caller>,
        client: &ClientInfo,
    ) -> Result<SignedIn, CoreError> {
        if !self.settings.signup_enabled && !by.is_some_and(Caller::is_admin) {
            return Err(CoreError::Forbidden {
                code: ErrorCode::SignupDisabled,
                message: "Sign-up is closed on this instance; ask an administrator".to_string(),
            });
        }
        if let Some(ip) = &client.ip {
            self.limiter
                .hit(
                    &format!("sign-up:ip:{ip}"),
                    self.settings.limits.sign_up_per_ip,
                )
                .await?;
        }
        let name = check_name(&request.name)?;
        let email = normalize_email(&request.email)?;
        self.limiter
            .hit(
                &format!("sign-up:account:{email}"),
                self.settings.limits.sign_up_per_ip,
            )
            .await?;
        check_password(&request.password)?;
        let now = self.now();
        let user = User {
            id: self.deps.ids.new_id().to_string(),
            name,
            email,
            email_verified: false,
            image: request.image.filter(|i| !i.trim().is_empty()),
            role: Role::User,
            created_at: now,
            updated_at: now,
        };
        let password_hash = self.deps.hasher.hash(&request.password).await?;
        self.deps.users.create(&user, &password_hash).await?;
        let session = self.issue_session(&user.id, client).await?;
        Ok(SignedIn { user, session })
    }

    /// Signs in with email and password. Wrong email and wrong password look the same.
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<SignedIn, CoreError> {
        let invalid = || CoreError::Unauthorized {
            code: ErrorCode::InvalidEmailOrPassword,
            message: "Invalid email or password".to_string(),
        };
        if let Some(ip) = &client.ip {
            self.limiter
                .hit(
                    &format!("sign-in:ip:{ip}"),
                    self.settings.limits.sign_in_per_ip,
                )
                .await?;
        }
        let email = normalize_email(email).map_err(|_| invalid())?;
        self.limiter
            .hit(
                &format!("sign-in:account:{email}"),
                self.settings.limits.sign_in_per_account,
            )
            .await?;
        let Some((user, password_hash)) = self.deps.users.find_by_email(&email).await? else {
            // Spend the same effort as a real check so timing does not reveal accounts.
            let _ = self.deps.hasher.verify(password, DUMMY_HASH).await;
            return Err(invalid());
        };
        if !self.deps.hasher.verify(password, &password_hash).await? {
            return Err(invalid());
        }
        let session = self.issue_session(&user.id, client).await?;
        Ok(SignedIn { user, session })
    }

    /// Ends the session of `token`; unknown tokens are not an error.
    pub async fn sign_out(&self, token: &str) -> Result<(), CoreError> {
        let token_hash = hash_secret(token);
        if let Some(session) = self.deps.sessions.find_by_token_hash(&token_hash).await? {
            self.deps.sessions.delete(&session.id).await?;
        }
        self.forget_session(&token_hash).await;
        Ok(())
    }

    /// The live session of `token` and its user, `None` when unknown or expired.
    pub async fn session(&self, token: &str) -> Result<Option<(Session, User)>, CoreError> {
        // Read through to the database: the full record, not the cached summary.
        let Some(session) = self.live_session(&hash_secret(token), false).await? else {
            return Ok(None);
        };
        let user = self.deps.users.find_by_id(&session.user_id).await?;
        Ok(user.map(|user| (session, user)))
    }

    /// Changes the caller's password after checking the current one. With
    /// `revoke_other_sessions` every other session ends and a fresh one is issued.
    pub async fn change_password(
        &self,
        caller: &Caller,
        current: &str,
        new: &str,
        revoke_other_sessions: bool,
        client: &ClientInfo,
    ) -> Result<(User, Option<IssuedSession>), CoreError> {
        require_session(
            caller,
            "The password is changed with a session, not with an API key",
        )?;
        if let Some(ip) = &client.ip {
            self.limiter
                .hit(
                    &format!("password:ip:{ip}"),
                    self.settings.limits.password_change_per_account,
                )
                .await?;
        }
        self.limiter
            .hit(
                &format!("password:account:{}", caller.user_id),
                self.settings.limits.password_change_per_account,
            )
            .await?;
        let user = self.account_of(caller).await?;
        self.check_current_password(&user, current).await?;
        check_password(new)?;
        let password_hash = self.deps.hasher.hash(new).await?;
        let now = self.now();
        self.deps
            .users
            .set_password(&user.id, &password_hash, now)
            .await?;
        if !revoke_other_sessions {
            return Ok((user, None));
        }
        let keep = match &caller.method {
            AuthMethod::Session { session_id } => Some(session_id.as_str()),
            _ => None,
        };
        for token_hash in self.deps.sessions.delete_for_user(&user.id, keep).await? {
            self.forget_session(&token_hash).await;
        }
        let session = self.issue_session(&user.id, client).await?;
        Ok((user, Some(session)))
    }

    /// Deletes the caller's account with their sessions, API keys and items, after
    /// checking their password.
    pub async fn delete_user(&self, caller: &Caller, password: &str) -> Result<(), CoreError> {
        require_session(
            caller,
            "An account is deleted with a session, not with an API key",
        )?;
        let user = self.account_of(caller).await?;
        self.check_current_password(&user, password).await?;
        let sessions = self.deps.sessions.delete_for_user(&user.id, None).await?;
        let keys = self.deps.api_keys.list_for_user(&user.id).await?;
        self.deps.users.delete(&user.id).await?;
        for token_hash in sessions {
            self.forget_session(&token_hash).await;
        }
        for key in keys {
            self.forget_key(&key.key_hash).await;
        }
        Ok(())
    }

    /// Makes `email` an administrator: creates the account when it does not exist (with
    /// `password`), else promotes it (its password unchanged). Returns the user and whether
    /// it was created.
    pub async fn ensure_admin(
        &self,
        email: &str,
        password: &str,
        name: &str,
    ) -> Result<(User, bool), CoreError> {
        let email = normalize_email(email)?;
        let now = self.now();
        if let Some((mut user, _)) = self.deps.users.find_by_email(&email).await? {
            if user.role != Role::Admin {
                self.deps.users.set_role(&user.id, Role::Admin, now).await?;
                user.role = Role::Admin;
            }
            return Ok((user, false));
        }
        check_password(password)?;
        let user = User {
            id: self.deps.ids.new_id().to_string(),
            name: check_name(name)?,
            email,
            email_verified: false,
            image: None,
            role: Role::Admin,
            created_at: now,
            updated_at: now,
        };
        let password_hash = self.deps.hasher.hash(password).await?;
        self.deps.users.create(&user, &password_hash).await?;
        Ok((user, true))
    }

    async fn account_of(&self, caller: &Caller) -> Result<User, CoreError> {
        self.deps
            .users
            .find_by_id(&caller.user_id)
            .await?
            .ok_or_else(|| CoreError::unauthorized("Missing or invalid authentication"))
    }

    async fn check_current_password(&self, user: &User, password: &str) -> Result<(), CoreError> {
        let stored = self
            .deps
            .users
            .find_by_email(&user.email)
            .await?
            .map(|(_, hash)| hash);
        let matches = match stored {
            Some(hash) => self.deps.hasher.verify(password, &hash).await?,
            None => false,
        };
        if matches {
            return Ok(());
        }
        Err(CoreError::invalid(
            ErrorCode::InvalidPassword,
            "Invalid password",
        ))
    }

    pub(super) async fn issue_session(
        &self,
        user_id: &str,
        client: &ClientInfo,
    ) -> Result<IssuedSession, CoreError> {
        let token = self.deps.secrets.alphanumeric(TOKEN_CHARS);
        let now = self.now();
        let session = Session {
            id: self.deps.ids.new_id().to_string(),
            user_id: user_id.to_string(),
            token_hash: hash_secret(&token),
            expires_at: self.session_expiry(now),
            created_at: now,
            updated_at: now,
            ip_address: client.ip.clone(),
            user_agent: client
                .user_agent
                .as_ref()
                .map(|ua| ua.chars().take(512).collect()),
        };
        self.deps.sessions.create(&session).await?;
        Ok(IssuedSession { token, session })
    }
}

/// An argon2id hash of a random password, verified against when the email is unknown.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$HFfIU1VZ6XDXHhlBGJ7VPpEBNUMDMcyb/1m3KOU3Hk8";
