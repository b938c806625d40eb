use async_trait::async_trait;
use uuid::Uuid;

use crate::error::CoreError;
use crate::model::{Item, ItemFilter, ItemKey, ItemPage, PageRequest};

/// Durable storage of items.
///
/// Every method MUST return `Err(CoreError::Unavailable)` when the database cannot be reached
/// and `Err(CoreError::Internal)` for any other storage failure; driver messages (SQL text)
/// never reach the error message.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ItemRepository: Send + Sync {
    /// Stores a new item. MUST return `Err(CoreError::Conflict)` with code
    /// `ITEM_ALREADY_EXISTS` when an item with the same (network, domain, type, id) exists.
    async fn insert(&self, item: &Item) -> Result<(), CoreError>;

    /// Items matching `filter`, ordered `created_at` desc then `item_id` desc, sliced by
    /// `page`, with `total` = number of all matches.
    async fn find(&self, filter: &ItemFilter, page: PageRequest) -> Result<ItemPage, CoreError>;

    /// The items of `page` among those matching `filter`, in the order of [`find`]
    /// (Self::find), without counting them.
    async fn find_slice(
        &self,
        filter: &ItemFilter,
        page: PageRequest,
    ) -> Result<Vec<Item>, CoreError>;

    /// At most `limit` items matching `filter` that come after `after` in the global order
    /// (from the start when `None`), in that order. Keyset paging: costs `limit`, not the
    /// depth of the page.
    async fn find_after(
        &self,
        filter: &ItemFilter,
        after: Option<ItemKey>,
        limit: u32,
    ) -> Result<Vec<Item>, CoreError>;

    /// Number of items matching `filter`.
    async fn count(&self, filter: &ItemFilter) -> Result<u64, CoreError>;

    /// The item with this id owned by `owner`, in any network/domain/type; `None` if there is
    /// none or it belongs to someone else.
    async fn find_owned(&self, item_id: Uuid, owner: &str) -> Result<Option<Item>, CoreError>;

    /// Replaces the mutable columns (state, coordinates, `updated_at`) of the stored item with
    /// the same key and owner as `item`. MUST return `Ok(false)` when no such row exists.
    async fn update(&self, item: &Item) -> Result<bool, CoreError>;

    /// Deletes the item with this id owned by `owner`. MUST return `Ok(false)` when there is
    /// no such item (or it belongs to someone else).
    async fn delete_owned(&self, item_id: Uuid, owner: &str) -> Result<bool, CoreError>;

    /// Cheap round trip for readiness checks.
    async fn ping(&self) -> Result<(), CoreError>;
}
