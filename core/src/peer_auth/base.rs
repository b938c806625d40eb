//! The request as seen by a signature, and the signature base (RFC 9421 §2.5).

use super::SignatureError;
use super::params::{SignatureParams, serialize_params_value};

/// The parts of an HTTP request a signature can cover, as plain strings. Callers build it
/// from their HTTP types; signer and verifier must build it the same way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestParts {
    /// The method as sent (`POST`).
    pub method: String,
    /// The full target URI (`https://example.com/foo?param=Value`).
    pub target_uri: String,
    /// `host[:port]`; lower-cased, and the default port of the target URI's scheme dropped,
    /// when the base is built.
    pub authority: String,
    /// The absolute path (`/foo`); empty means `/`.
    pub path: String,
    /// The query without its leading `?`; `None` when the request has no query.
    pub query: Option<String>,
    /// Header fields in the order received; names compare case-insensitively, a repeated
    /// name is one field whose values are joined with `", "`.
    pub headers: Vec<(String, String)>,
}

impl RequestParts {
    /// Builds the parts from a method, an absolute `http`/`https` URI and headers. The
    /// target URI is kept in the normalized form the URL parser gives (the form an HTTP
    /// client sends).
    pub fn from_uri(
        method: &str,
        target_uri: &str,
        headers: Vec<(String, String)>,
    ) -> Result<RequestParts, SignatureError> {
        let url = url::Url::parse(target_uri)
            .map_err(|e| SignatureError::Malformed(format!("target URI: {e}")))?;
        RequestParts::from_url(method, &url, headers)
    }

    /// [`from_uri`](Self::from_uri) for a target URI the caller has parsed already.
    pub fn from_url(
        method: &str,
        url: &url::Url,
        headers: Vec<(String, String)>,
    ) -> Result<RequestParts, SignatureError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SignatureError::Malformed(
                "target URI must be http or https".to_string(),
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| SignatureError::Malformed("target URI has no host".to_string()))?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        Ok(RequestParts {
            method: method.to_string(),
            target_uri: url.as_str().to_string(),
            authority,
            path: url.path().to_string(),
            query: url.query().map(str::to_string),
            headers,
        })
    }

    /// The value of the `@authority` component: lower-cased, default port dropped.
    pub fn normalized_authority(&self) -> String {
        let authority = self.authority.trim().to_ascii_lowercase();
        let scheme = self
            .target_uri
            .split_once("://")
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        let default_port = match scheme.as_deref() {
            Some("http") => Some(":80"),
            Some("https") => Some(":443"),
            _ => None,
        };
        match default_port.and_then(|port| authority.strip_suffix(port)) {
            Some(stripped) if !stripped.is_empty() => stripped.to_string(),
            _ => authority,
        }
    }

    /// The value of one header field as RFC 9421 §2.1 covers it: every occurrence trimmed,
    /// joined with `", "`; `None` if the request does not have the field.
    pub fn header_value(&self, name: &str) -> Option<String> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim_matches([' ', '\t']))
            .peekable();
        values.peek()?;
        Some(values.collect::<Vec<_>>().join(", "))
    }

    /// The value of one covered component.
    fn component_value(&self, name: &str) -> Result<String, SignatureError> {
        let value = match name {
            "@method" => self.method.clone(),
            "@target-uri" => self.target_uri.clone(),
            "@authority" => self.normalized_authority(),
            "@path" if self.path.is_empty() => "/".to_string(),
            "@path" => self.path.clone(),
            "@query" => format!("?{}", self.query.as_deref().unwrap_or_default()),
            _ if name.starts_with('@') => {
                return Err(SignatureError::Malformed(format!(
                    "unsupported component {name:?}"
                )));
            }
            _ => self
                .header_value(name)
                .ok_or_else(|| SignatureError::MissingComponent(name.to_string()))?,
        };
        if value.contains(['\r', '\n']) {
            return Err(SignatureError::Malformed(format!(
                "component {name:?} contains a line break"
            )));
        }
        Ok(value)
    }
}

/// Builds the signature base (RFC 9421 §2.5): one `"name": value` line per covered
/// component in order, then the `"@signature-params"` line; lines joined with `\n`, no
/// trailing newline.
///
/// `Malformed` if the component list is outside the supported subset or a parameter cannot
/// be serialized; `MissingComponent` if a covered header is absent from the request.
pub fn signature_base<S: AsRef<str>>(
    parts: &RequestParts,
    covered: &[S],
    params: &SignatureParams,
) -> Result<String, SignatureError> {
    let params_value = serialize_params_value(covered, params)?;
    let mut base = String::new();
    for name in covered {
        let name = name.as_ref();
        base.push('"');
        base.push_str(name);
        base.push_str("\": ");
        base.push_str(&parts.component_value(name)?);
        base.push('\n');
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(&params_value);
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(target_uri: &str, authority: &str) -> RequestParts {
        RequestParts {
            method: "GET".to_string(),
            target_uri: target_uri.to_string(),
            authority: authority.to_string(),
            ..RequestParts::default()
        }
    }

    #[test]
    fn authority_is_lower_cased_without_default_port() {
        for (uri, authority, expected) in [
            ("https://x", "Example.COM:443", "example.com"),
            ("https://x", "example.com:80", "example.com:80"),
            ("http://x", "example.com:80", "example.com"),
            ("http://x", "example.com:8080", "example.com:8080"),
            ("HTTPS://x", "[::1]:443", "[::1]"),
            ("https://x", "[::1]:8443", "[::1]:8443"),
            ("", "example.com:443", "example.com:443"),
        ] {
            assert_eq!(
                parts(uri, authority).normalized_authority(),
                expected,
                "{uri} {authority}"
            );
        }
    }

    #[test]
    fn derived_components_and_headers() {
        let mut p = parts("https://example.com", "example.com");
        p.headers = vec![
            ("X-Multi".to_string(), " a ".to_string()),
            ("content-type".to_string(), "text/plain".to_string()),
            ("x-multi".to_string(), "\tb".to_string()),
            ("X-Empty".to_string(), "  ".to_string()),
        ];
        let base = signature_base(
            &p,
            &["@path", "@query", "x-multi", "x-empty", "@method"],
            &SignatureParams::new(),
        )
        .expect("builds");
        assert_eq!(
            base,
            "\"@path\": /\n\"@query\": ?\n\"x-multi\": a, b\n\"x-empty\": \n\"@method\": GET\n\
             \"@signature-params\": (\"@path\" \"@query\" \"x-multi\" \"x-empty\" \"@method\")"
        );
        p.query = Some("a=1&b=2".to_string());
        let base = signature_base(&p, &["@query"], &SignatureParams::new()).expect("builds");
        assert!(base.starts_with("\"@query\": ?a=1&b=2\n"));
    }

    #[test]
    fn missing_header_and_line_breaks_fail() {
        let mut p = parts("https://example.com", "example.com");
        assert_eq!(
            signature_base(&p, &["content-digest"], &SignatureParams::new()),
            Err(SignatureError::MissingComponent(
                "content-digest".to_string()
            ))
        );
        p.headers = vec![("x".to_string(), "a\r\nb".to_string())];
        assert!(matches!(
            signature_base(&p, &["x"], &SignatureParams::new()),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn parts_from_a_uri() {
        let p = RequestParts::from_uri(
            "POST",
            "https://Example.com:443/a/b?x=1",
            vec![("Host".to_string(), "example.com".to_string())],
        )
        .expect("valid");
        assert_eq!(p.target_uri, "https://example.com/a/b?x=1");
        assert_eq!(p.authority, "example.com");
        assert_eq!(p.path, "/a/b");
        assert_eq!(p.query.as_deref(), Some("x=1"));
        let p = RequestParts::from_uri("GET", "http://localhost:8080", Vec::new()).expect("valid");
        assert_eq!(p.authority, "localhost:8080");
        assert_eq!(p.path, "/");
        assert_eq!(p.query, None);
        assert!(RequestParts::from_uri("GET", "ftp://x/", Vec::new()).is_err());
        assert!(RequestParts::from_uri("GET", "/relative", Vec::new()).is_err());
    }
}
