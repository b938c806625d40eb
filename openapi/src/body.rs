//! `JsonBody<T>`: a JSON request payload parsed with serde under our own limits.
//!
//! It documents itself like poem-openapi's `Json<T>` but parses strictly (a string field
//! does not accept a number), caps size and nesting before parsing, and reports failures
//! in the reference's framework shapes with the path of the offending field.

use poem::http::StatusCode;
use poem::{Request, RequestBody};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use serde::de::DeserializeOwned;

use crate::error::Rejection;

/// Largest accepted request body (the reference's Fastify default, 1 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// Deepest accepted JSON nesting.
pub const MAX_JSON_DEPTH: usize = 32;

/// Request limits, stored in the request extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub max_depth: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            max_bytes: DEFAULT_BODY_LIMIT,
            max_depth: MAX_JSON_DEPTH,
        }
    }
}

pub struct JsonBody<T>(pub T);

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn check_content_type(content_type: &str) -> bool {
        is_json(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type + DeserializeOwned + Send> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let limits = request
            .extensions()
            .get::<BodyLimits>()
            .copied()
            .unwrap_or_default();
        let bytes = body
            .take()?
            .into_bytes_limit(limits.max_bytes)
            .await
            .map_err(|err| match err {
                poem::error::ReadBodyError::PayloadTooLarge => too_large(),
                other => Rejection::new(
                    StatusCode::BAD_REQUEST,
                    "FST_ERR_CTP_INVALID_JSON_BODY",
                    other.to_string(),
                ),
            })?;
        Ok(JsonBody(parse_json(&bytes, limits.max_depth)?))
    }
}

poem_openapi::impl_apirequest_for_payload!(JsonBody<T>, T: Type + DeserializeOwned + Send);

pub fn is_json(content_type: &str) -> bool {
    matches!(content_type.parse::<mime::Mime>(), Ok(mime) if mime.type_() == "application"
        && (mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json")))
}

pub fn too_large() -> Rejection {
    Rejection::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "FST_ERR_CTP_BODY_TOO_LARGE",
        "Request body is too large",
    )
}

/// Parses `bytes` into `T` with the reference's messages for empty and malformed bodies and
/// `body/<path> <problem>` for values of the wrong shape.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8], max_depth: usize) -> Result<T, Rejection> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "FST_ERR_CTP_EMPTY_JSON_BODY",
            "Body cannot be empty when content-type is set to 'application/json'",
        ));
    }
    if nesting_depth(bytes) > max_depth {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "FST_ERR_CTP_JSON_TOO_DEEP",
            format!("Body JSON is nested deeper than {max_depth} levels"),
        ));
    }
    // Syntax first, so malformed JSON is told apart from well-formed JSON of the wrong shape.
    if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "FST_ERR_CTP_INVALID_JSON_BODY",
            "Body is not valid JSON but content-type is set to 'application/json'",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        Rejection::validation(describe(&path, &err.inner().to_string()))
    })
}

/// Reads `T` from a JSON value already parsed (an element of a batch body), with the
/// messages [`parse_json`] gives for a body of the same shape.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Rejection> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        Rejection::validation(describe(&path, &err.inner().to_string()))
    })
}

/// `body/<a>/<b> <message>`, with serde's wording made readable for API clients.
fn describe(path: &str, message: &str) -> String {
    let mut segments: Vec<String> = path
        .split('.')
        .filter(|s| !str::is_empty(s) && *s != "?")
        .map(|s| s.replace(['[', ']'], "/").trim_end_matches('/').to_string())
        .collect();
    // serde reports an unknown field at the field itself: report it at its parent.
    if message.starts_with("unknown field") {
        segments.pop();
    }
    let mut pointer = segments.join("/");
    // serde reports a missing field at its parent: move it into the path.
    let message = match message.split('`').collect::<Vec<_>>().as_slice() {
        // `str::is_empty`: `poem_openapi::types::Type::is_empty` (always false for `&str`)
        // would be found first on `&&str`.
        ["missing field ", field, rest] if rest.starts_with(' ') || str::is_empty(rest) => {
            if !pointer.is_empty() {
                pointer.push('/');
            }
            pointer.push_str(field);
            "Required".to_string()
        }
        ["unknown field ", field, ..] => format!("Unrecognized key: \"{field}\""),
        _ => strip_position(message),
    };
    format!("body/{pointer} {message}")
}

/// serde_json appends " at line L column C", which means nothing to API clients.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

/// Maximum nesting of arrays/objects, counted without parsing (strings are skipped).
fn nesting_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        item_id: String,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Strict {
        a: Option<u32>,
    }

    fn code_and_message<T: DeserializeOwned + std::fmt::Debug>(
        raw: &str,
    ) -> (&'static str, String) {
        let err = parse_json::<T>(raw.as_bytes(), 4).expect_err(raw);
        (err.code, err.message)
    }

    #[test]
    fn describe_moves_missing_fields_into_the_path() {
        assert_eq!(
            describe(".", "missing field `name` at line 1 column 2"),
            "body/name Required"
        );
    }

    #[test]
    fn reports_the_reference_codes() {
        assert_eq!(
            code_and_message::<Body>("  ").0,
            "FST_ERR_CTP_EMPTY_JSON_BODY"
        );
        assert_eq!(
            code_and_message::<Body>("{\"name\":").0,
            "FST_ERR_CTP_INVALID_JSON_BODY"
        );
        assert_eq!(
            code_and_message::<Body>("[[[[[1]]]]]").0,
            "FST_ERR_CTP_JSON_TOO_DEEP"
        );
        let (code, message) = code_and_message::<Body>("{}");
        assert_eq!(code, "FST_ERR_VALIDATION");
        assert_eq!(message, "body/name Required");
        let (_, message) = code_and_message::<Body>(r#"{"name": 5}"#);
        assert!(
            message.starts_with("body/name invalid type: integer `5`, expected a string"),
            "{message}"
        );
        let (_, message) = code_and_message::<Body>(r#"{"name": "x", "inner": {}}"#);
        assert_eq!(message, "body/inner/item_id Required");
        let (_, message) = code_and_message::<Strict>(r#"{"b": 1}"#);
        assert!(
            message.starts_with("body/ Unrecognized key: \"b\""),
            "{message}"
        );
        let (_, message) = code_and_message::<Body>("null");
        assert!(message.starts_with("body/ invalid type: null"), "{message}");
    }

    #[test]
    fn a_parsed_value_gets_the_messages_of_a_body() {
        for raw in [
            "{}",
            r#"{"name": 5}"#,
            r#"{"name": "x", "inner": {}}"#,
            "null",
            "5",
        ] {
            let value: serde_json::Value = serde_json::from_str(raw).expect("json");
            let from_value = from_value::<Body>(value).expect_err(raw);
            let from_bytes = parse_json::<Body>(raw.as_bytes(), 4).expect_err(raw);
            assert_eq!(
                (from_value.code, from_value.message),
                (from_bytes.code, from_bytes.message),
                "{raw}"
            );
        }
    }

    #[test]
    fn depth_ignores_brackets_inside_strings() {
        assert_eq!(
            nesting_depth(br#"{"a": "[[[[[[{{{{", "b": [1, {"c": "\"]"}]}"#),
            3
        );
        assert!(parse_json::<serde_json::Value>(br#"{"a": "[[[[[[[[["}"#, 2).is_ok());
    }
}
