//! Status update on the target instance (`POST /api/v1/action/update-status`,
//! reference-contract §6.3): only the target item's owner may move an action; the event
//! payload must satisfy `event_schema`; the count, the event and its delivery to the source
//! commit together.

use uuid::Uuid;

use super::{ActionService, action_not_found, eligibility};
use crate::error::{CoreError, ErrorCode};
use crate::model::{ActionEvent, ActionRecord, Caller, OutboxEntry};
use crate::ports::StatusChange;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    pub action_id: Uuid,
    pub action_status: String,
    pub remarks: Option<String>,
}

impl ActionService {
    pub async fn update_status(
        &self,
        caller: &Caller,
        update: StatusUpdate,
    ) -> Result<ActionRecord, CoreError> {
        crate::model::reject_nul("action_status", &update.action_status)?;
        if let Some(remarks) = &update.remarks {
            crate::model::reject_nul("remarks", remarks)?;
        }
        let action = self
            .deps
            .actions
            .find(update.action_id)
            .await?
            .ok_or_else(action_not_found)?;
        let user = caller.user_id.as_str();
        let is_target_owner = action.target_item_owner.as_deref() == Some(user)
            && self.deps.identity.is_self(&action.target.instance_url);
        if !is_target_owner {
            // The initiator knows the action exists; anyone else learns nothing. A source
            // owner id from another instance is not one of our users, whatever its value.
            if action.source_item_owner.as_deref() == Some(user)
                && self.deps.identity.is_self(&action.source.instance_url)
            {
                return Err(CoreError::Forbidden {
                    code: ErrorCode::NotOwner,
                    message: "Only the owner of the target item may update the action status"
                        .to_string(),
                });
            }
            return Err(action_not_found());
        }
        let catalog = self.deps.catalog.current();
        let interaction = eligibility::interaction(
            &catalog,
            &action.action_name,
            &action.source,
            &action.target,
        )
        .map_err(|message| CoreError::invalid(ErrorCode::InvalidActionEvent, message))?;
        let payload = eligibility::event_payload(
            interaction,
            &action.action_name,
            &update.action_status,
            update.remarks.as_deref(),
            &action.source,
            &action.target,
            &action.requirements_snapshot,
        );
        self.schemas.check_event(
            interaction,
            &payload,
            &update.action_status,
            ErrorCode::InvalidActionEvent,
        )?;

        let target_item = self
            .find_item(
                &action.target.network,
                &action.target.domain,
                &action.target.item_type,
                action.target.item_id,
            )
            .await?;
        let source_local = self.deps.identity.is_self(&action.source.instance_url);
        let source_item = if source_local {
            self.find_item(
                &action.source.network,
                &action.source.domain,
                &action.source.item_type,
                action.source.item_id,
            )
            .await?
        } else {
            None
        };
        let now = self.deps.clock.now();
        let event = ActionEvent {
            action_name: action.action_name.clone(),
            event_id: self.deps.ids.new_id(),
            origin_instance_domain: self.deps.identity.base_url.clone(),
            action_id: action.action_id,
            action_status: update.action_status.clone(),
            // Placeholder: the repository sets the count it assigns atomically.
            update_count: action.update_count.saturating_add(1),
            source: action.source.clone(),
            source_item_owner: action
                .source_item_owner
                .clone()
                .or_else(|| source_item.as_ref().map(|i| i.created_by.clone())),
            source_item_latitude: source_item.as_ref().and_then(|i| i.latitude),
            source_item_longitude: source_item.as_ref().and_then(|i| i.longitude),
            target: action.target.clone(),
            target_item_owner: action.target_item_owner.clone(),
            target_item_latitude: target_item.as_ref().and_then(|i| i.latitude),
            target_item_longitude: target_item.as_ref().and_then(|i| i.longitude),
            // The event's owners are the action's: so is where they live.
            locality: action.locality,
            event_payload: payload,
            remarks: update.remarks.clone(),
            created_at: now,
        };
        let outbox = (!source_local).then(|| {
            OutboxEntry::for_event(self.deps.ids.new_id(), &action.source.instance_url, &event)
        });
        let change = StatusChange {
            action_id: action.action_id,
            action_status: update.action_status,
            remarks: update.remarks,
            at: now,
            event,
            outbox,
        };
        let (record, _event) = self
            .deps
            .actions
            .update_status(&change)
            .await?
            .ok_or_else(action_not_found)?;
        Ok(record)
    }
}
