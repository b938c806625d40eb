//! The HTTP client behind `PeerTransport`: one pooled client, no redirects, every call
//! bounded by a deadline and every answer by a size cap.

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use dpg_core::CoreError;
use dpg_core::model::ItemFilter;
use dpg_core::peer_auth::MacKey;
use dpg_core::ports::{
    BatchAnswer, PeerAnswer, PeerError, PeerPage, PeerPageAnswer, PeerTransport,
};
use dpg_core::services::PeerSigner;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Certificate, redirect};
use serde_json::Value;
use url::Url;

use super::body;
use super::routes::{Operation, RouteMemo};

/// Counter of peer calls, labelled `peer`, `operation` and `outcome`
/// (`ok`, `timeout`, `unreachable`, `status`, `invalid`).
pub const REQUESTS_TOTAL: &str = "dpg_peer_requests_total";
/// Histogram of peer call durations in seconds, labelled `peer` and `operation`.
pub const DURATION_SECONDS: &str = "dpg_peer_request_duration_seconds";

const REQUEST_ID_HEADER: &str = "x-request-id";
const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// How peer calls are bounded; `Default` is the production setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerHttpConfig {
    /// The whole call: connect, send, and read the answer.
    pub call_timeout: Duration,
    pub connect_timeout: Duration,
    /// Answers larger than this are refused while being read.
    pub max_body_bytes: u64,
    /// PEM certificates trusted in addition to the platform's roots (a private CA).
    pub extra_root_ca_pem: Option<Vec<u8>>,
    /// Refuse plain-http peers (outside development).
    pub require_https: bool,
}

impl Default for PeerHttpConfig {
    fn default() -> Self {
        PeerHttpConfig {
            call_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            max_body_bytes: 4 * 1024 * 1024,
            extra_root_ca_pem: None,
            require_https: false,
        }
    }
}

/// Calls other instances' peer endpoints over HTTP(S).
#[derive(Debug, Clone)]
pub struct HttpPeerTransport {
    client: reqwest::Client,
    call_timeout: Duration,
    max_body_bytes: u64,
    require_https: bool,
    /// Signs every request when set (RFC 9421, Ed25519).
    signer: Option<PeerSigner>,
    routes: Arc<RouteMemo>,
}

/// A peer's HTTP answer, read within the size cap.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl HttpPeerTransport {
    /// Installs the ring TLS provider when the process has none yet, so building never panics.
    pub fn new(config: PeerHttpConfig) -> Result<Self, CoreError> {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Losing a race with another installer is fine: a provider is then in place.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let mut builder = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            // Peers are called at the address the network document names, never via a proxy
            // taken from the environment.
            .no_proxy()
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("dpg/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &config.extra_root_ca_pem {
            let certs = Certificate::from_pem_bundle(pem)
                .map_err(|e| CoreError::internal(format!("reading the peer CA bundle: {e}")))?;
            if certs.is_empty() {
                return Err(CoreError::internal(
                    "the peer CA bundle holds no certificate",
                ));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder
            .build()
            .map_err(|e| CoreError::internal(format!("building the peer HTTP client: {e}")))?;
        Ok(HttpPeerTransport {
            client,
            call_timeout: config.call_timeout,
            max_body_bytes: config.max_body_bytes,
            require_https: config.require_https,
            signer: None,
            routes: Arc::default(),
        })
    }

    /// Signs every request with this instance's key from now on.
    pub fn with_signer(mut self, signer: PeerSigner) -> Self {
        self.signer = Some(signer);
        self
    }

    /// One call: POST, read the answer within the deadline, interpret it, and record metrics.
    async fn exchange<T>(
        &self,
        peer_url: &str,
        operation: Operation,
        body: Value,
        headers: &[(&'static str, &str)],
        request_id: &str,
        interpret: impl FnOnce(Answer) -> Result<T, PeerError>,
    ) -> Result<T, PeerError> {
        let started = Instant::now();
        let routes = self.routes.of(peer_url);
        let result = match &routes {
            Ok(routes) => {
                let url = routes.url(operation).clone();
                let call = self.post(peer_url, url, operation, body, headers, request_id);
                match tokio::time::timeout(self.call_timeout, call).await {
                    Ok(answer) => answer.and_then(interpret),
                    Err(_) => Err(PeerError::Timeout),
                }
            }
            Err(error) => Err(error.clone()),
        };
        let peer = routes.as_ref().map_or("invalid", |r| r.origin.as_str());
        record(peer, operation, started.elapsed(), &result);
        if let Err(error) = &result {
            tracing::warn!(
                peer,
                operation = operation.as_str(),
                request_id,
                %error,
                "peer call failed"
            );
        }
        result
    }

    /// Sends the call, signed when this instance has a key. A read goes with the pair key
    /// of this instance and the peer when there is one; a peer that refuses it (401: an
    /// older instance, or one that does not hold the key it publishes) gets the same read
    /// again with an Ed25519 signature, and Ed25519 reads for a while.
    async fn post(
        &self,
        peer_url: &str,
        url: Url,
        operation: Operation,
        body: Value,
        headers: &[(&'static str, &str)],
        request_id: &str,
    ) -> Result<Answer, PeerError> {
        if self.require_https && url.scheme() != "https" {
            return Err(PeerError::Unreachable(
                "peers are called over https only".to_string(),
            ));
        }
        // Shared, not copied, by a second attempt.
        let body = Bytes::from(body.to_string().into_bytes());
        let now = chrono::Utc::now().timestamp();
        let pair_key = match &self.signer {
            Some(signer) if operation.is_read() => signer.pair_key_for(peer_url, now),
            _ => None,
        };
        let answer = self
            .send(
                url.clone(),
                body.clone(),
                pair_key.as_ref(),
                now,
                headers,
                request_id,
            )
            .await?;
        if answer.status != 401 || pair_key.is_none() {
            return Ok(answer);
        }
        if let Some(signer) = &self.signer {
            signer.pair_key_refused(peer_url, now);
        }
        tracing::info!(
            peer = url.origin().ascii_serialization(),
            request_id,
            "the peer refused a pair-key signature; its reads are signed with Ed25519 for now"
        );
        self.send(url, body, None, now, headers, request_id).await
    }

    async fn send(
        &self,
        url: Url,
        body: Bytes,
        pair_key: Option<&MacKey>,
        now: i64,
        headers: &[(&'static str, &str)],
        request_id: &str,
    ) -> Result<Answer, PeerError> {
        let mut signature_headers = Vec::new();
        if let Some(signer) = &self.signer {
            let nonce = uuid::Uuid::new_v4().simple().to_string();
            signature_headers = signer
                .headers_for(
                    pair_key,
                    "POST",
                    &url,
                    "application/json",
                    &body,
                    now,
                    &nonce,
                )
                .map_err(|e| PeerError::Unreachable(format!("cannot sign: {e}")))?;
        }
        let mut request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json");
        for (name, value) in signature_headers {
            request = request.header(name, value);
        }
        for (name, value) in headers {
            match HeaderValue::from_str(value) {
                Ok(value) => request = request.header(*name, value),
                Err(_) => {
                    return Err(PeerError::Invalid(format!("{name} is not a header value")));
                }
            }
        }
        let mut request = request.body(body);
        match HeaderValue::from_str(request_id) {
            Ok(value) => request = request.header(REQUEST_ID_HEADER, value),
            Err(_) => tracing::debug!(request_id, "request id is not a header value; not sent"),
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status().as_u16();
        let body = self.read_body(response).await?;
        Ok(Answer { status, body })
    }

    /// Reads the answer chunk by chunk, refusing it as soon as it passes the cap.
    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, PeerError> {
        let too_large =
            || PeerError::Invalid(format!("answer larger than {} bytes", self.max_body_bytes));
        if response
            .content_length()
            .is_some_and(|n| n > self.max_body_bytes)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if u64::try_from(body.len() + chunk.len()).map_or(true, |n| n > self.max_body_bytes) {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[async_trait]
impl PeerTransport for HttpPeerTransport {
    async fn count_local(
        &self,
        peer_url: &str,
        filter: &ItemFilter,
        request_id: &str,
    ) -> Result<u64, PeerError> {
        let body = body::count_body(filter);
        self.exchange(
            peer_url,
            Operation::CountLocal,
            body,
            &[],
            request_id,
            |a| body::parse_count(&successful(a)?),
        )
        .await
    }

    async fn fetch_local(
        &self,
        peer_url: &str,
        filter: &ItemFilter,
        page: &PeerPage,
        request_id: &str,
    ) -> Result<PeerPageAnswer, PeerError> {
        let body = body::fetch_body(filter, page);
        self.exchange(
            peer_url,
            Operation::FetchLocal,
            body,
            &[],
            request_id,
            |a| body::parse_page(&successful(a)?),
        )
        .await
    }

    async fn perform_action(
        &self,
        peer_url: &str,
        body: &Value,
        idempotency_key: &str,
        request_id: &str,
    ) -> Result<PeerAnswer, PeerError> {
        self.exchange(
            peer_url,
            Operation::PerformAction,
            body.clone(),
            &[(IDEMPOTENCY_KEY_HEADER, idempotency_key)],
            request_id,
            |answer| {
                Ok(PeerAnswer {
                    status: answer.status,
                    body: serde_json::from_slice(&answer.body).ok(),
                })
            },
        )
        .await
    }

    async fn store_event(
        &self,
        peer_url: &str,
        body: &Value,
        request_id: &str,
    ) -> Result<u16, PeerError> {
        self.exchange(
            peer_url,
            Operation::StoreEvent,
            body.clone(),
            &[],
            request_id,
            |answer| Ok(answer.status),
        )
        .await
    }

    async fn store_events(
        &self,
        peer_url: &str,
        bodies: Vec<Value>,
        request_id: &str,
    ) -> Result<BatchAnswer, PeerError> {
        let sent = bodies.len();
        self.exchange(
            peer_url,
            Operation::StoreEvents,
            // Moved, not copied: `json!` would serialize the bodies again.
            Value::Object(serde_json::Map::from_iter([(
                "events".to_string(),
                Value::Array(bodies),
            )])),
            &[],
            request_id,
            |answer| batch_answer(answer, sent),
        )
        .await
    }
}

/// How a batch of `sent` events was answered (see [`BatchAnswer`]).
fn batch_answer(answer: Answer, sent: usize) -> Result<BatchAnswer, PeerError> {
    match answer.status {
        200..=299 => Ok(body::parse_batch_statuses(&answer.body, sent)
            .map_or(BatchAnswer::Unsupported, BatchAnswer::Statuses)),
        404 | 405 | 501 => Ok(BatchAnswer::Unsupported),
        status @ (400 | 413 | 415 | 422) => Ok(BatchAnswer::Refused(status)),
        status => Err(PeerError::Status(status)),
    }
}

/// The body of a 2xx answer; any other status is `PeerError::Status` (the body is dropped,
/// never relayed).
fn successful(answer: Answer) -> Result<Vec<u8>, PeerError> {
    if (200..300).contains(&answer.status) {
        Ok(answer.body)
    } else {
        Err(PeerError::Status(answer.status))
    }
}

/// Maps a client failure. Only the connect phase has its own timer; the call deadline is
/// enforced around the whole exchange.
fn transport_error(error: reqwest::Error) -> PeerError {
    tracing::debug!(error = ?error, "peer transport error");
    if error.is_timeout() {
        return PeerError::Timeout;
    }
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind;
            let reason = match io.kind() {
                ErrorKind::ConnectionRefused => "connection refused",
                ErrorKind::ConnectionReset => "connection reset",
                ErrorKind::ConnectionAborted => "connection aborted",
                ErrorKind::UnexpectedEof => "connection closed",
                ErrorKind::TimedOut => return PeerError::Timeout,
                _ => break,
            };
            return PeerError::Unreachable(reason.to_string());
        }
        source = cause.source();
    }
    let reason = if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "answer interrupted"
    } else {
        "connection closed without an answer"
    };
    PeerError::Unreachable(reason.to_string())
}

fn outcome<T>(result: &Result<T, PeerError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(PeerError::Timeout) => "timeout",
        Err(PeerError::Unreachable(_)) => "unreachable",
        Err(PeerError::Status(_)) => "status",
        Err(PeerError::Invalid(_)) => "invalid",
    }
}

fn record<T>(peer: &str, operation: Operation, elapsed: Duration, result: &Result<T, PeerError>) {
    let operation = operation.as_str();
    metrics::counter!(
        REQUESTS_TOTAL,
        "peer" => peer.to_string(),
        "operation" => operation,
        "outcome" => outcome(result)
    )
    .increment(1);
    metrics::histogram!(
        DURATION_SECONDS,
        "peer" => peer.to_string(),
        "operation" => operation
    )
    .record(elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
        SharedString, Unit,
    };

    use super::*;

    /// A self-signed CA certificate, only ever parsed.
    const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBjTCCATOgAwIBAgIUEutelMLRGDNcrpdQYorCyfNaILAwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQZHBnIHRlc3QgcGVlciBDQTAgFw0yNjExMjgwNDEzNTJaGA8y
MTI2MTEwNDA0MTM1MlowGzEZMBcGA1UEAwwQZHBnIHRlc3QgcGVlciBDQTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABH/N1erXiS11OzP3Gm1kkI23LVu6yNUDZfkJ
3AbpnAfxeCFHOeHAz8YH8Bz849hTQdEFntMdJfidwXhjP8Oe6FyjUzBRMB0GA1Ud
DgQWBBTlu70McVq98fELBDByQOvd+dmX/DAfBgNVHSMEGDAWgBTlu70McVq98fEL
BDByQOvd+dmX/DAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQDv
W04oPmehMGPA51G1gin3kyenzWbaiGV9iqvJkmEDEAIgRAkIrGe4QrsRtrCGyozL
+Ne+3YuAG3OVgX1P4ihAYA4=
-----END CERTIFICATE-----
";

    #[test]
    fn extra_root_ca_is_accepted_and_garbage_refused() {
        let config = PeerHttpConfig {
            extra_root_ca_pem: Some(TEST_CA_PEM.as_bytes().to_vec()),
            ..PeerHttpConfig::default()
        };
        HttpPeerTransport::new(config).expect("valid CA");
        for bad in [&b"not a certificate"[..], b""] {
            let config = PeerHttpConfig {
                extra_root_ca_pem: Some(bad.to_vec()),
                ..PeerHttpConfig::default()
            };
            assert!(HttpPeerTransport::new(config).is_err());
        }
    }

    #[test]
    fn defaults_match_the_documented_bounds() {
        let config = PeerHttpConfig::default();
        assert_eq!(config.call_timeout, Duration::from_secs(2));
        assert_eq!(config.connect_timeout, Duration::from_secs(1));
        assert_eq!(config.max_body_bytes, 4 * 1024 * 1024);
        assert_eq!(config.extra_root_ca_pem, None);
    }

    #[tokio::test]
    async fn invalid_peer_url_fails_without_a_request() {
        let transport = HttpPeerTransport::new(PeerHttpConfig::default()).expect("client");
        let err = transport
            .count_local("not a url", &ItemFilter::new("dev", "jobs"), "r-1")
            .await
            .expect_err("no request");
        assert!(matches!(err, PeerError::Unreachable(_)), "{err:?}");
    }

    /// Records counters and histogram samples as `name{label=value,...}`.
    #[derive(Default)]
    struct TestRecorder {
        counters: Mutex<BTreeMap<String, Arc<Total>>>,
        histograms: Mutex<BTreeMap<String, Arc<Total>>>,
    }

    #[derive(Default)]
    struct Total(AtomicU64);

    impl CounterFn for Total {
        fn increment(&self, value: u64) {
            self.0.fetch_add(value, Ordering::Relaxed);
        }
        fn absolute(&self, value: u64) {
            self.0.fetch_max(value, Ordering::Relaxed);
        }
    }

    impl HistogramFn for Total {
        fn record(&self, _: f64) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn render(key: &Key) -> String {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        format!("{}{{{}}}", key.name(), labels.join(","))
    }

    fn totals(map: &Mutex<BTreeMap<String, Arc<Total>>>) -> BTreeMap<String, u64> {
        map.lock()
            .expect("lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.0.load(Ordering::Relaxed)))
            .collect()
    }

    impl Recorder for TestRecorder {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let total = self
                .counters
                .lock()
                .expect("lock")
                .entry(render(key))
                .or_default()
                .clone();
            Counter::from_arc(total)
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            let total = self
                .histograms
                .lock()
                .expect("lock")
                .entry(render(key))
                .or_default()
                .clone();
            Histogram::from_arc(total)
        }
    }

    #[test]
    fn every_call_counts_its_outcome_and_duration() {
        let recorder = TestRecorder::default();
        metrics::with_local_recorder(&recorder, || {
            let peer = "http://a.test";
            let elapsed = Duration::from_millis(5);
            record(
                peer,
                Operation::CountLocal,
                elapsed,
                &Ok::<u64, PeerError>(1),
            );
            record::<u64>(
                peer,
                Operation::CountLocal,
                elapsed,
                &Err(PeerError::Timeout),
            );
            record::<u64>(
                peer,
                Operation::FetchLocal,
                elapsed,
                &Err(PeerError::Unreachable("x".into())),
            );
            record::<u64>(
                peer,
                Operation::FetchLocal,
                elapsed,
                &Err(PeerError::Status(500)),
            );
            record::<u64>(
                peer,
                Operation::FetchLocal,
                elapsed,
                &Err(PeerError::Invalid("x".into())),
            );
        });
        let counters = totals(&recorder.counters);
        let expected: BTreeMap<String, u64> = [
            "operation=count_local,outcome=ok",
            "operation=count_local,outcome=timeout",
            "operation=fetch_local,outcome=unreachable",
            "operation=fetch_local,outcome=status",
            "operation=fetch_local,outcome=invalid",
        ]
        .iter()
        .map(|labels| {
            (
                format!("dpg_peer_requests_total{{peer=http://a.test,{labels}}}"),
                1,
            )
        })
        .collect();
        assert_eq!(counters, expected);
        let histograms = totals(&recorder.histograms);
        assert_eq!(
            histograms
                .get("dpg_peer_request_duration_seconds{peer=http://a.test,operation=count_local}"),
            Some(&2)
        );
        assert_eq!(
            histograms
                .get("dpg_peer_request_duration_seconds{peer=http://a.test,operation=fetch_local}"),
            Some(&3)
        );
    }
}
