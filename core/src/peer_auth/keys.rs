//! Ed25519 keys: an instance's signing key and the verifying keys of the Network Schema.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::spki::der::zeroize::Zeroizing;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use sha2::{Digest as _, Sha256};

use crate::network::document::InstanceKey;

/// The `alg` of our keys, in the Network Schema and in signature parameters.
pub const ALG_ED25519: &str = "ed25519";

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not valid base64/base64url or PEM.
    #[error("invalid key encoding: {0}")]
    Encoding(String),
    /// The bytes are not an Ed25519 key.
    #[error("invalid Ed25519 key: {0}")]
    Invalid(String),
    /// The key is for another algorithm.
    #[error("unsupported key algorithm {0:?}")]
    UnsupportedAlg(String),
}

const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An instance's Ed25519 signing key. Its `Debug` shows only the suggested key id.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.suggested_kid())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The key whose secret is these 32 bytes (the RFC 8032 seed). To generate a key, pass
    /// 32 bytes from a cryptographically secure random source.
    pub fn from_seed(seed: &[u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// Reads a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) Ed25519 key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<SigningKey, KeyError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem.trim())
            .map(SigningKey)
            .map_err(|e| KeyError::Invalid(e.to_string()))
    }

    /// Writes the key as PKCS#8 PEM (LF line endings); the buffer is zeroed when dropped.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        self.0
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| KeyError::Encoding(e.to_string()))
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.0.verifying_key())
    }

    /// The public key as published in the Network Schema: base64url of the 32 raw bytes,
    /// without padding.
    pub fn public_key_b64url(&self) -> String {
        self.verifying_key().to_b64url()
    }

    /// A key id derived from the public key: `ed25519-` and the first 16 characters of the
    /// base64url SHA-256 of the 32 raw bytes.
    pub fn suggested_kid(&self) -> String {
        self.verifying_key().suggested_kid()
    }

    /// The 64-byte Ed25519 signature of `message` (deterministic).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }

    /// The X25519 secret scalar of this key (unclamped), for pair keys.
    pub(super) fn scalar_bytes(&self) -> [u8; 32] {
        self.0.to_scalar_bytes()
    }
}

/// An Ed25519 public key that verifies peer signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl VerifyingKey {
    /// The key from its 32 raw bytes; `Invalid` if they are not a point of the curve.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<VerifyingKey, KeyError> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map(VerifyingKey)
            .map_err(|e| KeyError::Invalid(e.to_string()))
    }

    /// The key from the Network Schema form: base64url of the 32 raw bytes, padded or not;
    /// standard base64 (padded or not) is accepted too.
    pub fn from_base64(text: &str) -> Result<VerifyingKey, KeyError> {
        let text = text.trim();
        if text.len() > 64 {
            return Err(KeyError::Encoding("public key text too long".to_string()));
        }
        let bytes = URL_SAFE_LENIENT
            .decode(text)
            .or_else(|_| STANDARD_LENIENT.decode(text))
            .map_err(|_| KeyError::Encoding("public key is not base64url".to_string()))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            KeyError::Invalid(format!("public key has {} bytes, not 32", b.len()))
        })?;
        VerifyingKey::from_bytes(&bytes)
    }

    /// Reads an SPKI PEM (`-----BEGIN PUBLIC KEY-----`) Ed25519 key.
    pub fn from_public_key_pem(pem: &str) -> Result<VerifyingKey, KeyError> {
        ed25519_dalek::VerifyingKey::from_public_key_pem(pem.trim())
            .map(VerifyingKey)
            .map_err(|e| KeyError::Invalid(e.to_string()))
    }

    /// Writes the key as SPKI PEM (LF line endings).
    pub fn to_public_key_pem(&self) -> Result<String, KeyError> {
        self.0
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| KeyError::Encoding(e.to_string()))
    }

    /// The key of a Network Schema `instances[].keys` entry; `UnsupportedAlg` unless its
    /// `alg` is `ed25519`.
    pub fn from_instance_key(key: &InstanceKey) -> Result<VerifyingKey, KeyError> {
        if !key.alg.eq_ignore_ascii_case(ALG_ED25519) {
            return Err(KeyError::UnsupportedAlg(key.alg.clone()));
        }
        VerifyingKey::from_base64(&key.public_key)
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The X25519 (Montgomery) form of this key, for pair keys.
    pub(super) fn montgomery(&self) -> curve25519_dalek::montgomery::MontgomeryPoint {
        self.0.to_montgomery()
    }

    /// Base64url of the 32 raw bytes, without padding.
    pub fn to_b64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }

    /// `ed25519-` and the first 16 characters of base64url(SHA-256(public key)).
    pub fn suggested_kid(&self) -> String {
        let digest = URL_SAFE_NO_PAD.encode(Sha256::digest(self.0.as_bytes()));
        format!("ed25519-{}", digest.get(..16).unwrap_or(&digest))
    }

    /// Whether `signature` is this key's signature of `message`. Strict verification:
    /// refuses small-order keys and non-canonical signatures.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        self.0.verify_strict(message, &signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    #[test]
    fn seed_pem_and_public_forms_agree() {
        let key = SigningKey::from_seed(&[7; 32]);
        let pem = key.to_pkcs8_pem().expect("encodes");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let back = SigningKey::from_pkcs8_pem(&pem).expect("decodes");
        assert_eq!(back.verifying_key(), key.verifying_key());

        let public = key.public_key_b64url();
        assert_eq!(public.len(), 43);
        assert!(!public.contains(['=', '+', '/']));
        assert_eq!(
            VerifyingKey::from_base64(&public).expect("b64url"),
            key.verifying_key()
        );
        let standard =
            base64::engine::general_purpose::STANDARD.encode(key.verifying_key().to_bytes());
        assert_eq!(
            VerifyingKey::from_base64(&standard).expect("standard base64"),
            key.verifying_key()
        );
        let spki = key.verifying_key().to_public_key_pem().expect("encodes");
        assert_eq!(
            VerifyingKey::from_public_key_pem(&spki).expect("decodes"),
            key.verifying_key()
        );

        let kid = key.suggested_kid();
        assert!(kid.starts_with("ed25519-"));
        assert_eq!(kid.len(), "ed25519-".len() + 16);
        assert!(format!("{key:?}").contains(&kid));
        assert!(!format!("{key:?}").contains(&*pem));
    }

    #[test]
    fn bad_public_keys_are_refused() {
        assert!(matches!(
            VerifyingKey::from_base64("not base64!"),
            Err(KeyError::Encoding(_))
        ));
        assert!(matches!(
            VerifyingKey::from_base64("AQID"),
            Err(KeyError::Invalid(_))
        ));
        assert!(VerifyingKey::from_base64(&"A".repeat(200)).is_err());
        assert!(
            SigningKey::from_pkcs8_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"
            )
            .is_err()
        );
    }

    #[test]
    fn instance_keys_need_the_ed25519_alg() {
        let key = SigningKey::from_seed(&[1; 32]);
        let mut entry = InstanceKey {
            kid: key.suggested_kid(),
            alg: "ed25519".to_string(),
            public_key: key.public_key_b64url(),
            extra: Map::new(),
        };
        assert_eq!(
            VerifyingKey::from_instance_key(&entry).expect("valid"),
            key.verifying_key()
        );
        entry.alg = "rsa".to_string();
        assert_eq!(
            VerifyingKey::from_instance_key(&entry),
            Err(KeyError::UnsupportedAlg("rsa".to_string()))
        );
    }

    #[test]
    fn signs_and_verifies_raw_messages() {
        let key = SigningKey::from_seed(&[9; 32]);
        let sig = key.sign(b"hello");
        assert!(key.verifying_key().verify(b"hello", &sig));
        assert!(!key.verifying_key().verify(b"hellO", &sig));
        let other = SigningKey::from_seed(&[8; 32]);
        assert!(!other.verifying_key().verify(b"hello", &sig));
    }
}
