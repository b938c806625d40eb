use serde_json::json;

use super::*;
use crate::ports::Created;
use crate::services::actions::{ReceiveRequest, Received};

fn on_b() -> Setup {
    Setup::on(B, "yellow_dot/tutor").item(tutor_item(B, "ravi"))
}

fn request(key: Option<&str>) -> ReceiveRequest {
    ReceiveRequest {
        action_name: "connect".into(),
        source: item_ref(&student_item("asha")),
        target: item_ref(&tutor_item(B, "ravi")),
        source_item_owner: Some("asha".into()),
        requirements_snapshot: requirements(),
        idempotency_key: key.map(str::to_string),
    }
}

fn from_a() -> PeerCaller {
    signed_by("a-1", "yellow_dot", A)
}

#[tokio::test]
async fn the_source_instance_creates_an_action_with_its_initial_event_and_delivery() {
    let mut setup = on_b();
    setup
        .actions
        .expect_create()
        .withf(|new| {
            let a = &new.action;
            let e = &new.event;
            let outbox = new.outbox.as_ref().expect("outbox to the source");
            let key = new.idempotency.as_ref().expect("key");
            let remote_source = Locality {
                source: false,
                target: true,
            };
            a.action_status == "created"
                && a.locality == remote_source
                && e.locality == remote_source
                && a.update_count == 0
                && a.source_item_owner.as_deref() == Some("asha")
                && a.target_item_owner.as_deref() == Some("ravi")
                && e.action_id == a.action_id
                && e.update_count == 0
                && e.origin_instance_domain == B
                && e.event_payload
                    == json!({"subject": "math", "status": "created", "remark": "Action status set to created"})
                && e.target_item_latitude == Some(12.5)
                && outbox.destination == A
                && outbox.body == e.mirror_body()
                && key.source_instance == A
                && key.key == "k1"
                && key.expires_at == now() + chrono::Duration::hours(24)
        })
        .times(1)
        .returning(|new| Ok(Created::New(new.action.clone())));
    let received = setup
        .build()
        .receive(&from_a(), request(Some("k1")))
        .await
        .expect("created");
    assert!(matches!(received, Received::Created(_)));
}

#[tokio::test]
async fn a_repeated_key_answers_the_action_it_created() {
    let mut setup = on_b();
    setup
        .actions
        .expect_create()
        .returning(|_| Ok(Created::Replayed(action_on_b())));
    let received = setup
        .build()
        .receive(&from_a(), request(Some("k1")))
        .await
        .expect("replayed");
    assert_eq!(received, Received::Replayed(action_on_b()));
}

#[tokio::test]
async fn a_key_reused_for_another_action_is_a_conflict() {
    let mut setup = on_b();
    setup.actions.expect_create().returning(|_| {
        let mut other = action_on_b();
        other.source.item_id = Uuid::from_u128(0x77);
        Ok(Created::Replayed(other))
    });
    let result = setup.build().receive(&from_a(), request(Some("k1"))).await;
    assert_code(result, ErrorCode::IdempotencyKeyReused);
}

#[tokio::test]
async fn only_the_source_instance_may_perform_for_its_items() {
    // No create expectation: storing anything fails the test.
    let service = on_b().build();
    let impostor = signed_by("c-1", "blue_dot", C);
    assert_code(
        service.receive(&impostor, request(None)).await,
        ErrorCode::SignerNotInstance,
    );
    let b_itself = signed_by("b-1", "yellow_dot", B);
    assert_code(
        service.receive(&b_itself, request(None)).await,
        ErrorCode::SignerNotInstance,
    );
}

#[tokio::test]
async fn unsigned_peers_are_heard_only_where_the_network_allows_it() {
    let required = on_b().build();
    assert_code(
        required.receive(&PeerCaller::Unsigned, request(None)).await,
        ErrorCode::SignatureRequired,
    );
    let mut permissive = on_b().mode("permissive");
    permissive
        .actions
        .expect_create()
        .times(1)
        .returning(|new| Ok(Created::New(new.action.clone())));
    permissive
        .build()
        .receive(&PeerCaller::Unsigned, request(None))
        .await
        .expect("permissive accepts unsigned");
}

#[tokio::test]
async fn a_source_instance_outside_the_source_domain_is_refused() {
    let mut req = request(None);
    req.source.instance_url = "http://10.0.0.1".into();
    let service = on_b().mode("permissive").build();
    assert_code(
        service.receive(&PeerCaller::Unsigned, req).await,
        ErrorCode::EventOriginForbidden,
    );
}

#[tokio::test]
async fn the_target_must_be_an_item_of_this_instance() {
    let service = on_b().build();
    let mut elsewhere = request(None);
    elsewhere.target.instance_url = A.into();
    assert_code(
        service.receive(&from_a(), elsewhere).await,
        ErrorCode::InvalidTargetInstance,
    );
    let mut missing = request(None);
    missing.target.item_id = Uuid::from_u128(0xdead);
    assert_code(
        service.receive(&from_a(), missing).await,
        ErrorCode::TargetItemNotFound,
    );
    let mut unserved = request(None);
    unserved.target.domain = "student".into();
    assert!(matches!(
        service.receive(&from_a(), unserved).await,
        Err(CoreError::UnservedBinding(_))
    ));
}

#[tokio::test]
async fn eligibility_and_requirements_are_checked_again() {
    let service = on_b().build();
    let mut bad = request(None);
    bad.requirements_snapshot = json!({"subject": "math"});
    assert_code(
        service.receive(&from_a(), bad).await,
        ErrorCode::InvalidActionRequest,
    );
    let mut not_allowed = request(None);
    not_allowed.source.item_type = "profile_9.9".into();
    assert_code(
        service.receive(&from_a(), not_allowed).await,
        ErrorCode::InvalidActionRequest,
    );
}
