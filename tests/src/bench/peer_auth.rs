//! `bench --peer-auth`: what signing peer requests costs.
//!
//! In process: sign one realistic `fetch_local` request many times, and verify it the way a
//! receiving instance does. End to end: two networks of three `dpg` children up at once,
//! unsigned (`peer_auth: off`, no keys) and signed (a key per instance, `peer_auth:
//! required`), taking turns every half second under the same network-read cache misses, each
//! of which makes the aggregator call both peers. Every round fills its [`NetworkReport`]s
//! as it goes, so a failure keeps what was measured.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use dpg_adapters::memory::MemoryCache;
use dpg_adapters::system::SystemClock;
use dpg_core::model::{InstanceIdentity, ItemKey, ServedBindings};
use dpg_core::network::{
    CatalogHandle, CatalogOrigin, NetworkCatalog, NetworkDocument, SchemaCompiler,
};
use dpg_core::peer_auth::{RequestParts, content_digest, verify_request};
use dpg_core::ports::Clock;
use dpg_core::services::{PeerCaller, PeerSigner, PeerTrustService, ReceivedRequest};
use dpg_tests::support::keys::{InstanceKey, signed_post_headers};
use serde_json::{Value, json};
use uuid::Uuid;

use super::child::DpgChild;
use super::load::{Measured, Until};
use super::network::{
    BenchNetwork, DOMAIN, FETCH_LOCAL, LIMIT, Miss, NETWORK, NetworkReport, NetworkSettings, Op,
    Tagging, Trust, Ttls, miss_phase, network_document, seed,
};

/// Items created on each instance before every round.
pub const ITEMS_PER_INSTANCE: u64 = 2_000;
/// Timed iterations of every in-process measurement (after [`MICRO_WARM_UP`] untimed ones).
pub const MICRO_ITERATIONS: usize = 20_000;
const MICRO_WARM_UP: usize = 1_000;
/// Seconds of cache misses before the measured phases of a round (not recorded): peer
/// connections are opened and the instances' caches and SQLite pages warm up.
const WARM_UP_SECONDS: u64 = 2;
/// Rounds of each kind (unsigned, signed) unless `--rounds` says otherwise.
pub const DEFAULT_ROUNDS: usize = 2;

/// The unsigned and signed networks of each round, `per_kind` rounds (both networks of a
/// round run at once, taking turns).
pub fn rounds(per_kind: usize) -> Vec<(Trust, usize)> {
    (1..=per_kind)
        .flat_map(|number| [(Trust::Off, number), (Trust::Required, number)])
        .collect()
}
/// The cache-miss phases of every round (what the aggregator asks its two peers per request),
/// at `--concurrency` (`false`: CPU-bound on a small machine, so every microsecond of CPU
/// any process spends shows) and one request at a time (`true`: the request's own path).
pub const PHASES: [(Op, Miss, bool); 4] = [
    (Op::CacheMiss, Miss::Ttl, false),
    (Op::IdMiss, Miss::Id, false),
    (Op::CacheMissAlone, Miss::Ttl, true),
    (Op::IdMissAlone, Miss::Id, true),
];

/// CPU time the instances of a network spent during one phase (user and system, all
/// threads, from `/proc/<pid>/stat`), next to the requests the phase sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub micros: u64,
    pub requests: u64,
}

impl CpuUse {
    /// CPU microseconds of the three instances per network fetch.
    pub fn per_request_us(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.micros as f64 / self.requests as f64)
    }
}

fn network_cpu_micros(network: &BenchNetwork) -> anyhow::Result<u64> {
    network.children.iter().map(DpgChild::cpu_micros).sum()
}

/// One in-process measurement: the time of every iteration, in nanoseconds, sorted.
#[derive(Debug)]
pub struct MicroMeasurement {
    pub operation: &'static str,
    pub note: String,
    pub nanos: Vec<u64>,
}

impl MicroMeasurement {
    fn new(operation: &'static str, note: impl Into<String>, mut nanos: Vec<u64>) -> Self {
        nanos.sort_unstable();
        MicroMeasurement {
            operation,
            note: note.into(),
            nanos,
        }
    }

    /// The nearest-rank percentile, in microseconds.
    pub fn percentile_us(&self, quantile: f64) -> Option<f64> {
        if self.nanos.is_empty() {
            return None;
        }
        let rank = (quantile * self.nanos.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.nanos.len()) - 1;
        self.nanos.get(index).map(|ns| *ns as f64 / 1000.0)
    }

    pub fn mean_us(&self) -> Option<f64> {
        if self.nanos.is_empty() {
            return None;
        }
        Some(self.nanos.iter().sum::<u64>() as f64 / self.nanos.len() as f64 / 1000.0)
    }
}

/// What the in-process part measured.
#[derive(Debug, Default)]
pub struct MicroReport {
    /// The request body signed and verified (its length goes into the notes).
    pub body: String,
    pub measurements: Vec<MicroMeasurement>,
}

impl MicroReport {
    pub fn get(&self, operation: &str) -> Option<&MicroMeasurement> {
        self.measurements.iter().find(|m| m.operation == operation)
    }
}

/// Labels of the in-process measurements (also how the goals find them).
pub const DIGEST: &str = "Content-Digest (SHA-256 of the body)";
pub const SIGN: &str = "sign (PeerSigner::headers)";
pub const VERIFY: &str = "verify a read (PeerTrustService::authenticate + authorize)";
pub const SIGN_PAIR: &str =
    "sign a read with the pair key (PeerSigner::pair_key_for + headers_with)";
pub const VERIFY_PAIR: &str = "verify a pair-key read (authenticate + authorize)";
pub const VERIFY_SIGNATURE: &str = "… of which the signature alone (verify_request)";
pub const VERIFY_WRITE: &str = "verify a write (authenticate, nonce spent)";

/// One request as it leaves the signer and reaches the receiver.
struct SignedRequest {
    digest: String,
    signature_input: String,
    signature: String,
}

/// Signs a `fetch_local` request from instance 1 to instance 2 of a three-instance signed
/// network [`MICRO_ITERATIONS`] times and verifies each, on this thread, one at a time.
pub async fn measure_micro(dev_network: &Path) -> anyhow::Result<MicroReport> {
    let urls: Vec<String> = (1..=3)
        .map(|n| format!("http://127.0.0.1:{}", 18_080 + n))
        .collect();
    let keys: Vec<Option<InstanceKey>> = (1..=3)
        .map(|n| Some(InstanceKey::generate(format!("bench{n}-key"))))
        .collect();
    let document = network_document(dev_network, &urls, &keys, Trust::Required)?;
    let parsed = NetworkDocument::parse(&document)
        .map_err(|e| anyhow!("the generated network document does not parse: {e}"))?;
    let identity = Arc::new(InstanceIdentity {
        base_url: urls[1].clone(),
        name: "bench2".to_string(),
        served: ServedBindings::parse(&format!("{NETWORK}/{DOMAIN}"))
            .map_err(|e| anyhow!("served bindings: {e}"))?,
    });
    let catalog = NetworkCatalog::build(
        vec![parsed],
        &HashMap::new(),
        &identity,
        &SchemaCompiler::new(false),
        SystemClock.now(),
        CatalogOrigin::Sources,
    );
    let handle = Arc::new(CatalogHandle::new(catalog));
    let receiver = PeerTrustService::new(
        handle.clone(),
        identity,
        Arc::new(MemoryCache::new()),
        Arc::new(SystemClock),
    )
    .with_pair_keys(
        keys[1]
            .as_ref()
            .map(|key| key.signer().pair_keys())
            .ok_or_else(|| anyhow!("instance 2 has no key"))?,
    );
    let key = keys[0]
        .as_ref()
        .ok_or_else(|| anyhow!("instance 1 has no key"))?;
    let signer = key.signer();
    let pair_signer = key.signer().with_pair_reads(handle.clone());
    let target = format!("{}{FETCH_LOCAL}", urls[1]);
    let host = urls[1].trim_start_matches("http://").to_string();
    let body = typical_fetch_local_body().to_string();
    let bytes = body.as_bytes();

    let (requests, sign_ns) = sign_reads(&signer, &urls[1], &target, bytes)?;
    let verify_ns = verify_reads(&receiver, &requests, &host, bytes).await?;
    let (pair_requests, pair_sign_ns) = sign_reads(&pair_signer, &urls[1], &target, bytes)?;
    if !pair_requests
        .iter()
        .all(|r| r.signature_input.contains("alg=\"hmac-sha256\""))
    {
        bail!("the pair signer did not sign with the pair key");
    }
    let pair_verify_ns = verify_reads(&receiver, &pair_requests, &host, bytes).await?;

    // A write also spends its nonce (here in the in-process cache; Redis in production).
    let mut write_ns = Vec::with_capacity(MICRO_ITERATIONS);
    for (n, request) in requests.iter().enumerate() {
        let started = Instant::now();
        let caller = receiver
            .authenticate(&received(request, &host, bytes), true)
            .await;
        let elapsed = started.elapsed();
        if let Err(error) = caller {
            bail!("a genuine signed write was refused: {error}");
        }
        if n >= MICRO_WARM_UP {
            write_ns.push(nanos(elapsed));
        }
    }

    // The RFC 9421 part alone: parse both fields, rebuild the base, check Ed25519.
    let public = signer.public_key_b64url();
    let verifying = dpg_core::peer_auth::VerifyingKey::from_base64(&public)
        .map_err(|e| anyhow!("instance 1's public key: {e}"))?;
    let mut signature_ns = Vec::with_capacity(MICRO_ITERATIONS);
    for (n, request) in requests.iter().enumerate() {
        let started = Instant::now();
        let parts = RequestParts::from_uri(
            "POST",
            &target,
            vec![
                ("content-type".to_string(), "application/json".to_string()),
                ("content-digest".to_string(), request.digest.clone()),
            ],
        )
        .map_err(|e| anyhow!("request parts: {e}"))?;
        let verified = verify_request(
            &parts,
            Some(&request.signature_input),
            Some(&request.signature),
            |_| Some(verifying),
        );
        let elapsed = started.elapsed();
        if let Err(error) = verified {
            bail!("verify_request refused a genuine signature: {error}");
        }
        if n >= MICRO_WARM_UP {
            signature_ns.push(nanos(elapsed));
        }
    }

    let mut digest_ns = Vec::with_capacity(MICRO_ITERATIONS);
    for n in 0..MICRO_WARM_UP + MICRO_ITERATIONS {
        let started = Instant::now();
        std::hint::black_box(content_digest(std::hint::black_box(bytes)));
        let elapsed = started.elapsed();
        if n >= MICRO_WARM_UP {
            digest_ns.push(nanos(elapsed));
        }
    }

    let length = bytes.len();
    Ok(MicroReport {
        measurements: vec![
            MicroMeasurement::new(
                DIGEST,
                format!("the {length}-byte body; signer and receiver each compute it once"),
                digest_ns,
            ),
            MicroMeasurement::new(
                SIGN,
                "digest, request parts, signature base, Ed25519 signature, header fields",
                sign_ns,
            ),
            MicroMeasurement::new(
                VERIFY,
                "what a fetch_local receiver does: rebuild the authority from its base URL, \
                 parse, find the key in the catalog, time window, covered components, digest, \
                 Ed25519 verification; then peer_auth mode and network membership",
                verify_ns,
            ),
            MicroMeasurement::new(
                SIGN_PAIR,
                "as above, with the pair key of the two instances (hmac-sha256) found for the \
                 peer's URL in the catalog",
                pair_sign_ns,
            ),
            MicroMeasurement::new(
                VERIFY_PAIR,
                "as a read above, with the pair key (derived once per peer key, then cached)",
                pair_verify_ns,
            ),
            MicroMeasurement::new(
                VERIFY_SIGNATURE,
                "parse Signature-Input and Signature, rebuild the signature base, Ed25519 \
                 verification",
                signature_ns,
            ),
            MicroMeasurement::new(
                VERIFY_WRITE,
                "as a read, plus the nonce spent in the in-process cache (Redis in a \
                 PostgreSQL/Redis deployment adds a round trip)",
                write_ns,
            ),
        ],
        body,
    })
}

/// Signs [`MICRO_WARM_UP`] + [`MICRO_ITERATIONS`] reads to `target` at instance `peer` as
/// `signer` does on a peer call (with its pair key when it has pair reads): the requests,
/// and the timed iterations' durations.
fn sign_reads(
    signer: &PeerSigner,
    peer: &str,
    target: &str,
    body: &[u8],
) -> anyhow::Result<(Vec<SignedRequest>, Vec<u64>)> {
    let total = MICRO_WARM_UP + MICRO_ITERATIONS;
    let mut requests = Vec::with_capacity(total);
    let mut sign_ns = Vec::with_capacity(MICRO_ITERATIONS);
    for n in 0..total {
        // Each request gets its own time and nonce, as on the wire.
        let nonce = Uuid::new_v4().simple().to_string();
        let now = SystemClock.now().timestamp();
        let started = Instant::now();
        let pair_key = signer.pair_key_for(peer, now);
        let headers = signer
            .headers_with(
                pair_key.as_ref(),
                "POST",
                target,
                "application/json",
                body,
                now,
                &nonce,
            )
            .map_err(|e| anyhow!("signing: {e}"))?;
        let elapsed = started.elapsed();
        if n >= MICRO_WARM_UP {
            sign_ns.push(nanos(elapsed));
        }
        let field = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| anyhow!("the signer set no {name} header"))
        };
        requests.push(SignedRequest {
            digest: field("content-digest")?,
            signature_input: field("signature-input")?,
            signature: field("signature")?,
        });
    }
    Ok((requests, sign_ns))
}

/// The receiver's whole check of each read: authority, key, time window, digest,
/// signature, then (once the body named the network) the mode and the signer's membership.
async fn verify_reads(
    receiver: &PeerTrustService,
    requests: &[SignedRequest],
    host: &str,
    body: &[u8],
) -> anyhow::Result<Vec<u64>> {
    let mut verify_ns = Vec::with_capacity(MICRO_ITERATIONS);
    for (n, request) in requests.iter().enumerate() {
        let started = Instant::now();
        let checked = match receiver
            .authenticate(&received(request, host, body), false)
            .await
        {
            Ok(caller) => receiver.authorize(&caller, NETWORK).map(|()| caller),
            Err(error) => Err(error),
        };
        let elapsed = started.elapsed();
        match checked {
            Ok(PeerCaller::Signed { .. }) => {}
            Ok(PeerCaller::Unsigned) => bail!("a signed request was taken for an unsigned one"),
            Err(error) => bail!("a genuine signature was refused: {error}"),
        }
        if n >= MICRO_WARM_UP {
            verify_ns.push(nanos(elapsed));
        }
    }
    Ok(verify_ns)
}

/// A `fetch_local` body as the aggregator sends it for page 2 of a filtered network read:
/// the filter's keys, `limit`, `offset` and the cursor its peer gave (the shape of
/// [`ItemKey::to_cursor`]).
fn typical_fetch_local_body() -> Value {
    let cursor = ItemKey {
        created_at: SystemClock.now(),
        item_id: Uuid::new_v4(),
    }
    .to_cursor();
    json!({
        "item_network": NETWORK,
        "item_domain": DOMAIN,
        "item_state": {"name": "S42"},
        "limit": LIMIT,
        "offset": 0,
        "cursor": cursor
    })
}

/// `request` as the HTTP layer of instance 2 hands it to [`PeerTrustService::authenticate`].
fn received<'a>(request: &'a SignedRequest, host: &'a str, body: &'a [u8]) -> ReceivedRequest<'a> {
    ReceivedRequest {
        method: "POST",
        path_and_query: FETCH_LOCAL,
        host: Some(host),
        content_type: Some("application/json"),
        content_digest: Some(&request.digest),
        signature_input: Some(&request.signature_input),
        signature: Some(&request.signature),
        body,
    }
}

fn nanos(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

/// How long one network takes its turn in a phase before the other takes over.
const TURN: Duration = Duration::from_millis(500);

/// One side of a paired round: a network's kind and what is recorded of it.
pub struct Side<'a> {
    pub trust: Trust,
    pub report: &'a mut NetworkReport,
    pub cpu: &'a mut Vec<(Op, CpuUse)>,
}

/// One round of the end-to-end part: an unsigned and a signed network of three, both up at
/// once. Every cache-miss phase is run in turns of [`TURN`] that alternate between the two
/// (A B, B A, ...), so drift of a shared machine falls on both kinds alike; then the checks
/// that each was (un)signed as meant.
pub async fn measure_paired_round(
    dpg: &Path,
    dev_network: &Path,
    client: &reqwest::Client,
    settings: NetworkSettings,
    sides: &mut [Side<'_>; 2],
) -> anyhow::Result<()> {
    let mut networks = Vec::with_capacity(2);
    let mut started = Ok(());
    for side in sides.iter() {
        let name = &side.report.name;
        eprintln!("[{name}] starting 3 instances ...");
        match BenchNetwork::start(dpg, dev_network, 3, None, side.trust, client).await {
            Ok(network) => {
                eprintln!(
                    "[{name}] ready: {} (pids {})",
                    network.public_urls.join(", "),
                    network.pids()
                );
                networks.push(network);
            }
            Err(error) => {
                started = Err(error);
                break;
            }
        }
    }
    let measured = match started {
        Ok(()) => paired_phases(&networks, client, settings, sides).await,
        Err(error) => Err(error),
    };
    let mut stopped = Ok(());
    for (network, side) in networks.into_iter().zip(sides.iter()) {
        let outcome = network.stop(&side.report.name).await;
        if stopped.is_ok() {
            stopped = outcome;
        }
    }
    measured?;
    stopped
}

async fn paired_phases(
    networks: &[BenchNetwork],
    client: &reqwest::Client,
    settings: NetworkSettings,
    sides: &mut [Side<'_>; 2],
) -> anyhow::Result<()> {
    let ttls = Ttls::new();
    let mut taggings = Vec::with_capacity(2);
    for (network, side) in networks.iter().zip(sides.iter_mut()) {
        check_direct_calls(network, client, side.trust, side.report).await?;
        seed(network, client, settings, side.report).await?;
        let tagging = Tagging {
            urls: Arc::new(network.public_urls.clone()),
            watched: None,
        };
        warm_up(network, client, settings, &ttls, &tagging, side.report).await?;
        taggings.push(tagging);
    }
    let turns = (settings.seconds * 1000)
        .div_ceil(TURN.as_millis() as u64)
        .max(1);
    for (op, miss, alone) in PHASES {
        let concurrency = if alone { 1 } else { settings.concurrency };
        for side in sides.iter() {
            eprintln!(
                "[{}] GET network fetch, cache miss: {}, concurrency {concurrency} ({turns} \
                 turns of {} ms, alternating with the other network) ...",
                side.report.name,
                miss.describe(),
                TURN.as_millis()
            );
        }
        let mut before = Vec::with_capacity(2);
        for network in networks {
            before.push(received_peer_requests(network, client).await?);
        }
        let mut parts: [Vec<Measured>; 2] = [Vec::new(), Vec::new()];
        let mut cpu_micros = [0u64; 2];
        for turn in 0..turns {
            // Each network goes first in every other pair of turns.
            let order = if turn % 2 == 0 { [0, 1] } else { [1, 0] };
            for index in order {
                let network = &networks[index];
                let cpu_before = network_cpu_micros(network)?;
                let measured = miss_phase(
                    network.aggregator()?,
                    client,
                    concurrency,
                    Until::Elapsed(TURN),
                    &ttls,
                    miss,
                    taggings[index].clone(),
                )
                .await?;
                cpu_micros[index] += network_cpu_micros(network)?.saturating_sub(cpu_before);
                parts[index].push(measured);
            }
        }
        for (index, side) in sides.iter_mut().enumerate() {
            let measured = Measured::merge(std::mem::take(&mut parts[index]));
            let after = received_peer_requests(&networks[index], client).await?;
            let used = CpuUse {
                micros: cpu_micros[index],
                requests: measured.requests,
            };
            record_phase(
                side,
                op,
                miss,
                concurrency,
                before[index],
                after,
                used,
                measured,
            )?;
        }
    }
    Ok(())
}

/// Seconds of cache misses that open peer connections and warm caches (not recorded).
async fn warm_up(
    network: &BenchNetwork,
    client: &reqwest::Client,
    settings: NetworkSettings,
    ttls: &Ttls,
    tagging: &Tagging,
    report: &mut NetworkReport,
) -> anyhow::Result<()> {
    let name = report.name.clone();
    eprintln!("[{name}] warm-up: cache misses for {WARM_UP_SECONDS} s (not recorded) ...");
    let warm_up = miss_phase(
        network.aggregator()?,
        client,
        settings.concurrency,
        Until::Elapsed(Duration::from_secs(WARM_UP_SECONDS)),
        ttls,
        Miss::Ttl,
        tagging.clone(),
    )
    .await?;
    if warm_up.errors > 0 {
        report.notes.push(format!(
            "{name}: {} of {} warm-up requests failed (first: {}).",
            warm_up.errors,
            warm_up.requests,
            warm_up.error_samples.first().map_or("", String::as_str)
        ));
    }
    Ok(())
}

/// Notes what one side received and used in a phase, checks it was (un)signed as meant,
/// and records the measurement.
#[allow(clippy::too_many_arguments)]
fn record_phase(
    side: &mut Side<'_>,
    op: Op,
    miss: Miss,
    concurrency: usize,
    before: Received,
    after: Received,
    used: CpuUse,
    measured: Measured,
) -> anyhow::Result<()> {
    let (signed, unsigned, pair) = (
        after.signed.saturating_sub(before.signed),
        after.unsigned.saturating_sub(before.unsigned),
        after.pair.saturating_sub(before.pair),
    );
    let name = side.report.name.clone();
    let phase = format!("{}, concurrency {concurrency}", miss.describe());
    side.report.notes.push(format!(
        "{name}, {phase}: the instances received {signed} signed ({pair} of them with pair \
         keys) and {unsigned} unsigned peer requests ({:.2} per network fetch) and used \
         {:.0} µs of CPU per network fetch (all three).",
        (signed + unsigned) as f64 / measured.requests.max(1) as f64,
        used.per_request_us().unwrap_or(0.0)
    ));
    check_signed_counts(side.trust, signed, unsigned, &measured)
        .with_context(|| format!("{name}, {phase}"))?;
    side.cpu.push((op, used));
    side.report.measurements.push((op, measured));
    Ok(())
}

/// Peer requests every instance has received so far: (signed, unsigned), from
/// `dpg_peer_requests_received_total` on `/metrics`.
/// Peer requests the instances of a network received so far, by signature.
#[derive(Debug, Clone, Copy, Default)]
struct Received {
    signed: u64,
    unsigned: u64,
    /// Of the signed ones, those signed with a pair key.
    pair: u64,
}

async fn received_peer_requests(
    network: &BenchNetwork,
    client: &reqwest::Client,
) -> anyhow::Result<Received> {
    let mut received = Received::default();
    for (index, child) in network.children.iter().enumerate() {
        let read = async |label: &'static str| {
            counter(child, client, label)
                .await
                .with_context(|| format!("instance {}", index + 1))
        };
        received.signed += read("signature=\"signed\"").await?;
        received.unsigned += read("signature=\"unsigned\"").await?;
        received.pair += read("alg=\"hmac-sha256\"").await?;
    }
    Ok(received)
}

async fn counter(child: &DpgChild, client: &reqwest::Client, label: &str) -> anyhow::Result<u64> {
    child
        .counter(client, "dpg_peer_requests_received_total", label)
        .await
        .ok_or_else(|| anyhow!("GET /metrics did not answer"))
}

/// The peers of a signed network received only signed requests during a phase, those of an
/// unsigned network only unsigned ones, and some in any case.
fn check_signed_counts(
    trust: Trust,
    signed: u64,
    unsigned: u64,
    measured: &Measured,
) -> anyhow::Result<()> {
    let answered = measured.requests - measured.errors;
    match trust {
        Trust::Required if signed == 0 || unsigned > 0 => bail!(
            "THE SIGNED NETWORK DID NOT SIGN: its instances received {signed} signed and \
             {unsigned} unsigned peer requests during the phase"
        ),
        Trust::Off | Trust::Default if signed > 0 => {
            bail!("the unsigned network received {signed} signed peer requests during the phase")
        }
        _ if answered > 0 && signed + unsigned == 0 => bail!(
            "{answered} network fetches were answered without a single peer request: they \
             were not cache misses"
        ),
        _ => Ok(()),
    }
}

/// Before a round: an unsigned `fetch_local` straight to instance 2 must be refused with 401
/// by a signed network (and answered by an unsigned one), and one signed with instance 1's
/// key must be answered. Not timed.
async fn check_direct_calls(
    network: &BenchNetwork,
    client: &reqwest::Client,
    trust: Trust,
    report: &mut NetworkReport,
) -> anyhow::Result<()> {
    let target = network
        .children
        .get(1)
        .map(|child| child.url(FETCH_LOCAL))
        .ok_or_else(|| anyhow!("the network has no instance 2"))?;
    let body = json!({
        "item_network": NETWORK, "item_domain": DOMAIN, "limit": LIMIT, "offset": 0
    })
    .to_string()
    .into_bytes();
    let (status, answer) = post(client, &target, &[], body.clone()).await?;
    let unsigned = format!("an unsigned fetch_local straight to instance 2 got {status}");
    match trust {
        Trust::Required => {
            let code = answer["error"].as_str().unwrap_or_default();
            if status != 401 {
                bail!(
                    "THE SIGNED NETWORK ACCEPTS UNSIGNED PEER CALLS: {unsigned}, not 401: \
                     {answer}"
                );
            }
            let signer = network
                .keys
                .first()
                .and_then(Option::as_ref)
                .map(InstanceKey::signer)
                .ok_or_else(|| anyhow!("instance 1 of the signed network has no key"))?;
            let headers = signed_post_headers(&signer, &target, &body)?;
            let (signed_status, signed_answer) = post(client, &target, &headers, body).await?;
            if signed_status != 200 {
                bail!(
                    "a fetch_local signed with instance 1's key got {signed_status} from \
                     instance 2, not 200: {signed_answer}"
                );
            }
            report.notes.push(format!(
                "{}: {unsigned} ({code}); signed with instance 1's key, 200.",
                report.name
            ));
        }
        Trust::Off | Trust::Default => {
            if status != 200 {
                bail!("{unsigned}, not 200, in the unsigned network: {answer}");
            }
            report.notes.push(format!("{}: {unsigned}.", report.name));
        }
    }
    Ok(())
}

/// `POST url` with a JSON body and `headers`; the status and the answer (JSON, or the text).
async fn post(
    client: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> anyhow::Result<(u16, Value)> {
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request.send().await.context("request failed")?;
    let status = response.status().as_u16();
    let text = response.text().await.context("body not read")?;
    let answer = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(requests: u64) -> Measured {
        Measured {
            requests,
            ..Measured::default()
        }
    }

    #[test]
    fn a_signed_round_must_have_signed_and_an_unsigned_one_not() {
        for (trust, signed, unsigned, requests, ok) in [
            (Trust::Required, 200, 0, 100, true),
            (Trust::Required, 0, 200, 100, false),
            (Trust::Required, 199, 1, 100, false),
            (Trust::Required, 0, 0, 100, false),
            (Trust::Off, 0, 200, 100, true),
            (Trust::Off, 1, 199, 100, false),
            (Trust::Off, 0, 0, 100, false),
            (Trust::Off, 0, 0, 0, true),
        ] {
            assert_eq!(
                check_signed_counts(trust, signed, unsigned, &answered(requests)).is_ok(),
                ok,
                "{trust:?} {signed} signed {unsigned} unsigned {requests} requests"
            );
        }
    }

    #[test]
    fn cpu_per_request_needs_requests() {
        let used = CpuUse {
            micros: 3_000,
            requests: 2,
        };
        assert_eq!(used.per_request_us(), Some(1_500.0));
        assert_eq!(CpuUse::default().per_request_us(), None);
    }
}
