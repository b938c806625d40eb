//! SeaORM models of our tables; they never leave the `sql` module.

pub(super) mod action;
pub(super) mod action_event;
pub(super) mod api_key;
pub(super) mod idempotency_key;
pub(super) mod item;
pub(super) mod network_document;
pub(super) mod outbox;
pub(super) mod session;
pub(super) mod user;
