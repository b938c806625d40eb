//! Hostile input against every route, as tables of cases grouped by the OWASP API Security
//! Top 10 (2023). Each case names its category, the request and the expected answer (a 4xx
//! with its machine code, or an empty page where the caller may only see nothing). For every
//! case the test also checks that the body is one of the documented error envelopes, that it
//! leaks no internals (SQL, driver names, file paths, panics), and that nothing was stored or
//! changed: the callers' own views through the API and every table of the instances'
//! databases are compared before and after.
//!
//! Two tables: one instance with accounts (authentication on, real sessions and API keys)
//! and a signed three-instance network (`peer_auth: required`, development identity) for the
//! peer routes, network reads, actions and events. Beside them, the checks that are not one
//! request each: rate limits (429 with `Retry-After`), server-owned fields sent on creates,
//! schema and registry URLs on private addresses (refused, and a listener there is never
//! called), hostile peer answers (the read succeeds, the peer is `invalid`, nothing of its
//! answer is served), and production refusing to run without authentication.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dpg_app::Listening;
use dpg_core::peer_auth::SigningKey;
use dpg_core::services::PeerSigner;
use dpg_tests::support::fault_proxy::Fault;
use dpg_tests::support::instance::{InstanceEnv, TestInstance, dev_network};
use dpg_tests::support::network::{
    COUNT_LOCAL, FETCH_LOCAL, NETWORK, NETWORK_FETCH, Reply, STUDENT, TUTOR, TestNetwork,
};
use futures::FutureExt;
use reqwest::{Method, header};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------------------
// The vocabulary of the tables
// ---------------------------------------------------------------------------------------

/// OWASP API Security Top 10, 2023 edition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Owasp {
    /// API1: broken object level authorization.
    Bola,
    /// API2: broken authentication.
    Authentication,
    /// API3: broken object property level authorization (mass assignment).
    Property,
    /// API4: unrestricted resource consumption.
    Resources,
    /// API5: broken function level authorization.
    Function,
    /// API7: server side request forgery.
    Ssrf,
    /// API8: security misconfiguration.
    Misconfiguration,
    /// API10: unsafe consumption of APIs.
    UnsafeConsumption,
}

impl fmt::Display for Owasp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Owasp::Bola => "API1:2023 BOLA",
            Owasp::Authentication => "API2:2023 broken authentication",
            Owasp::Property => "API3:2023 property level authorization",
            Owasp::Resources => "API4:2023 resource consumption",
            Owasp::Function => "API5:2023 function level authorization",
            Owasp::Ssrf => "API7:2023 SSRF",
            Owasp::Misconfiguration => "API8:2023 misconfiguration",
            Owasp::UnsafeConsumption => "API10:2023 unsafe consumption",
        })
    }
}

/// How a request proves who it is.
#[derive(Debug, Clone)]
enum Who {
    Nobody,
    Bearer(String),
    Cookie(String),
    Key(String),
    /// The development identity (`x-dev-user-id`).
    Dev(String),
}

#[derive(Debug, Clone)]
enum Body {
    Empty,
    Json(Value),
    /// Exact bytes with this content type.
    Raw(&'static str, Vec<u8>),
}

#[derive(Debug, Clone)]
struct Req {
    method: Method,
    path: String,
    who: Who,
    headers: Vec<(String, String)>,
    body: Body,
}

impl Req {
    fn new(method: Method, path: impl Into<String>, who: &Who) -> Req {
        Req {
            method,
            path: path.into(),
            who: who.clone(),
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    fn get(path: impl Into<String>, who: &Who) -> Req {
        Req::new(Method::GET, path, who)
    }

    fn post(path: impl Into<String>, who: &Who, body: Value) -> Req {
        Req::new(Method::POST, path, who).json(body)
    }

    fn patch(path: impl Into<String>, who: &Who, body: Value) -> Req {
        Req::new(Method::PATCH, path, who).json(body)
    }

    fn delete(path: impl Into<String>, who: &Who) -> Req {
        Req::new(Method::DELETE, path, who)
    }

    fn json(mut self, body: Value) -> Req {
        self.body = Body::Json(body);
        self
    }

    fn raw(mut self, content_type: &'static str, bytes: impl Into<Vec<u8>>) -> Req {
        self.body = Body::Raw(content_type, bytes.into());
        self
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Req {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// What a case must answer.
#[derive(Debug, Clone)]
enum Expect {
    /// This status and machine code (in `error` or `code`).
    Refused(u16, &'static str),
    /// 200 with an empty page: the caller sees nothing that is not theirs.
    EmptyPage,
    /// 200 `null`: Better Auth's answer to a session lookup without a valid session.
    NoSession,
    /// This success status for a request that must change nothing (e.g. signing out a
    /// session that does not exist).
    Harmless(u16),
}

#[derive(Debug, Clone)]
struct Case {
    name: String,
    owasp: Owasp,
    req: Req,
    expect: Expect,
}

fn case(owasp: Owasp, name: impl Into<String>, req: Req, status: u16, code: &'static str) -> Case {
    Case {
        name: name.into(),
        owasp,
        req,
        expect: Expect::Refused(status, code),
    }
}

fn empty_page(owasp: Owasp, name: impl Into<String>, req: Req) -> Case {
    Case {
        name: name.into(),
        owasp,
        req,
        expect: Expect::EmptyPage,
    }
}

fn no_session(owasp: Owasp, name: impl Into<String>, req: Req) -> Case {
    Case {
        name: name.into(),
        owasp,
        req,
        expect: Expect::NoSession,
    }
}

/// One HTTP answer: the raw text (for the leak check) and the JSON it parses to.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: header::HeaderMap,
    text: String,
    body: Value,
}

async fn send(client: &reqwest::Client, base: &str, req: &Req) -> Answer {
    let mut request = client.request(req.method.clone(), format!("{base}{}", req.path));
    request = match &req.who {
        Who::Nobody => request,
        Who::Bearer(token) => request.bearer_auth(token),
        Who::Cookie(token) => {
            request.header(header::COOKIE, format!("better-auth.session_token={token}"))
        }
        Who::Key(key) => request.header("x-api-key", key),
        Who::Dev(user) => request.header("x-dev-user-id", user),
    };
    for (name, value) in &req.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    request = match &req.body {
        Body::Empty => request,
        Body::Json(value) => request.json(value),
        Body::Raw(content_type, bytes) => request
            .header(header::CONTENT_TYPE, *content_type)
            .body(bytes.clone()),
    };
    let response = request.send().await.expect("the instance answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("an answer body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        text,
        body,
    }
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Answer {
        let text = match &reply.body {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        Answer {
            status: reply.status,
            headers: reply.headers,
            text,
            body: reply.body,
        }
    }
}

/// Text that must never reach a client: SQL, database drivers, source paths, panics and
/// backtraces, the instance's own files.
const LEAKS: &[&str] = &[
    "SELECT ",
    "INSERT INTO",
    "UPDATE \"",
    "DELETE FROM",
    " WHERE ",
    "sqlx",
    "sea_orm",
    "sea-orm",
    "SqliteError",
    "sqlite3",
    "SQLITE_",
    "PgDatabaseError",
    "postgres",
    "constraint failed",
    "syntax error",
    "panicked",
    "backtrace",
    "RUST_BACKTRACE",
    "src/",
    ".rs:",
    "thread '",
    "/tmp/",
    "/work/",
    "/home/",
    "dpg.db",
];

fn assert_no_leak(context: &str, text: &str, private: &[&str]) {
    for leak in LEAKS.iter().chain(private) {
        assert!(
            !text.contains(leak),
            "{context}: the body leaks {leak:?}: {text}"
        );
    }
}

/// Status, machine code, envelope and the leak check of one answer.
fn assert_answer(context: &str, answer: &Answer, expect: &Expect, private: &[&str]) {
    assert_no_leak(context, &answer.text, private);
    match expect {
        Expect::Refused(status, code) => {
            assert_eq!(
                answer.status, *status,
                "{context}: status; body {}",
                answer.text
            );
            assert_error_envelope(context, answer);
            let codes = [&answer.body["error"], &answer.body["code"]];
            assert!(
                codes.iter().any(|c| c.as_str() == Some(code)),
                "{context}: expected the code {code}: {}",
                answer.text
            );
        }
        Expect::EmptyPage => {
            assert_eq!(answer.status, 200, "{context}: {}", answer.text);
            assert_eq!(
                answer.body["meta"]["total"], 0,
                "{context}: {}",
                answer.text
            );
            let lists: Vec<&Value> = answer
                .body
                .as_object()
                .map(|o| o.values().filter(|v| v.is_array()).collect())
                .unwrap_or_default();
            assert!(
                !lists.is_empty()
                    && lists
                        .iter()
                        .all(|l| l.as_array().is_some_and(Vec::is_empty)),
                "{context}: {}",
                answer.text
            );
        }
        Expect::Harmless(status) => {
            assert_eq!(answer.status, *status, "{context}: {}", answer.text);
        }
        Expect::NoSession => {
            assert_eq!(answer.status, 200, "{context}: {}", answer.text);
            assert_eq!(answer.body, Value::Null, "{context}: {}", answer.text);
        }
    }
}

/// One of the documented error shapes: `{error, message}`, `{code, error, message}`,
/// `{statusCode, code, error, message}` or Better Auth's `{code, message}`; never a 5xx.
fn assert_error_envelope(context: &str, answer: &Answer) {
    assert!(
        answer.status < 500,
        "{context}: a server error: {}",
        answer.text
    );
    let content_type = answer
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{context}: content type {content_type:?}"
    );
    let body = answer
        .body
        .as_object()
        .unwrap_or_else(|| panic!("{context}: not a JSON object: {}", answer.text));
    assert!(
        body.get("message")
            .and_then(Value::as_str)
            .is_some_and(|m| !m.is_empty()),
        "{context}: a human message: {}",
        answer.text
    );
    let machine = ["error", "code"]
        .iter()
        .filter_map(|k| body.get(*k))
        .all(Value::is_string);
    assert!(
        machine && (body.contains_key("error") || body.contains_key("code")),
        "{context}: a machine code: {}",
        answer.text
    );
    if let Some(status) = body.get("statusCode") {
        assert_eq!(status, answer.status, "{context}: statusCode");
    }
}

// ---------------------------------------------------------------------------------------
// What is stored
// ---------------------------------------------------------------------------------------

/// A read-only view of an instance's SQLite database.
struct Storage {
    db: DatabaseConnection,
}

/// Tables whose rows legitimately change when a credential is merely used (session expiry
/// slides, key usage is recorded): compared by row count only.
const TOUCHED_BY_USE: &[&str] = &["sessions", "api_keys"];

impl Storage {
    async fn open(data_dir: &Path) -> Storage {
        let url = format!("sqlite://{}?mode=ro", data_dir.join("dpg.db").display());
        Storage {
            db: Database::connect(&url)
                .await
                .expect("the instance's database"),
        }
    }

    async fn strings(&self, sql: &str, column: &str) -> Vec<String> {
        let rows = self
            .db
            .query_all_raw(Statement::from_string(DbBackend::Sqlite, sql))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.iter()
            .map(|row| {
                row.try_get::<Option<String>>("", column)
                    .expect("a text column")
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Every table: its rows rendered with `quote()`, sorted (or only their number for the
    /// tables that using a credential touches).
    async fn snapshot(&self) -> BTreeMap<String, Vec<String>> {
        let tables = self
            .strings(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' ORDER BY name",
                "name",
            )
            .await;
        let mut snapshot = BTreeMap::new();
        for table in tables {
            let rows = if TOUCHED_BY_USE.contains(&table.as_str()) {
                self.strings(
                    &format!("SELECT CAST(COUNT(*) AS TEXT) AS v FROM \"{table}\""),
                    "v",
                )
                .await
            } else {
                let columns = self
                    .strings(
                        &format!("SELECT name FROM pragma_table_info('{table}')"),
                        "name",
                    )
                    .await;
                let rendered = columns
                    .iter()
                    .map(|c| format!("quote(\"{c}\")"))
                    .collect::<Vec<_>>()
                    .join(" || '|' || ");
                self.strings(
                    &format!("SELECT {rendered} AS v FROM \"{table}\" ORDER BY 1"),
                    "v",
                )
                .await
            };
            snapshot.insert(table, rows);
        }
        snapshot
    }
}

fn assert_unchanged<T: PartialEq + fmt::Debug>(context: &str, before: &T, after: &T) {
    assert!(
        before == after,
        "{context}: something changed\nbefore: {before:#?}\nafter: {after:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// A listener that must never be called
// ---------------------------------------------------------------------------------------

/// A loopback listener that counts connections: an SSRF target.
struct Trap {
    addr: SocketAddr,
    connections: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Trap {
    async fn start() -> Trap {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("address");
        let connections = Arc::new(AtomicU64::new(0));
        let counted = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        });
        Trap {
            addr,
            connections,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------
// One instance with accounts
// ---------------------------------------------------------------------------------------

const CREATE: &str = "/api/v1/item/create";
const FETCH: &str = "/api/v1/item/fetch?item_network=yellow_dot&item_domain=student";
const REFETCH: &str = "/api/v1/network/refetch_schemas";
const OUTBOX: &str = "/api/v1/admin/outbox";
const REDRIVE: &str = "/api/v1/admin/outbox/redrive";
const BODY_LIMIT: usize = 64 * 1024;
const KEY_WRITES_PER_HOUR: u32 = 3;

fn student(name: &str) -> Value {
    json!({"item_network": NETWORK, "item_domain": STUDENT, "item_type": "profile_1.0",
           "item_state": {"name": name, "grade": "10", "city": "Pune"}})
}

/// The bundled development document with this instance as the only member.
fn own_document(url: &str) -> Value {
    let mut document = dev_network();
    if let Some(instances) = document["instances"].as_array_mut() {
        for instance in instances {
            instance["instance_url"] = json!(url);
        }
    }
    document
}

/// `[[[...]]]` nested `depth` levels.
fn nested_arrays(depth: usize) -> Vec<u8> {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
}

/// A create body whose `item_state` is nested `depth` objects deep.
fn deep_item(depth: usize) -> Vec<u8> {
    let mut state = json!("x");
    for _ in 0..depth {
        state = json!({ "a": state });
    }
    let mut body = student("Deep");
    body["item_state"]["nested"] = state;
    body.to_string().into_bytes()
}

/// A create body of `bytes` bytes (a long name).
fn big_item(bytes: usize) -> Vec<u8> {
    student(&"x".repeat(bytes)).to_string().into_bytes()
}

/// `&item_state[k0]=v&item_state[k1]=v...`
fn state_filter(leaves: usize) -> String {
    (0..leaves)
        .map(|k| format!("&item_state[k{k}]=v"))
        .collect()
}

struct Accounts {
    admin: String,
    alice: String,
    alice_id: String,
    bob: String,
    bob_id: String,
    /// Signed up claiming `role: admin`.
    mallory: String,
    alice_key: String,
    alice_key_id: String,
    bob_key: String,
    /// A key of bob's with the small write budget left untouched until the rate-limit case.
    burst_key: String,
    revoked_key: String,
    expired_key: String,
    /// Alice's item.
    item: Value,
}

impl Accounts {
    fn item_id(&self) -> &str {
        self.item["item_id"].as_str().expect("item id")
    }

    fn item_path(&self) -> String {
        format!("/api/v1/item/{}", self.item_id())
    }

    /// Alice's session token with its last character changed.
    fn forged_session(&self) -> String {
        let (kept, last) = self.alice.split_at(self.alice.len() - 1);
        format!("{kept}{}", if last == "x" { "y" } else { "x" })
    }

    /// A key of the right shape and prefix whose secret is wrong.
    fn forged_key(&self) -> String {
        let (prefix, secret) = self.alice_key.split_at(self.alice_key.len() - 10);
        let flipped: String = secret
            .chars()
            .map(|c| if c == 'A' { 'B' } else { 'A' })
            .collect();
        format!("{prefix}{flipped}")
    }
}

struct AuthInstance {
    instance: TestInstance,
    storage: Storage,
    document_path: PathBuf,
    document: Value,
    _data: TempDir,
    _documents: TempDir,
}

impl AuthInstance {
    async fn start() -> AuthInstance {
        let listener = Listening::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("a loopback port");
        let url = format!("http://{}", listener.local_addr);
        let documents = tempfile::tempdir().expect("tempdir");
        let document_path = documents.path().join("network.json");
        let document = own_document(&url);
        std::fs::write(&document_path, document.to_string()).expect("document written");
        let data = tempfile::tempdir().expect("tempdir");
        let env = InstanceEnv::new()
            .set("AUTH_MIDDLEWARE_ENABLED", "true")
            .set("INSTANCE_NAME", "hostile")
            .set("DPG_ADMIN_EMAIL", "root@example.org")
            .set("DPG_ADMIN_PASSWORD", "root password")
            .set("API_KEY_WRITES_PER_HOUR", KEY_WRITES_PER_HOUR.to_string())
            .set("BODY_LIMIT_BYTES", BODY_LIMIT.to_string())
            .set("SCHEMA_FETCH_ALLOW_PRIVATE", "false")
            .set("ALLOWED_ORIGINS", "https://ui.example.org")
            .set(
                "NETWORK_CONFIG_LOCAL_FILE",
                document_path.display().to_string(),
            );
        let instance = TestInstance::start_on(listener, data.path().to_path_buf(), env)
            .await
            .expect("boots");
        let storage = Storage::open(data.path()).await;
        AuthInstance {
            instance,
            storage,
            document_path,
            document,
            _data: data,
            _documents: documents,
        }
    }

    async fn send(&self, req: &Req) -> Answer {
        send(&self.instance.client, &self.instance.local_url, req).await
    }

    /// Sends a request that must succeed with `status`; returns its body.
    async fn expect(&self, req: Req, status: u16) -> Value {
        let answer = self.send(&req).await;
        assert_eq!(
            answer.status, status,
            "{} {}: {}",
            req.method, req.path, answer.text
        );
        answer.body
    }

    async fn sign_up(&self, body: Value) -> (String, String) {
        let body = self
            .expect(
                Req::post("/api/auth/sign-up/email", &Who::Nobody, body),
                200,
            )
            .await;
        (
            body["token"].as_str().expect("token").to_string(),
            body["user"]["id"].as_str().expect("id").to_string(),
        )
    }

    async fn create_key(&self, session: &str, body: Value) -> (String, String) {
        let body = self
            .expect(
                Req::post(
                    "/api/auth/api-key/create",
                    &Who::Bearer(session.to_string()),
                    body,
                ),
                200,
            )
            .await;
        (
            body["key"].as_str().expect("key").to_string(),
            body["id"].as_str().expect("id").to_string(),
        )
    }

    async fn accounts(&self) -> Accounts {
        let admin = self
            .expect(
                Req::post(
                    "/api/auth/sign-in/email",
                    &Who::Nobody,
                    json!({"email": "root@example.org", "password": "root password"}),
                ),
                200,
            )
            .await["token"]
            .as_str()
            .expect("token")
            .to_string();
        let (alice, alice_id) = self
            .sign_up(
                json!({"name": "Alice", "email": "alice@example.org", "password": "correct horse"}),
            )
            .await;
        let (bob, bob_id) = self
            .sign_up(
                json!({"name": "Bob", "email": "bob@example.org", "password": "battery staple"}),
            )
            .await;
        // Mass assignment at sign-up: the claimed role, verification and id are ignored.
        let claimed = self
            .expect(
                Req::post(
                    "/api/auth/sign-up/email",
                    &Who::Nobody,
                    json!({"name": "Mallory", "email": "mallory@example.org",
                           "password": "mallory password", "role": "admin",
                           "emailVerified": true, "banned": false, "id": "root",
                           "createdAt": "2000-01-01T00:00:00.000Z"}),
                ),
                200,
            )
            .await;
        let user = &claimed["user"];
        assert_eq!(user["role"], "user", "{claimed}");
        assert_eq!(user["emailVerified"], false, "{claimed}");
        assert_ne!(user["id"], "root", "{claimed}");
        assert_ne!(user["createdAt"], "2000-01-01T00:00:00.000Z", "{claimed}");
        let mallory = claimed["token"].as_str().expect("token").to_string();

        // Mass assignment of a key's owner: the key is the caller's.
        let (alice_key, alice_key_id) = self
            .create_key(
                &alice,
                json!({"name": "ci", "userId": bob_id, "user_id": bob_id, "referenceId": bob_id}),
            )
            .await;
        let listed = self
            .expect(
                Req::get("/api/auth/api-key/list", &Who::Bearer(bob.clone())),
                200,
            )
            .await;
        assert_eq!(listed["total"], 0, "{listed}");
        let (bob_key, _) = self.create_key(&bob, json!({"name": "bob"})).await;
        let (burst_key, _) = self.create_key(&bob, json!({"name": "burst"})).await;
        let (revoked_key, revoked_id) = self.create_key(&alice, json!({"name": "old"})).await;
        self.expect(
            Req::post(
                "/api/auth/api-key/delete",
                &Who::Bearer(alice.clone()),
                json!({"keyId": revoked_id}),
            ),
            200,
        )
        .await;
        let (expired_key, _) = self
            .create_key(&alice, json!({"name": "short", "expiresIn": 1}))
            .await;

        let created = self
            .expect(
                Req::post(CREATE, &Who::Bearer(alice.clone()), student("Alice")),
                201,
            )
            .await;
        self.expect(
            Req::post(CREATE, &Who::Bearer(bob.clone()), student("Bob")),
            201,
        )
        .await;
        let page = self
            .expect(
                Req::get(
                    format!(
                        "{FETCH}&item_id={}",
                        created["item_id"].as_str().expect("id")
                    ),
                    &Who::Bearer(alice.clone()),
                ),
                200,
            )
            .await;
        let item = page["items"][0].clone();
        assert!(item.is_object(), "{page}");
        // The short key expires (its lifetime is one second).
        tokio::time::sleep(Duration::from_millis(1200)).await;
        Accounts {
            admin,
            alice,
            alice_id,
            bob,
            bob_id,
            mallory,
            alice_key,
            alice_key_id,
            bob_key,
            burst_key,
            revoked_key,
            expired_key,
            item,
        }
    }

    /// What the users see of their items and keys, and every table.
    async fn state(&self, accounts: &Accounts) -> (Vec<Value>, BTreeMap<String, Vec<String>>) {
        let mut views = Vec::new();
        for session in [&accounts.alice, &accounts.bob, &accounts.admin] {
            let who = Who::Bearer(session.clone());
            let items = self
                .expect(Req::get(format!("{FETCH}&limit=100"), &who), 200)
                .await;
            views.push(items["items"].clone());
            let keys = self
                .expect(Req::get("/api/auth/api-key/list", &who), 200)
                .await;
            views.push(keys["apiKeys"].clone());
        }
        (views, self.storage.snapshot().await)
    }

    /// Runs every case, each checked for status, code, envelope, leaks and changes.
    async fn run(&self, accounts: &Accounts, cases: &[Case], private: &[&str]) {
        let mut failures = Vec::new();
        for case in cases {
            let context = format!("[{}] {}", case.owasp, case.name);
            let checked = AssertUnwindSafe(async {
                let before = self.state(accounts).await;
                let answer = self.send(&case.req).await;
                assert_answer(&context, &answer, &case.expect, private);
                assert_cors_closed(&context, &case.req, &answer);
                let after = self.state(accounts).await;
                assert_unchanged(&context, &before, &after);
            })
            .catch_unwind()
            .await;
            if checked.is_err() {
                failures.push(context);
            }
        }
        assert_all_passed(&failures, cases.len());
    }
}

/// Every case runs even when an earlier one fails; the failures are listed at the end (each
/// one's message is printed as it happens).
fn assert_all_passed(failures: &[String], total: usize) {
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// An origin that is not allowed never gets an `Access-Control-Allow-Origin`.
fn assert_cors_closed(context: &str, req: &Req, answer: &Answer) {
    let origin = req
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("origin"));
    if let Some((_, origin)) = origin
        && origin != "https://ui.example.org"
    {
        assert!(
            answer
                .headers
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .is_none(),
            "{context}: {origin} was allowed: {:?}",
            answer.headers
        );
    }
}

/// The table of the instance with accounts.
fn account_cases(a: &Accounts, trap: &Trap) -> Vec<Case> {
    use Owasp::*;
    let nobody = Who::Nobody;
    let alice = Who::Bearer(a.alice.clone());
    let alice_key = Who::Key(a.alice_key.clone());
    let bob = Who::Bearer(a.bob.clone());
    let bob_key = Who::Key(a.bob_key.clone());
    let forged_key = Who::Key(a.forged_key());
    let item = a.item_path();
    let id = a.item_id().to_string();
    let state = json!({"item_state": {"name": "Mine now", "grade": "9", "city": "Goa"}});
    let unknown_item = format!("/api/v1/item/{}", uuid::Uuid::new_v4());
    let mut cases = vec![
        // API1: another user's object, by every route that takes one.
        case(Bola, "Y patches X's item", Req::patch(&item, &bob, state.clone()), 404, "ITEM_NOT_FOUND_OR_FORBIDDEN"),
        case(Bola, "Y deletes X's item", Req::delete(&item, &bob), 404, "ITEM_NOT_FOUND_OR_FORBIDDEN"),
        case(Bola, "Y patches X's item with an API key", Req::patch(&item, &bob_key, state.clone()), 404, "ITEM_NOT_FOUND_OR_FORBIDDEN"),
        case(Bola, "Y deletes X's item with an API key", Req::delete(&item, &bob_key), 404, "ITEM_NOT_FOUND_OR_FORBIDDEN"),
        case(Bola, "Y claims to be X with the development header", Req::delete(&item, &bob).header("x-dev-user-id", &a.alice_id), 404, "ITEM_NOT_FOUND_OR_FORBIDDEN"),
        case(Bola, "Y patches an item that does not exist", Req::patch(&unknown_item, &bob, state.clone()), 404, "ITEM_NOT_FOUND_OR_FORBIDDEN"),
        empty_page(Bola, "Y fetches X's item by id", Req::get(format!("{FETCH}&item_id={id}"), &bob)),
        empty_page(Bola, "Y fetches X's item by state", Req::get(format!("{FETCH}&item_state[name]=Alice"), &bob)),
        empty_page(Bola, "Y fetches X's item by key, by id", Req::get(format!("{FETCH}&item_id={id}"), &bob_key)),
        empty_page(Bola, "Y fetches with a development header naming X", Req::get(format!("{FETCH}&item_id={id}"), &bob).header("x-dev-user-id", &a.alice_id)),
        case(Bola, "Y revokes X's API key", Req::post("/api/auth/api-key/delete", &bob, json!({"keyId": a.alice_key_id})), 404, "KEY_NOT_FOUND"),
        // API2: missing, forged, revoked and expired credentials on every protected route.
        case(Authentication, "create without credentials", Req::post(CREATE, &nobody, student("A")), 401, "UNAUTHORIZED"),
        case(Authentication, "create without credentials, invalid body", Req::post(CREATE, &nobody, json!({"x": 1})), 401, "UNAUTHORIZED"),
        case(Authentication, "fetch without credentials", Req::get(FETCH, &nobody), 401, "UNAUTHORIZED"),
        case(Authentication, "patch without credentials", Req::patch(&item, &nobody, state.clone()), 401, "UNAUTHORIZED"),
        case(Authentication, "delete without credentials", Req::delete(&item, &nobody), 401, "UNAUTHORIZED"),
        case(Authentication, "refetch without credentials", Req::new(Method::POST, REFETCH, &nobody), 401, "UNAUTHORIZED"),
        case(Authentication, "key creation without credentials", Req::post("/api/auth/api-key/create", &nobody, json!({"name": "x"})), 401, "UNAUTHORIZED"),
        case(Authentication, "key list without credentials", Req::get("/api/auth/api-key/list", &nobody), 401, "UNAUTHORIZED"),
        case(Authentication, "key deletion without credentials", Req::post("/api/auth/api-key/delete", &nobody, json!({"keyId": a.alice_key_id})), 401, "UNAUTHORIZED"),
        case(Authentication, "password change without credentials", Req::post("/api/auth/change-password", &nobody, json!({"currentPassword": "correct horse", "newPassword": "new password!"})), 401, "UNAUTHORIZED"),
        case(Authentication, "account deletion without credentials", Req::post("/api/auth/delete-user", &nobody, json!({"password": "correct horse"})), 401, "UNAUTHORIZED"),
        case(Authentication, "the development header alone", Req::post(CREATE, &Who::Dev(a.alice_id.clone()), student("Dev")), 401, "UNAUTHORIZED"),
        case(Authentication, "forged API key on create", Req::post(CREATE, &forged_key, student("F")), 403, "INVALID_API_KEY"),
        case(Authentication, "forged API key on fetch", Req::get(FETCH, &forged_key), 403, "INVALID_API_KEY"),
        case(Authentication, "forged API key on patch", Req::patch(&item, &forged_key, state.clone()), 403, "INVALID_API_KEY"),
        case(Authentication, "forged API key on delete", Req::delete(&item, &forged_key), 403, "INVALID_API_KEY"),
        case(Authentication, "forged API key on refetch", Req::new(Method::POST, REFETCH, &forged_key), 403, "INVALID_API_KEY"),
        case(Authentication, "SQL as an API key", Req::get(FETCH, &Who::Key("' OR '1'='1' --".into())), 403, "INVALID_API_KEY"),
        case(Authentication, "a 6 KB API key", Req::get(FETCH, &Who::Key("k".repeat(6000))), 403, "INVALID_API_KEY"),
        case(Authentication, "revoked API key", Req::post(CREATE, &Who::Key(a.revoked_key.clone()), student("R")), 403, "INVALID_API_KEY"),
        case(Authentication, "revoked API key on delete", Req::delete(&item, &Who::Key(a.revoked_key.clone())), 403, "INVALID_API_KEY"),
        case(Authentication, "expired API key", Req::post(CREATE, &Who::Key(a.expired_key.clone()), student("E")), 403, "INVALID_API_KEY"),
        case(Authentication, "a bad key wins over a good session", Req::post(CREATE, &forged_key, student("B")).header("authorization", format!("Bearer {}", a.alice)), 403, "INVALID_API_KEY"),
        case(Authentication, "forged bearer token", Req::post(CREATE, &Who::Bearer("not-a-session".into()), student("F")), 401, "UNAUTHORIZED"),
        case(Authentication, "forged bearer of the right length", Req::patch(&item, &Who::Bearer(a.forged_session()), state.clone()), 401, "UNAUTHORIZED"),
        case(Authentication, "forged session cookie", Req::delete(&item, &Who::Cookie("forged".into())), 401, "UNAUTHORIZED"),
        case(Authentication, "forged signed cookie value", Req::delete(&item, &Who::Cookie(format!("{}.signature", a.forged_session()))), 401, "UNAUTHORIZED"),
        case(Authentication, "a 6 KB bearer token", Req::get(FETCH, &Who::Bearer("t".repeat(6000))), 401, "UNAUTHORIZED"),
        no_session(Authentication, "session lookup with a forged bearer", Req::get("/api/auth/get-session", &Who::Bearer(a.forged_session()))),
        no_session(Authentication, "session lookup with a forged cookie", Req::get("/api/auth/get-session", &Who::Cookie("forged.signature".into()))),
        Case { name: "sign-out of a forged session ends nothing".into(), owasp: Authentication, req: Req::new(Method::POST, "/api/auth/sign-out", &Who::Bearer(a.forged_session())), expect: Expect::Harmless(200) },
        case(Authentication, "sign-in with a wrong password", Req::post("/api/auth/sign-in/email", &nobody, json!({"email": "alice@example.org", "password": "wrong password"})), 401, "INVALID_EMAIL_OR_PASSWORD"),
        case(Authentication, "sign-in of an unknown account answers alike", Req::post("/api/auth/sign-in/email", &nobody, json!({"email": "nobody@example.org", "password": "wrong password"})), 401, "INVALID_EMAIL_OR_PASSWORD"),
        case(Authentication, "sign-in with SQL as the e-mail", Req::post("/api/auth/sign-in/email", &nobody, json!({"email": "' OR 1=1 --", "password": "x' OR '1'='1"})), 401, "INVALID_EMAIL_OR_PASSWORD"),
        case(Authentication, "sign-up over an existing account, other case", Req::post("/api/auth/sign-up/email", &nobody, json!({"name": "A", "email": "ALICE@example.org", "password": "takeover password"})), 422, "USER_ALREADY_EXISTS"),
        case(Authentication, "password change with a wrong current password", Req::post("/api/auth/change-password", &alice, json!({"currentPassword": "wrong password", "newPassword": "new password!"})), 400, "INVALID_PASSWORD"),
        case(Authentication, "account deletion with a wrong password", Req::post("/api/auth/delete-user", &alice, json!({"password": "wrong password"})), 400, "INVALID_PASSWORD"),
        case(Authentication, "an API key minting a key", Req::post("/api/auth/api-key/create", &alice_key, json!({"name": "nested"})), 403, "UNAUTHORIZED"),
        case(Function, "an API key deleting its account", Req::post("/api/auth/delete-user", &alice_key, json!({"password": "correct horse"})), 403, "UNAUTHORIZED"),
        case(Function, "an API key changing its account's password", Req::post("/api/auth/change-password", &alice_key, json!({"currentPassword": "correct horse", "newPassword": "new password!"})), 403, "UNAUTHORIZED"),
        case(Function, "an API key revoking its account's keys", Req::post("/api/auth/api-key/delete", &alice_key, json!({"keyId": a.alice_key_id})), 403, "UNAUTHORIZED"),
        // API3: properties the server owns.
        case(Property, "patch sets item_id", Req::patch(&item, &alice, json!({"item_id": uuid::Uuid::new_v4()})), 400, "FST_ERR_VALIDATION"),
        case(Property, "patch sets created_by", Req::patch(&item, &alice, json!({"created_by": a.bob_id})), 400, "FST_ERR_VALIDATION"),
        case(Property, "patch sets created_at", Req::patch(&item, &alice, json!({"created_at": "2000-01-01T00:00:00.000Z"})), 400, "FST_ERR_VALIDATION"),
        case(Property, "patch sets updated_at", Req::patch(&item, &alice, json!({"updated_at": "2000-01-01T00:00:00.000Z"})), 400, "FST_ERR_VALIDATION"),
        case(Property, "patch moves the item to another network", Req::patch(&item, &alice, json!({"item_network": "blue_dot"})), 400, "FST_ERR_VALIDATION"),
        case(Property, "patch moves the item to another domain", Req::patch(&item, &alice, json!({"item_domain": TUTOR})), 400, "FST_ERR_VALIDATION"),
        case(Property, "patch changes the item type", Req::patch(&item, &alice, json!({"item_type": "profile_1.1"})), 400, "FST_ERR_VALIDATION"),
        case(Property, "patch changes item_instance_url", Req::patch(&item, &alice, json!({"item_instance_url": "https://evil.example.com"})), 400, "IMMUTABLE_FIELD"),
        case(Property, "patch with created_by next to a valid state", Req::patch(&item, &alice, json!({"item_state": state["item_state"], "created_by": a.bob_id})), 400, "FST_ERR_VALIDATION"),
        case(Property, "patch with a state breaking the schema", Req::patch(&item, &alice, json!({"item_state": {"name": 7, "grade": "9", "city": "Goa", "is_admin": true}})), 400, "INVALID_ITEM_STATE"),
        case(Property, "patch with a null state", Req::patch(&item, &alice, json!({"item_state": null})), 400, "INVALID_ITEM_STATE"),
        case(Property, "create with a state breaking the schema", Req::post(CREATE, &alice, json!({"item_network": NETWORK, "item_domain": STUDENT, "item_type": "profile_1.0", "item_state": {"name": {"$gt": ""}}})), 400, "INVALID_ITEM_STATE"),
        // API4: sizes, depths, bounds and budgets.
        case(Resources, "create body over BODY_LIMIT_BYTES", Req::new(Method::POST, CREATE, &alice).raw("application/json", big_item(BODY_LIMIT + 1)), 413, "FST_ERR_CTP_BODY_TOO_LARGE"),
        case(Resources, "patch body over BODY_LIMIT_BYTES", Req::new(Method::PATCH, &item, &alice).raw("application/json", big_item(BODY_LIMIT * 2)), 413, "FST_ERR_CTP_BODY_TOO_LARGE"),
        case(Resources, "sign-up body over BODY_LIMIT_BYTES", Req::new(Method::POST, "/api/auth/sign-up/email", &nobody).raw("application/json", big_item(BODY_LIMIT + 1)), 413, "FST_ERR_CTP_BODY_TOO_LARGE"),
        case(Resources, "sign-in body over BODY_LIMIT_BYTES", Req::new(Method::POST, "/api/auth/sign-in/email", &nobody).raw("application/json", big_item(BODY_LIMIT + 1)), 413, "FST_ERR_CTP_BODY_TOO_LARGE"),
        case(Resources, "key creation body over BODY_LIMIT_BYTES", Req::new(Method::POST, "/api/auth/api-key/create", &alice).raw("application/json", big_item(BODY_LIMIT + 1)), 413, "FST_ERR_CTP_BODY_TOO_LARGE"),
        case(Resources, "item state nested deeper than JSON_MAX_DEPTH", Req::new(Method::POST, CREATE, &alice).raw("application/json", deep_item(40)), 400, "FST_ERR_CTP_JSON_TOO_DEEP"),
        case(Resources, "create body of 30000 nested arrays", Req::new(Method::POST, CREATE, &alice).raw("application/json", nested_arrays(30_000)), 400, "FST_ERR_CTP_JSON_TOO_DEEP"),
        case(Resources, "patch body of 30000 nested arrays", Req::new(Method::PATCH, &item, &alice).raw("application/json", nested_arrays(30_000)), 400, "FST_ERR_CTP_JSON_TOO_DEEP"),
        case(Resources, "sign-in body nested too deep", Req::new(Method::POST, "/api/auth/sign-in/email", &nobody).raw("application/json", nested_arrays(33)), 400, "FST_ERR_CTP_JSON_TOO_DEEP"),
        case(Resources, "key creation body nested too deep", Req::new(Method::POST, "/api/auth/api-key/create", &alice).raw("application/json", nested_arrays(33)), 400, "FST_ERR_CTP_JSON_TOO_DEEP"),
        case(Resources, "limit 0", Req::get(format!("{FETCH}&limit=0"), &alice), 400, "INVALID_PAGINATION"),
        case(Resources, "limit 101", Req::get(format!("{FETCH}&limit=101"), &alice), 400, "INVALID_PAGINATION"),
        case(Resources, "limit beyond 32 bits", Req::get(format!("{FETCH}&limit=99999999999"), &alice), 400, "FST_ERR_VALIDATION"),
        case(Resources, "negative limit", Req::get(format!("{FETCH}&limit=-1"), &alice), 400, "FST_ERR_VALIDATION"),
        case(Resources, "offset 10001", Req::get(format!("{FETCH}&offset=10001"), &alice), 400, "INVALID_PAGINATION"),
        case(Resources, "negative offset", Req::get(format!("{FETCH}&offset=-1"), &alice), 400, "FST_ERR_VALIDATION"),
        case(Resources, "negative cache_ttl_seconds", Req::get(format!("{FETCH}&cache_ttl_seconds=-1"), &alice), 400, "FST_ERR_VALIDATION"),
        case(Resources, "cache_ttl_seconds beyond 64 bits", Req::get(format!("{FETCH}&cache_ttl_seconds=99999999999999999999999"), &alice), 400, "FST_ERR_VALIDATION"),
        case(Resources, "cache_ttl_seconds 0", Req::get(format!("{FETCH}&cache_ttl_seconds=0"), &alice), 400, "FST_ERR_VALIDATION"),
        case(Resources, "65 item_state conditions", Req::get(format!("{FETCH}{}", state_filter(65)), &alice), 400, "INVALID_STATE_FILTER"),
        case(Resources, "2000 item_state conditions", Req::get(format!("{FETCH}{}", state_filter(2000)), &alice), 400, "INVALID_STATE_FILTER"),
        case(Resources, "item_state filter nested 6 deep", Req::get(format!("{FETCH}&item_state[a][b][c][d][e][f]=1"), &alice), 400, "FST_ERR_VALIDATION"),
        case(Resources, "repeated item_id", Req::get(format!("{FETCH}&item_id={id}&item_id={id}"), &alice), 400, "FST_ERR_VALIDATION"),
        case(Resources, "radius without a centre", Req::get(format!("{FETCH}&radius_meters=1000"), &alice), 400, "INVALID_GEO_FILTER"),
        case(Resources, "negative radius", Req::get(format!("{FETCH}&item_latitude=18.5&item_longitude=73.8&radius_meters=-1"), &alice), 400, "INVALID_GEO_FILTER"),
        case(Resources, "infinite radius", Req::get(format!("{FETCH}&item_latitude=18.5&item_longitude=73.8&radius_meters=1e999"), &alice), 400, "INVALID_GEO_FILTER"),
        case(Resources, "NaN radius", Req::get(format!("{FETCH}&item_latitude=18.5&item_longitude=73.8&radius_meters=NaN"), &alice), 400, "INVALID_GEO_FILTER"),
        case(Resources, "latitude out of range", Req::get(format!("{FETCH}&item_latitude=91&item_longitude=73.8&radius_meters=10"), &alice), 400, "INVALID_GEO_FILTER"),
        case(Resources, "create with an infinite latitude", Req::new(Method::POST, CREATE, &alice).raw("application/json", r#"{"item_network":"yellow_dot","item_domain":"student","item_type":"profile_1.0","item_state":{"name":"G","grade":"9","city":"P"},"item_latitude":1e999,"item_longitude":0}"#), 400, "FST_ERR_VALIDATION"),
        case(Resources, "a 5000-character item id", Req::patch(format!("/api/v1/item/{}", "a".repeat(5000)), &alice, state.clone()), 400, "FST_ERR_VALIDATION"),
        case(Resources, "key with an expiry beyond the calendar", Req::post("/api/auth/api-key/create", &alice, json!({"name": "forever", "expiresIn": u64::MAX})), 400, "INVALID_INPUT"),
        case(Resources, "body that is not JSON", Req::new(Method::POST, CREATE, &alice).raw("text/plain", "item_network=yellow_dot"), 415, "FST_ERR_CTP_INVALID_MEDIA_TYPE"),
        case(Resources, "malformed JSON", Req::new(Method::POST, CREATE, &alice).raw("application/json", "{\"item_network\": "), 400, "FST_ERR_CTP_INVALID_JSON_BODY"),
        case(Resources, "JSON that is not UTF-8", Req::new(Method::POST, CREATE, &alice).raw("application/json", b"{\"item_network\": \"\xff\xfe\"}".to_vec()), 400, "FST_ERR_VALIDATION"),
        case(Resources, "empty JSON body", Req::new(Method::POST, CREATE, &alice).raw("application/json", ""), 400, "FST_ERR_CTP_EMPTY_JSON_BODY"),
        // API5: administration and unserved functions.
        case(Function, "a user refetches schemas", Req::new(Method::POST, REFETCH, &alice), 403, "ADMIN_REQUIRED"),
        case(Function, "a user refetches schemas with an API key", Req::new(Method::POST, REFETCH, &alice_key), 403, "ADMIN_REQUIRED"),
        case(Function, "a user who claimed admin at sign-up refetches", Req::new(Method::POST, REFETCH, &Who::Cookie(a.mallory.clone())), 403, "ADMIN_REQUIRED"),
        case(Function, "a user reads the outbox", Req::get(OUTBOX, &alice), 403, "ADMIN_REQUIRED"),
        case(Function, "a user reads the outbox with an API key", Req::get(OUTBOX, &alice_key), 403, "ADMIN_REQUIRED"),
        case(Function, "a user who claimed admin at sign-up reads the outbox", Req::get(OUTBOX, &Who::Bearer(a.mallory.clone())), 403, "ADMIN_REQUIRED"),
        case(Function, "a user redrives the outbox", Req::new(Method::POST, REDRIVE, &bob), 403, "ADMIN_REQUIRED"),
        case(Function, "a user redrives one destination with an API key", Req::new(Method::POST, format!("{REDRIVE}?destination=http://127.0.0.1:1"), &bob_key), 403, "ADMIN_REQUIRED"),
        case(Authentication, "outbox without credentials", Req::get(OUTBOX, &nobody), 401, "UNAUTHORIZED"),
        case(Authentication, "redrive without credentials", Req::new(Method::POST, REDRIVE, &nobody), 401, "UNAUTHORIZED"),
        case(Authentication, "redrive with a forged API key", Req::new(Method::POST, REDRIVE, &forged_key), 403, "INVALID_API_KEY"),
        case(Resources, "outbox listing limit beyond 32 bits", Req::get(format!("{OUTBOX}?limit=99999999999"), &Who::Bearer(a.admin.clone())), 400, "FST_ERR_VALIDATION"),
        case(Function, "create in a network this instance does not serve", Req::post(CREATE, &alice, json!({"item_network": "blue_dot", "item_domain": "seeker", "item_type": "profile_1.0", "item_state": {}})), 403, "UNSERVED_DOMAIN_BINDING"),
        case(Function, "create in a domain this instance does not serve", Req::post(CREATE, &alice, json!({"item_network": NETWORK, "item_domain": "coaching_center", "item_type": "profile_1.0", "item_state": {}})), 403, "UNSERVED_DOMAIN_BINDING"),
        // Unknown routes answer the reference's 404 shape, `{statusCode, error: "Not Found", message}`.
        case(Function, "PUT on an item", Req::new(Method::PUT, &item, &alice).json(state.clone()), 404, "Not Found"),
        case(Function, "POST with a method override to DELETE", Req::new(Method::POST, &item, &alice).header("x-http-method-override", "DELETE"), 404, "Not Found"),
        case(Function, "an undocumented admin path", Req::get("/api/v1/admin/users", &alice), 404, "Not Found"),
        // API7: URLs the server must not call.
        case(Ssrf, "patch points item_schema_url at a loopback listener", Req::patch(&item, &alice, json!({"item_schema_url": trap.url("/schema.json")})), 400, "IMMUTABLE_FIELD"),
        case(Ssrf, "patch points item_schema_url at cloud metadata", Req::patch(&item, &alice, json!({"item_schema_url": "http://169.254.169.254/latest/meta-data/"})), 400, "IMMUTABLE_FIELD"),
        // API8: CORS, unknown routes, traversal.
        case(Misconfiguration, "simple request from a foreign origin", Req::get("/", &nobody).header("origin", "https://evil.example.com"), 403, "CORS_ORIGIN_NOT_ALLOWED"),
        case(Misconfiguration, "credentialed request from a foreign origin", Req::get(FETCH, &alice).header("origin", "https://evil.example.com"), 403, "CORS_ORIGIN_NOT_ALLOWED"),
        case(Misconfiguration, "write from a foreign origin", Req::post(CREATE, &alice, student("CSRF")).header("origin", "https://evil.example.com"), 403, "CORS_ORIGIN_NOT_ALLOWED"),
        case(Misconfiguration, "origin that extends an allowed one", Req::get("/", &nobody).header("origin", "https://ui.example.org.evil.com"), 403, "CORS_ORIGIN_NOT_ALLOWED"),
        case(Misconfiguration, "the null origin", Req::get("/", &nobody).header("origin", "null"), 403, "CORS_ORIGIN_NOT_ALLOWED"),
        case(Misconfiguration, "preflight from a foreign origin", Req::new(Method::OPTIONS, CREATE, &nobody).header("origin", "https://evil.example.com").header("access-control-request-method", "POST"), 403, "CORS_ORIGIN_NOT_ALLOWED"),
        case(Misconfiguration, "POST on the health route", Req::post("/", &nobody, json!({})), 404, "Not Found"),
        case(Misconfiguration, "DELETE on the published keys", Req::delete("/.well-known/dpg/keys", &nobody), 404, "Not Found"),
        case(Misconfiguration, "POST on the readiness probe", Req::post("/health/ready", &nobody, json!({})), 404, "Not Found"),
        case(Misconfiguration, "DELETE on the schema list", Req::delete("/api/v1/network/schemas", &alice), 404, "Not Found"),
        case(Misconfiguration, "unknown route", Req::get("/api/v1/nothing-here", &alice), 404, "Not Found"),
        case(Misconfiguration, "encoded path traversal", Req::get("/api/v1/%2e%2e/%2e%2e/etc/passwd", &nobody), 404, "Not Found"),
        case(Misconfiguration, "traversal in a schema path", Req::get("/api/v1/network/schema/yellow_dot/student/..%2F..%2F..%2Fetc%2Fpasswd", &nobody), 404, "ITEM_TYPE_NOT_FOUND"),
        case(Misconfiguration, "schema of an unknown network", Req::get("/api/v1/network/schema/%27%20OR%201%3D1/student/profile_1.0", &nobody), 404, "NETWORK_NOT_CONFIGURED"),
    ];
    // The key write budget, used up by the rate-limit case below, must be exact.
    cases.push(case(
        Resources,
        "writes over the API key's budget",
        Req::post(CREATE, &Who::Key(a.burst_key.clone()), student("Burst")),
        429,
        "RATE_LIMITED",
    ));
    cases
}

#[tokio::test]
async fn hostile_requests_to_an_instance_with_accounts_are_refused_and_change_nothing() {
    let auth = AuthInstance::start().await;
    let accounts = auth.accounts().await;
    // Use up the burst key's write budget, so that the next write with it is refused.
    for k in 0..KEY_WRITES_PER_HOUR {
        auth.expect(
            Req::post(
                CREATE,
                &Who::Key(accounts.burst_key.clone()),
                student(&format!("Burst {k}")),
            ),
            201,
        )
        .await;
    }
    // The comparisons below see the stored rows: items, accounts and keys.
    let stored = auth.storage.snapshot().await;
    for (table, at_least) in [("items", 5), ("users", 4)] {
        assert!(
            stored.get(table).is_some_and(|rows| rows.len() >= at_least),
            "{table}: {stored:#?}"
        );
    }
    assert_eq!(
        stored.get("api_keys"),
        Some(&vec!["4".to_string()]),
        "one key revoked"
    );
    let trap = Trap::start().await;
    let data_dir = auth.instance.data_dir.display().to_string();
    let private = [data_dir.as_str()];
    let cases = account_cases(&accounts, &trap);
    auth.run(&accounts, &cases, &private).await;

    // The rate-limited answer says when to come back.
    let limited = auth
        .send(&Req::post(
            CREATE,
            &Who::Key(accounts.burst_key.clone()),
            student("Again"),
        ))
        .await;
    assert_eq!(limited.status, 429, "{}", limited.text);
    let retry_after: u64 = limited.headers[header::RETRY_AFTER]
        .to_str()
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    assert_eq!(trap.connections(), 0, "the instance called the trap");
    assert_sign_in_is_rate_limited(&auth, &accounts, &private).await;
    assert_creates_ignore_server_owned_fields(&auth, &accounts).await;
    assert_custom_schema_urls_on_private_addresses_are_refused(&auth, &accounts, &private).await;
    summary("accounts", cases.iter().map(|c| c.owasp));
}

/// Sign-in attempts against one account run out; the right password then waits too.
async fn assert_sign_in_is_rate_limited(
    auth: &AuthInstance,
    accounts: &Accounts,
    private: &[&str],
) {
    let wrong = Req::post(
        "/api/auth/sign-in/email",
        &Who::Nobody,
        json!({"email": "bob@example.org", "password": "guessed password"}),
    );
    let before = auth.state(accounts).await;
    let mut limited = None;
    for _ in 0..30 {
        let answer = auth.send(&wrong).await;
        assert_no_leak("sign-in guessing", &answer.text, private);
        if answer.status == 429 {
            limited = Some(answer);
            break;
        }
        assert_eq!(answer.status, 401, "{}", answer.text);
    }
    let limited = limited.expect("the account's sign-in budget runs out");
    assert_answer(
        "[API4:2023 resource consumption] password guessing",
        &limited,
        &Expect::Refused(429, "RATE_LIMITED"),
        private,
    );
    assert!(limited.headers.contains_key(header::RETRY_AFTER));
    let right = auth
        .send(&Req::post(
            "/api/auth/sign-in/email",
            &Who::Nobody,
            json!({"email": "bob@example.org", "password": "battery staple"}),
        ))
        .await;
    assert_eq!(right.status, 429, "{}", right.text);
    assert_unchanged("sign-in guessing", &before, &auth.state(accounts).await);
}

/// Server-owned fields sent with a create are ignored: the stored item carries the
/// server's values.
async fn assert_creates_ignore_server_owned_fields(auth: &AuthInstance, accounts: &Accounts) {
    let alice = Who::Bearer(accounts.alice.clone());
    let forged_id = uuid::Uuid::new_v4().to_string();
    let forged: [(&str, Value); 6] = [
        ("item_id", json!(forged_id)),
        ("created_by", json!(accounts.bob_id)),
        ("item_instance_url", json!("https://evil.example.com")),
        (
            "item_schema_url",
            json!("http://169.254.169.254/schema.json"),
        ),
        ("created_at", json!("2000-01-01T00:00:00.000Z")),
        ("updated_at", json!("2000-01-01T00:00:00.000Z")),
    ];
    let mut body = student("Assigned");
    for (field, value) in &forged {
        body[*field] = value.clone();
    }
    let created = auth.expect(Req::post(CREATE, &alice, body), 201).await;
    let id = created["item_id"].as_str().expect("id").to_string();
    assert_ne!(id, forged_id, "{created}");
    let page = auth
        .expect(Req::get(format!("{FETCH}&item_id={id}"), &alice), 200)
        .await;
    let stored = &page["items"][0];
    for (field, value) in &forged {
        assert_ne!(
            &stored[*field], value,
            "{field} was taken from the client: {stored}"
        );
    }
    assert_eq!(stored["created_by"], accounts.alice_id.as_str(), "{stored}");
    assert_eq!(stored["item_instance_url"], auth.instance.base_url.as_str());
    assert_eq!(stored["item_schema_url"], accounts.item["item_schema_url"]);
    // Bob sees none of it.
    let bobs = auth
        .expect(
            Req::get(
                format!("{FETCH}&item_id={id}"),
                &Who::Bearer(accounts.bob.clone()),
            ),
            200,
        )
        .await;
    assert_eq!(bobs["meta"]["total"], 0, "{bobs}");
}

/// The network document names custom item schema URLs on loopback, private, link-local and
/// non-HTTP addresses: an administrator's reload refuses them without calling them, and the
/// schemas in force stay.
async fn assert_custom_schema_urls_on_private_addresses_are_refused(
    auth: &AuthInstance,
    accounts: &Accounts,
    private: &[&str],
) {
    let trap = Trap::start().await;
    let port = trap.addr.port();
    let urls = [
        trap.url("/schema.json"),
        format!("http://localhost:{port}/schema.json"),
        format!("http://[::1]:{port}/schema.json"),
        format!("http://2130706433:{port}/schema.json"),
        format!("http://127.1:{port}/schema.json"),
        format!("http://0.0.0.0:{port}/schema.json"),
        format!("http://[::ffff:127.0.0.1]:{port}/schema.json"),
        "http://169.254.169.254/latest/meta-data/schema.json".to_string(),
        "http://10.0.0.1/schema.json".to_string(),
        "http://192.168.1.1/schema.json".to_string(),
        "file:///etc/passwd".to_string(),
    ];
    let admin = Who::Bearer(accounts.admin.clone());
    for url in &urls {
        let context = format!("[{}] custom item schema at {url}", Owasp::Ssrf);
        let mut document = auth.document.clone();
        if let Some(instances) = document["instances"].as_array_mut() {
            for instance in instances.iter_mut().filter(|i| i["domain_name"] == STUDENT) {
                instance["custom_item_schema_urls"] = json!({"profile_1.0": url});
            }
        }
        std::fs::write(&auth.document_path, document.to_string()).expect("document");
        let before = auth.state(accounts).await;
        let answer = auth.send(&Req::new(Method::POST, REFETCH, &admin)).await;
        assert_answer(
            &context,
            &answer,
            &Expect::Refused(403, "SCHEMA_URL_FORBIDDEN"),
            private,
        );
        assert_unchanged(&context, &before, &auth.state(accounts).await);
        // The schemas in force still validate.
        auth.expect(
            Req::post(CREATE, &Who::Bearer(accounts.alice.clone()), json!({"item_network": NETWORK, "item_domain": STUDENT, "item_type": "profile_1.0", "item_state": {"name": 1}})),
            400,
        )
        .await;
    }
    assert_eq!(
        trap.connections(),
        0,
        "the instance called a private address"
    );
    std::fs::write(&auth.document_path, auth.document.to_string()).expect("document");
}

/// Network documents from a registry on a private address: the instance refuses to start
/// (it has no last good copy) and never connects.
#[tokio::test]
async fn registry_urls_on_private_addresses_are_refused_at_start_up() {
    let trap = Trap::start().await;
    let port = trap.addr.port();
    let registries = [
        trap.url("/yellow_dot/network.json"),
        format!("http://localhost:{port}/network.json"),
        format!("http://[::1]:{port}/network.json"),
        "http://169.254.169.254/latest/network.json".to_string(),
        "http://10.1.2.3/network.json".to_string(),
    ];
    for registry in &registries {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = InstanceEnv::new()
            .set("NETWORK_CONFIG_SOURCE", "remote")
            .set("NETWORK_CONFIG_URLS", format!("{NETWORK}={registry}"))
            .set("SERVED_DOMAINS", format!("{NETWORK}/{STUDENT}"))
            .set("SCHEMA_FETCH_ALLOW_PRIVATE", "false");
        let refused = TestInstance::start(dir.path().to_path_buf(), env).await;
        let message = format!("{:#}", refused.err().expect("refuses to start"));
        assert!(
            message.contains("Refusing") || message.contains("refused"),
            "{registry}: {message}"
        );
    }
    assert_eq!(
        trap.connections(),
        0,
        "the instance called a private registry"
    );
}

/// Production without authentication is refused however the switch is spelled; production
/// defaults are the safe ones.
#[test]
fn production_refuses_to_run_without_authentication() {
    let production = |extra: &[(&str, &str)]| {
        let mut vars: BTreeMap<String, String> = [
            ("INSTANCE_ENV", "production"),
            ("API_DOMAIN", "https://api.example.org"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        vars.entry("NETWORK_CONFIG_LOCAL_FILE".into())
            .or_insert_with(|| "examples/dev.network.json".into());
        dpg_app::Config::from_lookup(|name| vars.get(name).cloned())
    };
    for off in ["false", "FALSE", "0", "no", "off", " false "] {
        let refused = production(&[("AUTH_MIDDLEWARE_ENABLED", off)]);
        let message = refused.err().unwrap_or_else(|| panic!("{off:?} accepted"));
        assert!(message.contains("AUTH_MIDDLEWARE_ENABLED"), "{message}");
    }
    let config = production(&[]).expect("production defaults");
    assert!(config.auth_enabled);
    assert!(!config.schema_fetch_allow_private);
    let enabled = production(&[("AUTH_MIDDLEWARE_ENABLED", "true")]).expect("on");
    assert!(enabled.auth_enabled);
}

/// Prints how many cases each category has, so a run shows the coverage.
fn summary(table: &str, categories: impl Iterator<Item = Owasp>) {
    let mut by_category: BTreeMap<Owasp, usize> = BTreeMap::new();
    for owasp in categories {
        *by_category.entry(owasp).or_default() += 1;
    }
    for (owasp, count) in by_category {
        println!("{table}: {owasp}: {count} cases");
    }
}

// ---------------------------------------------------------------------------------------
// Peer routes and network reads of a signed network
// ---------------------------------------------------------------------------------------

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

const GRADES: [&str; 5] = ["8", "9", "10", "11", "12"];

fn graded_student(k: usize) -> Value {
    json!({"item_network": NETWORK, "item_domain": STUDENT, "item_type": "profile_1.0",
           "item_state": {"name": format!("Student {k}"), "grade": GRADES[k % GRADES.len()], "city": "Pune"}})
}

/// A peer request exactly as it goes on the wire.
#[derive(Debug, Clone)]
struct PeerReq {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl PeerReq {
    fn unsigned(path: &str, body: Vec<u8>) -> PeerReq {
        PeerReq {
            path: path.to_string(),
            headers: vec![("content-type".into(), "application/json".into())],
            body,
        }
    }

    /// Signed by `signer` for `target` (the URL the signer means to call) at `created`.
    fn signed(
        signer: &PeerSigner,
        target: &str,
        path: &str,
        body: Vec<u8>,
        created: i64,
    ) -> PeerReq {
        let mut req = PeerReq::unsigned(path, body);
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let headers = signer
            .headers(
                "POST",
                &format!("{target}{path}"),
                "application/json",
                &req.body,
                created,
                &nonce,
            )
            .expect("signs");
        req.headers
            .extend(headers.into_iter().map(|(n, v)| (n.to_string(), v)));
        req
    }

    fn replacing(mut self, name: &str, value: &str) -> PeerReq {
        self.headers.retain(|(n, _)| n != name);
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    fn with_body(mut self, body: Vec<u8>) -> PeerReq {
        self.body = body;
        self
    }
}

enum NetReq {
    /// A POST to a peer route of instance `.0`.
    Peer(usize, PeerReq),
    /// A GET on instance `.0` as a client with the development identity.
    Get(usize, String),
    /// A user's request to instance `.0`.
    User(usize, Req),
}

struct NetCase {
    name: String,
    owasp: Owasp,
    req: NetReq,
    expect: Expect,
}

fn net_case(
    owasp: Owasp,
    name: impl Into<String>,
    req: NetReq,
    status: u16,
    code: &'static str,
) -> NetCase {
    NetCase {
        name: name.into(),
        owasp,
        req,
        expect: Expect::Refused(status, code),
    }
}

fn empty_net_case(owasp: Owasp, name: impl Into<String>, req: NetReq) -> NetCase {
    NetCase {
        name: name.into(),
        owasp,
        req,
        expect: Expect::EmptyPage,
    }
}

/// Waits until no outbox has a pending delivery and storage stands still.
async fn settle(storages: &[Storage]) {
    let mut last = snapshots(storages).await;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = snapshots(storages).await;
        let pending = now.iter().any(|tables| {
            tables
                .get("outbox")
                .is_some_and(|rows| rows.iter().any(|r| r.contains("'pending'")))
        });
        if !pending && now == last {
            return;
        }
        last = now;
    }
    panic!("storage never settled: {last:#?}");
}

async fn snapshots(storages: &[Storage]) -> Vec<BTreeMap<String, Vec<String>>> {
    let mut all = Vec::with_capacity(storages.len());
    for storage in storages {
        all.push(storage.snapshot().await);
    }
    all
}

/// Every peer route with a valid body for it, as instance 0 would send it to instance 1.
fn peer_routes() -> Vec<(&'static str, Value)> {
    vec![
        (
            COUNT_LOCAL,
            json!({"item_network": NETWORK, "item_domain": STUDENT}),
        ),
        (
            FETCH_LOCAL,
            json!({"item_network": NETWORK, "item_domain": STUDENT, "limit": 10, "offset": 0}),
        ),
    ]
}

/// The authentication cases of one peer route, whose genuine caller is instance `from`
/// calling instance `to` with `body`: unsigned, forged, tampered, replayed from elsewhere,
/// expired; plus its body limits.
fn signature_cases(
    net: &TestNetwork,
    path: &str,
    body: &Value,
    from: usize,
    to: usize,
) -> Vec<NetCase> {
    use Owasp::*;
    let signer = net.signer(from).expect("a signed network").clone();
    let third = (0..net.len())
        .find(|i| *i != from && *i != to)
        .expect("a third instance");
    let target = net.url(to).to_string();
    let stranger = PeerSigner::new(SigningKey::from_seed(&[42; 32]), "stranger-key");
    let impostor = PeerSigner::new(
        SigningKey::from_seed(&[43; 32]),
        net.signer(third).expect("signed").kid(),
    );
    let bytes = body.to_string().into_bytes();
    let genuine = PeerReq::signed(&signer, &target, path, bytes.clone(), now());
    let mut tampered = body.clone();
    tampered["tampered"] = json!(true);
    let mut padded = body.clone();
    padded["pad"] = json!("x".repeat(1024 * 1024 + 1));
    let peer = |req: PeerReq| NetReq::Peer(to, req);
    vec![
        net_case(
            Authentication,
            format!("{path} unsigned"),
            peer(PeerReq::unsigned(path, bytes.clone())),
            401,
            "SIGNATURE_REQUIRED",
        ),
        net_case(
            Authentication,
            format!("{path} with a garbage signature"),
            peer(genuine.clone().replacing("signature", "sig1=:AAAA:")),
            401,
            "SIGNATURE_INVALID",
        ),
        net_case(
            Authentication,
            format!("{path} with a tampered body"),
            peer(genuine.clone().with_body(tampered.to_string().into_bytes())),
            401,
            "DIGEST_MISMATCH",
        ),
        net_case(
            Authentication,
            format!("{path} signed for another instance"),
            peer(PeerReq::signed(
                &signer,
                net.url(third),
                path,
                bytes.clone(),
                now(),
            )),
            401,
            "SIGNATURE_INVALID",
        ),
        net_case(
            Authentication,
            format!("{path} signed by a key outside the document"),
            peer(PeerReq::signed(
                &stranger,
                &target,
                path,
                bytes.clone(),
                now(),
            )),
            401,
            "UNKNOWN_SIGNING_KEY",
        ),
        net_case(
            Authentication,
            format!("{path} signed by a key claiming a member's kid"),
            peer(PeerReq::signed(
                &impostor,
                &target,
                path,
                bytes.clone(),
                now(),
            )),
            401,
            "SIGNATURE_INVALID",
        ),
        net_case(
            Authentication,
            format!("{path} signed ten minutes ago"),
            peer(PeerReq::signed(
                &signer,
                &target,
                path,
                bytes.clone(),
                now() - 600,
            )),
            401,
            "SIGNATURE_EXPIRED",
        ),
        net_case(
            Authentication,
            format!("{path} with a 6 KB signature"),
            peer(
                genuine
                    .clone()
                    .replacing("signature", &format!("sig1=:{}:", "A".repeat(6000))),
            ),
            401,
            "SIGNATURE_INVALID",
        ),
        net_case(
            Resources,
            format!("{path} body over the limit"),
            peer(PeerReq::signed(
                &signer,
                &target,
                path,
                padded.to_string().into_bytes(),
                now(),
            )),
            413,
            "FST_ERR_CTP_BODY_TOO_LARGE",
        ),
        net_case(
            Resources,
            format!("{path} body nested too deep"),
            peer(PeerReq::signed(
                &signer,
                &target,
                path,
                nested_arrays(40),
                now(),
            )),
            400,
            "FST_ERR_CTP_JSON_TOO_DEEP",
        ),
    ]
}

fn network_cases(net: &TestNetwork) -> Vec<NetCase> {
    use Owasp::*;
    let member0 = net.signer(0).expect("a signed network").clone();
    let target = net.url(1).to_string();
    let signed = |path: &str, body: &Value| {
        PeerReq::signed(
            &member0,
            &target,
            path,
            body.to_string().into_bytes(),
            now(),
        )
    };
    let mut cases = Vec::new();
    for (path, body) in peer_routes() {
        cases.extend(signature_cases(net, path, &body, 0, 1));
        let mut other = body.clone();
        other["item_domain"] = json!(TUTOR);
        let mut filtered = body.clone();
        filtered["item_state"] = (0..65)
            .map(|k| (format!("k{k}"), json!("v")))
            .collect::<serde_json::Map<_, _>>()
            .into();
        cases.extend([
            net_case(
                Resources,
                format!("{path} with 65 item_state conditions"),
                NetReq::Peer(1, signed(path, &filtered)),
                400,
                "INVALID_STATE_FILTER",
            ),
            net_case(
                Function,
                format!("{path} for a domain the instance does not serve"),
                NetReq::Peer(1, signed(path, &other)),
                403,
                "UNSERVED_DOMAIN_BINDING",
            ),
        ]);
    }
    let fetch_local = |body: Value| {
        NetReq::Peer(
            1,
            PeerReq::signed(
                &member0,
                &target,
                FETCH_LOCAL,
                body.to_string().into_bytes(),
                now(),
            ),
        )
    };
    let page = |limit: Value, offset: Value| json!({"item_network": NETWORK, "item_domain": STUDENT, "limit": limit, "offset": offset});
    cases.extend([
        net_case(Resources, "fetch_local limit 101", fetch_local(page(json!(101), json!(0))), 400, "INVALID_PAGINATION"),
        net_case(Resources, "fetch_local limit 0", fetch_local(page(json!(0), json!(0))), 400, "INVALID_PAGINATION"),
        net_case(Resources, "fetch_local offset beyond 32 bits", fetch_local(page(json!(10), json!(4_294_967_296u64))), 400, "FST_ERR_VALIDATION"),
        net_case(Resources, "fetch_local negative offset", fetch_local(page(json!(10), json!(-1))), 400, "FST_ERR_VALIDATION"),
        net_case(Resources, "fetch_local limit as text", fetch_local(page(json!("10"), json!(0))), 400, "FST_ERR_VALIDATION"),
        net_case(Resources, "fetch_local with a forged cursor", fetch_local(json!({"item_network": NETWORK, "item_domain": STUDENT, "limit": 10, "offset": 0, "cursor": "' OR 1=1 --"})), 400, "INVALID_CURSOR"),
    ]);
    let fetch = |query: &str| {
        NetReq::Get(
            0,
            format!("{NETWORK_FETCH}?item_network={NETWORK}&item_domain={STUDENT}{query}"),
        )
    };
    cases.extend([
        net_case(Resources, "network fetch limit 101", fetch("&limit=101"), 400, "INVALID_PAGINATION"),
        net_case(Resources, "network fetch limit 0", fetch("&limit=0"), 400, "INVALID_PAGINATION"),
        net_case(Resources, "network fetch offset 10001", fetch("&offset=10001"), 400, "INVALID_PAGINATION"),
        net_case(Resources, "network fetch negative offset", fetch("&offset=-1"), 400, "FST_ERR_VALIDATION"),
        net_case(Resources, "network fetch cache_ttl_seconds beyond 64 bits", fetch("&cache_ttl_seconds=99999999999999999999999"), 400, "FST_ERR_VALIDATION"),
        net_case(Resources, "network fetch negative cache_ttl_seconds", fetch("&cache_ttl_seconds=-5"), 400, "FST_ERR_VALIDATION"),
        net_case(Resources, "network fetch cache_ttl_seconds 0", fetch("&cache_ttl_seconds=0"), 400, "FST_ERR_VALIDATION"),
        net_case(Resources, "network fetch with 65 item_state conditions", fetch(&state_filter(65)), 400, "INVALID_STATE_FILTER"),
        net_case(Resources, "network fetch with 2000 item_state conditions", fetch(&state_filter(2000)), 400, "INVALID_STATE_FILTER"),
        net_case(Resources, "network fetch with a repeated limit", fetch("&limit=1&limit=100"), 400, "FST_ERR_VALIDATION"),
        net_case(Resources, "network fetch with a NaN radius", fetch("&item_latitude=1&item_longitude=1&radius_meters=NaN"), 400, "INVALID_GEO_FILTER"),
        net_case(Resources, "network fetch with a forged cursor", fetch("&cursor=%27%20OR%201%3D1%20--"), 400, "INVALID_CURSOR"),
        net_case(Function, "network fetch of a domain no instance of this one serves", NetReq::Get(1, format!("{NETWORK_FETCH}?item_network={NETWORK}&item_domain=nope")), 404, "DOMAIN_NOT_FOUND"),
        net_case(Function, "network fetch of an unknown network", NetReq::Get(0, format!("{NETWORK_FETCH}?item_network=%27%3B%20DROP%20TABLE%20items%3B--&item_domain={STUDENT}")), 404, "NETWORK_NOT_CONFIGURED"),
    ]);
    cases
}

#[tokio::test]
async fn hostile_requests_to_peer_routes_and_network_reads_are_refused_and_change_nothing() {
    let net = TestNetwork::builder(3)
        .signed()
        .proxied(2)
        .env(0, "PEER_BREAKER_FAILURES", "1000")
        .env(1, "NETWORK_FETCH_BUDGET_PER_MINUTE", "3")
        .start()
        .await
        .expect("network boots");
    net.seed_round_robin(STUDENT, 20, graded_student)
        .await
        .expect("seeded");
    let mut storages = Vec::new();
    let mut private: Vec<String> = Vec::new();
    for index in 0..net.len() {
        storages.push(Storage::open(&net.instance(index).data_dir).await);
        private.push(net.instance(index).data_dir.display().to_string());
    }
    let private: Vec<&str> = private.iter().map(String::as_str).collect();

    let fixture = ActionFixture::setup(&net).await;
    settle(&storages).await;
    let trap = Trap::start().await;
    let mut cases = network_cases(&net);
    cases.extend(action_cases(&net, &fixture, &trap));
    let mut failures = Vec::new();
    for case in &cases {
        let context = format!("[{}] {}", case.owasp, case.name);
        let checked = AssertUnwindSafe(async {
            let before = snapshots(&storages).await;
            let answer: Answer = match &case.req {
                NetReq::Peer(index, req) => net
                    .post_raw(*index, &req.path, &req.headers, req.body.clone())
                    .await
                    .expect("answered")
                    .into(),
                NetReq::Get(index, path) => net.get(*index, path).await.expect("answered").into(),
                NetReq::User(index, req) => user_send(&net, *index, req).await,
            };
            assert_answer(&context, &answer, &case.expect, &private);
            assert_unchanged(&context, &before, &snapshots(&storages).await);
        })
        .catch_unwind()
        .await;
        if checked.is_err() {
            failures.push(context);
        }
    }
    assert_all_passed(&failures, cases.len());
    assert_eq!(trap.connections(), 0, "an instance called the trap");
    assert_actions_ignore_server_owned_fields(&net, &fixture).await;
    settle(&storages).await;

    assert_network_fetch_budget(&net, &private).await;
    assert_hostile_peer_answers_are_dropped(&net, &storages, &private).await;
    summary("network", cases.iter().map(|c| c.owasp));
}

/// A client that starts too many network reads is told to come back later.
async fn assert_network_fetch_budget(net: &TestNetwork, private: &[&str]) {
    let mut limited = None;
    for k in 0..10 {
        let reply = net
            .network_fetch(1, STUDENT, &format!("&item_state[name]=budget{k}"))
            .await
            .expect("answered");
        if reply.status == 429 {
            limited = Some(Answer::from(reply));
            break;
        }
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let limited = limited.expect("the fan-out budget runs out");
    assert_answer(
        "[API4:2023 resource consumption] network reads over the budget",
        &limited,
        &Expect::Refused(429, "RATE_LIMITED"),
        private,
    );
    assert!(limited.headers.contains_key(header::RETRY_AFTER));
}

/// A peer that answers garbage, too much, or items that are not its own: the read is a 200,
/// the peer is reported `invalid` (or `error`), nothing of its answer is in the page, and
/// nothing is stored.
async fn assert_hostile_peer_answers_are_dropped(
    net: &TestNetwork,
    storages: &[Storage],
    private: &[&str],
) {
    let expected = net.all_items(STUDENT).await.expect("every item");
    let foreign = net.local_items(1, STUDENT).await.expect("items of 1");
    let own = net.local_items(2, STUDENT).await.expect("items of 2");
    let mut other_domain = own[0].clone();
    other_domain["item_domain"] = json!(TUTOR);
    let mut injected = own[0].clone();
    injected["item_id"] = json!("1; DROP TABLE items; --");
    let mut spoofed_owner = own[0].clone();
    spoofed_owner["item_instance_url"] = json!(net.url(0));
    let replace = |body: Value| Fault::Replace(body.to_string());
    let scenarios = [
        ("garbage", Fault::Garbage, "invalid"),
        (
            "a 6 MiB answer",
            Fault::Oversized(6 * 1024 * 1024),
            "invalid",
        ),
        (
            "items of another instance",
            replace(
                json!({"count": 3, "meta": {"total": 3, "limit": 3, "offset": 0}, "items": foreign[..3]}),
            ),
            "invalid",
        ),
        (
            "items claiming to come from the reading instance",
            replace(json!({"count": 1, "items": [spoofed_owner]})),
            "invalid",
        ),
        (
            "items of another domain",
            replace(json!({"count": 1, "items": [other_domain]})),
            "invalid",
        ),
        (
            "SQL as an item id",
            replace(json!({"count": 1, "items": [injected]})),
            "invalid",
        ),
        (
            "a negative count",
            replace(json!({"count": -1, "items": []})),
            "invalid",
        ),
        (
            "more items than asked",
            replace(json!({"count": 1, "items": own[..2]})),
            "invalid",
        ),
        (
            "a 500 with a stack trace",
            Fault::Replace("panicked at src/main.rs:1:1 SELECT * FROM items".into()),
            "invalid",
        ),
        ("a bare 500", Fault::Status(500), "error"),
    ];
    let proxy = net.proxy(2).expect("proxy");
    let before = snapshots(storages).await;
    for (k, (name, fault, status)) in scenarios.into_iter().enumerate() {
        let context = format!("[{}] peer answers {name}", Owasp::UnsafeConsumption);
        let grade = GRADES[k % GRADES.len()];
        let extra = if k < GRADES.len() {
            ""
        } else {
            "&item_type=profile_1.0"
        };
        proxy.set(fault);
        let reply = net
            .network_fetch(
                0,
                STUDENT,
                &format!("&limit=100&item_state[grade]={grade}{extra}"),
            )
            .await
            .expect("answered");
        let answer = Answer::from(reply);
        assert_no_leak(&context, &answer.text, private);
        assert_eq!(answer.status, 200, "{context}: {}", answer.text);
        let meta = &answer.body["meta"];
        let peer = meta["peers"]
            .as_array()
            .and_then(|peers| peers.iter().find(|p| p["instance_url"] == net.url(2)))
            .unwrap_or_else(|| panic!("{context}: no report of the peer: {meta}"));
        assert_eq!(peer["status"], status, "{context}: {meta}");
        assert_eq!(meta["partial"], true, "{context}: {meta}");
        let good: Vec<&Value> = expected
            .iter()
            .filter(|i| i["item_instance_url"] != net.url(2) && i["item_state"]["grade"] == grade)
            .collect();
        let page: Vec<&Value> = answer.body["items"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let ids = |items: &[&Value]| {
            items
                .iter()
                .map(|i| i["item_id"].to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&page), ids(&good), "{context}");
    }
    proxy.set(Fault::Pass);
    assert_unchanged("hostile peer answers", &before, &snapshots(storages).await);
}

// ---------------------------------------------------------------------------------------
// Actions and events
// ---------------------------------------------------------------------------------------

const PERFORM: &str = "/api/v1/action/perform";
const NETWORK_PERFORM: &str = "/api/v1/network/action/perform";
const UPDATE_STATUS: &str = "/api/v1/action/update-status";
const EVENT_STORE: &str = "/api/v1/event/store";
const ACTION_FETCH: &str = "/api/v1/action/fetch";
const EVENT_FETCH: &str = "/api/v1/event/fetch";
/// Instance 0 serves `tutor`: the target of the actions.
const TARGET: usize = 0;
/// Asha's student item lives on instance 1: the source.
const SOURCE: usize = 1;
/// A member that is neither.
const OTHER: usize = 2;

/// A student (Asha, on the source) connected to a tutor (Ravi, on the target), who accepted.
struct ActionFixture {
    student_id: String,
    tutor_id: String,
    action_id: String,
    /// The body of the user's perform.
    perform: Value,
    /// The body the source's instance sends to the target's.
    network_perform: Value,
    /// The body the target's instance sends to the source's for the accepted event.
    event: Value,
    /// Genuine signed peer writes already sent once: (route, callee, request).
    replays: Vec<(&'static str, usize, PeerReq)>,
}

async fn user_send(net: &TestNetwork, index: usize, req: &Req) -> Answer {
    let instance = net.instance(index);
    send(&instance.client, &instance.local_url, req).await
}

async fn user_expect(net: &TestNetwork, index: usize, req: Req, status: u16) -> Value {
    let answer = user_send(net, index, &req).await;
    assert_eq!(
        answer.status, status,
        "{} {} on {index}: {}",
        req.method, req.path, answer.text
    );
    answer.body
}

/// The `event/store` body of a fetched event (reference-contract §1.10).
fn mirror_body(event: &Value) -> Value {
    let item = |side: &str| {
        json!({
            "item_network": event[format!("{side}_item_network")],
            "item_domain": event[format!("{side}_item_domain")],
            "item_type": event[format!("{side}_item_type")],
            "item_id": event[format!("{side}_item_id")],
            "item_instance_url": event[format!("{side}_item_instance_url")],
        })
    };
    let mut body = json!({
        "origin_instance_domain": event["origin_instance_domain"],
        "action_name": event["action_name"],
        "action_id": event["action_id"],
        "action_status": event["action_status"],
        "update_count": event["update_count"],
        "source_item": item("source"),
        "target_item": item("target"),
        "source_item_owner": event["source_item_owner"],
        "target_item_owner": event["target_item_owner"],
        "event_payload": event["event_payload"],
    });
    if let Some(remarks) = event["remarks"].as_str() {
        body["remarks"] = json!(remarks);
    }
    body
}

impl ActionFixture {
    async fn setup(net: &TestNetwork) -> ActionFixture {
        let asha = Who::Dev("asha".into());
        let ravi = Who::Dev("ravi".into());
        let student = net
            .create(
                SOURCE,
                "asha",
                &json!({"item_network": NETWORK, "item_domain": STUDENT, "item_type": "profile_1.0",
                        "item_state": {"name": "Asha", "grade": "10", "city": "Pune"}}),
            )
            .await
            .expect("student");
        let tutor = net
            .create(
                TARGET,
                "ravi",
                &json!({"item_network": NETWORK, "item_domain": TUTOR, "item_type": "profile_1.0",
                        "item_state": {"name": "Ravi", "subjects": ["maths"], "experience_years": 4}}),
            )
            .await
            .expect("tutor");
        let student_id = student["item_id"].as_str().expect("id").to_string();
        let tutor_id = tutor["item_id"].as_str().expect("id").to_string();
        let perform = json!({
            "action_name": "connect",
            "source_item": {"item_network": NETWORK, "item_domain": STUDENT,
                            "item_type": "profile_1.0", "item_id": student_id},
            "target_item": {"item_network": NETWORK, "item_domain": TUTOR,
                            "item_type": "profile_1.0", "item_id": tutor_id,
                            "item_instance_url": net.url(TARGET)},
            "requirements_snapshot": {"subject": "maths", "goal": "board exam"}
        });
        let performed = user_expect(
            net,
            SOURCE,
            Req::post(PERFORM, &asha, perform.clone()).header("idempotency-key", "hostile-1"),
            201,
        )
        .await;
        let action_id = performed["action_id"].as_str().expect("id").to_string();
        user_expect(
            net,
            TARGET,
            Req::post(
                UPDATE_STATUS,
                &ravi,
                json!({"action_id": action_id, "action_status": "accepted", "remarks": "see you"}),
            ),
            200,
        )
        .await;
        let events = user_expect(
            net,
            TARGET,
            Req::get(format!("{EVENT_FETCH}?action_id={action_id}"), &ravi),
            200,
        )
        .await;
        let accepted = events["events"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["action_status"] == "accepted"))
            .unwrap_or_else(|| panic!("no accepted event: {events}"))
            .clone();
        let event = mirror_body(&accepted);
        let network_perform = json!({
            "action_name": "connect",
            "source_item": {"item_network": NETWORK, "item_domain": STUDENT, "item_type": "profile_1.0",
                            "item_id": student_id, "item_instance_url": net.url(SOURCE)},
            "target_item": {"item_network": NETWORK, "item_domain": TUTOR, "item_type": "profile_1.0",
                            "item_id": tutor_id, "item_instance_url": net.url(TARGET)},
            "source_item_owner": "asha",
            "requirements_snapshot": {"subject": "maths", "goal": "olympiad"}
        });
        // Wait until the accepted event has reached the source, so that nothing moves while
        // the cases compare storage.
        let mut delivered = false;
        for _ in 0..100 {
            let mirrored = user_expect(
                net,
                SOURCE,
                Req::get(format!("{EVENT_FETCH}?action_id={action_id}"), &asha),
                200,
            )
            .await;
            if mirrored["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["action_status"] == "accepted"))
            {
                delivered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(delivered, "the accepted event reached the source");

        // Genuine signed writes, sent once here (storing nothing new: a perform whose
        // requirements break the schema, and the event the source already has); each
        // replay must be refused.
        let mut refused_perform = network_perform.clone();
        refused_perform["requirements_snapshot"] = json!({"subject": 7});
        let first_perform = PeerReq::signed(
            net.signer(SOURCE).expect("signed"),
            net.url(TARGET),
            NETWORK_PERFORM,
            refused_perform.to_string().into_bytes(),
            now(),
        );
        let reply = net
            .post_raw(
                TARGET,
                NETWORK_PERFORM,
                &first_perform.headers,
                first_perform.body.clone(),
            )
            .await
            .expect("answered");
        assert_eq!(reply.status, 400, "{}", reply.body);
        let first_event = PeerReq::signed(
            net.signer(TARGET).expect("signed"),
            net.url(SOURCE),
            EVENT_STORE,
            event.to_string().into_bytes(),
            now(),
        );
        let reply = net
            .post_raw(
                SOURCE,
                EVENT_STORE,
                &first_event.headers,
                first_event.body.clone(),
            )
            .await
            .expect("answered");
        assert_eq!(reply.status, 201, "{}", reply.body);
        assert_eq!(
            reply.body["event_id"],
            Value::Null,
            "a duplicate: {}",
            reply.body
        );
        ActionFixture {
            student_id,
            tutor_id,
            action_id,
            perform,
            network_perform,
            event,
            replays: vec![
                (NETWORK_PERFORM, TARGET, first_perform),
                (EVENT_STORE, SOURCE, first_event),
            ],
        }
    }
}

fn action_cases(net: &TestNetwork, f: &ActionFixture, trap: &Trap) -> Vec<NetCase> {
    use Owasp::*;
    let asha = Who::Dev("asha".into());
    let ravi = Who::Dev("ravi".into());
    let mallory = Who::Dev("mallory".into());
    let action = &f.action_id;
    let user = |index: usize, req: Req| NetReq::User(index, req);
    let update = |who: &Who, status: &str| {
        Req::post(
            UPDATE_STATUS,
            who,
            json!({"action_id": action, "action_status": status, "remarks": "mine now"}),
        )
    };
    let with_target_url = |url: &str| {
        let mut body = f.perform.clone();
        body["target_item"]["item_instance_url"] = json!(url);
        body
    };
    let mut cases = vec![
        // API1: another user's action, on both instances.
        net_case(
            Bola,
            "Y performs with X's source item",
            user(SOURCE, Req::post(PERFORM, &mallory, f.perform.clone())),
            404,
            "SOURCE_ITEM_NOT_FOUND",
        ),
        net_case(
            Bola,
            "Y moves X's action",
            user(TARGET, update(&mallory, "rejected")),
            404,
            "ACTION_NOT_FOUND",
        ),
        net_case(
            Bola,
            "Y moves the source's copy of X's action",
            user(SOURCE, update(&mallory, "rejected")),
            404,
            "ACTION_NOT_FOUND",
        ),
        // The initiator knows the action exists, but only the target item's owner moves it.
        net_case(
            Function,
            "the source owner moves the action",
            user(SOURCE, update(&asha, "rejected")),
            403,
            "NOT_OWNER",
        ),
        // API2: the peer write routes.
        net_case(
            Authentication,
            "network perform signed by a member that is not the source's instance",
            NetReq::Peer(
                TARGET,
                PeerReq::signed(
                    net.signer(OTHER).expect("signed"),
                    net.url(TARGET),
                    NETWORK_PERFORM,
                    f.network_perform.to_string().into_bytes(),
                    now(),
                ),
            ),
            403,
            "SIGNER_NOT_INSTANCE",
        ),
        net_case(
            Authentication,
            "event store signed by a member that is not the target's instance",
            NetReq::Peer(
                SOURCE,
                PeerReq::signed(
                    net.signer(OTHER).expect("signed"),
                    net.url(SOURCE),
                    EVENT_STORE,
                    f.event.to_string().into_bytes(),
                    now(),
                ),
            ),
            403,
            "SIGNER_NOT_INSTANCE",
        ),
        net_case(
            Authentication,
            "event store signed by the source's instance itself",
            NetReq::Peer(
                SOURCE,
                PeerReq::signed(
                    net.signer(SOURCE).expect("signed"),
                    net.url(SOURCE),
                    EVENT_STORE,
                    f.event.to_string().into_bytes(),
                    now(),
                ),
            ),
            403,
            "SIGNER_NOT_INSTANCE",
        ),
        // API4: listings and bodies.
        net_case(
            Resources,
            "action listing limit 101",
            user(TARGET, Req::get(format!("{ACTION_FETCH}?limit=101"), &ravi)),
            400,
            "INVALID_PAGINATION",
        ),
        net_case(
            Resources,
            "event listing offset 10001",
            user(
                TARGET,
                Req::get(format!("{EVENT_FETCH}?offset=10001"), &ravi),
            ),
            400,
            "INVALID_PAGINATION",
        ),
        net_case(
            Resources,
            "event listing negative update_count",
            user(
                TARGET,
                Req::get(format!("{EVENT_FETCH}?update_count=-1"), &ravi),
            ),
            400,
            "FST_ERR_VALIDATION",
        ),
        net_case(
            Resources,
            "action listing repeated action_id",
            user(
                TARGET,
                Req::get(
                    format!("{ACTION_FETCH}?action_id={action}&action_id={action}"),
                    &ravi,
                ),
            ),
            400,
            "FST_ERR_VALIDATION",
        ),
        net_case(
            Resources,
            "action listing unknown ownership role",
            user(
                TARGET,
                Req::get(format!("{ACTION_FETCH}?ownership_role=everyone"), &ravi),
            ),
            400,
            "FST_ERR_VALIDATION",
        ),
        net_case(
            Resources,
            "perform body over the limit",
            user(
                SOURCE,
                Req::new(Method::POST, PERFORM, &asha).raw("application/json", {
                    let mut b = f.perform.clone();
                    b["requirements_snapshot"]["goal"] = json!("x".repeat(1024 * 1024 + 1));
                    b.to_string().into_bytes()
                }),
            ),
            413,
            "FST_ERR_CTP_BODY_TOO_LARGE",
        ),
        net_case(
            Resources,
            "perform requirements nested too deep",
            user(
                SOURCE,
                Req::new(Method::POST, PERFORM, &asha).raw("application/json", {
                    let mut nested = json!("x");
                    for _ in 0..40 {
                        nested = json!({"a": nested});
                    }
                    let mut b = f.perform.clone();
                    b["requirements_snapshot"]["goal"] = nested;
                    b.to_string().into_bytes()
                }),
            ),
            400,
            "FST_ERR_CTP_JSON_TOO_DEEP",
        ),
        net_case(
            Resources,
            "status update nested too deep",
            user(
                TARGET,
                Req::new(Method::POST, UPDATE_STATUS, &ravi)
                    .raw("application/json", nested_arrays(40)),
            ),
            400,
            "FST_ERR_CTP_JSON_TOO_DEEP",
        ),
        net_case(
            Resources,
            "a 10 KB idempotency key",
            user(
                SOURCE,
                Req::post(PERFORM, &asha, f.perform.clone())
                    .header("idempotency-key", "k".repeat(10_000)),
            ),
            400,
            "INVALID_INPUT",
        ),
        // API7: the target instance URL is taken from the network document, never called as sent.
        net_case(
            Ssrf,
            "perform towards a loopback listener",
            user(
                SOURCE,
                Req::post(PERFORM, &asha, with_target_url(&trap.url(""))),
            ),
            400,
            "INVALID_TARGET_INSTANCE",
        ),
        net_case(
            Ssrf,
            "perform towards cloud metadata",
            user(
                SOURCE,
                Req::post(PERFORM, &asha, with_target_url("http://169.254.169.254")),
            ),
            400,
            "INVALID_TARGET_INSTANCE",
        ),
    ];
    for (who, index) in [(&mallory, TARGET), (&mallory, SOURCE)] {
        let name = match who {
            Who::Dev(name) => name.clone(),
            _ => String::new(),
        };
        cases.push(empty_net_case(
            Bola,
            format!("{name} lists the action by id on instance {index}"),
            user(
                index,
                Req::get(format!("{ACTION_FETCH}?action_id={action}"), who),
            ),
        ));
        cases.push(empty_net_case(
            Bola,
            format!("{name} lists the events by action on instance {index}"),
            user(
                index,
                Req::get(format!("{EVENT_FETCH}?action_id={action}"), who),
            ),
        ));
    }
    cases.push(empty_net_case(
        Bola,
        "Y lists the actions received by X's item",
        user(
            TARGET,
            Req::get(
                format!(
                    "{ACTION_FETCH}?ownership_role=received&item_id={}",
                    f.tutor_id
                ),
                &mallory,
            ),
        ),
    ));
    cases.push(empty_net_case(
        Bola,
        "Y lists the actions initiated by X's item",
        user(
            SOURCE,
            Req::get(
                format!(
                    "{ACTION_FETCH}?ownership_role=initiated&item_id={}",
                    f.student_id
                ),
                &mallory,
            ),
        ),
    ));
    cases.extend(signature_cases(
        net,
        NETWORK_PERFORM,
        &f.network_perform,
        SOURCE,
        TARGET,
    ));
    cases.extend(signature_cases(net, EVENT_STORE, &f.event, TARGET, SOURCE));
    for (path, index, replay) in &f.replays {
        cases.push(net_case(
            Authentication,
            format!("{path} replayed"),
            NetReq::Peer(*index, replay.clone()),
            401,
            "NONCE_REPLAYED",
        ));
    }
    cases
}

/// Server-owned fields of an action sent by a client or by the source's instance are
/// ignored: the stored action has the target's owner, a fresh id, `created` and count 0.
async fn assert_actions_ignore_server_owned_fields(net: &TestNetwork, f: &ActionFixture) {
    let ravi = Who::Dev("ravi".into());
    let forged_id = uuid::Uuid::new_v4().to_string();
    let forged = json!({"action_id": forged_id, "action_status": "accepted", "update_count": 9,
                        "source_item_owner": "mallory", "target_item_owner": "mallory",
                        "created_at": "2000-01-01T00:00:00.000Z"});
    let mut user_body = f.perform.clone();
    let mut peer_body = f.network_perform.clone();
    for (field, value) in forged.as_object().expect("object") {
        user_body[field] = value.clone();
        // The source's instance speaks for the owners of its own items (reference-contract
        // §8.5): only the rest is forged on the peer call.
        if field != "source_item_owner" {
            peer_body[field] = value.clone();
        }
    }
    let mut created: Vec<(Value, Option<&str>)> = Vec::new();
    let performed = user_expect(
        net,
        SOURCE,
        Req::post(PERFORM, &Who::Dev("asha".into()), user_body)
            .header("idempotency-key", "hostile-assign"),
        201,
    )
    .await;
    created.push((performed, Some("asha")));
    let reply = net
        .peer_post(SOURCE, TARGET, NETWORK_PERFORM, &peer_body)
        .await
        .expect("answered");
    assert_eq!(reply.status, 201, "{}", reply.body);
    // The source's instance speaks for its own items' owners; only the target's are checked.
    created.push((reply.body, None));
    for (performed, source_owner) in created {
        let id = performed["action_id"].as_str().expect("id");
        assert_ne!(id, forged_id, "{performed}");
        assert_eq!(performed["action_status"], "created", "{performed}");
        assert_eq!(performed["update_count"], 0, "{performed}");
        let listed = user_expect(
            net,
            TARGET,
            Req::get(format!("{ACTION_FETCH}?action_id={id}"), &ravi),
            200,
        )
        .await;
        let stored = &listed["actions"][0];
        assert_eq!(stored["target_item_owner"], "ravi", "{listed}");
        assert_eq!(stored["action_status"], "created", "{listed}");
        assert_eq!(stored["update_count"], 0, "{listed}");
        if let Some(owner) = source_owner {
            assert_eq!(stored["source_item_owner"], owner, "{listed}");
        }
        let mallorys = user_expect(
            net,
            TARGET,
            Req::get(
                format!("{ACTION_FETCH}?action_id={id}"),
                &Who::Dev("mallory".into()),
            ),
            200,
        )
        .await;
        assert_eq!(mallorys["meta"]["total"], 0, "{mallorys}");
    }
    // The target item's owner moves the action; the count, name and payload stay the
    // server's.
    let moved = user_expect(
        net,
        TARGET,
        Req::post(
            UPDATE_STATUS,
            &ravi,
            json!({"action_id": f.action_id, "action_status": "rejected", "remarks": "done",
                   "update_count": 99, "action_name": "hire", "action_id_override": forged_id,
                   "event_payload": {"status": "hacked"}, "target_item_owner": "mallory"}),
        ),
        200,
    )
    .await;
    assert_eq!(moved["update_count"], 2, "{moved}");
    assert_eq!(moved["action_name"], "connect", "{moved}");
    assert_eq!(moved["action_id"], f.action_id.as_str(), "{moved}");
    let events = user_expect(
        net,
        TARGET,
        Req::get(
            format!("{EVENT_FETCH}?action_id={}&update_count=2", f.action_id),
            &ravi,
        ),
        200,
    )
    .await;
    let event = &events["events"][0];
    assert_eq!(event["event_payload"]["status"], "rejected", "{events}");
    assert_eq!(event["target_item_owner"], "ravi", "{events}");
}
