use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// A stored item (reference-contract Appendix A.1); serialized with the wire's field names.
/// Read only as a complete record: every key present, the coordinates as `null` at least.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    #[serde(rename = "item_network")]
    pub network: String,
    #[serde(rename = "item_domain")]
    pub domain: String,
    pub item_type: String,
    pub item_id: Uuid,
    #[serde(rename = "item_instance_url")]
    pub instance_url: String,
    #[serde(rename = "item_schema_url")]
    pub schema_url: String,
    #[serde(rename = "item_state")]
    pub state: Value,
    #[serde(rename = "item_latitude", deserialize_with = "required")]
    pub latitude: Option<f64>,
    #[serde(rename = "item_longitude", deserialize_with = "required")]
    pub longitude: Option<f64>,
    pub created_by: String,
    #[serde(with = "wire_time")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "wire_time")]
    pub updated_at: DateTime<Utc>,
}

/// What a client sends to create an item; everything else is generated.
#[derive(Debug, Clone, PartialEq)]
pub struct NewItem {
    pub network: String,
    pub domain: String,
    pub item_type: String,
    /// `None` when the client sent no `item_state` (validated as absent, like the reference).
    pub state: Option<Value>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

/// A partial update. `Some(None)` clears a coordinate; `None` leaves it alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemChanges {
    pub state: Option<Value>,
    pub latitude: Option<Option<f64>>,
    pub longitude: Option<Option<f64>>,
    /// Sent by clients of the reference; accepted only when equal to the stored value.
    pub instance_url: Option<String>,
    pub schema_url: Option<String>,
}

/// One page of items plus the number of all matches.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemPage {
    pub total: u64,
    pub items: Vec<Item>,
}

/// `meta` of a page document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageMeta {
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
}

/// A page as the wire carries it: `{"meta": {total, limit, offset}, "items": [Item...]}`,
/// already encoded as JSON. Pages are cached and served in this form so that a cache hit
/// costs no decoding or re-encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageDocument(Vec<u8>);

#[derive(Serialize, Deserialize)]
struct PageDocumentRef<'a> {
    meta: PageMeta,
    items: std::borrow::Cow<'a, [Item]>,
}

impl PageDocument {
    pub fn encode(page: &ItemPage, limit: u32, offset: u32) -> PageDocument {
        let document = PageDocumentRef {
            meta: PageMeta {
                total: page.total,
                limit,
                offset,
            },
            items: std::borrow::Cow::Borrowed(&page.items),
        };
        // Serializing plain data into memory cannot fail.
        PageDocument(serde_json::to_vec(&document).unwrap_or_default())
    }

    /// Wraps bytes that came from `as_bytes` earlier (e.g. from a cache).
    pub fn from_encoded(bytes: Vec<u8>) -> PageDocument {
        PageDocument(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// Decodes the document (tests and peers' pages).
    pub fn decode(&self) -> Result<(PageMeta, Vec<Item>), serde_json::Error> {
        let document: PageDocumentRef<'static> = serde_json::from_slice(&self.0)?;
        Ok((document.meta, document.items.into_owned()))
    }
}

/// A field that must be present even when it may be `null` (serde takes an absent `Option`
/// for `None` unless the field has a deserializer of its own).
fn required<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    T::deserialize(deserializer)
}

/// Timestamps as JavaScript's `Date#toISOString` writes them (UTC, milliseconds, `Z`); any
/// RFC 3339 timestamp is read.
pub mod wire_time {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn format(time: &DateTime<Utc>) -> String {
        time.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub fn serialize<S: Serializer>(
        time: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(time))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn item() -> Item {
        let at = Utc
            .with_ymd_and_hms(2026, 5, 13, 10, 0, 0)
            .single()
            .expect("time");
        Item {
            network: "yellow_dot".into(),
            domain: "student".into(),
            item_type: "profile_1.0".into(),
            item_id: Uuid::nil(),
            instance_url: "http://localhost:2742".into(),
            schema_url: "http://localhost:2742/s".into(),
            state: serde_json::json!({"name": "Arya"}),
            latitude: Some(12.5),
            longitude: None,
            created_by: "u".into(),
            created_at: at,
            updated_at: at + chrono::Duration::milliseconds(123),
        }
    }

    #[test]
    fn serializes_with_the_wire_names_and_time_format() {
        let json = serde_json::to_value(item()).expect("json");
        assert_eq!(json["item_network"], "yellow_dot");
        assert_eq!(json["created_at"], "2026-05-13T10:00:00.000Z");
        assert_eq!(json["updated_at"], "2026-05-13T10:00:00.123Z");
        assert_eq!(json["item_longitude"], serde_json::Value::Null);
        assert_eq!(json.as_object().map(|o| o.len()), Some(12));
    }

    #[test]
    fn page_documents_round_trip() {
        let page = ItemPage {
            total: 7,
            items: vec![item()],
        };
        let document = PageDocument::encode(&page, 20, 5);
        let json: serde_json::Value = serde_json::from_slice(document.as_bytes()).expect("json");
        assert_eq!(
            json["meta"],
            serde_json::json!({"total": 7, "limit": 20, "offset": 5})
        );
        let (meta, items) = document.decode().expect("decodes");
        assert_eq!(meta.total, 7);
        assert_eq!(items, page.items);
    }
}
