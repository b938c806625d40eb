//! `ActionQuery` as a SQL condition over `actions` or `action_events` (reference-contract
//! §6.6): the given filters ANDed with the owner visibility of the role. An owner column
//! counts only where its item lives on this instance (`source_is_local`, `target_is_local`):
//! the other side's owner is a user id of another instance.

use dpg_core::model::{ActionQuery, OwnershipRole};
use sea_orm::{ColumnTrait, Condition};

use super::entity::{action, action_event};

/// The columns a query reads, so that one function serves both tables.
pub(super) struct QueryColumns<C> {
    action_id: C,
    action_name: C,
    action_status: C,
    source_item_id: C,
    target_item_id: C,
    source_item_owner: C,
    target_item_owner: C,
    source_is_local: C,
    target_is_local: C,
    /// Events only.
    update_count: Option<C>,
}

pub(super) fn action_columns() -> QueryColumns<action::Column> {
    use action::Column;
    QueryColumns {
        action_id: Column::ActionId,
        action_name: Column::ActionName,
        action_status: Column::ActionStatus,
        source_item_id: Column::SourceItemId,
        target_item_id: Column::TargetItemId,
        source_item_owner: Column::SourceItemOwner,
        target_item_owner: Column::TargetItemOwner,
        source_is_local: Column::SourceIsLocal,
        target_is_local: Column::TargetIsLocal,
        update_count: None,
    }
}

pub(super) fn event_columns() -> QueryColumns<action_event::Column> {
    use action_event::Column;
    QueryColumns {
        action_id: Column::ActionId,
        action_name: Column::ActionName,
        action_status: Column::ActionStatus,
        source_item_id: Column::SourceItemId,
        target_item_id: Column::TargetItemId,
        source_item_owner: Column::SourceItemOwner,
        target_item_owner: Column::TargetItemOwner,
        source_is_local: Column::SourceIsLocal,
        target_is_local: Column::TargetIsLocal,
        update_count: Some(Column::UpdateCount),
    }
}

/// Rows of `query.user` in `query.role`, with every given filter.
pub(super) fn visible<C: ColumnTrait>(query: &ActionQuery, columns: &QueryColumns<C>) -> Condition {
    let user = query.user.as_str();
    let initiated = Condition::all()
        .add(columns.source_item_owner.eq(user))
        .add(columns.source_is_local.eq(true));
    let received = Condition::all()
        .add(columns.target_item_owner.eq(user))
        .add(columns.target_is_local.eq(true));
    let mut condition = Condition::all();
    condition = match query.role {
        OwnershipRole::Initiated => condition.add(initiated),
        OwnershipRole::Received => condition.add(received),
        OwnershipRole::All => condition.add(Condition::any().add(initiated).add(received)),
    };
    if let Some(item_id) = query.item_id {
        condition = match query.role {
            OwnershipRole::Initiated => condition.add(columns.source_item_id.eq(item_id)),
            OwnershipRole::Received => condition.add(columns.target_item_id.eq(item_id)),
            OwnershipRole::All => condition.add(
                Condition::any()
                    .add(columns.source_item_id.eq(item_id))
                    .add(columns.target_item_id.eq(item_id)),
            ),
        };
    }
    if let Some(action_id) = query.action_id {
        condition = condition.add(columns.action_id.eq(action_id));
    }
    if let Some(name) = &query.action_name {
        condition = condition.add(columns.action_name.eq(name.as_str()));
    }
    if let Some(status) = &query.action_status {
        condition = condition.add(columns.action_status.eq(status.as_str()));
    }
    if let (Some(column), Some(count)) = (columns.update_count, query.update_count) {
        condition = condition.add(column.eq(action::to_count(count)));
    }
    condition
}

#[cfg(test)]
mod tests {
    use dpg_core::model::ActionQuery;
    use sea_orm::{DbBackend, EntityTrait, QueryFilter, QueryTrait};

    use super::*;

    fn query(role: OwnershipRole) -> ActionQuery {
        ActionQuery {
            user: "u1".into(),
            role,
            action_id: None,
            action_name: None,
            action_status: None,
            item_id: None,
            update_count: None,
            limit: 20,
            offset: 0,
        }
    }

    fn where_clause(sql: &str) -> &str {
        sql.split_once(" WHERE ").map_or("", |(_, w)| w)
    }

    #[test]
    fn an_owner_counts_only_with_its_side_local() {
        let initiated =
            r#""actions"."source_item_owner" = 'u1' AND "actions"."source_is_local" = TRUE"#;
        let received =
            r#""actions"."target_item_owner" = 'u1' AND "actions"."target_is_local" = TRUE"#;
        for (role, want) in [
            (OwnershipRole::Initiated, initiated.to_string()),
            (OwnershipRole::Received, received.to_string()),
            (OwnershipRole::All, format!("({initiated}) OR ({received})")),
        ] {
            let sql = action::Entity::find()
                .filter(visible(&query(role), &action_columns()))
                .build(DbBackend::Postgres)
                .to_string();
            assert_eq!(where_clause(&sql), want, "{role:?}");
        }
        let events = action_event::Entity::find()
            .filter(visible(&query(OwnershipRole::Initiated), &event_columns()))
            .build(DbBackend::Sqlite)
            .to_string();
        assert_eq!(
            where_clause(&events),
            r#""action_events"."source_item_owner" = 'u1' AND "action_events"."source_is_local" = TRUE"#
        );
    }
}
