//! Target side of a perform (`POST /api/v1/network/action/perform`, reference-contract
//! §6.2): the caller must be the source instance; eligibility and requirements are checked
//! again; owners come from verified data; a retried request (same source instance and
//! `Idempotency-Key`) answers the action it created.

use serde_json::Value;

use super::{ActionService, eligibility, source_item_not_found, target_item_not_found};
use crate::error::{CoreError, ErrorCode};
use crate::model::{
    ActionEvent, ActionRecord, ItemRef, Locality, OutboxEntry, normalize_instance_url,
};
use crate::ports::{Created, IdempotencyKey, NewAction};
use crate::services::PeerCaller;

#[derive(Debug, Clone, PartialEq)]
pub struct ReceiveRequest {
    pub action_name: String,
    pub source: ItemRef,
    pub target: ItemRef,
    /// As claimed by the source instance (trusted only once it is authenticated).
    pub source_item_owner: Option<String>,
    pub requirements_snapshot: Value,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Created(ActionRecord),
    /// The idempotency key was used before: the action it created.
    Replayed(ActionRecord),
}

impl Received {
    pub fn into_record(self) -> ActionRecord {
        match self {
            Received::Created(r) | Received::Replayed(r) => r,
        }
    }
}

fn invalid(code: ErrorCode, message: impl Into<String>) -> CoreError {
    CoreError::invalid(code, message)
}

impl ActionService {
    /// A perform sent by a peer.
    pub async fn receive(
        &self,
        caller: &PeerCaller,
        request: ReceiveRequest,
    ) -> Result<Received, CoreError> {
        self.ensure_served(&request.target.network, &request.target.domain)?;
        if !self.deps.identity.is_self(&request.target.instance_url) {
            return Err(invalid(
                ErrorCode::InvalidTargetInstance,
                "Actions must be created on the target item instance",
            ));
        }
        self.authorize_source(caller, &request.source, &request.target.network)?;
        self.create_action(request).await
    }

    /// A perform whose source is this instance (already checked by the source side).
    pub(super) async fn receive_local(
        &self,
        request: ReceiveRequest,
    ) -> Result<Received, CoreError> {
        self.ensure_served(&request.target.network, &request.target.domain)?;
        self.create_action(request).await
    }

    /// The caller must be the instance the body names as the source, and that instance must
    /// serve the source domain (the outbox will deliver events to it).
    fn authorize_source(
        &self,
        caller: &PeerCaller,
        source: &ItemRef,
        target_network: &str,
    ) -> Result<(), CoreError> {
        let catalog = self.deps.catalog.current();
        let doc = catalog.network(&source.network).map_err(|_| {
            invalid(
                ErrorCode::InvalidActionRequest,
                format!("Network \"{}\" is not configured.", source.network),
            )
        })?;
        let claimed = normalize_instance_url(&source.instance_url);
        let listed = doc.instances.iter().any(|i| {
            i.domain_name == source.domain && normalize_instance_url(&i.instance_url) == claimed
        });
        if !listed {
            return Err(CoreError::Forbidden {
                code: ErrorCode::EventOriginForbidden,
                message: format!(
                    "Instance \"{}\" does not serve \"{}/{}\"",
                    source.instance_url, source.network, source.domain
                ),
            });
        }
        match caller {
            // The target network's mode decides whether unsigned peers are heard at all.
            PeerCaller::Unsigned => self.deps.peer_trust.authorize(caller, target_network),
            PeerCaller::Signed { .. } => {
                self.deps
                    .peer_trust
                    .require_instance(caller, &source.network, &source.instance_url)
            }
        }
    }

    async fn create_action(&self, request: ReceiveRequest) -> Result<Received, CoreError> {
        let ReceiveRequest {
            action_name,
            source,
            target,
            source_item_owner,
            requirements_snapshot,
            idempotency_key,
        } = request;
        let catalog = self.deps.catalog.current();
        let interaction = eligibility::interaction(&catalog, &action_name, &source, &target)
            .map_err(|message| invalid(ErrorCode::InvalidActionRequest, message))?;
        self.schemas
            .check_requirements(interaction, &requirements_snapshot)?;
        let target_item = self
            .find_item(
                &target.network,
                &target.domain,
                &target.item_type,
                target.item_id,
            )
            .await?
            .ok_or_else(target_item_not_found)?;
        let source_local = self.deps.identity.is_self(&source.instance_url);
        let (source_owner, source_coords) = if source_local {
            let item = self
                .find_item(
                    &source.network,
                    &source.domain,
                    &source.item_type,
                    source.item_id,
                )
                .await?
                .ok_or_else(source_item_not_found)?;
            (Some(item.created_by), (item.latitude, item.longitude))
        } else {
            (source_item_owner, (None, None))
        };
        let payload = eligibility::event_payload(
            interaction,
            &action_name,
            eligibility::CREATED,
            None,
            &source,
            &target,
            &requirements_snapshot,
        );
        self.schemas.check_event(
            interaction,
            &payload,
            eligibility::CREATED,
            ErrorCode::InvalidActionEvent,
        )?;

        let now = self.deps.clock.now();
        // The source owner of a remote source is the peer's user id, not one of ours.
        let locality = Locality::of(&self.deps.identity, &source, &target);
        let action = ActionRecord {
            action_name: action_name.clone(),
            action_id: self.deps.ids.new_id(),
            action_status: eligibility::CREATED.to_string(),
            update_count: 0,
            source: source.clone(),
            source_item_owner: source_owner.clone(),
            target: target.clone(),
            target_item_owner: Some(target_item.created_by.clone()),
            locality,
            requirements_snapshot,
            remarks: None,
            created_at: now,
            updated_at: now,
        };
        let event = ActionEvent {
            action_name,
            event_id: self.deps.ids.new_id(),
            origin_instance_domain: self.deps.identity.base_url.clone(),
            action_id: action.action_id,
            action_status: action.action_status.clone(),
            update_count: 0,
            source: source.clone(),
            source_item_owner: source_owner,
            source_item_latitude: source_coords.0,
            source_item_longitude: source_coords.1,
            target,
            target_item_owner: action.target_item_owner.clone(),
            target_item_latitude: target_item.latitude,
            target_item_longitude: target_item.longitude,
            locality,
            event_payload: payload,
            remarks: None,
            created_at: now,
        };
        let outbox = (!source_local)
            .then(|| OutboxEntry::for_event(self.deps.ids.new_id(), &source.instance_url, &event));
        let idempotency = idempotency_key.map(|key| IdempotencyKey {
            source_instance: normalize_instance_url(&source.instance_url),
            key,
            expires_at: now + super::IDEMPOTENCY_TTL,
        });
        let new = NewAction {
            action,
            event,
            outbox,
            idempotency,
        };
        match self.deps.actions.create(&new).await? {
            Created::New(record) => Ok(Received::Created(record)),
            Created::Replayed(record) if same_request(&record, &new.action) => {
                Ok(Received::Replayed(record))
            }
            Created::Replayed(_) => Err(CoreError::Conflict {
                code: ErrorCode::IdempotencyKeyReused,
                message: "This Idempotency-Key was used for a different action".to_string(),
            }),
        }
    }
}

/// A replay must be the same request, not a new one that happens to reuse the key.
fn same_request(stored: &ActionRecord, sent: &ActionRecord) -> bool {
    stored.action_name == sent.action_name
        && stored.source.item_id == sent.source.item_id
        && stored.target.item_id == sent.target.item_id
}
