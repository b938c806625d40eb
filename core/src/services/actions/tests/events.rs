use serde_json::json;

use super::*;
use crate::services::actions::IncomingEvent;

fn incoming(count: u32) -> IncomingEvent {
    let action = action_on_b();
    IncomingEvent {
        origin_instance_domain: B.into(),
        action_name: "connect".into(),
        action_id: ACTION,
        action_status: "accepted".into(),
        update_count: count,
        source: action.source,
        target: action.target,
        source_item_owner: Some("mallory".into()),
        target_item_owner: Some("ravi".into()),
        source_item_latitude: None,
        source_item_longitude: None,
        target_item_latitude: Some(1.0),
        target_item_longitude: Some(2.0),
        event_payload: json!({"status": "accepted", "remark": "ok"}),
        remarks: Some("ok".into()),
    }
}

fn on_a() -> Setup {
    let mut setup = Setup::on(A, "yellow_dot/student").item(student_item("asha"));
    setup
        .actions
        .expect_find()
        .returning(|_| Ok(Some(action_on_b())));
    setup
}

fn from_b() -> PeerCaller {
    signed_by("b-1", "yellow_dot", B)
}

#[tokio::test]
async fn the_target_instance_stores_an_event_with_the_owner_we_know() {
    let mut setup = on_a();
    setup
        .actions
        .expect_store_event()
        .withf(|e| {
            e.source_item_owner.as_deref() == Some("asha")
                && e.target_item_owner.as_deref() == Some("ravi")
                && e.locality
                    == Locality {
                        source: true,
                        target: false,
                    }
                && e.update_count == 1
                && e.created_at == now()
        })
        .times(1)
        .returning(|_| Ok(Some(Uuid::from_u128(0xe1))));
    let (event, id) = setup
        .build()
        .store_event(&from_b(), incoming(1))
        .await
        .expect("stored");
    assert_eq!(id, Some(Uuid::from_u128(0xe1)));
    assert_eq!(event.stored_json(id)["update_count"], 1);
}

#[tokio::test]
async fn a_duplicate_is_an_idempotent_success() {
    let mut setup = on_a();
    setup.actions.expect_store_event().returning(|_| Ok(None));
    let (event, id) = setup
        .build()
        .store_event(&from_b(), incoming(1))
        .await
        .expect("duplicate accepted");
    assert_eq!(id, None);
    assert_eq!(event.stored_json(id)["event_id"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_signed_event_from_another_instance_is_refused() {
    // No store expectation: storing fails the test.
    let service = on_a().build();
    assert_code(
        service
            .store_event(&signed_by("c-1", "blue_dot", C), incoming(1))
            .await,
        ErrorCode::SignerNotInstance,
    );
    assert_code(
        service
            .store_event(&signed_by("a-1", "yellow_dot", A), incoming(1))
            .await,
        ErrorCode::SignerNotInstance,
    );
}

#[tokio::test]
async fn the_origin_must_be_the_target_items_instance_serving_its_domain() {
    let service = on_a().mode("permissive").build();
    let mut not_member = incoming(1);
    not_member.origin_instance_domain = "http://evil.example.org".into();
    not_member.target.instance_url = "http://evil.example.org".into();
    assert_code(
        service.store_event(&PeerCaller::Unsigned, not_member).await,
        ErrorCode::EventOriginForbidden,
    );
    let mut not_target = incoming(1);
    not_target.origin_instance_domain = A.into();
    assert_code(
        service.store_event(&PeerCaller::Unsigned, not_target).await,
        ErrorCode::EventOriginForbidden,
    );
}

#[tokio::test]
async fn unsigned_events_need_a_permissive_network() {
    let required = on_a().build();
    assert_code(
        required
            .store_event(&PeerCaller::Unsigned, incoming(1))
            .await,
        ErrorCode::SignatureRequired,
    );
    let mut permissive = on_a().mode("permissive");
    permissive
        .actions
        .expect_store_event()
        .times(1)
        .returning(|_| Ok(Some(Uuid::from_u128(1))));
    permissive
        .build()
        .store_event(&PeerCaller::Unsigned, incoming(1))
        .await
        .expect("member origin accepted unsigned");
}

#[tokio::test]
async fn the_source_item_must_live_here() {
    let service = on_a().build();
    let mut elsewhere = incoming(1);
    elsewhere.source.instance_url = C.into();
    assert_code(
        service.store_event(&from_b(), elsewhere).await,
        ErrorCode::InvalidEventRequest,
    );
    let mut missing = incoming(1);
    missing.source.item_id = Uuid::from_u128(0xdead);
    assert_code(
        service.store_event(&from_b(), missing).await,
        ErrorCode::SourceItemNotFound,
    );
    let mut unserved = incoming(1);
    unserved.source.domain = "coaching_center".into();
    assert!(matches!(
        service.store_event(&from_b(), unserved).await,
        Err(CoreError::UnservedBinding(_))
    ));
}

#[tokio::test]
async fn an_event_for_a_different_action_stored_here_is_refused() {
    let mut setup = Setup::on(A, "yellow_dot/student").item(student_item("asha"));
    setup.actions.expect_find().returning(|_| {
        let mut other = action_on_b();
        other.target.item_id = Uuid::from_u128(0x99);
        Ok(Some(other))
    });
    assert_code(
        setup.build().store_event(&from_b(), incoming(1)).await,
        ErrorCode::EventOriginForbidden,
    );
}

#[tokio::test]
async fn a_payload_breaking_the_event_schema_is_refused() {
    let service = on_a().build();
    let mut extra = incoming(1);
    extra.event_payload = json!({"status": "accepted", "remark": "x", "extra": 1});
    let err = assert_code(
        service.store_event(&from_b(), extra).await,
        ErrorCode::InvalidEventRequest,
    );
    assert_eq!(
        err.to_string(),
        "INVALID_EVENT_REQUEST: Invalid event payload: must NOT have additional properties"
    );
    // The initial status is always allowed.
    let mut setup = on_a();
    setup
        .actions
        .expect_store_event()
        .returning(|_| Ok(Some(Uuid::from_u128(2))));
    let mut created = incoming(0);
    created.action_status = "created".into();
    created.event_payload = json!({"status": "created", "remark": "Action status set to created"});
    setup
        .build()
        .store_event(&from_b(), created)
        .await
        .expect("created event");
}

#[tokio::test]
async fn events_arrive_in_any_order_and_each_is_stored_once() {
    use std::sync::Mutex;
    let seen: Arc<Mutex<Vec<u32>>> = Arc::default();
    let mut setup = on_a();
    let log = seen.clone();
    setup.actions.expect_store_event().returning(move |e| {
        let mut log = log.lock().expect("lock");
        if log.contains(&e.update_count) {
            return Ok(None);
        }
        log.push(e.update_count);
        Ok(Some(Uuid::from_u128(u128::from(e.update_count))))
    });
    let service = setup.build();
    let mut stored = 0;
    for count in [2, 0, 1, 2, 0] {
        let mut event = incoming(count);
        if count == 0 {
            event.action_status = "created".into();
            event.event_payload =
                json!({"status": "created", "remark": "Action status set to created"});
        }
        let (_, id) = service
            .store_event(&from_b(), event)
            .await
            .expect("accepted");
        stored += usize::from(id.is_some());
    }
    assert_eq!(stored, 3);
}

#[tokio::test]
async fn a_mirrored_target_owner_never_names_a_user_here() {
    // A also serves tutor and the network is permissive: an unsigned origin may claim that
    // the target item lives on A. Its owner id is still only the origin's word.
    let mut setup = Setup::on(A, "yellow_dot/student")
        .mode("permissive")
        .item(student_item("asha"));
    setup.actions.expect_find().returning(|_| Ok(None));
    setup
        .actions
        .expect_store_event()
        .withf(|e| {
            e.target_item_owner.as_deref() == Some("ravi")
                && e.locality
                    == Locality {
                        source: true,
                        target: false,
                    }
        })
        .times(1)
        .returning(|_| Ok(Some(Uuid::from_u128(3))));
    let mut claimed = incoming(1);
    claimed.origin_instance_domain = A.into();
    claimed.target.instance_url = A.into();
    setup
        .build()
        .store_event(&PeerCaller::Unsigned, claimed)
        .await
        .expect("stored");
}
