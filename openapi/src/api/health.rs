//! `/`, `/health/live`, `/health/ready`.

use std::sync::Arc;

use dpg_core::network::CatalogOrigin;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::ApiTags;
use crate::dto::{
    HealthOut, LivenessOut, NetworkConfigStatusOut, ReadinessChecksOut, ReadinessOut,
    ServedDomainOut, wire_time,
};
use crate::state::{ApiState, PublicKeyOut};

#[derive(Debug, Clone, poem_openapi::Object)]
pub struct InstanceKeysOut {
    pub instance_url: String,
    pub keys: Vec<PublicKeyOut>,
}

pub struct HealthApi;

#[derive(ApiResponse)]
enum ReadinessResponse {
    /// Ready to serve.
    #[oai(status = 200)]
    Ready(Json<ReadinessOut>),
    /// The database is unreachable or no network document is loaded.
    #[oai(status = 503)]
    NotReady(Json<ReadinessOut>),
}

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Instance health
    ///
    /// The service name, the bindings it serves and where its network documents came from
    /// (`network_config.origin` is `last_good_copy` when the registry was unreachable).
    #[oai(path = "/", method = "get", operation_id = "health")]
    async fn health(&self, Data(state): Data<&Arc<ApiState>>) -> Json<HealthOut> {
        let catalog = state.schemas.catalog();
        let status = state.schemas.status();
        let (origin, saved_at) = match &catalog.origin {
            CatalogOrigin::Sources => ("sources", None),
            CatalogOrigin::LastGoodCopy { saved_at } => {
                ("last_good_copy", Some(wire_time(saved_at.to_owned())))
            }
        };
        Json(HealthOut {
            service: state.identity.name.clone(),
            status: "ok".to_string(),
            served_domains: state
                .identity
                .served
                .iter()
                .map(|b| ServedDomainOut {
                    network: b.network.clone(),
                    domain: b.domain.clone(),
                    key: b.key(),
                })
                .collect(),
            network_config_source: state.network_config_source.clone(),
            network_config: NetworkConfigStatusOut {
                origin: origin.to_string(),
                loaded_at: wire_time(catalog.loaded_at),
                saved_at,
                networks: catalog.networks().map(|n| n.name.clone()).collect(),
                last_error: status.last_error,
                last_attempt_at: status.last_attempt_at.map(wire_time),
            },
        })
    }

    /// This instance's public keys
    ///
    /// The Ed25519 keys this instance signs peer requests with, as they belong in the
    /// Network Schema's `instances[].keys`.
    #[oai(
        path = "/.well-known/dpg/keys",
        method = "get",
        operation_id = "instanceKeys"
    )]
    async fn keys(&self, Data(state): Data<&Arc<ApiState>>) -> Json<InstanceKeysOut> {
        Json(InstanceKeysOut {
            instance_url: state.identity.base_url.clone(),
            keys: state.public_keys.clone(),
        })
    }

    /// Liveness
    ///
    /// The process is up and answering.
    #[oai(path = "/health/live", method = "get", operation_id = "liveness")]
    async fn live(&self) -> Json<LivenessOut> {
        Json(LivenessOut {
            status: "ok".to_string(),
        })
    }

    /// Readiness
    ///
    /// 200 when the database answers and a network document is loaded, else 503. The cache
    /// is reported but optional: without it reads are served uncached.
    #[oai(path = "/health/ready", method = "get", operation_id = "readiness")]
    async fn ready(&self, Data(state): Data<&Arc<ApiState>>) -> ReadinessResponse {
        let readiness = state.health.readiness().await;
        let outbox = match &state.outbox {
            Some(outbox) => outbox.counts().await.ok().map(Into::into),
            None => None,
        };
        let word = |ok: bool| if ok { "ok" } else { "unavailable" }.to_string();
        let body = ReadinessOut {
            status: if readiness.is_ready() {
                "ready"
            } else {
                "not_ready"
            }
            .to_string(),
            checks: ReadinessChecksOut {
                database: word(readiness.database_ok),
                cache: word(readiness.cache_ok),
                network_documents: readiness.network_documents as u64,
                outbox,
            },
        };
        if readiness.is_ready() {
            ReadinessResponse::Ready(Json(body))
        } else {
            ReadinessResponse::NotReady(Json(body))
        }
    }
}
