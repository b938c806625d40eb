//! The `outbox` table (see the migration) and its mapping to `dpg_core::model::OutboxEntry`.

use dpg_core::error::CoreError;
use dpg_core::model::{OutboxEntry, OutboxState};
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;

use super::action::{from_count, to_count};
use super::item::to_millis;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub destination: String,
    #[sea_orm(column_type = "Text")]
    pub action_name: String,
    pub action_id: Uuid,
    pub update_count: i32,
    #[sea_orm(column_type = "JsonBinary")]
    pub body: Json,
    #[sea_orm(column_type = "Text")]
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    pub lease_until: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn into_entry(self) -> Result<OutboxEntry, CoreError> {
        let state = parse_state(&self.state).ok_or_else(|| {
            tracing::error!(id = %self.id, state = %self.state, "outbox row with an unknown state");
            CoreError::internal("outbox row with an unknown state")
        })?;
        Ok(OutboxEntry {
            id: self.id,
            destination: self.destination,
            action_name: self.action_name,
            action_id: self.action_id,
            update_count: from_count(self.update_count),
            body: self.body,
            state,
            attempts: from_count(self.attempts),
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error,
            created_at: self.created_at,
            finished_at: self.finished_at,
        })
    }
}

fn parse_state(state: &str) -> Option<OutboxState> {
    [
        OutboxState::Pending,
        OutboxState::Delivered,
        OutboxState::Dead,
    ]
    .into_iter()
    .find(|s| s.as_str() == state)
}

/// A whole row for `entry`, not leased, with millisecond timestamps.
pub fn active_model(entry: &OutboxEntry) -> ActiveModel {
    ActiveModel {
        id: Set(entry.id),
        destination: Set(entry.destination.clone()),
        action_name: Set(entry.action_name.clone()),
        action_id: Set(entry.action_id),
        update_count: Set(to_count(entry.update_count)),
        body: Set(entry.body.clone()),
        state: Set(entry.state.as_str().to_string()),
        attempts: Set(to_count(entry.attempts)),
        next_attempt_at: Set(to_millis(entry.next_attempt_at)),
        last_error: Set(entry.last_error.clone()),
        created_at: Set(to_millis(entry.created_at)),
        finished_at: Set(entry.finished_at.map(to_millis)),
        lease_until: Set(None),
    }
}

/// Many entries over a result of [`Model`]s, failing on the first unreadable one.
pub fn into_entries(rows: Vec<Model>) -> Result<Vec<OutboxEntry>, CoreError> {
    rows.into_iter().map(Model::into_entry).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_as_written() {
        for state in [
            OutboxState::Pending,
            OutboxState::Delivered,
            OutboxState::Dead,
        ] {
            assert_eq!(parse_state(state.as_str()), Some(state));
        }
        assert_eq!(parse_state("Pending"), None);
        assert_eq!(parse_state(""), None);
    }
}
