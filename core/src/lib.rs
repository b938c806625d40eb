//! dpg-core: the domain of a DPG instance — items, Network Schemas, their use cases and the
//! ports those use cases need. Pure: no database, HTTP framework, Redis or filesystem code.

pub mod error;
pub mod model;
pub mod network;
pub mod peer_auth;
pub mod ports;
pub mod services;

pub use error::{CoreError, ErrorCode, Violation};
