//! Ed25519 instance keys for generated networks: the test harness's in-process instances and
//! the benchmark's `dpg` children both list them in the network document the same way,
//! hand them to the instance the same way, and sign peer requests as an instance with them.

use anyhow::Context;
use base64::Engine;
use dpg_core::peer_auth::{ALG_ED25519, SigningKey};
use dpg_core::services::PeerSigner;
use serde_json::{Value, json};

/// The variable an instance reads its key from (the base64 of the 32-byte seed).
pub const INSTANCE_KEY_ENV: &str = "DPG_INSTANCE_KEY";

/// One instance's key and the `kid` the network document lists it under.
#[derive(Clone)]
pub struct InstanceKey {
    seed: [u8; 32],
    kid: String,
}

impl std::fmt::Debug for InstanceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl InstanceKey {
    /// A fresh random key listed as `kid`.
    pub fn generate(kid: impl Into<String>) -> InstanceKey {
        InstanceKey {
            seed: dpg_adapters::crypto::random_key_seed(),
            kid: kid.into(),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The entry of `instances[].keys`: `{"kid", "alg": "ed25519", "public_key"}`.
    pub fn listing(&self) -> Value {
        json!({
            "kid": self.kid,
            "alg": ALG_ED25519,
            "public_key": SigningKey::from_seed(&self.seed).public_key_b64url()
        })
    }

    /// The value of [`INSTANCE_KEY_ENV`] that makes an instance sign with this key.
    pub fn env_value(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.seed)
    }

    /// Signs as the instance holding this key.
    pub fn signer(&self) -> PeerSigner {
        PeerSigner::new(SigningKey::from_seed(&self.seed), self.kid.clone())
    }
}

/// The headers that sign `POST target_uri` with a JSON `body` as `signer` does on a peer
/// call: `Content-Digest`, `Signature-Input`, `Signature`, created now, with a fresh nonce.
pub fn signed_post_headers(
    signer: &PeerSigner,
    target_uri: &str,
    body: &[u8],
) -> anyhow::Result<Vec<(String, String)>> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("clock before 1970")?
        .as_secs() as i64;
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let signed = signer
        .headers("POST", target_uri, "application/json", body, now, &nonce)
        .map_err(|e| anyhow::anyhow!("signing: {e}"))?;
    Ok(signed
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect())
}
