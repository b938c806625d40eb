//! What the HTTP handlers share: the core services and this instance's identity.

use std::sync::Arc;

use dpg_core::model::InstanceIdentity;
use dpg_core::ports::Authenticator;
use dpg_core::services::{HealthService, ItemService, NetworkSchemaService};

pub struct ApiState {
    pub items: Arc<ItemService>,
    pub schemas: Arc<NetworkSchemaService>,
    pub health: Arc<HealthService>,
    pub identity: Arc<InstanceIdentity>,
    pub authenticator: Arc<dyn Authenticator>,
    /// `local` or `remote`, as configured (`NETWORK_CONFIG_SOURCE`).
    pub network_config_source: String,
}
