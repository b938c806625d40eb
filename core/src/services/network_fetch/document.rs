//! The network page as the wire carries it: the reference's `{meta: {total, limit, offset},
//! items}` with additive `meta.partial`, `meta.stale`, `meta.peers` and `meta.next_cursor`.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::error::CoreError;
use crate::model::{Item, ItemKey, PeerItem};
use crate::network::NetworkCatalog;

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

/// An item of a merged page: one of this instance's own, or a peer's record as it came.
#[derive(Debug)]
pub enum PageItem {
    Own(Item),
    Peer(PeerItem),
}

impl PageItem {
    pub fn key(&self) -> ItemKey {
        match self {
            PageItem::Own(item) => ItemKey::of(item),
            PageItem::Peer(item) => item.key(),
        }
    }
}

impl Serialize for PageItem {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            PageItem::Own(item) => item.serialize(serializer),
            PageItem::Peer(item) => item.serialize(serializer),
        }
    }
}

/// Removes private fields from the page's items. A peer's record is read whole only when
/// its type has private fields; one that cannot be read then is left out.
pub fn strip_private(catalog: &NetworkCatalog, items: Vec<PageItem>) -> Vec<PageItem> {
    items
        .into_iter()
        .filter_map(|entry| {
            let (network, domain, item_type) = match &entry {
                PageItem::Own(item) => (&item.network, &item.domain, &item.item_type),
                PageItem::Peer(item) => {
                    (&item.head.network, &item.head.domain, &item.head.item_type)
                }
            };
            let private = catalog.private_fields(network, domain, item_type);
            if private.is_empty() {
                return Some(entry);
            }
            let mut item = match entry {
                PageItem::Own(item) => item,
                PageItem::Peer(item) => match item.to_item() {
                    Ok(item) => item,
                    Err(err) => {
                        tracing::warn!(error = %err, "a checked peer record did not read back");
                        return None;
                    }
                },
            };
            private.strip(&mut item.state);
            Some(PageItem::Own(item))
        })
        .collect()
}

#[derive(Serialize)]
struct Page<'a> {
    meta: &'a NetworkMeta,
    items: &'a [PageItem],
}

pub fn encode_page(meta: &NetworkMeta, items: &[PageItem]) -> Result<Vec<u8>, CoreError> {
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
