//! What this instance answers to its peers (`count_local`, `fetch_local`): every owner's
//! items of a served binding, private fields removed, in the global order, with keyset
//! paging for peers that know it.

use std::sync::Arc;

use serde::Serialize;

use crate::error::{CoreError, ErrorCode};
use crate::model::{Binding, InstanceIdentity, Item, ItemFilter, ItemKey, PageRequest};
use crate::network::{CatalogHandle, NetworkCatalog};
use crate::ports::{Cache, ItemRepository};
use crate::services::own_counts::OwnCounts;

/// The deepest `offset` accepted from peers: aggregators of the reference page by offset.
pub const MAX_PEER_OFFSET: u32 = 100_000;
pub const MAX_PEER_LIMIT: u32 = 100;

pub struct PeerItemsService {
    repository: Arc<dyn ItemRepository>,
    counts: OwnCounts,
    catalog: Arc<CatalogHandle>,
    identity: Arc<InstanceIdentity>,
}

/// A `fetch_local` page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPageRequest {
    pub limit: u32,
    pub offset: u32,
    /// Our own peers' keyset position; when present `offset` is ignored.
    pub cursor: Option<String>,
}

#[derive(Serialize)]
struct PeerMeta {
    total: u64,
    limit: u32,
    offset: u32,
    /// Present (possibly null) so aggregators learn this instance pages by cursor.
    next_cursor: Option<String>,
}

#[derive(Serialize)]
struct PeerDocument<'a> {
    meta: PeerMeta,
    items: &'a [Item],
}

impl PeerItemsService {
    pub fn new(
        repository: Arc<dyn ItemRepository>,
        cache: Arc<dyn Cache>,
        catalog: Arc<CatalogHandle>,
        identity: Arc<InstanceIdentity>,
    ) -> Self {
        PeerItemsService {
            counts: OwnCounts::new(repository.clone(), cache),
            repository,
            catalog,
            identity,
        }
    }

    /// `count_local`: how many items of a served binding match.
    pub async fn count(&self, filter: &ItemFilter) -> Result<u64, CoreError> {
        self.check(filter)?;
        self.counts.count(filter).await
    }

    /// `fetch_local`: one page as the wire document.
    pub async fn page(
        &self,
        filter: &ItemFilter,
        request: &PeerPageRequest,
    ) -> Result<Vec<u8>, CoreError> {
        let catalog = self.check(filter)?;
        if !(1..=MAX_PEER_LIMIT).contains(&request.limit) || request.offset > MAX_PEER_OFFSET {
            return Err(CoreError::invalid(
                ErrorCode::InvalidPagination,
                format!("limit must be 1..={MAX_PEER_LIMIT} and offset 0..={MAX_PEER_OFFSET}"),
            ));
        }
        let (total, mut items) = match &request.cursor {
            Some(cursor) => {
                let after = ItemKey::from_cursor(cursor).ok_or_else(|| {
                    CoreError::invalid(
                        ErrorCode::InvalidCursor,
                        "cursor is not one this instance issued",
                    )
                })?;
                futures::try_join!(
                    self.counts.count(filter),
                    self.repository
                        .find_after(filter, Some(after), request.limit)
                )?
            }
            None => {
                let total = self.counts.count(filter).await?;
                let items = if total > u64::from(request.offset) {
                    let page = PageRequest {
                        limit: request.limit,
                        offset: request.offset,
                    };
                    self.repository.find_slice(filter, page).await?
                } else {
                    Vec::new()
                };
                (total, items)
            }
        };
        strip_private(&catalog, &mut items);
        let next_cursor = (items.len() == request.limit as usize)
            .then(|| items.last().map(|item| ItemKey::of(item).to_cursor()))
            .flatten();
        let document = PeerDocument {
            meta: PeerMeta {
                total,
                limit: request.limit,
                offset: request.offset,
                next_cursor,
            },
            items: &items,
        };
        serde_json::to_vec(&document)
            .map_err(|e| CoreError::internal(format!("encoding a peer page: {e}")))
    }

    /// The binding must be served here, and the filter must not touch private fields.
    fn check(&self, filter: &ItemFilter) -> Result<Arc<NetworkCatalog>, CoreError> {
        let catalog = self.catalog.current();
        if !self
            .identity
            .served
            .contains(&filter.network, &filter.domain)
        {
            return Err(catalog.unserved(
                &self.identity,
                Binding::new(&filter.network, &filter.domain),
            ));
        }
        refuse_private_filter(&catalog, filter)?;
        filter.check_text()?;
        Ok(catalog)
    }
}

/// Refuses a state filter on a field marked private in any item type of the domain (or of
/// the filtered type).
pub fn refuse_private_filter(
    catalog: &NetworkCatalog,
    filter: &ItemFilter,
) -> Result<(), CoreError> {
    let Some(state) = &filter.state else {
        return Ok(());
    };
    let private = match &filter.item_type {
        Some(item_type) => catalog.private_fields(&filter.network, &filter.domain, item_type),
        None => catalog.domain_private_fields(&filter.network, &filter.domain),
    };
    match private.touched_by(state.as_map()) {
        Some(field) => Err(CoreError::invalid(
            ErrorCode::PrivateFieldFilter,
            format!("item_state filters cannot use the private field \"{field}\""),
        )),
        None => Ok(()),
    }
}

/// Removes private fields from items about to leave the instance.
pub fn strip_private(catalog: &NetworkCatalog, items: &mut [Item]) {
    for item in items {
        catalog
            .private_fields(&item.network, &item.domain, &item.item_type)
            .strip(&mut item.state);
    }
}
