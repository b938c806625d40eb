//! The network cursor: the global position after the last item served, plus how many items
//! each offset-only peer (one that does not page by cursor) has contributed so far.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, ErrorCode};
use crate::model::ItemKey;

/// Longest accepted cursor, to bound decoding work.
const MAX_CURSOR_CHARS: usize = 8 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkCursor {
    pub after: Option<ItemKey>,
    /// Items taken so far from each peer, by normalized URL.
    pub consumed: BTreeMap<String, u32>,
}

#[derive(Serialize, Deserialize)]
struct Encoded {
    /// `ItemKey` cursor of the last item served.
    a: Option<String>,
    #[serde(default)]
    c: BTreeMap<String, u32>,
}

impl NetworkCursor {
    pub fn encode(&self) -> String {
        let encoded = Encoded {
            a: self.after.map(ItemKey::to_cursor),
            c: self.consumed.clone(),
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&encoded).unwrap_or_default())
    }

    pub fn decode(raw: &str) -> Result<NetworkCursor, CoreError> {
        let invalid = || {
            CoreError::invalid(
                ErrorCode::InvalidCursor,
                "cursor is not one this instance issued",
            )
        };
        if raw.len() > MAX_CURSOR_CHARS {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).map_err(|_| invalid())?;
        let encoded: Encoded = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        let after = match encoded.a {
            Some(key) => Some(ItemKey::from_cursor(&key).ok_or_else(invalid)?),
            None => None,
        };
        Ok(NetworkCursor {
            after,
            consumed: encoded.c,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use uuid::Uuid;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let cursor = NetworkCursor {
            after: Some(ItemKey {
                created_at: Utc
                    .timestamp_millis_opt(1_779_000_000_000)
                    .single()
                    .expect("time"),
                item_id: Uuid::from_u128(42),
            }),
            consumed: BTreeMap::from([("http://localhost:7777".to_string(), 20)]),
        };
        assert_eq!(
            NetworkCursor::decode(&cursor.encode()).expect("decodes"),
            cursor
        );
        for bad in [
            "",
            "%%%",
            &"A".repeat(9000),
            &URL_SAFE_NO_PAD.encode(b"{\"a\":\"zz\"}"),
        ] {
            assert_eq!(
                NetworkCursor::decode(bad).expect_err("bad").code(),
                ErrorCode::InvalidCursor
            );
        }
    }
}
