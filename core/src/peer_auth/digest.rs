//! `Content-Digest` (RFC 9530), SHA-256 only.

use sha2::{Digest as _, Sha256};

use super::sfv::{self, BareItem, Member};

/// The `Content-Digest` field value of `body`: `sha-256=:<base64 of SHA-256>:`.
pub fn content_digest(body: &[u8]) -> String {
    let mut out = String::from("sha-256=");
    sfv::serialize_bytes(&Sha256::digest(body), &mut out);
    out
}

/// Whether the `Content-Digest` field `field` holds the SHA-256 digest of `body`.
///
/// Only `sha-256` is accepted: a field that is malformed, lacks a `sha-256` member, or
/// whose `sha-256` member is not a 32-byte sequence gives `false`. Other members are
/// ignored. The digests are compared in constant time.
pub fn verify_content_digest(field: &str, body: &[u8]) -> bool {
    let Ok(dict) = sfv::parse_dictionary(field) else {
        return false;
    };
    let Some((_, member)) = dict.into_iter().find(|(k, _)| k == "sha-256") else {
        return false;
    };
    let Member::Item(sfv::Item {
        bare: BareItem::Bytes(claimed),
        ..
    }) = member
    else {
        return false;
    };
    constant_time_eq(&claimed, &Sha256::digest(body))
}

/// Compares two byte strings in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_9530_example() {
        let body = br#"{"hello": "world"}"#;
        let digest = content_digest(body);
        assert_eq!(
            digest,
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
        );
        assert!(verify_content_digest(&digest, body));
    }

    #[test]
    fn verification_table() {
        let body = br#"{"hello": "world"}"#;
        let good = "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:";
        for (field, body, expected) in [
            (good, &body[..], true),
            // Unpadded base64 and other algorithms beside it are fine.
            (
                "sha-512=:AAAA:, sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE:",
                &body[..],
                true,
            ),
            (good, b"{\"hello\": \"World\"}", false),
            (good, b"", false),
            (
                "sha-512=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
                &body[..],
                false,
            ),
            (
                "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9D:",
                &body[..],
                false,
            ),
            (
                "sha-256=\"X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=\"",
                &body[..],
                false,
            ),
            (
                "SHA-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
                &body[..],
                false,
            ),
            ("", &body[..], false),
            ("garbage", &body[..], false),
        ] {
            assert_eq!(verify_content_digest(field, body), expected, "{field}");
        }
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    proptest! {
        #[test]
        fn digest_round_trips(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            prop_assert!(verify_content_digest(&content_digest(&body), &body));
        }

        #[test]
        fn arbitrary_fields_never_panic(field in ".{0,200}", body in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = verify_content_digest(&field, &body);
        }
    }
}
