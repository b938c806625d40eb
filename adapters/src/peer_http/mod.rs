//! `PeerTransport` over HTTP: the reference's `count_local` / `fetch_local` calls
//! (reference-contract §5.1), bounded in time and size, with one pooled client.

mod body;
mod routes;
mod transport;

pub use transport::{DURATION_SECONDS, HttpPeerTransport, PeerHttpConfig, REQUESTS_TOTAL};
