//! Query-string details the typed parameters cannot express: the qs bracket notation of
//! `item_state[...]` filters (reference-contract §0.6) and repeated scalar keys.

use serde_json::{Map, Value};

use crate::error::Rejection;

/// qs stops nesting at depth 5; deeper keys are refused rather than silently flattened.
const MAX_BRACKET_DEPTH: usize = 5;
/// qs turns array indices above 20 into object keys.
const MAX_ARRAY_INDEX: usize = 20;

/// Builds the `item_state` filter object from `item_state[a][b]=v` pairs, `None` when the
/// query has none. Leaf values are strings, as qs produces them.
pub fn item_state_filter(query: &str) -> Result<Option<Value>, Rejection> {
    let mut root: Option<Value> = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key == "item_state" {
            return Err(Rejection::validation(
                "querystring/item_state Invalid input: expected record, received string",
            ));
        }
        let Some(rest) = key.strip_prefix("item_state[") else {
            continue;
        };
        let segments = bracket_segments(rest)?;
        let target = root.get_or_insert_with(|| Value::Object(Map::new()));
        insert(target, &segments, Value::String(value.into_owned()))?;
    }
    Ok(root)
}

/// Refuses a repeated scalar parameter (`?item_id=a&item_id=b`), which qs turns into an
/// array that the reference rejects.
pub fn reject_repeated(query: &str, scalar_names: &[&str]) -> Result<(), Rejection> {
    let mut seen: Vec<String> = Vec::new();
    for (key, _) in form_urlencoded::parse(query.as_bytes()) {
        if scalar_names.contains(&key.as_ref()) {
            if seen.iter().any(|s| *s == key) {
                return Err(Rejection::validation(format!(
                    "querystring/{key} Invalid input: expected a single value, received several"
                )));
            }
            seen.push(key.into_owned());
        }
    }
    Ok(())
}

/// `a][b][]` (what follows `item_state[`) into `["a", "b", ""]`.
fn bracket_segments(rest: &str) -> Result<Vec<String>, Rejection> {
    let invalid = || Rejection::validation("querystring/item_state Invalid bracket notation");
    let mut segments = Vec::new();
    let mut remaining = rest;
    loop {
        let close = remaining.find(']').ok_or_else(invalid)?;
        segments.push(remaining[..close].to_string());
        remaining = &remaining[close + 1..];
        if remaining.is_empty() {
            break;
        }
        remaining = remaining.strip_prefix('[').ok_or_else(invalid)?;
    }
    if segments.len() > MAX_BRACKET_DEPTH {
        return Err(Rejection::validation(format!(
            "querystring/item_state Nested deeper than {MAX_BRACKET_DEPTH} levels"
        )));
    }
    Ok(segments)
}

fn insert(target: &mut Value, segments: &[String], leaf: Value) -> Result<(), Rejection> {
    let conflict = || Rejection::validation("querystring/item_state Conflicting item_state keys");
    let Some((first, rest)) = segments.split_first() else {
        return Err(conflict());
    };
    let is_last = rest.is_empty();
    let child_template = || match rest.first() {
        Some(next) if next.is_empty() || array_index(next).is_some() => Value::Array(Vec::new()),
        _ => Value::Object(Map::new()),
    };
    match target {
        Value::Object(map) => {
            if is_last {
                match map.get_mut(first.as_str()) {
                    // A repeated key collects its values, as qs does.
                    Some(Value::String(existing)) => {
                        let previous = Value::String(std::mem::take(existing));
                        map.insert(first.clone(), Value::Array(vec![previous, leaf]));
                    }
                    Some(Value::Array(items)) => items.push(leaf),
                    Some(_) => return Err(conflict()),
                    None => {
                        map.insert(first.clone(), leaf);
                    }
                }
                return Ok(());
            }
            let child = map.entry(first.clone()).or_insert_with(child_template);
            insert(child, rest, leaf)
        }
        Value::Array(items) => {
            let index = if first.is_empty() {
                items.len()
            } else {
                array_index(first).ok_or_else(conflict)?.min(items.len())
            };
            if is_last {
                if index < items.len() {
                    return Err(conflict());
                }
                items.push(leaf);
                return Ok(());
            }
            if index == items.len() {
                items.push(child_template());
            }
            insert(&mut items[index], rest, leaf)
        }
        _ => Err(conflict()),
    }
}

fn array_index(segment: &str) -> Option<usize> {
    segment
        .parse::<usize>()
        .ok()
        .filter(|i| *i <= MAX_ARRAY_INDEX && segment.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_nested_objects_and_arrays_like_qs() {
        let query = "item_network=y&item_state[grade]=10&item_state[nested][a]=1&item_state[arr][]=x&item_state[arr][]=y";
        assert_eq!(
            item_state_filter(query).expect("valid"),
            Some(json!({"grade": "10", "nested": {"a": "1"}, "arr": ["x", "y"]}))
        );
    }

    #[test]
    fn decodes_percent_encoding_and_plus() {
        assert_eq!(
            item_state_filter("item_state%5Bcity%5D=New+Delhi").expect("valid"),
            Some(json!({"city": "New Delhi"}))
        );
        assert_eq!(
            item_state_filter("item_state.grade=10").expect("valid"),
            None
        );
    }

    #[test]
    fn arrays_of_objects_and_repeated_keys() {
        assert_eq!(
            item_state_filter("item_state[a][0][b]=1&item_state[t]=x&item_state[t]=y")
                .expect("valid"),
            Some(json!({"a": [{"b": "1"}], "t": ["x", "y"]}))
        );
    }

    #[test]
    fn refuses_what_qs_would_mangle() {
        for query in [
            "item_state=abc",
            "item_state[a]=1&item_state[a][b]=2",
            "item_state[a][b][c][d][e][f]=1",
            "item_state[a=1",
            "item_state[a]x=1",
        ] {
            assert!(item_state_filter(query).is_err(), "{query}");
        }
    }

    #[test]
    fn repeated_scalars_are_refused() {
        assert!(reject_repeated("item_id=a&item_id=b", &["item_id"]).is_err());
        assert!(reject_repeated("item_id=a&limit=1", &["item_id", "limit"]).is_ok());
    }
}
