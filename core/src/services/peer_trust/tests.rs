//! Peer trust with Ed25519 signatures: authentication, authorization and rotation.

use super::*;
use crate::model::ServedBindings;
use crate::network::{CatalogOrigin, NetworkCatalog, NetworkDocument, SchemaCompiler};
use crate::ports::{MockCache, MockClock};
use chrono::{TimeZone, Utc};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

pub(super) const NOW: i64 = 1_800_000_000;
pub(super) const ME: &str = "https://b.example.org";
pub(super) const PATH: &str = "/api/v1/network/item/fetch_local";

pub(super) fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed(&[seed; 32])
}

pub(super) fn listed(kid: &str, seed: u8) -> serde_json::Value {
    json!({"kid": kid, "alg": "ed25519", "public_key": key(seed).public_key_b64url()})
}

pub(super) fn catalog(mode: &str, a_keys: Vec<serde_json::Value>) -> Arc<CatalogHandle> {
    let doc = NetworkDocument::parse(&json!({
        "name": "yellow_dot", "peer_auth": mode,
        "domains": [{"name": "student"}],
        "instances": [
            {"domain_name": "student", "instance_url": "https://a.example.org", "keys": a_keys},
            {"domain_name": "student", "instance_url": ME, "keys": [listed("b-1", 2)]}
        ]
    }))
    .expect("doc");
    let other = NetworkDocument::parse(&json!({
        "name": "blue_dot",
        "instances": [{"domain_name": "seeker", "instance_url": "https://c.example.org", "keys": [listed("c-1", 3)]}]
    }))
    .expect("doc");
    handle(vec![doc, other])
}

pub(super) fn handle(documents: Vec<NetworkDocument>) -> Arc<CatalogHandle> {
    Arc::new(CatalogHandle::new(NetworkCatalog::build(
        documents,
        &HashMap::new(),
        &identity(),
        &SchemaCompiler::new(false),
        Utc::now(),
        CatalogOrigin::Sources,
    )))
}

fn identity() -> Arc<InstanceIdentity> {
    Arc::new(InstanceIdentity {
        base_url: ME.into(),
        name: "b".into(),
        served: ServedBindings::parse("yellow_dot/student").expect("served"),
    })
}

pub(super) fn service(catalog: Arc<CatalogHandle>) -> PeerTrustService {
    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut cache = MockCache::new();
    cache
        .expect_set_if_absent()
        .returning(move |key, _, _| Ok(seen.lock().expect("lock").insert(key.to_string())));
    let mut clock = MockClock::new();
    clock
        .expect_now()
        .returning(|| Utc.timestamp_opt(NOW, 0).single().expect("time"));
    PeerTrustService::new(catalog, identity(), Arc::new(cache), Arc::new(clock))
}

pub(super) struct Sent {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) host: Option<String>,
    pub(super) content_type: Option<String>,
    pub(super) digest: Option<String>,
    pub(super) input: Option<String>,
    pub(super) signature: Option<String>,
    pub(super) body: Vec<u8>,
}

impl Sent {
    pub(super) fn received(&self) -> ReceivedRequest<'_> {
        ReceivedRequest {
            method: &self.method,
            path_and_query: &self.path,
            host: self.host.as_deref(),
            content_type: self.content_type.as_deref(),
            content_digest: self.digest.as_deref(),
            signature_input: self.input.as_deref(),
            signature: self.signature.as_deref(),
            body: &self.body,
        }
    }
}

pub(super) fn signed_by(signer: &PeerSigner, target: &str, created: i64, nonce: &str) -> Sent {
    signed_with(signer, None, target, created, nonce)
}

/// A `fetch_local` request `signer` sends to `target`, with `pair_key` when given.
pub(super) fn signed_with(
    signer: &PeerSigner,
    pair_key: Option<&MacKey>,
    target: &str,
    created: i64,
    nonce: &str,
) -> Sent {
    let body =
        br#"{"item_network":"yellow_dot","item_domain":"student","limit":20,"offset":0}"#.to_vec();
    let headers = signer
        .headers_with(
            pair_key,
            "POST",
            target,
            "application/json",
            &body,
            created,
            nonce,
        )
        .expect("signed");
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    };
    let url = url::Url::parse(target).expect("url");
    Sent {
        method: "POST".into(),
        path: format!(
            "{}{}",
            url.path(),
            url.query().map(|q| format!("?{q}")).unwrap_or_default()
        ),
        host: Some(url[url::Position::BeforeHost..url::Position::AfterPort].to_string()),
        content_type: Some("application/json".into()),
        digest: get("content-digest"),
        input: get("signature-input"),
        signature: get("signature"),
        body,
    }
}

/// Changes the first base64 character of a `label=:...:` signature.
pub(super) fn flip_first_byte(field: &str) -> String {
    let start = field.find(":").expect("byte sequence") + 1;
    let mut chars: Vec<char> = field.chars().collect();
    chars[start] = if chars[start] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

pub(super) fn a_signer() -> PeerSigner {
    PeerSigner::new(key(1), "a-1")
}

/// Authenticates `sent` as a read, which must verify as a-1's, speaking for
/// https://a.example.org in yellow_dot only, signed with `alg`.
pub(super) async fn verified_as_a1(
    trust: &PeerTrustService,
    sent: &Sent,
    alg: SignatureAlg,
) -> PeerCaller {
    let caller = trust
        .authenticate(&sent.received(), false)
        .await
        .expect("verified");
    assert_eq!(
        caller,
        PeerCaller::Signed {
            kid: "a-1".into(),
            instances: vec![("yellow_dot".into(), "https://a.example.org".into())],
            alg,
        }
    );
    caller
}

pub(super) fn code(result: Result<PeerCaller, CoreError>) -> ErrorCode {
    result.expect_err("rejected").code()
}

#[tokio::test]
async fn a_good_signature_names_its_instances() {
    let trust = service(catalog("required", vec![listed("a-1", 1)]));
    let sent = signed_by(&a_signer(), &format!("{ME}{PATH}"), NOW, "n1");
    let caller = verified_as_a1(&trust, &sent, SignatureAlg::Ed25519).await;
    assert!(trust.authorize(&caller, "yellow_dot").is_ok());
    assert_eq!(
        trust
            .authorize(&caller, "blue_dot")
            .expect_err("not a member")
            .code(),
        ErrorCode::SignerNotMember
    );
    assert!(
        trust
            .require_instance(&caller, "yellow_dot", "https://a.example.org/")
            .is_ok()
    );
    let claiming = trust
        .require_instance(&caller, "yellow_dot", "https://c.example.org")
        .expect_err("not that instance");
    assert_eq!(claiming.code(), ErrorCode::SignerNotInstance);
}

#[tokio::test]
async fn a_kid_another_network_gives_another_key_does_not_speak_for_that_network() {
    let yellow = NetworkDocument::parse(&json!({
        "name": "yellow_dot", "peer_auth": "required",
        "instances": [{"domain_name": "student", "instance_url": "https://a.example.org", "keys": [listed("a-1", 1)]}]
    }))
    .expect("doc");
    let blue = NetworkDocument::parse(&json!({
        "name": "blue_dot", "peer_auth": "required",
        "instances": [{"domain_name": "seeker", "instance_url": "https://c.example.org", "keys": [listed("a-1", 3)]}]
    }))
    .expect("doc");
    let trust = service(handle(vec![yellow, blue]));
    let sent = signed_by(&a_signer(), &format!("{ME}{PATH}"), NOW, "n1");
    let caller = verified_as_a1(&trust, &sent, SignatureAlg::Ed25519).await;
    assert_eq!(
        trust
            .authorize(&caller, "blue_dot")
            .expect_err("the key of c is another")
            .code(),
        ErrorCode::SignerNotMember
    );
}

#[derive(Default)]
struct Contacts(Mutex<Vec<String>>);

impl PeerContacts for Contacts {
    fn peer_contacted(&self, instance_url: &str) {
        self.0.lock().expect("lock").push(instance_url.to_string());
    }
}

#[tokio::test]
async fn only_a_valid_signature_counts_as_contact() {
    let contacts = Arc::new(Contacts::default());
    let trust =
        service(catalog("required", vec![listed("a-1", 1)])).with_contacts(contacts.clone());
    let mut bad = signed_by(&a_signer(), &format!("{ME}{PATH}"), NOW, "n8");
    bad.body.push(b' ');
    assert!(trust.authenticate(&bad.received(), true).await.is_err());
    assert!(contacts.0.lock().expect("lock").is_empty());
    let good = signed_by(&a_signer(), &format!("{ME}{PATH}"), NOW, "n9");
    trust
        .authenticate(&good.received(), true)
        .await
        .expect("verified");
    assert_eq!(
        *contacts.0.lock().expect("lock"),
        vec!["https://a.example.org".to_string()]
    );
}

#[tokio::test]
async fn tampering_is_rejected_with_the_right_code() {
    let trust = service(catalog("required", vec![listed("a-1", 1)]));
    let good = || signed_by(&a_signer(), &format!("{ME}{PATH}?x=1"), NOW, "n2");
    type Edit = fn(&mut Sent);
    let cases: Vec<(&str, Edit, ErrorCode)> = vec![
        (
            "method",
            |s| s.method = "PUT".into(),
            ErrorCode::SignatureInvalid,
        ),
        (
            "path",
            |s| s.path = "/api/v1/network/item/count_local?x=1".into(),
            ErrorCode::SignatureInvalid,
        ),
        (
            "query",
            |s| s.path = format!("{PATH}?x=2"),
            ErrorCode::SignatureInvalid,
        ),
        ("body", |s| s.body.push(b' '), ErrorCode::DigestMismatch),
        (
            "content type",
            |s| s.content_type = Some("text/plain".into()),
            ErrorCode::SignatureInvalid,
        ),
        (
            "missing digest",
            |s| s.digest = None,
            ErrorCode::SignatureInvalid,
        ),
        (
            "digest of another body",
            |s| s.digest = Some(content_digest(b"{}")),
            ErrorCode::SignatureInvalid,
        ),
        (
            "signature bytes",
            |s| s.signature = s.signature.as_ref().map(|v| flip_first_byte(v)),
            ErrorCode::SignatureInvalid,
        ),
        (
            "half a signature",
            |s| s.signature = None,
            ErrorCode::SignatureInvalid,
        ),
    ];
    for (name, edit, expected) in cases {
        let mut sent = good();
        edit(&mut sent);
        let result = trust.authenticate(&sent.received(), false).await;
        assert_eq!(
            result.as_ref().map_err(CoreError::code).err(),
            Some(expected),
            "{name}: {result:?}"
        );
    }
    let other_authority = signed_by(
        &a_signer(),
        &format!("https://d.example.org{PATH}"),
        NOW,
        "n3",
    );
    assert_eq!(
        code(trust.authenticate(&other_authority.received(), false).await),
        ErrorCode::SignatureInvalid
    );
    let old = signed_by(&a_signer(), &format!("{ME}{PATH}"), NOW - 301, "n4");
    assert_eq!(
        code(trust.authenticate(&old.received(), false).await),
        ErrorCode::SignatureExpired
    );
    let future = signed_by(&a_signer(), &format!("{ME}{PATH}"), NOW + 61, "n5");
    assert_eq!(
        code(trust.authenticate(&future.received(), false).await),
        ErrorCode::SignatureExpired
    );
    let stranger = signed_by(
        &PeerSigner::new(key(9), "a-1"),
        &format!("{ME}{PATH}"),
        NOW,
        "n6",
    );
    assert_eq!(
        code(trust.authenticate(&stranger.received(), false).await),
        ErrorCode::SignatureInvalid,
        "same kid, other key"
    );
    let unknown = signed_by(
        &PeerSigner::new(key(9), "nobody"),
        &format!("{ME}{PATH}"),
        NOW,
        "n7",
    );
    assert_eq!(
        code(trust.authenticate(&unknown.received(), false).await),
        ErrorCode::UnknownSigningKey
    );
    let once = signed_by(&a_signer(), &format!("{ME}{PATH}"), NOW, "n8");
    assert!(trust.authenticate(&once.received(), true).await.is_ok());
    assert_eq!(
        code(trust.authenticate(&once.received(), true).await),
        ErrorCode::NonceReplayed
    );
    assert!(
        trust.authenticate(&once.received(), false).await.is_ok(),
        "reads do not spend nonces"
    );
}

#[tokio::test]
async fn loopback_aliases_of_our_authority_verify() {
    let identity = Arc::new(InstanceIdentity {
        base_url: "http://127.0.0.1:2742".into(),
        ..(*identity()).clone()
    });
    let mut trust = service(catalog("required", vec![listed("a-1", 1)]));
    trust.origin = OwnOrigin::of(&identity.base_url);
    for target in ["http://127.0.0.1:2742", "http://localhost:2742"] {
        let sent = signed_by(&a_signer(), &format!("{target}{PATH}"), NOW, target);
        assert!(
            trust.authenticate(&sent.received(), false).await.is_ok(),
            "{target}"
        );
    }
}

#[tokio::test]
async fn modes_decide_about_unsigned_requests() {
    for (mode, unsigned_ok) in [("off", true), ("permissive", true), ("required", false)] {
        let trust = service(catalog(mode, vec![listed("a-1", 1)]));
        let unsigned = trust.authorize(&PeerCaller::Unsigned, "yellow_dot");
        assert_eq!(unsigned.is_ok(), unsigned_ok, "{mode}");
        if !unsigned_ok {
            assert_eq!(
                unsigned.expect_err("x").code(),
                ErrorCode::SignatureRequired
            );
        }
        let signed = signed_by(&a_signer(), &format!("{ME}{PATH}"), NOW, mode);
        let caller = trust
            .authenticate(&signed.received(), false)
            .await
            .expect("verified");
        assert!(trust.authorize(&caller, "yellow_dot").is_ok(), "{mode}");
        let mut bad = signed_by(&a_signer(), &format!("{ME}{PATH}"), NOW, mode);
        bad.body = b"{}".to_vec();
        assert!(
            trust.authenticate(&bad.received(), false).await.is_err(),
            "a bad signature fails in {mode} mode"
        );
    }
}

#[tokio::test]
async fn rotation_keeps_both_keys_until_one_is_removed() {
    let handle = catalog("required", vec![listed("a-1", 1), listed("a-2", 4)]);
    let trust = service(handle.clone());
    let new = PeerSigner::new(key(4), "a-2");
    for signer in [a_signer(), new.clone()] {
        let sent = signed_by(&signer, &format!("{ME}{PATH}"), NOW, signer.kid());
        assert!(
            trust.authenticate(&sent.received(), false).await.is_ok(),
            "{}",
            signer.kid()
        );
    }
    let rotated = catalog("required", vec![listed("a-2", 4)]);
    handle.replace((*rotated.current()).clone());
    let old = signed_by(&a_signer(), &format!("{ME}{PATH}"), NOW, "after");
    assert_eq!(
        code(trust.authenticate(&old.received(), false).await),
        ErrorCode::UnknownSigningKey
    );
    let sent = signed_by(&new, &format!("{ME}{PATH}"), NOW, "after-2");
    assert!(trust.authenticate(&sent.received(), false).await.is_ok());
}

#[tokio::test]
async fn unsigned_requests_are_unsigned_not_errors() {
    let trust = service(catalog("permissive", vec![]));
    let sent = Sent {
        method: "POST".into(),
        path: PATH.into(),
        host: None,
        content_type: Some("application/json".into()),
        digest: None,
        input: None,
        signature: None,
        body: b"{}".to_vec(),
    };
    assert_eq!(
        trust.authenticate(&sent.received(), true).await,
        Ok(PeerCaller::Unsigned)
    );
}

#[tokio::test]
async fn signed_writes_fail_closed_when_the_nonce_store_is_down() {
    let mut cache = MockCache::new();
    cache
        .expect_set_if_absent()
        .returning(|_, _, _| Err(CoreError::internal("connection refused")));
    let mut clock = MockClock::new();
    clock
        .expect_now()
        .returning(|| Utc.timestamp_opt(NOW, 0).single().expect("time"));
    let trust = PeerTrustService::new(
        catalog("required", vec![listed("a-1", 1)]),
        identity(),
        Arc::new(cache),
        Arc::new(clock),
    );
    let sent = signed_by(&a_signer(), &format!("{ME}{PATH}"), NOW, "n1");
    let refused = trust.authenticate(&sent.received(), true).await;
    assert!(
        matches!(refused, Err(CoreError::Unavailable { .. })),
        "{refused:?}"
    );
    assert!(
        trust.authenticate(&sent.received(), false).await.is_ok(),
        "reads need no nonce store"
    );
}

#[test]
fn signed_targets_are_what_the_url_parser_makes_of_origin_and_path() {
    for base in [
        "https://b.example.org",
        "http://127.0.0.1:8080/",
        "http://[::1]:9",
        "https://B.Example.org:443",
    ] {
        let own = OwnOrigin::of(base);
        for path_and_query in [
            "/api/v1/network/item/fetch_local",
            "/a/../b?x=1&y=%41",
            "/a b?q=é",
            "/?",
            "/x?",
            "/%2e%2e/y",
            "/a\\b",
            "/x?a#b",
            "*",
            "/√?√=1",
        ] {
            let parsed = url::Url::parse(&format!("{}{path_and_query}", own.origin)).ok();
            assert_eq!(
                own.with_path(path_and_query),
                parsed,
                "{base} {path_and_query}"
            );
        }
    }
}
