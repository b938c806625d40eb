//! Domain types shared by services, ports and adapters.

mod account;
mod action;
mod binding;
mod caller;
mod filter;
mod instance;
mod item;
mod peer_item;
mod position;
mod text;

pub use account::{ApiKey, ClientInfo, Role, Session, User};
pub use action::{
    ActionEvent, ActionQuery, ActionRecord, ItemRef, Locality, OutboxCounts, OutboxEntry,
    OutboxState, OwnershipRole, Page, ownership_roles,
};
pub use binding::{Binding, ServedBindings};
pub use caller::{AuthMethod, Caller};
pub use filter::{EARTH_RADIUS_METERS, GeoBox, GeoRadius, ItemFilter, PageRequest, StateFilter};
pub use instance::{InstanceIdentity, NormalizedUrls, base_url, normalize_instance_url};
pub use item::{Item, ItemChanges, ItemPage, NewItem, PageDocument, PageMeta, wire_time};
pub use peer_item::{ItemHead, PeerItem};
pub use position::{ItemKey, global_order};
pub use text::{reject_nul, reject_nul_in_json};
