//! Pair keys: a secret that two instances share without ever exchanging it, derived from
//! the Ed25519 keys the Network Schema publishes for both.
//!
//! Each side turns its own Ed25519 key and the other's published key into their X25519
//! forms and agrees on a shared point (static-static Diffie-Hellman, as libsodium's
//! `crypto_sign_ed25519_*_to_curve25519` allows). HKDF-SHA256 then gives one key per
//! direction, bound to both public keys. Only the two instances can compute it, so an
//! RFC 9421 `hmac-sha256` signature made with it authenticates the sender to the receiver
//! at the cost of a hash instead of an Ed25519 signature and verification.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::keys::{SigningKey, VerifyingKey};

/// The RFC 9421 algorithm name of signatures made with a [`MacKey`].
pub const ALG_HMAC_SHA256: &str = "hmac-sha256";
/// Domain separation for the key derivation: a pair key is good for nothing else.
const DERIVATION_SALT: &[u8] = b"dpg peer request mac v1";

/// A secret HMAC-SHA256 key. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct MacKey(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey(..)")
    }
}

impl MacKey {
    /// A key of these bytes (RFC 9421 shared secrets are any length).
    pub fn from_bytes(bytes: &[u8]) -> MacKey {
        MacKey(Zeroizing::new(bytes.to_vec()))
    }

    fn hmac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }

    /// The 32-byte HMAC-SHA256 of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 32] {
        let mut mac = self.hmac();
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` is the HMAC-SHA256 of `message`, compared in constant time.
    pub fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.hmac();
        mac.update(message);
        mac.verify_slice(tag).is_ok()
    }
}

/// This instance's half of every pair: the X25519 form of its Ed25519 key.
pub struct PairSecret {
    scalar: Zeroizing<[u8; 32]>,
    public: VerifyingKey,
}

impl std::fmt::Debug for PairSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairSecret")
            .field("public", &self.public.to_b64url())
            .finish_non_exhaustive()
    }
}

impl PairSecret {
    pub fn new(key: &SigningKey) -> PairSecret {
        PairSecret {
            scalar: Zeroizing::new(key.scalar_bytes()),
            public: key.verifying_key(),
        }
    }

    /// This instance's public key (the one its peers must list for it).
    pub fn public(&self) -> VerifyingKey {
        self.public
    }

    /// The key of requests from this instance to the holder of `peer`; `None` when the
    /// agreement gives no secret (a small-order key).
    pub fn sending_to(&self, peer: &VerifyingKey) -> Option<MacKey> {
        self.derive(peer, &self.public, peer)
    }

    /// The key of requests from the holder of `peer` to this instance.
    pub fn receiving_from(&self, peer: &VerifyingKey) -> Option<MacKey> {
        self.derive(peer, peer, &self.public)
    }

    fn derive(
        &self,
        other: &VerifyingKey,
        sender: &VerifyingKey,
        receiver: &VerifyingKey,
    ) -> Option<MacKey> {
        let shared = Zeroizing::new(other.montgomery().mul_clamped(*self.scalar).to_bytes());
        // An all-zero point means the other key has small order: nothing secret was agreed.
        if bool::from(shared.ct_eq(&[0u8; 32])) {
            return None;
        }
        let derivation = Hkdf::<Sha256>::new(Some(DERIVATION_SALT), shared.as_slice());
        let mut info = [0u8; 64];
        info[..32].copy_from_slice(&sender.to_bytes());
        info[32..].copy_from_slice(&receiver.to_bytes());
        let mut key = Zeroizing::new([0u8; 32]);
        derivation.expand(&info, key.as_mut_slice()).ok()?;
        Some(MacKey::from_bytes(key.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(seed: u8) -> PairSecret {
        PairSecret::new(&SigningKey::from_seed(&[seed; 32]))
    }

    #[test]
    fn both_ends_of_a_direction_agree_and_directions_differ() {
        let (a, b) = (secret(1), secret(2));
        let a_to_b = a.sending_to(&b.public()).expect("a to b");
        assert_eq!(b.receiving_from(&a.public()), Some(a_to_b.clone()));
        let b_to_a = b.sending_to(&a.public()).expect("b to a");
        assert_eq!(a.receiving_from(&b.public()), Some(b_to_a.clone()));
        assert_ne!(
            a_to_b, b_to_a,
            "a request cannot be reflected back to its sender"
        );
    }

    #[test]
    fn a_third_instance_derives_another_key() {
        let (a, b, c) = (secret(1), secret(2), secret(3));
        let a_to_b = a.sending_to(&b.public()).expect("a to b");
        // C knows both public keys but not a private one of the pair.
        assert_ne!(c.sending_to(&b.public()), Some(a_to_b.clone()));
        assert_ne!(c.receiving_from(&a.public()), Some(a_to_b));
    }

    #[test]
    fn macs_verify_only_for_their_message_and_key() {
        let key = secret(1).sending_to(&secret(2).public()).expect("key");
        let tag = key.sign(b"base");
        assert!(key.verify(b"base", &tag));
        assert!(!key.verify(b"basE", &tag));
        assert!(!key.verify(b"base", &tag[..31]));
        let other = secret(1).sending_to(&secret(3).public()).expect("key");
        assert!(!other.verify(b"base", &tag));
        assert_eq!(format!("{key:?}"), "MacKey(..)");
    }

    #[test]
    fn a_small_order_key_gives_no_pair_key() {
        // The Edwards identity (y = 1) is a valid encoding of a small-order point.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).expect("decodes");
        assert_eq!(secret(1).sending_to(&weak), None);
        assert_eq!(secret(1).receiving_from(&weak), None);
    }
}
