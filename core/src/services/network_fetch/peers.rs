//! The instances of a domain, and the checks every item a peer sends must pass.

use std::sync::{Arc, Mutex};

use crate::error::CoreError;
use crate::model::{InstanceIdentity, ItemFilter, PeerItem, normalize_instance_url};
use crate::network::{NetworkCatalog, NetworkDocument};

/// One instance serving the domain, however many spellings of its URL the document lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The URL as first listed.
    pub url: String,
    /// The normalized URL: the peer's identity.
    pub key: String,
    /// This instance (answered from its own services, never over HTTP).
    pub is_self: bool,
}

/// The instances listed for `domain`, URL aliases counted once, in document order.
pub fn peers_of(
    document: &NetworkDocument,
    domain: &str,
    identity: &InstanceIdentity,
) -> Vec<Peer> {
    let me = normalize_instance_url(&identity.base_url);
    let mut peers: Vec<Peer> = Vec::new();
    for instance in document
        .instances
        .iter()
        .filter(|i| i.domain_name == domain)
    {
        let key = normalize_instance_url(&instance.instance_url);
        if peers.iter().any(|p| p.key == key) {
            continue;
        }
        peers.push(Peer {
            url: instance.instance_url.trim().to_string(),
            is_self: key == me,
            key,
        });
    }
    peers
}

/// The peers of each domain, worked out once per catalog: every read of a domain would
/// otherwise parse each listed URL again.
#[derive(Default)]
pub(super) struct PeersMemo(Mutex<Option<MemoizedPeers>>);

/// Peers by (network, domain), valid for the catalog they were worked out from.
struct MemoizedPeers {
    catalog: Arc<NetworkCatalog>,
    domains: Vec<(String, String, Arc<[Peer]>)>,
}

impl PeersMemo {
    /// The instances of the filter's domain in `catalog` (see [`peers_of`]).
    pub(super) fn of(
        &self,
        catalog: &Arc<NetworkCatalog>,
        filter: &ItemFilter,
        identity: &InstanceIdentity,
    ) -> Result<Arc<[Peer]>, CoreError> {
        let (network, domain) = (filter.network.as_str(), filter.domain.as_str());
        let mut memo = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let memo = match &mut *memo {
            Some(memo) if Arc::ptr_eq(&memo.catalog, catalog) => memo,
            slot => slot.insert(MemoizedPeers {
                catalog: catalog.clone(),
                domains: Vec::new(),
            }),
        };
        if let Some((_, _, peers)) = memo
            .domains
            .iter()
            .find(|(n, d, _)| n == network && d == domain)
        {
            return Ok(peers.clone());
        }
        let peers: Arc<[Peer]> = peers_of(catalog.network(network)?, domain, identity).into();
        memo.domains
            .push((network.to_string(), domain.to_string(), peers.clone()));
        Ok(peers)
    }
}

/// Checks one item a peer sent (a complete record, see [`PeerItem`]) against the request: of
/// the requested network/domain (and type or id when filtered), held by the peer that
/// answered, coordinates in range. Not checked against JSON Schemas: peers of the reference
/// store unvalidated data.
pub fn check_item(item: &PeerItem, peer: &Peer, filter: &ItemFilter) -> Result<(), String> {
    let item = &item.head;
    if item.network != filter.network || item.domain != filter.domain {
        return Err(format!(
            "an item of {}/{} was sent for {}/{}",
            item.network, item.domain, filter.network, filter.domain
        ));
    }
    if filter
        .item_type
        .as_ref()
        .is_some_and(|t| *t != item.item_type)
        || filter.item_id.is_some_and(|id| id != item.item_id)
    {
        return Err("an item does not match the filter".to_string());
    }
    // Most items name the URL the peer was called at; only other spellings need parsing.
    if item.instance_url != peer.url && normalize_instance_url(&item.instance_url) != peer.key {
        return Err(format!(
            "an item of {} was sent by {}",
            item.instance_url, peer.key
        ));
    }
    if item.latitude.is_some_and(|l| !(-90.0..=90.0).contains(&l))
        || item
            .longitude
            .is_some_and(|l| !(-180.0..=180.0).contains(&l))
    {
        return Err("an item has coordinates out of range".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ServedBindings;
    use serde_json::{Value, json};

    fn identity() -> InstanceIdentity {
        InstanceIdentity {
            base_url: "http://127.0.0.1:2742".into(),
            name: "a".into(),
            served: ServedBindings::parse("yellow_dot/student").expect("served"),
        }
    }

    #[test]
    fn aliases_are_counted_once_and_self_is_recognised() {
        let doc = NetworkDocument::parse(&json!({"name": "yellow_dot", "instances": [
            {"domain_name": "student", "instance_url": "http://localhost:2742"},
            {"domain_name": "student", "instance_url": "http://127.0.0.1:2742/"},
            {"domain_name": "student", "instance_url": "http://localhost:7777"},
            {"domain_name": "tutor", "instance_url": "http://localhost:8888"},
            {"domain_name": "student", "instance_url": "http://127.0.0.1:7777"}
        ]}))
        .expect("doc");
        let peers = peers_of(&doc, "student", &identity());
        assert_eq!(peers.len(), 2);
        assert!(peers[0].is_self);
        assert_eq!(peers[0].url, "http://localhost:2742");
        assert!(!peers[1].is_self);
        assert_eq!(peers[1].key, "http://localhost:7777");
    }

    fn catalog(instances: &[&str]) -> Arc<NetworkCatalog> {
        let instances: Vec<Value> = instances
            .iter()
            .map(|url| json!({"domain_name": "student", "instance_url": url}))
            .collect();
        let doc = NetworkDocument::parse(&json!({
            "name": "yellow_dot",
            "domains": [{"name": "student", "item_schemas": {"profile_1.0": {"type": "object"}}}],
            "instances": instances
        }))
        .expect("doc");
        Arc::new(NetworkCatalog::build(
            vec![doc],
            &std::collections::HashMap::new(),
            &identity(),
            &crate::network::SchemaCompiler::new(false),
            chrono::Utc::now(),
            crate::network::CatalogOrigin::Sources,
        ))
    }

    #[test]
    fn peers_are_worked_out_once_per_catalog() {
        let memo = PeersMemo::default();
        let filter = ItemFilter::new("yellow_dot", "student");
        let first = catalog(&["http://127.0.0.1:2742", "http://localhost:7777"]);
        let peers = memo.of(&first, &filter, &identity()).expect("peers");
        assert_eq!(peers.len(), 2);
        assert!(peers[0].is_self);
        let again = memo.of(&first, &filter, &identity()).expect("peers");
        assert!(Arc::ptr_eq(&peers, &again), "worked out again");

        let replaced = catalog(&["http://localhost:7777", "http://localhost:8888"]);
        let peers = memo.of(&replaced, &filter, &identity()).expect("peers");
        let keys: Vec<&str> = peers.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["http://localhost:7777", "http://localhost:8888"]);
        assert!(peers.iter().all(|p| !p.is_self));

        let unknown = ItemFilter::new("nope", "student");
        assert!(memo.of(&replaced, &unknown, &identity()).is_err());
    }

    fn good() -> Value {
        json!({
            "item_network": "yellow_dot", "item_domain": "student", "item_type": "profile_1.0",
            "item_id": "0983ee4f-d0b7-41f2-a596-9836085e9732", "item_instance_url": "http://127.0.0.1:7777",
            "item_schema_url": "http://127.0.0.1:7777/api/v1/network/schema/yellow_dot/student/profile_1.0",
            "item_state": {"name": "A"}, "item_latitude": null, "item_longitude": null,
            "created_by": "u", "created_at": "2026-05-13T10:00:00.123Z", "updated_at": "2026-05-13T10:00:00.123Z"
        })
    }

    fn peer() -> Peer {
        Peer {
            url: "http://localhost:7777".into(),
            key: "http://localhost:7777".into(),
            is_self: false,
        }
    }

    fn edited(edit: &dyn Fn(&mut Value)) -> Result<PeerItem, serde_json::Error> {
        let mut value = good();
        edit(&mut value);
        serde_json::from_str(&value.to_string())
    }

    #[test]
    fn an_item_is_read_only_as_a_complete_well_typed_record() {
        assert!(edited(&|_| {}).is_ok());
        for key in [
            "item_latitude",
            "item_longitude",
            "item_state",
            "updated_at",
        ] {
            let missing = edited(&|v| {
                v.as_object_mut().expect("o").remove(key);
            });
            assert!(missing.is_err(), "{key} is required");
        }
        assert!(edited(&|v| v["item_id"] = json!("nope")).is_err());
        assert!(edited(&|v| v["created_at"] = json!("yesterday")).is_err());
        assert!(edited(&|v| v["created_by"] = json!(5)).is_err());
        assert!(edited(&|v| v["item_latitude"] = json!("north")).is_err());
        assert!(serde_json::from_str::<PeerItem>("[1]").is_err());
    }

    #[test]
    fn items_must_be_what_was_asked_of_the_peer_that_answered() {
        let filter = ItemFilter::new("yellow_dot", "student");
        let checked = |edit: &dyn Fn(&mut Value)| {
            check_item(&edited(edit).expect("well-formed"), &peer(), &filter)
        };
        assert!(checked(&|_| {}).is_ok());
        assert!(checked(&|v| v["item_domain"] = json!("tutor")).is_err());
        assert!(checked(&|v| v["item_network"] = json!("other")).is_err());
        assert!(checked(&|v| v["item_instance_url"] = json!("http://elsewhere.example")).is_err());
        assert!(checked(&|v| v["item_instance_url"] = json!("http://LOCALHOST:7777/")).is_ok());
        assert!(checked(&|v| v["item_latitude"] = json!(500.0)).is_err());
        assert!(checked(&|v| v["item_longitude"] = json!(-180.5)).is_err());
        let mut typed = filter.clone();
        typed.item_type = Some("course_1.0".into());
        let item = edited(&|_| {}).expect("well-formed");
        assert!(check_item(&item, &peer(), &typed).is_err());
    }
}
