//! SeaORM models of our tables; they never leave the `sql` module.

pub(super) mod api_key;
pub(super) mod item;
pub(super) mod network_document;
pub(super) mod session;
pub(super) mod user;
