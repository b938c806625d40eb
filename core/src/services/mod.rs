//! Use cases, written against the ports only.

pub mod actions;
pub mod auth;
mod generation_bumps;
pub mod health;
pub mod items;
pub mod network_fetch;
pub mod outbox;
mod own_counts;
mod page_cache;
pub mod peer_items;
pub mod peer_trust;
pub mod rate_limit;
pub mod schemas;

pub use actions::{ActionService, ActionServiceDeps};
pub use auth::{AuthService, AuthServiceDeps, AuthSettings, IssuedSession, SignedIn};
pub use health::{HealthService, Readiness};
pub use items::{ItemService, ItemServiceDeps};
pub use network_fetch::{
    NetworkFetchDeps, NetworkFetchService, NetworkFetchSettings, NetworkOutcome, NetworkQuery,
    Paging,
};
pub use outbox::{
    NotifyingActions, OutboxAdmin, OutboxDeps, OutboxDispatcher, OutboxNotifier, OutboxSettings,
    PeerContacts,
};
pub use peer_items::{PeerItemsService, PeerPageRequest};
pub use peer_trust::{PairKeys, PeerCaller, PeerSigner, PeerTrustService, ReceivedRequest};
pub use schemas::{LoadStatus, NetworkSchemaService, ReloadReport, SchemaServiceDeps};
