//! Source side of a perform (`POST /api/v1/action/perform`, reference-contract §6.1): the
//! caller must own the source item here; the request is checked as the target will check it,
//! then forwarded (signed, with an idempotency key) to the target instance, or performed
//! locally when the target is this instance.

use serde_json::{Value, json};
use uuid::Uuid;

use super::receive::ReceiveRequest;
use super::{ActionService, eligibility, source_item_not_found};
use crate::error::{CoreError, ErrorCode};
use crate::model::{ActionRecord, Caller, ItemRef, Locality, normalize_instance_url};
use crate::ports::PeerAnswer;

/// Longest `Idempotency-Key` accepted (the IETF draft sets no limit; storage does).
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The source item as a client names it (no instance URL: it is this instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceItemRef {
    pub network: String,
    pub domain: String,
    pub item_type: String,
    pub item_id: Uuid,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PerformRequest {
    pub action_name: String,
    pub source: SourceItemRef,
    pub target: ItemRef,
    pub requirements_snapshot: Value,
    /// The client's `Idempotency-Key`; one is generated when absent.
    pub idempotency_key: Option<String>,
    pub request_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PerformOutcome {
    /// 201: the action as this instance knows it (its `performed_json` is the answer).
    Created(Box<ActionRecord>),
    /// The target refused (4xx): its status and body, relayed verbatim.
    Relayed { status: u16, body: Value },
}

fn invalid(code: ErrorCode, message: impl Into<String>) -> CoreError {
    CoreError::invalid(code, message)
}

fn target_unavailable(message: &str) -> CoreError {
    CoreError::Upstream {
        code: ErrorCode::TargetInstanceUnavailable,
        message: message.to_string(),
    }
}

const UNREACHABLE: &str = "Failed to reach the target instance perform action API";

impl ActionService {
    pub async fn perform(
        &self,
        caller: &Caller,
        request: PerformRequest,
    ) -> Result<PerformOutcome, CoreError> {
        let PerformRequest {
            action_name,
            source,
            target,
            requirements_snapshot,
            idempotency_key,
            request_id,
        } = request;
        self.ensure_served(&source.network, &source.domain)?;
        // Someone else's item answers as a missing one: no existence leak.
        let item = self
            .find_item(
                &source.network,
                &source.domain,
                &source.item_type,
                source.item_id,
            )
            .await?
            .filter(|item| item.created_by == caller.user_id)
            .ok_or_else(source_item_not_found)?;
        let catalog = self.deps.catalog.current();
        let doc = catalog.network(&target.network).map_err(|_| {
            invalid(
                ErrorCode::InvalidActionRequest,
                format!("Network \"{}\" is not configured.", target.network),
            )
        })?;
        if doc.domain(&target.domain).is_none() {
            return Err(invalid(
                ErrorCode::InvalidTargetItem,
                format!(
                    "Domain \"{}\" is not defined for network \"{}\".",
                    target.domain, target.network
                ),
            ));
        }
        let wanted = normalize_instance_url(&target.instance_url);
        // We only ever call URLs the Network Schema lists, never one a client made up.
        let peer_url = doc
            .instances
            .iter()
            .find(|i| {
                i.domain_name == target.domain && normalize_instance_url(&i.instance_url) == wanted
            })
            .map(|i| i.instance_url.clone())
            .ok_or_else(|| {
                invalid(
                    ErrorCode::InvalidTargetInstance,
                    "Target item instance URL is not allowed for this network/domain",
                )
            })?;
        let source_ref = ItemRef {
            network: source.network,
            domain: source.domain,
            item_type: source.item_type,
            item_id: source.item_id,
            instance_url: self.deps.identity.base_url.clone(),
        };
        let interaction = eligibility::interaction(&catalog, &action_name, &source_ref, &target)
            .map_err(|message| invalid(ErrorCode::InvalidActionRequest, message))?;
        self.schemas
            .check_requirements(interaction, &requirements_snapshot)?;
        let key = match idempotency_key {
            Some(key) => checked_key(key)?,
            None => self.deps.ids.new_id().to_string(),
        };

        if self.deps.identity.is_self(&target.instance_url) {
            let record = self
                .receive_local(ReceiveRequest {
                    action_name,
                    source: source_ref,
                    target,
                    source_item_owner: Some(item.created_by),
                    requirements_snapshot,
                    idempotency_key: Some(key),
                })
                .await?
                .into_record();
            return Ok(PerformOutcome::Created(Box::new(record)));
        }

        let body = json!({
            "action_name": action_name,
            "source_item": source_ref,
            "target_item": target,
            "source_item_owner": item.created_by,
            "requirements_snapshot": requirements_snapshot,
        });
        let answer = self
            .deps
            .transport
            .perform_action(&peer_url, &body, &key, &request_id)
            .await
            .map_err(|err| {
                tracing::warn!(peer = %peer_url, error = %err, "action perform: target unreachable");
                target_unavailable(UNREACHABLE)
            })?;
        match answer {
            PeerAnswer {
                status: 200..=299,
                body: Some(body),
            } => {
                let performed = performed(&body, source_ref.item_id, target.item_id)
                    .ok_or_else(|| {
                        tracing::warn!(peer = %peer_url, "action perform: target answered an invalid body");
                        target_unavailable("The target instance answered with an invalid body")
                    })?;
                let now = self.deps.clock.now();
                // The target owner is unknown here, and would be a user id of the target.
                let locality = Locality::of(&self.deps.identity, &source_ref, &target);
                let initiated = ActionRecord {
                    action_name: performed.action_name,
                    action_id: performed.action_id,
                    action_status: performed.action_status,
                    update_count: performed.update_count,
                    source: source_ref,
                    source_item_owner: Some(item.created_by),
                    target,
                    target_item_owner: None,
                    locality,
                    requirements_snapshot,
                    remarks: None,
                    created_at: now,
                    updated_at: now,
                };
                // The action exists on the target: a failed copy must not turn into an error
                // that invites a retry with a fresh key.
                if let Err(err) = self.deps.actions.record_initiated(&initiated).await {
                    tracing::error!(action_id = %initiated.action_id, error = %err, "could not keep the initiated action");
                }
                Ok(PerformOutcome::Created(Box::new(initiated)))
            }
            PeerAnswer {
                status: status @ 400..=499,
                body: Some(body),
            } => Ok(PerformOutcome::Relayed { status, body }),
            PeerAnswer { status, .. } => {
                tracing::warn!(peer = %peer_url, status, "action perform: target failed");
                Err(target_unavailable(
                    "The target instance could not perform the action",
                ))
            }
        }
    }
}

/// The target's 2xx body, checked: every key present, the items ours.
struct Performed {
    action_id: Uuid,
    action_name: String,
    action_status: String,
    update_count: u32,
}

fn performed(body: &Value, source_id: Uuid, target_id: Uuid) -> Option<Performed> {
    let text = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let id = |key: &str| text(key).and_then(|s| Uuid::parse_str(&s).ok());
    if id("source_item_id")? != source_id || id("target_item_id")? != target_id {
        return None;
    }
    Some(Performed {
        action_id: id("action_id")?,
        action_name: text("action_name")?,
        action_status: text("action_status")?,
        update_count: body
            .get("update_count")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())?,
    })
}

fn checked_key(key: String) -> Result<String, CoreError> {
    let printable = key.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN || !printable {
        return Err(invalid(
            ErrorCode::InvalidInput,
            format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
            ),
        ));
    }
    Ok(key)
}
