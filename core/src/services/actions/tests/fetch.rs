use super::*;
use crate::model::{Locality, OwnershipRole, Page};
use crate::services::actions::ActionFilter;

#[tokio::test]
async fn users_see_their_own_rows_with_their_roles() {
    let mut setup = Setup::on(B, "yellow_dot/tutor");
    setup
        .actions
        .expect_fetch_actions()
        .withf(|q| {
            q.user == "ravi"
                && q.role == OwnershipRole::Received
                && q.limit == 20
                && q.offset == 0
                && q.item_id == Some(TUTOR_ITEM)
        })
        .times(1)
        .returning(|_| {
            Ok(Page {
                total: 1,
                rows: vec![action_on_b()],
            })
        });
    let page = setup
        .build()
        .fetch_actions(
            &user("ravi"),
            ActionFilter {
                role: OwnershipRole::Received,
                item_id: Some(TUTOR_ITEM),
                ..ActionFilter::default()
            },
        )
        .await
        .expect("page");
    assert_eq!(page.total, 1);
    assert_eq!(
        page.rows[0]["ownership_roles"],
        serde_json::json!(["received"])
    );
}

#[tokio::test]
async fn events_are_scoped_to_the_caller_and_filtered_by_count() {
    let mut setup = Setup::on(A, "yellow_dot/student");
    setup
        .actions
        .expect_fetch_events()
        .withf(|q| q.user == "asha" && q.update_count == Some(1) && q.limit == 5 && q.offset == 10)
        .times(1)
        .returning(|_| {
            Ok(Page {
                total: 11,
                rows: vec![mirrored_on_a()],
            })
        });
    let page = setup
        .build()
        .fetch_events(
            &user("asha"),
            ActionFilter {
                update_count: Some(1),
                limit: Some(5),
                offset: Some(10),
                ..ActionFilter::default()
            },
        )
        .await
        .expect("page");
    assert_eq!((page.total, page.limit, page.offset), (11, 5, 10));
    assert_eq!(
        page.rows[0]["ownership_roles"],
        serde_json::json!(["initiated"])
    );
}

/// A's copy of B's event: the source item lives on A, the target item on B.
fn mirrored_on_a() -> crate::model::ActionEvent {
    crate::model::ActionEvent {
        locality: Locality {
            source: true,
            target: false,
        },
        ..event_of(&action_on_b(), "accepted", 1)
    }
}

#[tokio::test]
async fn an_owner_id_of_another_instance_gives_no_role() {
    // Both columns say "u1"; on B only the target item is B's, so B's u1 only received it.
    let mut both_u1 = action_on_b();
    both_u1.source_item_owner = Some("u1".into());
    both_u1.target_item_owner = Some("u1".into());
    let mut event = event_of(&both_u1, "accepted", 1);
    event.locality = Locality {
        source: false,
        target: true,
    };
    let mut setup = Setup::on(B, "yellow_dot/tutor");
    let row = both_u1.clone();
    setup.actions.expect_fetch_actions().returning(move |_| {
        Ok(Page {
            total: 1,
            rows: vec![row.clone()],
        })
    });
    setup.actions.expect_fetch_events().returning(move |_| {
        Ok(Page {
            total: 1,
            rows: vec![event.clone()],
        })
    });
    let service = setup.build();
    let actions = service
        .fetch_actions(&user("u1"), ActionFilter::default())
        .await
        .expect("page");
    assert_eq!(
        actions.rows[0]["ownership_roles"],
        serde_json::json!(["received"])
    );
    assert_eq!(actions.rows[0]["source_item_owner"], "u1");
    let events = service
        .fetch_events(&user("u1"), ActionFilter::default())
        .await
        .expect("page");
    assert_eq!(
        events.rows[0]["ownership_roles"],
        serde_json::json!(["received"])
    );
}

#[tokio::test]
async fn paging_is_bounded() {
    let service = Setup::on(A, "yellow_dot/student").build();
    for (limit, offset) in [(Some(0), None), (Some(101), None), (None, Some(10_001))] {
        let filter = ActionFilter {
            limit,
            offset,
            ..ActionFilter::default()
        };
        assert_code(
            service.fetch_actions(&user("asha"), filter.clone()).await,
            ErrorCode::InvalidPagination,
        );
        assert_code(
            service.fetch_events(&user("asha"), filter).await,
            ErrorCode::InvalidPagination,
        );
    }
}
