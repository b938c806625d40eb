//! An item as a peer sent it: the fields a network read checks and orders by, read out, and
//! the record's JSON kept as it came, so the merged page copies it instead of encoding it
//! again.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use uuid::Uuid;

use super::{Item, ItemKey};

/// A complete item record received from a peer. Its JSON is always the canonical record
/// (the twelve keys of [`Item`], timestamps as [`super::wire_time`] writes them, ids in
/// lowercase hyphenated form): a record already in that form is kept byte for byte, any
/// other well-formed record is read as an [`Item`] and written again.
#[derive(Debug, Clone)]
pub struct PeerItem {
    pub head: ItemHead,
    json: Box<RawValue>,
}

/// The fields of a record a network read checks and orders by.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemHead {
    pub network: String,
    pub domain: String,
    pub item_type: String,
    pub item_id: Uuid,
    pub instance_url: String,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub created_at: DateTime<Utc>,
}

/// The record's fields, borrowed from its JSON; any other key makes it non-canonical.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Record<'a> {
    #[serde(borrow, rename = "item_network")]
    network: Cow<'a, str>,
    #[serde(borrow, rename = "item_domain")]
    domain: Cow<'a, str>,
    #[serde(borrow)]
    item_type: Cow<'a, str>,
    #[serde(borrow)]
    item_id: Cow<'a, str>,
    #[serde(borrow, rename = "item_instance_url")]
    instance_url: Cow<'a, str>,
    #[serde(borrow, rename = "item_schema_url")]
    _schema_url: Cow<'a, str>,
    #[serde(borrow, rename = "item_state")]
    _state: &'a RawValue,
    #[serde(rename = "item_latitude", deserialize_with = "required")]
    latitude: Option<f64>,
    #[serde(rename = "item_longitude", deserialize_with = "required")]
    longitude: Option<f64>,
    #[serde(borrow, rename = "created_by")]
    _created_by: Cow<'a, str>,
    #[serde(borrow)]
    created_at: Cow<'a, str>,
    #[serde(borrow)]
    updated_at: Cow<'a, str>,
}

fn required<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    Option::<f64>::deserialize(deserializer)
}

impl PeerItem {
    /// Reads one record; an error when it is not a complete item record.
    pub fn from_json(json: Box<RawValue>) -> Result<PeerItem, serde_json::Error> {
        // Skimming a value does not check `\u` escapes (a lone surrogate passes); records
        // with any are read whole, which refuses them. Writers escape little, so this is rare.
        if !json.get().contains("\\u")
            && let Some(head) = Self::canonical(&json)
        {
            return Ok(PeerItem { head, json });
        }
        let item: Item = serde_json::from_str(json.get())?;
        Ok(PeerItem::from(item))
    }

    /// The checked fields of a record already in canonical form.
    fn canonical(json: &RawValue) -> Option<ItemHead> {
        let record: Record = serde_json::from_str(json.get()).ok()?;
        if !is_canonical_time(&record.created_at) || !is_canonical_time(&record.updated_at) {
            return None;
        }
        let item_id = canonical_uuid(&record.item_id)?;
        // Parsed only to be sure it is a time; the form was checked above.
        DateTime::parse_from_rfc3339(&record.updated_at).ok()?;
        let created_at = DateTime::parse_from_rfc3339(&record.created_at)
            .ok()?
            .with_timezone(&Utc);
        Some(ItemHead {
            network: record.network.into_owned(),
            domain: record.domain.into_owned(),
            item_type: record.item_type.into_owned(),
            item_id,
            instance_url: record.instance_url.into_owned(),
            latitude: record.latitude,
            longitude: record.longitude,
            created_at,
        })
    }

    pub fn key(&self) -> ItemKey {
        ItemKey {
            created_at: self.head.created_at,
            item_id: self.head.item_id,
        }
    }

    /// The record as sent (in canonical form).
    pub fn json(&self) -> &RawValue {
        &self.json
    }

    /// The whole record, for work that needs its state.
    pub fn to_item(&self) -> Result<Item, serde_json::Error> {
        serde_json::from_str(self.json.get())
    }
}

impl From<Item> for PeerItem {
    fn from(item: Item) -> PeerItem {
        // Serializing plain data into memory cannot fail.
        let json =
            serde_json::value::to_raw_value(&item).unwrap_or_else(|_| RawValue::NULL.to_owned());
        let head = ItemHead {
            network: item.network,
            domain: item.domain,
            item_type: item.item_type,
            item_id: item.item_id,
            instance_url: item.instance_url,
            latitude: item.latitude,
            longitude: item.longitude,
            created_at: item.created_at,
        };
        PeerItem { head, json }
    }
}

impl<'de> Deserialize<'de> for PeerItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PeerItem, D::Error> {
        let json = Box::<RawValue>::deserialize(deserializer)?;
        PeerItem::from_json(json).map_err(serde::de::Error::custom)
    }
}

impl Serialize for PeerItem {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(serializer)
    }
}

impl PartialEq for PeerItem {
    fn eq(&self, other: &PeerItem) -> bool {
        self.json.get() == other.json.get()
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, as `Date#toISOString` writes it (the form is checked here,
/// the values by the parser).
fn is_canonical_time(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 24
        && bytes[10] == b'T'
        && bytes[19] == b'.'
        && bytes[23] == b'Z'
        && bytes[20..23].iter().all(u8::is_ascii_digit)
}

/// An id in lowercase hyphenated form, the only form written back.
fn canonical_uuid(text: &str) -> Option<Uuid> {
    let id = Uuid::try_parse(text).ok()?;
    (text.len() == 36 && !text.bytes().any(|b| b.is_ascii_uppercase())).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn record() -> Value {
        json!({
            "item_network": "yellow_dot", "item_domain": "student", "item_type": "profile_1.0",
            "item_id": "fe5ccb5d-8200-4329-8939-160d6b3494d9",
            "item_instance_url": "http://127.0.0.1:2744",
            "item_schema_url": "http://127.0.0.1:2744/api/v1/network/schema/yellow_dot/student/profile_1.0",
            "item_state": {"city": "Agra", "name": "C2", "grade": "11"},
            "item_latitude": null, "item_longitude": 77.5,
            "created_by": "dev-user",
            "created_at": "2026-11-28T01:27:51.178Z", "updated_at": "2026-11-28T01:27:51.178Z"
        })
    }

    fn read(value: &Value) -> Result<PeerItem, serde_json::Error> {
        serde_json::from_str(&value.to_string())
    }

    #[test]
    fn a_canonical_record_is_kept_byte_for_byte() {
        let text = r#"{"item_network":"yellow_dot","item_domain":"student","item_type":"profile_1.0","item_id":"fe5ccb5d-8200-4329-8939-160d6b3494d9","item_instance_url":"http://127.0.0.1:2744","item_schema_url":"s","item_state":{"b":1, "a":[2]},"item_latitude":12,"item_longitude":null,"created_by":"u","created_at":"2026-11-28T01:27:51.178Z","updated_at":"2026-11-28T01:27:52.000Z"}"#;
        let item: PeerItem = serde_json::from_str(text).expect("reads");
        assert_eq!(item.json().get(), text);
        assert_eq!(item.head.latitude, Some(12.0));
        assert_eq!(item.head.longitude, None);
        assert_eq!(item.head.instance_url, "http://127.0.0.1:2744");
        assert_eq!(
            item.key().to_cursor(),
            ItemKey {
                created_at: "2026-11-28T01:27:51.178Z".parse().expect("time"),
                item_id: "fe5ccb5d-8200-4329-8939-160d6b3494d9".parse().expect("id"),
            }
            .to_cursor()
        );
    }

    #[test]
    fn other_spellings_are_written_in_canonical_form() {
        let mut other = record();
        other["item_id"] = json!("FE5CCB5D-8200-4329-8939-160D6B3494D9");
        other["created_at"] = json!("2026-11-28T02:27:51.178+01:00");
        other["extra"] = json!("dropped, as when read as an item");
        let item = read(&other).expect("reads");
        let written: Value = serde_json::from_str(item.json().get()).expect("json");
        assert_eq!(written, record());
        assert_eq!(item, read(&record()).expect("reads"));
    }

    #[test]
    fn incomplete_or_mistyped_records_are_refused() {
        for (key, value) in [
            ("item_latitude", None),
            ("item_state", None),
            ("item_id", Some(json!("not-an-id"))),
            ("created_at", Some(json!("yesterday"))),
            ("created_at", Some(json!("2026-13-28T01:27:51.178Z"))),
            ("updated_at", Some(json!("2026-11-28T25:27:51.178Z"))),
            ("item_network", Some(json!(7))),
            ("item_latitude", Some(json!("12"))),
        ] {
            let mut bad = record();
            match value {
                Some(value) => bad[key] = value,
                None => {
                    bad.as_object_mut().expect("object").remove(key);
                }
            }
            assert!(read(&bad).is_err(), "{key} = {:?} was read", bad[key]);
        }
    }

    #[test]
    fn escaped_strings_are_read_in_full() {
        let mut escaped = record();
        escaped["item_instance_url"] = json!("http://127.0.0.1:2744/\"x\"");
        let text = escaped.to_string();
        let item: PeerItem = serde_json::from_str(&text).expect("reads");
        assert_eq!(item.head.instance_url, "http://127.0.0.1:2744/\"x\"");
        assert_eq!(item.json().get(), text);
    }

    #[test]
    fn unicode_escapes_are_checked() {
        let text = record().to_string();
        let lone = text.replace(r#""name":"C2""#, r#""name":"\ud800""#);
        assert_ne!(lone, text);
        assert!(serde_json::from_str::<PeerItem>(&lone).is_err());
        let accented = text.replace(r#""name":"C2""#, r#""name":"\u00e9""#);
        let item: PeerItem = serde_json::from_str(&accented).expect("reads");
        assert_eq!(item.to_item().expect("item").state["name"], "\u{e9}");
    }

    #[test]
    fn an_item_round_trips_through_its_record() {
        let item: Item = serde_json::from_value(record()).expect("item");
        let peer = PeerItem::from(item.clone());
        assert_eq!(peer.to_item().expect("reads back"), item);
        assert_eq!(peer.key(), ItemKey::of(&item));
    }
}
