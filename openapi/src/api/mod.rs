//! The operations, grouped as in the reference's tags.

pub(crate) mod accounts;
mod actions;
mod admin;
mod health;
pub(crate) mod items;
mod network;
mod network_actions;
mod network_items;

use poem_openapi::{OpenApiService, Tags};

pub use items::SCALAR_FILTERS;

#[derive(Tags)]
pub enum ApiTags {
    /// Items of the served network/domain bindings.
    Item,
    /// Network Schemas.
    Network,
    /// Health and readiness.
    Health,
    /// Accounts, sessions and API keys (Better Auth compatible).
    Auth,
    /// Actions between items and their status events.
    Action,
    /// Operators' tools (administrators only).
    Admin,
}

pub type Apis = (
    health::HealthApi,
    items::ItemApi,
    network::NetworkSchemaApi,
    network_items::NetworkItemsApi,
    accounts::AccountApi,
    actions::ActionApi,
    network_actions::NetworkActionApi,
    admin::AdminApi,
);

/// The OpenAPI service of every operation; `server_url` is this instance's base URL. The
/// handlers read the `Arc<ApiState>` from the request data.
pub fn service(server_url: Option<&str>) -> OpenApiService<Apis, ()> {
    let apis = (
        health::HealthApi,
        items::ItemApi,
        network::NetworkSchemaApi,
        network_items::NetworkItemsApi,
        accounts::AccountApi,
        actions::ActionApi,
        network_actions::NetworkActionApi,
        admin::AdminApi,
    );
    let service = OpenApiService::new(apis, "DPG", env!("CARGO_PKG_VERSION")).description(
        "DPG API Service: a schema-driven backend for networks of independent organisations. \
         Wire-compatible with the TypeScript implementation.",
    );
    match server_url {
        Some(url) => service.server(url),
        None => service,
    }
}
