use std::collections::HashMap;

use url::Url;

use super::ServedBindings;

/// What this instance is: its identity URL, name and the bindings it serves.
#[derive(Debug, Clone)]
pub struct InstanceIdentity {
    /// The base URL (reference-contract §0.3), written into `item_instance_url`.
    pub base_url: String,
    pub name: String,
    pub served: ServedBindings,
}

impl InstanceIdentity {
    /// True when `url` names this instance (any spelling of loopback, default ports, one
    /// trailing slash).
    pub fn is_self(&self, url: &str) -> bool {
        normalize_instance_url(url) == normalize_instance_url(&self.base_url)
    }
}

/// Computes the base URL: `API_DOMAIN` parsed as a URL; in development a URL without an
/// explicit port gets `API_PORT`; serialized without one trailing `/`.
pub fn base_url(api_domain: &str, api_port: u16, development: bool) -> Result<String, String> {
    let mut url = Url::parse(api_domain.trim())
        .map_err(|e| format!("API_DOMAIN \"{api_domain}\" is not a valid URL: {e}"))?;
    if url.cannot_be_a_base() || url.host_str().is_none() {
        return Err(format!(
            "API_DOMAIN \"{api_domain}\" must be an absolute http(s) URL"
        ));
    }
    if development && url.port().is_none() {
        url.set_port(Some(api_port))
            .map_err(|()| format!("API_DOMAIN \"{api_domain}\" cannot carry a port"))?;
    }
    Ok(strip_one_slash(url.as_str()))
}

/// Normalizes an instance URL for "is this the same instance?" decisions: loopback host
/// spellings (`localhost`, `127.0.0.1`, `[::1]`) become `localhost`, default ports go, one
/// trailing `/` goes. Unparseable input is returned trimmed, so it only equals itself.
pub fn normalize_instance_url(raw: &str) -> String {
    let trimmed = raw.trim();
    let Ok(mut url) = Url::parse(trimmed) else {
        return trimmed.to_string();
    };
    if matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost")) {
        // Setting a domain host on a special scheme cannot fail.
        let _ = url.set_host(Some("localhost"));
    }
    strip_one_slash(url.as_str())
}

/// Spellings of instance URLs remembered normalized, so that the same few URLs are not
/// parsed again on every request; past [`NormalizedUrls::MAX`] spellings it starts over.
#[derive(Debug, Default)]
pub struct NormalizedUrls(HashMap<String, String>);

impl NormalizedUrls {
    pub const MAX: usize = 4096;

    /// `raw` normalized, if it was seen before.
    pub fn get(&self, raw: &str) -> Option<&str> {
        self.0.get(raw).map(String::as_str)
    }

    /// `raw` normalized (see [`normalize_instance_url`]), remembered for next time.
    pub fn normalize(&mut self, raw: &str) -> String {
        if let Some(normalized) = self.0.get(raw) {
            return normalized.clone();
        }
        if self.0.len() >= Self::MAX {
            self.0.clear();
        }
        let normalized = normalize_instance_url(raw);
        self.0.insert(raw.to_string(), normalized.clone());
        normalized
    }
}

fn strip_one_slash(s: &str) -> String {
    s.strip_suffix('/').unwrap_or(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_follows_the_reference_rule() {
        assert_eq!(
            base_url("http://localhost", 2742, true).as_deref(),
            Ok("http://localhost:2742")
        );
        assert_eq!(
            base_url("http://127.0.0.1:9000", 2742, true).as_deref(),
            Ok("http://127.0.0.1:9000")
        );
        assert_eq!(
            base_url("https://api.example.com", 2742, false).as_deref(),
            Ok("https://api.example.com")
        );
        assert_eq!(
            base_url("https://x.org/dpg/", 2742, false).as_deref(),
            Ok("https://x.org/dpg")
        );
        assert_eq!(
            base_url("HTTP://LOCALHOST", 80, true).as_deref(),
            Ok("http://localhost")
        );
        assert!(base_url("not a url", 2742, true).is_err());
    }

    #[test]
    fn normalization_unifies_loopback_spellings() {
        let a = normalize_instance_url("http://127.0.0.1:2742/");
        assert_eq!(a, "http://localhost:2742");
        assert_eq!(normalize_instance_url("http://localhost:2742"), a);
        assert_eq!(normalize_instance_url("http://[::1]:2742"), a);
        assert_eq!(
            normalize_instance_url("https://x.org:443/"),
            "https://x.org"
        );
        assert_ne!(normalize_instance_url("http://localhost:2743"), a);
    }

    #[test]
    fn is_self_matches_aliases() {
        let me = InstanceIdentity {
            base_url: "http://127.0.0.1:2742".into(),
            name: "dpg".into(),
            served: ServedBindings::default(),
        };
        assert!(me.is_self("http://localhost:2742/"));
        assert!(!me.is_self("http://localhost:7777"));
    }
}
