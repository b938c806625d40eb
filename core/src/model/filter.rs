use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{CoreError, ErrorCode};

/// Radius of the sphere used for distances, in metres: PostgreSQL earthdistance's `earth()`,
/// which the reference uses, so radius filters select the same items.
pub const EARTH_RADIUS_METERS: f64 = 6_378_168.0;

/// Conditions of an item query; all are ANDed (reference-contract §4.5).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ItemFilter {
    pub network: String,
    pub domain: String,
    pub item_type: Option<String>,
    pub item_id: Option<Uuid>,
    pub instance_url: Option<String>,
    pub schema_url: Option<String>,
    pub state: Option<StateFilter>,
    pub geo: Option<GeoRadius>,
    /// Owner scope: set by the local fetch route, never by peer routes.
    pub created_by: Option<String>,
}

impl ItemFilter {
    /// A stable digest of what selects items within the filter's domain (owner included):
    /// equal filters, equal digests, whatever order their parts came in.
    pub fn fingerprint(&self) -> String {
        // A JSON array of the parts, written straight from them (no JSON tree in between).
        let canonical = (
            &self.created_by,
            &self.item_type,
            &self.item_id,
            &self.instance_url,
            &self.schema_url,
            self.state.as_ref().map(StateFilter::as_map),
            self.geo.map(|g| [g.latitude, g.longitude, g.radius_meters]),
        );
        // Writing plain data into memory cannot fail.
        let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }

    pub fn new(network: impl Into<String>, domain: impl Into<String>) -> Self {
        ItemFilter {
            network: network.into(),
            domain: domain.into(),
            ..ItemFilter::default()
        }
    }

    /// Refuses strings storage cannot compare (NUL characters) as a client error.
    pub fn check_text(&self) -> Result<(), CoreError> {
        for (field, value) in [
            ("item_network", Some(&self.network)),
            ("item_domain", Some(&self.domain)),
            ("item_type", self.item_type.as_ref()),
            ("item_instance_url", self.instance_url.as_ref()),
            ("item_schema_url", self.schema_url.as_ref()),
            ("created_by", self.created_by.as_ref()),
        ] {
            if let Some(value) = value {
                super::reject_nul(field, value)?;
            }
        }
        if let Some(state) = &self.state {
            super::reject_nul_in_json("item_state", &state.to_value())?;
        }
        Ok(())
    }

    /// True when `item` satisfies every condition. The storage adapters implement the same
    /// semantics in SQL; this is the reference they are tested against.
    pub fn matches(&self, item: &super::Item) -> bool {
        item.network == self.network
            && item.domain == self.domain
            && self.item_type.as_ref().is_none_or(|t| *t == item.item_type)
            && self.item_id.is_none_or(|id| id == item.item_id)
            && self
                .instance_url
                .as_ref()
                .is_none_or(|u| *u == item.instance_url)
            && self
                .schema_url
                .as_ref()
                .is_none_or(|u| *u == item.schema_url)
            && self
                .created_by
                .as_ref()
                .is_none_or(|u| *u == item.created_by)
            && self.state.as_ref().is_none_or(|s| s.matches(&item.state))
            && self
                .geo
                .as_ref()
                .is_none_or(|g| match (item.latitude, item.longitude) {
                    (Some(lat), Some(lng)) => g.contains(lat, lng),
                    _ => false,
                })
    }
}

/// A JSONB-containment filter on `item_state` (`item_state @> filter`).
#[derive(Debug, Clone, PartialEq)]
pub struct StateFilter(Map<String, Value>);

impl StateFilter {
    /// Deepest nesting accepted (qs itself stops at 5).
    pub const MAX_DEPTH: usize = 8;
    /// Most scalar leaves accepted; each becomes a condition in SQL.
    pub const MAX_LEAVES: usize = 64;

    pub fn new(value: Value) -> Result<Self, CoreError> {
        let Value::Object(map) = value else {
            return Err(CoreError::invalid(
                ErrorCode::InvalidStateFilter,
                "item_state filter must be an object",
            ));
        };
        let mut leaves = 0usize;
        for v in map.values() {
            check_shape(v, 1, &mut leaves)?;
        }
        Ok(StateFilter(map))
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    pub fn to_value(&self) -> Value {
        Value::Object(self.0.clone())
    }

    /// JSONB containment of this filter in `state`.
    pub fn matches(&self, state: &Value) -> bool {
        contains(state, &Value::Object(self.0.clone()))
    }
}

fn check_shape(value: &Value, depth: usize, leaves: &mut usize) -> Result<(), CoreError> {
    if depth > StateFilter::MAX_DEPTH {
        return Err(CoreError::invalid(
            ErrorCode::InvalidStateFilter,
            format!(
                "item_state filter is nested deeper than {} levels",
                StateFilter::MAX_DEPTH
            ),
        ));
    }
    match value {
        Value::Object(map) => map
            .values()
            .try_for_each(|v| check_shape(v, depth + 1, leaves)),
        Value::Array(items) => items
            .iter()
            .try_for_each(|v| check_shape(v, depth + 1, leaves)),
        _ => {
            *leaves += 1;
            if *leaves > StateFilter::MAX_LEAVES {
                return Err(CoreError::invalid(
                    ErrorCode::InvalidStateFilter,
                    format!(
                        "item_state filter has more than {} values",
                        StateFilter::MAX_LEAVES
                    ),
                ));
            }
            Ok(())
        }
    }
}

/// PostgreSQL `jsonb @>` semantics below the top level: objects match as subsets, arrays
/// when every wanted element is contained in some stored element, scalars by JSON type and
/// value (numbers numerically).
pub fn contains(stored: &Value, wanted: &Value) -> bool {
    match (stored, wanted) {
        (Value::Object(s), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| s.get(k).is_some_and(|sv| contains(sv, wv))),
        (Value::Array(s), Value::Array(w)) => {
            w.iter().all(|wv| s.iter().any(|sv| contains(sv, wv)))
        }
        (Value::Number(s), Value::Number(w)) => s.as_f64() == w.as_f64(),
        (Value::String(s), Value::String(w)) => s == w,
        (Value::Bool(s), Value::Bool(w)) => s == w,
        (Value::Null, Value::Null) => true,
        _ => false,
    }
}

/// A radius search: items within `radius_meters` of the point (great circle, inclusive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoRadius {
    pub latitude: f64,
    pub longitude: f64,
    pub radius_meters: f64,
}

impl GeoRadius {
    /// Largest radius accepted: half the circumference covers the whole sphere.
    pub const MAX_RADIUS_METERS: f64 = std::f64::consts::PI * EARTH_RADIUS_METERS;

    pub fn new(latitude: f64, longitude: f64, radius_meters: f64) -> Result<Self, CoreError> {
        let bad = |message: &str| Err(CoreError::invalid(ErrorCode::InvalidGeoFilter, message));
        if !latitude.is_finite() || !(-90.0..=90.0).contains(&latitude) {
            return bad("item_latitude must be between -90 and 90");
        }
        if !longitude.is_finite() || !(-180.0..=180.0).contains(&longitude) {
            return bad("item_longitude must be between -180 and 180");
        }
        if !radius_meters.is_finite() || radius_meters <= 0.0 {
            return bad("radius_meters must be a number greater than 0");
        }
        Ok(GeoRadius {
            latitude,
            longitude,
            radius_meters: radius_meters.min(Self::MAX_RADIUS_METERS),
        })
    }

    /// Builds the filter from the three optional query values: all three or none.
    pub fn from_parts(
        latitude: Option<f64>,
        longitude: Option<f64>,
        radius_meters: Option<f64>,
    ) -> Result<Option<Self>, CoreError> {
        match (latitude, longitude, radius_meters) {
            (None, None, None) => Ok(None),
            (Some(lat), Some(lng), Some(r)) => GeoRadius::new(lat, lng, r).map(Some),
            _ => Err(CoreError::invalid(
                ErrorCode::InvalidGeoFilter,
                "item_latitude, item_longitude, and radius_meters must be provided together for geosearch",
            )),
        }
    }

    /// Great-circle distance from the centre, in metres (haversine).
    pub fn distance_to(&self, latitude: f64, longitude: f64) -> f64 {
        let (p1, p2) = (self.latitude.to_radians(), latitude.to_radians());
        let dp = p2 - p1;
        let dl = (longitude - self.longitude).to_radians();
        let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_METERS * h.sqrt().min(1.0).asin()
    }

    pub fn contains(&self, latitude: f64, longitude: f64) -> bool {
        self.distance_to(latitude, longitude) <= self.radius_meters
    }

    /// A latitude/longitude box that surely holds the circle; storage uses it as an index
    /// pre-filter before the exact distance test. Longitudes are unbounded near the poles or
    /// when the circle crosses the antimeridian.
    pub fn bounding_box(&self) -> GeoBox {
        let angular = self.radius_meters / EARTH_RADIUS_METERS;
        let degrees = angular.to_degrees();
        let min_lat = self.latitude - degrees;
        let max_lat = self.latitude + degrees;
        if min_lat <= -90.0 || max_lat >= 90.0 {
            return GeoBox {
                min_lat: min_lat.max(-90.0),
                max_lat: max_lat.min(90.0),
                lng: None,
            };
        }
        let sin_ratio = angular.sin() / self.latitude.to_radians().cos();
        if sin_ratio >= 1.0 {
            return GeoBox {
                min_lat,
                max_lat,
                lng: None,
            };
        }
        let dlng = sin_ratio.asin().to_degrees();
        let (min_lng, max_lng) = (self.longitude - dlng, self.longitude + dlng);
        let lng = (min_lng >= -180.0 && max_lng <= 180.0).then_some((min_lng, max_lng));
        GeoBox {
            min_lat,
            max_lat,
            lng,
        }
    }
}

/// An inclusive bounding box; `lng == None` means every longitude.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoBox {
    pub min_lat: f64,
    pub max_lat: f64,
    pub lng: Option<(f64, f64)>,
}

/// `limit`/`offset` of a page, already within bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub offset: u32,
}

impl PageRequest {
    pub const DEFAULT_LIMIT: u32 = 20;
    pub const MAX_LIMIT: u32 = 100;
    /// Deep offsets scan and discard rows; past this, clients should narrow the filter.
    pub const MAX_OFFSET: u32 = 10_000;

    pub fn new(limit: Option<u32>, offset: Option<u32>) -> Result<Self, CoreError> {
        let limit = limit.unwrap_or(Self::DEFAULT_LIMIT);
        let offset = offset.unwrap_or(0);
        if !(1..=Self::MAX_LIMIT).contains(&limit) {
            return Err(CoreError::invalid(
                ErrorCode::InvalidPagination,
                format!("limit must be between 1 and {}", Self::MAX_LIMIT),
            ));
        }
        if offset > Self::MAX_OFFSET {
            return Err(CoreError::invalid(
                ErrorCode::InvalidPagination,
                format!("offset must be between 0 and {}", Self::MAX_OFFSET),
            ));
        }
        Ok(PageRequest { limit, offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn fingerprints_stay_those_already_in_caches() {
        let mut filter = ItemFilter::new("yellow_dot", "student");
        let empty = filter.fingerprint();
        filter.item_type = Some("profile_1.0".into());
        filter.item_id = Some(Uuid::from_u128(7));
        filter.state =
            Some(StateFilter::new(json!({"city": "Pune", "n": [1, 2.5]})).expect("state"));
        filter.geo = Some(GeoRadius {
            latitude: 12.5,
            longitude: -3.0,
            radius_meters: 1000.0,
        });
        // The digest as earlier versions wrote it, through a JSON tree.
        let earlier = |f: &ItemFilter| {
            let canonical = json!([
                f.created_by,
                f.item_type,
                f.item_id,
                f.instance_url,
                f.schema_url,
                f.state.as_ref().map(|s| s.to_value()),
                f.geo.map(|g| [g.latitude, g.longitude, g.radius_meters]),
            ]);
            hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
        };
        assert_eq!(empty, earlier(&ItemFilter::new("yellow_dot", "student")));
        assert_eq!(filter.fingerprint(), earlier(&filter));
        assert_ne!(filter.fingerprint(), empty);
    }

    #[test]
    fn containment_follows_jsonb_rules() {
        let stored =
            json!({"city": "Pune", "grade": 10, "tags": ["a", "b"], "loc": {"c": "IN", "z": 1}});
        assert!(contains(&stored, &json!({})));
        assert!(contains(&stored, &json!({"city": "Pune"})));
        assert!(contains(&stored, &json!({"grade": 10.0})));
        assert!(
            !contains(&stored, &json!({"grade": "10"})),
            "string never equals number"
        );
        assert!(contains(&stored, &json!({"tags": ["b"]})));
        assert!(contains(&stored, &json!({"tags": []})));
        assert!(
            !contains(&stored, &json!({"tags": "a"})),
            "scalar is not contained in array below top"
        );
        assert!(contains(&stored, &json!({"loc": {"c": "IN"}})));
        assert!(!contains(&stored, &json!({"loc": {"c": "IN", "y": 2}})));
        assert!(!contains(&stored, &json!({"missing": null})));
        assert!(contains(&json!({"n": null}), &json!({"n": null})));
    }

    #[test]
    fn state_filter_is_bounded() {
        assert!(StateFilter::new(json!("x")).is_err());
        let mut deep = json!("leaf");
        for _ in 0..10 {
            deep = json!({ "k": deep });
        }
        assert!(StateFilter::new(deep).is_err());
        let wide: Map<String, Value> = (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert!(StateFilter::new(Value::Object(wide)).is_err());
        assert!(StateFilter::new(json!({"a": {"b": ["c"]}})).is_ok());
    }

    #[test]
    fn geo_requires_all_three_values_in_range() {
        assert_eq!(GeoRadius::from_parts(None, None, None).expect("none"), None);
        assert!(GeoRadius::from_parts(Some(1.0), None, Some(5.0)).is_err());
        assert!(GeoRadius::from_parts(None, None, Some(5.0)).is_err());
        assert!(GeoRadius::new(91.0, 0.0, 1.0).is_err());
        assert!(GeoRadius::new(0.0, 181.0, 1.0).is_err());
        assert!(GeoRadius::new(0.0, 0.0, 0.0).is_err());
        assert!(GeoRadius::new(0.0, 0.0, f64::NAN).is_err());
        assert!(GeoRadius::new(28.6, 77.2, 5000.0).is_ok());
    }

    #[test]
    fn distance_matches_known_values() {
        let delhi = GeoRadius::new(28.6139, 77.2090, 1.0).expect("valid");
        // Delhi to Mumbai, about 1150 km on this sphere.
        let d = delhi.distance_to(19.0760, 72.8777);
        assert!((1_140_000.0..1_160_000.0).contains(&d), "{d}");
        assert!(delhi.distance_to(28.6139, 77.2090) < 1e-6);
    }

    #[test]
    fn pagination_bounds() {
        assert_eq!(
            PageRequest::new(None, None).expect("defaults"),
            PageRequest {
                limit: 20,
                offset: 0
            }
        );
        assert!(PageRequest::new(Some(0), None).is_err());
        assert!(PageRequest::new(Some(101), None).is_err());
        assert!(PageRequest::new(Some(100), Some(10_001)).is_err());
    }

    proptest! {
        #[test]
        fn bounding_box_holds_every_point_in_the_circle(
            lat in -89.0f64..89.0, lng in -179.0f64..179.0,
            radius in 1.0f64..2_000_000.0, bearing in 0.0f64..360.0, fraction in 0.0f64..1.0,
        ) {
            let geo = GeoRadius::new(lat, lng, radius).expect("valid");
            // Destination point at distance fraction*radius along bearing.
            let delta = fraction * radius / EARTH_RADIUS_METERS;
            let (p1, l1, b) = (lat.to_radians(), lng.to_radians(), bearing.to_radians());
            let p2 = (p1.sin() * delta.cos() + p1.cos() * delta.sin() * b.cos()).asin();
            let l2 = l1 + (b.sin() * delta.sin() * p1.cos()).atan2(delta.cos() - p1.sin() * p2.sin());
            let (plat, mut plng) = (p2.to_degrees(), l2.to_degrees());
            if plng > 180.0 { plng -= 360.0 }
            if plng < -180.0 { plng += 360.0 }
            let bx = geo.bounding_box();
            prop_assert!(plat >= bx.min_lat - 1e-9 && plat <= bx.max_lat + 1e-9);
            if let Some((lo, hi)) = bx.lng {
                prop_assert!(plng >= lo - 1e-9 && plng <= hi + 1e-9, "{plng} not in {lo}..{hi}");
            }
        }
    }
}
