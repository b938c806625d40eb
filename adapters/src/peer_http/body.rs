//! Request bodies and answer parsing of the peer calls, kept free of I/O so they are
//! tested on their own.

use dpg_core::model::{ItemFilter, PeerItem};
use dpg_core::ports::{PeerError, PeerPage, PeerPageAnswer};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// The `count_local` body: the filter's keys in the reference's order, absent ones omitted.
/// `created_by` is never sent: peer routes are not owner-scoped.
pub(super) fn count_body(filter: &ItemFilter) -> Value {
    Value::Object(filter_keys(filter))
}

/// The `fetch_local` body: the filter's keys, then `limit`, `offset`, and `cursor` when set.
pub(super) fn fetch_body(filter: &ItemFilter, page: &PeerPage) -> Value {
    let mut body = filter_keys(filter);
    body.insert("limit".into(), Value::from(page.limit));
    body.insert("offset".into(), Value::from(page.offset));
    if let Some(cursor) = &page.cursor {
        body.insert("cursor".into(), Value::from(cursor.as_str()));
    }
    Value::Object(body)
}

fn filter_keys(filter: &ItemFilter) -> Map<String, Value> {
    let mut body = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            body.insert(key.to_string(), value);
        }
    };
    put(
        "item_id",
        filter.item_id.map(|id| Value::from(id.to_string())),
    );
    put("item_network", Some(Value::from(filter.network.as_str())));
    put("item_domain", Some(Value::from(filter.domain.as_str())));
    put("item_type", filter.item_type.as_deref().map(Value::from));
    put(
        "item_instance_url",
        filter.instance_url.as_deref().map(Value::from),
    );
    put(
        "item_schema_url",
        filter.schema_url.as_deref().map(Value::from),
    );
    put("item_state", filter.state.as_ref().map(|s| s.to_value()));
    // GeoRadius::new only admits finite numbers, so these are always JSON numbers.
    put("item_latitude", filter.geo.map(|g| Value::from(g.latitude)));
    put(
        "item_longitude",
        filter.geo.map(|g| Value::from(g.longitude)),
    );
    put(
        "radius_meters",
        filter.geo.map(|g| Value::from(g.radius_meters)),
    );
    body
}

/// A `count_local` answer: `{"count": <JSON integer >= 0>}`; anything else breaks the
/// protocol (the reference would concatenate a string count).
pub(super) fn parse_count(bytes: &[u8]) -> Result<u64, PeerError> {
    let answer = parse_object(bytes)?;
    match answer.get("count") {
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| invalid("count is not a non-negative integer")),
        Some(_) => Err(invalid("count is not a number")),
        None => Err(invalid("count is missing")),
    }
}

/// A `fetch_local` answer: an object whose `items` is an array of complete item records;
/// `meta` is optional. Read straight into items, without an intermediate JSON tree: the
/// caller checks what each item claims.
pub(super) fn parse_page(bytes: &[u8]) -> Result<PeerPageAnswer, PeerError> {
    let page: WirePage = serde_json::from_slice(bytes).map_err(|e| {
        PeerError::Invalid(match e.classify() {
            serde_json::error::Category::Data => format!("not a page: {e}"),
            _ => "the answer is not JSON".to_string(),
        })
    })?;
    let meta = page.meta.unwrap_or_default();
    Ok(PeerPageAnswer {
        items: page.items,
        total: meta.total,
        cursor_capable: meta.next_cursor,
    })
}

#[derive(Deserialize)]
struct WirePage {
    items: Vec<PeerItem>,
    #[serde(default)]
    meta: Option<WireMeta>,
}

#[derive(Default, Deserialize)]
struct WireMeta {
    /// Informative only: anything but a non-negative integer is taken as absent.
    #[serde(default, deserialize_with = "count_or_none")]
    total: Option<u64>,
    /// Present, even `null`: the peer pages by cursor.
    #[serde(default, deserialize_with = "present")]
    next_cursor: bool,
}

fn count_or_none<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Ok(Value::deserialize(deserializer)?.as_u64())
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// The statuses of a batch answer, `{"results": [{"status": 201, ...}, ...]}`: `None` unless
/// there is exactly one HTTP status per event sent.
pub(super) fn parse_batch_statuses(bytes: &[u8], sent: usize) -> Option<Vec<u16>> {
    let answer = parse_object(bytes).ok()?;
    let results = answer.get("results")?.as_array()?;
    if results.len() != sent {
        return None;
    }
    results
        .iter()
        .map(|result| {
            let status = result.get("status")?.as_u64()?;
            u16::try_from(status)
                .ok()
                .filter(|s| (100..600).contains(s))
        })
        .collect()
}

fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, PeerError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(invalid("the answer is not a JSON object")),
        Err(_) => Err(invalid("the answer is not JSON")),
    }
}

fn invalid(reason: &str) -> PeerError {
    PeerError::Invalid(reason.to_string())
}

#[cfg(test)]
mod tests {
    use dpg_core::model::{GeoRadius, StateFilter};
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn a_batch_answer_needs_one_http_status_per_event() {
        let answer =
            br#"{"results": [{"status": 201, "event_id": null}, {"status": 403, "code": "X"}]}"#;
        assert_eq!(parse_batch_statuses(answer, 2), Some(vec![201, 403]));
        assert_eq!(parse_batch_statuses(answer, 3), None, "one result missing");
        for bad in [
            &br#"{"results": [{"status": 201}, {"status": 99}]}"#[..],
            br#"{"results": [{"status": 201}, {"status": "403"}]}"#,
            br#"{"results": [{"status": 201}, {}]}"#,
            br#"{"results": {"status": 201}}"#,
            br#"[{"status": 201}, {"status": 201}]"#,
            b"<html>not found</html>",
        ] {
            assert_eq!(
                parse_batch_statuses(bad, 2),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn keys(body: &Value) -> Vec<&str> {
        body.as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect()
    }

    fn full_filter() -> ItemFilter {
        ItemFilter {
            network: "dev".into(),
            domain: "jobs".into(),
            item_type: Some("job".into()),
            item_id: Some(Uuid::nil()),
            instance_url: Some("http://a.test".into()),
            schema_url: Some("http://a.test/s.json".into()),
            state: Some(StateFilter::new(json!({"city": "Pune", "tags": ["x"]})).expect("state")),
            geo: Some(GeoRadius::new(18.5, 73.8, 5000.0).expect("geo")),
            created_by: Some("user-1".into()),
        }
    }

    #[test]
    fn count_body_carries_every_filter_key_in_reference_order() {
        let body = count_body(&full_filter());
        assert_eq!(
            keys(&body),
            [
                "item_id",
                "item_network",
                "item_domain",
                "item_type",
                "item_instance_url",
                "item_schema_url",
                "item_state",
                "item_latitude",
                "item_longitude",
                "radius_meters",
            ]
        );
        assert_eq!(
            body,
            json!({
                "item_id": "00000000-0000-0000-0000-000000000000",
                "item_network": "dev",
                "item_domain": "jobs",
                "item_type": "job",
                "item_instance_url": "http://a.test",
                "item_schema_url": "http://a.test/s.json",
                "item_state": {"city": "Pune", "tags": ["x"]},
                "item_latitude": 18.5,
                "item_longitude": 73.8,
                "radius_meters": 5000.0,
            })
        );
    }

    #[test]
    fn absent_filter_keys_are_omitted_and_owner_never_sent() {
        let mut filter = ItemFilter::new("dev", "jobs");
        filter.created_by = Some("user-1".into());
        assert_eq!(
            count_body(&filter),
            json!({"item_network": "dev", "item_domain": "jobs"})
        );
        let body = fetch_body(
            &filter,
            &PeerPage {
                limit: 10,
                offset: 0,
                cursor: None,
            },
        );
        assert_eq!(
            body,
            json!({"item_network": "dev", "item_domain": "jobs", "limit": 10, "offset": 0})
        );
        assert!(!body.to_string().contains("created_by"));
    }

    #[test]
    fn geo_sends_the_three_numbers_together() {
        let mut filter = ItemFilter::new("dev", "jobs");
        filter.geo = Some(GeoRadius::new(-33.9, 151.2, 1.5).expect("geo"));
        let body = count_body(&filter);
        assert_eq!(body["item_latitude"], json!(-33.9));
        assert_eq!(body["item_longitude"], json!(151.2));
        assert_eq!(body["radius_meters"], json!(1.5));
        assert!(body["item_latitude"].is_number());
    }

    #[test]
    fn fetch_body_sends_cursor_only_when_set() {
        let filter = full_filter();
        let mut page = PeerPage {
            limit: 20,
            offset: 40,
            cursor: None,
        };
        let body = fetch_body(&filter, &page);
        assert_eq!(keys(&body)[10..], ["limit", "offset"]);
        assert_eq!(body["limit"], json!(20));
        assert_eq!(body["offset"], json!(40));
        page.cursor = Some("opaque-1".into());
        let body = fetch_body(&filter, &page);
        assert_eq!(keys(&body)[10..], ["limit", "offset", "cursor"]);
        assert_eq!(body["cursor"], json!("opaque-1"));
    }

    #[test]
    fn count_answers_must_be_non_negative_integers() {
        assert_eq!(parse_count(br#"{"count": 0}"#), Ok(0));
        assert_eq!(parse_count(br#"{"count": 42, "extra": true}"#), Ok(42));
        for bad in [
            r#"{"count": -1}"#,
            r#"{"count": "5"}"#,
            r#"{"count": 5.5}"#,
            r#"{"count": 5.0}"#,
            r#"{"count": null}"#,
            r#"{}"#,
            r#"[1]"#,
            r#"5"#,
            "not json",
            "",
        ] {
            assert!(
                matches!(parse_count(bad.as_bytes()), Err(PeerError::Invalid(_))),
                "{bad}"
            );
        }
    }

    fn item_json(instance: &str) -> Value {
        json!({
            "item_network": "dev", "item_domain": "jobs", "item_type": "job",
            "item_id": "0983ee4f-d0b7-41f2-a596-9836085e9732", "item_instance_url": instance,
            "item_schema_url": format!("{instance}/s.json"), "item_state": {"title": "x"},
            "item_latitude": null, "item_longitude": 73.8, "created_by": "u",
            "created_at": "2026-05-13T10:00:00.123Z", "updated_at": "2026-05-13T10:00:00.123Z"
        })
    }

    #[test]
    fn page_answers_need_an_items_array_of_complete_records() {
        let body = json!({"meta": {"total": 7, "limit": 2, "offset": 0},
                          "items": [item_json("http://a.test"), item_json("http://b.test")]});
        let page = parse_page(body.to_string().as_bytes()).expect("page");
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.items[1].head.instance_url, "http://b.test");
        assert_eq!(page.items[0].head.longitude, Some(73.8));
        assert_eq!(page.total, Some(7));
        assert!(!page.cursor_capable);

        let page = parse_page(br#"{"items":[]}"#).expect("no meta");
        assert_eq!((page.total, page.cursor_capable), (None, false));

        for (meta, total, capable) in [
            (r#"{"total": 3, "next_cursor": null}"#, Some(3), true),
            (r#"{"total": 3, "next_cursor": "c"}"#, Some(3), true),
            (r#"{"total": -3}"#, None, false),
            (r#"{"total": "3"}"#, None, false),
            (r#"{"total": 3.5}"#, None, false),
            ("null", None, false),
        ] {
            let body = format!(r#"{{"meta": {meta}, "items": []}}"#);
            let page = parse_page(body.as_bytes()).expect("page");
            assert_eq!(
                (page.total, page.cursor_capable),
                (total, capable),
                "{meta}"
            );
        }

        let mut incomplete = item_json("http://a.test");
        incomplete
            .as_object_mut()
            .expect("object")
            .remove("item_latitude");
        let incomplete = json!({"items": [item_json("http://a.test"), incomplete]}).to_string();
        for bad in [
            r#"{"items": {}}"#,
            r#"{"items": "[]"}"#,
            r#"{"items": null}"#,
            r#"{"items": [{"a": 1}]}"#,
            r#"{"items": [2]}"#,
            r#"{"meta": {}}"#,
            r#"{"meta": 1, "items": []}"#,
            incomplete.as_str(),
            r#"[]"#,
            "<html>",
        ] {
            assert!(
                matches!(parse_page(bad.as_bytes()), Err(PeerError::Invalid(_))),
                "{bad}"
            );
        }
    }
}
