//! Shared support for the workspace-level tests and the benchmark harness.

pub mod support;
