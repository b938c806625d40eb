//! SeaORM models of our tables; they never leave the `sql` module.

pub(super) mod item;
pub(super) mod network_document;
