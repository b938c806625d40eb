//! Contract suites of the account ports (`UserRepository`, `SessionRepository`,
//! `ApiKeyRepository`), run against SQLite and PostgreSQL, plus the migration guards of the
//! account tables.

use chrono::{DateTime, TimeDelta, Utc};
use dpg_adapters::sql::{
    SqlApiKeyRepository, SqlDatabase, SqlItemRepository, SqlSessionRepository, SqlUserRepository,
};
use dpg_core::error::{CoreError, ErrorCode};
use dpg_core::model::{ApiKey, Item, Role, Session, User};
use dpg_core::ports::{ApiKeyRepository, ItemRepository, SessionRepository, UserRepository};
use dpg_tests::support::postgres::TestDatabase;
use serde_json::json;
use uuid::Uuid;

/// A migrated database and the repositories on it; the database is dropped with this value.
struct Backend {
    users: SqlUserRepository,
    sessions: SqlSessionRepository,
    keys: SqlApiKeyRepository,
    items: SqlItemRepository,
    db: SqlDatabase,
    database: TestDatabase,
}

async fn backend(database: TestDatabase) -> Backend {
    let db = database.migrated().await.expect("test database migrates");
    Backend {
        users: SqlUserRepository::new(&db),
        sessions: SqlSessionRepository::new(&db),
        keys: SqlApiKeyRepository::new(&db),
        items: SqlItemRepository::new(&db),
        db,
        database,
    }
}

async fn sqlite_backend() -> Backend {
    backend(TestDatabase::sqlite().expect("temporary SQLite database")).await
}

async fn postgres_backend() -> Backend {
    backend(
        TestDatabase::postgres()
            .await
            .expect("PostgreSQL test database"),
    )
    .await
}

fn at(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_750_000_000_000 + millis).expect("valid timestamp")
}

fn user(id: &str, email: &str) -> User {
    User {
        id: id.to_string(),
        name: format!("Name of {id}"),
        email: email.to_string(),
        email_verified: false,
        image: None,
        role: Role::User,
        created_at: at(1_000),
        updated_at: at(2_000),
    }
}

fn session(id: &str, user_id: &str) -> Session {
    Session {
        id: id.to_string(),
        user_id: user_id.to_string(),
        token_hash: format!("hash-of-{id}"),
        expires_at: at(86_400_000),
        created_at: at(10),
        updated_at: at(20),
        ip_address: Some("203.0.113.7".to_string()),
        user_agent: Some("test-agent/1.0".to_string()),
    }
}

fn api_key(id: &str, user_id: &str, created_at: DateTime<Utc>) -> ApiKey {
    ApiKey {
        id: id.to_string(),
        user_id: user_id.to_string(),
        name: format!("key {id}"),
        prefix: "dpg_".to_string(),
        start: "dpg_abc".to_string(),
        lookup: format!("lookup-{id}"),
        key_hash: format!("sha256-of-{id}"),
        enabled: true,
        expires_at: None,
        created_at,
        updated_at: created_at,
    }
}

fn item(owner: &str) -> Item {
    Item {
        network: "net".to_string(),
        domain: "dom".to_string(),
        item_type: "job".to_string(),
        item_id: Uuid::new_v4(),
        instance_url: "https://a.example".to_string(),
        schema_url: "https://schemas.example/job.json".to_string(),
        state: json!({"title": "t"}),
        latitude: None,
        longitude: None,
        created_by: owner.to_string(),
        created_at: at(0),
        updated_at: at(0),
    }
}

async fn create_user(backend: &Backend, user: &User) {
    backend
        .users
        .create(user, &format!("phc-of-{}", user.id))
        .await
        .expect("create user");
}

fn sorted(mut values: Vec<String>) -> Vec<String> {
    values.sort();
    values
}

/// The contracts, one async fn per behaviour, each on an empty migrated database.
mod suite {
    use super::*;

    pub async fn user_round_trips_by_email_and_by_id(backend: &Backend) {
        let users: &dyn UserRepository = &backend.users;
        let mut alice = user("u-alice", "alice@example.com");
        alice.email_verified = true;
        alice.image = Some("https://img.example/alice.png".to_string());
        alice.role = Role::Admin;
        users
            .create(&alice, "$argon2id$v=19$x")
            .await
            .expect("create");
        create_user(backend, &user("u-bob", "bob@example.com")).await;

        assert_eq!(
            users
                .find_by_email("alice@example.com")
                .await
                .expect("find"),
            Some((alice.clone(), "$argon2id$v=19$x".to_string()))
        );
        assert_eq!(
            users.find_by_id("u-alice").await.expect("find"),
            Some(alice)
        );
        assert_eq!(
            users
                .find_by_email("carol@example.com")
                .await
                .expect("find"),
            None
        );
        assert_eq!(users.find_by_id("u-carol").await.expect("find"), None);
    }

    /// Callers lower-case emails; the repository stores and matches exactly what it is given.
    pub async fn emails_are_stored_and_matched_as_given(backend: &Backend) {
        let users: &dyn UserRepository = &backend.users;
        let mixed = user("u-mixed", "Mixed@Example.com");
        create_user(backend, &mixed).await;
        let found = users
            .find_by_email("Mixed@Example.com")
            .await
            .expect("find")
            .expect("stored as given");
        assert_eq!(found.0.email, "Mixed@Example.com");
        assert_eq!(
            users
                .find_by_email("mixed@example.com")
                .await
                .expect("find"),
            None
        );
    }

    pub async fn duplicate_email_is_a_conflict(backend: &Backend) {
        let users: &dyn UserRepository = &backend.users;
        create_user(backend, &user("u-1", "same@example.com")).await;
        // What a caller passes for "SAME@Example.COM": the lower-cased email.
        let again = user("u-2", &"SAME@Example.COM".to_lowercase());
        let err = users.create(&again, "phc").await.expect_err("taken email");
        assert_eq!(
            err,
            CoreError::Conflict {
                code: ErrorCode::UserAlreadyExists,
                message: "User already exists".to_string(),
            }
        );
        assert_eq!(users.find_by_id("u-2").await.expect("find"), None);
        let (kept, hash) = users
            .find_by_email("same@example.com")
            .await
            .expect("find")
            .expect("first user kept");
        assert_eq!((kept.id.as_str(), hash.as_str()), ("u-1", "phc-of-u-1"));
    }

    pub async fn timestamps_are_stored_in_milliseconds(backend: &Backend) {
        let users: &dyn UserRepository = &backend.users;
        let mut precise = user("u-precise", "precise@example.com");
        precise.created_at = at(1_234) + TimeDelta::microseconds(567);
        precise.updated_at = at(9_999) + TimeDelta::nanoseconds(1);
        create_user(backend, &precise).await;
        let found = users
            .find_by_id("u-precise")
            .await
            .expect("find")
            .expect("stored");
        assert_eq!(found.created_at, at(1_234));
        assert_eq!(found.updated_at, at(9_999));
    }

    pub async fn unknown_stored_role_reads_as_user(backend: &Backend) {
        let mut admin = user("u-admin", "admin@example.com");
        admin.role = Role::Admin;
        create_user(backend, &admin).await;
        backend
            .database
            .execute("UPDATE users SET role = 'superuser' WHERE id = 'u-admin'")
            .await
            .expect("store an unknown role");
        let found = backend
            .users
            .find_by_id("u-admin")
            .await
            .expect("find")
            .expect("stored");
        assert_eq!(found.role, Role::User);
    }

    pub async fn set_password_replaces_the_hash(backend: &Backend) {
        let users: &dyn UserRepository = &backend.users;
        let alice = user("u-alice", "alice@example.com");
        create_user(backend, &alice).await;
        create_user(backend, &user("u-bob", "bob@example.com")).await;

        assert!(
            users
                .set_password("u-alice", "new-phc", at(50_000))
                .await
                .expect("set")
        );
        let (found, hash) = users
            .find_by_email("alice@example.com")
            .await
            .expect("find")
            .expect("stored");
        assert_eq!(hash, "new-phc");
        assert_eq!(found.updated_at, at(50_000));
        assert_eq!(found.created_at, alice.created_at);
        let (_, bobs) = users
            .find_by_email("bob@example.com")
            .await
            .expect("find")
            .expect("stored");
        assert_eq!(bobs, "phc-of-u-bob");
        assert!(
            !users
                .set_password("u-nobody", "x", at(0))
                .await
                .expect("set")
        );
    }

    pub async fn set_role_changes_the_role(backend: &Backend) {
        let users: &dyn UserRepository = &backend.users;
        create_user(backend, &user("u-alice", "alice@example.com")).await;
        assert!(
            users
                .set_role("u-alice", Role::Admin, at(60_000))
                .await
                .expect("set")
        );
        let found = users
            .find_by_id("u-alice")
            .await
            .expect("find")
            .expect("stored");
        assert_eq!((found.role, found.updated_at), (Role::Admin, at(60_000)));
        assert!(
            users
                .set_role("u-alice", Role::User, at(61_000))
                .await
                .expect("set")
        );
        let found = users
            .find_by_id("u-alice")
            .await
            .expect("find")
            .expect("stored");
        assert_eq!(found.role, Role::User);
        assert!(
            !users
                .set_role("u-nobody", Role::Admin, at(0))
                .await
                .expect("set")
        );
    }

    pub async fn delete_user_removes_their_sessions_keys_and_items_only(backend: &Backend) {
        let users: &dyn UserRepository = &backend.users;
        let sessions: &dyn SessionRepository = &backend.sessions;
        let keys: &dyn ApiKeyRepository = &backend.keys;
        let items: &dyn ItemRepository = &backend.items;
        for (id, email) in [
            ("u-alice", "alice@example.com"),
            ("u-bob", "bob@example.com"),
        ] {
            create_user(backend, &user(id, email)).await;
        }
        for (id, owner) in [("s-a1", "u-alice"), ("s-a2", "u-alice"), ("s-b1", "u-bob")] {
            sessions.create(&session(id, owner)).await.expect("session");
        }
        for (id, owner) in [("k-a1", "u-alice"), ("k-b1", "u-bob")] {
            keys.create(&api_key(id, owner, at(0))).await.expect("key");
        }
        let alices_items = [item("u-alice"), item("u-alice")];
        let bobs_item = item("u-bob");
        for it in alices_items.iter().chain([&bobs_item]) {
            items.insert(it).await.expect("item");
        }

        assert!(users.delete("u-alice").await.expect("delete"));

        assert_eq!(users.find_by_id("u-alice").await.expect("find"), None);
        assert_eq!(
            users
                .find_by_email("alice@example.com")
                .await
                .expect("find"),
            None
        );
        for id in ["s-a1", "s-a2"] {
            assert_eq!(
                sessions
                    .find_by_token_hash(&format!("hash-of-{id}"))
                    .await
                    .expect("find"),
                None,
                "{id}"
            );
        }
        assert_eq!(
            keys.find_by_lookup("lookup-k-a1").await.expect("find"),
            None
        );
        assert_eq!(
            keys.list_for_user("u-alice").await.expect("list"),
            Vec::new()
        );
        for it in &alices_items {
            assert_eq!(
                items.find_owned(it.item_id, "u-alice").await.expect("find"),
                None
            );
        }

        // Bob's rows are untouched.
        assert!(users.find_by_id("u-bob").await.expect("find").is_some());
        assert_eq!(
            sessions
                .find_by_token_hash("hash-of-s-b1")
                .await
                .expect("find"),
            Some(session("s-b1", "u-bob"))
        );
        assert_eq!(
            keys.find_by_lookup("lookup-k-b1").await.expect("find"),
            Some(api_key("k-b1", "u-bob", at(0)))
        );
        assert_eq!(
            items
                .find_owned(bobs_item.item_id, "u-bob")
                .await
                .expect("find"),
            Some(bobs_item)
        );

        assert!(!users.delete("u-alice").await.expect("delete again"));
    }

    /// Items need no user row (they may come from elsewhere), and deleting an unknown user
    /// changes nothing.
    pub async fn deleting_an_unknown_user_is_false_and_keeps_everything(backend: &Backend) {
        let orphan = item("u-ghost");
        backend
            .items
            .insert(&orphan)
            .await
            .expect("item without a user");
        assert!(!backend.users.delete("u-ghost").await.expect("delete"));
        assert_eq!(
            backend
                .items
                .find_owned(orphan.item_id, "u-ghost")
                .await
                .expect("find"),
            Some(orphan)
        );
    }

    pub async fn session_create_find_extend_delete(backend: &Backend) {
        let sessions: &dyn SessionRepository = &backend.sessions;
        create_user(backend, &user("u-alice", "alice@example.com")).await;
        let mut bare = session("s-1", "u-alice");
        bare.ip_address = None;
        bare.user_agent = None;
        sessions.create(&bare).await.expect("create");
        let full = session("s-2", "u-alice");
        sessions.create(&full).await.expect("create");

        assert_eq!(
            sessions
                .find_by_token_hash("hash-of-s-1")
                .await
                .expect("find"),
            Some(bare.clone())
        );
        assert_eq!(
            sessions
                .find_by_token_hash("hash-of-s-2")
                .await
                .expect("find"),
            Some(full.clone())
        );
        assert_eq!(
            sessions.find_by_token_hash("nope").await.expect("find"),
            None
        );

        sessions
            .extend("s-1", at(999_000_000), at(5_000))
            .await
            .expect("extend");
        let extended = sessions
            .find_by_token_hash("hash-of-s-1")
            .await
            .expect("find")
            .expect("still there");
        assert_eq!(
            extended,
            Session {
                expires_at: at(999_000_000),
                updated_at: at(5_000),
                ..bare
            }
        );
        assert_eq!(
            sessions
                .find_by_token_hash("hash-of-s-2")
                .await
                .expect("find"),
            Some(full.clone()),
            "other sessions keep their expiry"
        );
        sessions
            .extend("s-unknown", at(0), at(0))
            .await
            .expect("extending an unknown session is not an error");

        sessions.delete("s-1").await.expect("delete");
        assert_eq!(
            sessions
                .find_by_token_hash("hash-of-s-1")
                .await
                .expect("find"),
            None
        );
        sessions
            .delete("s-1")
            .await
            .expect("absent is not an error");
        assert_eq!(
            sessions
                .find_by_token_hash("hash-of-s-2")
                .await
                .expect("find"),
            Some(full)
        );
    }

    /// Expiry is the caller's business: an expired session is still found.
    pub async fn expired_sessions_are_still_found(backend: &Backend) {
        create_user(backend, &user("u-alice", "alice@example.com")).await;
        let mut old = session("s-old", "u-alice");
        old.expires_at = DateTime::from_timestamp_millis(1_000).expect("valid");
        backend.sessions.create(&old).await.expect("create");
        assert_eq!(
            backend
                .sessions
                .find_by_token_hash("hash-of-s-old")
                .await
                .expect("find"),
            Some(old)
        );
    }

    pub async fn duplicate_session_token_is_a_conflict(backend: &Backend) {
        let sessions: &dyn SessionRepository = &backend.sessions;
        create_user(backend, &user("u-alice", "alice@example.com")).await;
        let first = session("s-1", "u-alice");
        sessions.create(&first).await.expect("create");
        let mut same_token = session("s-2", "u-alice");
        same_token.token_hash = first.token_hash.clone();
        let err = sessions.create(&same_token).await.expect_err("token taken");
        assert!(matches!(err, CoreError::Conflict { .. }), "{err:?}");
        assert_eq!(
            sessions
                .find_by_token_hash(&first.token_hash)
                .await
                .expect("find"),
            Some(first)
        );
    }

    pub async fn delete_for_user_keeps_one_and_returns_the_removed_hashes(backend: &Backend) {
        let sessions: &dyn SessionRepository = &backend.sessions;
        create_user(backend, &user("u-alice", "alice@example.com")).await;
        create_user(backend, &user("u-bob", "bob@example.com")).await;
        for (id, owner) in [
            ("s-a1", "u-alice"),
            ("s-a2", "u-alice"),
            ("s-a3", "u-alice"),
            ("s-b1", "u-bob"),
        ] {
            sessions.create(&session(id, owner)).await.expect("create");
        }

        let removed = sessions
            .delete_for_user("u-alice", Some("s-a2"))
            .await
            .expect("delete");
        assert_eq!(
            sorted(removed),
            vec!["hash-of-s-a1".to_string(), "hash-of-s-a3".to_string()]
        );
        for (hash, present) in [
            ("hash-of-s-a1", false),
            ("hash-of-s-a2", true),
            ("hash-of-s-a3", false),
            ("hash-of-s-b1", true),
        ] {
            assert_eq!(
                sessions
                    .find_by_token_hash(hash)
                    .await
                    .expect("find")
                    .is_some(),
                present,
                "{hash}"
            );
        }

        // Keeping another user's session (or an unknown one) keeps nothing of this user.
        assert_eq!(
            sessions
                .delete_for_user("u-alice", Some("s-b1"))
                .await
                .expect("delete"),
            vec!["hash-of-s-a2".to_string()]
        );
        assert_eq!(
            sessions
                .delete_for_user("u-alice", None)
                .await
                .expect("delete"),
            Vec::<String>::new()
        );
        assert_eq!(
            sessions
                .delete_for_user("u-bob", None)
                .await
                .expect("delete"),
            vec!["hash-of-s-b1".to_string()]
        );
        assert_eq!(
            sessions
                .delete_for_user("u-nobody", None)
                .await
                .expect("delete"),
            Vec::<String>::new()
        );
    }

    pub async fn api_key_create_and_find_by_lookup(backend: &Backend) {
        let keys: &dyn ApiKeyRepository = &backend.keys;
        create_user(backend, &user("u-alice", "alice@example.com")).await;
        let plain = api_key("k-1", "u-alice", at(100));
        let mut expiring = api_key("k-2", "u-alice", at(200));
        expiring.enabled = false;
        expiring.expires_at = Some(at(3_600_000));
        expiring.updated_at = at(300);
        keys.create(&plain).await.expect("create");
        keys.create(&expiring).await.expect("create");

        assert_eq!(
            keys.find_by_lookup("lookup-k-1").await.expect("find"),
            Some(plain)
        );
        assert_eq!(
            keys.find_by_lookup("lookup-k-2").await.expect("find"),
            Some(expiring)
        );
        assert_eq!(keys.find_by_lookup("lookup-k-3").await.expect("find"), None);
    }

    pub async fn api_keys_are_listed_newest_first(backend: &Backend) {
        let keys: &dyn ApiKeyRepository = &backend.keys;
        create_user(backend, &user("u-alice", "alice@example.com")).await;
        create_user(backend, &user("u-bob", "bob@example.com")).await;
        let middle = api_key("k-middle", "u-alice", at(2_000));
        let oldest = api_key("k-oldest", "u-alice", at(1_000));
        let newest = api_key("k-newest", "u-alice", at(3_000));
        let bobs = api_key("k-bob", "u-bob", at(5_000));
        for key in [&middle, &oldest, &newest, &bobs] {
            keys.create(key).await.expect("create");
        }
        assert_eq!(
            keys.list_for_user("u-alice").await.expect("list"),
            vec![newest, middle, oldest]
        );
        assert_eq!(keys.list_for_user("u-bob").await.expect("list"), vec![bobs]);
        assert_eq!(
            keys.list_for_user("u-nobody").await.expect("list"),
            Vec::new()
        );
    }

    pub async fn api_key_is_deleted_only_by_its_owner(backend: &Backend) {
        let keys: &dyn ApiKeyRepository = &backend.keys;
        create_user(backend, &user("u-alice", "alice@example.com")).await;
        create_user(backend, &user("u-bob", "bob@example.com")).await;
        let alices = api_key("k-alice", "u-alice", at(0));
        keys.create(&alices).await.expect("create");

        assert_eq!(keys.delete("k-alice", "u-bob").await.expect("delete"), None);
        assert_eq!(
            keys.find_by_lookup("lookup-k-alice").await.expect("find"),
            Some(alices.clone()),
            "another user's delete keeps the key"
        );
        assert_eq!(
            keys.delete("k-alice", "u-alice").await.expect("delete"),
            Some(alices)
        );
        assert_eq!(
            keys.find_by_lookup("lookup-k-alice").await.expect("find"),
            None
        );
        assert_eq!(
            keys.delete("k-alice", "u-alice").await.expect("delete"),
            None
        );
        assert_eq!(
            keys.delete("k-unknown", "u-alice").await.expect("delete"),
            None
        );
    }

    pub async fn duplicate_api_key_lookup_is_a_conflict(backend: &Backend) {
        let keys: &dyn ApiKeyRepository = &backend.keys;
        create_user(backend, &user("u-alice", "alice@example.com")).await;
        let first = api_key("k-1", "u-alice", at(0));
        keys.create(&first).await.expect("create");
        let mut same_lookup = api_key("k-2", "u-alice", at(1));
        same_lookup.lookup = first.lookup.clone();
        let err = keys.create(&same_lookup).await.expect_err("lookup taken");
        assert!(matches!(err, CoreError::Conflict { .. }), "{err:?}");
        assert_eq!(
            keys.list_for_user("u-alice").await.expect("list"),
            vec![first]
        );
    }
}

/// Runs each suite function against a fresh database of each backend.
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let backend = super::sqlite_backend().await;
                    super::suite::$name(&backend).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let backend = super::postgres_backend().await;
                    super::suite::$name(&backend).await;
                }
            )*
        }
    };
}

contract_tests!(
    user_round_trips_by_email_and_by_id,
    emails_are_stored_and_matched_as_given,
    duplicate_email_is_a_conflict,
    timestamps_are_stored_in_milliseconds,
    unknown_stored_role_reads_as_user,
    set_password_replaces_the_hash,
    set_role_changes_the_role,
    delete_user_removes_their_sessions_keys_and_items_only,
    deleting_an_unknown_user_is_false_and_keeps_everything,
    session_create_find_extend_delete,
    expired_sessions_are_still_found,
    duplicate_session_token_is_a_conflict,
    delete_for_user_keeps_one_and_returns_the_removed_hashes,
    api_key_create_and_find_by_lookup,
    api_keys_are_listed_newest_first,
    api_key_is_deleted_only_by_its_owner,
    duplicate_api_key_lookup_is_a_conflict,
);

/// Failures reach the caller as the ports' error variants, without SQL.
mod failures {
    use super::*;

    async fn closed_database_is_unavailable(backend: Backend) {
        backend.db.close().await;
        let unavailable = CoreError::storage_unavailable();
        assert_eq!(
            backend.users.find_by_id("u").await,
            Err(unavailable.clone())
        );
        assert_eq!(backend.users.delete("u").await, Err(unavailable.clone()));
        assert_eq!(
            backend.sessions.delete_for_user("u", None).await,
            Err(unavailable.clone())
        );
        assert_eq!(
            backend.keys.list_for_user("u").await,
            Err(unavailable.clone())
        );
        assert_eq!(backend.keys.delete("k", "u").await, Err(unavailable));
    }

    async fn broken_schema_is_internal_without_sql(backend: Backend) {
        backend
            .database
            .execute("DROP TABLE api_keys")
            .await
            .expect("drop the table");
        let err = backend
            .keys
            .find_by_lookup("x")
            .await
            .expect_err("the table is gone");
        let CoreError::Internal(message) = &err else {
            panic!("expected an internal error, got {err:?}");
        };
        for sql_word in [
            "SELECT",
            "FROM",
            "WHERE",
            "api_keys",
            "relation",
            "no such table",
        ] {
            assert!(!message.contains(sql_word), "{message}");
        }
        // Deleting a user touches the missing table inside the transaction: nothing is
        // deleted.
        create_user(&backend, &user("u-alice", "alice@example.com")).await;
        let err = backend.users.delete("u-alice").await.expect_err("fails");
        assert!(matches!(err, CoreError::Internal(_)), "{err:?}");
        assert!(
            backend
                .users
                .find_by_id("u-alice")
                .await
                .expect("find")
                .is_some(),
            "the transaction was rolled back"
        );
    }

    #[tokio::test]
    async fn sqlite_closed_database_is_unavailable() {
        closed_database_is_unavailable(sqlite_backend().await).await;
    }

    #[tokio::test]
    async fn postgres_closed_database_is_unavailable() {
        closed_database_is_unavailable(postgres_backend().await).await;
    }

    #[tokio::test]
    async fn sqlite_broken_schema_is_internal_without_sql() {
        broken_schema_is_internal_without_sql(sqlite_backend().await).await;
    }

    #[tokio::test]
    async fn postgres_broken_schema_is_internal_without_sql() {
        broken_schema_is_internal_without_sql(postgres_backend().await).await;
    }
}

/// Start-up: migrations are repeatable and the account tables of another program are refused.
mod migrations {
    use dpg_adapters::sql::SqlSetupError;

    use super::*;

    const ACCOUNT_MIGRATIONS: [(&str, &str); 3] = [
        ("users", "m20250701_000003_create_users"),
        ("sessions", "m20250701_000004_create_sessions"),
        ("api_keys", "m20250701_000005_create_api_keys"),
    ];

    async fn migrating_twice_keeps_the_accounts(database: TestDatabase) {
        let backend = backend(database).await;
        create_user(&backend, &user("u-alice", "alice@example.com")).await;
        backend
            .sessions
            .create(&session("s-1", "u-alice"))
            .await
            .expect("session");
        backend
            .keys
            .create(&api_key("k-1", "u-alice", at(0)))
            .await
            .expect("key");
        backend.db.migrate().await.expect("second migration");
        let again = backend.database.connect().await.expect("connect");
        again.migrate().await.expect("migration from a new pool");
        let users = SqlUserRepository::new(&again);
        assert!(users.find_by_id("u-alice").await.expect("find").is_some());
        assert!(
            SqlSessionRepository::new(&again)
                .find_by_token_hash("hash-of-s-1")
                .await
                .expect("find")
                .is_some()
        );
        assert_eq!(
            SqlApiKeyRepository::new(&again)
                .list_for_user("u-alice")
                .await
                .expect("list")
                .len(),
            1
        );
    }

    async fn assert_refused(database: &TestDatabase, table: &str) {
        let db = database.connect().await.expect("connect");
        let err = db
            .migrate()
            .await
            .expect_err("a foreign table must be refused");
        assert!(matches!(err, SqlSetupError::ForeignSchema(_)), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(&format!("`{table}`")), "{message}");
        assert!(message.contains("not created by this program"), "{message}");
    }

    /// A fresh database holding another program's account table.
    async fn foreign_table_in_an_empty_database_is_refused(database: TestDatabase) {
        database
            .execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
            .await
            .expect("create the foreign table");
        assert_refused(&database, "users").await;
        // Nothing of ours was created next to it.
        assert_refused(&database, "users").await;
    }

    /// A database of an older version (the account migration not recorded) where another
    /// program made a table of one of our names.
    async fn table_without_its_migration_is_refused(
        database: TestDatabase,
        table: &str,
        migration: &str,
    ) {
        database.migrated().await.expect("migrate");
        database
            .execute(&format!(
                "DELETE FROM dpg_schema_migrations WHERE version = '{migration}'"
            ))
            .await
            .expect("forget the migration");
        assert_refused(&database, table).await;
    }

    #[tokio::test]
    async fn sqlite_migrating_twice_keeps_the_accounts() {
        migrating_twice_keeps_the_accounts(TestDatabase::sqlite().expect("sqlite")).await;
    }

    #[tokio::test]
    async fn postgres_migrating_twice_keeps_the_accounts() {
        migrating_twice_keeps_the_accounts(TestDatabase::postgres().await.expect("postgres")).await;
    }

    #[tokio::test]
    async fn sqlite_foreign_users_table_is_refused() {
        foreign_table_in_an_empty_database_is_refused(TestDatabase::sqlite().expect("sqlite"))
            .await;
    }

    #[tokio::test]
    async fn postgres_foreign_users_table_is_refused() {
        foreign_table_in_an_empty_database_is_refused(
            TestDatabase::postgres().await.expect("postgres"),
        )
        .await;
    }

    #[tokio::test]
    async fn sqlite_account_table_without_its_migration_is_refused() {
        for (table, migration) in ACCOUNT_MIGRATIONS {
            let database = TestDatabase::sqlite().expect("sqlite");
            table_without_its_migration_is_refused(database, table, migration).await;
        }
    }

    #[tokio::test]
    async fn postgres_account_table_without_its_migration_is_refused() {
        for (table, migration) in ACCOUNT_MIGRATIONS {
            let database = TestDatabase::postgres().await.expect("postgres");
            table_without_its_migration_is_refused(database, table, migration).await;
        }
    }
}
