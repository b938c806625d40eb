//! `/api/v1/item/*`: create, owner-scoped fetch, update and delete.

use std::sync::Arc;

use dpg_core::model::{ItemChanges, NewItem, PageRequest};
use poem::Request;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use crate::auth::Authenticated;
use crate::body::JsonBody;
use crate::dto::{
    CreateItemIn, CreatedItemOut, ItemOut, ItemPageOut, UpdateItemIn, UpdatedItemOut,
};
use crate::encoded::EncodedJson;
use crate::error::{ApiError, Rejection};
use crate::filters::FilterParams;
use crate::query::{item_state_filter, reject_repeated};
use crate::state::ApiState;

pub struct ItemApi;

#[derive(ApiResponse)]
enum CreateItemResponse {
    /// The item was validated and stored.
    #[oai(status = 201)]
    Created(Json<CreatedItemOut>),
}

#[derive(ApiResponse)]
enum DeleteItemResponse {
    /// The item was deleted.
    #[oai(status = 204)]
    Deleted,
}

/// Scalar query parameters shared by the item listing routes; a repeated one is refused.
pub const SCALAR_FILTERS: &[&str] = &[
    "item_network",
    "item_domain",
    "item_type",
    "item_id",
    "item_instance_url",
    "item_schema_url",
    "item_latitude",
    "item_longitude",
    "radius_meters",
    "limit",
    "offset",
    "cache_ttl_seconds",
];

#[OpenApi(prefix_path = "/api/v1/item", tag = "ApiTags::Item")]
impl ItemApi {
    /// Create an item
    ///
    /// Validates `item_state` against the item type's JSON Schema (all violations are
    /// listed) and stores the item on this instance, which must serve the
    /// `item_network/item_domain` binding. The instance generates `item_id`,
    /// `item_instance_url`, `item_schema_url`, the owner and the timestamps.
    #[oai(path = "/create", method = "post", operation_id = "createItem")]
    async fn create(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        Authenticated(caller): Authenticated,
        body: JsonBody<CreateItemIn>,
    ) -> Result<CreateItemResponse, ApiError> {
        let body = body.0;
        let item = state
            .items
            .create(
                &caller,
                NewItem {
                    network: body.item_network,
                    domain: body.item_domain,
                    item_type: body.item_type,
                    state: body.item_state,
                    latitude: body.item_latitude,
                    longitude: body.item_longitude,
                },
            )
            .await?;
        Ok(CreateItemResponse::Created(Json(CreatedItemOut {
            item_type: item.item_type,
            item_id: item.item_id.to_string(),
        })))
    }

    /// Fetch your own items
    ///
    /// Lists the caller's items on this instance, newest first (`created_at`, then
    /// `item_id`). Filter on `item_state` with bracket notation, e.g.
    /// `item_state[city]=Pune` or `item_state[subjects][]=math` (JSON containment; values are
    /// strings). A radius search needs `item_latitude`, `item_longitude` and `radius_meters`.
    #[oai(path = "/fetch", method = "get", operation_id = "fetchItems")]
    #[allow(clippy::too_many_arguments)]
    async fn fetch(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        Authenticated(caller): Authenticated,
        req: &Request,
        item_network: Query<String>,
        item_domain: Query<String>,
        item_type: Query<Option<String>>,
        item_id: Query<Option<Uuid>>,
        item_instance_url: Query<Option<String>>,
        item_schema_url: Query<Option<String>>,
        item_latitude: Query<Option<f64>>,
        item_longitude: Query<Option<f64>>,
        /// Radius in metres (> 0).
        radius_meters: Query<Option<f64>>,
        /// Page size, 1–100 (default 20).
        limit: Query<Option<u32>>,
        /// Items to skip, 0–10000 (default 0).
        offset: Query<Option<u32>>,
        /// Accepted for compatibility; this route caches briefly and invalidates on writes.
        #[oai(name = "cache_ttl_seconds", validator(minimum(value = "1")))]
        _cache_ttl_seconds: Query<Option<u32>>,
    ) -> Result<EncodedJson<ItemPageOut>, ApiError> {
        let query = req.uri().query().unwrap_or_default();
        reject_repeated(query, SCALAR_FILTERS)?;
        let page = PageRequest::new(limit.0, offset.0)?;
        let filter = FilterParams {
            network: item_network.0,
            domain: item_domain.0,
            item_type: item_type.0,
            item_id: item_id.0,
            instance_url: item_instance_url.0,
            schema_url: item_schema_url.0,
            state: item_state_filter(query)?,
            latitude: item_latitude.0,
            longitude: item_longitude.0,
            radius_meters: radius_meters.0,
        }
        .into_filter("querystring")?;
        let document = state.items.fetch_own(&caller, filter, page).await?;
        Ok(EncodedJson::new(document.into_bytes()))
    }

    /// Update your item
    ///
    /// Replaces the given fields of one of the caller's items. The new `item_state` must
    /// satisfy the item type's schema; `item_instance_url` and `item_schema_url` are set by
    /// the instance and accepted only unchanged.
    #[oai(path = "/:itemId", method = "patch", operation_id = "updateItem")]
    async fn update(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        Authenticated(caller): Authenticated,
        /// UUID of the item.
        #[oai(name = "itemId")]
        item_id: Path<String>,
        body: JsonBody<UpdateItemIn>,
    ) -> Result<Json<UpdatedItemOut>, ApiError> {
        let item_id = parse_item_id(&item_id.0)?;
        let body = body.0;
        if body.is_empty() {
            return Err(Rejection::validation(
                "body/ At least one field must be provided for update",
            )
            .into());
        }
        let changes = ItemChanges {
            state: match body.item_state {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(serde_json::Value::Null),
                MaybeUndefined::Value(v) => Some(v),
            },
            latitude: body.item_latitude.into_patch(),
            longitude: body.item_longitude.into_patch(),
            instance_url: body.item_instance_url,
            schema_url: body.item_schema_url,
        };
        let item = state.items.update_own(&caller, item_id, changes).await?;
        Ok(Json(UpdatedItemOut {
            item: ItemOut::from(item),
        }))
    }

    /// Delete your item
    ///
    /// Withdraws one of the caller's items from this instance.
    #[oai(path = "/:itemId", method = "delete", operation_id = "deleteItem")]
    async fn delete(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        Authenticated(caller): Authenticated,
        /// UUID of the item.
        #[oai(name = "itemId")]
        item_id: Path<String>,
    ) -> Result<DeleteItemResponse, ApiError> {
        let item_id = parse_item_id(&item_id.0)?;
        state.items.delete_own(&caller, item_id).await?;
        Ok(DeleteItemResponse::Deleted)
    }
}

/// `MaybeUndefined` as a patch: undefined keeps, null clears, a value sets.
trait IntoPatch<T> {
    fn into_patch(self) -> Option<Option<T>>;
}

impl<T> IntoPatch<T> for MaybeUndefined<T> {
    fn into_patch(self) -> Option<Option<T>> {
        match self {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(v) => Some(Some(v)),
        }
    }
}

fn parse_item_id(raw: &str) -> Result<Uuid, Rejection> {
    Uuid::parse_str(raw).map_err(|_| Rejection::validation("params/itemId Invalid UUID"))
}
