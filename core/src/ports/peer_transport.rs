use async_trait::async_trait;
use serde_json::Value;

use crate::model::{ItemFilter, PeerItem};

/// Why a peer call produced no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// No answer within the per-peer deadline (connect or whole call).
    #[error("timed out")]
    Timeout,
    /// Connection refused or reset, DNS failure, TLS failure.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// A non-2xx status (the peer's body is not kept).
    #[error("status {0}")]
    Status(u16),
    /// The answer broke the protocol: not JSON, too large, wrong shape.
    #[error("invalid answer: {0}")]
    Invalid(String),
}

/// `POST /api/v1/network/item/fetch_local` paging: the reference's limit/offset, or keyset
/// paging after an item (peers that proved they support it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPage {
    pub limit: u32,
    pub offset: u32,
    /// Opaque position in the global order (our own peers' `cursor`).
    pub cursor: Option<String>,
}

/// A peer's page as received: well-formed, but not yet checked against the request.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerPageAnswer {
    /// Complete item records, their JSON kept as it came: the caller checks what they claim.
    pub items: Vec<PeerItem>,
    /// `meta.total`, when present and a non-negative integer.
    pub total: Option<u64>,
    /// Whether `meta.next_cursor` was present (even null): the peer speaks keyset paging.
    pub cursor_capable: bool,
}

/// Any HTTP answer of a peer to a write: its status and its body when the body is JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerAnswer {
    pub status: u16,
    /// `None` when the body was empty or not JSON.
    pub body: Option<Value>,
}

/// A peer's answer to a batch of events (`POST /api/v1/event/store_batch`, a route of this
/// implementation only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchAnswer {
    /// The HTTP status each event would have had alone, in the order sent.
    Statuses(Vec<u16>),
    /// The peer has no batch route (404, 405, 501, or a 2xx that is not a result list for
    /// these events): send it events one by one.
    Unsupported,
    /// The peer refused this request as a whole (400, 413, 415, 422): something in it does
    /// not suit the peer, but batches may still work.
    Refused(u16),
}

/// Calls to other instances. Deadlines live here: every method MUST give up within the
/// adapter's per-peer deadline and return `PeerError::Timeout`; answers larger than the
/// adapter's size cap MUST return `PeerError::Invalid` without being read whole. The request
/// id of the calling request is passed on.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PeerTransport: Send + Sync {
    /// `POST <peer>/api/v1/network/item/count_local`; the count must be a non-negative integer.
    async fn count_local(
        &self,
        peer_url: &str,
        filter: &ItemFilter,
        request_id: &str,
    ) -> Result<u64, PeerError>;

    /// `POST <peer>/api/v1/network/item/fetch_local`.
    async fn fetch_local(
        &self,
        peer_url: &str,
        filter: &ItemFilter,
        page: &PeerPage,
        request_id: &str,
    ) -> Result<PeerPageAnswer, PeerError>;

    /// `POST <peer>/api/v1/network/action/perform` with `Idempotency-Key`. Every HTTP answer
    /// is `Ok` (the caller relays 4xx bodies and turns 5xx into 502); a body over the size
    /// cap is `PeerError::Invalid`.
    async fn perform_action(
        &self,
        peer_url: &str,
        body: &Value,
        idempotency_key: &str,
        request_id: &str,
    ) -> Result<PeerAnswer, PeerError>;

    /// `POST <peer>/api/v1/event/store`. Every HTTP answer is `Ok` with its status (the
    /// outbox classifies it); the body is read within the cap and dropped.
    async fn store_event(
        &self,
        peer_url: &str,
        body: &Value,
        request_id: &str,
    ) -> Result<u16, PeerError>;

    /// `POST <peer>/api/v1/event/store_batch` with `{"events": bodies}`. Statuses of the
    /// request as a whole other than those [`BatchAnswer`] names (401, 403, 408, 429, 5xx)
    /// are `PeerError::Status`.
    async fn store_events(
        &self,
        peer_url: &str,
        bodies: Vec<Value>,
        request_id: &str,
    ) -> Result<BatchAnswer, PeerError>;
}
