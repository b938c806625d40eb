//! `SignedPeer`: the extractor of peer routes. It reads the body (within the size cap),
//! checks the RFC 9421 signature when there is one, and hands the body on for parsing. The
//! network's `peer_auth` mode and membership are checked by the handler once the body says
//! which network the request is about.

use std::sync::Arc;

use dpg_core::services::{PeerCaller, ReceivedRequest};
use poem::http::StatusCode;
use poem::{Body, Request, RequestBody};
use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use crate::body::{BodyLimits, too_large};
use crate::error::ApiError;
use crate::state::ApiState;

pub const PEER_SIGNATURE_SCHEME: &str = "PeerSignature";

/// Who sent a peer request.
pub struct SignedPeer(pub PeerCaller);

impl<'a> ApiExtractor<'a> for SignedPeer {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            PEER_SIGNATURE_SCHEME,
            MetaSecurityScheme {
                ty: "apiKey",
                description: Some(
                    "RFC 9421 HTTP Message Signature by an instance key listed in the Network Schema \
                     (`Signature-Input`, `Signature`, with an RFC 9530 `Content-Digest`). Required or \
                     optional per the network's `peer_auth` mode.",
                ),
                name: Some("Signature"),
                key_in: Some("header"),
                scheme: None,
                bearer_format: None,
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![PEER_SIGNATURE_SCHEME]
    }

    fn has_security_fallback() -> bool {
        // Unsigned requests are allowed unless the network requires signatures.
        true
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _options: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        let state = request
            .data::<Arc<ApiState>>()
            .ok_or_else(|| poem::Error::from_status(StatusCode::INTERNAL_SERVER_ERROR))?;
        let limits = request
            .extensions()
            .get::<BodyLimits>()
            .copied()
            .unwrap_or_default();
        let bytes = body
            .take()?
            .into_bytes_limit(limits.max_bytes)
            .await
            .map_err(|_| too_large())?;
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
        let path_and_query = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let received = ReceivedRequest {
            method: request.method().as_str(),
            path_and_query,
            host: header("host"),
            content_type: header("content-type"),
            content_digest: header("content-digest"),
            signature_input: header("signature-input"),
            signature: header("signature"),
            body: &bytes,
        };
        let caller = state
            .peer_trust
            .authenticate(&received, is_write(request))
            .await
            .map_err(|err| {
                metrics::counter!("dpg_peer_signature_failures_total", "reason" => err.code().as_str()).increment(1);
                ApiError::from(err)
            })?;
        let (outcome, alg) = match &caller {
            PeerCaller::Signed { alg, .. } => ("signed", alg.as_str()),
            PeerCaller::Unsigned => ("unsigned", "none"),
        };
        metrics::counter!("dpg_peer_requests_received_total", "signature" => outcome, "alg" => alg)
            .increment(1);
        *body = RequestBody::new(Body::from(bytes));
        Ok(SignedPeer(caller))
    }
}

/// Peer writes (action perform, event store) must spend a nonce; reads need not.
fn is_write(request: &Request) -> bool {
    let path = request.uri().path();
    !(path.ends_with("/count_local") || path.ends_with("/fetch_local"))
}
