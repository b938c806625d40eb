//! The peer routes this client calls, and where they are: each peer URL is parsed once, not
//! on every call (network reads call the same few peers thousands of times a second).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use dpg_core::ports::PeerError;
use url::Url;

/// Peer URLs remembered at most; the memo starts over when full (the network document lists
/// far fewer).
const REMEMBERED_PEERS: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Operation {
    CountLocal,
    FetchLocal,
    PerformAction,
    StoreEvent,
    StoreEvents,
}

impl Operation {
    const ALL: [Operation; 5] = [
        Operation::CountLocal,
        Operation::FetchLocal,
        Operation::PerformAction,
        Operation::StoreEvent,
        Operation::StoreEvents,
    ];

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Operation::CountLocal => "count_local",
            Operation::FetchLocal => "fetch_local",
            Operation::PerformAction => "action_perform",
            Operation::StoreEvent => "event_store",
            Operation::StoreEvents => "event_store_batch",
        }
    }

    /// Reads may be signed with a pair key; writes always carry an Ed25519 signature.
    pub(super) fn is_read(self) -> bool {
        matches!(self, Operation::CountLocal | Operation::FetchLocal)
    }

    fn path(self) -> &'static str {
        match self {
            Operation::CountLocal => "/api/v1/network/item/count_local",
            Operation::FetchLocal => "/api/v1/network/item/fetch_local",
            Operation::PerformAction => "/api/v1/network/action/perform",
            Operation::StoreEvent => "/api/v1/event/store",
            Operation::StoreEvents => "/api/v1/event/store_batch",
        }
    }
}

/// One peer's origin (the metrics label) and the URL of each of its routes.
#[derive(Debug)]
pub(super) struct PeerRoutes {
    pub origin: String,
    /// Indexed by [`Operation`] (its declaration order, which [`Operation::ALL`] follows).
    urls: Vec<Url>,
}

impl PeerRoutes {
    /// Like the reference, route paths are absolute: a path in the instance URL is dropped,
    /// and so are user info, query and fragment.
    fn of(peer_url: &str) -> Result<PeerRoutes, PeerError> {
        let unusable = || PeerError::Unreachable("invalid peer URL".to_string());
        let url = Url::parse(peer_url.trim()).map_err(|_| unusable())?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(unusable());
        }
        let origin = url.origin().ascii_serialization();
        let urls = Operation::ALL
            .iter()
            .map(|operation| Url::parse(&format!("{origin}{}", operation.path())))
            .collect::<Result<_, _>>()
            .map_err(|_| unusable())?;
        Ok(PeerRoutes { origin, urls })
    }

    pub(super) fn url(&self, operation: Operation) -> &Url {
        &self.urls[operation as usize]
    }
}

/// The routes of every peer called so far.
#[derive(Debug, Default)]
pub(super) struct RouteMemo(Mutex<HashMap<String, Arc<PeerRoutes>>>);

impl RouteMemo {
    pub(super) fn of(&self, peer_url: &str) -> Result<Arc<PeerRoutes>, PeerError> {
        if let Some(routes) = self.lock().get(peer_url) {
            return Ok(routes.clone());
        }
        let routes = Arc::new(PeerRoutes::of(peer_url)?);
        let mut memo = self.lock();
        if memo.len() >= REMEMBERED_PEERS {
            memo.clear();
        }
        memo.insert(peer_url.to_string(), routes.clone());
        Ok(routes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<PeerRoutes>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_use_the_peer_origin_and_an_absolute_path() {
        for (peer, origin, url) in [
            (
                "http://127.0.0.1:2742",
                "http://127.0.0.1:2742",
                "http://127.0.0.1:2742/api/v1/network/item/count_local",
            ),
            (
                "https://peer.test/some/prefix/?q=1#f",
                "https://peer.test",
                "https://peer.test/api/v1/network/item/count_local",
            ),
            (
                "http://user:secret@peer.test:80/",
                "http://peer.test",
                "http://peer.test/api/v1/network/item/count_local",
            ),
            (
                "http://[::1]:9000",
                "http://[::1]:9000",
                "http://[::1]:9000/api/v1/network/item/count_local",
            ),
        ] {
            let routes = PeerRoutes::of(peer).expect(peer);
            assert_eq!(routes.origin, origin, "{peer}");
            assert_eq!(routes.url(Operation::CountLocal).as_str(), url, "{peer}");
        }
        let routes = PeerRoutes::of("http://peer.test/x").expect("routes");
        for operation in Operation::ALL {
            assert_eq!(routes.url(operation).path(), operation.path());
        }
        for bad in [
            "",
            "not a url",
            "ftp://peer.test",
            "mailto:a@b",
            "localhost:2742",
        ] {
            assert!(
                matches!(PeerRoutes::of(bad), Err(PeerError::Unreachable(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn each_peer_url_is_parsed_once_and_the_memo_stays_bounded() {
        let memo = RouteMemo::default();
        let first = memo.of("http://peer.test").expect("routes");
        let again = memo.of("http://peer.test").expect("routes");
        assert!(Arc::ptr_eq(&first, &again));
        assert!(memo.of("not a url").is_err());
        for port in 0..REMEMBERED_PEERS + 10 {
            memo.of(&format!("http://peer.test:{}", 1000 + port))
                .expect("routes");
        }
        assert!(memo.lock().len() <= REMEMBERED_PEERS);
    }
}
