//! Fields marked `"private": true` in an item schema never leave the instance: they are
//! removed from items served to peers and to network-wide reads, and filters on them are
//! refused there (no probing by filter).

use serde_json::{Map, Value};

/// One step of a path into an item's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    /// Every element of an array.
    EachItem,
}

/// The private fields of one item schema, as paths into `item_state`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrivateFields(Vec<Vec<Step>>);

/// How deep schemas are followed (nesting and `$ref` hops together).
const MAX_DEPTH: usize = 32;

impl PrivateFields {
    /// Collects the private fields of `schema` through `properties`, array `items`,
    /// `allOf`/`anyOf`/`oneOf`/`then`/`else`, and local `$ref`s.
    pub fn of_schema(schema: &Value) -> PrivateFields {
        let mut paths = Vec::new();
        collect(
            schema,
            schema,
            &mut Vec::new(),
            &mut paths,
            &mut Vec::new(),
            0,
        );
        paths.sort_by_key(|p: &Vec<Step>| format!("{p:?}"));
        paths.dedup();
        PrivateFields(paths)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn merge(&mut self, other: &PrivateFields) {
        for path in &other.0 {
            if !self.0.contains(path) {
                self.0.push(path.clone());
            }
        }
    }

    /// Removes every private field from `state`.
    pub fn strip(&self, state: &mut Value) {
        for path in &self.0 {
            remove(state, path);
        }
    }

    /// The first private field a containment filter touches, as `a.b`, if any.
    pub fn touched_by(&self, filter: &Map<String, Value>) -> Option<String> {
        let mut filter_paths = Vec::new();
        filter_leaves(
            &Value::Object(filter.clone()),
            &mut Vec::new(),
            &mut filter_paths,
        );
        self.0.iter().find_map(|private| {
            filter_paths
                .iter()
                .any(|path| path.len() >= private.len() && path[..private.len()] == private[..])
                .then(|| display(private))
        })
    }
}

/// Walks `schema`; `following` holds the `$ref`s being expanded on the current path, so a
/// recursive schema is expanded once instead of endlessly.
fn collect(
    schema: &Value,
    root: &Value,
    at: &mut Vec<Step>,
    out: &mut Vec<Vec<Step>>,
    following: &mut Vec<String>,
    depth: usize,
) {
    let Value::Object(map) = schema else { return };
    if depth > MAX_DEPTH {
        return;
    }
    if let Some(Value::String(reference)) = map.get("$ref")
        && !following.contains(reference)
        && let Some(pointer) = reference.strip_prefix('#')
        && let Some(target) = root.pointer(pointer)
    {
        following.push(reference.clone());
        collect(target, root, at, out, following, depth + 1);
        following.pop();
    }
    if let Some(Value::Object(properties)) = map.get("properties") {
        for (name, property) in properties {
            at.push(Step::Key(name.clone()));
            if property.get("private") == Some(&Value::Bool(true)) {
                out.push(at.clone());
            } else {
                collect(property, root, at, out, following, depth + 1);
            }
            at.pop();
        }
    }
    if let Some(items) = map.get("items") {
        at.push(Step::EachItem);
        collect(items, root, at, out, following, depth + 1);
        at.pop();
    }
    for combinator in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = map.get(combinator) {
            for branch in branches {
                collect(branch, root, at, out, following, depth + 1);
            }
        }
    }
    for branch in ["then", "else"] {
        if let Some(sub) = map.get(branch) {
            collect(sub, root, at, out, following, depth + 1);
        }
    }
}

fn remove(value: &mut Value, path: &[Step]) {
    match (path, value) {
        ([Step::Key(key)], Value::Object(map)) => {
            map.remove(key);
        }
        ([Step::Key(key), rest @ ..], Value::Object(map)) => {
            if let Some(child) = map.get_mut(key) {
                remove(child, rest);
            }
        }
        ([Step::EachItem, rest @ ..], Value::Array(items)) if !rest.is_empty() => {
            for item in items {
                remove(item, rest);
            }
        }
        _ => {}
    }
}

fn filter_leaves(value: &Value, at: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                at.push(Step::Key(key.clone()));
                filter_leaves(child, at, out);
                at.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => {
            at.push(Step::EachItem);
            for item in items {
                filter_leaves(item, at, out);
            }
            at.pop();
        }
        _ => out.push(at.clone()),
    }
}

fn display(path: &[Step]) -> String {
    path.iter()
        .map(|step| match step {
            Step::Key(key) => key.as_str(),
            Step::EachItem => "[]",
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "phone": {"type": "string", "private": true},
                "contact": {"type": "object", "properties": {
                    "email": {"type": "string", "private": true},
                    "city": {"type": "string"}
                }},
                "guardians": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"}, "phone": {"type": "string", "private": true}
                }}}
            },
            "allOf": [{"$ref": "#/$defs/extra"}],
            "$defs": {"extra": {"properties": {"aadhaar": {"type": "string", "private": true}}}}
        })
    }

    #[test]
    fn strips_private_fields_at_every_depth() {
        let fields = PrivateFields::of_schema(&schema());
        let mut state = json!({
            "name": "Asha", "phone": "123", "aadhaar": "9999",
            "contact": {"email": "a@x.org", "city": "Pune"},
            "guardians": [{"name": "G", "phone": "456"}, {"name": "H"}]
        });
        fields.strip(&mut state);
        assert_eq!(
            state,
            json!({"name": "Asha", "contact": {"city": "Pune"}, "guardians": [{"name": "G"}, {"name": "H"}]})
        );
    }

    #[test]
    fn filters_touching_private_fields_are_found() {
        let fields = PrivateFields::of_schema(&schema());
        let touched = |filter: Value| fields.touched_by(filter.as_object().expect("object"));
        assert_eq!(touched(json!({"phone": "123"})), Some("phone".to_string()));
        assert_eq!(
            touched(json!({"contact": {"email": "a@x.org"}})),
            Some("contact.email".to_string())
        );
        assert_eq!(
            touched(json!({"guardians": [{"phone": "1"}]})),
            Some("guardians.[].phone".to_string())
        );
        assert_eq!(
            touched(json!({"aadhaar": "9"})),
            Some("aadhaar".to_string())
        );
        assert_eq!(
            touched(json!({"name": "Asha", "contact": {"city": "Pune"}})),
            None
        );
        assert_eq!(touched(json!({})), None);
    }

    #[test]
    fn schemas_without_private_fields_have_none_and_cycles_end() {
        assert!(
            PrivateFields::of_schema(&json!({"properties": {"a": {"type": "string"}}})).is_empty()
        );
        let cyclic = json!({"$ref": "#", "properties": {"a": {"$ref": "#"}}});
        assert!(PrivateFields::of_schema(&cyclic).is_empty());
    }
}
