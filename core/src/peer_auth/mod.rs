//! Peer request signatures: the subset of HTTP Message Signatures (RFC 9421) with Ed25519
//! and HMAC-SHA256, and of `Content-Digest` (RFC 9530), that instances use to sign the
//! requests they send each other. Pure: callers turn their HTTP types into
//! [`RequestParts`] and back.
//!
//! Signing: build the body's [`content_digest`] into a `Content-Digest` header, then
//! [`sign_request`] (Ed25519) or [`sign_request_mac`] (a [`MacKey`] two instances share,
//! see [`PairSecret`]) over [`STANDARD_COVERED`] and set the two returned headers.
//!
//! Verifying: [`verify_request`] checks the signature against a key found by its `keyid`
//! in the Network Schema. It does not check the time window, the nonce, which components
//! were covered or the body digest: the caller does that with the returned [`Verified`],
//! [`Verified::require_covered`] and [`verify_content_digest`].

mod base;
mod digest;
mod keys;
mod pair;
mod params;
mod sfv;

#[cfg(test)]
mod tests;

pub use base::{RequestParts, signature_base};
pub use digest::{content_digest, verify_content_digest};
pub use keys::{ALG_ED25519, KeyError, SigningKey, VerifyingKey};
pub use pair::{ALG_HMAC_SHA256, MacKey, PairSecret};
pub use params::{
    SignatureInput, SignatureParam, SignatureParams, SignatureValue, parse_signature,
    parse_signature_input,
};

use crate::error::CoreError;

/// The label our signatures use.
pub const DEFAULT_LABEL: &str = "sig1";

/// The components every peer request with a body covers.
pub const STANDARD_COVERED: &[&str] = &[
    "@method",
    "@target-uri",
    "@authority",
    "content-type",
    "content-digest",
];

/// Why a signature was not accepted. Each variant has a stable [`reason`](Self::reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The request has no `Signature-Input` or no `Signature` field (or an empty one).
    #[error("the request is not signed")]
    Missing,
    /// A field or component is invalid or outside the supported subset.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// No key with the signature's `keyid` is trusted.
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not match the request and the key.
    #[error("the signature does not verify")]
    BadSignature,
    /// The `alg` parameter names an algorithm other than `ed25519` and `hmac-sha256`, or
    /// one the verifier has no key of for this `keyid`.
    #[error("unsupported signature algorithm")]
    UnsupportedAlg,
    /// A covered header field is absent from the request.
    #[error("covered component {0:?} is missing from the request")]
    MissingComponent(String),
}

impl SignatureError {
    /// A stable machine-readable reason, for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            SignatureError::Missing => "missing",
            SignatureError::Malformed(_) => "malformed",
            SignatureError::UnknownKey => "unknown_key",
            SignatureError::BadSignature => "bad_signature",
            SignatureError::UnsupportedAlg => "unsupported_alg",
            SignatureError::MissingComponent(_) => "missing_component",
        }
    }
}

impl From<SignatureError> for CoreError {
    fn from(err: SignatureError) -> Self {
        CoreError::unauthorized(format!("peer signature rejected: {err}"))
    }
}

/// The two header fields that carry a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// The `Signature-Input` field value.
    pub signature_input: String,
    /// The `Signature` field value.
    pub signature: String,
}

/// What a valid signature says; the caller applies its time-window and nonce policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub label: String,
    pub keyid: String,
    pub created: Option<i64>,
    pub expires: Option<i64>,
    pub nonce: Option<String>,
    /// The algorithm that verified it.
    pub alg: SignatureAlg,
    pub tag: Option<String>,
    /// The covered components, in signed order.
    pub covered: Vec<String>,
}

impl Verified {
    /// Whether the signature covers `component`.
    pub fn covers(&self, component: &str) -> bool {
        self.covered.iter().any(|c| c == component)
    }

    /// `MissingComponent` naming the first of `components` the signature does not cover.
    pub fn require_covered(&self, components: &[&str]) -> Result<(), SignatureError> {
        match components.iter().find(|c| !self.covers(c)) {
            Some(missing) => Err(SignatureError::MissingComponent((*missing).to_string())),
            None => Ok(()),
        }
    }
}

/// Signs the request with label [`DEFAULT_LABEL`]. Header names in `covered` are
/// lower-cased. `UnsupportedAlg` if `params` has an `alg` other than `ed25519`;
/// `Malformed` / `MissingComponent` as [`signature_base`].
pub fn sign_request(
    parts: &RequestParts,
    covered: &[&str],
    params: &SignatureParams,
    key: &SigningKey,
) -> Result<SignedHeaders, SignatureError> {
    sign_request_with_label(parts, covered, params, key, DEFAULT_LABEL)
}

/// [`sign_request`] with another label.
pub fn sign_request_with_label(
    parts: &RequestParts,
    covered: &[&str],
    params: &SignatureParams,
    key: &SigningKey,
    label: &str,
) -> Result<SignedHeaders, SignatureError> {
    if params.alg().is_some_and(|alg| alg != ALG_ED25519) {
        return Err(SignatureError::UnsupportedAlg);
    }
    sign_with(parts, covered, params, label, |base| {
        key.sign(base).to_vec()
    })
}

/// Signs the request with a shared [`MacKey`] (`hmac-sha256`, label [`DEFAULT_LABEL`]).
/// `UnsupportedAlg` if `params` has an `alg` other than `hmac-sha256`; otherwise as
/// [`sign_request`].
pub fn sign_request_mac(
    parts: &RequestParts,
    covered: &[&str],
    params: &SignatureParams,
    key: &MacKey,
) -> Result<SignedHeaders, SignatureError> {
    sign_request_mac_with_label(parts, covered, params, key, DEFAULT_LABEL)
}

/// [`sign_request_mac`] with another label.
pub fn sign_request_mac_with_label(
    parts: &RequestParts,
    covered: &[&str],
    params: &SignatureParams,
    key: &MacKey,
    label: &str,
) -> Result<SignedHeaders, SignatureError> {
    if params.alg().is_some_and(|alg| alg != ALG_HMAC_SHA256) {
        return Err(SignatureError::UnsupportedAlg);
    }
    sign_with(parts, covered, params, label, |base| {
        key.sign(base).to_vec()
    })
}

fn sign_with(
    parts: &RequestParts,
    covered: &[&str],
    params: &SignatureParams,
    label: &str,
    sign: impl FnOnce(&[u8]) -> Vec<u8>,
) -> Result<SignedHeaders, SignatureError> {
    let covered: Vec<String> = covered.iter().map(|c| c.to_ascii_lowercase()).collect();
    let base = signature_base(parts, &covered, params)?;
    let input = SignatureInput {
        label: label.to_string(),
        covered,
        params: params.clone(),
    };
    let signature = SignatureValue {
        label: label.to_string(),
        bytes: sign(base.as_bytes()),
    };
    Ok(SignedHeaders {
        signature_input: input.to_field()?,
        signature: signature.to_field()?,
    })
}

/// The algorithm a signature names: `ed25519` (also when `alg` is absent) or
/// `hmac-sha256`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlg {
    Ed25519,
    HmacSha256,
}

/// A key that checks a signature of its algorithm.
#[derive(Debug, Clone)]
pub enum VerificationKey {
    Ed25519(VerifyingKey),
    HmacSha256(MacKey),
}

impl SignatureAlg {
    /// The `alg` parameter's value for this algorithm.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureAlg::Ed25519 => ALG_ED25519,
            SignatureAlg::HmacSha256 => ALG_HMAC_SHA256,
        }
    }

    /// The algorithm an `alg` parameter names, if supported.
    fn from_name(name: &str) -> Option<SignatureAlg> {
        [SignatureAlg::Ed25519, SignatureAlg::HmacSha256]
            .into_iter()
            .find(|alg| alg.as_str() == name)
    }

    /// The length of this algorithm's signatures, in bytes.
    fn signature_len(self) -> usize {
        match self {
            SignatureAlg::Ed25519 => 64,
            SignatureAlg::HmacSha256 => 32,
        }
    }

    fn name(self) -> &'static str {
        match self {
            SignatureAlg::Ed25519 => "an Ed25519",
            SignatureAlg::HmacSha256 => "an HMAC-SHA256",
        }
    }
}

impl VerificationKey {
    fn alg(&self) -> SignatureAlg {
        match self {
            VerificationKey::Ed25519(_) => SignatureAlg::Ed25519,
            VerificationKey::HmacSha256(_) => SignatureAlg::HmacSha256,
        }
    }

    /// Whether `signature` (already of the algorithm's length) signs `message`.
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            VerificationKey::Ed25519(key) => signature
                .try_into()
                .is_ok_and(|bytes: &[u8; 64]| key.verify(message, bytes)),
            VerificationKey::HmacSha256(key) => key.verify(message, signature),
        }
    }
}

/// Verifies the first signature of `Signature-Input` (and the `Signature` member of the
/// same label) against the request and the Ed25519 key `lookup` returns for its `keyid`.
///
/// Errors: `Missing` if either field is absent or empty; `Malformed` if a field is invalid
/// or outside the subset (including a missing `keyid` or a signature that is not 64
/// bytes); `UnsupportedAlg` if `alg` is present and not `ed25519`; `UnknownKey` if
/// `lookup` gives no key; `MissingComponent` if a covered header is absent;
/// `BadSignature` if the signature does not verify.
pub fn verify_request(
    parts: &RequestParts,
    signature_input: Option<&str>,
    signature: Option<&str>,
    lookup: impl Fn(&str) -> Option<VerifyingKey>,
) -> Result<Verified, SignatureError> {
    verify_request_with_label(parts, signature_input, signature, None, lookup)
}

/// [`verify_request`] for the signature `label` (the first one when `None`).
pub fn verify_request_with_label(
    parts: &RequestParts,
    signature_input: Option<&str>,
    signature: Option<&str>,
    label: Option<&str>,
    lookup: impl Fn(&str) -> Option<VerifyingKey>,
) -> Result<Verified, SignatureError> {
    verify_request_keyed(
        parts,
        signature_input,
        signature,
        label,
        |keyid, alg| match alg {
            None | Some(SignatureAlg::Ed25519) => lookup(keyid)
                .map(VerificationKey::Ed25519)
                .ok_or(SignatureError::UnknownKey),
            Some(SignatureAlg::HmacSha256) => Err(SignatureError::UnsupportedAlg),
        },
    )
}

/// [`verify_request_with_label`] for both algorithms: `lookup` gets the `keyid` and the
/// algorithm the signature names (`None` when it has no `alg`, as RFC 9421 allows: the key
/// then decides) and returns the key that checks it, or the error to answer
/// (`UnknownKey`, or `UnsupportedAlg` for an algorithm it has no key of).
///
/// Errors as [`verify_request`], except that `hmac-sha256` (32-byte signatures) is
/// supported; `UnsupportedAlg` also if `lookup` answers with a key of another algorithm
/// than the one named.
pub fn verify_request_keyed(
    parts: &RequestParts,
    signature_input: Option<&str>,
    signature: Option<&str>,
    label: Option<&str>,
    lookup: impl Fn(&str, Option<SignatureAlg>) -> Result<VerificationKey, SignatureError>,
) -> Result<Verified, SignatureError> {
    let (Some(input_field), Some(signature_field)) = (signature_input, signature) else {
        return Err(SignatureError::Missing);
    };
    let input = parse_signature_input(input_field, label)?;
    let value = parse_signature(signature_field, Some(&input.label))?;
    let named = match input.params.alg() {
        None => None,
        Some(name) => Some(SignatureAlg::from_name(name).ok_or(SignatureError::UnsupportedAlg)?),
    };
    if let Some(alg) = named {
        check_signature_len(alg, &value.bytes)?;
    }
    let keyid = input
        .params
        .keyid()
        .ok_or_else(|| SignatureError::Malformed("keyid parameter is required".to_string()))?;
    let key = lookup(keyid, named)?;
    if named.is_some_and(|alg| alg != key.alg()) {
        return Err(SignatureError::UnsupportedAlg);
    }
    check_signature_len(key.alg(), &value.bytes)?;
    let base = signature_base(parts, &input.covered, &input.params)?;
    if !key.verify(base.as_bytes(), &value.bytes) {
        return Err(SignatureError::BadSignature);
    }
    Ok(Verified {
        label: input.label,
        keyid: keyid.to_string(),
        created: input.params.created(),
        expires: input.params.expires(),
        nonce: input.params.nonce().map(str::to_string),
        alg: key.alg(),
        tag: input.params.tag().map(str::to_string),
        covered: input.covered,
    })
}

fn check_signature_len(alg: SignatureAlg, bytes: &[u8]) -> Result<(), SignatureError> {
    if bytes.len() == alg.signature_len() {
        return Ok(());
    }
    Err(SignatureError::Malformed(format!(
        "{} signature has {} bytes, not {}",
        alg.name(),
        alg.signature_len(),
        bytes.len()
    )))
}
