//! Peer request signatures: the subset of HTTP Message Signatures (RFC 9421) with Ed25519
//! and of `Content-Digest` (RFC 9530) that instances use to sign the requests they send
//! each other. Pure: callers turn their HTTP types into [`RequestParts`] and back.
//!
//! Signing: build the body's [`content_digest`] into a `Content-Digest` header, then
//! [`sign_request`] over [`STANDARD_COVERED`] and set the two returned headers.
//!
//! Verifying: [`verify_request`] checks the signature against a key found by its `keyid`
//! in the Network Schema. It does not check the time window, the nonce, which components
//! were covered or the body digest: the caller does that with the returned [`Verified`],
//! [`Verified::require_covered`] and [`verify_content_digest`].

mod base;
mod digest;
mod keys;
mod params;
mod sfv;

#[cfg(test)]
mod tests;

pub use base::{RequestParts, signature_base};
pub use digest::{content_digest, verify_content_digest};
pub use keys::{ALG_ED25519, KeyError, SigningKey, VerifyingKey};
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
    /// The `alg` parameter names an algorithm other than `ed25519`.
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
    pub alg: Option<String>,
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
    let covered: Vec<String> = covered.iter().map(|c| c.to_ascii_lowercase()).collect();
    let base = signature_base(parts, &covered, params)?;
    let input = SignatureInput {
        label: label.to_string(),
        covered,
        params: params.clone(),
    };
    let signature = SignatureValue {
        label: label.to_string(),
        bytes: key.sign(base.as_bytes()).to_vec(),
    };
    Ok(SignedHeaders {
        signature_input: input.to_field()?,
        signature: signature.to_field()?,
    })
}

/// Verifies the first signature of `Signature-Input` (and the `Signature` member of the
/// same label) against the request and the key `lookup` returns for its `keyid`.
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
    let (Some(input_field), Some(signature_field)) = (signature_input, signature) else {
        return Err(SignatureError::Missing);
    };
    let input = parse_signature_input(input_field, label)?;
    let value = parse_signature(signature_field, Some(&input.label))?;
    if input.params.alg().is_some_and(|alg| alg != ALG_ED25519) {
        return Err(SignatureError::UnsupportedAlg);
    }
    let bytes: [u8; 64] = value.bytes.as_slice().try_into().map_err(|_| {
        SignatureError::Malformed(format!(
            "an Ed25519 signature has 64 bytes, not {}",
            value.bytes.len()
        ))
    })?;
    let keyid = input
        .params
        .keyid()
        .ok_or_else(|| SignatureError::Malformed("keyid parameter is required".to_string()))?;
    let key = lookup(keyid).ok_or(SignatureError::UnknownKey)?;
    let base = signature_base(parts, &input.covered, &input.params)?;
    if !key.verify(base.as_bytes(), &bytes) {
        return Err(SignatureError::BadSignature);
    }
    Ok(Verified {
        label: input.label,
        keyid: keyid.to_string(),
        created: input.params.created(),
        expires: input.params.expires(),
        nonce: input.params.nonce().map(str::to_string),
        alg: input.params.alg().map(str::to_string),
        tag: input.params.tag().map(str::to_string),
        covered: input.covered,
    })
}
