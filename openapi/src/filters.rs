//! Item filters from query strings and peer bodies, shared by the listing routes.

use dpg_core::model::{GeoRadius, ItemFilter, StateFilter};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{ApiError, Rejection};

/// The filter parameters of a listing query (reference-contract §1.4), already typed.
pub struct FilterParams {
    pub network: String,
    pub domain: String,
    pub item_type: Option<String>,
    pub item_id: Option<Uuid>,
    pub instance_url: Option<String>,
    pub schema_url: Option<String>,
    pub state: Option<Value>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub radius_meters: Option<f64>,
}

impl FilterParams {
    /// Checks and converts; `part` is `querystring` or `body` for the error messages.
    pub fn into_filter(self, part: &str) -> Result<ItemFilter, ApiError> {
        Ok(ItemFilter {
            network: non_empty(part, "item_network", self.network)?,
            domain: non_empty(part, "item_domain", self.domain)?,
            item_type: self.item_type,
            item_id: self.item_id,
            instance_url: self.instance_url,
            schema_url: self.schema_url,
            state: self.state.map(StateFilter::new).transpose()?,
            geo: GeoRadius::from_parts(self.latitude, self.longitude, self.radius_meters)?,
            created_by: None,
        })
    }
}

fn non_empty(part: &str, name: &str, value: String) -> Result<String, Rejection> {
    if value.is_empty() {
        return Err(Rejection::validation(format!(
            "{part}/{name} Too small: expected string to have >=1 characters"
        )));
    }
    Ok(value)
}

/// The filter body of the peer routes (`count_local`, `fetch_local`). Numbers may come as
/// numeric strings, as the reference coerces them; unknown keys are ignored.
#[derive(Debug, Clone, Deserialize, poem_openapi::Object)]
pub struct PeerFilterIn {
    pub item_network: String,
    pub item_domain: String,
    pub item_type: Option<String>,
    /// UUID of one item.
    pub item_id: Option<String>,
    pub item_instance_url: Option<String>,
    pub item_schema_url: Option<String>,
    /// JSON containment filter on `item_state`.
    pub item_state: Option<Value>,
    #[serde(default, deserialize_with = "coerced_number")]
    pub item_latitude: Option<f64>,
    #[serde(default, deserialize_with = "coerced_number")]
    pub item_longitude: Option<f64>,
    #[serde(default, deserialize_with = "coerced_number")]
    pub radius_meters: Option<f64>,
}

impl PeerFilterIn {
    pub fn into_filter(self) -> Result<ItemFilter, ApiError> {
        let item_id = self
            .item_id
            .map(|raw| {
                Uuid::parse_str(raw.trim())
                    .map_err(|_| Rejection::validation("body/item_id Invalid UUID"))
            })
            .transpose()?;
        FilterParams {
            network: self.item_network,
            domain: self.item_domain,
            item_type: self.item_type,
            item_id,
            instance_url: self.item_instance_url,
            schema_url: self.item_schema_url,
            state: self.item_state,
            latitude: self.item_latitude,
            longitude: self.item_longitude,
            radius_meters: self.radius_meters,
        }
        .into_filter("body")
    }
}

/// A JSON number, or a string holding one (`"12.5"`); `null` and absence are `None`.
fn coerced_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText {
        Number(f64),
        Text(String),
    }
    match Option::<NumberOrText>::deserialize(deserializer)? {
        None => Ok(None),
        Some(NumberOrText::Number(n)) => Ok(Some(n)),
        Some(NumberOrText::Text(text)) => {
            let trimmed = text.trim();
            let parsed = if trimmed.is_empty() {
                Ok(0.0)
            } else {
                trimmed.parse::<f64>()
            };
            parsed
                .ok()
                .filter(|n| n.is_finite())
                .map(Some)
                .ok_or_else(|| {
                    serde::de::Error::custom("Invalid input: expected number, received NaN")
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn peer_filters_coerce_numeric_strings_and_check_ids() {
        let body: PeerFilterIn = serde_json::from_value(json!({
            "item_network": "n", "item_domain": "d", "item_latitude": "12.5", "item_longitude": 77,
            "radius_meters": " 5000 ", "limit": 10, "unknown": true
        }))
        .expect("parses");
        let filter = body.into_filter().expect("valid");
        let geo = filter.geo.expect("geo");
        assert_eq!(
            (geo.latitude, geo.longitude, geo.radius_meters),
            (12.5, 77.0, 5000.0)
        );
        let bad: Result<PeerFilterIn, _> = serde_json::from_value(
            json!({"item_network": "n", "item_domain": "d", "item_latitude": "abc"}),
        );
        assert!(bad.is_err());
        let bad_id: PeerFilterIn = serde_json::from_value(
            json!({"item_network": "n", "item_domain": "d", "item_id": "x"}),
        )
        .expect("parses");
        assert!(bad_id.into_filter().is_err());
    }
}
