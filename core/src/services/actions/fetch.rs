//! Owner-scoped reads (`GET /api/v1/action/fetch`, `GET /api/v1/event/fetch`,
//! reference-contract §6.6): a user sees only actions and events of their own items.

use serde_json::Value;
use uuid::Uuid;

use super::ActionService;
use crate::error::CoreError;
use crate::model::{ActionQuery, Caller, OwnershipRole, PageRequest};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActionFilter {
    pub role: OwnershipRole,
    pub action_id: Option<Uuid>,
    pub action_name: Option<String>,
    pub action_status: Option<String>,
    pub item_id: Option<Uuid>,
    /// Events only.
    pub update_count: Option<u32>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

/// A page of A.2 or A.3 records as the caller sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedPage {
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
    pub rows: Vec<Value>,
}

impl ActionService {
    pub async fn fetch_actions(
        &self,
        caller: &Caller,
        filter: ActionFilter,
    ) -> Result<OwnedPage, CoreError> {
        let query = query(caller, filter)?;
        let page = self.deps.actions.fetch_actions(&query).await?;
        Ok(OwnedPage {
            total: page.total,
            limit: query.limit,
            offset: query.offset,
            rows: page
                .rows
                .iter()
                .map(|a| a.to_owned_json(&caller.user_id))
                .collect(),
        })
    }

    pub async fn fetch_events(
        &self,
        caller: &Caller,
        filter: ActionFilter,
    ) -> Result<OwnedPage, CoreError> {
        let query = query(caller, filter)?;
        let page = self.deps.actions.fetch_events(&query).await?;
        Ok(OwnedPage {
            total: page.total,
            limit: query.limit,
            offset: query.offset,
            rows: page
                .rows
                .iter()
                .map(|e| e.to_owned_json(&caller.user_id))
                .collect(),
        })
    }
}

fn query(caller: &Caller, filter: ActionFilter) -> Result<ActionQuery, CoreError> {
    let page = PageRequest::new(filter.limit, filter.offset)?;
    for (field, value) in [
        ("action_name", &filter.action_name),
        ("action_status", &filter.action_status),
    ] {
        if let Some(value) = value {
            crate::model::reject_nul(field, value)?;
        }
    }
    Ok(ActionQuery {
        user: caller.user_id.clone(),
        role: filter.role,
        action_id: filter.action_id,
        action_name: filter.action_name,
        action_status: filter.action_status,
        item_id: filter.item_id,
        update_count: filter.update_count,
        limit: page.limit,
        offset: page.offset,
    })
}
