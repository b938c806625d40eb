//! A loopback HTTP/1.1 proxy that sits in front of an instance (or a fake peer) and injects
//! faults on demand: latency, silence, resets, slow or oversized bodies, error statuses and
//! hostile answers, answers lost after the target acted, and faults for chosen requests only.
//! Every request that reaches it is counted and timed by path.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HOST, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = BoxBody<Bytes, BoxError>;

/// What the proxy does with the next requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward as is.
    Pass,
    /// Wait this long, then forward.
    Latency(Duration),
    /// Accept the request and never answer.
    BlackHole,
    /// Close the connection at once, without an answer.
    Reset,
    /// Send a 200 head and the start of a JSON body, then one byte every 200 ms for minutes.
    SlowBody,
    /// Answer this status with a small JSON body.
    Status(u16),
    /// Answer 200 with a body that is not JSON.
    Garbage,
    /// Answer 200 with a JSON-looking body of this many bytes, streamed in chunks without
    /// a Content-Length.
    Oversized(usize),
    /// Answer 200 with this body as JSON.
    Replace(String),
    /// Forward the request and let the target act on it and answer, then drop that answer
    /// and do this instead: [`Fault::Reset`], [`Fault::BlackHole`] or a canned answer (any
    /// other fault passes the target's answer on). The caller never learns that it worked,
    /// as when the sender crashes between sending and recording.
    AfterForward(Box<Fault>),
    /// `fault` for the requests whose body contains `body_contains`, [`Fault::Pass`] for
    /// the others (the body is read whole first). Requests it applies to are counted by
    /// [`FaultProxy::matched`].
    When {
        body_contains: String,
        fault: Box<Fault>,
    },
    /// `fault` for the requests to exactly this path, [`Fault::Pass`] for the others (an
    /// instance without a route: `Status(404)`). Counted by [`FaultProxy::matched`].
    OnPath { path: String, fault: Box<Fault> },
}

impl Fault {
    /// [`Fault::AfterForward`]: forward, then answer as `fault` would.
    pub fn after_forward(fault: Fault) -> Fault {
        Fault::AfterForward(Box::new(fault))
    }

    /// [`Fault::When`]: `fault` for requests whose body contains `marker`, pass the rest.
    pub fn when_body_contains(marker: impl Into<String>, fault: Fault) -> Fault {
        Fault::When {
            body_contains: marker.into(),
            fault: Box::new(fault),
        }
    }

    /// [`Fault::OnPath`]: `fault` for requests to `path`, pass the rest.
    pub fn on_path(path: impl Into<String>, fault: Fault) -> Fault {
        Fault::OnPath {
            path: path.into(),
            fault: Box::new(fault),
        }
    }
}

/// A running proxy; stops when dropped (or with [`FaultProxy::shutdown`]).
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: Option<JoinHandle<()>>,
}

struct State {
    target: SocketAddr,
    fault: Mutex<Fault>,
    counts: Mutex<HashMap<String, u64>>,
    arrivals: Mutex<Vec<(Instant, String)>>,
    matched: AtomicU64,
    /// Requests being handled now, and the most at once.
    in_flight: Mutex<(u64, u64)>,
    connections: AtomicU64,
    client: Client<HttpConnector, ProxyBody>,
}

/// Returned by the service to make hyper drop the connection without an answer.
#[derive(Debug)]
struct ResetConnection;

impl std::fmt::Display for ResetConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by the fault proxy")
    }
}

impl std::error::Error for ResetConnection {}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `target`, which must be a loopback
    /// address. Starts in [`Fault::Pass`].
    pub async fn start(target: SocketAddr) -> anyhow::Result<FaultProxy> {
        if !target.ip().is_loopback() {
            bail!("the fault proxy only forwards to loopback addresses, not {target}");
        }
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .context("binding the fault proxy")?;
        let addr = listener.local_addr().context("fault proxy address")?;
        let state = Arc::new(State {
            target,
            fault: Mutex::new(Fault::Pass),
            counts: Mutex::new(HashMap::new()),
            arrivals: Mutex::new(Vec::new()),
            matched: AtomicU64::new(0),
            in_flight: Mutex::new((0, 0)),
            connections: AtomicU64::new(0),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let task = tokio::spawn(accept_loop(listener, state.clone()));
        Ok(FaultProxy {
            addr,
            state,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:<port>`, to use as an instance URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches the fault for the requests that arrive from now on.
    pub fn set(&self, fault: Fault) {
        *lock(&self.state.fault) = fault;
    }

    /// Requests that reached the proxy with this path (query excluded), whatever the fault.
    pub fn count(&self, path: &str) -> u64 {
        lock(&self.state.counts).get(path).copied().unwrap_or(0)
    }

    /// When each request with this path (query excluded) reached the proxy, in order.
    pub fn arrivals(&self, path: &str) -> Vec<Instant> {
        lock(&self.state.arrivals)
            .iter()
            .filter(|(_, p)| p == path)
            .map(|(at, _)| *at)
            .collect()
    }

    /// Requests a [`Fault::When`] applied its fault to.
    pub fn matched(&self) -> u64 {
        self.state.matched.load(Ordering::SeqCst)
    }

    /// Most requests the proxy was handling at once. A request counts until it is answered
    /// or its caller gives up and closes the connection.
    pub fn peak_in_flight(&self) -> u64 {
        lock(&self.state.in_flight).1
    }

    /// Requests that reached the proxy, all paths together.
    pub fn total(&self) -> u64 {
        lock(&self.state.counts).values().sum()
    }

    /// Connections accepted so far (keep-alive reuse shows as fewer connections than requests).
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Stops listening and drops every open connection.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A poisoned lock only means another test thread panicked; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Accepts connections until aborted; the connections live in a `JoinSet` owned here, so
/// aborting this task closes them all.
async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors and the like: back off briefly.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                state.connections.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| handle(state.clone(), request));
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, ResetConnection> {
    let path = request.uri().path().to_string();
    *lock(&state.counts).entry(path.clone()).or_default() += 1;
    lock(&state.arrivals).push((Instant::now(), path));
    let _handling = InFlight::enter(&state);
    let fault = lock(&state.fault).clone();
    apply(
        &state,
        fault,
        request.map(|body| body.map_err(BoxError::from).boxed()),
    )
    .await
}

/// Counts a request in flight until dropped (answered, or abandoned with its connection).
struct InFlight<'a>(&'a State);

impl<'a> InFlight<'a> {
    fn enter(state: &'a State) -> Self {
        let mut in_flight = lock(&state.in_flight);
        in_flight.0 += 1;
        in_flight.1 = in_flight.1.max(in_flight.0);
        InFlight(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(&self.0.in_flight).0 -= 1;
    }
}

/// Serves one request according to `fault`.
async fn apply(
    state: &State,
    fault: Fault,
    request: Request<ProxyBody>,
) -> Result<Response<ProxyBody>, ResetConnection> {
    match fault {
        Fault::Pass => Ok(forward(state, request).await),
        Fault::Latency(delay) => {
            tokio::time::sleep(delay).await;
            Ok(forward(state, request).await)
        }
        Fault::BlackHole => std::future::pending().await,
        Fault::Reset => Err(ResetConnection),
        Fault::AfterForward(instead) => {
            let answer = forward(state, request).await;
            if matches!(
                *instead,
                Fault::Pass
                    | Fault::Latency(_)
                    | Fault::AfterForward(_)
                    | Fault::When { .. }
                    | Fault::OnPath { .. }
            ) {
                return Ok(answer);
            }
            // Let the target finish its answer, then lose it.
            let _ = answer.into_body().collect().await;
            match *instead {
                Fault::BlackHole => std::future::pending().await,
                Fault::Reset => Err(ResetConnection),
                canned => Ok(canned_answer(canned)),
            }
        }
        Fault::When {
            body_contains,
            fault,
        } => {
            let (parts, body) = request.into_parts();
            let Ok(collected) = body.collect().await else {
                return Err(ResetConnection);
            };
            let bytes = collected.to_bytes();
            let hit = !body_contains.is_empty()
                && bytes
                    .windows(body_contains.len())
                    .any(|w| w == body_contains.as_bytes());
            let request = Request::from_parts(parts, full_body(bytes));
            if hit {
                state.matched.fetch_add(1, Ordering::SeqCst);
                Box::pin(apply(state, *fault, request)).await
            } else {
                Ok(forward(state, request).await)
            }
        }
        Fault::OnPath { path, fault } => {
            if request.uri().path() == path {
                state.matched.fetch_add(1, Ordering::SeqCst);
                Box::pin(apply(state, *fault, request)).await
            } else {
                Ok(forward(state, request).await)
            }
        }
        canned => {
            // Read the request to its end so the connection stays usable for keep-alive.
            let _ = request.into_body().collect().await;
            Ok(canned_answer(canned))
        }
    }
}

/// Headers that belong to one connection and are never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

async fn forward(state: &State, request: Request<ProxyBody>) -> Response<ProxyBody> {
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let Ok(uri) = format!("http://{}{path}", state.target).parse::<Uri>() else {
        return json_answer(StatusCode::BAD_GATEWAY, r#"{"error":"BAD_PROXY_PATH"}"#);
    };
    parts.uri = uri;
    strip_hop_by_hop(&mut parts.headers);
    if let Ok(host) = HeaderValue::from_str(&state.target.to_string()) {
        parts.headers.insert(HOST, host);
    }
    match state.client.request(Request::from_parts(parts, body)).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.map_err(BoxError::from).boxed())
        }
        Err(_) => json_answer(
            StatusCode::BAD_GATEWAY,
            r#"{"error":"UPSTREAM_UNAVAILABLE"}"#,
        ),
    }
}

fn canned_answer(fault: Fault) -> Response<ProxyBody> {
    match fault {
        Fault::Status(code) => json_answer(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            r#"{"error":"FAULT_INJECTED","message":"status injected by the fault proxy"}"#,
        ),
        Fault::Garbage => json_answer(StatusCode::OK, "<html><body>not json</body></html>"),
        Fault::Replace(body) => json_answer(StatusCode::OK, body),
        Fault::SlowBody => streamed(slow_body()),
        Fault::Oversized(size) => streamed(oversized_body(size)),
        // Handled by the caller; answering 500 keeps this total.
        Fault::Pass
        | Fault::Latency(_)
        | Fault::BlackHole
        | Fault::Reset
        | Fault::AfterForward(_)
        | Fault::When { .. }
        | Fault::OnPath { .. } => json_answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":"FAULT_PROXY"}"#,
        ),
    }
}

fn full_body(bytes: Bytes) -> ProxyBody {
    Full::new(bytes)
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn json_answer(status: StatusCode, body: impl Into<Bytes>) -> Response<ProxyBody> {
    let mut response = Response::new(full_body(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A 200 JSON answer whose body comes from `chunks`, with chunked transfer encoding.
fn streamed(
    chunks: impl futures::Stream<Item = Bytes> + Send + Sync + 'static,
) -> Response<ProxyBody> {
    let body = StreamBody::new(chunks.map(|chunk| Ok::<_, BoxError>(Frame::data(chunk))));
    let mut response = Response::new(BoxBody::new(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The start of a JSON object, then one space every 200 ms for ten minutes.
fn slow_body() -> impl futures::Stream<Item = Bytes> + Send + Sync + 'static {
    let head = futures::stream::iter([Bytes::from_static(b"{\"items\":[")]);
    let trickle = futures::stream::unfold(0u32, |sent| async move {
        if sent >= 3000 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        Some((Bytes::from_static(b" "), sent + 1))
    });
    head.chain(trickle)
}

/// `{"items":["xxx…"]}` of exactly `size` bytes (only `x` below 14 bytes), produced in
/// 64 KiB slices of one shared buffer so the proxy never holds the whole body.
fn oversized_body(size: usize) -> impl futures::Stream<Item = Bytes> + Send + Sync + 'static {
    const OPEN: &[u8] = b"{\"items\":[\"";
    const CLOSE: &[u8] = b"\"]}";
    const CHUNK: usize = 64 * 1024;
    let framed = size >= OPEN.len() + CLOSE.len();
    let filler_len = if framed {
        size - OPEN.len() - CLOSE.len()
    } else {
        size
    };
    let filler = Bytes::from(vec![b'x'; CHUNK]);
    let filler_chunks = futures::stream::unfold(filler_len, move |left| {
        let filler = filler.clone();
        async move {
            if left == 0 {
                return None;
            }
            let n = left.min(CHUNK);
            Some((filler.slice(..n), left - n))
        }
    });
    let open = futures::stream::iter(framed.then_some(Bytes::from_static(OPEN)));
    let close = futures::stream::iter(framed.then_some(Bytes::from_static(CLOSE)));
    open.chain(filler_chunks).chain(close)
}
