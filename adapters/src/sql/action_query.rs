//! `ActionQuery` as a SQL condition over `actions` or `action_events` (reference-contract
//! §6.6): the given filters ANDed with the owner visibility of the role.

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
        update_count: Some(Column::UpdateCount),
    }
}

/// Rows of `query.user` in `query.role`, with every given filter.
pub(super) fn visible<C: ColumnTrait>(query: &ActionQuery, columns: &QueryColumns<C>) -> Condition {
    let user = query.user.as_str();
    let mut condition = Condition::all();
    condition = match query.role {
        OwnershipRole::Initiated => condition.add(columns.source_item_owner.eq(user)),
        OwnershipRole::Received => condition.add(columns.target_item_owner.eq(user)),
        OwnershipRole::All => condition.add(
            Condition::any()
                .add(columns.source_item_owner.eq(user))
                .add(columns.target_item_owner.eq(user)),
        ),
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
