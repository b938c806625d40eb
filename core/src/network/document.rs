//! The Network Schema document (reference-contract §2), parsed with its defaults applied.
//!
//! Unknown fields are kept (`extra`) so that the served document loses nothing; the newer
//! format's `id`/`domain_id` are accepted as aliases of `name`/`domain_name`.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{CoreError, ErrorCode};

/// Default `minimum_cache_ttl_seconds` of a domain.
pub const DEFAULT_MINIMUM_CACHE_TTL_SECONDS: u64 = 300;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkDocument {
    #[serde(alias = "id")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_standard: Option<String>,
    /// Base for fragment item-schema URLs; remote loads set it to the URL fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    #[serde(default)]
    pub domains: Vec<Domain>,
    #[serde(default)]
    pub instances: Vec<Instance>,
    #[serde(default)]
    pub cross_network_origins: Vec<CrossNetworkOrigin>,
    #[serde(default)]
    pub actions: IndexMap<String, Action>,
    /// How peers of this network authenticate to each other.
    #[serde(default)]
    pub peer_auth: PeerAuthMode,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Domain {
    #[serde(alias = "id")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default = "default_ttl")]
    pub minimum_cache_ttl_seconds: u64,
    /// After parsing: `default_item_schemas` merged under these (these win).
    #[serde(default)]
    pub item_schemas: IndexMap<String, Value>,
    #[serde(default)]
    pub default_item_schemas: IndexMap<String, Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn default_ttl() -> u64 {
    DEFAULT_MINIMUM_CACHE_TTL_SECONDS
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    #[serde(alias = "domain_id")]
    pub domain_name: String,
    pub instance_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_url: Option<String>,
    /// After parsing: `schema_url` is mapped to the item type `profile` unless listed here.
    #[serde(default)]
    pub custom_item_schema_urls: IndexMap<String, String>,
    /// Public keys this instance signs peer requests with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<InstanceKey>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceKey {
    pub kid: String,
    pub alg: String,
    pub public_key: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossNetworkOrigin {
    #[serde(alias = "id")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub schema_url: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub interactions: Vec<Interaction>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    /// After parsing: the containing document's name when absent.
    #[serde(default)]
    pub from_network: Option<String>,
    pub from_domain: String,
    #[serde(default)]
    pub from_items: Vec<String>,
    #[serde(default)]
    pub to_network: Option<String>,
    pub to_domain: String,
    #[serde(default)]
    pub to_items: Vec<String>,
    pub requirement_schema: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_schema: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerAuthMode {
    Off,
    #[default]
    Permissive,
    Required,
}

impl NetworkDocument {
    /// Parses a network document, applies defaults and merges, and checks the rules the
    /// reference's parser enforces. Errors name the offending field; nothing half-loads.
    pub fn parse(value: &Value) -> Result<NetworkDocument, CoreError> {
        let mut doc: NetworkDocument = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                String::new()
            } else {
                format!("{path}: ")
            };
            invalid(format!("{field}{}", e.inner()))
        })?;
        doc.check()?;
        doc.apply_defaults();
        Ok(doc)
    }

    /// The domain with this name.
    pub fn domain(&self, name: &str) -> Option<&Domain> {
        self.domains.iter().find(|d| d.name == name)
    }

    /// The normalized document as JSON (defaults applied, unknown fields kept).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    fn apply_defaults(&mut self) {
        for domain in &mut self.domains {
            let mut merged = domain.default_item_schemas.clone();
            for (item_type, schema) in &domain.item_schemas {
                merged.insert(item_type.clone(), schema.clone());
            }
            domain.item_schemas = merged;
        }
        for instance in &mut self.instances {
            if let Some(url) = &instance.schema_url
                && !instance.custom_item_schema_urls.contains_key("profile")
            {
                let mut urls = IndexMap::new();
                urls.insert("profile".to_string(), url.clone());
                urls.extend(instance.custom_item_schema_urls.drain(..));
                instance.custom_item_schema_urls = urls;
            }
        }
        for action in self.actions.values_mut() {
            for interaction in &mut action.interactions {
                interaction
                    .from_network
                    .get_or_insert_with(|| self.name.clone());
                interaction
                    .to_network
                    .get_or_insert_with(|| self.name.clone());
            }
        }
    }

    fn check(&self) -> Result<(), CoreError> {
        non_empty("name", &self.name)?;
        if let Some(url) = &self.source_url {
            url_field("source_url", url)?;
        }
        let mut domain_names: Vec<&str> = Vec::new();
        for (i, domain) in self.domains.iter().enumerate() {
            let at = format!("domains[{i}]");
            non_empty(&format!("{at}.name"), &domain.name)?;
            if domain_names.contains(&domain.name.as_str()) {
                return Err(invalid(format!(
                    "{at}.name: duplicate domain \"{}\"",
                    domain.name
                )));
            }
            domain_names.push(&domain.name);
            if domain.minimum_cache_ttl_seconds == 0 {
                return Err(invalid(format!(
                    "{at}.minimum_cache_ttl_seconds: must be a positive integer"
                )));
            }
            for (field, schemas) in [
                ("item_schemas", &domain.item_schemas),
                ("default_item_schemas", &domain.default_item_schemas),
            ] {
                for (item_type, schema) in schemas {
                    non_empty(&format!("{at}.{field} key"), item_type)?;
                    object_field(&format!("{at}.{field}.{item_type}"), schema)?;
                }
            }
        }
        let mut kids: Vec<(&str, &str)> = Vec::new();
        for (i, instance) in self.instances.iter().enumerate() {
            let at = format!("instances[{i}]");
            non_empty(&format!("{at}.domain_name"), &instance.domain_name)?;
            url_field(&format!("{at}.instance_url"), &instance.instance_url)?;
            if let Some(url) = &instance.schema_url {
                url_field(&format!("{at}.schema_url"), url)?;
            }
            for (item_type, url) in &instance.custom_item_schema_urls {
                url_field(&format!("{at}.custom_item_schema_urls.{item_type}"), url)?;
            }
            for (k, key) in instance.keys.iter().enumerate() {
                let key_at = format!("{at}.keys[{k}]");
                non_empty(&format!("{key_at}.kid"), &key.kid)?;
                non_empty(&format!("{key_at}.alg"), &key.alg)?;
                non_empty(&format!("{key_at}.public_key"), &key.public_key)?;
                crate::peer_auth::VerifyingKey::from_instance_key(key)
                    .map_err(|e| invalid(format!("{key_at}: {e}")))?;
                // One key may appear under every domain entry of its instance, but a kid must
                // not be claimed by two different keys.
                if let Some((_, other)) = kids.iter().find(|(kid, _)| *kid == key.kid)
                    && *other != key.public_key
                {
                    return Err(invalid(format!(
                        "{key_at}.kid: \"{}\" is used by two different keys",
                        key.kid
                    )));
                }
                kids.push((&key.kid, &key.public_key));
            }
        }
        for (i, origin) in self.cross_network_origins.iter().enumerate() {
            let at = format!("cross_network_origins[{i}]");
            non_empty(&format!("{at}.name"), &origin.name)?;
            url_field(&format!("{at}.schema_url"), &origin.schema_url)?;
        }
        for (name, action) in &self.actions {
            non_empty("actions key", name)?;
            for (i, interaction) in action.interactions.iter().enumerate() {
                let at = format!("actions.{name}.interactions[{i}]");
                non_empty(&format!("{at}.from_domain"), &interaction.from_domain)?;
                non_empty(&format!("{at}.to_domain"), &interaction.to_domain)?;
                for (field, value) in [
                    ("from_network", &interaction.from_network),
                    ("to_network", &interaction.to_network),
                ] {
                    if let Some(value) = value {
                        non_empty(&format!("{at}.{field}"), value)?;
                    }
                }
                for (field, items) in [
                    ("from_items", &interaction.from_items),
                    ("to_items", &interaction.to_items),
                ] {
                    for (j, item) in items.iter().enumerate() {
                        non_empty(&format!("{at}.{field}[{j}]"), item)?;
                    }
                }
                object_field(
                    &format!("{at}.requirement_schema"),
                    &interaction.requirement_schema,
                )?;
                if let Some(schema) = &interaction.event_schema {
                    object_field(&format!("{at}.event_schema"), schema)?;
                }
            }
        }
        Ok(())
    }
}

fn invalid(detail: String) -> CoreError {
    CoreError::invalid(
        ErrorCode::SchemaReloadFailed,
        format!("Invalid network document: {detail}"),
    )
}

fn non_empty(field: &str, value: &str) -> Result<(), CoreError> {
    if value.is_empty() {
        return Err(invalid(format!("{field}: must not be empty")));
    }
    Ok(())
}

fn url_field(field: &str, value: &str) -> Result<(), CoreError> {
    url::Url::parse(value.trim())
        .map(|_| ())
        .map_err(|e| invalid(format!("{field}: \"{value}\" is not a valid URL ({e})")))
}

fn object_field(field: &str, value: &Value) -> Result<(), CoreError> {
    if value.is_object() {
        Ok(())
    } else {
        Err(invalid(format!("{field}: must be a JSON Schema object")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(err: CoreError) -> String {
        match err {
            CoreError::Invalid { message, .. } => message,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn applies_defaults_merges_and_keeps_unknown_fields() {
        let doc = NetworkDocument::parse(&json!({
            "name": "n",
            "custom_top": 1,
            "domains": [{
                "name": "d",
                "card": {"x": 1},
                "default_item_schemas": {"a": {"title": "default a"}, "b": {"title": "default b"}},
                "item_schemas": {"b": {"title": "own b"}, "c": {"title": "own c"}}
            }],
            "instances": [{"domain_name": "d", "instance_url": "http://localhost:2742", "schema_url": "https://s.example/p.json"}],
            "actions": {"connect": {"interactions": [{"from_domain": "d", "to_domain": "d", "requirement_schema": {}}]}}
        }))
        .expect("parses");
        let domain = doc.domain("d").expect("domain");
        assert_eq!(domain.minimum_cache_ttl_seconds, 300);
        let types: Vec<&str> = domain.item_schemas.keys().map(String::as_str).collect();
        assert_eq!(types, vec!["a", "b", "c"]);
        assert_eq!(domain.item_schemas["b"], json!({"title": "own b"}));
        assert_eq!(domain.extra["card"], json!({"x": 1}));
        assert_eq!(doc.extra["custom_top"], json!(1));
        assert_eq!(
            doc.instances[0].custom_item_schema_urls["profile"],
            "https://s.example/p.json"
        );
        let interaction = &doc.actions["connect"].interactions[0];
        assert_eq!(interaction.from_network.as_deref(), Some("n"));
        assert_eq!(interaction.to_network.as_deref(), Some("n"));
        assert_eq!(doc.peer_auth, PeerAuthMode::Permissive);
        let served = doc.to_value();
        assert_eq!(served["custom_top"], json!(1));
        assert_eq!(served["domains"][0]["card"], json!({"x": 1}));
    }

    #[test]
    fn explicit_custom_profile_url_wins_over_schema_url() {
        let doc = NetworkDocument::parse(&json!({
            "name": "n",
            "instances": [{
                "domain_name": "d", "instance_url": "http://a.example",
                "schema_url": "https://s.example/old.json",
                "custom_item_schema_urls": {"profile": "https://s.example/new.json"}
            }]
        }))
        .expect("parses");
        assert_eq!(
            doc.instances[0].custom_item_schema_urls["profile"],
            "https://s.example/new.json"
        );
    }

    #[test]
    fn accepts_the_newer_format_aliases() {
        let doc = NetworkDocument::parse(&json!({
            "id": "n",
            "domains": [{"id": "d", "item_schemas": {}}],
            "instances": [{"domain_id": "d", "instance_url": "http://a.example"}],
            "cross_network_origins": [{"id": "m", "schema_url": "https://r.example/m.json"}]
        }))
        .expect("parses");
        assert_eq!(doc.name, "n");
        assert_eq!(doc.domains[0].name, "d");
        assert_eq!(doc.instances[0].domain_name, "d");
        assert_eq!(doc.cross_network_origins[0].name, "m");
    }

    #[test]
    fn parses_every_example_network() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/networks");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).expect("examples dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                let raw: Value =
                    serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
                NetworkDocument::parse(&raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                seen += 1;
            }
        }
        assert!(seen >= 8, "only {seen} example networks found");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({}), "name"),
            (json!({"name": ""}), "name: must not be empty"),
            (
                json!({"name": "n", "domains": [{"name": "d", "minimum_cache_ttl_seconds": "x"}]}),
                "domains[0].minimum_cache_ttl_seconds",
            ),
            (
                json!({"name": "n", "domains": [{"name": "d", "minimum_cache_ttl_seconds": 0}]}),
                "domains[0].minimum_cache_ttl_seconds",
            ),
            (
                json!({"name": "n", "domains": [{"name": "d", "item_schemas": {"t": 5}}]}),
                "domains[0].item_schemas.t",
            ),
            (
                json!({"name": "n", "instances": [{"domain_name": "d", "instance_url": "nope"}]}),
                "instances[0].instance_url",
            ),
            (
                json!({"name": "n", "instances": [{"domain_name": "d"}]}),
                "instances[0]",
            ),
            (
                json!({"name": "n", "actions": {"a": {"interactions": [{"from_domain": "d", "to_domain": "e"}]}}}),
                "requirement_schema",
            ),
            (json!({"name": "n", "peer_auth": "sometimes"}), "peer_auth"),
            (
                json!({"name": "n", "domains": [{"name": "d"}, {"name": "d"}]}),
                "domains[1].name: duplicate",
            ),
        ];
        for (doc, expected) in cases {
            let msg = message(NetworkDocument::parse(&doc).expect_err(expected));
            assert!(msg.starts_with("Invalid network document: "), "{msg}");
            assert!(msg.contains(expected), "{msg} should mention {expected}");
        }
    }

    #[test]
    fn instance_keys_must_be_ed25519_public_keys() {
        for (key, expected) in [
            (
                json!({"kid": "k", "alg": "rsa", "public_key": "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"}),
                "keys[0]",
            ),
            (
                json!({"kid": "k", "alg": "ed25519", "public_key": "c2hvcnQ"}),
                "keys[0]",
            ),
        ] {
            let doc = json!({"name": "n", "instances": [{"domain_name": "d", "instance_url": "http://x.example", "keys": [key]}]});
            let msg = message(NetworkDocument::parse(&doc).expect_err(expected));
            assert!(msg.contains("instances[0].keys[0]"), "{msg}");
        }
    }

    #[test]
    fn kid_must_not_name_two_keys() {
        // Two valid Ed25519 public keys (base64url of 32 bytes).
        let (aaa, bbb) = (
            "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs",
            "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg",
        );
        let key = |kid: &str, pk: &str| {
            let pk = if pk == "AAA" { aaa } else { bbb };
            json!({"kid": kid, "alg": "ed25519", "public_key": pk})
        };
        let ok = json!({"name": "n", "instances": [
            {"domain_name": "a", "instance_url": "http://x.example", "keys": [key("k1", "AAA")]},
            {"domain_name": "b", "instance_url": "http://x.example", "keys": [key("k1", "AAA")]}
        ]});
        assert!(NetworkDocument::parse(&ok).is_ok());
        let clash = json!({"name": "n", "instances": [
            {"domain_name": "a", "instance_url": "http://x.example", "keys": [key("k1", "AAA")]},
            {"domain_name": "a", "instance_url": "http://y.example", "keys": [key("k1", "BBB")]}
        ]});
        assert!(message(NetworkDocument::parse(&clash).expect_err("clash")).contains("kid"));
    }
}
