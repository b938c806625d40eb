//! JSON Schema validation (draft 2020-12) with every error collected.
//!
//! Messages follow Ajv's English wording where the reference's clients may read them
//! (`must have required property 'city'`); each violation also carries its instance path.
//! Validators are compiled once and reused; `pattern` runs on a backtracking-bounded engine
//! (lookaround still works, catastrophic patterns fail fast instead of hanging); `format` is
//! checked; no `$ref` is ever fetched by the validator (remote resolution is compiled out).

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{Draft, PatternCache, PatternOptions, ValidationError};
use serde_json::Value;

use crate::error::{CoreError, ErrorCode, Violation};

/// Backtracking steps a `pattern` may take on one value before it fails.
const PATTERN_BACKTRACK_LIMIT: usize = 100_000;
/// Compiled size cap of one `pattern`.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// Compiles JSON Schemas with the instance's options, sharing compiled patterns.
#[derive(Clone)]
pub struct SchemaCompiler {
    patterns: PatternCache,
    allow_extra_schema_data: bool,
}

impl std::fmt::Debug for SchemaCompiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaCompiler")
            .field("allow_extra_schema_data", &self.allow_extra_schema_data)
            .finish_non_exhaustive()
    }
}

impl SchemaCompiler {
    /// With `allow_extra_schema_data`, every `additionalProperties: false` and
    /// `unevaluatedProperties: false` is relaxed before compiling (`ALLOW_EXTRA_SCHEMA_DATA`).
    pub fn new(allow_extra_schema_data: bool) -> Self {
        SchemaCompiler {
            patterns: PatternCache::new(),
            allow_extra_schema_data,
        }
    }

    /// Compiles `schema`; the error is the compiler's message, shown to clients as is.
    pub fn compile(&self, schema: &Value) -> Result<CompiledSchema, String> {
        let relaxed;
        let schema = if self.allow_extra_schema_data {
            relaxed = relax_extra_properties(schema.clone());
            &relaxed
        } else {
            schema
        };
        jsonschema::options()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(true)
            .with_pattern_options(
                PatternOptions::fancy_regex()
                    .backtrack_limit(PATTERN_BACKTRACK_LIMIT)
                    .size_limit(PATTERN_SIZE_LIMIT),
            )
            .with_pattern_cache(self.patterns.clone())
            .build(schema)
            .map(CompiledSchema)
            .map_err(|e| e.to_string())
    }
}

/// A compiled validator, cheap to share.
pub struct CompiledSchema(jsonschema::Validator);

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompiledSchema")
    }
}

impl CompiledSchema {
    /// Every violation of `instance`, in the validator's order; empty when valid.
    pub fn violations(&self, instance: &Value) -> Vec<Violation> {
        self.0
            .iter_errors(instance)
            .map(|error| Violation {
                path: error.instance_path().as_str().to_string(),
                message: ajv_message(&error),
            })
            .collect()
    }

    /// `Ok` when valid, else a 400 whose message is `Invalid <label>: <messages>`.
    pub fn check(&self, instance: &Value, label: &str, code: ErrorCode) -> Result<(), CoreError> {
        let violations = self.violations(instance);
        if violations.is_empty() {
            return Ok(());
        }
        Err(violations_error(label, code, violations))
    }
}

/// The reference's message: `Invalid <label>: ` + messages joined with `, `.
pub fn violations_error(label: &str, code: ErrorCode, violations: Vec<Violation>) -> CoreError {
    let joined = violations
        .iter()
        .map(|v| v.message.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let joined = if joined.is_empty() {
        "unknown validation error"
    } else {
        &joined
    };
    CoreError::invalid_with(code, format!("Invalid {label}: {joined}"), violations)
}

fn ajv_message(error: &ValidationError<'_>) -> String {
    use ValidationErrorKind as K;
    match error.kind() {
        K::AdditionalProperties { .. } => "must NOT have additional properties".into(),
        K::AdditionalItems { limit } => format!("must NOT have more than {limit} items"),
        K::Required { property } => {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_string);
            format!("must have required property '{name}'")
        }
        K::Type { kind } => format!("must be {}", type_list(kind)),
        K::Enum { .. } => "must be equal to one of the allowed values".into(),
        K::Constant { .. } => "must be equal to constant".into(),
        K::MinLength { limit } => format!("must NOT have fewer than {limit} characters"),
        K::MaxLength { limit } => format!("must NOT have more than {limit} characters"),
        K::Minimum { limit } => format!("must be >= {limit}"),
        K::Maximum { limit } => format!("must be <= {limit}"),
        K::ExclusiveMinimum { limit } => format!("must be > {limit}"),
        K::ExclusiveMaximum { limit } => format!("must be < {limit}"),
        K::MinItems { limit } => format!("must NOT have fewer than {limit} items"),
        K::MaxItems { limit } => format!("must NOT have more than {limit} items"),
        K::MinProperties { limit } => format!("must NOT have fewer than {limit} properties"),
        K::MaxProperties { limit } => format!("must NOT have more than {limit} properties"),
        K::Pattern { pattern } => format!("must match pattern \"{pattern}\""),
        K::UniqueItems => "must NOT have duplicate items".into(),
        K::MultipleOf { multiple_of } => format!("must be multiple of {multiple_of}"),
        K::AnyOf { .. } => "must match a schema in anyOf".into(),
        K::OneOfNotValid { .. } | K::OneOfMultipleValid { .. } => {
            "must match exactly one schema in oneOf".into()
        }
        K::Not { .. } => "must NOT be valid".into(),
        K::PropertyNames { .. } => "property name must be valid".into(),
        K::UnevaluatedProperties { .. } => "must NOT have unevaluated properties".into(),
        K::UnevaluatedItems { .. } => "must NOT have unevaluated items".into(),
        K::Contains => "must contain at least 1 valid item(s)".into(),
        K::Format { format } => format!("must match format \"{format}\""),
        K::FalseSchema => "boolean schema is false".into(),
        K::BacktrackLimitExceeded { .. } => {
            "pattern is too complex to evaluate on this value".into()
        }
        _ => error.to_string(),
    }
}

fn type_list(kind: &TypeKind) -> String {
    match kind {
        TypeKind::Single(t) => t.to_string(),
        TypeKind::Multiple(set) => set
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// `ALLOW_EXTRA_SCHEMA_DATA`: turns every `additionalProperties: false` and
/// `unevaluatedProperties: false` into `true`, at any depth.
fn relax_extra_properties(mut schema: Value) -> Value {
    fn walk(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for key in ["additionalProperties", "unevaluatedProperties"] {
                    if map.get(key) == Some(&Value::Bool(false)) {
                        map.insert(key.to_string(), Value::Bool(true));
                    }
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut schema);
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, Instant};

    fn student_schema() -> Value {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "grade", "city"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "grade": {"type": "string", "enum": ["8", "9", "10", "11", "12"]},
                "city": {"type": "string"},
                "email": {"type": "string", "format": "email"}
            }
        })
    }

    fn message_of(err: CoreError) -> (String, Vec<Violation>) {
        match err {
            CoreError::Invalid {
                message,
                violations,
                ..
            } => (message, violations),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn collects_every_error_with_ajv_wording_and_paths() {
        let compiled = SchemaCompiler::new(false)
            .compile(&student_schema())
            .expect("compiles");
        let err = compiled
            .check(
                &json!({"name": "", "grade": "7", "foo": 1}),
                "item_state",
                ErrorCode::InvalidItemState,
            )
            .expect_err("invalid");
        let (message, violations) = message_of(err);
        assert!(message.starts_with("Invalid item_state: "), "{message}");
        for part in [
            "must have required property 'city'",
            "must NOT have additional properties",
            "must NOT have fewer than 1 characters",
            "must be equal to one of the allowed values",
        ] {
            assert!(message.contains(part), "{message} lacks {part}");
        }
        let paths: Vec<&str> = violations.iter().map(|v| v.path.as_str()).collect();
        assert!(paths.contains(&"/name"), "{paths:?}");
        assert!(paths.contains(&"/grade"), "{paths:?}");
    }

    #[test]
    fn absent_state_is_not_an_object() {
        let compiled = SchemaCompiler::new(false)
            .compile(&student_schema())
            .expect("compiles");
        let (message, _) = message_of(
            compiled
                .check(&Value::Null, "item_state", ErrorCode::InvalidItemState)
                .expect_err("null"),
        );
        assert_eq!(message, "Invalid item_state: must be object");
    }

    #[test]
    fn formats_are_checked() {
        let compiled = SchemaCompiler::new(false)
            .compile(&student_schema())
            .expect("compiles");
        let ok = json!({"name": "a", "grade": "9", "city": "x", "email": "a@example.org"});
        assert!(compiled.violations(&ok).is_empty());
        let bad = json!({"name": "a", "grade": "9", "city": "x", "email": "not-an-email"});
        let violations = compiled.violations(&bad);
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].path, "/email");
        assert!(violations[0].message.contains("format"));
    }

    #[test]
    fn catastrophic_patterns_fail_fast_and_lookaround_works() {
        let compiler = SchemaCompiler::new(false);
        let evil = compiler
            .compile(&json!({"type": "string", "pattern": "^(a+)+(?=b)$"}))
            .expect("compiles");
        let started = Instant::now();
        let violations = evil.violations(&json!(format!("{}c", "a".repeat(40))));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(violations.len(), 1);
        let lookahead = compiler
            .compile(&json!({"type": "string", "pattern": "^(?=.*[0-9])[a-z0-9]+$"}))
            .expect("compiles");
        assert!(lookahead.violations(&json!("abc1")).is_empty());
        assert_eq!(lookahead.violations(&json!("abc")).len(), 1);
    }

    #[test]
    fn remote_refs_are_never_fetched() {
        let err = SchemaCompiler::new(false)
            .compile(&json!({"$ref": "http://169.254.169.254/latest/meta-data"}))
            .expect_err("remote ref must not resolve");
        assert!(!err.is_empty());
    }

    #[test]
    fn local_refs_resolve() {
        let compiled = SchemaCompiler::new(false)
            .compile(&json!({
                "$defs": {"name": {"type": "string", "minLength": 2}},
                "type": "object",
                "properties": {"name": {"$ref": "#/$defs/name"}}
            }))
            .expect("compiles");
        assert!(compiled.violations(&json!({"name": "ab"})).is_empty());
        assert_eq!(compiled.violations(&json!({"name": "a"})).len(), 1);
    }

    #[test]
    fn allow_extra_schema_data_relaxes_closed_objects() {
        let schema = json!({"type": "object", "additionalProperties": false,
            "properties": {"inner": {"type": "object", "unevaluatedProperties": false}}});
        let instance = json!({"x": 1, "inner": {"y": 2}});
        assert!(
            !SchemaCompiler::new(false)
                .compile(&schema)
                .expect("c")
                .violations(&instance)
                .is_empty()
        );
        assert!(
            SchemaCompiler::new(true)
                .compile(&schema)
                .expect("c")
                .violations(&instance)
                .is_empty()
        );
    }

    #[test]
    fn type_lists_read_like_ajv() {
        let compiled = SchemaCompiler::new(false)
            .compile(&json!({"type": ["string", "null"]}))
            .expect("compiles");
        let violations = compiled.violations(&json!(1));
        assert_eq!(violations[0].message, "must be null,string");
    }
}
