//! Actions between items, their status events, and the outbox that carries events to the
//! source instance (reference-contract §6, §7.2, Appendix A.2–A.4).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{InstanceIdentity, wire_time};

/// An item on some instance (Appendix A.4, with `item_instance_url`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRef {
    #[serde(rename = "item_network")]
    pub network: String,
    #[serde(rename = "item_domain")]
    pub domain: String,
    pub item_type: String,
    pub item_id: Uuid,
    #[serde(rename = "item_instance_url")]
    pub instance_url: String,
}

/// Which of an action's two items live on this instance, decided when a row is written.
///
/// User ids are local to an instance (reference-contract §8.5) and rows carry the other
/// instance's owner ids verbatim, so an owner column names one of this instance's users only
/// on the side whose item lives here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locality {
    pub source: bool,
    pub target: bool,
}

impl Locality {
    /// Where the items of an action between `source` and `target` live, by their instance URLs.
    pub fn of(identity: &InstanceIdentity, source: &ItemRef, target: &ItemRef) -> Locality {
        Locality {
            source: identity.is_self(&source.instance_url),
            target: identity.is_self(&target.instance_url),
        }
    }
}

/// A stored action (Appendix A.2 without `ownership_roles`). The target instance holds the
/// authoritative row; the source instance keeps a copy of the actions it initiated, advanced
/// by the events it receives.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRecord {
    pub action_name: String,
    pub action_id: Uuid,
    pub action_status: String,
    pub update_count: u32,
    pub source: ItemRef,
    pub source_item_owner: Option<String>,
    pub target: ItemRef,
    pub target_item_owner: Option<String>,
    /// Not on the wire: which owner columns name users of this instance.
    pub locality: Locality,
    pub requirements_snapshot: Value,
    pub remarks: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A stored status event (Appendix A.3 without `ownership_roles`).
#[derive(Debug, Clone, PartialEq)]
pub struct ActionEvent {
    pub action_name: String,
    pub event_id: Uuid,
    /// Base URL of the instance that produced the event (the target's), despite the name.
    pub origin_instance_domain: String,
    pub action_id: Uuid,
    pub action_status: String,
    pub update_count: u32,
    pub source: ItemRef,
    pub source_item_owner: Option<String>,
    pub source_item_latitude: Option<f64>,
    pub source_item_longitude: Option<f64>,
    pub target: ItemRef,
    pub target_item_owner: Option<String>,
    pub target_item_latitude: Option<f64>,
    pub target_item_longitude: Option<f64>,
    /// Not on the wire: which owner columns name users of this instance.
    pub locality: Locality,
    pub event_payload: Value,
    pub remarks: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Which side of an action a user is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OwnershipRole {
    #[default]
    All,
    /// The user owns the source item.
    Initiated,
    /// The user owns the target item.
    Received,
}

impl OwnershipRole {
    pub fn as_str(self) -> &'static str {
        match self {
            OwnershipRole::All => "all",
            OwnershipRole::Initiated => "initiated",
            OwnershipRole::Received => "received",
        }
    }
}

/// `ownership_roles` of a row for `user` (reference-contract §6.6): an owner column counts
/// only on a side whose item lives here.
pub fn ownership_roles(
    user: &str,
    source_owner: Option<&str>,
    target_owner: Option<&str>,
    locality: Locality,
) -> Vec<&'static str> {
    let mut roles = Vec::with_capacity(2);
    if locality.source && source_owner == Some(user) {
        roles.push("initiated");
    }
    if locality.target && target_owner == Some(user) {
        roles.push("received");
    }
    roles
}

/// Owner-scoped query of `GET /api/v1/action/fetch` and `GET /api/v1/event/fetch`: rows where
/// `user` owns the source item (`initiated`) or the target item (`received`) and that item
/// lives on this instance ([`Locality`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionQuery {
    pub user: String,
    pub role: OwnershipRole,
    pub action_id: Option<Uuid>,
    pub action_name: Option<String>,
    pub action_status: Option<String>,
    pub item_id: Option<Uuid>,
    /// Events only.
    pub update_count: Option<u32>,
    pub limit: u32,
    pub offset: u32,
}

/// A page of actions or events plus the number of all matches.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub total: u64,
    pub rows: Vec<T>,
}

fn item_columns(prefix: &str, item: &ItemRef, out: &mut Map<String, Value>) {
    out.insert(format!("{prefix}_item_network"), json!(item.network));
    out.insert(format!("{prefix}_item_domain"), json!(item.domain));
    out.insert(format!("{prefix}_item_type"), json!(item.item_type));
    out.insert(format!("{prefix}_item_id"), json!(item.item_id));
    out.insert(
        format!("{prefix}_item_instance_url"),
        json!(item.instance_url),
    );
}

impl ActionRecord {
    /// Appendix A.2 as seen by `user`, keys in the wire's order.
    pub fn to_owned_json(&self, user: &str) -> Value {
        let mut out = Map::new();
        out.insert("action_name".into(), json!(self.action_name));
        out.insert("action_id".into(), json!(self.action_id));
        out.insert("action_status".into(), json!(self.action_status));
        out.insert("update_count".into(), json!(self.update_count));
        item_columns("source", &self.source, &mut out);
        out.insert("source_item_owner".into(), json!(self.source_item_owner));
        item_columns("target", &self.target, &mut out);
        out.insert("target_item_owner".into(), json!(self.target_item_owner));
        out.insert(
            "requirements_snapshot".into(),
            self.requirements_snapshot.clone(),
        );
        out.insert("remarks".into(), json!(self.remarks));
        out.insert(
            "created_at".into(),
            json!(wire_time::format(&self.created_at)),
        );
        out.insert(
            "updated_at".into(),
            json!(wire_time::format(&self.updated_at)),
        );
        out.insert(
            "ownership_roles".into(),
            json!(ownership_roles(
                user,
                self.source_item_owner.as_deref(),
                self.target_item_owner.as_deref(),
                self.locality,
            )),
        );
        Value::Object(out)
    }

    /// The perform answer: `{action_id, action_name, action_status, update_count,
    /// source_item_id, target_item_id}`.
    pub fn performed_json(&self) -> Value {
        json!({
            "action_id": self.action_id,
            "action_name": self.action_name,
            "action_status": self.action_status,
            "update_count": self.update_count,
            "source_item_id": self.source.item_id,
            "target_item_id": self.target.item_id,
        })
    }
}

impl ActionEvent {
    /// Appendix A.3 as seen by `user`, keys in the wire's order.
    pub fn to_owned_json(&self, user: &str) -> Value {
        let mut out = Map::new();
        out.insert("action_name".into(), json!(self.action_name));
        out.insert("event_id".into(), json!(self.event_id));
        out.insert(
            "origin_instance_domain".into(),
            json!(self.origin_instance_domain),
        );
        out.insert("action_id".into(), json!(self.action_id));
        out.insert("action_status".into(), json!(self.action_status));
        out.insert("update_count".into(), json!(self.update_count));
        item_columns("source", &self.source, &mut out);
        out.insert("source_item_owner".into(), json!(self.source_item_owner));
        out.insert(
            "source_item_latitude".into(),
            json!(self.source_item_latitude),
        );
        out.insert(
            "source_item_longitude".into(),
            json!(self.source_item_longitude),
        );
        item_columns("target", &self.target, &mut out);
        out.insert("target_item_owner".into(), json!(self.target_item_owner));
        out.insert(
            "target_item_latitude".into(),
            json!(self.target_item_latitude),
        );
        out.insert(
            "target_item_longitude".into(),
            json!(self.target_item_longitude),
        );
        out.insert("event_payload".into(), self.event_payload.clone());
        out.insert("remarks".into(), json!(self.remarks));
        out.insert(
            "created_at".into(),
            json!(wire_time::format(&self.created_at)),
        );
        out.insert(
            "ownership_roles".into(),
            json!(ownership_roles(
                user,
                self.source_item_owner.as_deref(),
                self.target_item_owner.as_deref(),
                self.locality,
            )),
        );
        Value::Object(out)
    }

    /// The body of `POST /api/v1/event/store` (reference-contract §1.10, §6.2 step 10): what
    /// the target sends the source. `remarks` is omitted when absent.
    pub fn mirror_body(&self) -> Value {
        let mut out = Map::new();
        out.insert(
            "origin_instance_domain".into(),
            json!(self.origin_instance_domain),
        );
        out.insert("action_name".into(), json!(self.action_name));
        out.insert("action_id".into(), json!(self.action_id));
        out.insert("action_status".into(), json!(self.action_status));
        out.insert("update_count".into(), json!(self.update_count));
        out.insert("source_item".into(), json!(self.source));
        out.insert("target_item".into(), json!(self.target));
        out.insert("source_item_owner".into(), json!(self.source_item_owner));
        out.insert("target_item_owner".into(), json!(self.target_item_owner));
        out.insert(
            "source_item_latitude".into(),
            json!(self.source_item_latitude),
        );
        out.insert(
            "source_item_longitude".into(),
            json!(self.source_item_longitude),
        );
        out.insert(
            "target_item_latitude".into(),
            json!(self.target_item_latitude),
        );
        out.insert(
            "target_item_longitude".into(),
            json!(self.target_item_longitude),
        );
        out.insert("event_payload".into(), self.event_payload.clone());
        if let Some(remarks) = &self.remarks {
            out.insert("remarks".into(), json!(remarks));
        }
        Value::Object(out)
    }

    /// The answer of `POST /api/v1/event/store`; `event_id` is `null` for a duplicate.
    pub fn stored_json(&self, event_id: Option<Uuid>) -> Value {
        json!({
            "event_id": event_id,
            "action_id": self.action_id,
            "action_name": self.action_name,
            "action_status": self.action_status,
            "update_count": self.update_count,
        })
    }
}

/// Where an outbox entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxState {
    Pending,
    Delivered,
    Dead,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Delivered => "delivered",
            OutboxState::Dead => "dead",
        }
    }
}

/// One event to deliver to the source instance's `POST /api/v1/event/store`. Written in the
/// same transaction as the event it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub id: Uuid,
    /// Base URL of the instance to deliver to (the action's source instance).
    pub destination: String,
    pub action_name: String,
    pub action_id: Uuid,
    pub update_count: u32,
    /// The `event/store` body ([`ActionEvent::mirror_body`]).
    pub body: Value,
    pub state: OutboxState,
    /// Failed deliveries so far.
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When it was delivered or dead-lettered.
    pub finished_at: Option<DateTime<Utc>>,
}

impl OutboxEntry {
    /// A pending entry for `event`, due at once.
    pub fn for_event(id: Uuid, destination: &str, event: &ActionEvent) -> OutboxEntry {
        OutboxEntry {
            id,
            destination: destination.to_string(),
            action_name: event.action_name.clone(),
            action_id: event.action_id,
            update_count: event.update_count,
            body: event.mirror_body(),
            state: OutboxState::Pending,
            attempts: 0,
            next_attempt_at: event.created_at,
            last_error: None,
            created_at: event.created_at,
            finished_at: None,
        }
    }
}

/// Outbox totals for `/metrics` and readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct OutboxCounts {
    pub pending: u64,
    pub delivered: u64,
    pub dead: u64,
    /// Age in seconds of the oldest pending entry.
    pub oldest_pending_seconds: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn item(domain: &str, n: u128) -> ItemRef {
        ItemRef {
            network: "yellow_dot".into(),
            domain: domain.into(),
            item_type: "profile_1.0".into(),
            item_id: Uuid::from_u128(n),
            instance_url: format!("http://{domain}.example.org"),
        }
    }

    fn event(remarks: Option<&str>) -> ActionEvent {
        let at = Utc
            .timestamp_millis_opt(1_700_000_000_123)
            .single()
            .expect("time");
        ActionEvent {
            action_name: "connect".into(),
            event_id: Uuid::from_u128(9),
            origin_instance_domain: "http://tutor.example.org".into(),
            action_id: Uuid::from_u128(7),
            action_status: "accepted".into(),
            update_count: 1,
            source: item("student", 1),
            source_item_owner: Some("asha".into()),
            source_item_latitude: None,
            source_item_longitude: None,
            target: item("tutor", 2),
            target_item_owner: Some("ravi".into()),
            target_item_latitude: Some(12.5),
            target_item_longitude: Some(77.25),
            locality: Locality {
                source: true,
                target: false,
            },
            event_payload: json!({"status": "accepted", "remark": "ok"}),
            remarks: remarks.map(str::to_string),
            created_at: at,
        }
    }

    #[test]
    fn the_mirror_body_has_the_contract_keys_in_order_and_omits_absent_remarks() {
        let body = event(None).mirror_body();
        let keys: Vec<&str> = body
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "origin_instance_domain",
                "action_name",
                "action_id",
                "action_status",
                "update_count",
                "source_item",
                "target_item",
                "source_item_owner",
                "target_item_owner",
                "source_item_latitude",
                "source_item_longitude",
                "target_item_latitude",
                "target_item_longitude",
                "event_payload"
            ]
        );
        assert_eq!(
            body["source_item"],
            json!({"item_network": "yellow_dot", "item_domain": "student",
                   "item_type": "profile_1.0", "item_id": Uuid::from_u128(1),
                   "item_instance_url": "http://student.example.org"})
        );
        assert_eq!(event(Some("fine")).mirror_body()["remarks"], "fine");
    }

    #[test]
    fn owned_rows_carry_the_roles_of_the_viewer() {
        let mut e = event(None);
        assert_eq!(
            e.to_owned_json("asha")["ownership_roles"],
            json!(["initiated"])
        );
        e.locality.target = true;
        assert_eq!(
            e.to_owned_json("ravi")["ownership_roles"],
            json!(["received"])
        );
        let both = Locality {
            source: true,
            target: true,
        };
        assert_eq!(
            ownership_roles("x", Some("x"), Some("x"), both),
            vec!["initiated", "received"]
        );
        let owned = event(None).to_owned_json("asha");
        assert_eq!(owned["created_at"], "2023-11-14T22:13:20.123Z");
        assert_eq!(owned["source_item_id"], json!(Uuid::from_u128(1)));
        assert_eq!(owned["remarks"], Value::Null);
    }

    #[test]
    fn an_owner_id_of_another_instance_gives_no_role_here() {
        // Ids are local: "ravi" on the target's instance is not this instance's "ravi".
        let e = event(None);
        assert_eq!(e.to_owned_json("ravi")["ownership_roles"], json!([]));
        assert_eq!(e.to_owned_json("ravi")["target_item_owner"], "ravi");
        let local = |source, target| Locality { source, target };
        for (locality, roles) in [
            (local(false, false), vec![]),
            (local(true, false), vec!["initiated"]),
            (local(false, true), vec!["received"]),
            (local(true, true), vec!["initiated", "received"]),
        ] {
            assert_eq!(
                ownership_roles("u1", Some("u1"), Some("u1"), locality),
                roles,
                "{locality:?}"
            );
        }
    }

    #[test]
    fn locality_follows_the_instance_identity() {
        let me = InstanceIdentity {
            base_url: "http://127.0.0.1:2742".into(),
            name: "dpg".into(),
            served: crate::model::ServedBindings::default(),
        };
        let mut here = item("student", 1);
        here.instance_url = "http://localhost:2742/".into();
        let there = item("tutor", 2);
        assert_eq!(
            Locality::of(&me, &here, &there),
            Locality {
                source: true,
                target: false
            }
        );
        assert_eq!(
            Locality::of(&me, &there, &here),
            Locality {
                source: false,
                target: true
            }
        );
    }
}
