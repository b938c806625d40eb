//! Event store on the source instance (`POST /api/v1/event/store`, reference-contract
//! §1.10, §6.4): a mirrored event is accepted only from the instance that owns the action's
//! target item, only for a source item that lives here, and only once per
//! (`action_name`, `origin_instance_domain`, `action_id`, `update_count`), in any order.

use serde_json::Value;
use uuid::Uuid;

use super::{ActionService, eligibility, source_item_not_found};
use crate::error::{CoreError, ErrorCode};
use crate::model::{ActionEvent, ItemRef, Locality, normalize_instance_url};
use crate::services::PeerCaller;

/// The body of `POST /api/v1/event/store`.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingEvent {
    pub origin_instance_domain: String,
    pub action_name: String,
    pub action_id: Uuid,
    pub action_status: String,
    pub update_count: u32,
    pub source: ItemRef,
    pub target: ItemRef,
    pub source_item_owner: Option<String>,
    pub target_item_owner: Option<String>,
    pub source_item_latitude: Option<f64>,
    pub source_item_longitude: Option<f64>,
    pub target_item_latitude: Option<f64>,
    pub target_item_longitude: Option<f64>,
    pub event_payload: Value,
    pub remarks: Option<String>,
}

fn invalid(message: impl Into<String>) -> CoreError {
    CoreError::invalid(ErrorCode::InvalidEventRequest, message)
}

fn origin_forbidden(message: impl Into<String>) -> CoreError {
    CoreError::Forbidden {
        code: ErrorCode::EventOriginForbidden,
        message: message.into(),
    }
}

impl ActionService {
    /// Stores a mirrored event: `Ok((event, Some(id)))` when stored now, `Ok((event, None))`
    /// for a duplicate.
    pub async fn store_event(
        &self,
        caller: &PeerCaller,
        incoming: IncomingEvent,
    ) -> Result<(ActionEvent, Option<Uuid>), CoreError> {
        let IncomingEvent {
            origin_instance_domain: origin,
            source,
            target,
            ..
        } = &incoming;
        self.ensure_served(&source.network, &source.domain)?;
        let catalog = self.deps.catalog.current();
        let doc = catalog
            .network(&target.network)
            .map_err(|_| invalid(format!("Network \"{}\" is not configured.", target.network)))?;
        // Events come from the target item's instance, and from a member serving its domain.
        let origin_url = normalize_instance_url(origin);
        if origin_url != normalize_instance_url(&target.instance_url) {
            return Err(origin_forbidden(
                "Events are accepted only from the instance of the target item",
            ));
        }
        let member = doc.instances.iter().any(|i| {
            i.domain_name == target.domain && normalize_instance_url(&i.instance_url) == origin_url
        });
        if !member {
            return Err(origin_forbidden(format!(
                "Instance \"{origin}\" does not serve \"{}/{}\"",
                target.network, target.domain
            )));
        }
        match caller {
            PeerCaller::Unsigned => {
                // Both networks' modes must allow unsigned peers.
                self.deps.peer_trust.authorize(caller, &source.network)?;
                self.deps.peer_trust.authorize(caller, &target.network)?;
            }
            PeerCaller::Signed { .. } => self.deps.peer_trust.require_instance(
                caller,
                &target.network,
                &target.instance_url,
            )?,
        }
        if !self.deps.identity.is_self(&source.instance_url) {
            return Err(invalid("The source item does not live on this instance"));
        }
        // Both reads at once: a backlog arrives one event after another.
        let (source_item, stored) = futures::try_join!(
            self.find_item(
                &source.network,
                &source.domain,
                &source.item_type,
                source.item_id,
            ),
            self.deps.actions.find(incoming.action_id),
        )?;
        let source_item = source_item.ok_or_else(source_item_not_found)?;
        // A copy of the action kept here pins its parties: no other action's events attach.
        if let Some(stored) = stored {
            let same = stored.action_name == incoming.action_name
                && stored.source.item_id == source.item_id
                && stored.target.item_id == target.item_id
                && normalize_instance_url(&stored.target.instance_url) == origin_url;
            if !same {
                return Err(origin_forbidden(
                    "The event does not belong to the action stored here",
                ));
            }
        }
        let interaction = eligibility::interaction(&catalog, &incoming.action_name, source, target)
            .map_err(invalid)?;
        if !incoming.event_payload.is_object() {
            return Err(invalid("event_payload must be an object"));
        }
        self.schemas.check_event(
            interaction,
            &incoming.event_payload,
            &incoming.action_status,
            ErrorCode::InvalidEventRequest,
        )?;

        let event = ActionEvent {
            action_name: incoming.action_name,
            event_id: self.deps.ids.new_id(),
            origin_instance_domain: incoming.origin_instance_domain,
            action_id: incoming.action_id,
            action_status: incoming.action_status,
            update_count: incoming.update_count,
            source: incoming.source,
            // Our own item says who owns it; the peer's claim is not needed.
            source_item_owner: Some(source_item.created_by),
            source_item_latitude: source_item.latitude,
            source_item_longitude: source_item.longitude,
            target: incoming.target,
            target_item_owner: incoming.target_item_owner,
            target_item_latitude: incoming.target_item_latitude,
            target_item_longitude: incoming.target_item_longitude,
            // The source item was found here above. The target owner is the origin's user id,
            // whatever URL the origin gives its item: it never names a user of this instance.
            locality: Locality {
                source: true,
                target: false,
            },
            event_payload: incoming.event_payload,
            remarks: incoming.remarks,
            created_at: self.deps.clock.now(),
        };
        let stored = self.deps.actions.store_event(&event).await?;
        Ok((event, stored))
    }
}
