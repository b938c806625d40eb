//! Positions in the one global item order — `created_at` desc, then `item_id` desc — and the
//! opaque cursors that carry them between pages and between instances.

use std::cmp::Ordering;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Item;

/// Where an item stands in the global order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ItemKey {
    pub created_at: DateTime<Utc>,
    pub item_id: Uuid,
}

impl ItemKey {
    pub fn of(item: &Item) -> ItemKey {
        ItemKey {
            created_at: item.created_at,
            item_id: item.item_id,
        }
    }

    /// Where `self` stands relative to `other` in the global order (`Less`: comes first).
    pub fn order(&self, other: &ItemKey) -> Ordering {
        global_order_of_keys(self, other)
    }

    /// True when `self` comes after `other` in the global order (is older, or equally old
    /// with a smaller id).
    pub fn is_after(&self, other: &ItemKey) -> bool {
        global_order_of_keys(other, self) == Ordering::Less
    }

    /// The cursor our own `fetch_local` accepts: items strictly after this key.
    pub fn to_cursor(self) -> String {
        let raw = format!(
            "{}.{}",
            self.created_at.timestamp_millis(),
            self.item_id.simple()
        );
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn from_cursor(cursor: &str) -> Option<ItemKey> {
        let raw = URL_SAFE_NO_PAD.decode(cursor.trim()).ok()?;
        let raw = std::str::from_utf8(&raw).ok()?;
        let (millis, id) = raw.split_once('.')?;
        Some(ItemKey {
            created_at: DateTime::<Utc>::from_timestamp_millis(millis.parse().ok()?)?,
            item_id: Uuid::try_parse(id).ok()?,
        })
    }
}

/// The global order: newest first, then `item_id` descending (byte order = lowercase hex
/// order), identical on every database and every instance.
pub fn global_order(a: &Item, b: &Item) -> Ordering {
    global_order_of_keys(&ItemKey::of(a), &ItemKey::of(b))
}

fn global_order_of_keys(a: &ItemKey, b: &ItemKey) -> Ordering {
    b.created_at
        .cmp(&a.created_at)
        .then_with(|| b.item_id.cmp(&a.item_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn key(millis: i64, id: u128) -> ItemKey {
        ItemKey {
            created_at: Utc.timestamp_millis_opt(millis).single().expect("time"),
            item_id: Uuid::from_u128(id),
        }
    }

    #[test]
    fn order_is_newest_first_then_id_descending() {
        assert!(key(1_000, 5).is_after(&key(2_000, 1)));
        assert!(key(1_000, 1).is_after(&key(1_000, 5)));
        assert!(!key(1_000, 5).is_after(&key(1_000, 5)));
        assert!(!key(3_000, 1).is_after(&key(2_000, 9)));
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let k = key(1_779_000_000_123, 0x0190_1234_5678_7abc_8def_0123_4567_89ab);
        assert_eq!(ItemKey::from_cursor(&k.to_cursor()), Some(k));
        for bad in [
            "",
            "!!",
            "bm90LWEtY3Vyc29y",
            &URL_SAFE_NO_PAD.encode("12.not-a-uuid"),
        ] {
            assert_eq!(ItemKey::from_cursor(bad), None, "{bad}");
        }
    }
}
