//! The network page as the wire carries it: the reference's `{meta: {total, limit, offset},
//! items}` with additive `meta.partial`, `meta.stale`, `meta.peers` and `meta.next_cursor`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::CoreError;
use crate::model::Item;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerStatus {
    Ok,
    Timeout,
    Error,
    Invalid,
    CircuitOpen,
    /// Not asked (e.g. this instance listed for a binding it does not serve).
    Skipped,
}

/// How one instance fared in a network read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerReport {
    pub instance_url: String,
    pub status: PeerStatus,
    pub count: Option<u64>,
    pub latency_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetworkMeta {
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
    /// Some instance did not answer: the page holds the items of those that did.
    pub partial: bool,
    /// No instance answered: this is the last complete page, from the cache.
    pub stale: bool,
    pub peers: Vec<PeerReport>,
    /// Where the next page starts (pass it back as `cursor`); null after the last page.
    pub next_cursor: Option<String>,
}

#[derive(Serialize)]
struct Page<'a> {
    meta: &'a NetworkMeta,
    items: &'a [Item],
}

pub fn encode_page(meta: &NetworkMeta, items: &[Item]) -> Result<Vec<u8>, CoreError> {
    serde_json::to_vec(&Page { meta, items })
        .map_err(|e| CoreError::internal(format!("encoding a network page: {e}")))
}

/// A stored complete page re-labelled as stale, with the peers' current status.
pub fn mark_stale(page: &[u8], peers: &[PeerReport]) -> Option<Vec<u8>> {
    let mut document: Value = serde_json::from_slice(page).ok()?;
    let meta = document.get_mut("meta")?.as_object_mut()?;
    meta.insert("stale".to_string(), Value::Bool(true));
    meta.insert("partial".to_string(), Value::Bool(true));
    meta.insert("peers".to_string(), serde_json::to_value(peers).ok()?);
    serde_json::to_vec(&document).ok()
}
