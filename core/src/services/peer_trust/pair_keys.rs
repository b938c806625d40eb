//! Pair keys of this instance: derived once per peer key and shared by its signer and its
//! verifier, and which peers refused a pair-key signature lately.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use crate::model::NormalizedUrls;
use crate::network::CatalogHandle;
use crate::peer_auth::{MacKey, PairSecret, SigningKey, VerifyingKey};

/// A peer that refused a pair-key signature gets Ed25519 for this long before another try.
pub(super) const PAIR_KEY_RECHECK_SECS: i64 = 3600;
/// Derived pair keys kept per direction; past this the cache starts over (a catalog holds
/// far fewer keys).
const MAX_CACHED_PAIR_KEYS: usize = 4096;

/// This instance's pair keys with every peer key, derived once and shared by its signer and
/// its verifier.
#[derive(Debug)]
pub struct PairKeys {
    secret: PairSecret,
    pub(super) sending: RwLock<HashMap<[u8; 32], Option<MacKey>>>,
    receiving: RwLock<HashMap<[u8; 32], Option<MacKey>>>,
}

impl PairKeys {
    pub fn new(key: &SigningKey) -> Self {
        PairKeys {
            secret: PairSecret::new(key),
            sending: RwLock::default(),
            receiving: RwLock::default(),
        }
    }

    /// The key of requests from this instance to the holder of `peer`.
    pub fn sending_to(&self, peer: &VerifyingKey) -> Option<MacKey> {
        cached(&self.sending, peer, |peer| self.secret.sending_to(peer))
    }

    /// The key of requests from the holder of `peer` to this instance.
    pub fn receiving_from(&self, peer: &VerifyingKey) -> Option<MacKey> {
        cached(&self.receiving, peer, |peer| {
            self.secret.receiving_from(peer)
        })
    }

    /// This instance's public key, as its peers must list it.
    pub fn public_key(&self) -> VerifyingKey {
        self.secret.public()
    }
}

fn cached(
    cache: &RwLock<HashMap<[u8; 32], Option<MacKey>>>,
    peer: &VerifyingKey,
    derive: impl FnOnce(&VerifyingKey) -> Option<MacKey>,
) -> Option<MacKey> {
    let id = peer.to_bytes();
    if let Some(found) = cache.read().unwrap_or_else(|e| e.into_inner()).get(&id) {
        return found.clone();
    }
    let derived = derive(peer);
    let mut cache = cache.write().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= MAX_CACHED_PAIR_KEYS {
        cache.clear();
    }
    cache.insert(id, derived.clone());
    derived
}

/// What the signer needs for pair-key reads: the peers' published keys, and which peers
/// refused a pair-key signature lately (an older instance, or one without its key).
pub(super) struct PairReads {
    pub(super) catalog: Arc<CatalogHandle>,
    pub(super) refused_until: Mutex<HashMap<String, i64>>,
    /// Peer URLs as called, normalized: the same few URLs are called again and again.
    normalized: RwLock<NormalizedUrls>,
}

impl PairReads {
    pub(super) fn new(catalog: Arc<CatalogHandle>) -> Self {
        PairReads {
            catalog,
            refused_until: Mutex::default(),
            normalized: RwLock::default(),
        }
    }

    /// `peer_url` normalized, parsed once per URL.
    pub(super) fn normalized(&self, peer_url: &str) -> String {
        let known = self.normalized.read().unwrap_or_else(|e| e.into_inner());
        if let Some(normalized) = known.get(peer_url) {
            return normalized.to_string();
        }
        drop(known);
        self.normalized
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .normalize(peer_url)
    }
}
