//! Network-wide reads and the peer routes they call: `GET /api/v1/network/item/fetch`,
//! `POST /api/v1/network/item/count_local`, `POST /api/v1/network/item/fetch_local`.

use std::sync::Arc;

use dpg_core::ErrorCode;
use dpg_core::services::network_fetch::{NetworkCursor, PeerReport};
use dpg_core::services::{NetworkOutcome, NetworkQuery, Paging, PeerPageRequest};
use poem::Request;
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Deserialize;
use uuid::Uuid;

use super::ApiTags;
use super::items::SCALAR_FILTERS;
use crate::auth::client_info;
use crate::body::JsonBody;
use crate::dto::ItemOut;
use crate::encoded::EncodedJson;
use crate::error::{ApiError, ErrorBody, PeerReportOut};
use crate::filters::{FilterParams, PeerFilterIn};
use crate::middleware::RequestId;
use crate::peer::SignedPeer;
use crate::query::{item_state_filter, reject_repeated};
use crate::state::ApiState;

pub struct NetworkItemsApi;

#[derive(Debug, Clone, Object)]
pub struct CountOut {
    pub count: u64,
}

/// `meta` of a peer page; `next_cursor` is present (null on the last page) so aggregators
/// learn that this instance pages by cursor.
#[derive(Debug, Clone, Object)]
pub struct PeerPageMeta {
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Object)]
pub struct PeerPageOut {
    pub meta: PeerPageMeta,
    pub items: Vec<ItemOut>,
}

#[derive(Debug, Clone, Object)]
pub struct NetworkPageMeta {
    /// All matching items of the instances that answered.
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
    /// Some instance did not answer; the page holds the items of those that did.
    pub partial: bool,
    /// No instance answered: the last complete page, from the cache.
    pub stale: bool,
    pub peers: Vec<PeerReportOut>,
    /// Pass back as `cursor` for the next page (cheaper than deep offsets); null at the end.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Object)]
pub struct NetworkPageOut {
    pub meta: NetworkPageMeta,
    pub items: Vec<ItemOut>,
}

/// `fetch_local`'s body: the filter plus paging.
#[derive(Debug, Clone, Deserialize, Object)]
pub struct FetchLocalIn {
    #[serde(flatten)]
    #[oai(flatten)]
    pub filter: PeerFilterIn,
    /// 1 to 100.
    pub limit: u32,
    /// 0 to 100000; ignored with `cursor`.
    pub offset: u32,
    /// A position from a previous page's `meta.next_cursor`.
    pub cursor: Option<String>,
    /// Accepted and ignored.
    pub cache_ttl_seconds: Option<u64>,
}

#[derive(ApiResponse)]
enum NetworkFetchResponse {
    /// The page (possibly partial or stale; see `meta`).
    #[oai(status = 200)]
    Page(EncodedJson<NetworkPageOut>),
    /// No instance answered and no recent page stands in.
    #[oai(status = 503)]
    NoPeer(Json<Box<ErrorBody>>, #[oai(header = "Retry-After")] u64),
}

#[OpenApi(prefix_path = "/api/v1/network/item", tag = "ApiTags::Network")]
impl NetworkItemsApi {
    /// Fetch items across the network
    ///
    /// Asks every instance serving the domain (this one from its own storage), merges
    /// their items into one order (newest first, `item_id` breaking ties) and caches the page
    /// for at least the domain's `minimum_cache_ttl_seconds`. Instances that do not answer in
    /// time are reported in `meta.peers` and make the page `partial`. Page deeply with
    /// `cursor` (from `meta.next_cursor`) rather than `offset`. Private fields are never
    /// served, nor may filters use them.
    #[oai(path = "/fetch", method = "get", operation_id = "fetchNetworkItems")]
    #[allow(clippy::too_many_arguments)]
    async fn fetch(
        &self,
        Data(state): Data<&Arc<ApiState>>,
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
        /// Items to skip, 0–10000 (default 0); ignored with `cursor`.
        offset: Query<Option<u32>>,
        /// How long the page may be cached, in seconds (at least the domain's minimum).
        #[oai(validator(minimum(value = "1")))]
        cache_ttl_seconds: Query<Option<u64>>,
        /// `meta.next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<NetworkFetchResponse, ApiError> {
        let query = req.uri().query().unwrap_or_default();
        reject_repeated(query, SCALAR_FILTERS)?;
        let page = dpg_core::model::PageRequest::new(limit.0, offset.0)?;
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
        let paging = match cursor.0 {
            Some(raw) => Paging::Cursor(NetworkCursor::decode(&raw)?),
            None => Paging::Offset(page.offset),
        };
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let outcome = state
            .network
            .fetch(NetworkQuery {
                filter,
                limit: page.limit,
                paging,
                cache_ttl_seconds: cache_ttl_seconds.0,
                request_id,
                client: client_info(req, state.trust_forwarded_for),
            })
            .await?;
        Ok(match outcome {
            NetworkOutcome::Page(bytes) => NetworkFetchResponse::Page(EncodedJson::new(bytes)),
            NetworkOutcome::NoPeer {
                peers,
                retry_after_secs,
            } => {
                let mut body = ErrorBody::application(
                    ErrorCode::NoPeerAvailable.as_str(),
                    "No instance of the network answered; try again shortly",
                );
                body.peers = Some(peers.into_iter().map(report_out).collect());
                NetworkFetchResponse::NoPeer(Json(Box::new(body)), retry_after_secs)
            }
        })
    }

    /// Count items for a peer
    ///
    /// How many items of a binding this instance serves match the filter (every owner's).
    #[oai(
        path = "/count_local",
        method = "post",
        operation_id = "countLocalItems"
    )]
    async fn count_local(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        SignedPeer(caller): SignedPeer,
        body: JsonBody<PeerFilterIn>,
    ) -> Result<Json<CountOut>, ApiError> {
        let filter = body.0.into_filter()?;
        state.peer_trust.authorize(&caller, &filter.network)?;
        let count = state.peer_items.count(&filter).await?;
        Ok(Json(CountOut { count }))
    }

    /// Fetch items for a peer
    ///
    /// One page of the items of a binding this instance serves (every owner's), newest
    /// first, private fields removed. Pages by `offset`, or by `cursor` from
    /// `meta.next_cursor`.
    #[oai(
        path = "/fetch_local",
        method = "post",
        operation_id = "fetchLocalItems"
    )]
    async fn fetch_local(
        &self,
        Data(state): Data<&Arc<ApiState>>,
        SignedPeer(caller): SignedPeer,
        body: JsonBody<FetchLocalIn>,
    ) -> Result<EncodedJson<PeerPageOut>, ApiError> {
        let body = body.0;
        let filter = body.filter.into_filter()?;
        state.peer_trust.authorize(&caller, &filter.network)?;
        let document = state
            .peer_items
            .page(
                &filter,
                &PeerPageRequest {
                    limit: body.limit,
                    offset: body.offset,
                    cursor: body.cursor,
                },
            )
            .await?;
        Ok(EncodedJson::new(document))
    }
}

fn report_out(report: PeerReport) -> PeerReportOut {
    PeerReportOut {
        instance_url: report.instance_url,
        status: serde_json::to_value(report.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        count: report.count,
        latency_ms: report.latency_ms,
    }
}
