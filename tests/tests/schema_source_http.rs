//! `HttpSchemaSource` against a tiny HTTP/1.1 server on loopback: conditional requests,
//! redirects, size cap, bad bodies, timeouts, and the address guard.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dpg_adapters::http::{HttpSchemaSource, HttpSourceConfig};
use dpg_core::ports::{
    FetchOutcome, FetchedDocument, SchemaLocation, SchemaSource, SourceValidators,
};
use dpg_core::{CoreError, ErrorCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ETAG: &str = "\"v1\"";
const DOCUMENT: &str = r#"{"name": "yellow_dot", "domains": []}"#;

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct SeenRequest {
    path: String,
    if_none_match: Option<String>,
}

/// Serves fixed routes on 127.0.0.1, one request per connection.
struct TestServer {
    port: u16,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<SeenRequest>>>,
}

impl TestServer {
    async fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (counter, log) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, log.clone()));
            }
        });
        TestServer {
            port,
            connections,
            requests,
        }
    }

    fn url(&self, path: &str) -> SchemaLocation {
        SchemaLocation::Url(format!("http://127.0.0.1:{}{path}", self.port))
    }

    fn requests(&self) -> Vec<SeenRequest> {
        self.requests.lock().expect("lock").clone()
    }
}

async fn serve(mut stream: TcpStream, log: Arc<Mutex<Vec<SeenRequest>>>) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    log.lock().expect("lock").push(request.clone());
    let _ = match request.path.as_str() {
        "/doc.json" if request.if_none_match.as_deref() == Some(ETAG) => {
            respond(&mut stream, "304 Not Modified", &[("ETag", ETAG)], "").await
        }
        "/doc.json" => {
            let headers = [
                ("ETag", ETAG),
                ("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT"),
            ];
            respond(&mut stream, "200 OK", &headers, DOCUMENT).await
        }
        "/redirect" => respond(&mut stream, "302 Found", &[("Location", "/doc.json")], "").await,
        "/huge-declared" => {
            let length = (9 * 1024 * 1024).to_string();
            respond(
                &mut stream,
                "200 OK",
                &[("Content-Length", length.as_str())],
                "[",
            )
            .await
        }
        "/huge-streamed" => stream_forever(&mut stream).await,
        "/invalid" => respond(&mut stream, "200 OK", &[], "{\"name\": ").await,
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            respond(&mut stream, "200 OK", &[], DOCUMENT).await
        }
        _ => respond(&mut stream, "404 Not Found", &[], "{\"error\": \"nope\"}").await,
    };
}

async fn read_request(stream: &mut TcpStream) -> Option<SeenRequest> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buffer.windows(4).any(|w| w == b"\r\n\r\n") && buffer.len() < 16 * 1024 {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buffer).into_owned();
    let path = head.split_whitespace().nth(1)?.to_string();
    let if_none_match = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("if-none-match")
            .then(|| value.trim().to_string())
    });
    Some(SeenRequest {
        path,
        if_none_match,
    })
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    if !headers.iter().any(|(name, _)| *name == "Content-Length") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// No Content-Length: the body ends when the connection does, which is only after 256 MiB.
async fn stream_forever(stream: &mut TcpStream) -> std::io::Result<()> {
    stream
        .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n[")
        .await?;
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..4096 {
        stream.write_all(&chunk).await?;
    }
    stream.shutdown().await
}

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Loopback is private: these tests need the development setting.
fn permissive(config: HttpSourceConfig) -> HttpSchemaSource {
    install_crypto();
    HttpSchemaSource::new(HttpSourceConfig {
        allow_private: true,
        ..config
    })
    .expect("client")
}

fn fetched(outcome: FetchOutcome) -> FetchedDocument {
    match outcome {
        FetchOutcome::Fetched(document) => document,
        FetchOutcome::NotModified => panic!("expected a document"),
    }
}

fn upstream_message(result: Result<FetchOutcome, CoreError>) -> String {
    match result {
        Err(CoreError::Upstream { code, message }) => {
            assert_eq!(code, ErrorCode::RemoteSchemaFetchFailed);
            message
        }
        other => panic!("expected Upstream, got {other:?}"),
    }
}

fn forbidden_message(result: Result<FetchOutcome, CoreError>) -> String {
    match result {
        Err(CoreError::Forbidden { code, message }) => {
            assert_eq!(code, ErrorCode::SchemaUrlForbidden);
            message
        }
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn fetches_with_validators_then_answers_not_modified() {
    let server = TestServer::start().await;
    let source = permissive(HttpSourceConfig::default());
    let location = server.url("/doc.json");

    let document = fetched(source.fetch(&location, None).await.expect("fetch"));
    assert_eq!(document.body, json!({"name": "yellow_dot", "domains": []}));
    assert_eq!(document.validators.etag.as_deref(), Some(ETAG));
    assert_eq!(
        document.validators.last_modified.as_deref(),
        Some("Wed, 21 Oct 2015 07:28:00 GMT")
    );

    let again = source
        .fetch(&location, Some(document.validators))
        .await
        .expect("refresh");
    assert_eq!(again, FetchOutcome::NotModified);

    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].if_none_match, None);
    assert_eq!(seen[1].if_none_match.as_deref(), Some(ETAG));
}

#[tokio::test]
async fn stale_validators_get_the_new_document() {
    let server = TestServer::start().await;
    let source = permissive(HttpSourceConfig::default());
    let stale = SourceValidators {
        etag: Some("\"v0\"".into()),
        last_modified: None,
    };
    let document = fetched(
        source
            .fetch(&server.url("/doc.json"), Some(stale))
            .await
            .expect("fetch"),
    );
    assert_eq!(document.validators.etag.as_deref(), Some(ETAG));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = TestServer::start().await;
    let source = permissive(HttpSourceConfig::default());
    let message = upstream_message(source.fetch(&server.url("/redirect"), None).await);
    assert!(
        message.contains("302") && message.contains("redirects are not followed"),
        "{message}"
    );
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, vec!["/redirect".to_string()]);
}

#[tokio::test]
async fn a_declared_oversized_body_is_refused() {
    let server = TestServer::start().await;
    let source = permissive(HttpSourceConfig::default());
    let message = upstream_message(source.fetch(&server.url("/huge-declared"), None).await);
    assert!(message.contains("larger than 8388608 bytes"), "{message}");
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_cap_while_streaming() {
    let server = TestServer::start().await;
    let source = permissive(HttpSourceConfig {
        max_body_bytes: 1024 * 1024,
        ..HttpSourceConfig::default()
    });
    let message = upstream_message(source.fetch(&server.url("/huge-streamed"), None).await);
    assert!(message.contains("larger than 1048576 bytes"), "{message}");
}

#[tokio::test]
async fn invalid_json_is_upstream() {
    let server = TestServer::start().await;
    let source = permissive(HttpSourceConfig::default());
    let location = server.url("/invalid");
    let message = upstream_message(source.fetch(&location, None).await);
    assert!(
        message.contains("not valid JSON") && message.contains(location.as_str()),
        "{message}"
    );
}

#[tokio::test]
async fn not_found_is_upstream_with_the_status() {
    let server = TestServer::start().await;
    let source = permissive(HttpSourceConfig::default());
    let location = server.url("/missing.json");
    let message = upstream_message(source.fetch(&location, None).await);
    assert!(
        message.contains("404 Not Found") && message.contains(location.as_str()),
        "{message}"
    );
}

#[tokio::test]
async fn a_slow_server_is_cut_at_the_timeout() {
    let server = TestServer::start().await;
    let source = permissive(HttpSourceConfig {
        timeout: Duration::from_secs(1),
        ..HttpSourceConfig::default()
    });
    let started = Instant::now();
    let message = upstream_message(source.fetch(&server.url("/slow"), None).await);
    assert!(message.contains("timed out"), "{message}");
    // The server answers after 60 s; the bound is the 1 s timeout plus a generous margin.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_default_configuration_refuses_loopback_without_connecting() {
    let server = TestServer::start().await;
    install_crypto();
    let source = HttpSchemaSource::new(HttpSourceConfig::default()).expect("client");

    let literal = forbidden_message(source.fetch(&server.url("/doc.json"), None).await);
    assert!(
        literal.contains("127.0.0.1") && literal.contains("loopback"),
        "{literal}"
    );

    // A name goes through the guarded resolver instead.
    let by_name = SchemaLocation::Url(format!("http://localhost:{}/doc.json", server.port));
    let resolved = forbidden_message(source.fetch(&by_name, None).await);
    assert!(
        resolved.contains("localhost") && resolved.contains("loopback"),
        "{resolved}"
    );

    let mapped = SchemaLocation::Url(format!(
        "http://[::ffff:127.0.0.1]:{}/doc.json",
        server.port
    ));
    forbidden_message(source.fetch(&mapped, None).await);

    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_allow_listed_network_is_reachable_without_allowing_all_private_addresses() {
    let server = TestServer::start().await;
    install_crypto();
    let source = HttpSchemaSource::new(HttpSourceConfig {
        allowed_cidrs: vec!["127.0.0.0/8".parse().expect("net")],
        ..HttpSourceConfig::default()
    })
    .expect("client");
    let by_name = SchemaLocation::Url(format!("http://localhost:{}/doc.json", server.port));
    let document = fetched(source.fetch(&by_name, None).await.expect("allow-listed"));
    assert_eq!(document.body["name"], json!("yellow_dot"));
}
