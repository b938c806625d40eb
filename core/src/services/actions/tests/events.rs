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

// --- Batches (`store_events`) -----------------------------------------------------------

/// A's setup for batches: the actions are read through `find_many`, once.
fn batch_on_a(mode: &'static str) -> Setup {
    let mut setup = Setup::on(A, "yellow_dot/student")
        .mode(mode)
        .item(student_item("asha"));
    setup
        .actions
        .expect_find_many()
        .withf(|ids| ids.to_vec() == vec![ACTION])
        .times(1)
        .returning(|_| Ok(vec![action_on_b()]));
    setup
}

fn codes(
    results: &[Result<(ActionEvent, Option<Uuid>), CoreError>],
) -> Vec<Result<Option<Uuid>, ErrorCode>> {
    results
        .iter()
        .map(|r| r.as_ref().map(|(_, id)| *id).map_err(CoreError::code))
        .collect()
}

#[tokio::test]
async fn a_batch_answers_each_event_and_stores_only_the_admitted_ones() {
    let mut setup = batch_on_a("required");
    setup
        .actions
        .expect_store_events()
        .withf(|events| {
            events.iter().map(|e| e.update_count).collect::<Vec<_>>() == [1, 2, 1]
                && events.iter().all(|e| {
                    e.source_item_owner.as_deref() == Some("asha")
                        && e.locality
                            == Locality {
                                source: true,
                                target: false,
                            }
                })
        })
        .times(1)
        // The second event of count 1 is a duplicate of the first.
        .returning(|events| {
            Ok(vec![
                Some(events[0].event_id),
                Some(events[1].event_id),
                None,
            ])
        });
    let mut not_target = incoming(3);
    not_target.origin_instance_domain = A.into();
    let mut missing = incoming(4);
    missing.source.item_id = Uuid::from_u128(0xdead);
    let mut extra = incoming(5);
    extra.event_payload = json!({"status": "accepted", "remark": "x", "extra": 1});
    let batch = vec![
        incoming(1),
        not_target,
        missing,
        incoming(2),
        extra,
        incoming(1),
    ];
    let results = setup.build().store_events(&from_b(), batch).await;
    let ids: Vec<Option<Uuid>> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|(_, id)| *id))
        .collect();
    assert!(
        matches!(ids.as_slice(), [Some(a), Some(b), None] if a != b),
        "{ids:?}"
    );
    assert_eq!(
        codes(&results)
            .into_iter()
            .map(|r| r.map(|id| id.is_some()))
            .collect::<Vec<_>>(),
        vec![
            Ok(true),
            Err(ErrorCode::EventOriginForbidden),
            Err(ErrorCode::SourceItemNotFound),
            Ok(true),
            Err(ErrorCode::InvalidEventRequest),
            Ok(false),
        ]
    );
    let (event, _) = results[3].as_ref().expect("stored");
    assert_eq!((event.update_count, event.created_at), (2, now()));
}

#[tokio::test]
async fn a_batch_follows_the_rules_of_single_events_for_its_caller() {
    // Signed by another instance: every event refused, nothing read or stored.
    let service = Setup::on(A, "yellow_dot/student")
        .item(student_item("asha"))
        .build();
    let results = service
        .store_events(
            &signed_by("c-1", "blue_dot", C),
            vec![incoming(1), incoming(2)],
        )
        .await;
    assert_eq!(
        codes(&results),
        vec![
            Err(ErrorCode::SignerNotInstance),
            Err(ErrorCode::SignerNotInstance)
        ]
    );
    // Unsigned in a network requiring signatures: the same.
    let results = service
        .store_events(&PeerCaller::Unsigned, vec![incoming(1)])
        .await;
    assert_eq!(codes(&results), vec![Err(ErrorCode::SignatureRequired)]);
    assert!(service.store_events(&from_b(), Vec::new()).await.is_empty());
    // Unsigned where the network is permissive: stored.
    let mut permissive = batch_on_a("permissive");
    permissive
        .actions
        .expect_store_events()
        .times(1)
        .returning(|events| Ok(events.iter().map(|e| Some(e.event_id)).collect()));
    let results = permissive
        .build()
        .store_events(&PeerCaller::Unsigned, vec![incoming(1)])
        .await;
    assert!(matches!(codes(&results).as_slice(), [Ok(Some(_))]));
}

#[tokio::test]
async fn events_of_a_different_action_stored_here_are_refused_in_a_batch() {
    let mut setup = Setup::on(A, "yellow_dot/student").item(student_item("asha"));
    setup.actions.expect_find_many().times(1).returning(|_| {
        let mut other = action_on_b();
        other.target.item_id = Uuid::from_u128(0x99);
        Ok(vec![other])
    });
    let results = setup
        .build()
        .store_events(&from_b(), vec![incoming(1), incoming(2)])
        .await;
    assert_eq!(
        codes(&results),
        vec![
            Err(ErrorCode::EventOriginForbidden),
            Err(ErrorCode::EventOriginForbidden)
        ]
    );
}

#[tokio::test]
async fn a_failed_batch_read_or_store_fails_every_event_that_needed_it() {
    let mut not_member = incoming(1);
    not_member.origin_instance_domain = "http://evil.example.org".into();
    not_member.target.instance_url = "http://evil.example.org".into();

    let mut unread = Setup::on(A, "yellow_dot/student").item(student_item("asha"));
    unread
        .actions
        .expect_find_many()
        .times(1)
        .returning(|_| Err(CoreError::storage_unavailable()));
    let results = unread
        .build()
        .store_events(
            &from_b(),
            vec![incoming(1), not_member.clone(), incoming(2)],
        )
        .await;
    let unavailable = CoreError::storage_unavailable().code();
    assert_eq!(
        codes(&results),
        vec![
            Err(unavailable),
            Err(ErrorCode::EventOriginForbidden),
            Err(unavailable)
        ]
    );

    let mut unstored = batch_on_a("required");
    unstored
        .actions
        .expect_store_events()
        .times(1)
        .returning(|_| Err(CoreError::storage_unavailable()));
    let results = unstored
        .build()
        .store_events(&from_b(), vec![not_member, incoming(1), incoming(2)])
        .await;
    assert_eq!(
        codes(&results),
        vec![
            Err(ErrorCode::EventOriginForbidden),
            Err(unavailable),
            Err(unavailable)
        ]
    );
}
