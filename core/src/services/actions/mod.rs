//! Actions between items and their status events (reference-contract §6), with this
//! implementation's rules on top: only the source item's owner performs, only the target
//! item's owner updates the status, perform is idempotent, events reach the source through the
//! transactional outbox, and a mirrored event is accepted only from the instance that owns the
//! action's target item.
//!
//! `perform` is the source side, `receive` the target side of a perform, `status` the status
//! update, `events` the event store (mirror ingestion) and `fetch` the owner-scoped reads.

mod eligibility;
mod events;
mod fetch;
mod perform;
mod receive;
mod status;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use uuid::Uuid;

pub use events::IncomingEvent;
pub use fetch::{ActionFilter, OwnedPage};
pub use perform::{PerformOutcome, PerformRequest, SourceItemRef};
pub use receive::{ReceiveRequest, Received};
pub use status::StatusUpdate;

use crate::error::{CoreError, ErrorCode};
use crate::model::{Binding, InstanceIdentity, Item, ItemFilter};
use crate::network::{CatalogHandle, SchemaCompiler};
use crate::ports::{ActionRepository, Clock, IdGenerator, ItemRepository, PeerTransport};
use crate::services::PeerTrustService;

/// How long a target remembers an `Idempotency-Key` of a source instance.
pub const IDEMPOTENCY_TTL: chrono::Duration = chrono::Duration::hours(24);

/// Everything the action use cases need.
pub struct ActionServiceDeps {
    pub actions: Arc<dyn ActionRepository>,
    pub items: Arc<dyn ItemRepository>,
    pub transport: Arc<dyn PeerTransport>,
    pub catalog: Arc<CatalogHandle>,
    pub peer_trust: Arc<PeerTrustService>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub identity: Arc<InstanceIdentity>,
    pub compiler: SchemaCompiler,
}

pub struct ActionService {
    deps: ActionServiceDeps,
    schemas: eligibility::SchemaCache,
}

impl ActionService {
    pub fn new(deps: ActionServiceDeps) -> Self {
        let schemas = eligibility::SchemaCache::new(deps.compiler.clone());
        ActionService { deps, schemas }
    }

    fn ensure_served(&self, network: &str, domain: &str) -> Result<(), CoreError> {
        if self.deps.identity.served.contains(network, domain) {
            return Ok(());
        }
        Err(self
            .deps
            .catalog
            .current()
            .unserved(&self.deps.identity, Binding::new(network, domain)))
    }

    /// The item with this key on this instance, whoever owns it.
    async fn find_item(
        &self,
        network: &str,
        domain: &str,
        item_type: &str,
        item_id: Uuid,
    ) -> Result<Option<Item>, CoreError> {
        let filter = ItemFilter {
            item_type: Some(item_type.to_string()),
            item_id: Some(item_id),
            ..ItemFilter::new(network, domain)
        };
        filter.check_text()?;
        // A keyset read: no count of the matches, which a page would also compute.
        let found = self.deps.items.find_after(&filter, None, 1).await?;
        Ok(found.into_iter().next())
    }
}

fn source_item_not_found() -> CoreError {
    CoreError::not_found(
        ErrorCode::SourceItemNotFound,
        "Source item does not exist on this instance",
    )
}

fn target_item_not_found() -> CoreError {
    CoreError::not_found(
        ErrorCode::TargetItemNotFound,
        "Target item does not exist on this instance",
    )
}

fn action_not_found() -> CoreError {
    CoreError::not_found(
        ErrorCode::ActionNotFound,
        "Action does not exist on this instance",
    )
}
