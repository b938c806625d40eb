//! Text that storage can hold: PostgreSQL refuses NUL characters in `text` and `jsonb`, so
//! they are refused at the edge as a client error instead of failing in the database.

use serde_json::Value;

use crate::error::{CoreError, ErrorCode};

/// `Err(Invalid)` naming `field` when `value` contains a NUL character.
pub fn reject_nul(field: &str, value: &str) -> Result<(), CoreError> {
    if value.contains('\0') {
        return Err(CoreError::invalid(
            ErrorCode::InvalidInput,
            format!("{field} must not contain NUL characters"),
        ));
    }
    Ok(())
}

/// The same for every key and string of a JSON value.
pub fn reject_nul_in_json(field: &str, value: &Value) -> Result<(), CoreError> {
    match value {
        Value::String(s) => reject_nul(field, s),
        Value::Array(items) => items.iter().try_for_each(|v| reject_nul_in_json(field, v)),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            reject_nul(field, k)?;
            reject_nul_in_json(field, v)
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_nul_in_keys_and_nested_strings() {
        assert!(reject_nul("x", "fine").is_ok());
        assert!(reject_nul("x", "a\0b").is_err());
        assert!(reject_nul_in_json("s", &json!({"a": [1, "ok", {"b": "c"}]})).is_ok());
        assert!(reject_nul_in_json("s", &json!({"a": [{"b": "c\u{0}"}]})).is_err());
        assert!(reject_nul_in_json("s", &json!({"k\u{0}": 1})).is_err());
    }
}
