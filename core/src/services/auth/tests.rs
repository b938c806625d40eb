//! The account use cases against small in-memory fakes of the ports (the flows span several
//! calls, which mock expectations would only restate).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use super::*;
use crate::error::{CoreError, ErrorCode};
use crate::model::{ApiKey, AuthMethod, Caller, ClientInfo, Role, Session, User};
use crate::ports::{Authenticator, Credentials};
use crate::services::rate_limit::Limit;

#[derive(Default)]
struct Store {
    users: Mutex<HashMap<String, (User, String)>>,
    sessions: Mutex<HashMap<String, Session>>,
    keys: Mutex<HashMap<String, ApiKey>>,
    cache: Mutex<HashMap<String, Vec<u8>>>,
    now: Mutex<i64>,
    counter: Mutex<u128>,
    cache_down: Mutex<bool>,
    /// Database reads of credentials: API keys by lookup, sessions by token hash.
    credential_reads: Mutex<u32>,
}

struct Fake(Arc<Store>);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().expect("lock")
}

#[async_trait]
impl UserRepository for Fake {
    async fn create(&self, user: &User, password_hash: &str) -> Result<(), CoreError> {
        let mut users = lock(&self.0.users);
        if users.values().any(|(u, _)| u.email == user.email) {
            return Err(CoreError::Conflict {
                code: ErrorCode::UserAlreadyExists,
                message: "User already exists".into(),
            });
        }
        users.insert(user.id.clone(), (user.clone(), password_hash.to_string()));
        Ok(())
    }
    async fn find_by_email(&self, email: &str) -> Result<Option<(User, String)>, CoreError> {
        Ok(lock(&self.0.users)
            .values()
            .find(|(u, _)| u.email == email)
            .cloned())
    }
    async fn find_by_id(&self, id: &str) -> Result<Option<User>, CoreError> {
        Ok(lock(&self.0.users).get(id).map(|(u, _)| u.clone()))
    }
    async fn set_password(
        &self,
        id: &str,
        hash: &str,
        _: DateTime<Utc>,
    ) -> Result<bool, CoreError> {
        Ok(lock(&self.0.users)
            .get_mut(id)
            .map(|entry| entry.1 = hash.to_string())
            .is_some())
    }
    async fn set_role(&self, id: &str, role: Role, _: DateTime<Utc>) -> Result<bool, CoreError> {
        Ok(lock(&self.0.users)
            .get_mut(id)
            .map(|entry| entry.0.role = role)
            .is_some())
    }
    async fn delete(&self, id: &str) -> Result<bool, CoreError> {
        lock(&self.0.sessions).retain(|_, s| s.user_id != id);
        lock(&self.0.keys).retain(|_, k| k.user_id != id);
        Ok(lock(&self.0.users).remove(id).is_some())
    }
}

#[async_trait]
impl SessionRepository for Fake {
    async fn create(&self, session: &Session) -> Result<(), CoreError> {
        lock(&self.0.sessions).insert(session.id.clone(), session.clone());
        Ok(())
    }
    async fn find_by_token_hash(&self, token_hash: &str) -> Result<Option<Session>, CoreError> {
        *lock(&self.0.credential_reads) += 1;
        Ok(lock(&self.0.sessions)
            .values()
            .find(|s| s.token_hash == token_hash)
            .cloned())
    }
    async fn extend(
        &self,
        id: &str,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        if let Some(s) = lock(&self.0.sessions).get_mut(id) {
            s.expires_at = expires_at;
            s.updated_at = at;
        }
        Ok(())
    }
    async fn delete(&self, id: &str) -> Result<(), CoreError> {
        lock(&self.0.sessions).remove(id);
        Ok(())
    }
    async fn delete_for_user<'a>(
        &self,
        user_id: &str,
        keep: Option<&'a str>,
    ) -> Result<Vec<String>, CoreError> {
        let mut sessions = lock(&self.0.sessions);
        let removed: Vec<String> = sessions
            .values()
            .filter(|s| s.user_id == user_id && Some(s.id.as_str()) != keep)
            .map(|s| s.token_hash.clone())
            .collect();
        sessions.retain(|_, s| !(s.user_id == user_id && Some(s.id.as_str()) != keep));
        Ok(removed)
    }
}

#[async_trait]
impl ApiKeyRepository for Fake {
    async fn create(&self, key: &ApiKey) -> Result<(), CoreError> {
        lock(&self.0.keys).insert(key.id.clone(), key.clone());
        Ok(())
    }
    async fn find_by_lookup(&self, lookup: &str) -> Result<Option<ApiKey>, CoreError> {
        *lock(&self.0.credential_reads) += 1;
        Ok(lock(&self.0.keys)
            .values()
            .find(|k| k.lookup == lookup)
            .cloned())
    }
    async fn list_for_user(&self, user_id: &str) -> Result<Vec<ApiKey>, CoreError> {
        Ok(lock(&self.0.keys)
            .values()
            .filter(|k| k.user_id == user_id)
            .cloned()
            .collect())
    }
    async fn delete(&self, id: &str, user_id: &str) -> Result<Option<ApiKey>, CoreError> {
        let mut keys = lock(&self.0.keys);
        if keys.get(id).is_some_and(|k| k.user_id == user_id) {
            return Ok(keys.remove(id));
        }
        Ok(None)
    }
}

#[async_trait]
impl PasswordHasher for Fake {
    async fn hash(&self, password: &str) -> Result<String, CoreError> {
        Ok(format!("hashed:{password}"))
    }
    async fn verify(&self, password: &str, hash: &str) -> Result<bool, CoreError> {
        Ok(hash == format!("hashed:{password}"))
    }
}

impl SecretGenerator for Fake {
    fn alphanumeric(&self, length: usize) -> String {
        let mut counter = lock(&self.0.counter);
        *counter += 1;
        format!("{:0>width$}", format!("s{}", *counter), width = length)
            .chars()
            .rev()
            .collect()
    }
}

impl crate::ports::IdGenerator for Fake {
    fn new_id(&self) -> Uuid {
        let mut counter = lock(&self.0.counter);
        *counter += 1;
        Uuid::from_u128(*counter)
    }
}

impl crate::ports::Clock for Fake {
    fn now(&self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(*lock(&self.0.now))
            .single()
            .expect("time")
    }
}

#[async_trait]
impl crate::ports::Cache for Fake {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CoreError> {
        self.check()?;
        Ok(lock(&self.0.cache).get(key).cloned())
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CoreError> {
        self.check()?;
        let cache = lock(&self.0.cache);
        Ok(keys.iter().map(|k| cache.get(k).cloned()).collect())
    }
    async fn set(&self, key: &str, value: &[u8], _: Duration) -> Result<(), CoreError> {
        self.check()?;
        lock(&self.0.cache).insert(key.to_string(), value.to_vec());
        Ok(())
    }
    async fn set_if_absent(&self, key: &str, value: &[u8], _: Duration) -> Result<bool, CoreError> {
        self.check()?;
        let mut cache = lock(&self.0.cache);
        if cache.contains_key(key) {
            return Ok(false);
        }
        cache.insert(key.to_string(), value.to_vec());
        Ok(true)
    }
    async fn increment(&self, key: &str, delta: i64, _: Duration) -> Result<i64, CoreError> {
        self.check()?;
        let mut cache = lock(&self.0.cache);
        let current: i64 = cache
            .get(key)
            .and_then(|v| String::from_utf8_lossy(v).parse().ok())
            .unwrap_or(0);
        cache.insert(key.to_string(), (current + delta).to_string().into_bytes());
        Ok(current + delta)
    }
    async fn delete(&self, key: &str) -> Result<(), CoreError> {
        self.check()?;
        lock(&self.0.cache).remove(key);
        Ok(())
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, CoreError> {
        self.check()?;
        let mut cache = lock(&self.0.cache);
        let before = cache.len();
        cache.retain(|k, _| !k.starts_with(prefix));
        Ok((before - cache.len()) as u64)
    }
    async fn ping(&self) -> Result<(), CoreError> {
        self.check()
    }
}

impl Fake {
    fn check(&self) -> Result<(), CoreError> {
        if *lock(&self.0.cache_down) {
            return Err(CoreError::storage_unavailable());
        }
        Ok(())
    }
}

struct Harness {
    store: Arc<Store>,
    service: AuthService,
}

impl Harness {
    fn new(settings: AuthSettings) -> Harness {
        let store = Arc::new(Store::default());
        *lock(&store.now) = 1_800_000_000_000;
        let fake = || Arc::new(Fake(store.clone()));
        let service = AuthService::new(
            AuthServiceDeps {
                users: fake(),
                sessions: fake(),
                api_keys: fake(),
                hasher: fake(),
                secrets: fake(),
                cache: fake(),
                // Process-local and separate from the shared cache, as in the app.
                credentials: Arc::new(Fake(Arc::new(Store::default()))),
                clock: fake(),
                ids: fake(),
            },
            settings,
        );
        Harness { store, service }
    }

    fn advance(&self, by: Duration) {
        *lock(&self.store.now) += i64::try_from(by.as_millis()).expect("small");
    }

    async fn sign_up(&self, email: &str) -> SignedIn {
        self.service
            .sign_up(
                SignUp {
                    name: "Asha".into(),
                    email: email.into(),
                    password: "correct horse".into(),
                    image: None,
                },
                None,
                &client(),
            )
            .await
            .expect("signed up")
    }

    async fn auth(&self, credentials: Credentials) -> Result<Option<Caller>, CoreError> {
        self.service.authenticate(&credentials).await
    }
}

fn client() -> ClientInfo {
    ClientInfo {
        ip: Some("10.0.0.1".into()),
        user_agent: Some("tests".into()),
    }
}

fn bearer(token: &str) -> Credentials {
    Credentials {
        bearer_token: Some(token.to_string()),
        ..Credentials::default()
    }
}

fn key(key: &str) -> Credentials {
    Credentials {
        api_key: Some(key.to_string()),
        ..Credentials::default()
    }
}

#[tokio::test]
async fn sign_up_in_out_and_sessions() {
    let h = Harness::new(AuthSettings::default());
    let signed = h.sign_up("Asha@Example.org").await;
    assert_eq!(signed.user.email, "asha@example.org");
    assert_eq!(signed.session.token.len(), 32);
    assert!(
        !lock(&h.store.sessions)
            .values()
            .any(|s| s.token_hash == signed.session.token),
        "only the hash is stored"
    );

    let caller = h
        .auth(bearer(&signed.session.token))
        .await
        .expect("ok")
        .expect("caller");
    assert_eq!(caller.user_id, signed.user.id);
    assert!(matches!(caller.method, AuthMethod::Session { .. }));
    let cookie = Credentials {
        session_cookie: Some(format!("{}.signature", signed.session.token)),
        ..Credentials::default()
    };
    assert!(
        h.auth(cookie).await.expect("ok").is_some(),
        "signed cookie values are accepted"
    );

    let again = h
        .service
        .sign_up(
            SignUp {
                name: "B".into(),
                email: "ASHA@example.org".into(),
                password: "correct horse".into(),
                image: None,
            },
            None,
            &client(),
        )
        .await;
    assert_eq!(
        again.expect_err("duplicate").code(),
        ErrorCode::UserAlreadyExists
    );

    let wrong = h
        .service
        .sign_in("asha@example.org", "wrong password", &client())
        .await;
    assert_eq!(
        wrong.expect_err("401").code(),
        ErrorCode::InvalidEmailOrPassword
    );
    let unknown = h
        .service
        .sign_in("nobody@example.org", "correct horse", &client())
        .await;
    assert_eq!(
        unknown.expect_err("401").code(),
        ErrorCode::InvalidEmailOrPassword
    );
    let second = h
        .service
        .sign_in("ASHA@example.org", "correct horse", &client())
        .await
        .expect("signed in");

    h.service
        .sign_out(&signed.session.token)
        .await
        .expect("signed out");
    assert_eq!(
        h.auth(bearer(&signed.session.token)).await.expect("ok"),
        None,
        "cached copy dropped too"
    );
    assert!(
        h.auth(bearer(&second.session.token))
            .await
            .expect("ok")
            .is_some(),
        "other session unaffected"
    );
    assert_eq!(h.auth(Credentials::default()).await.expect("ok"), None);
}

#[tokio::test]
async fn sessions_expire_and_slide() {
    let h = Harness::new(AuthSettings::default());
    let signed = h.sign_up("a@example.org").await;
    h.advance(Duration::from_secs(2 * 24 * 3600));
    assert!(
        h.auth(bearer(&signed.session.token))
            .await
            .expect("ok")
            .is_some()
    );
    let (session, _) = h
        .service
        .session(&signed.session.token)
        .await
        .expect("ok")
        .expect("live");
    assert!(
        session.expires_at > signed.session.session.expires_at,
        "used sessions get a new expiry"
    );
    h.advance(Duration::from_secs(8 * 24 * 3600));
    assert_eq!(
        h.auth(bearer(&signed.session.token)).await.expect("ok"),
        None
    );
    assert!(
        lock(&h.store.sessions).is_empty(),
        "expired sessions are removed"
    );
}

#[tokio::test]
async fn api_key_lifecycle() {
    let h = Harness::new(AuthSettings::default());
    let signed = h.sign_up("a@example.org").await;
    let owner = h
        .auth(bearer(&signed.session.token))
        .await
        .expect("ok")
        .expect("caller");

    let err = h
        .service
        .create_api_key(&owner, None, None, &client())
        .await
        .expect_err("name");
    assert_eq!(err.code(), ErrorCode::NameRequired);
    let created = h
        .service
        .create_api_key(&owner, Some("ci"), None, &client())
        .await
        .expect("created");
    assert!(created.key.starts_with("dpg_"));
    assert_eq!(created.key.len(), 4 + 64);
    assert!(
        !lock(&h.store.keys)
            .values()
            .any(|k| k.key_hash.contains(&created.key))
    );

    let caller = h
        .auth(key(&created.key))
        .await
        .expect("ok")
        .expect("caller");
    assert_eq!(caller.user_id, owner.user_id);
    let minted = h
        .service
        .create_api_key(&caller, Some("nested"), None, &client())
        .await;
    assert!(minted.is_err(), "a key cannot mint keys");
    // Nor can it manage the account: its password, its keys, its deletion.
    let changed = h
        .service
        .change_password(&caller, "correct horse", "new password!", false, &client())
        .await;
    assert!(
        matches!(changed, Err(CoreError::Forbidden { .. })),
        "{changed:?}"
    );
    let revoked = h.service.delete_api_key(&caller, &created.api_key.id).await;
    assert!(
        matches!(revoked, Err(CoreError::Forbidden { .. })),
        "{revoked:?}"
    );
    let deleted = h.service.delete_user(&caller, "correct horse").await;
    assert!(
        matches!(deleted, Err(CoreError::Forbidden { .. })),
        "{deleted:?}"
    );
    assert!(h.auth(key(&created.key)).await.expect("ok").is_some());
    assert!(
        h.auth(bearer(&signed.session.token))
            .await
            .expect("ok")
            .is_some(),
        "the account is still there"
    );

    for bad in [
        "dpg_short",
        "nope",
        &format!("dpg_{}", "x".repeat(64)),
        &created.key.replace("dpg_", "abc_"),
    ] {
        assert_eq!(
            h.auth(key(bad)).await.expect_err("invalid").code(),
            ErrorCode::InvalidApiKey,
            "{bad}"
        );
    }
    let mut tampered = created.key.clone();
    tampered.pop();
    tampered.push('Z');
    assert_eq!(
        h.auth(key(&tampered)).await.expect_err("tampered").code(),
        ErrorCode::InvalidApiKey
    );

    let other = h.sign_up("b@example.org").await;
    let stranger = h
        .auth(bearer(&other.session.token))
        .await
        .expect("ok")
        .expect("caller");
    let err = h
        .service
        .delete_api_key(&stranger, &created.api_key.id)
        .await
        .expect_err("not theirs");
    assert_eq!(err.code(), ErrorCode::KeyNotFound);
    assert_eq!(
        h.service.list_api_keys(&owner).await.expect("list").len(),
        1
    );

    h.service
        .delete_api_key(&owner, &created.api_key.id)
        .await
        .expect("revoked");
    assert_eq!(
        h.auth(key(&created.key)).await.expect_err("revoked").code(),
        ErrorCode::InvalidApiKey,
        "cache dropped on revoke"
    );

    let expiring = h
        .service
        .create_api_key(&owner, Some("short"), Some(60), &client())
        .await
        .expect("created");
    assert!(h.auth(key(&expiring.key)).await.expect("ok").is_some());
    h.advance(Duration::from_secs(61));
    assert_eq!(
        h.auth(key(&expiring.key))
            .await
            .expect_err("expired")
            .code(),
        ErrorCode::InvalidApiKey
    );
}

#[tokio::test]
async fn authentication_works_without_the_cache() {
    let h = Harness::new(AuthSettings::default());
    let signed = h.sign_up("a@example.org").await;
    let owner = h
        .auth(bearer(&signed.session.token))
        .await
        .expect("ok")
        .expect("caller");
    let created = h
        .service
        .create_api_key(&owner, Some("ci"), None, &client())
        .await
        .expect("created");
    *lock(&h.store.cache_down) = true;
    assert!(
        h.auth(bearer(&signed.session.token))
            .await
            .expect("ok")
            .is_some()
    );
    assert!(h.auth(key(&created.key)).await.expect("ok").is_some());
    assert!(
        h.service
            .sign_in("a@example.org", "correct horse", &client())
            .await
            .is_ok(),
        "limits fail open"
    );
}

#[tokio::test]
async fn password_change_and_account_deletion() {
    let h = Harness::new(AuthSettings::default());
    let first = h.sign_up("a@example.org").await;
    let second = h
        .service
        .sign_in("a@example.org", "correct horse", &client())
        .await
        .expect("signed in");
    let caller = h
        .auth(bearer(&first.session.token))
        .await
        .expect("ok")
        .expect("caller");

    let wrong = h
        .service
        .change_password(&caller, "nope nope", "new password", false, &client())
        .await;
    assert_eq!(wrong.expect_err("400").code(), ErrorCode::InvalidPassword);
    let short = h
        .service
        .change_password(&caller, "correct horse", "short", false, &client())
        .await;
    assert_eq!(short.expect_err("400").code(), ErrorCode::PasswordTooShort);
    let (_, fresh) = h
        .service
        .change_password(&caller, "correct horse", "battery staple", true, &client())
        .await
        .expect("changed");
    let fresh = fresh.expect("a new session");
    assert!(
        h.auth(bearer(&first.session.token))
            .await
            .expect("ok")
            .is_some(),
        "the current session stays"
    );
    assert_eq!(
        h.auth(bearer(&second.session.token)).await.expect("ok"),
        None,
        "others are revoked"
    );
    assert!(h.auth(bearer(&fresh.token)).await.expect("ok").is_some());
    assert!(
        h.service
            .sign_in("a@example.org", "battery staple", &client())
            .await
            .is_ok()
    );

    let created = h
        .service
        .create_api_key(&caller, Some("ci"), None, &client())
        .await
        .expect("key");
    assert!(h.auth(key(&created.key)).await.expect("ok").is_some());
    let err = h
        .service
        .delete_user(&caller, "correct horse")
        .await
        .expect_err("old password");
    assert_eq!(err.code(), ErrorCode::InvalidPassword);
    h.service
        .delete_user(&caller, "battery staple")
        .await
        .expect("deleted");
    assert_eq!(
        h.auth(bearer(&first.session.token)).await.expect("ok"),
        None
    );
    assert!(h.auth(key(&created.key)).await.is_err());
    assert!(lock(&h.store.users).is_empty());
}

#[tokio::test]
async fn closed_sign_up_and_administrators() {
    let h = Harness::new(AuthSettings {
        signup_enabled: false,
        ..AuthSettings::default()
    });
    let request = || SignUp {
        name: "X".into(),
        email: "x@example.org".into(),
        password: "correct horse".into(),
        image: None,
    };
    let err = h
        .service
        .sign_up(request(), None, &client())
        .await
        .expect_err("closed");
    assert_eq!(err.code(), ErrorCode::SignupDisabled);
    let (admin, created) = h
        .service
        .ensure_admin("root@example.org", "admin password", "Root")
        .await
        .expect("admin");
    assert!(created);
    assert_eq!(admin.role, Role::Admin);
    let admin_caller = Caller {
        role: Role::Admin,
        ..Caller::new(admin.id.clone())
    };
    h.service
        .sign_up(request(), Some(&admin_caller), &client())
        .await
        .expect("admin opens accounts");
    let (promoted, created) = h
        .service
        .ensure_admin("x@example.org", "ignored!", "X")
        .await
        .expect("promoted");
    assert!(!created);
    assert_eq!(promoted.role, Role::Admin);
    let (again, _) = h
        .service
        .ensure_admin("root@example.org", "other password", "Root")
        .await
        .expect("idempotent");
    assert_eq!(again.id, admin.id);
}

#[tokio::test]
async fn sign_in_is_rate_limited_per_account() {
    let limits = AuthLimits {
        sign_in_per_account: Limit::per(3, Duration::from_secs(60)),
        ..AuthLimits::default()
    };
    let h = Harness::new(AuthSettings {
        limits,
        ..AuthSettings::default()
    });
    h.sign_up("a@example.org").await;
    for _ in 0..3 {
        let _ = h
            .service
            .sign_in("a@example.org", "wrong password", &client())
            .await;
    }
    let limited = h
        .service
        .sign_in("a@example.org", "correct horse", &client())
        .await;
    assert!(
        matches!(limited, Err(CoreError::RateLimited { retry_after_secs }) if retry_after_secs <= 60)
    );
    h.advance(Duration::from_secs(61));
    assert!(
        h.service
            .sign_in("a@example.org", "correct horse", &client())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn writes_with_a_key_have_a_budget() {
    let limits = AuthLimits {
        writes_per_key: Limit::per(2, Duration::from_secs(3600)),
        ..AuthLimits::default()
    };
    let h = Harness::new(AuthSettings {
        limits,
        ..AuthSettings::default()
    });
    let with_key = Caller {
        method: AuthMethod::ApiKey {
            key_id: "k1".into(),
        },
        ..Caller::new("u")
    };
    assert!(h.service.charge_write(&with_key).await.is_ok());
    assert!(h.service.charge_write(&with_key).await.is_ok());
    assert!(matches!(
        h.service.charge_write(&with_key).await,
        Err(CoreError::RateLimited { .. })
    ));
    let with_session = Caller {
        method: AuthMethod::Session {
            session_id: "s".into(),
        },
        ..Caller::new("u")
    };
    for _ in 0..5 {
        assert!(
            h.service.charge_write(&with_session).await.is_ok(),
            "sessions have no write budget"
        );
    }
}

#[tokio::test]
async fn verified_credentials_are_read_from_the_database_once_then_from_memory() {
    let h = Harness::new(AuthSettings::default());
    let signed = h.sign_up("cached@example.org").await;
    let reads = || *lock(&h.store.credential_reads);

    let before = reads();
    for _ in 0..5 {
        h.auth(bearer(&signed.session.token))
            .await
            .expect("ok")
            .expect("caller");
    }
    assert_eq!(reads() - before, 1, "one session read for five requests");

    let owner = h
        .auth(bearer(&signed.session.token))
        .await
        .expect("ok")
        .expect("caller");
    let created = h
        .service
        .create_api_key(&owner, Some("ci"), None, &client())
        .await
        .expect("created");
    let before = reads();
    for _ in 0..5 {
        h.auth(key(&created.key))
            .await
            .expect("ok")
            .expect("caller");
    }
    assert_eq!(reads() - before, 1, "one key read for five requests");
}
