//! Radius search without trigonometry in SQL (SQLite has none here): every stored point keeps
//! its unit vector, and a point lies within the radius when the straight-line (chord) distance
//! between the unit vectors is at most the chord of the radius. Both databases evaluate the same
//! arithmetic, so they select the same rows.

use dpg_core::model::{EARTH_RADIUS_METERS, GeoRadius};

/// Slack on the chord, in units of the sphere's radius (about 0.06 mm): a point exactly on the
/// circle, as `GeoRadius::contains` decides it, must match despite rounding in either formula.
const CHORD_SLACK: f64 = 1e-11;

/// Slack on the bounding box, in degrees (about 0.1 mm), for the same reason.
const BOX_SLACK_DEGREES: f64 = 1e-9;

/// A point of the unit sphere.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct UnitVector {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

impl UnitVector {
    pub fn from_degrees(latitude: f64, longitude: f64) -> Self {
        let (lat, lng) = (latitude.to_radians(), longitude.to_radians());
        UnitVector {
            x: lat.cos() * lng.cos(),
            y: lat.cos() * lng.sin(),
            z: lat.sin(),
        }
    }

    /// Stored with an item: all three or none.
    pub fn of_item(latitude: Option<f64>, longitude: Option<f64>) -> Option<Self> {
        match (latitude, longitude) {
            (Some(lat), Some(lng)) => Some(UnitVector::from_degrees(lat, lng)),
            _ => None,
        }
    }
}

/// The numbers a radius query binds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct RadiusBounds {
    pub center: UnitVector,
    /// Largest accepted squared chord between a stored vector and `center`.
    pub max_chord_squared: f64,
    /// Index pre-filter, inclusive.
    pub latitude: (f64, f64),
    /// Index pre-filter, inclusive; `None` when every longitude can match.
    pub longitude: Option<(f64, f64)>,
}

impl RadiusBounds {
    pub fn new(geo: &GeoRadius) -> Self {
        let half_angle =
            (geo.radius_meters / (2.0 * EARTH_RADIUS_METERS)).min(std::f64::consts::FRAC_PI_2);
        let chord = 2.0 * half_angle.sin() + CHORD_SLACK;
        let bounding = geo.bounding_box();
        RadiusBounds {
            center: UnitVector::from_degrees(geo.latitude, geo.longitude),
            max_chord_squared: chord * chord,
            latitude: (
                bounding.min_lat - BOX_SLACK_DEGREES,
                bounding.max_lat + BOX_SLACK_DEGREES,
            ),
            longitude: bounding
                .lng
                .map(|(lo, hi)| (lo - BOX_SLACK_DEGREES, hi + BOX_SLACK_DEGREES)),
        }
    }

    /// The test the SQL performs, in Rust (for unit tests and documentation).
    #[cfg(test)]
    pub fn admits(&self, latitude: f64, longitude: f64) -> bool {
        let v = UnitVector::from_degrees(latitude, longitude);
        let in_box = (self.latitude.0..=self.latitude.1).contains(&latitude)
            && self
                .longitude
                .is_none_or(|(lo, hi)| (lo..=hi).contains(&longitude));
        let (dx, dy, dz) = (
            v.x - self.center.x,
            v.y - self.center.y,
            v.z - self.center.z,
        );
        in_box && dx * dx + dy * dy + dz * dz <= self.max_chord_squared
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn unit_vectors_have_length_one() {
        for (lat, lng) in [(0.0, 0.0), (90.0, 0.0), (-45.5, 179.9), (28.6, 77.2)] {
            let v = UnitVector::from_degrees(lat, lng);
            assert!((v.x * v.x + v.y * v.y + v.z * v.z - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn whole_sphere_radius_admits_the_antipode() {
        let geo = GeoRadius::new(10.0, 20.0, GeoRadius::MAX_RADIUS_METERS).expect("valid");
        assert!(RadiusBounds::new(&geo).admits(-10.0, -160.0));
    }

    proptest! {
        #[test]
        fn agrees_with_the_haversine_distance_away_from_the_circle(
            lat in -80.0f64..80.0, lng in -179.0f64..179.0,
            plat in -80.0f64..80.0, plng in -179.0f64..179.0,
            radius in 1.0f64..3_000_000.0,
        ) {
            let geo = GeoRadius::new(lat, lng, radius).expect("valid");
            let distance = geo.distance_to(plat, plng);
            // Far enough from the boundary that the slack cannot decide.
            prop_assume!((distance - radius).abs() > 0.01);
            prop_assert_eq!(RadiusBounds::new(&geo).admits(plat, plng), geo.contains(plat, plng));
        }

        #[test]
        fn points_on_the_circle_are_admitted(
            lat in -89.0f64..89.0, lng in -180.0f64..180.0,
            plat in -89.0f64..89.0, plng in -180.0f64..180.0,
        ) {
            let distance = GeoRadius::new(lat, lng, 1.0).expect("valid").distance_to(plat, plng);
            prop_assume!(distance > 0.0);
            let geo = GeoRadius::new(lat, lng, distance).expect("valid");
            prop_assume!(geo.contains(plat, plng));
            prop_assert!(RadiusBounds::new(&geo).admits(plat, plng));
        }
    }
}
