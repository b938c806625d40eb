//! Signature parameters and the `Signature-Input` / `Signature` fields (RFC 9421 §2.3, §4).

use super::SignatureError;
use super::sfv::{self, BareItem, Member};

/// The longest label accepted or written.
const MAX_LABEL_LEN: usize = 64;
/// The most components one signature may cover.
pub(crate) const MAX_COVERED: usize = 32;

/// One signature parameter of RFC 9421 §2.3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureParam {
    /// `created`: when the signature was made, in seconds since the UNIX epoch.
    Created(i64),
    /// `expires`: when the signature stops being valid, in seconds since the UNIX epoch.
    Expires(i64),
    /// `keyid`: the `kid` of the signing key in the Network Schema.
    KeyId(String),
    /// `alg`: the algorithm; only `ed25519` is supported.
    Alg(String),
    /// `nonce`: a value the verifier may use to refuse replays.
    Nonce(String),
    /// `tag`: an application-specific tag.
    Tag(String),
}

impl SignatureParam {
    /// The parameter's name in the field.
    pub fn name(&self) -> &'static str {
        match self {
            SignatureParam::Created(_) => "created",
            SignatureParam::Expires(_) => "expires",
            SignatureParam::KeyId(_) => "keyid",
            SignatureParam::Alg(_) => "alg",
            SignatureParam::Nonce(_) => "nonce",
            SignatureParam::Tag(_) => "tag",
        }
    }

    fn same_kind(&self, other: &SignatureParam) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// The parameters of one signature, in the order they are serialized.
///
/// The order is part of what is signed, so it is kept exactly: setting a parameter that is
/// already present replaces its value in place; a new one goes last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignatureParams {
    entries: Vec<SignatureParam>,
}

impl SignatureParams {
    pub fn new() -> Self {
        SignatureParams::default()
    }

    /// Sets a parameter (in place if present, else appended).
    pub fn set(&mut self, param: SignatureParam) {
        match self.entries.iter_mut().find(|p| p.same_kind(&param)) {
            Some(existing) => *existing = param,
            None => self.entries.push(param),
        }
    }

    pub fn with_created(mut self, created: i64) -> Self {
        self.set(SignatureParam::Created(created));
        self
    }

    pub fn with_expires(mut self, expires: i64) -> Self {
        self.set(SignatureParam::Expires(expires));
        self
    }

    pub fn with_keyid(mut self, keyid: impl Into<String>) -> Self {
        self.set(SignatureParam::KeyId(keyid.into()));
        self
    }

    pub fn with_alg(mut self, alg: impl Into<String>) -> Self {
        self.set(SignatureParam::Alg(alg.into()));
        self
    }

    pub fn with_nonce(mut self, nonce: impl Into<String>) -> Self {
        self.set(SignatureParam::Nonce(nonce.into()));
        self
    }

    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.set(SignatureParam::Tag(tag.into()));
        self
    }

    /// The parameters in field order.
    pub fn entries(&self) -> &[SignatureParam] {
        &self.entries
    }

    pub fn created(&self) -> Option<i64> {
        self.entries.iter().find_map(|p| match p {
            SignatureParam::Created(v) => Some(*v),
            _ => None,
        })
    }

    pub fn expires(&self) -> Option<i64> {
        self.entries.iter().find_map(|p| match p {
            SignatureParam::Expires(v) => Some(*v),
            _ => None,
        })
    }

    pub fn keyid(&self) -> Option<&str> {
        self.string_param(|p| match p {
            SignatureParam::KeyId(v) => Some(v),
            _ => None,
        })
    }

    pub fn alg(&self) -> Option<&str> {
        self.string_param(|p| match p {
            SignatureParam::Alg(v) => Some(v),
            _ => None,
        })
    }

    pub fn nonce(&self) -> Option<&str> {
        self.string_param(|p| match p {
            SignatureParam::Nonce(v) => Some(v),
            _ => None,
        })
    }

    pub fn tag(&self) -> Option<&str> {
        self.string_param(|p| match p {
            SignatureParam::Tag(v) => Some(v),
            _ => None,
        })
    }

    fn string_param<'a>(
        &'a self,
        pick: impl Fn(&'a SignatureParam) -> Option<&'a String>,
    ) -> Option<&'a str> {
        self.entries.iter().find_map(pick).map(String::as_str)
    }
}

/// One member of a `Signature-Input` field: the label, the covered components and the
/// parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureInput {
    pub label: String,
    pub covered: Vec<String>,
    pub params: SignatureParams,
}

impl SignatureInput {
    /// The serialized inner list with its parameters: the value of the `@signature-params`
    /// line of the signature base and of this label in `Signature-Input`.
    pub fn params_value(&self) -> Result<String, SignatureError> {
        serialize_params_value(&self.covered, &self.params)
    }

    /// The whole `Signature-Input` field value (`label=(...);...`).
    pub fn to_field(&self) -> Result<String, SignatureError> {
        check_label(&self.label)?;
        Ok(format!("{}={}", self.label, self.params_value()?))
    }
}

/// One member of a `Signature` field: the label and the signature bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureValue {
    pub label: String,
    pub bytes: Vec<u8>,
}

impl SignatureValue {
    /// The whole `Signature` field value (`label=:base64:`).
    pub fn to_field(&self) -> Result<String, SignatureError> {
        check_label(&self.label)?;
        let mut out = format!("{}=", self.label);
        sfv::serialize_bytes(&self.bytes, &mut out);
        Ok(out)
    }
}

fn malformed(message: impl Into<String>) -> SignatureError {
    SignatureError::Malformed(message.into())
}

fn check_label(label: &str) -> Result<(), SignatureError> {
    if label.len() > MAX_LABEL_LEN || !sfv::is_valid_key(label) {
        return Err(malformed(format!("invalid signature label {label:?}")));
    }
    Ok(())
}

/// Whether `name` is a component identifier of the supported subset: one of the derived
/// components, or a lower-case HTTP field name.
pub(crate) fn is_supported_component(name: &str) -> bool {
    match name.strip_prefix('@') {
        Some(derived) => matches!(
            derived,
            "method" | "target-uri" | "authority" | "path" | "query"
        ),
        None => {
            !name.is_empty()
                && name.len() <= 128
                && name.bytes().all(|c| {
                    c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || matches!(
                            c,
                            b'!' | b'#'
                                | b'$'
                                | b'%'
                                | b'&'
                                | b'\''
                                | b'*'
                                | b'+'
                                | b'-'
                                | b'.'
                                | b'^'
                                | b'_'
                                | b'`'
                                | b'|'
                                | b'~'
                        )
                })
        }
    }
}

/// Checks the covered component list: supported names, no duplicates, bounded length.
pub(crate) fn check_covered<S: AsRef<str>>(covered: &[S]) -> Result<(), SignatureError> {
    if covered.len() > MAX_COVERED {
        return Err(malformed(format!(
            "more than {MAX_COVERED} covered components"
        )));
    }
    for (i, name) in covered.iter().enumerate() {
        let name = name.as_ref();
        if !is_supported_component(name) {
            return Err(malformed(format!("unsupported component {name:?}")));
        }
        if covered[..i].iter().any(|n| n.as_ref() == name) {
            return Err(malformed(format!("component {name:?} covered twice")));
        }
    }
    Ok(())
}

/// Serializes `("a" "b");created=...;keyid="..."` (RFC 8941 inner list with parameters).
pub(crate) fn serialize_params_value<S: AsRef<str>>(
    covered: &[S],
    params: &SignatureParams,
) -> Result<String, SignatureError> {
    check_covered(covered)?;
    let mut out = String::from("(");
    for (i, name) in covered.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        sfv::serialize_string(name.as_ref(), &mut out).map_err(malformed)?;
    }
    out.push(')');
    for param in params.entries() {
        out.push(';');
        out.push_str(param.name());
        out.push('=');
        match param {
            SignatureParam::Created(v) | SignatureParam::Expires(v) => {
                sfv::serialize_integer(*v, &mut out)
            }
            SignatureParam::KeyId(v)
            | SignatureParam::Alg(v)
            | SignatureParam::Nonce(v)
            | SignatureParam::Tag(v) => sfv::serialize_string(v, &mut out),
        }
        .map_err(|e| malformed(format!("parameter {}: {e}", param.name())))?;
    }
    Ok(out)
}

/// Picks the member named `label`, or the first one when `label` is `None`.
fn pick_member(
    dict: sfv::Dictionary,
    label: Option<&str>,
    field: &str,
) -> Result<(String, Member), SignatureError> {
    let found = match label {
        Some(wanted) => dict.into_iter().find(|(k, _)| k == wanted),
        None => dict.into_iter().next(),
    };
    match (found, label) {
        (Some(member), _) => Ok(member),
        (None, None) => Err(SignatureError::Missing),
        (None, Some(wanted)) => Err(malformed(format!("{field} has no label {wanted:?}"))),
    }
}

/// Parses a `Signature-Input` field and returns the member `label` (or the first one).
///
/// Only the chosen member must be in the supported subset: an inner list of component
/// names without component parameters, with the parameters `created`, `expires` (integers)
/// and `keyid`, `alg`, `nonce`, `tag` (strings), each at most once. Other members need
/// only be valid structured fields. `Missing` if the field is empty.
pub fn parse_signature_input(
    field: &str,
    label: Option<&str>,
) -> Result<SignatureInput, SignatureError> {
    if field.trim().is_empty() {
        return Err(SignatureError::Missing);
    }
    let dict =
        sfv::parse_dictionary(field).map_err(|e| malformed(format!("Signature-Input: {e}")))?;
    let (label, member) = pick_member(dict, label, "Signature-Input")?;
    check_label(&label)?;
    let Member::InnerList(items, list_params) = member else {
        return Err(malformed("Signature-Input member is not an inner list"));
    };
    let mut covered = Vec::with_capacity(items.len());
    for item in items {
        if !item.params.is_empty() {
            return Err(malformed("component parameters are not supported"));
        }
        match item.bare {
            BareItem::String(name) => covered.push(name),
            _ => return Err(malformed("a covered component is not a string")),
        }
    }
    check_covered(&covered)?;
    let mut params = SignatureParams::new();
    for (key, value) in list_params {
        let param = match (key.as_str(), value) {
            ("created", BareItem::Integer(v)) => SignatureParam::Created(v),
            ("expires", BareItem::Integer(v)) => SignatureParam::Expires(v),
            ("keyid", BareItem::String(v)) => SignatureParam::KeyId(v),
            ("alg", BareItem::String(v)) => SignatureParam::Alg(v),
            ("nonce", BareItem::String(v)) => SignatureParam::Nonce(v),
            ("tag", BareItem::String(v)) => SignatureParam::Tag(v),
            ("created" | "expires" | "keyid" | "alg" | "nonce" | "tag", _) => {
                return Err(malformed(format!("parameter {key} has the wrong type")));
            }
            _ => return Err(malformed(format!("unsupported parameter {key:?}"))),
        };
        // The structured-field parser already refused duplicate keys.
        params.set(param);
    }
    Ok(SignatureInput {
        label,
        covered,
        params,
    })
}

/// Parses a `Signature` field and returns the member `label` (or the first one), which
/// must be a byte sequence without parameters. `Missing` if the field is empty.
pub fn parse_signature(field: &str, label: Option<&str>) -> Result<SignatureValue, SignatureError> {
    if field.trim().is_empty() {
        return Err(SignatureError::Missing);
    }
    let dict = sfv::parse_dictionary(field).map_err(|e| malformed(format!("Signature: {e}")))?;
    let (label, member) = pick_member(dict, label, "Signature")?;
    check_label(&label)?;
    match member {
        Member::Item(sfv::Item {
            bare: BareItem::Bytes(bytes),
            params,
        }) if params.is_empty() => Ok(SignatureValue { label, bytes }),
        _ => Err(malformed("Signature member is not a plain byte sequence")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn serializes_in_the_order_given() {
        let params = SignatureParams::new()
            .with_keyid("k")
            .with_created(5)
            .with_keyid("k2");
        let value = serialize_params_value(&["@method", "@target-uri"], &params).expect("valid");
        assert_eq!(value, r#"("@method" "@target-uri");keyid="k2";created=5"#);
        assert_eq!(
            serialize_params_value::<&str>(&[], &SignatureParams::new()).expect("valid"),
            "()"
        );
    }

    #[test]
    fn refuses_to_serialize_outside_the_subset() {
        let ok = SignatureParams::new();
        for covered in [
            vec!["@method", "@method"],
            vec!["@scheme"],
            vec!["Content-Type"],
            vec![""],
            vec!["a b"],
        ] {
            assert!(
                serialize_params_value(&covered, &ok).is_err(),
                "{covered:?}"
            );
        }
        let bad = SignatureParams::new().with_keyid("caf\u{e9}");
        assert!(serialize_params_value(&["@method"], &bad).is_err());
        let bad = SignatureParams::new().with_created(10_i64.pow(15));
        assert!(serialize_params_value(&["@method"], &bad).is_err());
    }

    #[test]
    fn picks_the_first_or_the_named_label() {
        let field = r#"a=("@method");created=1, b=("@path");keyid="x""#;
        let first = parse_signature_input(field, None).expect("parses");
        assert_eq!(first.label, "a");
        assert_eq!(first.covered, vec!["@method"]);
        let named = parse_signature_input(field, Some("b")).expect("parses");
        assert_eq!(named.label, "b");
        assert_eq!(named.params.keyid(), Some("x"));
        assert!(matches!(
            parse_signature_input(field, Some("c")),
            Err(SignatureError::Malformed(_))
        ));
        // Another member outside the subset does not matter.
        let mixed = r#"sig1=("@method");created=1, other=("@query-param";name="x");foo=1.5"#;
        assert!(parse_signature_input(mixed, None).is_ok());
        assert!(parse_signature_input(mixed, Some("other")).is_err());
    }

    #[test]
    fn rejects_members_outside_the_subset() {
        for bad in [
            r#"sig1="@method""#,
            r#"sig1=("@method";sf)"#,
            r#"sig1=(@method)"#,
            r#"sig1=("@request-target")"#,
            r#"sig1=("Content-Type")"#,
            r#"sig1=("a" "a")"#,
            r#"sig1=("a");created="1""#,
            r#"sig1=("a");keyid=k"#,
            r#"sig1=("a");created=1;created=2"#,
            r#"sig1=("a");unknown=1"#,
            r#"sig1=("a");created=1.5"#,
        ] {
            assert!(
                matches!(
                    parse_signature_input(bad, None),
                    Err(SignatureError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        for bad in ["sig1=abc", "sig1=:AQID:;p=1", "sig1=(:AQID:)", "sig1=\"x\""] {
            assert!(
                matches!(
                    parse_signature(bad, None),
                    Err(SignatureError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_signature_input("  ", None),
            Err(SignatureError::Missing)
        );
        assert_eq!(parse_signature("", None), Err(SignatureError::Missing));
    }

    fn arb_component() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "@method",
                "@target-uri",
                "@authority",
                "@path",
                "@query"
            ])
            .prop_map(str::to_string),
            "[a-z0-9][a-z0-9!#$%&'*+.^_`|~-]{0,20}",
        ]
    }

    fn arb_sf_string() -> impl Strategy<Value = String> {
        "[ -~]{0,40}"
    }

    fn arb_integer() -> impl Strategy<Value = i64> {
        -sfv::MAX_INTEGER..=sfv::MAX_INTEGER
    }

    fn arb_params() -> impl Strategy<Value = SignatureParams> {
        (
            proptest::option::of(arb_integer()),
            proptest::option::of(arb_integer()),
            proptest::option::of(arb_sf_string()),
            proptest::option::of(arb_sf_string()),
            proptest::option::of(arb_sf_string()),
            proptest::option::of(arb_sf_string()),
        )
            .prop_map(|(created, expires, keyid, alg, nonce, tag)| {
                let mut list = Vec::new();
                list.extend(created.map(SignatureParam::Created));
                list.extend(expires.map(SignatureParam::Expires));
                list.extend(keyid.map(SignatureParam::KeyId));
                list.extend(alg.map(SignatureParam::Alg));
                list.extend(nonce.map(SignatureParam::Nonce));
                list.extend(tag.map(SignatureParam::Tag));
                list
            })
            .prop_shuffle()
            .prop_map(|list| {
                let mut params = SignatureParams::new();
                for p in list {
                    params.set(p);
                }
                params
            })
    }

    fn arb_label() -> impl Strategy<Value = String> {
        "[a-z*][a-z0-9_.*-]{0,15}"
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(field in ".{0,300}", label in proptest::option::of(".{0,10}")) {
            let _ = parse_signature_input(&field, label.as_deref());
            let _ = parse_signature(&field, label.as_deref());
        }

        #[test]
        fn near_grammar_text_never_panics(field in r#"[a-z0-9@=:;,()"\\ *.?/+\t-]{0,200}"#) {
            let _ = parse_signature_input(&field, None);
            let _ = parse_signature(&field, None);
            let _ = sfv::parse_dictionary(&field);
        }

        #[test]
        fn signature_input_round_trips(
            label in arb_label(),
            covered in proptest::collection::vec(arb_component(), 0..10),
            params in arb_params(),
        ) {
            let mut unique: Vec<String> = Vec::new();
            for c in covered {
                if !unique.contains(&c) {
                    unique.push(c);
                }
            }
            let input = SignatureInput { label: label.clone(), covered: unique, params };
            let field = input.to_field().expect("valid input serializes");
            let parsed = parse_signature_input(&field, None).expect("serialized input parses");
            prop_assert_eq!(&parsed, &input);
            // Also when it is not the first member.
            let two = format!("zz=(\"@method\"), {field}");
            let named = if label == "zz" {
                None
            } else {
                Some(parse_signature_input(&two, Some(&label)).expect("named member parses"))
            };
            if let Some(named) = named {
                prop_assert_eq!(named, input);
            }
        }

        #[test]
        fn signature_round_trips(label in arb_label(), bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let value = SignatureValue { label, bytes };
            let field = value.to_field().expect("valid label");
            prop_assert_eq!(parse_signature(&field, None).expect("parses"), value);
        }
    }
}
