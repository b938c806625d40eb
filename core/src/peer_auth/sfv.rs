//! The part of RFC 8941 (Structured Field Values) that signature headers use: parsing a
//! Dictionary, and serializing Strings, Integers and Byte Sequences.
//!
//! The parser follows the algorithms of RFC 8941 §4.2 over bytes, never indexes past the
//! input, does not recurse, and caps the input length and the number of members, list
//! items and parameters. Duplicate dictionary keys or parameter keys are rejected (RFC 8941
//! would let the last one win; for signatures an ambiguity is an error).

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// The longest header value the parser reads.
pub(crate) const MAX_FIELD_LEN: usize = 8192;
/// The most members a dictionary may have.
const MAX_MEMBERS: usize = 32;
/// The most items an inner list may have.
const MAX_INNER_ITEMS: usize = 64;
/// The most parameters one item or inner list may have.
const MAX_PARAMS: usize = 16;

/// The largest magnitude of an sf-integer (15 decimal digits).
pub(crate) const MAX_INTEGER: i64 = 999_999_999_999_999;

/// Standard base64; padding optional when decoding (RFC 8941 §4.2.7), written when encoding.
pub(crate) const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BareItem {
    Integer(i64),
    /// Kept as written; nothing here reads decimals, they are only parsed to be skipped.
    Decimal(String),
    String(String),
    Token(String),
    Bytes(Vec<u8>),
    Boolean(bool),
}

pub(crate) type Parameters = Vec<(String, BareItem)>;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Item {
    pub bare: BareItem,
    pub params: Parameters,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Member {
    Item(Item),
    InnerList(Vec<Item>, Parameters),
}

pub(crate) type Dictionary = Vec<(String, Member)>;

/// Parses a whole field value as an RFC 8941 Dictionary. The error text is safe to show.
pub(crate) fn parse_dictionary(input: &str) -> Result<Dictionary, String> {
    if input.len() > MAX_FIELD_LEN {
        return Err(format!("field longer than {MAX_FIELD_LEN} bytes"));
    }
    let mut p = Parser {
        input: input.as_bytes(),
        pos: 0,
    };
    p.skip_sp();
    let mut dict: Dictionary = Vec::new();
    while !p.at_end() {
        if dict.len() >= MAX_MEMBERS {
            return Err(format!("more than {MAX_MEMBERS} dictionary members"));
        }
        let key = p.parse_key()?;
        let member = if p.peek() == Some(b'=') {
            p.pos += 1;
            p.parse_item_or_inner_list()?
        } else {
            Member::Item(Item {
                bare: BareItem::Boolean(true),
                params: p.parse_parameters()?,
            })
        };
        if dict.iter().any(|(k, _)| *k == key) {
            return Err(format!("duplicate dictionary key {key:?}"));
        }
        dict.push((key, member));
        p.skip_ows();
        if p.at_end() {
            break;
        }
        if p.peek() != Some(b',') {
            return Err(format!("expected ',' at byte {}", p.pos));
        }
        p.pos += 1;
        p.skip_ows();
        if p.at_end() {
            return Err("trailing ',' in dictionary".to_string());
        }
    }
    Ok(dict)
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.pos >= self.input.len()
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn skip_sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn parse_item_or_inner_list(&mut self) -> Result<Member, String> {
        if self.peek() == Some(b'(') {
            self.parse_inner_list()
        } else {
            Ok(Member::Item(self.parse_item()?))
        }
    }

    fn parse_inner_list(&mut self) -> Result<Member, String> {
        // Caller saw '('.
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_sp();
            match self.peek() {
                None => return Err("unterminated inner list".to_string()),
                Some(b')') => {
                    self.pos += 1;
                    let params = self.parse_parameters()?;
                    return Ok(Member::InnerList(items, params));
                }
                Some(_) => {
                    if items.len() >= MAX_INNER_ITEMS {
                        return Err(format!("more than {MAX_INNER_ITEMS} inner list items"));
                    }
                    items.push(self.parse_item()?);
                    match self.peek() {
                        Some(b' ' | b')') => {}
                        _ => return Err(format!("expected ' ' or ')' at byte {}", self.pos)),
                    }
                }
            }
        }
    }

    fn parse_item(&mut self) -> Result<Item, String> {
        let bare = self.parse_bare_item()?;
        let params = self.parse_parameters()?;
        Ok(Item { bare, params })
    }

    fn parse_parameters(&mut self) -> Result<Parameters, String> {
        let mut params: Parameters = Vec::new();
        while self.peek() == Some(b';') {
            self.pos += 1;
            self.skip_sp();
            if params.len() >= MAX_PARAMS {
                return Err(format!("more than {MAX_PARAMS} parameters"));
            }
            let key = self.parse_key()?;
            let value = if self.peek() == Some(b'=') {
                self.pos += 1;
                self.parse_bare_item()?
            } else {
                BareItem::Boolean(true)
            };
            if params.iter().any(|(k, _)| *k == key) {
                return Err(format!("duplicate parameter {key:?}"));
            }
            params.push((key, value));
        }
        Ok(params)
    }

    fn parse_key(&mut self) -> Result<String, String> {
        let start = self.pos;
        match self.peek() {
            Some(c) if c.is_ascii_lowercase() || c == b'*' => self.pos += 1,
            _ => return Err(format!("expected a key at byte {start}")),
        }
        while let Some(c) = self.peek() {
            if c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, b'_' | b'-' | b'.' | b'*')
            {
                self.pos += 1;
            } else {
                break;
            }
        }
        self.slice_string(start)
    }

    fn parse_bare_item(&mut self) -> Result<BareItem, String> {
        match self.peek() {
            Some(c) if c == b'-' || c.is_ascii_digit() => self.parse_number(),
            Some(b'"') => self.parse_string().map(BareItem::String),
            Some(c) if c.is_ascii_alphabetic() || c == b'*' => self.parse_token(),
            Some(b':') => self.parse_bytes(),
            Some(b'?') => self.parse_boolean(),
            Some(_) => Err(format!("unexpected character at byte {}", self.pos)),
            None => Err("unexpected end of field".to_string()),
        }
    }

    fn parse_number(&mut self) -> Result<BareItem, String> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
            return Err(format!("expected a digit at byte {}", self.pos));
        }
        let digits_start = self.pos;
        let mut decimal = false;
        while let Some(c) = self.peek() {
            if c.is_ascii_digit() {
                self.pos += 1;
            } else if c == b'.' && !decimal {
                if self.pos - digits_start > 12 {
                    return Err("decimal with more than 12 integer digits".to_string());
                }
                decimal = true;
                self.pos += 1;
            } else {
                break;
            }
            let len = self.pos - digits_start;
            if !decimal && len > 15 {
                return Err("integer with more than 15 digits".to_string());
            }
            if decimal && len > 16 {
                return Err("decimal longer than 16 characters".to_string());
            }
        }
        let text = self.slice_string(start)?;
        if decimal {
            let fraction = text.rsplit('.').next().map_or(0, str::len);
            if text.ends_with('.') || fraction > 3 {
                return Err("decimal needs 1 to 3 fractional digits".to_string());
            }
            return Ok(BareItem::Decimal(text));
        }
        text.parse::<i64>()
            .map(BareItem::Integer)
            .map_err(|_| "integer out of range".to_string())
    }

    fn parse_string(&mut self) -> Result<String, String> {
        // Caller saw '"'.
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err("unterminated string".to_string()),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(char::from(c));
                            self.pos += 1;
                        }
                        _ => return Err("invalid escape in string".to_string()),
                    }
                }
                Some(c @ 0x20..=0x7e) => {
                    out.push(char::from(c));
                    self.pos += 1;
                }
                Some(_) => return Err("non-printable character in string".to_string()),
            }
        }
    }

    fn parse_token(&mut self) -> Result<BareItem, String> {
        let start = self.pos;
        // Caller saw ALPHA or '*'.
        self.pos += 1;
        while let Some(c) = self.peek() {
            if is_tchar(c) || c == b':' || c == b'/' {
                self.pos += 1;
            } else {
                break;
            }
        }
        self.slice_string(start).map(BareItem::Token)
    }

    fn parse_bytes(&mut self) -> Result<BareItem, String> {
        // Caller saw ':'.
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                None => return Err("unterminated byte sequence".to_string()),
                Some(b':') => break,
                Some(c) if c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=') => {
                    self.pos += 1;
                }
                Some(_) => return Err("invalid character in byte sequence".to_string()),
            }
        }
        let encoded = self.input.get(start..self.pos).unwrap_or_default();
        self.pos += 1;
        BASE64_LENIENT
            .decode(encoded)
            .map(BareItem::Bytes)
            .map_err(|_| "invalid base64 in byte sequence".to_string())
    }

    fn parse_boolean(&mut self) -> Result<BareItem, String> {
        // Caller saw '?'.
        self.pos += 1;
        let value = match self.peek() {
            Some(b'1') => true,
            Some(b'0') => false,
            _ => return Err("invalid boolean".to_string()),
        };
        self.pos += 1;
        Ok(BareItem::Boolean(value))
    }

    /// The input from `start` to the current position; every caller accepted ASCII only.
    fn slice_string(&self, start: usize) -> Result<String, String> {
        self.input
            .get(start..self.pos)
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(str::to_string)
            .ok_or_else(|| "invalid field text".to_string())
    }
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric()
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
}

/// Whether `key` is a valid sf-key (dictionary key or parameter name).
pub(crate) fn is_valid_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    match bytes.first() {
        Some(c) if c.is_ascii_lowercase() || *c == b'*' => {}
        _ => return false,
    }
    bytes.iter().all(|c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'.' | b'*')
    })
}

/// Serializes an sf-string, or says why it cannot be one (only printable ASCII can).
pub(crate) fn serialize_string(value: &str, out: &mut String) -> Result<(), String> {
    if let Some(c) = value.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(format!("{c:?} cannot appear in a structured field string"));
    }
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(())
}

/// Serializes an sf-integer, or says why it cannot be one (more than 15 digits).
pub(crate) fn serialize_integer(value: i64, out: &mut String) -> Result<(), String> {
    if !(-MAX_INTEGER..=MAX_INTEGER).contains(&value) {
        return Err(format!(
            "{value} is out of range for a structured field integer"
        ));
    }
    out.push_str(&value.to_string());
    Ok(())
}

/// Serializes an sf-binary (`:base64:`).
pub(crate) fn serialize_bytes(value: &[u8], out: &mut String) {
    out.push(':');
    out.push_str(&BASE64_LENIENT.encode(value));
    out.push(':');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(s: &str) -> Item {
        Item {
            bare: BareItem::String(s.to_string()),
            params: Vec::new(),
        }
    }

    #[test]
    fn parses_a_signature_input_dictionary() {
        let dict = parse_dictionary(
            r#"sig1=("@method" "content-type");created=1618884473;keyid="k\"1", sig2=("a");alg="ed25519""#,
        )
        .expect("parses");
        assert_eq!(dict.len(), 2);
        assert_eq!(
            dict[0],
            (
                "sig1".to_string(),
                Member::InnerList(
                    vec![string("@method"), string("content-type")],
                    vec![
                        ("created".to_string(), BareItem::Integer(1_618_884_473)),
                        ("keyid".to_string(), BareItem::String("k\"1".to_string())),
                    ]
                )
            )
        );
    }

    #[test]
    fn parses_every_bare_item_kind() {
        let dict = parse_dictionary(
            "a=1, b=-2.5, c=\"s\", d=tok/en:x, e=:AQID:, f=?0, g, h=:AQI:;p=?1, i=()",
        )
        .expect("parses");
        let values: Vec<&Member> = dict.iter().map(|(_, m)| m).collect();
        assert_eq!(
            values[4],
            &Member::Item(Item {
                bare: BareItem::Bytes(vec![1, 2, 3]),
                params: Vec::new()
            })
        );
        assert_eq!(
            values[6],
            &Member::Item(Item {
                bare: BareItem::Boolean(true),
                params: Vec::new()
            })
        );
        // Unpadded base64 is accepted.
        assert_eq!(
            values[7],
            &Member::Item(Item {
                bare: BareItem::Bytes(vec![1, 2]),
                params: vec![("p".to_string(), BareItem::Boolean(true))]
            })
        );
        assert_eq!(values[8], &Member::InnerList(Vec::new(), Vec::new()));
    }

    #[test]
    fn rejects_what_rfc_8941_rejects() {
        for bad in [
            "A=1",
            "a=1,",
            "a=1 b=2",
            "a=(\"x\"",
            "a=(\"x\"\"y\")",
            "a=\"unterminated",
            "a=\"bad\\escape\"",
            "a=1234567890123456",
            "a=1.",
            "a=1.2345",
            "a=1234567890123.1",
            "a=:not base64!:",
            "a=:AQID",
            "a=?2",
            "a=1;",
            "a=1, a=2",
            "a=1;p;p",
            "a=\u{e9}",
            "a=\"\u{e9}\"",
            "a=-",
            "a=#",
        ] {
            assert!(parse_dictionary(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn bounds_sizes() {
        let long = format!("a=\"{}\"", "x".repeat(MAX_FIELD_LEN));
        assert!(parse_dictionary(&long).is_err());
        let many: Vec<String> = (0..=MAX_MEMBERS).map(|i| format!("k{i}=1")).collect();
        assert!(parse_dictionary(&many.join(", ")).is_err());
        let items = vec!["\"x\""; MAX_INNER_ITEMS + 1].join(" ");
        assert!(parse_dictionary(&format!("a=({items})")).is_err());
        let params: String = (0..=MAX_PARAMS).map(|i| format!(";p{i}")).collect();
        assert!(parse_dictionary(&format!("a=1{params}")).is_err());
    }

    #[test]
    fn serializes_strings_and_integers() {
        let mut out = String::new();
        serialize_string("a\"b\\c", &mut out).expect("ascii");
        assert_eq!(out, r#""a\"b\\c""#);
        assert!(serialize_string("caf\u{e9}", &mut String::new()).is_err());
        assert!(serialize_string("line\n", &mut String::new()).is_err());
        assert!(serialize_integer(MAX_INTEGER + 1, &mut String::new()).is_err());
        let mut out = String::new();
        serialize_integer(-MAX_INTEGER, &mut out).expect("in range");
        assert_eq!(out, "-999999999999999");
    }
}
