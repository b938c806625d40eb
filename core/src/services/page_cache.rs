//! Cached local-fetch pages, versioned per owner so that a write hides every cached page of
//! that owner at once, across replicas.
//!
//! Each page is stored as `<page document>\n<generation>` (compact JSON has no raw newline);
//! a read fetches the owner's current
//! generation and the page in one round trip and uses the page only if both agree. A write
//! increments the generation (one atomic operation, no key scan); writes that arrive together
//! share one round trip for it.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::generation_bumps::GenerationBumps;
use crate::model::{ItemFilter, PageDocument, PageRequest};
use crate::ports::Cache;

/// Generation counters outlive the pages they version by far, so an expired counter cannot
/// resurrect a stale page.
pub const GENERATION_TTL: Duration = Duration::from_secs(24 * 3600);

pub struct OwnerPageCache {
    cache: Arc<dyn Cache>,
    ttl: Duration,
    bumps: GenerationBumps,
}

/// The outcome of a lookup.
pub enum Lookup {
    Hit(PageDocument),
    /// Store the computed page under `key` with `generation`.
    Miss {
        key: String,
        generation: String,
    },
    /// The cache is down: compute and do not store.
    Unavailable,
}

impl OwnerPageCache {
    pub fn new(cache: Arc<dyn Cache>, ttl: Duration) -> Self {
        let bumps = GenerationBumps::new(cache.clone(), GENERATION_TTL);
        OwnerPageCache { cache, ttl, bumps }
    }

    pub async fn lookup(&self, filter: &ItemFilter, page: PageRequest) -> Lookup {
        let owner = filter.created_by.as_deref().unwrap_or_default();
        let keys = [
            generation_key(&filter.network, &filter.domain, owner),
            page_key(filter, page),
        ];
        let values = match self.cache.get_many(&keys).await {
            Ok(values) => values,
            Err(err) => {
                tracing::warn!(error = %err, "cache unavailable; serving local fetch uncached");
                return Lookup::Unavailable;
            }
        };
        let generation = match values.first() {
            Some(Some(raw)) => String::from_utf8_lossy(raw).into_owned(),
            _ => "0".to_string(),
        };
        let mut values = values.into_iter();
        if let Some(stored) = values
            .nth(1)
            .flatten()
            .and_then(|s| value_at(s, &generation))
        {
            return Lookup::Hit(PageDocument::from_encoded(stored));
        }
        let [_, key] = keys;
        Lookup::Miss { key, generation }
    }

    pub async fn store(&self, key: &str, generation: &str, document: &PageDocument) {
        let value = tagged(document.as_bytes(), generation);
        if let Err(err) = self.cache.set(key, &value, self.ttl).await {
            tracing::warn!(error = %err, "cache write failed");
        }
    }

    /// Hides every cached page of `owner` in `network/domain`, and every cached network
    /// page of `network/domain` (they contain this instance's items).
    pub async fn invalidate(&self, network: &str, domain: &str, owner: &str) {
        let keys = [
            generation_key(network, domain, owner),
            network_generation_key(network, domain),
        ];
        self.bumps.bump(&keys).await;
    }
}

/// The generation read from a generation key: `"0"` before the first write, `None` when
/// the stored value is not text (nothing can be cached against it).
pub fn generation_of(raw: Option<Vec<u8>>) -> Option<String> {
    match raw {
        Some(raw) => String::from_utf8(raw).ok(),
        None => Some("0".to_string()),
    }
}

/// `value` tagged with the generation it was computed at: `<value>\n<generation>`.
pub fn tagged(value: &[u8], generation: &str) -> Vec<u8> {
    let mut stored = Vec::with_capacity(value.len() + 1 + generation.len());
    stored.extend_from_slice(value);
    stored.push(b'\n');
    stored.extend_from_slice(generation.as_bytes());
    stored
}

/// The value of a [`tagged`] entry, if it was stored at `generation`.
pub fn value_at(mut stored: Vec<u8>, generation: &str) -> Option<Vec<u8>> {
    let newline = stored.iter().rposition(|b| *b == b'\n')?;
    if stored[newline + 1..] != *generation.as_bytes() {
        return None;
    }
    stored.truncate(newline);
    Some(stored)
}

/// The write generation of `network/domain` on this instance, part of network page keys.
pub fn network_generation_key(network: &str, domain: &str) -> String {
    format!("network-gen:{network}:{domain}")
}

pub fn generation_key(network: &str, domain: &str, owner: &str) -> String {
    format!("local-item-fetch-gen:{network}:{domain}:{owner}")
}

fn page_key(filter: &ItemFilter, page: PageRequest) -> String {
    format!(
        "local-item-fetch:{}:{}:{}",
        filter.network,
        filter.domain,
        fingerprint(filter, page)
    )
}

/// A stable digest of everything that shapes a page (network and domain are in the key).
fn fingerprint(filter: &ItemFilter, page: PageRequest) -> String {
    let shape = format!("{}|{}|{}", filter.fingerprint(), page.limit, page.offset);
    hex::encode(Sha256::digest(shape.as_bytes()))
}
