//! The loaded networks with their item schemas compiled, as one immutable value.
//!
//! A catalog is built once per (re)load and swapped atomically; request handlers read the
//! current one without locks held across awaits.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::document::{Domain, NetworkDocument};
use super::privacy::PrivateFields;
use super::validation::{CompiledSchema, SchemaCompiler};
use crate::error::{CoreError, ErrorCode, UnservedBinding};
use crate::model::{Binding, InstanceIdentity, normalize_instance_url};
use crate::peer_auth::VerifyingKey;

/// The schema items of one (network, domain, item type) are validated against.
#[derive(Debug, Clone)]
pub struct ItemSchema {
    /// The JSON Schema in force (the instance's custom schema when it has one).
    pub schema: Value,
    /// What created items carry as `item_schema_url` (reference-contract §4.1).
    pub schema_url: String,
    /// The custom schema URL this instance publishes for the type, if any.
    pub custom_url: Option<String>,
    /// Fields marked `"private": true`, never served to peers.
    pub private: PrivateFields,
    compiled: Result<Arc<CompiledSchema>, String>,
}

impl ItemSchema {
    /// The compiled validator, or the compiler's message for a schema that does not compile.
    pub fn compiled(&self) -> Result<&CompiledSchema, &str> {
        self.compiled.as_deref().map_err(String::as_str)
    }
}

/// One loaded network.
#[derive(Debug, Clone)]
pub struct LoadedNetwork {
    pub document: NetworkDocument,
    item_schemas: HashMap<(String, String), ItemSchema>,
}

/// Where the catalog's documents came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CatalogOrigin {
    /// Fetched from the configured sources.
    Sources,
    /// The sources were unreachable at boot; this is the last good copy.
    LastGoodCopy { saved_at: DateTime<Utc> },
}

/// All loaded networks, keyed by name.
#[derive(Debug, Clone)]
pub struct NetworkCatalog {
    networks: IndexMap<String, LoadedNetwork>,
    /// Who publishes each `kid`, decoded once per load: a signature check per peer request
    /// must not decode base64 and decompress a curve point again.
    key_holders: HashMap<String, Vec<KeyHolder>>,
    /// The distinct keys each instance (normalized URL) publishes, in any network.
    instance_keys: HashMap<String, Vec<VerifyingKey>>,
    /// The instances (normalized URLs) each network lists: asked on every signed request.
    members: HashMap<String, HashSet<String>>,
    pub loaded_at: DateTime<Utc>,
    pub origin: CatalogOrigin,
}

/// An instance that publishes a key: (network, normalized instance URL, key).
pub type KeyHolder = (String, String, VerifyingKey);

/// Every published key by `kid`, each (network, instance) once; keys that do not decode are
/// left out (document validation already refuses them).
fn key_holders<'a>(
    documents: impl Iterator<Item = &'a NetworkDocument>,
) -> HashMap<String, Vec<KeyHolder>> {
    let mut holders: HashMap<String, Vec<KeyHolder>> = HashMap::new();
    for doc in documents {
        for instance in &doc.instances {
            for key in &instance.keys {
                let Ok(verifying) = VerifyingKey::from_instance_key(key) else {
                    continue;
                };
                let url = normalize_instance_url(&instance.instance_url);
                let listed = holders.entry(key.kid.clone()).or_default();
                if !listed.iter().any(|(n, u, _)| *n == doc.name && *u == url) {
                    listed.push((doc.name.clone(), url, verifying));
                }
            }
        }
    }
    holders
}

/// The distinct keys of each instance, from [`key_holders`].
fn instance_keys(holders: &HashMap<String, Vec<KeyHolder>>) -> HashMap<String, Vec<VerifyingKey>> {
    let mut keys: HashMap<String, Vec<VerifyingKey>> = HashMap::new();
    for (_, url, key) in holders.values().flatten() {
        let listed = keys.entry(url.clone()).or_default();
        if !listed.contains(key) {
            listed.push(*key);
        }
    }
    keys
}

/// One entry of `GET /api/v1/network/schemas` (reference-contract §1.12).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchemaIndexEntry {
    pub cache_key: String,
    pub kind: &'static str,
    pub network: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_url: Option<String>,
    pub source: &'static str,
    pub cached_at: DateTime<Utc>,
    pub file_name: String,
    pub schema: Value,
}

impl NetworkCatalog {
    /// An empty catalog (nothing loaded yet).
    pub fn empty(now: DateTime<Utc>) -> Self {
        NetworkCatalog {
            networks: IndexMap::new(),
            key_holders: HashMap::new(),
            instance_keys: HashMap::new(),
            members: HashMap::new(),
            loaded_at: now,
            origin: CatalogOrigin::Sources,
        }
    }

    /// Builds the catalog. Later documents with the same name replace earlier ones.
    /// `custom_schemas` maps custom item-schema URLs to the fetched schemas.
    pub fn build(
        documents: Vec<NetworkDocument>,
        custom_schemas: &HashMap<String, Value>,
        identity: &InstanceIdentity,
        compiler: &SchemaCompiler,
        loaded_at: DateTime<Utc>,
        origin: CatalogOrigin,
    ) -> Self {
        let mut networks = IndexMap::new();
        for document in documents {
            let mut item_schemas = HashMap::new();
            for domain in &document.domains {
                for (item_type, inline) in &domain.item_schemas {
                    let custom_url =
                        custom_schema_url(&document, &domain.name, item_type, identity);
                    let schema = custom_url
                        .as_ref()
                        .and_then(|url| custom_schemas.get(url))
                        .unwrap_or(inline)
                        .clone();
                    let schema_url = custom_url.clone().unwrap_or_else(|| {
                        default_schema_url(&document, &domain.name, item_type, &identity.base_url)
                    });
                    let compiled = compiler.compile(&schema).map(Arc::new);
                    let private = PrivateFields::of_schema(&schema);
                    item_schemas.insert(
                        (domain.name.clone(), item_type.clone()),
                        ItemSchema {
                            schema,
                            schema_url,
                            custom_url,
                            private,
                            compiled,
                        },
                    );
                }
            }
            networks.insert(
                document.name.clone(),
                LoadedNetwork {
                    document,
                    item_schemas,
                },
            );
        }
        let key_holders = key_holders(networks.values().map(|n| &n.document));
        let instance_keys = instance_keys(&key_holders);
        let members = networks
            .iter()
            .map(|(name, network)| {
                let urls = network
                    .document
                    .instances
                    .iter()
                    .map(|i| normalize_instance_url(&i.instance_url))
                    .collect();
                (name.clone(), urls)
            })
            .collect();
        NetworkCatalog {
            networks,
            key_holders,
            instance_keys,
            members,
            loaded_at,
            origin,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    pub fn networks(&self) -> impl Iterator<Item = &NetworkDocument> {
        self.networks.values().map(|n| &n.document)
    }

    /// The network document, or 404 `NETWORK_NOT_CONFIGURED` with the reference's message.
    pub fn network(&self, network: &str) -> Result<&NetworkDocument, CoreError> {
        self.networks
            .get(network)
            .map(|n| &n.document)
            .ok_or_else(|| {
                CoreError::not_found(
                    ErrorCode::NetworkNotConfigured,
                    format!("Network \"{network}\" is not configured."),
                )
            })
    }

    /// The domain, or 404 `NETWORK_NOT_CONFIGURED` / `DOMAIN_NOT_FOUND`.
    pub fn domain(&self, network: &str, domain: &str) -> Result<&Domain, CoreError> {
        self.network(network)?.domain(domain).ok_or_else(|| {
            CoreError::not_found(
                ErrorCode::DomainNotFound,
                format!("Domain \"{domain}\" is not defined for network \"{network}\"."),
            )
        })
    }

    /// The item schema, or 404 with the reference's message naming what is missing.
    pub fn item_schema(
        &self,
        network: &str,
        domain: &str,
        item_type: &str,
    ) -> Result<&ItemSchema, CoreError> {
        self.domain(network, domain)?;
        self.networks
            .get(network)
            .and_then(|n| n.item_schemas.get(&(domain.to_string(), item_type.to_string())))
            .ok_or_else(|| {
                CoreError::not_found(
                    ErrorCode::ItemTypeNotFound,
                    format!("Item type \"{item_type}\" is not defined for domain \"{domain}\" in network \"{network}\"."),
                )
            })
    }

    /// The private fields of one item type (none when the type is unknown).
    pub fn private_fields(&self, network: &str, domain: &str, item_type: &str) -> PrivateFields {
        self.item_schema(network, domain, item_type)
            .map(|schema| schema.private.clone())
            .unwrap_or_default()
    }

    /// The private fields of every item type of a domain together (for refusing filters).
    pub fn domain_private_fields(&self, network: &str, domain: &str) -> PrivateFields {
        let mut all = PrivateFields::default();
        for item_type in self.item_types(network, domain) {
            all.merge(&self.private_fields(network, domain, &item_type));
        }
        all
    }

    /// Item types of a binding, in document order; empty when not loaded.
    pub fn item_types(&self, network: &str, domain: &str) -> Vec<String> {
        self.network(network)
            .ok()
            .and_then(|n| n.domain(domain))
            .map(|d| d.item_schemas.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The 403 `UNSERVED_DOMAIN_BINDING` error for `requested`.
    pub fn unserved(&self, identity: &InstanceIdentity, requested: Binding) -> CoreError {
        let allowed_item_types_by_binding = identity
            .served
            .iter()
            .map(|b| (b.key(), self.item_types(&b.network, &b.domain)))
            .collect();
        CoreError::UnservedBinding(Box::new(UnservedBinding {
            requested,
            allowed_bindings: identity.served.iter().map(Binding::key).collect(),
            allowed_networks: identity.served.networks(),
            allowed_domains: identity.served.domains(),
            allowed_item_types_by_binding,
        }))
    }

    /// Browser origins of the network that may call this instance (CORS): the origins of the
    /// instances serving a domain this instance serves, or a domain allowed to act on one it
    /// serves (reference-contract §8.6).
    pub fn peer_origins(&self, identity: &InstanceIdentity) -> Vec<String> {
        let mut origins: Vec<String> = Vec::new();
        for doc in self.networks() {
            let served: Vec<&str> = identity
                .served
                .iter()
                .filter(|b| b.network == doc.name)
                .map(|b| b.domain.as_str())
                .collect();
            if served.is_empty() {
                continue;
            }
            let acting: Vec<&str> = doc
                .actions
                .values()
                .flat_map(|a| &a.interactions)
                .filter(|i| served.contains(&i.to_domain.as_str()))
                .map(|i| i.from_domain.as_str())
                .collect();
            for instance in &doc.instances {
                let domain = instance.domain_name.as_str();
                if !served.contains(&domain) && !acting.contains(&domain) {
                    continue;
                }
                if let Ok(url) = url::Url::parse(instance.instance_url.trim()) {
                    let origin = url.origin().ascii_serialization();
                    if origin != "null" && !origins.contains(&origin) {
                        origins.push(origin);
                    }
                }
            }
        }
        origins
    }

    /// The instances that publish `kid`, as (network, normalized instance URL, key); the
    /// Network Schema is the only trust root of peer signatures.
    pub fn signing_key(&self, kid: &str) -> &[KeyHolder] {
        self.key_holders.get(kid).map_or(&[], Vec::as_slice)
    }

    /// The distinct keys the instance at `instance_url` (normalized) publishes, over all
    /// loaded networks.
    pub fn instance_keys(&self, instance_url: &str) -> &[VerifyingKey] {
        self.instance_keys
            .get(instance_url)
            .map_or(&[], Vec::as_slice)
    }

    /// Whether the instance at `instance_url` (normalized) is listed in `network`.
    pub fn is_member(&self, network: &str, instance_url: &str) -> bool {
        self.members
            .get(network)
            .is_some_and(|urls| urls.contains(instance_url))
    }

    /// The strictest `peer_auth` mode of the loaded networks (for start-up checks).
    pub fn requires_signatures(&self) -> bool {
        self.networks()
            .any(|doc| doc.peer_auth == super::PeerAuthMode::Required)
    }

    /// Whether any loaded network wants signed peer requests (`peer_auth` not `off`).
    pub fn signs_requests(&self) -> bool {
        self.networks()
            .any(|doc| doc.peer_auth != super::PeerAuthMode::Off)
    }

    /// Entries of `GET /api/v1/network/schemas`, sorted by `cache_key`.
    pub fn schema_index(&self, identity: &InstanceIdentity) -> Vec<SchemaIndexEntry> {
        let mut entries = Vec::new();
        for loaded in self.networks.values() {
            let doc = &loaded.document;
            entries.push(self.entry(
                &["network_config", &doc.name],
                "network_config",
                doc.name.clone(),
                (None, None, None, None),
                "inline",
                doc.to_value(),
            ));
            for domain in &doc.domains {
                for (item_type, inline) in &domain.item_schemas {
                    let fragment = doc.source_url.as_ref().and_then(|src| {
                        fragment_schema_url(src, &doc.name, &domain.name, item_type)
                    });
                    entries.push(self.entry(
                        &["domain_item_schema", &doc.name, &domain.name, item_type],
                        "domain_item_schema",
                        doc.name.clone(),
                        (
                            Some(domain.name.clone()),
                            Some(item_type.clone()),
                            None,
                            fragment,
                        ),
                        "inline",
                        inline.clone(),
                    ));
                    if let Some(schema) = loaded
                        .item_schemas
                        .get(&(domain.name.clone(), item_type.clone()))
                        && let Some(url) = &schema.custom_url
                    {
                        entries.push(self.entry(
                            &[
                                "instance_custom_item_schema",
                                &doc.name,
                                &domain.name,
                                &identity.base_url,
                                item_type,
                                url,
                            ],
                            "instance_custom_item_schema",
                            doc.name.clone(),
                            (
                                Some(domain.name.clone()),
                                Some(item_type.clone()),
                                Some(identity.base_url.clone()),
                                Some(url.clone()),
                            ),
                            "remote",
                            schema.schema.clone(),
                        ));
                    }
                }
            }
        }
        entries.sort_by(|a, b| a.cache_key.cmp(&b.cache_key));
        entries
    }

    fn entry(
        &self,
        key_parts: &[&str],
        kind: &'static str,
        network: String,
        (domain, item_type, instance_url, schema_url): (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ),
        source: &'static str,
        schema: Value,
    ) -> SchemaIndexEntry {
        let cache_key = cache_key(key_parts);
        SchemaIndexEntry {
            file_name: format!("{cache_key}.json"),
            cache_key,
            kind,
            network,
            domain,
            item_type,
            instance_url,
            schema_url,
            source,
            cached_at: self.loaded_at,
            schema,
        }
    }
}

/// URLs of the custom item schemas this instance publishes for types its networks define;
/// the loader fetches them before building the catalog.
pub fn own_custom_schema_urls(
    documents: &[NetworkDocument],
    identity: &InstanceIdentity,
) -> Vec<String> {
    let mut urls = Vec::new();
    for doc in documents {
        for domain in &doc.domains {
            for item_type in domain.item_schemas.keys() {
                if let Some(url) = custom_schema_url(doc, &domain.name, item_type, identity)
                    && !urls.contains(&url)
                {
                    urls.push(url);
                }
            }
        }
    }
    urls
}

fn custom_schema_url(
    doc: &NetworkDocument,
    domain: &str,
    item_type: &str,
    identity: &InstanceIdentity,
) -> Option<String> {
    let me = normalize_instance_url(&identity.base_url);
    doc.instances
        .iter()
        .filter(|i| i.domain_name == domain && normalize_instance_url(&i.instance_url) == me)
        .find_map(|i| i.custom_item_schema_urls.get(item_type))
        .map(|url| url.trim().to_string())
}

fn default_schema_url(
    doc: &NetworkDocument,
    domain: &str,
    item_type: &str,
    base_url: &str,
) -> String {
    doc.source_url
        .as_ref()
        .and_then(|src| fragment_schema_url(src, &doc.name, domain, item_type))
        .unwrap_or_else(|| {
            format!(
                "{base_url}/api/v1/network/schema/{}/{}/{}",
                encode_uri_component(&doc.name),
                encode_uri_component(domain),
                encode_uri_component(item_type)
            )
        })
}

/// `source_url` with its fragment replaced by `/item_schemas/<network>/<domain>/<type>`.
fn fragment_schema_url(
    source_url: &str,
    network: &str,
    domain: &str,
    item_type: &str,
) -> Option<String> {
    let mut url = url::Url::parse(source_url.trim()).ok()?;
    url.set_fragment(Some(&format!(
        "/item_schemas/{}/{}/{}",
        encode_uri_component(network),
        encode_uri_component(domain),
        encode_uri_component(item_type)
    )));
    Some(url.to_string())
}

/// JavaScript's `encodeURIComponent`.
pub fn encode_uri_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn cache_key(parts: &[&str]) -> String {
    let joined = parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("::");
    hex::encode(Sha256::digest(joined.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ServedBindings;
    use serde_json::json;

    fn identity() -> InstanceIdentity {
        InstanceIdentity {
            base_url: "http://localhost:2742".into(),
            name: "dpg".into(),
            served: ServedBindings::parse("yellow_dot/student").expect("served"),
        }
    }

    fn doc(extra: Value) -> NetworkDocument {
        let mut base = json!({
            "name": "yellow_dot",
            "domains": [{"name": "student", "item_schemas": {
                "profile_1.0": {"type": "object", "required": ["name"]},
                "bad": {"type": 12}
            }}, {"name": "tutor", "item_schemas": {"profile_1.0": {"type": "object"}}}],
            "instances": [{"domain_name": "student", "instance_url": "http://127.0.0.1:2742",
                "custom_item_schema_urls": {"profile_1.0": "https://schemas.example/student.json"}}]
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
            b.extend(e);
        }
        NetworkDocument::parse(&base).expect("valid doc")
    }

    fn build(documents: Vec<NetworkDocument>, custom: HashMap<String, Value>) -> NetworkCatalog {
        NetworkCatalog::build(
            documents,
            &custom,
            &identity(),
            &SchemaCompiler::new(false),
            Utc::now(),
            CatalogOrigin::Sources,
        )
    }

    #[test]
    fn members_are_the_listed_instances_by_normalized_url() {
        let catalog = build(vec![doc(json!({}))], HashMap::new());
        assert!(catalog.is_member(
            "yellow_dot",
            &normalize_instance_url("http://127.0.0.1:2742/")
        ));
        assert!(catalog.is_member("yellow_dot", "http://localhost:2742"));
        assert!(!catalog.is_member("yellow_dot", "http://localhost:2743"));
        assert!(!catalog.is_member("other", "http://localhost:2742"));
    }

    #[test]
    fn lookups_report_what_is_missing() {
        let catalog = build(vec![doc(json!({}))], HashMap::new());
        let code = |e: CoreError| e.code();
        assert_eq!(
            code(catalog.network("nope").expect_err("x")),
            ErrorCode::NetworkNotConfigured
        );
        assert_eq!(
            code(catalog.domain("yellow_dot", "nope").expect_err("x")),
            ErrorCode::DomainNotFound
        );
        let err = catalog
            .item_schema("yellow_dot", "student", "profile_9")
            .expect_err("x");
        assert_eq!(err.code(), ErrorCode::ItemTypeNotFound);
        assert!(err.to_string().contains("Item type \"profile_9\" is not defined for domain \"student\" in network \"yellow_dot\"."));
        assert!(
            catalog
                .item_schema("yellow_dot", "student", "bad")
                .expect("exists")
                .compiled()
                .is_err()
        );
    }

    #[test]
    fn schema_url_rules_follow_the_reference() {
        let custom = HashMap::from([(
            "https://schemas.example/student.json".to_string(),
            json!({"type": "object", "title": "custom"}),
        )]);
        let catalog = build(vec![doc(json!({}))], custom.clone());
        let own = catalog
            .item_schema("yellow_dot", "student", "profile_1.0")
            .expect("exists");
        assert_eq!(own.schema_url, "https://schemas.example/student.json");
        assert_eq!(own.schema["title"], "custom");
        let tutor = catalog
            .item_schema("yellow_dot", "tutor", "profile_1.0")
            .expect("exists");
        assert_eq!(
            tutor.schema_url,
            "http://localhost:2742/api/v1/network/schema/yellow_dot/tutor/profile_1.0"
        );

        let remote = build(
            vec![doc(
                json!({"source_url": "https://registry.example.com/schemas/yellow_dot/network.json"}),
            )],
            custom,
        );
        let tutor = remote
            .item_schema("yellow_dot", "tutor", "profile_1.0")
            .expect("exists");
        assert_eq!(
            tutor.schema_url,
            "https://registry.example.com/schemas/yellow_dot/network.json#/item_schemas/yellow_dot/tutor/profile_1.0"
        );
    }

    #[test]
    fn own_custom_urls_are_found_through_url_aliases() {
        let urls = own_custom_schema_urls(&[doc(json!({}))], &identity());
        assert_eq!(
            urls,
            vec!["https://schemas.example/student.json".to_string()]
        );
    }

    #[test]
    fn unserved_body_lists_the_served_bindings() {
        let catalog = build(vec![doc(json!({}))], HashMap::new());
        match catalog.unserved(&identity(), Binding::new("yellow_dot", "tutor")) {
            CoreError::UnservedBinding(body) => {
                assert_eq!(body.allowed_bindings, vec!["yellow_dot/student"]);
                assert_eq!(
                    body.allowed_item_types_by_binding[0].1,
                    vec!["profile_1.0", "bad"]
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn schema_index_is_sorted_and_keyed_like_the_reference() {
        let catalog = build(vec![doc(json!({}))], HashMap::new());
        let index = catalog.schema_index(&identity());
        assert!(index.windows(2).all(|w| w[0].cache_key <= w[1].cache_key));
        let network = index
            .iter()
            .find(|e| e.kind == "network_config")
            .expect("network entry");
        assert_eq!(
            network.cache_key,
            cache_key(&["network_config", "yellow_dot"])
        );
        assert_eq!(network.file_name, format!("{}.json", network.cache_key));
        assert_eq!(
            index
                .iter()
                .filter(|e| e.kind == "domain_item_schema")
                .count(),
            3
        );
        assert_eq!(
            index
                .iter()
                .filter(|e| e.kind == "instance_custom_item_schema")
                .count(),
            1
        );
    }

    #[test]
    fn peer_origins_cover_served_and_acting_domains() {
        let doc = NetworkDocument::parse(&json!({
            "name": "yellow_dot",
            "domains": [{"name": "student"}, {"name": "tutor"}, {"name": "coaching_center"}],
            "instances": [
                {"domain_name": "student", "instance_url": "https://student.example.org/"},
                {"domain_name": "tutor", "instance_url": "https://tutor.example.org:8443"},
                {"domain_name": "coaching_center", "instance_url": "https://coach.example.org"}
            ],
            "actions": {"connect": {"interactions": [
                {"from_domain": "tutor", "to_domain": "student", "requirement_schema": {}}
            ]}}
        }))
        .expect("doc");
        let catalog = build(vec![doc], HashMap::new());
        assert_eq!(
            catalog.peer_origins(&identity()),
            vec![
                "https://student.example.org".to_string(),
                "https://tutor.example.org:8443".to_string()
            ]
        );
    }

    #[test]
    fn encodes_like_javascript() {
        assert_eq!(encode_uri_component("profile_1.0"), "profile_1.0");
        assert_eq!(encode_uri_component("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(encode_uri_component("é"), "%C3%A9");
    }
}
