//! Peer trust: every request between instances is signed (RFC 9421 with an RFC 9530
//! `Content-Digest`), keys come only from the Network Schema, and a network's `peer_auth`
//! mode decides what happens to unsigned requests.
//!
//! Writes are signed with the sender's Ed25519 key. Reads between two instances that each
//! publish one key are signed with the pair key they share ([`PairKeys`]): the same trust
//! root for a hash instead of an Ed25519 signature and verification per read.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{CoreError, ErrorCode};
use crate::model::{InstanceIdentity, normalize_instance_url};
use crate::network::{CatalogHandle, PeerAuthMode};
use crate::peer_auth::{
    MacKey, RequestParts, STANDARD_COVERED, SignatureAlg, SignatureError, SignatureParams,
    SigningKey, VerificationKey, content_digest, sign_request, sign_request_mac,
    verify_content_digest, verify_request_keyed,
};
use crate::ports::{Cache, Clock};
use crate::services::outbox::PeerContacts;

mod pair_keys;

pub use pair_keys::PairKeys;
use pair_keys::{PAIR_KEY_RECHECK_SECS, PairReads};

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
    /// The pair keys of this key, shared with the verifier.
    pair_keys: Arc<PairKeys>,
    /// Set when reads go with pair keys.
    pairs: Option<Arc<PairReads>>,
}

impl std::fmt::Debug for PeerSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSigner")
            .field("kid", &self.kid)
            .field("pair_reads", &self.pairs.is_some())
            .finish_non_exhaustive()
    }
}

impl PeerSigner {
    pub fn new(key: SigningKey, kid: impl Into<String>) -> Self {
        PeerSigner {
            pair_keys: Arc::new(PairKeys::new(&key)),
            key: Arc::new(key),
            kid: kid.into(),
            pairs: None,
        }
    }

    /// Signs reads with pair keys from now on, for peers that publish exactly one key in
    /// `catalog`.
    pub fn with_pair_reads(mut self, catalog: Arc<CatalogHandle>) -> Self {
        self.pairs = Some(Arc::new(PairReads::new(catalog)));
        self
    }

    /// The pair keys of this instance's key, for [`PeerTrustService::with_pair_keys`]: each
    /// pair key is then derived once for both directions' users.
    pub fn pair_keys(&self) -> Arc<PairKeys> {
        self.pair_keys.clone()
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn public_key_b64url(&self) -> String {
        self.key.public_key_b64url()
    }

    /// The pair key for a read to the instance at `peer_url`: `None` unless pair reads are
    /// on, the peer publishes exactly one key, and it has not refused a pair-key signature
    /// within the last hour (`now` in seconds since the epoch).
    pub fn pair_key_for(&self, peer_url: &str, now: i64) -> Option<MacKey> {
        let pairs = self.pairs.as_ref()?;
        let peer = pairs.normalized(peer_url);
        let refused = pairs
            .refused_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&peer)
            .is_some_and(|until| *until > now);
        if refused {
            return None;
        }
        let catalog = pairs.catalog.current();
        match catalog.instance_keys(&peer) {
            [only] => self.pair_keys.sending_to(only),
            _ => None,
        }
    }

    /// The peer at `peer_url` refused a pair-key signature: its reads are signed with
    /// Ed25519 for the next hour.
    pub fn pair_key_refused(&self, peer_url: &str, now: i64) {
        if let Some(pairs) = &self.pairs {
            let mut refused = pairs
                .refused_until
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            refused.retain(|_, until| *until > now);
            refused.insert(
                normalize_instance_url(peer_url),
                now + PAIR_KEY_RECHECK_SECS,
            );
        }
    }

    /// The headers that sign a request with this instance's Ed25519 key:
    /// `Content-Digest`, `Signature-Input`, `Signature`. `now` is seconds since the epoch;
    /// `nonce` must be unpredictable and unique.
    pub fn headers(
        &self,
        method: &str,
        target_uri: &str,
        content_type: &str,
        body: &[u8],
        now: i64,
        nonce: &str,
    ) -> Result<Vec<(&'static str, String)>, CoreError> {
        self.headers_with(None, method, target_uri, content_type, body, now, nonce)
    }

    /// [`headers`](Self::headers), signed with `pair_key` (`hmac-sha256`) when given.
    #[allow(clippy::too_many_arguments)]
    pub fn headers_with(
        &self,
        pair_key: Option<&MacKey>,
        method: &str,
        target_uri: &str,
        content_type: &str,
        body: &[u8],
        now: i64,
        nonce: &str,
    ) -> Result<Vec<(&'static str, String)>, CoreError> {
        let target = url::Url::parse(target_uri).map_err(|e| {
            CoreError::internal(format!("cannot sign a request to {target_uri}: {e}"))
        })?;
        self.headers_for(pair_key, method, &target, content_type, body, now, nonce)
    }

    /// [`headers_with`](Self::headers_with) for a target URI the caller has parsed already.
    #[allow(clippy::too_many_arguments)]
    pub fn headers_for(
        &self,
        pair_key: Option<&MacKey>,
        method: &str,
        target: &url::Url,
        content_type: &str,
        body: &[u8],
        now: i64,
        nonce: &str,
    ) -> Result<Vec<(&'static str, String)>, CoreError> {
        let digest = content_digest(body);
        let parts = RequestParts::from_url(
            method,
            target,
            vec![
                ("content-type".to_string(), content_type.to_string()),
                ("content-digest".to_string(), digest.clone()),
            ],
        )
        .map_err(|e| CoreError::internal(format!("cannot sign a request to {target}: {e}")))?;
        let params = SignatureParams::new()
            .with_created(now)
            .with_expires(now + SIGNATURE_LIFETIME_SECS)
            .with_keyid(self.kid.clone())
            .with_alg(
                match pair_key {
                    Some(_) => SignatureAlg::HmacSha256,
                    None => SignatureAlg::Ed25519,
                }
                .as_str(),
            )
            .with_nonce(nonce.to_string());
        let signed = match pair_key {
            Some(mac) => sign_request_mac(&parts, STANDARD_COVERED, &params, mac),
            None => sign_request(&parts, STANDARD_COVERED, &params, &self.key),
        }
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
    /// (network, normalized instance URL): an Ed25519 signature, or one made with the pair
    /// key of `kid`'s holder and this instance.
    Signed {
        kid: String,
        instances: Vec<(String, String)>,
        alg: SignatureAlg,
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
    /// This instance's origin, worked out once instead of on every signed request.
    origin: OwnOrigin,
    cache: Arc<dyn Cache>,
    clock: Arc<dyn Clock>,
    /// This instance's pair keys, when it has a key of its own (pair-key reads verify).
    pairs: Option<Arc<PairKeys>>,
    /// Told about every peer that proved itself (its waiting deliveries go at once).
    contacts: Option<Arc<dyn PeerContacts>>,
}

/// The parts of this instance's base URL that every signed request is checked against.
#[derive(Debug)]
struct OwnOrigin {
    /// `scheme://host[:port]`, as the URL parser spells it (the base URL itself if it
    /// does not parse).
    origin: String,
    /// `None` when the base URL does not parse: no alias is then accepted.
    scheme: Option<String>,
    normalized: String,
    /// The origin parsed, for targets built without parsing a host on every request.
    url: Option<url::Url>,
}

impl OwnOrigin {
    fn of(base_url: &str) -> Self {
        let base = base_url.trim_end_matches('/');
        let parsed = url::Url::parse(base).ok();
        let origin = parsed.as_ref().map_or_else(
            || base.to_string(),
            |url| url.origin().ascii_serialization(),
        );
        OwnOrigin {
            normalized: normalize_instance_url(&origin),
            scheme: parsed.as_ref().map(|url| url.scheme().to_string()),
            url: url::Url::parse(&origin).ok(),
            origin,
        }
    }

    /// The URL of `path_and_query` (as received) at this origin: the URL parser's form of
    /// `<origin><path_and_query>`, the host taken as parsed once.
    fn with_path(&self, path_and_query: &str) -> Option<url::Url> {
        let Some(origin) = &self.url else {
            return url::Url::parse(&format!("{}{path_and_query}", self.origin)).ok();
        };
        if !path_and_query.starts_with('/') || path_and_query.contains('#') {
            return url::Url::parse(&format!("{}{path_and_query}", self.origin)).ok();
        }
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path_and_query, None),
        };
        let mut target = origin.clone();
        target.set_path(path);
        target.set_query(query);
        Some(target)
    }
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
        let origin = OwnOrigin::of(&identity.base_url);
        PeerTrustService {
            catalog,
            origin,
            cache,
            clock,
            pairs: None,
            contacts: None,
        }
    }

    /// Verifies reads signed with the pair key of their sender and this instance.
    pub fn with_pair_keys(mut self, keys: Arc<PairKeys>) -> Self {
        self.pairs = Some(keys);
        self
    }

    /// Reports each validly signed request's instances to `contacts`.
    pub fn with_contacts(mut self, contacts: Arc<dyn PeerContacts>) -> Self {
        self.contacts = Some(contacts);
        self
    }

    /// Authenticates a peer request: authority, key, time window, digest, signature and,
    /// for `write` requests, an unused nonce (fails closed with 503 when the nonce store is
    /// down). An unsigned request is `Unsigned`; a bad signature is an error whatever the mode.
    /// Pair-key signatures are accepted on reads only, so every write carries its sender's
    /// own signature.
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
        for target in self.targets(request) {
            let mut headers = Vec::new();
            if let Some(value) = request.content_type {
                headers.push(("content-type".to_string(), value.to_string()));
            }
            if let Some(value) = request.content_digest {
                headers.push(("content-digest".to_string(), value.to_string()));
            }
            let Ok(parts) = RequestParts::from_url(request.method, &target, headers) else {
                continue;
            };
            let found = std::cell::RefCell::new(Vec::new());
            let lookup = |kid: &str, alg: Option<SignatureAlg>| {
                let listed = catalog.signing_key(kid);
                let key = listed
                    .first()
                    .map(|(_, _, key)| *key)
                    .ok_or(SignatureError::UnknownKey)?;
                // Only the holders of the key that verifies speak: another network may list
                // the same kid with a different key for a different instance.
                *found.borrow_mut() = listed
                    .iter()
                    .filter(|(_, _, holder_key)| *holder_key == key)
                    .map(|(network, url, _)| (network.clone(), url.clone()))
                    .collect();
                // Without `alg` a signature is Ed25519: only a named algorithm picks the pair key.
                match alg {
                    None | Some(SignatureAlg::Ed25519) => Ok(VerificationKey::Ed25519(key)),
                    Some(SignatureAlg::HmacSha256) if write => Err(SignatureError::UnsupportedAlg),
                    Some(SignatureAlg::HmacSha256) => self
                        .pairs
                        .as_ref()
                        .and_then(|pairs| pairs.receiving_from(&key))
                        .map(VerificationKey::HmacSha256)
                        .ok_or(SignatureError::UnsupportedAlg),
                }
            };
            let result =
                verify_request_keyed(&parts, Some(signature_input), Some(signature), None, lookup);
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
                        // An instance is listed once per network and domain it serves.
                        let mut told: Vec<&str> = Vec::with_capacity(1);
                        for (_, instance_url) in &instances {
                            if !told.contains(&instance_url.as_str()) {
                                told.push(instance_url);
                                contacts.peer_contacted(instance_url);
                            }
                        }
                    }
                    return Ok(PeerCaller::Signed {
                        kid: verified.keyid,
                        instances,
                        alg: verified.alg,
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
            PeerCaller::Signed { kid, instances, .. } => {
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
        let PeerCaller::Signed { kid, instances, .. } = caller else {
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
    fn targets(&self, request: &ReceivedRequest<'_>) -> Vec<url::Url> {
        let own = &self.origin;
        let mut targets: Vec<url::Url> =
            own.with_path(request.path_and_query).into_iter().collect();
        if let (Some(host), Some(scheme)) = (request.host, &own.scheme) {
            let alias = format!("{scheme}://{host}");
            if alias != own.origin
                && normalize_instance_url(&alias) == own.normalized
                && let Ok(target) = url::Url::parse(&format!("{alias}{}", request.path_and_query))
            {
                targets.push(target);
            }
        }
        targets
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
mod pair_tests;
#[cfg(test)]
mod tests;
