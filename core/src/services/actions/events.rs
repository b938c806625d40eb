//! Event store on the source instance (`POST /api/v1/event/store`, reference-contract
//! §1.10, §6.4): a mirrored event is accepted only from the instance that owns the action's
//! target item, only for a source item that lives here, and only once per
//! (`action_name`, `origin_instance_domain`, `action_id`, `update_count`), in any order.
//!
//! A backlog of events from one instance may also arrive in one request
//! (`POST /api/v1/event/store_batch`): [`ActionService::store_events`] applies the same rules
//! to each event and answers each on its own, but reads the items and actions once per batch
//! and stores all admitted events in one repository call.

use std::collections::HashMap;

use futures::StreamExt;
use serde_json::Value;
use uuid::Uuid;

use super::{ActionService, eligibility, source_item_not_found};
use crate::error::{CoreError, ErrorCode};
use crate::model::{ActionEvent, ActionRecord, Item, ItemRef, Locality, normalize_instance_url};
use crate::network::NetworkCatalog;
use crate::services::PeerCaller;

/// How many distinct source items one batch looks up at once.
const ITEM_LOOKUPS_AT_ONCE: usize = 8;

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

/// What the store answers for one event (see [`ActionService::store_event`]).
type Answer = Result<(ActionEvent, Option<Uuid>), CoreError>;

/// The key of a source item look-up (its instance is this one: admission checked it).
type SourceKey = (String, String, String, Uuid);

fn source_key(source: &ItemRef) -> SourceKey {
    (
        source.network.clone(),
        source.domain.clone(),
        source.item_type.clone(),
        source.item_id,
    )
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
        let catalog = self.deps.catalog.current();
        self.admit_event(&catalog, caller, &incoming)?;
        let source = &incoming.source;
        // Both reads at once.
        let (source_item, stored) = futures::try_join!(
            self.find_item(
                &source.network,
                &source.domain,
                &source.item_type,
                source.item_id,
            ),
            self.deps.actions.find(incoming.action_id),
        )?;
        let event = self.build_event(&catalog, incoming, source_item, stored.as_ref())?;
        let stored = self.deps.actions.store_event(&event).await?;
        Ok((event, stored))
    }

    /// Stores a backlog of mirrored events from one request: one answer per event, in order,
    /// each what [`ActionService::store_event`] would have answered for that event alone
    /// (a duplicate of an earlier event of the same batch is a duplicate).
    ///
    /// Each distinct source item is read once, the stored actions in one
    /// [`ActionRepository::find_many`](crate::ports::ActionRepository::find_many), and the
    /// admitted events are stored in one
    /// [`ActionRepository::store_events`](crate::ports::ActionRepository::store_events); when
    /// one of the batch reads or the store fails, every event that depended on it gets that
    /// error.
    pub async fn store_events(
        &self,
        caller: &PeerCaller,
        incoming: Vec<IncomingEvent>,
    ) -> Vec<Result<(ActionEvent, Option<Uuid>), CoreError>> {
        let catalog = self.deps.catalog.current();
        let mut results: Vec<Option<Answer>> = incoming.iter().map(|_| None).collect();
        let mut admitted = Vec::new();
        for (index, event) in incoming.into_iter().enumerate() {
            match self.admit_event(&catalog, caller, &event) {
                Ok(()) => admitted.push((index, event)),
                Err(err) => results[index] = Some(Err(err)),
            }
        }
        if !admitted.is_empty() {
            for (index, result) in self.store_admitted(&catalog, admitted).await {
                results[index] = Some(result);
            }
        }
        results
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| Err(CoreError::internal("an event got no answer")))
            })
            .collect()
    }

    /// The batch reads, the events built from them and one store, for admitted events
    /// (with their positions in the request).
    async fn store_admitted(
        &self,
        catalog: &NetworkCatalog,
        admitted: Vec<(usize, IncomingEvent)>,
    ) -> Vec<(usize, Answer)> {
        let mut keys: Vec<SourceKey> = admitted
            .iter()
            .map(|(_, e)| source_key(&e.source))
            .collect();
        keys.sort();
        keys.dedup();
        let mut action_ids: Vec<Uuid> = admitted.iter().map(|(_, e)| e.action_id).collect();
        action_ids.sort();
        action_ids.dedup();
        let items = futures::stream::iter(keys)
            .map(|key| async move {
                let found = self.find_item(&key.0, &key.1, &key.2, key.3).await;
                (key, found)
            })
            .buffer_unordered(ITEM_LOOKUPS_AT_ONCE)
            .collect::<HashMap<SourceKey, Result<Option<Item>, CoreError>>>();
        let (items, actions) = futures::join!(items, self.deps.actions.find_many(&action_ids));
        let actions: HashMap<Uuid, ActionRecord> = match actions {
            Ok(found) => found.into_iter().map(|a| (a.action_id, a)).collect(),
            Err(err) => {
                return admitted
                    .into_iter()
                    .map(|(index, _)| (index, Err(err.clone())))
                    .collect();
            }
        };

        let mut answers = Vec::with_capacity(admitted.len());
        let mut built = Vec::with_capacity(admitted.len());
        for (index, incoming) in admitted {
            let source_item = match items.get(&source_key(&incoming.source)) {
                Some(Ok(item)) => item.clone(),
                Some(Err(err)) => {
                    answers.push((index, Err(err.clone())));
                    continue;
                }
                None => None,
            };
            let stored = actions.get(&incoming.action_id);
            match self.build_event(catalog, incoming, source_item, stored) {
                Ok(event) => built.push((index, event)),
                Err(err) => answers.push((index, Err(err))),
            }
        }
        if built.is_empty() {
            return answers;
        }
        let (indices, events): (Vec<usize>, Vec<ActionEvent>) = built.into_iter().unzip();
        let stored = self
            .deps
            .actions
            .store_events(&events)
            .await
            .and_then(|ids| {
                if ids.len() == events.len() {
                    return Ok(ids);
                }
                tracing::error!(
                    events = events.len(),
                    answers = ids.len(),
                    "store_events answered a different number of events"
                );
                Err(CoreError::internal(
                    "storage failure during store events: wrong number of answers",
                ))
            });
        match stored {
            Ok(ids) => answers.extend(
                indices
                    .into_iter()
                    .zip(events.into_iter().zip(ids))
                    .map(|(index, stored)| (index, Ok(stored))),
            ),
            Err(err) => answers.extend(indices.into_iter().map(|index| (index, Err(err.clone())))),
        }
        answers
    }

    /// The checks made before anything is read: the binding is served, the target network
    /// is known, the origin is the target item's instance and serves its domain, the caller
    /// may speak for it, and the source item is said to live here.
    fn admit_event(
        &self,
        catalog: &NetworkCatalog,
        caller: &PeerCaller,
        incoming: &IncomingEvent,
    ) -> Result<(), CoreError> {
        let IncomingEvent {
            origin_instance_domain: origin,
            source,
            target,
            ..
        } = incoming;
        self.ensure_served(&source.network, &source.domain)?;
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
        Ok(())
    }

    /// The event to store, from an admitted one and what was read for it: the source item
    /// (`None`: not here) and the copy of its action stored here, if any.
    fn build_event(
        &self,
        catalog: &NetworkCatalog,
        incoming: IncomingEvent,
        source_item: Option<Item>,
        stored: Option<&ActionRecord>,
    ) -> Result<ActionEvent, CoreError> {
        let source_item = source_item.ok_or_else(source_item_not_found)?;
        let (source, target) = (&incoming.source, &incoming.target);
        // A copy of the action kept here pins its parties: no other action's events attach.
        if let Some(stored) = stored {
            let same = stored.action_name == incoming.action_name
                && stored.source.item_id == source.item_id
                && stored.target.item_id == target.item_id
                && normalize_instance_url(&stored.target.instance_url)
                    == normalize_instance_url(&incoming.origin_instance_domain);
            if !same {
                return Err(origin_forbidden(
                    "The event does not belong to the action stored here",
                ));
            }
        }
        let interaction = eligibility::interaction(catalog, &incoming.action_name, source, target)
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

        Ok(ActionEvent {
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
        })
    }
}
