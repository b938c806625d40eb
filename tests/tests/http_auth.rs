//! Accounts through the real app with authentication on: Better Auth routes, sessions (cookie
//! and bearer), API keys, authorization between users, admin-only routes, rate limits, CORS.

use std::time::Duration;

use dpg_tests::support::instance::{InstanceEnv, TestInstance};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use tempfile::TempDir;

struct Reply {
    status: StatusCode,
    headers: header::HeaderMap,
    body: Value,
}

/// How a request proves who it is.
#[derive(Clone, Copy)]
enum As<'a> {
    Nobody,
    Bearer(&'a str),
    Cookie(&'a str),
    Key(&'a str),
}

async fn call(
    instance: &TestInstance,
    method: Method,
    path: &str,
    who: As<'_>,
    body: Option<Value>,
) -> Reply {
    let mut request = instance.client.request(method, instance.url(path));
    request = match who {
        As::Nobody => request,
        As::Bearer(token) => request.bearer_auth(token),
        As::Cookie(token) => {
            request.header(header::COOKIE, format!("better-auth.session_token={token}"))
        }
        As::Key(key) => request.header("x-api-key", key),
    };
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Reply {
        status,
        headers,
        body,
    }
}

async fn with_auth(extra: &[(&str, &str)]) -> (TestInstance, TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = InstanceEnv::new().set("AUTH_MIDDLEWARE_ENABLED", "true");
    for (name, value) in extra {
        env = env.set(name, *value);
    }
    let instance = TestInstance::start(dir.path().to_path_buf(), env)
        .await
        .expect("boots");
    (instance, dir)
}

async fn sign_up(instance: &TestInstance, email: &str) -> (String, String) {
    let reply = call(
        instance,
        Method::POST,
        "/api/auth/sign-up/email",
        As::Nobody,
        Some(json!({"name": "Asha", "email": email, "password": "correct horse"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    (
        reply.body["token"].as_str().expect("token").to_string(),
        reply.body["user"]["id"].as_str().expect("id").to_string(),
    )
}

fn student(name: &str) -> Value {
    json!({"item_network": "yellow_dot", "item_domain": "student", "item_type": "profile_1.0",
           "item_state": {"name": name, "grade": "10", "city": "Pune"}})
}

const FETCH: &str = "/api/v1/item/fetch?item_network=yellow_dot&item_domain=student";

#[tokio::test]
async fn protected_routes_need_credentials_before_anything_else() {
    let (instance, _dir) = with_auth(&[]).await;
    let no_credentials = call(
        &instance,
        Method::POST,
        "/api/v1/item/create",
        As::Nobody,
        Some(student("A")),
    )
    .await;
    assert_eq!(no_credentials.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        no_credentials.body,
        json!({"code": "UNAUTHORIZED", "error": "Unauthorized", "message": "Missing or invalid authentication"})
    );
    // Authentication runs before body validation: a bad body without credentials is a 401.
    let bad_body = call(
        &instance,
        Method::POST,
        "/api/v1/item/create",
        As::Nobody,
        Some(json!({"x": 1})),
    )
    .await;
    assert_eq!(bad_body.status, StatusCode::UNAUTHORIZED);
    let bad_key = call(&instance, Method::GET, FETCH, As::Key("dpg_nope"), None).await;
    assert_eq!(bad_key.status, StatusCode::FORBIDDEN);
    assert_eq!(
        bad_key.body,
        json!({"code": "INVALID_API_KEY", "error": "Forbidden", "message": "Invalid API key provided"})
    );
    let bad_session = call(
        &instance,
        Method::GET,
        FETCH,
        As::Bearer("not-a-session"),
        None,
    )
    .await;
    assert_eq!(bad_session.status, StatusCode::UNAUTHORIZED);
    // Public routes stay public.
    assert_eq!(
        call(&instance, Method::GET, "/", As::Nobody, None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        call(
            &instance,
            Method::GET,
            "/api/v1/network/schemas",
            As::Nobody,
            None
        )
        .await
        .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn sign_up_in_out_and_sessions_by_cookie_and_bearer() {
    let (instance, _dir) = with_auth(&[]).await;
    let signed_up = call(
        &instance,
        Method::POST,
        "/api/auth/sign-up/email",
        As::Nobody,
        Some(json!({"name": "Asha", "email": "Asha@Example.org", "password": "correct horse"})),
    )
    .await;
    assert_eq!(signed_up.status, StatusCode::OK, "{}", signed_up.body);
    assert_eq!(signed_up.body["user"]["email"], "asha@example.org");
    assert_eq!(signed_up.body["user"]["emailVerified"], false);
    let token = signed_up.body["token"].as_str().expect("token").to_string();
    let cookie = signed_up.headers[header::SET_COOKIE]
        .to_str()
        .expect("cookie");
    assert!(
        cookie.starts_with(&format!("better-auth.session_token={token};")),
        "{cookie}"
    );
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
            && !cookie.contains("Secure"),
        "{cookie}"
    );
    assert_eq!(signed_up.headers["set-auth-token"], token.as_str());

    let duplicate = call(
        &instance,
        Method::POST,
        "/api/auth/sign-up/email",
        As::Nobody,
        Some(json!({"name": "B", "email": "asha@example.org", "password": "another one"})),
    )
    .await;
    assert_eq!(duplicate.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(duplicate.body["code"], "USER_ALREADY_EXISTS");
    let short = call(
        &instance,
        Method::POST,
        "/api/auth/sign-up/email",
        As::Nobody,
        Some(json!({"name": "C", "email": "c@example.org", "password": "short"})),
    )
    .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    assert_eq!(short.body["code"], "PASSWORD_TOO_SHORT");

    for who in [As::Cookie(&token), As::Bearer(&token)] {
        let session = call(&instance, Method::GET, "/api/auth/get-session", who, None).await;
        assert_eq!(session.status, StatusCode::OK);
        assert_eq!(session.body["user"]["email"], "asha@example.org");
        assert_eq!(session.body["session"]["token"], token.as_str());
        assert!(session.body["session"]["expiresAt"].is_string());
    }
    let anonymous = call(
        &instance,
        Method::GET,
        "/api/auth/get-session",
        As::Nobody,
        None,
    )
    .await;
    assert_eq!(
        (anonymous.status, anonymous.body),
        (StatusCode::OK, Value::Null)
    );

    let wrong = call(
        &instance,
        Method::POST,
        "/api/auth/sign-in/email",
        As::Nobody,
        Some(json!({"email": "asha@example.org", "password": "wrong password"})),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.body,
        json!({"message": "Invalid email or password", "code": "INVALID_EMAIL_OR_PASSWORD"})
    );
    let signed_in = call(
        &instance,
        Method::POST,
        "/api/auth/sign-in/email",
        As::Nobody,
        Some(json!({"email": "asha@example.org", "password": "correct horse"})),
    )
    .await;
    assert_eq!(signed_in.status, StatusCode::OK);
    assert_eq!(signed_in.body["redirect"], false);
    let second = signed_in.body["token"].as_str().expect("token").to_string();

    let created = call(
        &instance,
        Method::POST,
        "/api/v1/item/create",
        As::Cookie(&token),
        Some(student("A")),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let page = call(&instance, Method::GET, FETCH, As::Bearer(&second), None).await;
    assert_eq!(page.body["meta"]["total"], 1);

    let out = call(
        &instance,
        Method::POST,
        "/api/auth/sign-out",
        As::Bearer(&token),
        None,
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.body["success"], true);
    assert!(
        out.headers[header::SET_COOKIE]
            .to_str()
            .expect("cookie")
            .contains("Max-Age=0")
    );
    assert_eq!(
        call(&instance, Method::GET, FETCH, As::Bearer(&token), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&instance, Method::GET, FETCH, As::Bearer(&second), None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn users_cannot_touch_each_others_items() {
    let (instance, _dir) = with_auth(&[]).await;
    let (alice, _) = sign_up(&instance, "alice@example.org").await;
    let (bob, _) = sign_up(&instance, "bob@example.org").await;
    let created = call(
        &instance,
        Method::POST,
        "/api/v1/item/create",
        As::Bearer(&alice),
        Some(student("Alice")),
    )
    .await;
    let id = created.body["item_id"].as_str().expect("id").to_string();
    let path = format!("/api/v1/item/{id}");

    let bobs_view = call(&instance, Method::GET, FETCH, As::Bearer(&bob), None).await;
    assert_eq!(bobs_view.body["meta"]["total"], 0);
    let by_id = call(
        &instance,
        Method::GET,
        &format!("{FETCH}&item_id={id}"),
        As::Bearer(&bob),
        None,
    )
    .await;
    assert_eq!(by_id.body["meta"]["total"], 0);
    let patch = call(
        &instance,
        Method::PATCH,
        &path,
        As::Bearer(&bob),
        Some(json!({"item_state": {"name": "x", "grade": "9", "city": "y"}})),
    )
    .await;
    assert_eq!(patch.status, StatusCode::NOT_FOUND);
    assert_eq!(
        call(&instance, Method::DELETE, &path, As::Bearer(&bob), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // The development header means nothing once authentication is on.
    let spoof = instance
        .client
        .delete(instance.url(&path))
        .bearer_auth(&bob)
        .header("x-dev-user-id", "whoever")
        .send()
        .await
        .expect("sent");
    assert_eq!(spoof.status(), StatusCode::NOT_FOUND);

    let alices = call(&instance, Method::GET, FETCH, As::Bearer(&alice), None).await;
    assert_eq!(
        alices.body["items"][0]["item_state"]["name"], "Alice",
        "untouched"
    );
    assert_eq!(
        call(&instance, Method::DELETE, &path, As::Bearer(&alice), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn api_key_lifecycle() {
    let (instance, _dir) = with_auth(&[("INSTANCE_NAME", "dpg-a")]).await;
    let (session, user_id) = sign_up(&instance, "k@example.org").await;

    let unnamed = call(
        &instance,
        Method::POST,
        "/api/auth/api-key/create",
        As::Bearer(&session),
        Some(json!({})),
    )
    .await;
    assert_eq!(unnamed.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        unnamed.body,
        json!({"message": "API Key name is required.", "code": "NAME_REQUIRED"})
    );
    let anonymous = call(
        &instance,
        Method::POST,
        "/api/auth/api-key/create",
        As::Nobody,
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    let created = call(
        &instance,
        Method::POST,
        "/api/auth/api-key/create",
        As::Bearer(&session),
        Some(json!({"name": "ci"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let key = created.body["key"]
        .as_str()
        .expect("key shown once")
        .to_string();
    assert!(key.starts_with("dpga_"), "{key}");
    assert_eq!(created.body["userId"], user_id.as_str());
    let key_id = created.body["id"].as_str().expect("id").to_string();

    let listed = call(
        &instance,
        Method::GET,
        "/api/auth/api-key/list",
        As::Bearer(&session),
        None,
    )
    .await;
    assert_eq!(listed.body["total"], 1);
    assert_eq!(listed.body["apiKeys"][0]["name"], "ci");
    assert!(
        listed.body["apiKeys"][0].get("key").is_none(),
        "the secret is never listed"
    );

    let with_key = call(
        &instance,
        Method::POST,
        "/api/v1/item/create",
        As::Key(&key),
        Some(student("K")),
    )
    .await;
    assert_eq!(
        with_key.status,
        StatusCode::CREATED,
        "an API key identifies its user"
    );
    let own = call(&instance, Method::GET, FETCH, As::Bearer(&session), None).await;
    assert_eq!(
        own.body["meta"]["total"], 1,
        "the key's items belong to the key's user"
    );
    // The key is checked first: a valid key wins over a bad session and the other way round.
    let both = instance
        .client
        .get(instance.url(FETCH))
        .header("x-api-key", "dpga_wrong")
        .bearer_auth(&session)
        .send()
        .await
        .expect("sent");
    assert_eq!(both.status(), StatusCode::FORBIDDEN);
    let nested = call(
        &instance,
        Method::POST,
        "/api/auth/api-key/create",
        As::Key(&key),
        Some(json!({"name": "nested"})),
    )
    .await;
    assert_ne!(nested.status, StatusCode::OK, "a key cannot mint keys");

    let (other, _) = sign_up(&instance, "other@example.org").await;
    let stolen = call(
        &instance,
        Method::POST,
        "/api/auth/api-key/delete",
        As::Bearer(&other),
        Some(json!({"keyId": key_id})),
    )
    .await;
    assert_eq!(stolen.status, StatusCode::NOT_FOUND);
    let revoked = call(
        &instance,
        Method::POST,
        "/api/auth/api-key/delete",
        As::Bearer(&session),
        Some(json!({"keyId": key_id})),
    )
    .await;
    assert_eq!(revoked.body, json!({"success": true}));
    assert_eq!(
        call(&instance, Method::GET, FETCH, As::Key(&key), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    let short = call(
        &instance,
        Method::POST,
        "/api/auth/api-key/create",
        As::Bearer(&session),
        Some(json!({"name": "short", "expiresIn": 1})),
    )
    .await;
    let short_key = short.body["key"].as_str().expect("key").to_string();
    assert!(short.body["expiresAt"].is_string());
    assert_eq!(
        call(&instance, Method::GET, FETCH, As::Key(&short_key), None)
            .await
            .status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        call(&instance, Method::GET, FETCH, As::Key(&short_key), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn password_change_and_account_deletion() {
    let (instance, dir) = with_auth(&[]).await;
    let (first, user_id) = sign_up(&instance, "p@example.org").await;
    let signed_in = call(
        &instance,
        Method::POST,
        "/api/auth/sign-in/email",
        As::Nobody,
        Some(json!({"email": "p@example.org", "password": "correct horse"})),
    )
    .await;
    let second = signed_in.body["token"].as_str().expect("token").to_string();

    let wrong = call(
        &instance,
        Method::POST,
        "/api/auth/change-password",
        As::Bearer(&first),
        Some(json!({"currentPassword": "nope nope", "newPassword": "battery staple"})),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong.body["code"], "INVALID_PASSWORD");
    let changed = call(
        &instance,
        Method::POST,
        "/api/auth/change-password",
        As::Bearer(&first),
        Some(json!({"currentPassword": "correct horse", "newPassword": "battery staple", "revokeOtherSessions": true})),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert!(changed.body["token"].is_string());
    assert_eq!(
        call(&instance, Method::GET, FETCH, As::Bearer(&second), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&instance, Method::GET, FETCH, As::Bearer(&first), None)
            .await
            .status,
        StatusCode::OK
    );

    call(
        &instance,
        Method::POST,
        "/api/v1/item/create",
        As::Bearer(&first),
        Some(student("Gone")),
    )
    .await;
    let (other, _) = sign_up(&instance, "stays@example.org").await;
    call(
        &instance,
        Method::POST,
        "/api/v1/item/create",
        As::Bearer(&other),
        Some(student("Stays")),
    )
    .await;

    let refused = call(
        &instance,
        Method::POST,
        "/api/auth/delete-user",
        As::Bearer(&first),
        Some(json!({"password": "correct horse"})),
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let deleted = call(
        &instance,
        Method::POST,
        "/api/auth/delete-user",
        As::Bearer(&first),
        Some(json!({"password": "battery staple"})),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.body["success"], true);
    assert_eq!(
        call(&instance, Method::GET, FETCH, As::Bearer(&first), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let again = call(
        &instance,
        Method::POST,
        "/api/auth/sign-in/email",
        As::Nobody,
        Some(json!({"email": "p@example.org", "password": "battery staple"})),
    )
    .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        call(&instance, Method::GET, FETCH, As::Bearer(&other), None)
            .await
            .body["meta"]["total"],
        1
    );

    // The deleted user's items are gone from storage, other users' are not.
    instance.stop().await.expect("stop");
    let db = dpg_adapters::sql::SqlDatabase::connect(&format!(
        "sqlite://{}/dpg.db?mode=rwc",
        dir.path().display()
    ))
    .await
    .expect("db");
    let repository = dpg_adapters::sql::SqlItemRepository::new(&db);
    use dpg_core::ports::ItemRepository;
    let filter = dpg_core::model::ItemFilter {
        created_by: Some(user_id),
        ..dpg_core::model::ItemFilter::new("yellow_dot", "student")
    };
    assert_eq!(repository.count(&filter).await.expect("count"), 0);
    let everyone = dpg_core::model::ItemFilter::new("yellow_dot", "student");
    assert_eq!(repository.count(&everyone).await.expect("count"), 1);
}

#[tokio::test]
async fn admin_only_routes_and_closed_sign_up() {
    let (instance, _dir) = with_auth(&[
        ("AUTH_SIGNUP_ENABLED", "false"),
        ("DPG_ADMIN_EMAIL", "root@example.org"),
        ("DPG_ADMIN_PASSWORD", "root password"),
    ])
    .await;
    let closed = call(
        &instance,
        Method::POST,
        "/api/auth/sign-up/email",
        As::Nobody,
        Some(json!({"name": "U", "email": "u@example.org", "password": "correct horse"})),
    )
    .await;
    assert_eq!(closed.status, StatusCode::FORBIDDEN);
    assert_eq!(closed.body["code"], "SIGNUP_DISABLED");

    let admin = call(
        &instance,
        Method::POST,
        "/api/auth/sign-in/email",
        As::Nobody,
        Some(json!({"email": "root@example.org", "password": "root password"})),
    )
    .await;
    assert_eq!(admin.body["user"]["role"], "admin");
    let admin_token = admin.body["token"].as_str().expect("token").to_string();
    let opened = call(
        &instance,
        Method::POST,
        "/api/auth/sign-up/email",
        As::Bearer(&admin_token),
        Some(json!({"name": "U", "email": "u@example.org", "password": "correct horse"})),
    )
    .await;
    assert_eq!(opened.status, StatusCode::OK, "{}", opened.body);
    let user_token = opened.body["token"].as_str().expect("token").to_string();

    let refused = call(
        &instance,
        Method::POST,
        "/api/v1/network/refetch_schemas",
        As::Bearer(&user_token),
        None,
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.body["error"], "ADMIN_REQUIRED");
    let anonymous = call(
        &instance,
        Method::POST,
        "/api/v1/network/refetch_schemas",
        As::Nobody,
        None,
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let reloaded = call(
        &instance,
        Method::POST,
        "/api/v1/network/refetch_schemas",
        As::Bearer(&admin_token),
        None,
    )
    .await;
    assert_eq!(reloaded.status, StatusCode::OK);
    assert_eq!(reloaded.body["refreshed"], true);

    for (method, path) in [
        (Method::GET, "/api/v1/admin/outbox"),
        (Method::POST, "/api/v1/admin/outbox/redrive"),
    ] {
        let refused = call(
            &instance,
            method.clone(),
            path,
            As::Bearer(&user_token),
            None,
        )
        .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(refused.body["error"], "ADMIN_REQUIRED");
        let anonymous = call(&instance, method.clone(), path, As::Nobody, None).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{path}");
        let admitted = call(&instance, method, path, As::Bearer(&admin_token), None).await;
        assert_eq!(admitted.status, StatusCode::OK, "{path}: {}", admitted.body);
    }
}

#[tokio::test]
async fn sign_in_attempts_are_rate_limited() {
    let (instance, _dir) = with_auth(&[]).await;
    sign_up(&instance, "r@example.org").await;
    let attempt = || {
        call(
            &instance,
            Method::POST,
            "/api/auth/sign-in/email",
            As::Nobody,
            Some(json!({"email": "r@example.org", "password": "wrong password"})),
        )
    };
    let mut limited = None;
    for _ in 0..20 {
        let reply = attempt().await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(reply);
            break;
        }
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let limited = limited.expect("the account's sign-in budget runs out");
    assert_eq!(limited.body["code"], "RATE_LIMITED");
    let retry_after: u64 = limited.headers[header::RETRY_AFTER]
        .to_str()
        .expect("header")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Even the right password waits for the window.
    let right = call(
        &instance,
        Method::POST,
        "/api/auth/sign-in/email",
        As::Nobody,
        Some(json!({"email": "r@example.org", "password": "correct horse"})),
    )
    .await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn cors_allows_configured_and_network_origins_and_refuses_others_cleanly() {
    let (instance, _dir) = with_auth(&[("ALLOWED_ORIGINS", "https://ui.example.org")]).await;
    let preflight = |origin: &str| {
        instance
            .client
            .request(Method::OPTIONS, instance.url("/api/v1/item/create"))
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "content-type, x-api-key",
            )
            .send()
    };
    let allowed = preflight("https://ui.example.org").await.expect("sent");
    assert_eq!(allowed.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        allowed.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://ui.example.org"
    );
    assert_eq!(
        allowed.headers()[header::ACCESS_CONTROL_ALLOW_CREDENTIALS],
        "true"
    );
    assert_eq!(
        allowed.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS],
        "content-type, x-api-key"
    );
    // The bundled network lists this instance at http://127.0.0.1:2742.
    let network = preflight("http://127.0.0.1:2742").await.expect("sent");
    assert_eq!(network.status(), StatusCode::NO_CONTENT);

    let refused = preflight("https://evil.example.com").await.expect("sent");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"], "CORS_ORIGIN_NOT_ALLOWED");
    let simple = instance
        .client
        .get(instance.url("/"))
        .header(header::ORIGIN, "https://evil.example.com")
        .send()
        .await
        .expect("sent");
    assert_eq!(simple.status(), StatusCode::FORBIDDEN);
    let plain_options = instance
        .client
        .request(Method::OPTIONS, instance.url("/"))
        .send()
        .await
        .expect("sent");
    assert_eq!(plain_options.status(), StatusCode::BAD_REQUEST);

    let from_ui = instance
        .client
        .get(instance.url("/"))
        .header(header::ORIGIN, "https://ui.example.org")
        .send()
        .await
        .expect("sent");
    assert_eq!(from_ui.status(), StatusCode::OK);
    assert_eq!(
        from_ui.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://ui.example.org"
    );
}

#[tokio::test]
async fn production_refuses_the_development_switch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let refused = TestInstance::start(
        dir.path().to_path_buf(),
        InstanceEnv::new()
            .set("INSTANCE_ENV", "production")
            .set("API_DOMAIN", "https://api.example.org")
            .set("AUTH_MIDDLEWARE_ENABLED", "false"),
    )
    .await;
    let message = format!("{:#}", refused.err().expect("refused"));
    assert!(message.contains("AUTH_MIDDLEWARE_ENABLED"), "{message}");
}

#[tokio::test]
async fn development_identity_still_uses_real_accounts_for_account_routes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let instance = TestInstance::start(dir.path().to_path_buf(), InstanceEnv::new())
        .await
        .expect("boots");
    assert_eq!(
        call(&instance, Method::GET, FETCH, As::Nobody, None)
            .await
            .status,
        StatusCode::OK
    );
    let keys = call(
        &instance,
        Method::GET,
        "/api/auth/api-key/list",
        As::Nobody,
        None,
    )
    .await;
    assert_eq!(keys.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sessions_and_keys_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = || InstanceEnv::new().set("AUTH_MIDDLEWARE_ENABLED", "true");
    let first = TestInstance::start(dir.path().to_path_buf(), env())
        .await
        .expect("boots");
    let (token, _) = sign_up(&first, "s@example.org").await;
    let created = call(
        &first,
        Method::POST,
        "/api/auth/api-key/create",
        As::Bearer(&token),
        Some(json!({"name": "ci"})),
    )
    .await;
    let key = created.body["key"].as_str().expect("key").to_string();
    first.stop().await.expect("stop");

    let second = TestInstance::start(dir.path().to_path_buf(), env())
        .await
        .expect("boots again");
    let session = call(
        &second,
        Method::GET,
        "/api/auth/get-session",
        As::Bearer(&token),
        None,
    )
    .await;
    assert_eq!(session.body["user"]["email"], "s@example.org");
    assert_eq!(
        call(&second, Method::GET, FETCH, As::Key(&key), None)
            .await
            .status,
        StatusCode::OK
    );
}
