//! Peer trust across real instances: keys listed in the generated network document, every
//! peer call signed (RFC 9421), forged and tampered calls refused with clear codes, and peers
//! behind TLS reached through a private CA (`PEER_CA_FILE`).

use dpg_core::peer_auth::{MacKey, SigningKey};
use dpg_core::services::{PairKeys, PeerSigner};
use dpg_tests::support::keys::{INSTANCE_KEY_ENV, InstanceKey};
use dpg_tests::support::network::{COUNT_LOCAL, FETCH_LOCAL, NETWORK, Reply, STUDENT, TestNetwork};
use serde_json::{Value, json};

const KEYS: &str = "/.well-known/dpg/keys";

fn student(k: usize) -> Value {
    json!({"item_network": NETWORK, "item_domain": STUDENT, "item_type": "profile_1.0",
           "item_state": {"name": format!("Student {k}"), "grade": "9", "city": "Pune"}})
}

fn count_query() -> Value {
    json!({"item_network": NETWORK, "item_domain": STUDENT})
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// A peer request as it goes on the wire, so that a test can tamper with any part of it.
#[derive(Clone)]
struct Sent {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Sent {
    fn unsigned(path: &str, body: &Value) -> Sent {
        Sent {
            path: path.to_string(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// Signed by `signer` for `origin` + `path`, created at `created`.
    fn signed(signer: &PeerSigner, origin: &str, path: &str, body: &Value, created: i64) -> Sent {
        Sent::signed_with(signer, None, origin, path, body, created)
    }

    /// [`Sent::signed`] with `pair_key` (`hmac-sha256`) when given.
    fn signed_with(
        signer: &PeerSigner,
        pair_key: Option<&MacKey>,
        origin: &str,
        path: &str,
        body: &Value,
        created: i64,
    ) -> Sent {
        let mut sent = Sent::unsigned(path, body);
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let headers = signer
            .headers_with(
                pair_key,
                "POST",
                &format!("{origin}{path}"),
                "application/json",
                &sent.body,
                created,
                &nonce,
            )
            .expect("signs");
        sent.headers
            .extend(headers.into_iter().map(|(n, v)| (n.to_string(), v)));
        sent
    }

    fn without(mut self, header: &str) -> Sent {
        self.headers.retain(|(name, _)| name != header);
        self
    }

    fn replacing(self, header: &str, value: &str) -> Sent {
        let mut sent = self.without(header);
        sent.headers.push((header.to_string(), value.to_string()));
        sent
    }

    async fn to(&self, net: &TestNetwork, index: usize) -> Reply {
        net.post_raw(index, &self.path, &self.headers, self.body.clone())
            .await
            .expect("answered")
    }
}

fn assert_refused(reply: &Reply, status: u16, code: &str, case: &str) {
    assert_eq!(reply.status, status, "{case}: {}", reply.body);
    assert_eq!(reply.body["error"], code, "{case}: {}", reply.body);
    assert!(
        reply.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{case}: a human message: {}",
        reply.body
    );
}

fn peer_status(reply: &Reply, url: &str) -> String {
    reply.body["meta"]["peers"]
        .as_array()
        .unwrap_or_else(|| panic!("no peers in {}", reply.body))
        .iter()
        .find(|p| p["instance_url"] == url)
        .unwrap_or_else(|| panic!("{url} is not in {}", reply.body))["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A network read through instance `index` answers 200 with all `total` items, every
/// instance `ok`.
async fn assert_complete_read(net: &TestNetwork, index: usize, query: &str, total: u64) {
    let reply = net
        .network_fetch(index, STUDENT, query)
        .await
        .expect("answered");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["meta"]["partial"], false, "{}", reply.body);
    assert_eq!(reply.body["meta"]["total"], total, "{}", reply.body);
    for peer in 0..net.len() {
        assert_eq!(peer_status(&reply, net.url(peer)), "ok", "{}", reply.body);
    }
}

#[tokio::test]
async fn a_required_network_reads_through_signed_peers_and_refuses_unsigned_calls() {
    let net = TestNetwork::builder(3)
        .signed()
        .start()
        .await
        .expect("network boots");
    net.seed_round_robin(STUDENT, 6, student)
        .await
        .expect("seeded");
    for index in 0..3 {
        assert_complete_read(&net, index, "", 6).await;
    }
    let paged = json!({"item_network": NETWORK, "item_domain": STUDENT, "limit": 10, "offset": 0});
    for (path, body) in [(COUNT_LOCAL, count_query()), (FETCH_LOCAL, paged)] {
        let reply = Sent::unsigned(path, &body).to(&net, 1).await;
        assert_refused(&reply, 401, "SIGNATURE_REQUIRED", path);
    }
    let keys = net.get(1, KEYS).await.expect("answered");
    assert_eq!(keys.status, 200, "{}", keys.body);
    let signer = net.signer(1).expect("a signed network");
    assert_eq!(
        keys.body["keys"],
        json!([{"kid": signer.kid(), "alg": "ed25519", "public_key": signer.public_key_b64url()}])
    );
}

/// The `dpg_peer_requests_received_total` samples of `/metrics` on instance `index` (the
/// recorder is shared by the in-process instances of this test binary).
async fn received_samples(net: &TestNetwork, index: usize) -> Vec<String> {
    let text = net.metrics_text(index).await.expect("metrics");
    text.lines()
        .filter(|line| line.starts_with("dpg_peer_requests_received_total{"))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn reads_between_instances_go_with_pair_keys_and_a_refusing_peer_gets_ed25519() {
    // Instance 1 holds another key than the one the document lists for it: it cannot
    // check pair-key reads (nor would an instance that predates them), but it still
    // verifies Ed25519 signatures from the others.
    let unlisted = InstanceKey::generate("unlisted");
    let net = TestNetwork::builder(3)
        .signed()
        .env(1, INSTANCE_KEY_ENV, unlisted.env_value())
        .start()
        .await
        .expect("network boots");
    net.seed_round_robin(STUDENT, 6, student)
        .await
        .expect("seeded");
    for round in 0..2 {
        let query = format!("&cache_ttl_seconds={}", 300 + round);
        assert_complete_read(&net, 0, &query, 6).await;
    }
    let samples = received_samples(&net, 2).await;
    assert!(
        samples
            .iter()
            .any(|line| line.contains("signature=\"signed\"")
                && line.contains("alg=\"hmac-sha256\"")),
        "pair-key reads were received: {samples:?}"
    );
    assert!(
        samples
            .iter()
            .any(|line| line.contains("signature=\"signed\"") && line.contains("alg=\"ed25519\"")),
        "Ed25519 reads were received after the refusal: {samples:?}"
    );

    // A read under instance 0's kid with a pair key of two other keys is refused.
    let member0 = net.signer(0).expect("signed").clone();
    let foreign = PairKeys::new(&SigningKey::from_seed(&[44; 32]))
        .sending_to(&SigningKey::from_seed(&[45; 32]).verifying_key())
        .expect("a pair key");
    let query = count_query();
    let forged = Sent::signed_with(
        &member0,
        Some(&foreign),
        net.url(2),
        COUNT_LOCAL,
        &query,
        now(),
    );
    let reply = forged.to(&net, 2).await;
    assert_refused(
        &reply,
        401,
        "SIGNATURE_INVALID",
        "a pair key of other instances",
    );
    net.stop().await.expect("stopped");
}

#[tokio::test]
async fn forged_and_tampered_peer_calls_are_refused_with_clear_codes() {
    let net = TestNetwork::builder(3)
        .signed()
        .start()
        .await
        .expect("network boots");
    net.seed_round_robin(STUDENT, 3, student)
        .await
        .expect("seeded");
    let member0 = net.signer(0).expect("signed").clone();
    let to = net.url(1).to_string();
    let query = count_query();
    let genuine = Sent::signed(&member0, &to, COUNT_LOCAL, &query, now());
    let reply = genuine.to(&net, 1).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, json!({"count": 1}));

    let other_body = json!({"item_network": NETWORK, "item_domain": "tutor"});
    let stranger = PeerSigner::new(SigningKey::from_seed(&[42; 32]), "stranger-key");
    let impostor = PeerSigner::new(
        SigningKey::from_seed(&[43; 32]),
        net.signer(2).expect("signed").kid(),
    );
    let cases: Vec<(&str, Sent, &str)> = vec![
        (
            "body changed",
            Sent {
                body: other_body.to_string().into_bytes(),
                ..genuine.clone()
            },
            "DIGEST_MISMATCH",
        ),
        (
            "path changed",
            Sent {
                path: FETCH_LOCAL.to_string(),
                ..genuine.clone()
            },
            "SIGNATURE_INVALID",
        ),
        (
            "query added",
            Sent {
                path: format!("{COUNT_LOCAL}?x=1"),
                ..genuine.clone()
            },
            "SIGNATURE_INVALID",
        ),
        (
            "signed for another instance",
            Sent::signed(&member0, net.url(2), COUNT_LOCAL, &query, now()),
            "SIGNATURE_INVALID",
        ),
        (
            "content type changed",
            genuine.clone().replacing("content-type", "text/plain"),
            "SIGNATURE_INVALID",
        ),
        (
            "digest missing",
            genuine.clone().without("content-digest"),
            "SIGNATURE_INVALID",
        ),
        (
            "signature missing, input kept",
            genuine.clone().without("signature"),
            "SIGNATURE_INVALID",
        ),
        (
            "unparsable signature input",
            genuine
                .clone()
                .replacing("signature-input", "sig1=(\"@method\""),
            "SIGNATURE_INVALID",
        ),
        (
            "expired",
            Sent::signed(&member0, &to, COUNT_LOCAL, &query, now() - 600),
            "SIGNATURE_EXPIRED",
        ),
        (
            "from the future",
            Sent::signed(&member0, &to, COUNT_LOCAL, &query, now() + 600),
            "SIGNATURE_EXPIRED",
        ),
        (
            "key not in the document",
            Sent::signed(&stranger, &to, COUNT_LOCAL, &query, now()),
            "UNKNOWN_SIGNING_KEY",
        ),
        (
            "another key claiming member 2's kid",
            Sent::signed(&impostor, &to, COUNT_LOCAL, &query, now()),
            "SIGNATURE_INVALID",
        ),
    ];
    for (case, sent, code) in cases {
        let reply = sent.to(&net, 1).await;
        assert_refused(&reply, 401, code, case);
    }
    // A hostile signature header is refused, not a server error.
    let huge = genuine.clone().replacing("signature", &"A".repeat(6000));
    let reply = huge.to(&net, 1).await;
    assert!(
        (400..500).contains(&reply.status),
        "{}: {}",
        reply.status,
        reply.body
    );
    // The genuine request still works: nothing above changed the instance's state.
    let reply = Sent::signed(&member0, &to, COUNT_LOCAL, &query, now())
        .to(&net, 1)
        .await;
    assert_eq!(reply.body, json!({"count": 1}));
}

/// `off`, `permissive`, `required` x unsigned, signed, badly signed, over HTTP.
#[tokio::test]
async fn peer_auth_modes_decide_about_unsigned_and_never_accept_bad_signatures() {
    let expectations = [
        ("off", 200, 200),
        ("permissive", 200, 200),
        ("required", 401, 200),
    ];
    for (mode, unsigned_status, signed_status) in expectations {
        let net = TestNetwork::builder(3)
            .signed()
            .peer_auth(mode)
            .start()
            .await
            .expect("network boots");
        let member0 = net.signer(0).expect("signed").clone();
        let to = net.url(1).to_string();
        let query = count_query();
        let unsigned = Sent::unsigned(COUNT_LOCAL, &query).to(&net, 1).await;
        assert_eq!(
            unsigned.status, unsigned_status,
            "{mode} unsigned: {}",
            unsigned.body
        );
        let signed = Sent::signed(&member0, &to, COUNT_LOCAL, &query, now())
            .to(&net, 1)
            .await;
        assert_eq!(
            signed.status, signed_status,
            "{mode} signed: {}",
            signed.body
        );
        let bad = Sent::signed(&member0, &to, COUNT_LOCAL, &query, now()).replacing(
            "content-digest",
            &dpg_core::peer_auth::content_digest(b"{}"),
        );
        let bad = bad.to(&net, 1).await;
        assert_eq!(bad.status, 401, "{mode} badly signed: {}", bad.body);
        // Reads between members work in every mode.
        let reply = net.network_fetch(0, STUDENT, "").await.expect("answered");
        assert_eq!(
            reply.body["meta"]["partial"], false,
            "{mode}: {}",
            reply.body
        );
        net.stop().await.expect("stops");
    }
}

#[tokio::test]
async fn a_peer_behind_tls_is_reached_through_the_private_ca_only() {
    let net = TestNetwork::builder(3)
        .signed()
        .tls(1)
        .untrusting(2)
        .start()
        .await
        .expect("network boots");
    assert!(
        net.url(1).starts_with("https://localhost:"),
        "{}",
        net.url(1)
    );
    net.seed_round_robin(STUDENT, 6, student)
        .await
        .expect("seeded");
    // Member 0 trusts the CA: a signed call through TLS, verified behind the terminating
    // proxy against member 1's public https authority.
    let reply = net.network_fetch(0, STUDENT, "").await.expect("answered");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(peer_status(&reply, net.url(1)), "ok", "{}", reply.body);
    assert_eq!(reply.body["meta"]["partial"], false, "{}", reply.body);
    assert_eq!(reply.body["meta"]["total"], 6, "{}", reply.body);
    // Member 2 does not: the certificate is refused and the read is partial.
    let reply = net.network_fetch(2, STUDENT, "").await.expect("answered");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(peer_status(&reply, net.url(1)), "error", "{}", reply.body);
    assert_eq!(reply.body["meta"]["partial"], true, "{}", reply.body);
}
