use serde_json::json;

use super::*;
use crate::services::actions::StatusUpdate;

fn update(status: &str) -> StatusUpdate {
    StatusUpdate {
        action_id: ACTION,
        action_status: status.into(),
        remarks: Some("See you Monday".into()),
    }
}

fn on_b_with(action: ActionRecord) -> Setup {
    let mut setup = Setup::on(B, "yellow_dot/tutor").item(tutor_item(B, "ravi"));
    setup
        .actions
        .expect_find()
        .returning(move |_| Ok(Some(action.clone())));
    setup
}

#[tokio::test]
async fn the_target_owner_updates_with_one_event_delivered_to_the_source() {
    let mut setup = on_b_with(action_on_b());
    setup
        .actions
        .expect_update_status()
        .withf(|change| {
            let e = &change.event;
            let outbox = change.outbox.as_ref().expect("outbox");
            change.action_status == "accepted"
                && change.remarks.as_deref() == Some("See you Monday")
                && e.event_payload
                    == json!({"subject": "math", "status": "accepted", "remark": "See you Monday"})
                && e.remarks.as_deref() == Some("See you Monday")
                && e.source_item_owner.as_deref() == Some("asha")
                && e.target_item_owner.as_deref() == Some("ravi")
                && e.locality == action_on_b().locality
                && outbox.destination == A
        })
        .times(1)
        .returning(|change| {
            let mut record = action_on_b();
            record.action_status = change.action_status.clone();
            record.update_count = 1;
            Ok(Some((record, change.event.clone())))
        });
    let record = setup
        .build()
        .update_status(&user("ravi"), update("accepted"))
        .await
        .expect("updated");
    assert_eq!(record.update_count, 1);
    assert_eq!(record.action_status, "accepted");
}

#[tokio::test]
async fn nobody_but_the_target_owner_updates() {
    // No update_status expectation: any write fails the test.
    let mut local = action_on_b();
    local.source.instance_url = B.into();
    local.locality.source = true;
    let service = on_b_with(local).build();
    assert_code(
        service
            .update_status(&user("asha"), update("accepted"))
            .await,
        ErrorCode::NotOwner,
    );
    assert_code(
        service
            .update_status(&user("mallory"), update("accepted"))
            .await,
        ErrorCode::ActionNotFound,
    );
}

#[tokio::test]
async fn a_user_named_like_the_remote_initiator_learns_nothing() {
    // "asha" initiated it on A; B's "asha" is someone else.
    let service = on_b_with(action_on_b()).build();
    assert_code(
        service
            .update_status(&user("asha"), update("accepted"))
            .await,
        ErrorCode::ActionNotFound,
    );
}

#[tokio::test]
async fn an_initiated_copy_cannot_be_moved_on_the_source_instance() {
    // On A, the copy names ravi as the target owner, but the target item lives on B.
    let mut setup = Setup::on(A, "yellow_dot/student").item(student_item("asha"));
    setup
        .actions
        .expect_find()
        .returning(|_| Ok(Some(action_on_b())));
    let service = setup.build();
    assert_code(
        service
            .update_status(&user("ravi"), update("accepted"))
            .await,
        ErrorCode::ActionNotFound,
    );
    assert_code(
        service
            .update_status(&user("asha"), update("accepted"))
            .await,
        ErrorCode::NotOwner,
    );
}

#[tokio::test]
async fn a_status_outside_the_event_schema_is_refused_with_its_violations() {
    let service = on_b_with(action_on_b()).build();
    let err = service.update_status(&user("ravi"), update("maybe")).await;
    let CoreError::Invalid {
        message,
        violations,
        ..
    } = assert_code(err, ErrorCode::InvalidActionEvent)
    else {
        panic!("not invalid");
    };
    assert!(message.starts_with("Invalid event payload: "), "{message}");
    assert_eq!(violations[0].path, "/status");
}

#[tokio::test]
async fn an_unknown_action_is_not_found() {
    let mut setup = Setup::on(B, "yellow_dot/tutor");
    setup.actions.expect_find().returning(|_| Ok(None));
    assert_code(
        setup
            .build()
            .update_status(&user("ravi"), update("accepted"))
            .await,
        ErrorCode::ActionNotFound,
    );
}

#[tokio::test]
async fn a_local_action_needs_no_delivery() {
    let mut action = action_on_b();
    action.source.instance_url = B.into();
    let mut setup = on_b_with(action);
    setup
        .actions
        .expect_update_status()
        .withf(|change| change.outbox.is_none())
        .times(1)
        .returning(|change| Ok(Some((action_on_b(), change.event.clone()))));
    setup
        .build()
        .update_status(&user("ravi"), update("rejected"))
        .await
        .expect("updated");
}
