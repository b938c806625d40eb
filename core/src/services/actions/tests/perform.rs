use serde_json::json;

use super::*;
use crate::ports::{Created, PeerAnswer, PeerError};
use crate::services::actions::{PerformOutcome, PerformRequest, SourceItemRef};

/// One change to a valid request, for table-driven rejections.
type Change = Box<dyn Fn(&mut PerformRequest)>;

fn request(key: Option<&str>) -> PerformRequest {
    PerformRequest {
        action_name: "connect".into(),
        source: SourceItemRef {
            network: "yellow_dot".into(),
            domain: "student".into(),
            item_type: "profile_1.0".into(),
            item_id: STUDENT_ITEM,
        },
        target: item_ref(&tutor_item(B, "ravi")),
        requirements_snapshot: requirements(),
        idempotency_key: key.map(str::to_string),
        request_id: "req-1".into(),
    }
}

fn on_a() -> Setup {
    Setup::on(A, "yellow_dot/student").item(student_item("asha"))
}

fn created_answer() -> PeerAnswer {
    PeerAnswer {
        status: 201,
        body: Some(json!({
            "action_id": ACTION, "action_name": "connect", "action_status": "created",
            "update_count": 0, "source_item_id": STUDENT_ITEM, "target_item_id": TUTOR_ITEM
        })),
    }
}

#[tokio::test]
async fn perform_forwards_to_the_listed_target_and_keeps_an_initiated_copy() {
    let mut setup = on_a();
    setup
        .transport
        .expect_perform_action()
        .withf(|peer, body, key, request_id| {
            peer == B
                && key == "client-key-1"
                && request_id == "req-1"
                && body["source_item_owner"] == "asha"
                && body["source_item"]["item_instance_url"] == A
                && body["target_item"]["item_instance_url"] == B
                && body["requirements_snapshot"] == requirements()
        })
        .times(1)
        .returning(|_, _, _, _| Ok(created_answer()));
    setup
        .actions
        .expect_record_initiated()
        .withf(|a| {
            a.action_id == ACTION
                && a.source_item_owner.as_deref() == Some("asha")
                && a.target_item_owner.is_none()
                && a.locality
                    == Locality {
                        source: true,
                        target: false,
                    }
                && a.action_status == "created"
                && a.source.instance_url == A
        })
        .times(1)
        .returning(|_| Ok(()));
    let outcome = setup
        .build()
        .perform(&user("asha"), request(Some("client-key-1")))
        .await
        .expect("performed");
    let PerformOutcome::Created(record) = outcome else {
        panic!("not created: {outcome:?}");
    };
    assert_eq!(
        record.performed_json(),
        created_answer().body.expect("body")
    );
}

#[tokio::test]
async fn perform_generates_an_idempotency_key_when_the_client_sends_none() {
    let mut setup = on_a();
    setup
        .transport
        .expect_perform_action()
        .withf(|_, _, key, _| Uuid::parse_str(key).is_ok())
        .times(1)
        .returning(|_, _, _, _| Ok(created_answer()));
    setup
        .actions
        .expect_record_initiated()
        .returning(|_| Ok(()));
    setup
        .build()
        .perform(&user("asha"), request(None))
        .await
        .expect("performed");
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_a_client_error() {
    let err = on_a()
        .build()
        .perform(&user("asha"), request(Some("has space")))
        .await;
    assert_code(err, ErrorCode::InvalidInput);
}

#[tokio::test]
async fn only_the_source_items_owner_performs_and_others_learn_nothing() {
    // The transport mock has no expectation: any call fails the test.
    let service = on_a().build();
    let stranger = service.perform(&user("mallory"), request(None)).await;
    let err = assert_code(stranger, ErrorCode::SourceItemNotFound);
    assert_eq!(
        err.to_string(),
        "SOURCE_ITEM_NOT_FOUND: Source item does not exist on this instance"
    );
    let mut missing = request(None);
    missing.source.item_id = Uuid::from_u128(0xdead);
    assert_code(
        service.perform(&user("asha"), missing).await,
        ErrorCode::SourceItemNotFound,
    );
}

#[tokio::test]
async fn an_unserved_source_binding_is_refused() {
    let mut req = request(None);
    req.source.domain = "coaching_center".into();
    let result = on_a().build().perform(&user("asha"), req).await;
    assert!(
        matches!(result, Err(CoreError::UnservedBinding(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn eligibility_is_checked_before_anything_is_sent() {
    let service = on_a().build();
    let cases: Vec<(Change, ErrorCode, &str)> = vec![
        (
            Box::new(|r| r.target.network = "green_dot".into()),
            ErrorCode::InvalidActionRequest,
            "Network \"green_dot\" is not configured.",
        ),
        (
            Box::new(|r| r.target.domain = "counsellor".into()),
            ErrorCode::InvalidTargetItem,
            "Domain \"counsellor\" is not defined for network \"yellow_dot\".",
        ),
        (
            Box::new(|r| r.target.instance_url = "http://evil.example.org".into()),
            ErrorCode::InvalidTargetInstance,
            "Target item instance URL is not allowed for this network/domain",
        ),
        (
            Box::new(|r| r.action_name = "hire".into()),
            ErrorCode::InvalidActionRequest,
            "Action \"hire\" is not defined for network \"yellow_dot\".",
        ),
        (
            Box::new(|r| r.target.item_type = "profile_2.0".into()),
            ErrorCode::InvalidActionRequest,
            "Action \"connect\" is not allowed from \"yellow_dot/student/profile_1.0\" to \"yellow_dot/tutor/profile_2.0\".",
        ),
        (
            Box::new(|r| r.requirements_snapshot = json!({"subject": "math"})),
            ErrorCode::InvalidActionRequest,
            "Invalid action requirements: must have required property 'goal'",
        ),
    ];
    for (change, code, message) in cases {
        let mut req = request(None);
        change(&mut req);
        match service.perform(&user("asha"), req).await {
            Err(CoreError::Invalid {
                code: got,
                message: got_message,
                ..
            }) => {
                assert_eq!(got, code);
                assert_eq!(got_message, message);
            }
            other => panic!("expected {code}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn requirement_violations_are_listed() {
    let mut req = request(None);
    req.requirements_snapshot = json!({"goal": 3, "extra": true});
    let err = on_a().build().perform(&user("asha"), req).await;
    let CoreError::Invalid { violations, .. } = assert_code(err, ErrorCode::InvalidActionRequest)
    else {
        panic!("not invalid");
    };
    assert!(violations.len() >= 3, "{violations:?}");
}

#[tokio::test]
async fn a_refusal_of_the_target_is_relayed_verbatim_and_nothing_is_kept() {
    let refusal = json!({"error": "TARGET_ITEM_NOT_FOUND", "message": "Target item does not exist on this instance"});
    let mut setup = on_a();
    let body = refusal.clone();
    setup
        .transport
        .expect_perform_action()
        .returning(move |_, _, _, _| {
            Ok(PeerAnswer {
                status: 404,
                body: Some(body.clone()),
            })
        });
    let outcome = setup
        .build()
        .perform(&user("asha"), request(None))
        .await
        .expect("relayed");
    assert_eq!(
        outcome,
        PerformOutcome::Relayed {
            status: 404,
            body: refusal
        }
    );
}

#[tokio::test]
async fn a_failing_or_unreachable_target_is_a_502_without_its_body() {
    let answers: Vec<Result<PeerAnswer, PeerError>> = vec![
        Ok(PeerAnswer {
            status: 500,
            body: Some(json!({"statusCode": 500, "message": "Failed query: insert into ..."})),
        }),
        Ok(PeerAnswer {
            status: 400,
            body: None,
        }),
        Ok(PeerAnswer {
            status: 201,
            body: Some(json!({"action_id": "x"})),
        }),
        Err(PeerError::Timeout),
        Err(PeerError::Unreachable("connection refused".into())),
    ];
    for answer in answers {
        let mut setup = on_a();
        let answer_copy = answer.clone();
        setup
            .transport
            .expect_perform_action()
            .returning(move |_, _, _, _| answer_copy.clone());
        let err = setup.build().perform(&user("asha"), request(None)).await;
        let err = assert_code(err, ErrorCode::TargetInstanceUnavailable);
        assert!(matches!(err, CoreError::Upstream { .. }), "{answer:?}");
        assert!(!err.to_string().contains("Failed query"));
    }
}

#[tokio::test]
async fn an_answer_for_other_items_is_not_believed() {
    let mut setup = on_a();
    setup
        .transport
        .expect_perform_action()
        .returning(|_, _, _, _| {
            let mut answer = created_answer();
            if let Some(body) = answer.body.as_mut() {
                body["target_item_id"] = json!(Uuid::from_u128(0xbad));
            }
            Ok(answer)
        });
    let err = setup.build().perform(&user("asha"), request(None)).await;
    assert_code(err, ErrorCode::TargetInstanceUnavailable);
}

#[tokio::test]
async fn a_cross_network_action_goes_to_the_target_networks_instance() {
    let mut setup = on_a();
    setup
        .transport
        .expect_perform_action()
        .withf(|peer, body, _, _| peer == C && body["target_item"]["item_network"] == "blue_dot")
        .times(1)
        .returning(|_, _, _, _| {
            Ok(PeerAnswer {
                status: 201,
                body: Some(json!({
                    "action_id": ACTION, "action_name": "apply", "action_status": "created",
                    "update_count": 0, "source_item_id": STUDENT_ITEM, "target_item_id": PROVIDER_ITEM
                })),
            })
        });
    setup
        .actions
        .expect_record_initiated()
        .returning(|_| Ok(()));
    let mut req = request(None);
    req.action_name = "apply".into();
    req.target = item_ref(&item("provider", "job_1.0", PROVIDER_ITEM, C, "pat"));
    req.requirements_snapshot = json!({"job_id": "j1"});
    let outcome = setup
        .build()
        .perform(&user("asha"), req)
        .await
        .expect("performed");
    assert!(matches!(outcome, PerformOutcome::Created(_)));
}

#[tokio::test]
async fn a_target_on_this_instance_is_performed_locally() {
    let mut setup = Setup::on(A, "yellow_dot/student,yellow_dot/tutor")
        .item(student_item("asha"))
        .item(tutor_item(A, "ravi"));
    setup
        .actions
        .expect_create()
        .withf(|new| {
            let both = Locality {
                source: true,
                target: true,
            };
            new.outbox.is_none()
                && new.action.locality == both
                && new.event.locality == both
                && new.action.source_item_owner.as_deref() == Some("asha")
                && new.action.target_item_owner.as_deref() == Some("ravi")
                && new
                    .idempotency
                    .as_ref()
                    .is_some_and(|k| k.key == "k" && k.source_instance == A)
        })
        .times(1)
        .returning(|new| Ok(Created::New(new.action.clone())));
    let mut req = request(Some("k"));
    req.target = item_ref(&tutor_item(A, "ravi"));
    let outcome = setup
        .build()
        .perform(&user("asha"), req)
        .await
        .expect("performed");
    assert!(matches!(outcome, PerformOutcome::Created(_)));
}

#[tokio::test]
async fn a_failed_initiated_copy_does_not_fail_a_performed_action() {
    let mut setup = on_a();
    setup
        .transport
        .expect_perform_action()
        .withf(|peer, _, _, _| peer == B)
        .returning(|_, _, _, _| Ok(created_answer()));
    setup
        .actions
        .expect_record_initiated()
        .returning(|_| Err(CoreError::storage_unavailable()));
    let outcome = setup.build().perform(&user("asha"), request(None)).await;
    assert!(matches!(outcome, Ok(PerformOutcome::Created(_))));
}
