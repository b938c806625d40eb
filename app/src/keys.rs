//! This instance's signing key: loading it, matching it with the Network Schema, and
//! `dpg keygen`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use dpg_core::model::normalize_instance_url;
use dpg_core::network::NetworkCatalog;
use dpg_core::peer_auth::SigningKey;
use dpg_core::services::PeerSigner;

use crate::config::InstanceKeySource;

/// Reads the key; never logs it.
pub fn load(source: &InstanceKeySource) -> anyhow::Result<SigningKey> {
    match source {
        InstanceKeySource::File(path) => {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read DPG_INSTANCE_KEY_FILE {}", path.display()))?;
            SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
                anyhow::anyhow!("DPG_INSTANCE_KEY_FILE is not an Ed25519 PKCS#8 key: {e}")
            })
        }
        InstanceKeySource::Seed(seed) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(seed.expose().trim())
                .or_else(|_| {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(seed.expose().trim())
                })
                .context("DPG_INSTANCE_KEY is not base64")?;
            let seed: [u8; 32] = bytes
                .try_into()
                .map_err(|_| anyhow::anyhow!("DPG_INSTANCE_KEY must be a 32-byte seed"))?;
            Ok(SigningKey::from_seed(&seed))
        }
    }
}

/// The signer with the `kid` under which the Network Schema lists this key for this
/// instance; a key not listed yet signs under its suggested kid (peers will not verify it
/// until the document lists it).
pub fn signer(key: SigningKey, catalog: &NetworkCatalog, base_url: &str) -> PeerSigner {
    let public = key.public_key_b64url();
    let me = normalize_instance_url(base_url);
    let listed = catalog
        .networks()
        .flat_map(|doc| &doc.instances)
        .filter(|i| normalize_instance_url(&i.instance_url) == me)
        .flat_map(|i| &i.keys)
        .find(|k| {
            dpg_core::peer_auth::VerifyingKey::from_instance_key(k)
                .is_ok_and(|v| v.to_b64url() == public)
        })
        .map(|k| k.kid.clone());
    let kid = match listed {
        Some(kid) => kid,
        None => {
            let kid = key.suggested_kid();
            tracing::warn!(
                kid,
                public_key = public,
                "this instance's key is not listed in the Network Schema; peers cannot verify it yet"
            );
            kid
        }
    };
    PeerSigner::new(key, kid)
}

/// `dpg keygen --out FILE`: a fresh key written as PKCS#8 PEM (mode 0600, never over an
/// existing file); returns the JSON to paste into `instances[].keys`.
pub fn generate(out: &Path, seed: [u8; 32]) -> anyhow::Result<String> {
    let key = SigningKey::from_seed(&seed);
    let pem = key
        .to_pkcs8_pem()
        .map_err(|e| anyhow::anyhow!("cannot encode the key: {e}"))?;
    if out.exists() {
        bail!("{} exists; refusing to overwrite a key", out.display());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(out)
        .with_context(|| format!("cannot create {}", out.display()))?;
    file.write_all(pem.as_bytes())?;
    file.sync_all()?;
    Ok(serde_json::json!({
        "kid": key.suggested_kid(),
        "alg": "ed25519",
        "public_key": key.public_key_b64url(),
    })
    .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_a_private_file_that_loads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("instance.key");
        let json: serde_json::Value =
            serde_json::from_str(&generate(&path, [7; 32]).expect("generated")).expect("json");
        assert_eq!(json["alg"], "ed25519");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let loaded = load(&InstanceKeySource::File(path.clone())).expect("loads");
        assert_eq!(loaded.public_key_b64url(), json["public_key"]);
        assert!(generate(&path, [8; 32]).is_err(), "never overwrites");
        let seed = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let from_seed =
            load(&InstanceKeySource::Seed(crate::config::Secret::new(seed))).expect("seed");
        assert_eq!(from_seed.public_key_b64url(), json["public_key"]);
        assert!(
            load(&InstanceKeySource::Seed(crate::config::Secret::new(
                "c2hvcnQ="
            )))
            .is_err()
        );
    }
}
