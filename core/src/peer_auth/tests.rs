//! RFC test vectors, the sign/verify round trip and the tampering table.

use super::*;

const RFC_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
";

const RFC_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----
";

const RFC_B26_SIGNATURE: &str =
    "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==";

fn header(name: &str, value: &str) -> (String, String) {
    (name.to_string(), value.to_string())
}

/// The test request of RFC 9421 §B.2.
fn rfc_request() -> RequestParts {
    RequestParts {
        method: "POST".to_string(),
        target_uri: "https://example.com/foo?param=Value&Pet=dog".to_string(),
        authority: "example.com".to_string(),
        path: "/foo".to_string(),
        query: Some("param=Value&Pet=dog".to_string()),
        headers: vec![
            header("Host", "example.com"),
            header("Date", "Tue, 20 Apr 2021 02:07:55 GMT"),
            header("Content-Type", "application/json"),
            header(
                "Content-Digest",
                "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
            ),
            header("Content-Length", "18"),
        ],
    }
}

#[test]
fn rfc_9421_b_2_6_signature_base_and_signature() {
    let key = SigningKey::from_pkcs8_pem(RFC_PRIVATE_PEM).expect("RFC private key");
    let public = VerifyingKey::from_public_key_pem(RFC_PUBLIC_PEM).expect("RFC public key");
    assert_eq!(key.verifying_key(), public);

    let covered = [
        "date",
        "@method",
        "@path",
        "@authority",
        "content-type",
        "content-length",
    ];
    let params = SignatureParams::new()
        .with_created(1_618_884_473)
        .with_keyid("test-key-ed25519");
    let base = signature_base(&rfc_request(), &covered, &params).expect("base");
    let expected = [
        "\"date\": Tue, 20 Apr 2021 02:07:55 GMT",
        "\"@method\": POST",
        "\"@path\": /foo",
        "\"@authority\": example.com",
        "\"content-type\": application/json",
        "\"content-length\": 18",
        "\"@signature-params\": (\"date\" \"@method\" \"@path\" \"@authority\" \
         \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\"",
    ]
    .join("\n");
    assert_eq!(base, expected);

    let signed =
        sign_request_with_label(&rfc_request(), &covered, &params, &key, "sig-b26").expect("signs");
    assert_eq!(
        signed.signature_input,
        "sig-b26=(\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \
         \"content-length\");created=1618884473;keyid=\"test-key-ed25519\""
    );
    assert_eq!(signed.signature, format!("sig-b26=:{RFC_B26_SIGNATURE}:"));

    // The default label signs the same base.
    let signed = sign_request(&rfc_request(), &covered, &params, &key).expect("signs");
    assert_eq!(signed.signature, format!("sig1=:{RFC_B26_SIGNATURE}:"));
}

#[test]
fn rfc_9421_b_2_6_header_pair_verifies() {
    let public = VerifyingKey::from_public_key_pem(RFC_PUBLIC_PEM).expect("RFC public key");
    let input = "sig-b26=(\"date\" \"@method\" \"@path\" \"@authority\" \
                 \"content-type\" \"content-length\");created=1618884473\
                 ;keyid=\"test-key-ed25519\"";
    let signature = format!("sig-b26=:{RFC_B26_SIGNATURE}:");
    let lookup = |kid: &str| (kid == "test-key-ed25519").then_some(public);
    let verified = verify_request(&rfc_request(), Some(input), Some(&signature), lookup)
        .expect("the RFC signature verifies");
    assert_eq!(verified.label, "sig-b26");
    assert_eq!(verified.keyid, "test-key-ed25519");
    assert_eq!(verified.created, Some(1_618_884_473));
    assert_eq!(verified.expires, None);
    assert_eq!(verified.nonce, None);
    assert_eq!(verified.covered.len(), 6);
    assert!(verified.covers("content-length"));
    assert_eq!(
        verified.require_covered(&["@method", "content-digest"]),
        Err(SignatureError::MissingComponent(
            "content-digest".to_string()
        ))
    );
}

/// The shared secret of RFC 9421 §B.1.5 (`test-shared-secret`), base64.
const RFC_SHARED_SECRET: &str =
    "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==";
const RFC_B25_SIGNATURE: &str = "pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=";

fn rfc_shared_secret() -> MacKey {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(RFC_SHARED_SECRET)
        .expect("RFC secret");
    MacKey::from_bytes(&bytes)
}

#[test]
fn rfc_9421_b_2_5_hmac_sha256_signature_and_verification() {
    let covered = ["date", "@authority", "content-type"];
    let params = SignatureParams::new()
        .with_created(1_618_884_473)
        .with_keyid("test-shared-secret");
    let key = rfc_shared_secret();
    let signed = sign_request_mac_with_label(&rfc_request(), &covered, &params, &key, "sig-b25")
        .expect("signs");
    assert_eq!(
        signed.signature_input,
        "sig-b25=(\"date\" \"@authority\" \"content-type\");created=1618884473\
         ;keyid=\"test-shared-secret\""
    );
    assert_eq!(signed.signature, format!("sig-b25=:{RFC_B25_SIGNATURE}:"));

    // Without `alg` the key decides (RFC 9421 §3.2).
    let lookup = |kid: &str, alg: Option<SignatureAlg>| {
        assert_eq!(alg, None);
        (kid == "test-shared-secret")
            .then(|| VerificationKey::HmacSha256(rfc_shared_secret()))
            .ok_or(SignatureError::UnknownKey)
    };
    let verified = verify_request_keyed(
        &rfc_request(),
        Some(&signed.signature_input),
        Some(&signed.signature),
        None,
        lookup,
    )
    .expect("the RFC MAC verifies");
    assert_eq!(verified.alg, SignatureAlg::HmacSha256);
    assert_eq!(verified.label, "sig-b25");

    // The Ed25519-only verifier does not take a shared-secret signature for one.
    assert!(matches!(
        verify_request(
            &rfc_request(),
            Some(&signed.signature_input),
            Some(&signed.signature),
            |_| Some(alice().verifying_key()),
        ),
        Err(SignatureError::Malformed(_))
    ));
}

#[test]
fn a_named_algorithm_must_match_the_key() {
    let parts = peer_request();
    let params = standard_params("alice").with_alg(ALG_HMAC_SHA256);
    let mac = MacKey::from_bytes(b"pair");
    let signed = sign_request_mac(&parts, STANDARD_COVERED, &params, &mac).expect("signs");
    let verify = |key: VerificationKey| {
        verify_request_keyed(
            &parts,
            Some(&signed.signature_input),
            Some(&signed.signature),
            None,
            move |_, alg| {
                assert_eq!(alg, Some(SignatureAlg::HmacSha256));
                Ok(key.clone())
            },
        )
    };
    assert!(verify(VerificationKey::HmacSha256(mac.clone())).is_ok());
    assert_eq!(
        verify(VerificationKey::HmacSha256(MacKey::from_bytes(b"other"))).map(|v| v.alg),
        Err(SignatureError::BadSignature)
    );
    assert_eq!(
        verify(VerificationKey::Ed25519(alice().verifying_key())).map(|v| v.alg),
        Err(SignatureError::UnsupportedAlg),
        "an Ed25519 key does not check a signature that names hmac-sha256"
    );
    assert_eq!(
        verify_request(
            &parts,
            Some(&signed.signature_input),
            Some(&signed.signature),
            lookup
        ),
        Err(SignatureError::UnsupportedAlg)
    );
    assert_eq!(
        sign_request_mac(&parts, STANDARD_COVERED, &standard_params("alice"), &mac),
        Err(SignatureError::UnsupportedAlg),
        "a MAC is not signed under alg=ed25519"
    );
}

// --- our standard covered set ------------------------------------------------------------

const BODY: &[u8] = br#"{"action":"perform","id":"0193"}"#;
const NOW: i64 = 1_750_000_000;

fn alice() -> SigningKey {
    SigningKey::from_seed(&[0xa1; 32])
}

fn bob() -> SigningKey {
    SigningKey::from_seed(&[0xb0; 32])
}

fn peer_request() -> RequestParts {
    RequestParts::from_uri(
        "POST",
        "https://peer.example:8443/api/actions/perform?dry_run=false",
        vec![
            header("Content-Type", "application/json"),
            header("Content-Digest", &content_digest(BODY)),
            header("X-Request-Id", "r-1"),
        ],
    )
    .expect("valid URI")
}

fn standard_params(keyid: &str) -> SignatureParams {
    SignatureParams::new()
        .with_created(NOW)
        .with_expires(NOW + 300)
        .with_keyid(keyid)
        .with_alg("ed25519")
        .with_nonce("n-6f1c2a")
}

/// Trusts alice and bob under their suggested key ids.
fn lookup(kid: &str) -> Option<VerifyingKey> {
    [alice(), bob()]
        .into_iter()
        .find(|k| k.suggested_kid() == kid)
        .map(|k| k.verifying_key())
}

fn signed_by_alice() -> SignedHeaders {
    sign_request(
        &peer_request(),
        STANDARD_COVERED,
        &standard_params(&alice().suggested_kid()),
        &alice(),
    )
    .expect("signs")
}

#[test]
fn standard_round_trip() {
    let signed = signed_by_alice();
    let kid = alice().suggested_kid();
    assert_eq!(
        signed.signature_input,
        format!(
            "sig1=(\"@method\" \"@target-uri\" \"@authority\" \"content-type\" \
             \"content-digest\");created={NOW};expires={};keyid=\"{kid}\";alg=\"ed25519\"\
             ;nonce=\"n-6f1c2a\"",
            NOW + 300
        )
    );
    let parts = peer_request();
    let verified = verify_request(
        &parts,
        Some(&signed.signature_input),
        Some(&signed.signature),
        lookup,
    )
    .expect("verifies");
    assert_eq!(
        verified,
        Verified {
            label: "sig1".to_string(),
            keyid: kid,
            created: Some(NOW),
            expires: Some(NOW + 300),
            nonce: Some("n-6f1c2a".to_string()),
            alg: SignatureAlg::Ed25519,
            tag: None,
            covered: STANDARD_COVERED.iter().map(|c| c.to_string()).collect(),
        }
    );
    assert_eq!(verified.require_covered(STANDARD_COVERED), Ok(()));
    let digest = parts.header_value("content-digest").expect("present");
    assert!(verify_content_digest(&digest, BODY));
    assert!(!verify_content_digest(&digest, b"{}"));
}

#[test]
fn header_names_are_case_insensitive_and_verification_ignores_unsigned_headers() {
    let signed = sign_request(
        &peer_request(),
        &["@method", "Content-Type"],
        &standard_params(&alice().suggested_kid()),
        &alice(),
    )
    .expect("signs");
    assert!(
        signed
            .signature_input
            .starts_with("sig1=(\"@method\" \"content-type\")")
    );
    let mut parts = peer_request();
    for (name, value) in &mut parts.headers {
        *name = name.to_ascii_uppercase();
        if name == "X-REQUEST-ID" {
            *value = "changed".to_string();
        }
    }
    verify_request(
        &parts,
        Some(&signed.signature_input),
        Some(&signed.signature),
        lookup,
    )
    .expect("verifies");
}

/// One tampering: a change to the request or to the signature fields, and the error it
/// must give.
struct Tamper {
    name: &'static str,
    change: fn(&mut RequestParts, &mut String, &mut String),
    expected: SignatureError,
}

fn set_header(parts: &mut RequestParts, name: &str, value: &str) {
    for (n, v) in &mut parts.headers {
        if n.eq_ignore_ascii_case(name) {
            *v = value.to_string();
        }
    }
}

fn flip_signature_byte(signature: &mut String) {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let b64 = signature
        .strip_prefix("sig1=:")
        .and_then(|s| s.strip_suffix(':'))
        .expect("our format");
    let mut bytes = engine.decode(b64).expect("base64");
    bytes[10] ^= 0x01;
    *signature = format!("sig1=:{}:", engine.encode(bytes));
}

fn tampering_table() -> Vec<Tamper> {
    let bad = SignatureError::BadSignature;
    vec![
        Tamper {
            name: "method",
            change: |p, _, _| p.method = "PUT".to_string(),
            expected: bad.clone(),
        },
        Tamper {
            name: "target uri path",
            change: |p, _, _| {
                p.target_uri =
                    "https://peer.example:8443/api/actions/cancel?dry_run=false".to_string();
                p.path = "/api/actions/cancel".to_string();
            },
            expected: bad.clone(),
        },
        Tamper {
            name: "query",
            change: |p, _, _| {
                p.target_uri =
                    "https://peer.example:8443/api/actions/perform?dry_run=true".to_string();
                p.query = Some("dry_run=true".to_string());
            },
            expected: bad.clone(),
        },
        Tamper {
            name: "authority",
            change: |p, _, _| p.authority = "other.example:8443".to_string(),
            expected: bad.clone(),
        },
        Tamper {
            name: "content-type",
            change: |p, _, _| set_header(p, "content-type", "text/plain"),
            expected: bad.clone(),
        },
        Tamper {
            name: "content-digest",
            change: |p, _, _| set_header(p, "content-digest", &content_digest(b"{}")),
            expected: bad.clone(),
        },
        Tamper {
            name: "content-digest removed",
            change: |p, _, _| p.headers.retain(|(n, _)| n != "Content-Digest"),
            expected: SignatureError::MissingComponent("content-digest".to_string()),
        },
        Tamper {
            name: "second content-type added",
            change: |p, _, _| p.headers.push(header("content-type", "text/plain")),
            expected: bad.clone(),
        },
        Tamper {
            name: "created",
            change: |_, i, _| *i = i.replace(&format!("created={NOW}"), "created=1750000001"),
            expected: bad.clone(),
        },
        Tamper {
            name: "expires",
            change: |_, i, _| *i = i.replace("expires=", "expires=9"),
            expected: bad.clone(),
        },
        Tamper {
            name: "nonce",
            change: |_, i, _| *i = i.replace("n-6f1c2a", "n-6f1c2b"),
            expected: bad.clone(),
        },
        Tamper {
            name: "parameter order",
            change: |_, i, _| {
                *i = i.replace(
                    ";alg=\"ed25519\";nonce=\"n-6f1c2a\"",
                    ";nonce=\"n-6f1c2a\";alg=\"ed25519\"",
                )
            },
            expected: bad.clone(),
        },
        Tamper {
            name: "covered component dropped",
            change: |_, i, _| *i = i.replace(" \"content-digest\"", ""),
            expected: bad.clone(),
        },
        Tamper {
            name: "signature bytes",
            change: |_, _, s| flip_signature_byte(s),
            expected: bad.clone(),
        },
        Tamper {
            name: "keyid swapped to another trusted key",
            change: |_, i, _| *i = i.replace(&alice().suggested_kid(), &bob().suggested_kid()),
            expected: bad.clone(),
        },
        Tamper {
            name: "keyid swapped to an unknown key",
            change: |_, i, _| *i = i.replace(&alice().suggested_kid(), "ed25519-unknown"),
            expected: SignatureError::UnknownKey,
        },
        Tamper {
            name: "alg",
            change: |_, i, _| *i = i.replace("alg=\"ed25519\"", "alg=\"rsa-pss-sha512\""),
            expected: SignatureError::UnsupportedAlg,
        },
        Tamper {
            name: "signature input removed",
            change: |_, i, _| i.clear(),
            expected: SignatureError::Missing,
        },
        Tamper {
            name: "signature removed",
            change: |_, _, s| s.clear(),
            expected: SignatureError::Missing,
        },
    ]
}

#[test]
fn tampering_is_detected() {
    let signed = signed_by_alice();
    for tamper in tampering_table() {
        let mut parts = peer_request();
        let mut input = signed.signature_input.clone();
        let mut signature = signed.signature.clone();
        (tamper.change)(&mut parts, &mut input, &mut signature);
        let result = verify_request(&parts, Some(&input), Some(&signature), lookup);
        assert_eq!(result, Err(tamper.expected.clone()), "{}", tamper.name);
    }
}

#[test]
fn malformed_and_missing_fields() {
    let signed = signed_by_alice();
    let parts = peer_request();
    let run = |input: Option<&str>, signature: Option<&str>| {
        verify_request(&parts, input, signature, lookup)
    };
    assert_eq!(
        run(None, Some(&signed.signature)),
        Err(SignatureError::Missing)
    );
    assert_eq!(
        run(Some(&signed.signature_input), None),
        Err(SignatureError::Missing)
    );

    let malformed =
        |r: Result<Verified, SignatureError>| matches!(r, Err(SignatureError::Malformed(_)));
    // Labels that do not match.
    let other_label = signed.signature.replacen("sig1=", "sig2=", 1);
    assert!(malformed(run(
        Some(&signed.signature_input),
        Some(&other_label)
    )));
    // A short signature.
    assert!(malformed(run(
        Some(&signed.signature_input),
        Some("sig1=:AQID:")
    )));
    // No keyid.
    let no_keyid = signed
        .signature_input
        .replace(&format!(";keyid=\"{}\"", alice().suggested_kid()), "");
    assert!(malformed(run(Some(&no_keyid), Some(&signed.signature))));
    // Garbage.
    assert!(malformed(run(
        Some("sig1=(\"@method\""),
        Some(&signed.signature)
    )));
    assert!(malformed(run(
        Some(&signed.signature_input),
        Some("sig1=:%%%:")
    )));
}

#[test]
fn several_signatures_pick_by_label() {
    let signed = signed_by_alice();
    let input = format!(
        "proxy=(\"@method\");keyid=\"proxy\", {}",
        signed.signature_input
    );
    let zeros = "A".repeat(86);
    let signature = format!("proxy=:{zeros}==:, {}", signed.signature);
    let parts = peer_request();
    // The first label is the proxy's, whose key is unknown here.
    assert_eq!(
        verify_request(&parts, Some(&input), Some(&signature), lookup),
        Err(SignatureError::UnknownKey)
    );
    let verified =
        verify_request_with_label(&parts, Some(&input), Some(&signature), Some("sig1"), lookup)
            .expect("ours verifies");
    assert_eq!(verified.label, "sig1");
}

#[test]
fn signing_refuses_what_it_cannot_express() {
    let parts = peer_request();
    let key = alice();
    assert_eq!(
        sign_request(
            &parts,
            &["@method"],
            &SignatureParams::new().with_alg("hmac-sha256"),
            &key
        ),
        Err(SignatureError::UnsupportedAlg)
    );
    assert_eq!(
        sign_request(&parts, &["x-missing"], &SignatureParams::new(), &key),
        Err(SignatureError::MissingComponent("x-missing".to_string()))
    );
    for covered in [
        &["@scheme"][..],
        &["@method", "@method"],
        &["@signature-params"],
    ] {
        assert!(
            matches!(
                sign_request(&parts, covered, &SignatureParams::new(), &key),
                Err(SignatureError::Malformed(_))
            ),
            "{covered:?}"
        );
    }
    assert!(matches!(
        sign_request_with_label(&parts, &["@method"], &SignatureParams::new(), &key, "Bad"),
        Err(SignatureError::Malformed(_))
    ));
}

#[test]
fn reasons_are_stable_and_distinct() {
    let all = [
        SignatureError::Missing,
        SignatureError::Malformed(String::new()),
        SignatureError::UnknownKey,
        SignatureError::BadSignature,
        SignatureError::UnsupportedAlg,
        SignatureError::MissingComponent(String::new()),
    ];
    let reasons: Vec<&str> = all.iter().map(SignatureError::reason).collect();
    assert_eq!(
        reasons,
        [
            "missing",
            "malformed",
            "unknown_key",
            "bad_signature",
            "unsupported_alg",
            "missing_component"
        ]
    );
    let core: CoreError = SignatureError::BadSignature.into();
    assert_eq!(core.code(), crate::error::ErrorCode::Unauthorized);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn verify_never_panics_on_arbitrary_fields(input in ".{0,200}", signature in ".{0,200}") {
            let _ = verify_request(&peer_request(), Some(&input), Some(&signature), lookup);
        }

        #[test]
        fn any_signed_params_verify(
            created in 0i64..=4_000_000_000,
            window in 1i64..=3600,
            nonce in "[ -~]{0,32}",
        ) {
            let key = alice();
            let params = SignatureParams::new()
                .with_created(created)
                .with_expires(created + window)
                .with_keyid(key.suggested_kid())
                .with_alg("ed25519")
                .with_nonce(nonce.clone());
            let signed = sign_request(&peer_request(), STANDARD_COVERED, &params, &key)
                .expect("signs");
            let verified = verify_request(
                &peer_request(),
                Some(&signed.signature_input),
                Some(&signed.signature),
                lookup,
            )
            .expect("verifies");
            prop_assert_eq!(verified.created, Some(created));
            prop_assert_eq!(verified.nonce, Some(nonce));
        }
    }
}
