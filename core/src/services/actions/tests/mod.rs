//! Contract tests of the action use cases against mocks of every port.

mod events;
mod fetch;
mod perform;
mod receive;
mod status;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{ActionService, ActionServiceDeps};
use crate::error::{CoreError, ErrorCode};
use crate::model::{
    ActionEvent, ActionRecord, Caller, InstanceIdentity, Item, ItemRef, Locality, ServedBindings,
};
use crate::network::{
    CatalogHandle, CatalogOrigin, NetworkCatalog, NetworkDocument, SchemaCompiler,
};
use crate::ports::{
    MockActionRepository, MockCache, MockClock, MockIdGenerator, MockItemRepository,
    MockPeerTransport,
};
use crate::services::{PeerCaller, PeerTrustService};

pub(super) const A: &str = "http://a.example.org";
pub(super) const B: &str = "http://b.example.org";
pub(super) const C: &str = "http://c.example.org";

pub(super) const STUDENT_ITEM: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0a01);
pub(super) const TUTOR_ITEM: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0b01);
pub(super) const PROVIDER_ITEM: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0c01);
pub(super) const ACTION: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_00a1);

pub(super) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 13, 10, 0, 0)
        .single()
        .expect("valid time")
}

fn key(kid: &str) -> Value {
    let seed = kid.as_bytes()[0];
    let key = crate::peer_auth::SigningKey::from_seed(&[seed; 32]);
    json!({"kid": kid, "alg": "ed25519", "public_key": key.public_key_b64url()})
}

fn yellow_dot(mode: &str) -> NetworkDocument {
    NetworkDocument::parse(&json!({
        "name": "yellow_dot", "peer_auth": mode,
        "domains": [
            {"name": "student", "item_schemas": {"profile_1.0": {"type": "object"}}},
            {"name": "tutor", "item_schemas": {"profile_1.0": {"type": "object"}}}
        ],
        "instances": [
            {"domain_name": "student", "instance_url": A, "keys": [key("a-1")]},
            {"domain_name": "tutor", "instance_url": A, "keys": [key("a-1")]},
            {"domain_name": "tutor", "instance_url": B, "keys": [key("b-1")]}
        ],
        "actions": {"connect": {"interactions": [{
            "from_domain": "student", "from_items": ["profile_1.0"],
            "to_domain": "tutor", "to_items": ["profile_1.0"],
            "requirement_schema": {
                "type": "object", "additionalProperties": false, "required": ["subject", "goal"],
                "properties": {"subject": {"type": "string"}, "goal": {"type": "string"}}
            },
            "event_schema": {
                "type": "object", "additionalProperties": false, "required": ["status", "remark"],
                "properties": {
                    "subject": {"type": "string"},
                    "status": {"enum": ["accepted", "rejected"]},
                    "remark": {"type": "string"}
                }
            }
        }]}}
    }))
    .expect("yellow_dot")
}

fn blue_dot(mode: &str) -> NetworkDocument {
    NetworkDocument::parse(&json!({
        "name": "blue_dot", "peer_auth": mode,
        "domains": [{"name": "provider", "item_schemas": {"job_1.0": {"type": "object"}}}],
        "instances": [{"domain_name": "provider", "instance_url": C, "keys": [key("c-1")]}],
        "actions": {"apply": {"interactions": [{
            "from_network": "yellow_dot", "from_domain": "student",
            "to_domain": "provider",
            "requirement_schema": {"type": "object", "required": ["job_id"]}
        }]}}
    }))
    .expect("blue_dot")
}

/// Who this instance is in a test.
pub(super) struct Setup {
    pub base_url: &'static str,
    pub served: &'static str,
    pub mode: &'static str,
    pub actions: MockActionRepository,
    pub items: Vec<Item>,
    pub transport: MockPeerTransport,
}

impl Setup {
    pub fn on(base_url: &'static str, served: &'static str) -> Self {
        Setup {
            base_url,
            served,
            mode: "required",
            actions: MockActionRepository::new(),
            items: Vec::new(),
            transport: MockPeerTransport::new(),
        }
    }

    pub fn mode(mut self, mode: &'static str) -> Self {
        self.mode = mode;
        self
    }

    pub fn item(mut self, item: Item) -> Self {
        self.items.push(item);
        self
    }

    pub fn build(self) -> ActionService {
        let identity = Arc::new(InstanceIdentity {
            base_url: self.base_url.into(),
            name: "test".into(),
            served: ServedBindings::parse(self.served).expect("served"),
        });
        let catalog = Arc::new(CatalogHandle::new(NetworkCatalog::build(
            vec![yellow_dot(self.mode), blue_dot(self.mode)],
            &HashMap::new(),
            &identity,
            &SchemaCompiler::new(false),
            now(),
            CatalogOrigin::Sources,
        )));
        let mut clock = MockClock::new();
        clock.expect_now().returning(now);
        let clock = Arc::new(clock);
        let counter = AtomicU64::new(0x100);
        let mut ids = MockIdGenerator::new();
        ids.expect_new_id()
            .returning(move || Uuid::from_u128(u128::from(counter.fetch_add(1, Ordering::SeqCst))));
        let stored = self.items;
        let mut items = MockItemRepository::new();
        items
            .expect_find_after()
            .returning(move |filter, after, limit| {
                assert!(after.is_none(), "item look-ups start at the top");
                Ok(stored
                    .iter()
                    .filter(|i| filter.matches(i))
                    .take(limit as usize)
                    .cloned()
                    .collect())
            });
        let peer_trust = Arc::new(PeerTrustService::new(
            catalog.clone(),
            identity.clone(),
            Arc::new(MockCache::new()),
            clock.clone(),
        ));
        ActionService::new(ActionServiceDeps {
            actions: Arc::new(self.actions),
            items: Arc::new(items),
            transport: Arc::new(self.transport),
            catalog,
            peer_trust,
            clock,
            ids: Arc::new(ids),
            identity,
            compiler: SchemaCompiler::new(false),
        })
    }
}

pub(super) fn item(domain: &str, item_type: &str, id: Uuid, instance: &str, owner: &str) -> Item {
    let network = if domain == "provider" {
        "blue_dot"
    } else {
        "yellow_dot"
    };
    Item {
        network: network.into(),
        domain: domain.into(),
        item_type: item_type.into(),
        item_id: id,
        instance_url: instance.into(),
        schema_url: format!("{instance}/schema"),
        state: json!({}),
        latitude: Some(12.5),
        longitude: Some(77.5),
        created_by: owner.into(),
        created_at: now(),
        updated_at: now(),
    }
}

pub(super) fn student_item(owner: &str) -> Item {
    item("student", "profile_1.0", STUDENT_ITEM, A, owner)
}

pub(super) fn tutor_item(instance: &str, owner: &str) -> Item {
    item("tutor", "profile_1.0", TUTOR_ITEM, instance, owner)
}

pub(super) fn item_ref(item: &Item) -> ItemRef {
    ItemRef {
        network: item.network.clone(),
        domain: item.domain.clone(),
        item_type: item.item_type.clone(),
        item_id: item.item_id,
        instance_url: item.instance_url.clone(),
    }
}

pub(super) fn requirements() -> Value {
    json!({"subject": "math", "goal": "board exam"})
}

/// The action A's student asked of B's tutor, as B stores it.
pub(super) fn action_on_b() -> ActionRecord {
    ActionRecord {
        action_name: "connect".into(),
        action_id: ACTION,
        action_status: "created".into(),
        update_count: 0,
        source: item_ref(&student_item("asha")),
        source_item_owner: Some("asha".into()),
        target: item_ref(&tutor_item(B, "ravi")),
        target_item_owner: Some("ravi".into()),
        locality: Locality {
            source: false,
            target: true,
        },
        requirements_snapshot: requirements(),
        remarks: None,
        created_at: now(),
        updated_at: now(),
    }
}

pub(super) fn event_of(action: &ActionRecord, status: &str, count: u32) -> ActionEvent {
    ActionEvent {
        action_name: action.action_name.clone(),
        event_id: Uuid::from_u128(0xe0),
        origin_instance_domain: action.target.instance_url.clone(),
        action_id: action.action_id,
        action_status: status.into(),
        update_count: count,
        source: action.source.clone(),
        source_item_owner: action.source_item_owner.clone(),
        source_item_latitude: None,
        source_item_longitude: None,
        target: action.target.clone(),
        target_item_owner: action.target_item_owner.clone(),
        target_item_latitude: None,
        target_item_longitude: None,
        locality: action.locality,
        event_payload: json!({"status": status, "remark": "ok"}),
        remarks: None,
        created_at: now(),
    }
}

pub(super) fn signed_by(kid: &str, network: &str, url: &str) -> PeerCaller {
    PeerCaller::Signed {
        kid: kid.into(),
        instances: vec![(network.into(), url.into())],
        alg: crate::peer_auth::SignatureAlg::Ed25519,
    }
}

pub(super) fn user(id: &str) -> Caller {
    Caller::new(id)
}

#[track_caller]
pub(super) fn assert_code<T: std::fmt::Debug>(
    result: Result<T, CoreError>,
    code: ErrorCode,
) -> CoreError {
    let err = result.expect_err("must fail");
    assert_eq!(err.code(), code, "{err:?}");
    err
}
