//! Peer trust: every request between instances is signed (RFC 9421 with Ed25519 and an RFC
//! 9530 `Content-Digest`), keys come only from the Network Schema, and a network's
//! `peer_auth` mode decides what happens to unsigned requests.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{CoreError, ErrorCode};
use crate::model::{InstanceIdentity, normalize_instance_url};
use crate::network::{CatalogHandle, PeerAuthMode};
use crate::peer_auth::{
    ALG_ED25519, RequestParts, STANDARD_COVERED, SignatureError, SignatureParams, SigningKey,
    content_digest, sign_request, verify_content_digest, verify_request,
};
use crate::ports::{Cache, Clock};
use crate::services::outbox::PeerContacts;

/// How long a signature is valid after it is made.
pub const SIGNATURE_LIFETIME_SECS: i64 = 300;
/// Accepted age of `created` (signer clock behind ours) and future skew (ahead of ours).
const MAX_AGE_SECS: i64 = 300;
const MAX_FUTURE_SECS: i64 = 60;
/// Nonces are remembered a little longer than a signature lives.
const NONCE_TTL: Duration = Duration::from_secs(360);

/// This instance's signing identity.
#[derive(Clone)]
pub struct PeerSigner {
    key: Arc<SigningKey>,
    kid: String,
}

impl std::fmt::Debug for PeerSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl PeerSigner {
    pub fn new(key: SigningKey, kid: impl Into<String>) -> Self {
        PeerSigner {
            key: Arc::new(key),
            kid: kid.into(),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn public_key_b64url(&self) -> String {
        self.key.public_key_b64url()
    }

    /// The headers that sign a request: `Content-Digest`, `Signature-Input`, `Signature`.
    /// `now` is seconds since the epoch; `nonce` must be unpredictable and unique.
    pub fn headers(
        &self,
        method: &str,
        target_uri: &str,
        content_type: &str,
        body: &[u8],
        now: i64,
        nonce: &str,
    ) -> Result<Vec<(&'static str, String)>, CoreError> {
        let digest = content_digest(body);
        let parts = RequestParts::from_uri(
            method,
            target_uri,
            vec![
                ("content-type".to_string(), content_type.to_string()),
                ("content-digest".to_string(), digest.clone()),
            ],
        )
        .map_err(|e| CoreError::internal(format!("cannot sign a request to {target_uri}: {e}")))?;
        let params = SignatureParams::new()
            .with_created(now)
            .with_expires(now + SIGNATURE_LIFETIME_SECS)
            .with_keyid(self.kid.clone())
            .with_alg(ALG_ED25519)
            .with_nonce(nonce.to_string());
        let signed = sign_request(&parts, STANDARD_COVERED, &params, &self.key)
            .map_err(|e| CoreError::internal(format!("cannot sign a request: {e}")))?;
        Ok(vec![
            ("content-digest", digest),
            ("signature-input", signed.signature_input),
            ("signature", signed.signature),
        ])
    }
}

/// What a peer request proved about its sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerCaller {
    /// A valid signature by `kid`, a key the Network Schema lists for `instances`
    /// (network, normalized instance URL).
    Signed {
        kid: String,
        instances: Vec<(String, String)>,
    },
    /// No signature (a TypeScript peer, or signing switched off).
    Unsigned,
}

/// A received request, as the HTTP layer sees it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest<'a> {
    pub method: &'a str,
    /// Path and query as received (`/api/v1/...?...`).
    pub path_and_query: &'a str,
    /// The `Host` header, if any.
    pub host: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub content_digest: Option<&'a str>,
    pub signature_input: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

pub struct PeerTrustService {
    catalog: Arc<CatalogHandle>,
    identity: Arc<InstanceIdentity>,
    cache: Arc<dyn Cache>,
    clock: Arc<dyn Clock>,
    /// Told about every peer that proved itself (its waiting deliveries go at once).
    contacts: Option<Arc<dyn PeerContacts>>,
}

fn unauthorized(code: ErrorCode, message: impl Into<String>) -> CoreError {
    CoreError::Unauthorized {
        code,
        message: message.into(),
    }
}

impl PeerTrustService {
    pub fn new(
        catalog: Arc<CatalogHandle>,
        identity: Arc<InstanceIdentity>,
        cache: Arc<dyn Cache>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        PeerTrustService {
            catalog,
            identity,
            cache,
            clock,
            contacts: None,
        }
    }

    /// Reports each validly signed request's instances to `contacts`.
    pub fn with_contacts(mut self, contacts: Arc<dyn PeerContacts>) -> Self {
        self.contacts = Some(contacts);
        self
    }

    /// Authenticates a peer request: authority, key, time window, digest, signature and,
    /// for `write` requests, an unused nonce (fails closed with 503 when the nonce store is
    /// down). An unsigned request is `Unsigned`; a bad signature is an error whatever the mode.
    pub async fn authenticate(
        &self,
        request: &ReceivedRequest<'_>,
        write: bool,
    ) -> Result<PeerCaller, CoreError> {
        let (Some(signature_input), Some(signature)) = (request.signature_input, request.signature)
        else {
            if request.signature_input.is_some() || request.signature.is_some() {
                return Err(unauthorized(
                    ErrorCode::SignatureInvalid,
                    "Signature and Signature-Input go together",
                ));
            }
            return Ok(PeerCaller::Unsigned);
        };
        let catalog = self.catalog.current();
        let mut last_error = None;
        for target_uri in self.target_uris(request) {
            let mut headers = Vec::new();
            if let Some(value) = request.content_type {
                headers.push(("content-type".to_string(), value.to_string()));
            }
            if let Some(value) = request.content_digest {
                headers.push(("content-digest".to_string(), value.to_string()));
            }
            let Ok(parts) = RequestParts::from_uri(request.method, &target_uri, headers) else {
                continue;
            };
            let found = std::cell::RefCell::new(Vec::new());
            let result = verify_request(&parts, Some(signature_input), Some(signature), |kid| {
                let listed = catalog.signing_key(kid);
                let key = listed.first().map(|(_, _, key)| *key);
                // Only the holders of the key that verifies speak: another network may list
                // the same kid with a different key for a different instance.
                *found.borrow_mut() = listed
                    .iter()
                    .filter(|(_, _, holder_key)| Some(*holder_key) == key)
                    .map(|(network, url, _)| (network.clone(), url.clone()))
                    .collect();
                key
            });
            match result {
                Ok(verified) => {
                    verified
                        .require_covered(STANDARD_COVERED)
                        .map_err(signature_error)?;
                    self.check_time(verified.created, verified.expires)?;
                    if !request
                        .content_digest
                        .is_some_and(|digest| verify_content_digest(digest, request.body))
                    {
                        return Err(unauthorized(
                            ErrorCode::DigestMismatch,
                            "Content-Digest does not match the body",
                        ));
                    }
                    if write {
                        self.spend_nonce(&verified.keyid, verified.nonce.as_deref())
                            .await?;
                    }
                    let instances = found.into_inner();
                    if let Some(contacts) = &self.contacts {
                        for (_, instance_url) in &instances {
                            contacts.peer_contacted(instance_url);
                        }
                    }
                    return Ok(PeerCaller::Signed {
                        kid: verified.keyid,
                        instances,
                    });
                }
                // Another accepted spelling of our authority may still match.
                Err(SignatureError::BadSignature) => {
                    last_error = Some(SignatureError::BadSignature)
                }
                Err(other) => return Err(signature_error(other)),
            }
        }
        Err(match last_error {
            Some(err) => signature_error(err),
            None => unauthorized(
                ErrorCode::WrongAuthority,
                "The request was not signed for this instance",
            ),
        })
    }

    /// Authorization after authentication: the network's `peer_auth` mode, then the signer
    /// must be a member of `network` (the network of the binding the request is about).
    pub fn authorize(&self, caller: &PeerCaller, network: &str) -> Result<(), CoreError> {
        let catalog = self.catalog.current();
        let mode = catalog
            .network(network)
            .map(|doc| doc.peer_auth)
            .unwrap_or_default();
        match caller {
            PeerCaller::Unsigned => match mode {
                PeerAuthMode::Required => Err(unauthorized(
                    ErrorCode::SignatureRequired,
                    format!("Network \"{network}\" requires signed peer requests"),
                )),
                PeerAuthMode::Permissive => {
                    tracing::warn!(
                        network,
                        "unsigned peer request accepted (peer_auth permissive)"
                    );
                    Ok(())
                }
                PeerAuthMode::Off => Ok(()),
            },
            PeerCaller::Signed { .. } if mode == PeerAuthMode::Off => Ok(()),
            PeerCaller::Signed { kid, instances } => {
                if instances
                    .iter()
                    .any(|(n, url)| n == network && catalog.is_member(network, url))
                {
                    return Ok(());
                }
                Err(CoreError::Forbidden {
                    code: ErrorCode::SignerNotMember,
                    message: format!(
                        "The key \"{kid}\" does not belong to an instance of network \"{network}\""
                    ),
                })
            }
        }
    }

    /// For routes acting on behalf of an instance (action perform, event store): the signer
    /// must be the instance at `claimed_url`. Unsigned callers pass (the mode decided).
    pub fn require_instance(
        &self,
        caller: &PeerCaller,
        network: &str,
        claimed_url: &str,
    ) -> Result<(), CoreError> {
        let PeerCaller::Signed { kid, instances } = caller else {
            return Ok(());
        };
        let claimed = normalize_instance_url(claimed_url);
        if instances
            .iter()
            .any(|(n, url)| n == network && *url == claimed)
        {
            return Ok(());
        }
        Err(CoreError::Forbidden {
            code: ErrorCode::SignerNotInstance,
            message: format!("The key \"{kid}\" is not a key of {claimed_url}"),
        })
    }

    /// Our base URL plus the `Host` the request arrived with when it is an accepted alias
    /// (a loopback spelling of the base URL): what the signer may have called.
    fn target_uris(&self, request: &ReceivedRequest<'_>) -> Vec<String> {
        let base = self.identity.base_url.trim_end_matches('/');
        let origin = match url::Url::parse(base) {
            Ok(url) => url.origin().ascii_serialization(),
            Err(_) => base.to_string(),
        };
        let mut uris = vec![format!("{origin}{}", request.path_and_query)];
        if let (Some(host), Ok(url)) = (request.host, url::Url::parse(base)) {
            let alias = format!("{}://{host}", url.scheme());
            if normalize_instance_url(&alias) == normalize_instance_url(&origin) {
                let uri = format!("{alias}{}", request.path_and_query);
                if !uris.contains(&uri) {
                    uris.push(uri);
                }
            }
        }
        uris
    }

    fn check_time(&self, created: Option<i64>, expires: Option<i64>) -> Result<(), CoreError> {
        let now = self.clock.now().timestamp();
        let Some(created) = created else {
            return Err(unauthorized(
                ErrorCode::SignatureInvalid,
                "The signature has no created time",
            ));
        };
        if created > now + MAX_FUTURE_SECS {
            return Err(unauthorized(
                ErrorCode::SignatureExpired,
                "The signature was made in the future",
            ));
        }
        if created < now - MAX_AGE_SECS || expires.is_some_and(|e| e < now) {
            return Err(unauthorized(
                ErrorCode::SignatureExpired,
                "The signature has expired",
            ));
        }
        Ok(())
    }

    async fn spend_nonce(&self, kid: &str, nonce: Option<&str>) -> Result<(), CoreError> {
        let Some(nonce) = nonce.filter(|n| !n.is_empty() && n.len() <= 128) else {
            return Err(unauthorized(
                ErrorCode::SignatureInvalid,
                "A write needs a signature nonce",
            ));
        };
        match self
            .cache
            .set_if_absent(&format!("peer-nonce:{kid}:{nonce}"), b"1", NONCE_TTL)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(unauthorized(
                ErrorCode::NonceReplayed,
                "This signature was already used",
            )),
            Err(err) => {
                tracing::error!(error = %err, "nonce store unavailable: refusing the signed write");
                Err(CoreError::Unavailable {
                    code: ErrorCode::StorageUnavailable,
                    message: "Replay protection is unavailable; try again shortly".to_string(),
                })
            }
        }
    }
}

fn signature_error(err: SignatureError) -> CoreError {
    let code = match err {
        SignatureError::Missing => ErrorCode::SignatureRequired,
        SignatureError::UnknownKey => ErrorCode::UnknownSigningKey,
        _ => ErrorCode::SignatureInvalid,
    };
    unauthorized(code, format!("Peer signature rejected: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ServedBindings;
    use crate::network::{CatalogOrigin, NetworkCatalog, NetworkDocument, SchemaCompiler};
    use crate::ports::{MockCache, MockClock};
    use chrono::{TimeZone, Utc};
    use serde_json::json;
    use std::collections::{HashMap, HashSet};
    use std::sync::Mutex;

    const NOW: i64 = 1_800_000_000;
    const ME: &str = "https://b.example.org";
    const PATH: &str = "/api/v1/network/item/fetch_local";

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_seed(&[seed; 32])
    }

    fn listed(kid: &str, seed: u8) -> serde_json::Value {
        json!({"kid": kid, "alg": "ed25519", "public_key": key(seed).public_key_b64url()})
    }

    fn catalog(mode: &str, a_keys: Vec<serde_json::Value>) -> Arc<CatalogHandle> {
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

    fn handle(documents: Vec<NetworkDocument>) -> Arc<CatalogHandle> {
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

    fn service(catalog: Arc<CatalogHandle>) -> PeerTrustService {
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

    struct Sent {
        method: String,
        path: String,
        host: Option<String>,
        content_type: Option<String>,
        digest: Option<String>,
        input: Option<String>,
        signature: Option<String>,
        body: Vec<u8>,
    }

    impl Sent {
        fn received(&self) -> ReceivedRequest<'_> {
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

    fn signed_by(signer: &PeerSigner, target: &str, created: i64, nonce: &str) -> Sent {
        let body =
            br#"{"item_network":"yellow_dot","item_domain":"student","limit":20,"offset":0}"#
                .to_vec();
        let headers = signer
            .headers("POST", target, "application/json", &body, created, nonce)
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
    fn flip_first_byte(field: &str) -> String {
        let start = field.find(":").expect("byte sequence") + 1;
        let mut chars: Vec<char> = field.chars().collect();
        chars[start] = if chars[start] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect()
    }

    fn a_signer() -> PeerSigner {
        PeerSigner::new(key(1), "a-1")
    }

    fn code(result: Result<PeerCaller, CoreError>) -> ErrorCode {
        result.expect_err("rejected").code()
    }

    #[tokio::test]
    async fn a_good_signature_names_its_instances() {
        let trust = service(catalog("required", vec![listed("a-1", 1)]));
        let sent = signed_by(&a_signer(), &format!("{ME}{PATH}"), NOW, "n1");
        let caller = trust
            .authenticate(&sent.received(), false)
            .await
            .expect("verified");
        assert_eq!(
            caller,
            PeerCaller::Signed {
                kid: "a-1".into(),
                instances: vec![("yellow_dot".into(), "https://a.example.org".into())]
            }
        );
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
        let caller = trust
            .authenticate(&sent.received(), false)
            .await
            .expect("verified");
        assert_eq!(
            caller,
            PeerCaller::Signed {
                kid: "a-1".into(),
                instances: vec![("yellow_dot".into(), "https://a.example.org".into())]
            }
        );
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
        trust.identity = identity;
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
}
