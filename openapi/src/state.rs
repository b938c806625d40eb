//! What the HTTP handlers share: the core services and this instance's identity.

use std::sync::Arc;

use dpg_core::model::InstanceIdentity;
use dpg_core::ports::Authenticator;
use dpg_core::services::{
    ActionService, AuthService, HealthService, ItemService, NetworkFetchService,
    NetworkSchemaService, OutboxAdmin, PeerItemsService, PeerTrustService,
};

use crate::cors::CorsPolicy;

pub struct ApiState {
    pub items: Arc<ItemService>,
    /// Actions between items and their events.
    pub actions: Arc<ActionService>,
    /// What peers read from this instance (`count_local`, `fetch_local`).
    pub peer_items: Arc<PeerItemsService>,
    /// Network-wide reads.
    pub network: Arc<NetworkFetchService>,
    /// Signatures of peer requests.
    pub peer_trust: Arc<PeerTrustService>,
    /// This instance's public signing keys, as listed in the Network Schema.
    pub public_keys: Vec<PublicKeyOut>,
    pub schemas: Arc<NetworkSchemaService>,
    pub health: Arc<HealthService>,
    /// The event outbox, for operators and readiness (absent when this instance has none).
    pub outbox: Option<Arc<OutboxAdmin>>,
    /// Accounts, sessions and API keys (the `/api/auth` routes).
    pub accounts: Arc<AuthService>,
    pub identity: Arc<InstanceIdentity>,
    /// Who callers of the protected routes are: the accounts service, or the development
    /// identity when authentication is switched off.
    pub authenticator: Arc<dyn Authenticator>,
    /// `local` or `remote`, as configured (`NETWORK_CONFIG_SOURCE`).
    pub network_config_source: String,
    pub cookies: CookieSettings,
    pub cors: Arc<CorsPolicy>,
    /// Use `X-Forwarded-For` for the client address (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
}

/// One public key of this instance: what operators paste into `instances[].keys`.
#[derive(Debug, Clone, poem_openapi::Object)]
pub struct PublicKeyOut {
    pub kid: String,
    pub alg: String,
    /// Base64url of the 32 raw bytes.
    pub public_key: String,
}

/// How the session cookie is written.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    /// `Secure` and the `__Secure-` name prefix (production, HTTPS).
    pub secure: bool,
    pub max_age_secs: u64,
}
