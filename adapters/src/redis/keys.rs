//! Key names, SCAN patterns and expiry arguments.

use std::time::Duration;

/// Redis refuses `PX 0`; a TTL below one millisecond becomes one millisecond.
const MIN_TTL_MS: u64 = 1;

/// Far beyond any use, and far from the overflow that makes Redis refuse an expiry.
const MAX_TTL_MS: u64 = 100 * 365 * 24 * 60 * 60 * 1000;

/// The stored name of `key`.
pub(super) fn namespaced(namespace: &str, key: &str) -> String {
    let mut name = String::with_capacity(namespace.len() + key.len());
    name.push_str(namespace);
    name.push_str(key);
    name
}

/// A SCAN MATCH pattern for every stored name starting with `namespace` + `prefix`, with
/// glob characters of both taken literally.
pub(super) fn prefix_pattern(namespace: &str, prefix: &str) -> String {
    let mut pattern = String::with_capacity(namespace.len() + prefix.len() + 8);
    for c in namespace.chars().chain(prefix.chars()) {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

/// The `PX` argument for `ttl`.
pub(super) fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(MIN_TTL_MS, MAX_TTL_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_by_the_namespace() {
        assert_eq!(namespaced("dpg:a:", "page:1"), "dpg:a:page:1");
        assert_eq!(namespaced("", "k"), "k");
    }

    #[test]
    fn glob_characters_are_escaped_in_namespace_and_prefix() {
        let cases = [
            ("ns:", "page:", "ns:page:*"),
            ("ns:", "", "ns:*"),
            ("ns:", "a*b", "ns:a\\*b*"),
            ("ns:", "a?b", "ns:a\\?b*"),
            ("ns:", "[x]", "ns:\\[x\\]*"),
            ("ns:", "a\\b", "ns:a\\\\b*"),
            ("n*s:", "^-", "n\\*s:^-*"),
        ];
        for (namespace, prefix, expected) in cases {
            assert_eq!(
                prefix_pattern(namespace, prefix),
                expected,
                "{namespace:?} {prefix:?}"
            );
        }
    }

    #[test]
    fn ttls_become_whole_milliseconds_within_redis_limits() {
        let cases = [
            (Duration::ZERO, MIN_TTL_MS),
            (Duration::from_micros(10), MIN_TTL_MS),
            (Duration::from_millis(1500), 1500),
            (Duration::from_secs(60), 60_000),
            (Duration::MAX, MAX_TTL_MS),
        ];
        for (ttl, expected) in cases {
            assert_eq!(ttl_millis(ttl), expected, "{ttl:?}");
        }
    }
}
