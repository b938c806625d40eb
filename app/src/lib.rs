//! dpg-app: configuration, wiring, server, background workers and the `dpg` command line.

pub mod config;
pub mod devnet;
pub mod healthcheck;
pub mod instance;
pub mod keys;
pub mod telemetry;

pub use config::Config;
pub use instance::{Instance, Listening, shutdown_signal};
