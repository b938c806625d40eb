//! `SchemaSource` for `SchemaLocation::Url`: conditional GET, no redirects, bounded in time
//! and size, and never to an address the policy refuses.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dpg_core::ports::{
    FetchOutcome, FetchedDocument, SchemaLocation, SchemaSource, SourceValidators,
};
use dpg_core::{CoreError, ErrorCode};
use ipnet::IpNet;
use reqwest::header::{
    ACCEPT, ETAG, HeaderMap, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};
use reqwest::{StatusCode, redirect};
use url::{Host, Url};

use super::address_policy::AddressPolicy;
use super::guarded_resolver::{ForbiddenAddress, GuardedResolver};
use crate::fs::DEFAULT_MAX_DOCUMENT_BYTES;

/// How the HTTP source behaves; `Default` is the production setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSourceConfig {
    /// Allow loopback, private and link-local addresses (`SCHEMA_FETCH_ALLOW_PRIVATE`).
    pub allow_private: bool,
    /// Networks allowed even though they are private.
    pub allowed_cidrs: Vec<IpNet>,
    pub connect_timeout: Duration,
    /// Whole request, body included.
    pub timeout: Duration,
    pub max_body_bytes: u64,
}

impl Default for HttpSourceConfig {
    fn default() -> Self {
        HttpSourceConfig {
            allow_private: false,
            allowed_cidrs: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            max_body_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
        }
    }
}

/// Fetches documents from registries over HTTP(S).
#[derive(Debug, Clone)]
pub struct HttpSchemaSource {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    max_body_bytes: u64,
}

impl HttpSchemaSource {
    /// Installs the ring TLS provider when the process has none yet, so building never panics.
    pub fn new(config: HttpSourceConfig) -> Result<Self, CoreError> {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Losing a race with another installer is fine: a provider is then in place.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let policy = Arc::new(AddressPolicy {
            allow_private: config.allow_private,
            allowed_cidrs: config.allowed_cidrs,
        });
        let client = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            // A proxy would connect on our behalf to addresses the resolver never sees.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver::new(policy.clone())))
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .user_agent(concat!("dpg/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CoreError::internal(format!("building the schema HTTP client: {e}")))?;
        Ok(HttpSchemaSource {
            client,
            policy,
            max_body_bytes: config.max_body_bytes,
        })
    }

    /// Parses the URL and refuses other schemes and refused IP literals (the resolver never
    /// sees those: the connector uses them as they are).
    fn checked_url(&self, raw: &str) -> Result<Url, CoreError> {
        let url =
            Url::parse(raw).map_err(|e| fetch_failed(raw, &format!("not a valid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(forbidden(&url, "only http and https URLs are allowed"));
        }
        let literal = match url.host() {
            Some(Host::Ipv4(ip)) => Some(ip.into()),
            Some(Host::Ipv6(ip)) => Some(ip.into()),
            Some(Host::Domain(_)) => None,
            None => return Err(fetch_failed(&display(&url), "the URL has no host")),
        };
        if let Some(ip) = literal
            && let Err(class) = self.policy.check(ip)
        {
            return Err(forbidden(&url, &format!("{ip} is a {class} address")));
        }
        Ok(url)
    }

    async fn read_body(
        &self,
        mut response: reqwest::Response,
        url: &str,
    ) -> Result<Vec<u8>, CoreError> {
        let too_large = || {
            fetch_failed(
                url,
                &format!("the document is larger than {} bytes", self.max_body_bytes),
            )
        };
        if response
            .content_length()
            .is_some_and(|n| n > self.max_body_bytes)
        {
            return Err(too_large());
        }
        // Checked per chunk: a body without (or with a lying) Content-Length stops at the cap.
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| request_failed(url, &e))?
        {
            if u64::try_from(body.len() + chunk.len()).map_or(true, |n| n > self.max_body_bytes) {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[async_trait]
impl SchemaSource for HttpSchemaSource {
    async fn fetch(
        &self,
        location: &SchemaLocation,
        known: Option<SourceValidators>,
    ) -> Result<FetchOutcome, CoreError> {
        let SchemaLocation::Url(raw) = location else {
            return Err(CoreError::internal(format!(
                "HttpSchemaSource cannot fetch {}: not a URL location",
                location.as_str()
            )));
        };
        let url = self.checked_url(raw)?;
        let shown = display(&url);
        let conditional = known.is_some();
        let response = self
            .client
            .get(url)
            .header(ACCEPT, "application/json")
            .headers(conditional_headers(known.as_ref()))
            .send()
            .await
            .map_err(|e| request_failed(&shown, &e))?;

        let status = response.status();
        if status == StatusCode::NOT_MODIFIED && conditional {
            return Ok(FetchOutcome::NotModified);
        }
        if status.is_redirection() {
            return Err(fetch_failed(
                &shown,
                &format!("{status} (redirects are not followed)"),
            ));
        }
        if !status.is_success() {
            return Err(fetch_failed(&shown, &status.to_string()));
        }
        let validators = SourceValidators {
            etag: header_text(response.headers(), ETAG),
            last_modified: header_text(response.headers(), LAST_MODIFIED),
        };
        let bytes = self.read_body(response, &shown).await?;
        let body = serde_json::from_slice(&bytes)
            .map_err(|e| fetch_failed(&shown, &format!("not valid JSON: {e}")))?;
        Ok(FetchOutcome::Fetched(FetchedDocument { body, validators }))
    }
}

fn conditional_headers(known: Option<&SourceValidators>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let Some(known) = known else {
        return headers;
    };
    // A stored validator that is not a valid header value is skipped: the fetch is then
    // unconditional, which is always correct.
    if let Some(etag) = known
        .etag
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert(IF_NONE_MATCH, etag);
    }
    if let Some(date) = known
        .last_modified
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert(IF_MODIFIED_SINCE, date);
    }
    headers
}

fn header_text(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The URL as shown in messages, without a password it may carry.
fn display(url: &Url) -> String {
    if url.password().is_none() {
        return url.to_string();
    }
    let mut redacted = url.clone();
    let _ = redacted.set_password(Some("***"));
    redacted.to_string()
}

/// Maps a reqwest failure: refused by the resolver -> `Forbidden`, anything else -> `Upstream`.
fn request_failed(url: &str, error: &reqwest::Error) -> CoreError {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<ForbiddenAddress>() {
            tracing::warn!(url, host = %refused.host, address = %refused.address, "schema URL refused");
            return CoreError::Forbidden {
                code: ErrorCode::SchemaUrlForbidden,
                message: format!("Refusing to fetch schema from {url}: {refused}"),
            };
        }
        source = cause.source();
    }
    let problem = if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "could not connect".to_string()
    } else {
        "the request failed".to_string()
    };
    tracing::warn!(url, error = ?error, "schema fetch failed");
    fetch_failed(url, &problem)
}

fn fetch_failed(url: &str, problem: &str) -> CoreError {
    CoreError::Upstream {
        code: ErrorCode::RemoteSchemaFetchFailed,
        message: format!("Failed to fetch schema from {url}: {problem}"),
    }
}

fn forbidden(url: &Url, reason: &str) -> CoreError {
    let shown = display(url);
    tracing::warn!(url = %shown, reason, "schema URL refused");
    CoreError::Forbidden {
        code: ErrorCode::SchemaUrlForbidden,
        message: format!("Refusing to fetch schema from {shown}: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(config: HttpSourceConfig) -> HttpSchemaSource {
        HttpSchemaSource::new(config).expect("client")
    }

    fn forbidden_message(result: Result<Url, CoreError>) -> String {
        match result {
            Err(CoreError::Forbidden { code, message }) => {
                assert_eq!(code, ErrorCode::SchemaUrlForbidden);
                message
            }
            other => panic!("expected Forbidden, got {other:?}"),
        }
    }

    #[test]
    fn ip_literals_are_checked_before_any_connection() {
        let guarded = source(HttpSourceConfig::default());
        for url in [
            "http://127.0.0.1:8080/n.json",
            "http://[::1]/n.json",
            "http://[::ffff:127.0.0.1]/n.json",
            "http://0.0.0.0/n.json",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/n.json",
            "http://[fc00::1]/n.json",
            "http://[fe80::1]/n.json",
            "http://2130706433/n.json",
            "http://127.1/n.json",
            "https://10.0.0.1/n.json",
        ] {
            let message = forbidden_message(guarded.checked_url(url));
            assert!(message.contains("address"), "{url}: {message}");
        }
        let public = guarded
            .checked_url("https://8.8.8.8/n.json")
            .expect("public literal");
        assert_eq!(public.host_str(), Some("8.8.8.8"));
        guarded
            .checked_url("https://registry.example.org/n.json")
            .expect("names are checked by the resolver");
    }

    #[test]
    fn only_http_and_https_are_allowed() {
        let permissive = source(HttpSourceConfig {
            allow_private: true,
            ..HttpSourceConfig::default()
        });
        for url in [
            "file:///etc/passwd",
            "ftp://registry.test/n.json",
            "gopher://127.0.0.1/",
        ] {
            let message = forbidden_message(permissive.checked_url(url));
            assert!(message.contains("only http and https"), "{url}: {message}");
        }
        permissive
            .checked_url("http://127.0.0.1:1/n.json")
            .expect("allowed in development");
    }

    #[test]
    fn allow_list_opens_a_private_network() {
        let listed = source(HttpSourceConfig {
            allowed_cidrs: vec!["10.1.0.0/16".parse().expect("net")],
            ..HttpSourceConfig::default()
        });
        listed
            .checked_url("http://10.1.2.3/n.json")
            .expect("allow-listed");
        forbidden_message(listed.checked_url("http://10.2.0.1/n.json"));
    }

    #[test]
    fn passwords_never_reach_messages() {
        let url = Url::parse("https://user:secret@registry.test/n.json").expect("url");
        assert_eq!(display(&url), "https://user:***@registry.test/n.json");
    }

    #[test]
    fn conditional_headers_come_from_known_validators() {
        let headers = conditional_headers(Some(&SourceValidators {
            etag: Some("\"v1\"".into()),
            last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
        }));
        assert_eq!(
            headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()),
            Some("\"v1\"")
        );
        assert!(headers.contains_key(IF_MODIFIED_SINCE));
        assert!(conditional_headers(None).is_empty());
    }

    #[tokio::test]
    async fn file_locations_are_a_wiring_error() {
        let err = source(HttpSourceConfig::default())
            .fetch(&SchemaLocation::File("network.json".into()), None)
            .await
            .expect_err("not a URL");
        assert!(matches!(err, CoreError::Internal(_)), "{err:?}");
    }
}
