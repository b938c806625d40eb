//! Which interaction of the Network Schema allows an action, and the JSON Schemas of that
//! interaction (`requirement_schema`, `event_schema`), compiled once and reused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use crate::error::{CoreError, ErrorCode, Violation};
use crate::model::ItemRef;
use crate::network::catalog::NetworkCatalog;
use crate::network::document::Interaction;
use crate::network::validation::violations_error;
use crate::network::{CompiledSchema, SchemaCompiler};

/// Compiled schemas are keyed by their text, so a reloaded document never sees a stale one.
const MAX_CACHED_SCHEMAS: usize = 256;

/// The status every action starts with; always allowed, whatever `event_schema` lists.
pub(super) const CREATED: &str = "created";

pub(super) struct SchemaCache {
    compiler: SchemaCompiler,
    compiled: Mutex<HashMap<String, Arc<CompiledSchema>>>,
}

impl SchemaCache {
    pub(super) fn new(compiler: SchemaCompiler) -> Self {
        SchemaCache {
            compiler,
            compiled: Mutex::new(HashMap::new()),
        }
    }

    /// The compiled `schema`; the error is the compiler's message.
    fn get(&self, schema: &Value) -> Result<Arc<CompiledSchema>, String> {
        let key = schema.to_string();
        if let Some(found) = self.lock().get(&key) {
            return Ok(found.clone());
        }
        let compiled = Arc::new(self.compiler.compile(schema)?);
        let mut cache = self.lock();
        if cache.len() >= MAX_CACHED_SCHEMAS {
            cache.clear();
        }
        cache.insert(key, compiled.clone());
        Ok(compiled)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<CompiledSchema>>> {
        // A poisoned cache only ever held complete entries.
        self.compiled
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `requirements_snapshot` against the interaction's `requirement_schema`: 400
    /// `INVALID_ACTION_REQUEST` listing every violation.
    pub(super) fn check_requirements(
        &self,
        interaction: &Interaction,
        requirements: &Value,
    ) -> Result<(), CoreError> {
        let code = ErrorCode::InvalidActionRequest;
        let compiled = self
            .get(&interaction.requirement_schema)
            .map_err(|message| CoreError::invalid(code, message))?;
        compiled.check(requirements, "action requirements", code)
    }

    /// An event payload against the interaction's `event_schema` (none: anything goes). The
    /// initial `created` status is outside most schemas' enums and always allowed.
    pub(super) fn check_event(
        &self,
        interaction: &Interaction,
        payload: &Value,
        status: &str,
        code: ErrorCode,
    ) -> Result<(), CoreError> {
        let Some(schema) = interaction.event_schema.as_ref().filter(|s| !is_empty(s)) else {
            return Ok(());
        };
        let compiled = self
            .get(schema)
            .map_err(|message| CoreError::invalid(code, message))?;
        let violations: Vec<Violation> = compiled
            .violations(payload)
            .into_iter()
            .filter(|v| !(status == CREATED && v.path == "/status"))
            .collect();
        if violations.is_empty() {
            return Ok(());
        }
        Err(violations_error("event payload", code, violations))
    }
}

fn is_empty(schema: &Value) -> bool {
    schema.as_object().is_some_and(Map::is_empty)
}

/// The first interaction of `action_name` in the target network's document that allows
/// `source` to act on `target` (reference-contract §2.4); the error is the reference's text.
pub(super) fn interaction<'c>(
    catalog: &'c NetworkCatalog,
    action_name: &str,
    source: &ItemRef,
    target: &ItemRef,
) -> Result<&'c Interaction, String> {
    let network = &target.network;
    let doc = catalog
        .network(network)
        .map_err(|_| format!("Network \"{network}\" is not configured."))?;
    let action = doc.actions.get(action_name).ok_or_else(|| {
        format!("Action \"{action_name}\" is not defined for network \"{network}\".")
    })?;
    let allows = |i: &&Interaction| {
        i.from_network.as_deref().unwrap_or(&doc.name) == source.network
            && i.from_domain == source.domain
            && (i.from_items.is_empty() || i.from_items.contains(&source.item_type))
            && i.to_network.as_deref().unwrap_or(&doc.name) == target.network
            && i.to_domain == target.domain
            && (i.to_items.is_empty() || i.to_items.contains(&target.item_type))
    };
    action.interactions.iter().find(allows).ok_or_else(|| {
        format!(
            "Action \"{action_name}\" is not allowed from \"{}/{}/{}\" to \"{}/{}/{}\".",
            source.network,
            source.domain,
            source.item_type,
            target.network,
            target.domain,
            target.item_type
        )
    })
}

/// The event payload (reference-contract §6.5): the `event_schema` properties found in the
/// context or the requirements, then `status` and `remark`.
pub(super) fn event_payload(
    interaction: &Interaction,
    action_name: &str,
    status: &str,
    remarks: Option<&str>,
    source: &ItemRef,
    target: &ItemRef,
    requirements: &Value,
) -> Value {
    let mut out = Map::new();
    let properties = interaction
        .event_schema
        .as_ref()
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object);
    for key in properties.into_iter().flat_map(|p| p.keys()) {
        let value = match key.as_str() {
            "status" | "remark" => continue,
            "action_name" => Some(json!(action_name)),
            "source_item" => Some(json!(source)),
            "target_item" => Some(json!(target)),
            "requirements_snapshot" => Some(requirements.clone()),
            other => requirements.get(other).cloned(),
        };
        if let Some(value) = value {
            out.insert(key.clone(), value);
        }
    }
    out.insert("status".into(), json!(status));
    let remark = remarks.map_or_else(|| format!("Action status set to {status}"), str::to_string);
    out.insert("remark".into(), json!(remark));
    Value::Object(out)
}
