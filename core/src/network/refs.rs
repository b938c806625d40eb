//! Inlining of `$ref`s that point into other documents (reference-contract §2.8, fixed).
//!
//! The validator never fetches anything, so a document fetched from a URL has its references
//! to other documents replaced by the referenced values before it is parsed. `#...`
//! references of the fetched document itself stay: the validator resolves them, recursive ones
//! included. Inside an inlined foreign document they point into that foreign document, whose
//! root the validator never sees, so they are inlined too.
//!
//! Fixed against the reference: a reference chain that comes back to itself is an error
//! instead of a hang, fragments are percent-decoded, each URL is fetched once per call, and
//! documents, depth and the number of inlined values are capped.
//!
//! Fetching works in rounds: a pure pass inlines everything it can with the documents at hand
//! and collects the URLs it still needs; those are fetched together and the pass runs again.

use std::collections::{BTreeSet, HashMap};

use futures::future::try_join_all;
use serde_json::{Map, Value};
use url::Url;

use crate::error::{CoreError, ErrorCode};
use crate::ports::{FetchOutcome, SchemaLocation, SchemaSource};

/// Bounds on what one document may pull in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefLimits {
    /// Distinct documents fetched per call (the top-level one not counted).
    pub max_documents: usize,
    /// References followed inside one another.
    pub max_depth: usize,
    /// Values inlined in total; stops a small document from expanding exponentially.
    pub max_inlined: usize,
}

impl Default for RefLimits {
    fn default() -> Self {
        RefLimits {
            max_documents: 32,
            max_depth: 16,
            max_inlined: 10_000,
        }
    }
}

/// Inlines the references of `document`, fetched from `document_url`, into other documents,
/// with the default limits. Errors: `Invalid` (`INVALID_SCHEMA_REF`) for a cycle, a missing
/// target, an unsupported reference or an exceeded limit; fetch errors of `source` as they are.
pub async fn inline_external_refs(
    document: Value,
    document_url: &str,
    source: &dyn SchemaSource,
) -> Result<Value, CoreError> {
    inline_external_refs_with_limits(document, document_url, source, RefLimits::default()).await
}

/// [`inline_external_refs`] with explicit limits.
pub async fn inline_external_refs_with_limits(
    document: Value,
    document_url: &str,
    source: &dyn SchemaSource,
    limits: RefLimits,
) -> Result<Value, CoreError> {
    let base = Url::parse(document_url).map_err(|e| {
        invalid_ref(format!(
            "Document URL \"{document_url}\" is not an absolute URL: {e}"
        ))
    })?;
    // Kept among the documents too, so a reference to the document's own URL needs no fetch.
    let mut documents = HashMap::from([(document_key(&base), document.clone())]);
    let mut fetched = 0usize;
    loop {
        let mut pass = InlinePass::new(&documents, limits);
        let result = pass.walk(document.clone(), &base, Scope::TopLevel)?;
        if pass.missing.is_empty() {
            return Ok(result);
        }
        fetched += pass.missing.len();
        if fetched > limits.max_documents {
            return Err(invalid_ref(format!(
                "{document_url} references more than {} other documents",
                limits.max_documents
            )));
        }
        let urls: Vec<String> = pass.missing.into_iter().collect();
        let bodies = try_join_all(urls.iter().map(|url| fetch_body(source, url))).await?;
        documents.extend(urls.into_iter().zip(bodies));
    }
}

async fn fetch_body(source: &dyn SchemaSource, url: &str) -> Result<Value, CoreError> {
    match source
        .fetch(&SchemaLocation::Url(url.to_string()), None)
        .await?
    {
        FetchOutcome::Fetched(document) => Ok(document.body),
        FetchOutcome::NotModified => Err(CoreError::Upstream {
            code: ErrorCode::RemoteSchemaFetchFailed,
            message: format!("Failed to fetch schema from {url}: not modified without validators"),
        }),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The fetched document's own tree: `#...` references stay for the validator.
    TopLevel,
    /// A value taken from a referenced document: every reference is inlined.
    Inlined,
}

/// A referenced value: a document (URL without fragment) and a JSON Pointer into it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RefTarget {
    document: String,
    pointer: String,
}

/// One synchronous inlining pass over the documents fetched so far.
struct InlinePass<'a> {
    documents: &'a HashMap<String, Value>,
    limits: RefLimits,
    /// Documents this pass needed but did not have.
    missing: BTreeSet<String>,
    /// The targets being resolved, outermost first.
    chain: Vec<RefTarget>,
    inlined: usize,
}

impl<'a> InlinePass<'a> {
    fn new(documents: &'a HashMap<String, Value>, limits: RefLimits) -> Self {
        InlinePass {
            documents,
            limits,
            missing: BTreeSet::new(),
            chain: Vec::new(),
            inlined: 0,
        }
    }

    fn walk(&mut self, value: Value, base: &Url, scope: Scope) -> Result<Value, CoreError> {
        match value {
            Value::Object(object) => {
                let reference = match object.get("$ref") {
                    Some(Value::String(r)) if !(scope == Scope::TopLevel && r.starts_with('#')) => {
                        Some(r.clone())
                    }
                    _ => None,
                };
                match reference {
                    Some(reference) => self.inline(object, &reference, base, scope),
                    None => Ok(Value::Object(self.walk_object(object, base, scope)?)),
                }
            }
            Value::Array(items) => items
                .into_iter()
                .map(|item| self.walk(item, base, scope))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            other => Ok(other),
        }
    }

    fn walk_object(
        &mut self,
        object: Map<String, Value>,
        base: &Url,
        scope: Scope,
    ) -> Result<Map<String, Value>, CoreError> {
        object
            .into_iter()
            .map(|(key, value)| Ok((key, self.walk(value, base, scope)?)))
            .collect()
    }

    /// Replaces `{"$ref": reference, ...siblings}` by the referenced value, siblings merged over it.
    fn inline(
        &mut self,
        mut object: Map<String, Value>,
        reference: &str,
        base: &Url,
        scope: Scope,
    ) -> Result<Value, CoreError> {
        object.remove("$ref");
        let siblings = self.walk_object(object, base, scope)?;
        let (target, document_url) = resolve_target(base, reference)?;
        let resolved = self.resolve(target, &document_url, reference, base)?;
        Ok(merge_siblings(resolved, siblings))
    }

    fn resolve(
        &mut self,
        target: RefTarget,
        document_url: &Url,
        reference: &str,
        base: &Url,
    ) -> Result<Value, CoreError> {
        if self.chain.contains(&target) {
            return Err(invalid_ref(format!(
                "$ref \"{reference}\" in {base} is cyclic: it comes back to {}#{}, which is already being resolved",
                target.document, target.pointer
            )));
        }
        if self.chain.len() >= self.limits.max_depth {
            return Err(invalid_ref(format!(
                "$ref \"{reference}\" in {base} nests more than {} references deep",
                self.limits.max_depth
            )));
        }
        self.inlined += 1;
        if self.inlined > self.limits.max_inlined {
            return Err(invalid_ref(format!(
                "$ref \"{reference}\" in {base}: more than {} values inlined",
                self.limits.max_inlined
            )));
        }
        let Some(document) = self.documents.get(&target.document) else {
            // Fetched before the next pass; the placeholder is never returned.
            self.missing.insert(target.document);
            return Ok(Value::Null);
        };
        let value = document.pointer(&target.pointer).cloned().ok_or_else(|| {
            invalid_ref(format!(
                "$ref \"{reference}\" in {base}: {}#{} does not exist",
                target.document, target.pointer
            ))
        })?;
        self.chain.push(target);
        let result = self.walk(value, document_url, Scope::Inlined);
        self.chain.pop();
        result
    }
}

/// The document and pointer `reference` names, relative to `base`, and the document's URL.
fn resolve_target(base: &Url, reference: &str) -> Result<(RefTarget, Url), CoreError> {
    let mut url = base.join(reference).map_err(|e| {
        invalid_ref(format!(
            "$ref \"{reference}\" in {base} is not a valid URL: {e}"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid_ref(format!(
            "$ref \"{reference}\" in {base}: only http and https documents can be referenced"
        )));
    }
    let pointer = match url.fragment() {
        None => String::new(),
        Some(fragment) => percent_decode(fragment).ok_or_else(|| {
            invalid_ref(format!(
                "$ref \"{reference}\" in {base}: fragment is not valid UTF-8"
            ))
        })?,
    };
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(invalid_ref(format!(
            "$ref \"{reference}\" in {base}: only JSON Pointer fragments are supported"
        )));
    }
    url.set_fragment(None);
    let target = RefTarget {
        document: url.to_string(),
        pointer,
    };
    Ok((target, url))
}

fn document_key(url: &Url) -> String {
    let mut url = url.clone();
    url.set_fragment(None);
    url.to_string()
}

/// Siblings win over the resolved object's keys; any other value is wrapped as `value`.
fn merge_siblings(resolved: Value, siblings: Map<String, Value>) -> Value {
    let mut merged = match resolved {
        Value::Object(object) => object,
        other => Map::from_iter([("value".to_string(), other)]),
    };
    merged.extend(siblings);
    Value::Object(merged)
}

/// Decodes `%XX` escapes (a `%` not followed by two hex digits stays as is).
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&high), Some(&low)) => {
                hex_value(high).zip(hex_value(low)).map(|(h, l)| h * 16 + l)
            }
            _ => None,
        };
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded).ok()
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|v| u8::try_from(v).ok())
}

fn invalid_ref(message: String) -> CoreError {
    CoreError::invalid(ErrorCode::InvalidSchemaRef, message)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use serde_json::json;

    use super::*;
    use crate::ports::{FetchedDocument, SourceValidators};

    /// Serves fixed documents by URL and records every fetch.
    #[derive(Default)]
    struct FakeSource {
        documents: HashMap<String, Value>,
        fetches: Mutex<Vec<String>>,
    }

    impl FakeSource {
        fn with(documents: &[(&str, Value)]) -> Self {
            FakeSource {
                documents: documents
                    .iter()
                    .map(|(url, body)| (url.to_string(), body.clone()))
                    .collect(),
                fetches: Mutex::default(),
            }
        }

        fn fetches(&self) -> Vec<String> {
            self.fetches.lock().expect("lock").clone()
        }
    }

    #[async_trait]
    impl SchemaSource for FakeSource {
        async fn fetch(
            &self,
            location: &SchemaLocation,
            known: Option<SourceValidators>,
        ) -> Result<FetchOutcome, CoreError> {
            assert!(known.is_none(), "refs are fetched unconditionally");
            let url = location.as_str().to_string();
            self.fetches.lock().expect("lock").push(url.clone());
            match self.documents.get(&url) {
                Some(body) => Ok(FetchOutcome::Fetched(FetchedDocument {
                    body: body.clone(),
                    validators: SourceValidators::default(),
                })),
                None => Err(CoreError::Upstream {
                    code: ErrorCode::RemoteSchemaFetchFailed,
                    message: format!("Failed to fetch schema from {url}: 404 Not Found"),
                }),
            }
        }
    }

    const TOP: &str = "https://registry.test/nets/a/network.json";

    async fn inline(document: Value, source: &FakeSource) -> Result<Value, CoreError> {
        inline_external_refs(document, TOP, source).await
    }

    fn invalid_message(err: CoreError) -> String {
        match err {
            CoreError::Invalid { code, message, .. } => {
                assert_eq!(code, ErrorCode::InvalidSchemaRef);
                message
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn absolute_ref_is_inlined_with_pointer_and_siblings_win() {
        let source = FakeSource::with(&[(
            "https://schemas.test/common.json",
            json!({"defs": {"name": {"type": "string", "description": "old", "minLength": 1}}}),
        )]);
        let doc = json!({"a": {"$ref": "https://schemas.test/common.json#/defs/name", "description": "new"}});
        let out = inline(doc, &source).await.expect("inlined");
        assert_eq!(
            out,
            json!({"a": {"type": "string", "description": "new", "minLength": 1}})
        );
    }

    #[tokio::test]
    async fn relative_refs_resolve_against_the_document_that_holds_them() {
        let source = FakeSource::with(&[
            (
                "https://registry.test/nets/a/items/profile.json",
                json!({"properties": {"addr": {"$ref": "../shared/address.json"}}}),
            ),
            (
                "https://registry.test/nets/a/shared/address.json",
                json!({"type": "object", "required": ["city"]}),
            ),
        ]);
        let doc = json!({"item_schemas": {"profile": {"$ref": "items/profile.json"}}});
        let out = inline(doc, &source).await.expect("inlined");
        assert_eq!(
            out,
            json!({"item_schemas": {"profile": {"properties": {"addr": {"type": "object", "required": ["city"]}}}}})
        );
    }

    #[tokio::test]
    async fn local_refs_stay_at_top_level_and_are_inlined_inside_foreign_documents() {
        let source = FakeSource::with(&[(
            "https://schemas.test/s.json",
            json!({"$defs": {"n": {"type": "integer"}}, "schema": {"properties": {"x": {"$ref": "#/$defs/n"}}}}),
        )]);
        let doc = json!({
            "$defs": {"local": {"type": "string"}},
            "own": {"$ref": "#/$defs/local"},
            "foreign": {"$ref": "https://schemas.test/s.json#/schema"}
        });
        let out = inline(doc, &source).await.expect("inlined");
        assert_eq!(out["own"], json!({"$ref": "#/$defs/local"}));
        assert_eq!(
            out["foreign"],
            json!({"properties": {"x": {"type": "integer"}}})
        );
    }

    #[tokio::test]
    async fn non_object_targets_are_wrapped_as_value() {
        let source =
            FakeSource::with(&[("https://schemas.test/v.json", json!({"list": ["a", "b"]}))]);
        let doc = json!({"x": {"$ref": "https://schemas.test/v.json#/list", "title": "t"}});
        let out = inline(doc, &source).await.expect("inlined");
        assert_eq!(out, json!({"x": {"value": ["a", "b"], "title": "t"}}));
    }

    #[tokio::test]
    async fn each_document_is_fetched_once() {
        let source = FakeSource::with(&[(
            "https://schemas.test/c.json",
            json!({"a": {"type": "string"}, "b": {"type": "number"}}),
        )]);
        let doc = json!([
            {"$ref": "https://schemas.test/c.json#/a"},
            {"$ref": "https://schemas.test/c.json#/b"},
            {"$ref": "https://schemas.test/c.json#/a"}
        ]);
        let out = inline(doc, &source).await.expect("inlined");
        assert_eq!(
            out,
            json!([{"type": "string"}, {"type": "number"}, {"type": "string"}])
        );
        assert_eq!(
            source.fetches(),
            vec!["https://schemas.test/c.json".to_string()]
        );
    }

    #[tokio::test]
    async fn a_ref_to_the_document_itself_does_not_fetch_it_again() {
        let source = FakeSource::default();
        let doc = json!({"defs": {"n": {"type": "null"}}, "x": {"$ref": "network.json#/defs/n"}});
        let out = inline(doc, &source).await.expect("inlined");
        assert_eq!(out["x"], json!({"type": "null"}));
        assert!(source.fetches().is_empty());
    }

    #[tokio::test]
    async fn pointer_escapes_and_percent_encoding_are_decoded() {
        let source = FakeSource::with(&[(
            "https://schemas.test/e.json",
            json!({"a/b": {"c~d": {"ü x": {"const": 1}}}}),
        )]);
        let doc = json!({"x": {"$ref": "https://schemas.test/e.json#/a~1b/c~0d/%C3%BC%20x"}});
        let out = inline(doc, &source).await.expect("inlined");
        assert_eq!(out["x"], json!({"const": 1}));
    }

    #[tokio::test]
    async fn cycles_across_documents_are_refused_naming_the_ref() {
        let source = FakeSource::with(&[
            (
                "https://schemas.test/a.json",
                json!({"next": {"$ref": "b.json"}}),
            ),
            (
                "https://schemas.test/b.json",
                json!({"back": {"$ref": "a.json"}}),
            ),
        ]);
        let doc = json!({"x": {"$ref": "https://schemas.test/a.json"}});
        let message = invalid_message(inline(doc, &source).await.expect_err("cycle"));
        assert!(message.contains("\"a.json\""), "{message}");
        assert!(message.contains("cyclic"), "{message}");
    }

    #[tokio::test]
    async fn recursive_local_refs_inside_foreign_documents_are_refused() {
        let source = FakeSource::with(&[(
            "https://schemas.test/tree.json",
            json!({"$defs": {"node": {"properties": {"child": {"$ref": "#/$defs/node"}}}}}),
        )]);
        let doc = json!({"x": {"$ref": "https://schemas.test/tree.json#/$defs/node"}});
        let message = invalid_message(inline(doc, &source).await.expect_err("cycle"));
        assert!(message.contains("#/$defs/node"), "{message}");
    }

    #[tokio::test]
    async fn recursive_local_refs_of_the_top_level_document_are_kept() {
        let source = FakeSource::default();
        let doc = json!({"$defs": {"node": {"properties": {"child": {"$ref": "#/$defs/node"}}}}});
        let out = inline(doc.clone(), &source).await.expect("kept");
        assert_eq!(out, doc);
    }

    #[tokio::test]
    async fn missing_targets_and_anchors_are_invalid() {
        let source = FakeSource::with(&[("https://schemas.test/m.json", json!({"a": 1}))]);
        let missing = inline(
            json!({"$ref": "https://schemas.test/m.json#/nope"}),
            &source,
        )
        .await;
        assert!(invalid_message(missing.expect_err("missing")).contains("/nope"));
        let anchor = inline(json!({"$ref": "https://schemas.test/m.json#name"}), &source).await;
        assert!(invalid_message(anchor.expect_err("anchor")).contains("JSON Pointer"));
        let scheme = inline(json!({"$ref": "file:///etc/passwd"}), &source).await;
        assert!(invalid_message(scheme.expect_err("scheme")).contains("http"));
    }

    #[tokio::test]
    async fn fetch_errors_are_passed_through() {
        let source = FakeSource::default();
        let err = inline(json!({"$ref": "https://schemas.test/absent.json"}), &source)
            .await
            .expect_err("404");
        assert!(matches!(err, CoreError::Upstream { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn document_and_depth_limits_hold() {
        // A chain d0 -> d1 -> ... -> d9, each a distinct document.
        let chain: Vec<(String, Value)> = (0..10)
            .map(|i| {
                (
                    format!("https://schemas.test/d{i}.json"),
                    json!({"next": {"$ref": format!("d{}.json", i + 1)}}),
                )
            })
            .collect();
        let documents: Vec<(&str, Value)> =
            chain.iter().map(|(u, v)| (u.as_str(), v.clone())).collect();
        let source = FakeSource::with(&documents);
        let doc = json!({"$ref": "https://schemas.test/d0.json"});

        let few_documents = RefLimits {
            max_documents: 3,
            ..RefLimits::default()
        };
        let err = inline_external_refs_with_limits(doc.clone(), TOP, &source, few_documents)
            .await
            .expect_err("document cap");
        assert!(invalid_message(err).contains("more than 3 other documents"));
        assert_eq!(source.fetches().len(), 3);

        let shallow = RefLimits {
            max_depth: 2,
            ..RefLimits::default()
        };
        let err = inline_external_refs_with_limits(doc, TOP, &source, shallow)
            .await
            .expect_err("depth cap");
        assert!(invalid_message(err).contains("more than 2 references deep"));
    }

    #[tokio::test]
    async fn exponential_expansion_is_capped() {
        // Every level references the next one twice: 2^14 values, within the depth cap.
        let levels: Vec<(String, Value)> = (0..14)
            .map(|i| {
                let next = format!("#/l{}", i + 1);
                (format!("l{i}"), json!([{"$ref": next}, {"$ref": next}]))
            })
            .collect();
        let mut body: Map<String, Value> = levels.into_iter().collect();
        body.insert("l14".into(), json!({"type": "string"}));
        let source = FakeSource::with(&[("https://schemas.test/x.json", Value::Object(body))]);
        let err = inline(json!({"$ref": "https://schemas.test/x.json#/l0"}), &source)
            .await
            .expect_err("capped");
        assert!(invalid_message(err).contains("values inlined"));
    }

    #[test]
    fn percent_decoding_keeps_stray_percent_signs() {
        assert_eq!(percent_decode("a%2Fb%zz%4").as_deref(), Some("a/b%zz%4"));
        assert_eq!(percent_decode("%FF"), None);
    }
}
