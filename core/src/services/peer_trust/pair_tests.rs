//! Reads signed with pair keys: who can make them, who can check them, and when the signer
//! uses one.

use super::tests::{
    ME, NOW, PATH, a_signer, catalog, code, flip_first_byte, key, listed, service, signed_by,
    signed_with, verified_as_a1,
};
use super::*;

const A: &str = "https://a.example.org";

fn pair_keys(seed: u8) -> Arc<PairKeys> {
    Arc::new(PairKeys::new(&key(seed)))
}

/// Instance A's signer with pair reads over `handle`.
fn a_pair_signer(handle: &Arc<CatalogHandle>) -> PeerSigner {
    a_signer().with_pair_reads(handle.clone())
}

/// Instance B (this side of the tests), holding its key when `seed` is 2.
fn b_with_key(handle: Arc<CatalogHandle>, seed: u8) -> PeerTrustService {
    service(handle).with_pair_keys(pair_keys(seed))
}

fn a_pair_read(handle: &Arc<CatalogHandle>, nonce: &str) -> super::tests::Sent {
    let signer = a_pair_signer(handle);
    let pair_key = signer.pair_key_for(ME, NOW).expect("B publishes one key");
    signed_with(&signer, Some(&pair_key), &format!("{ME}{PATH}"), NOW, nonce)
}

#[tokio::test]
async fn a_pair_key_read_verifies_and_names_its_sender() {
    let handle = catalog("required", vec![listed("a-1", 1)]);
    let trust = b_with_key(handle.clone(), 2);
    let sent = a_pair_read(&handle, "p1");
    assert!(
        sent.input
            .as_deref()
            .is_some_and(|i| i.contains("alg=\"hmac-sha256\"") && i.contains("keyid=\"a-1\"")),
        "{:?}",
        sent.input
    );
    let caller = verified_as_a1(&trust, &sent, SignatureAlg::HmacSha256).await;
    assert!(trust.authorize(&caller, "yellow_dot").is_ok());
    // The same instance's Ed25519 reads still verify, as Ed25519.
    let ed25519 = signed_by(&a_signer(), &format!("{ME}{PATH}"), NOW, "p2");
    assert!(matches!(
        trust.authenticate(&ed25519.received(), false).await,
        Ok(PeerCaller::Signed {
            alg: SignatureAlg::Ed25519,
            ..
        })
    ));
}

#[tokio::test]
async fn pair_keys_never_sign_writes() {
    let handle = catalog("required", vec![listed("a-1", 1)]);
    let trust = b_with_key(handle.clone(), 2);
    let sent = a_pair_read(&handle, "p3");
    assert_eq!(
        code(trust.authenticate(&sent.received(), true).await),
        ErrorCode::SignatureInvalid
    );
}

#[tokio::test]
async fn only_the_pair_can_make_a_pair_key_signature() {
    let handle = catalog("required", vec![listed("a-1", 1)]);
    let sent = a_pair_read(&handle, "p4");

    // B without a key of its own cannot check it, and says so.
    let keyless = service(handle.clone());
    assert_eq!(
        code(keyless.authenticate(&sent.received(), false).await),
        ErrorCode::SignatureInvalid
    );
    // B holding another key than the one it publishes derives another pair key.
    let wrong_key = b_with_key(handle.clone(), 9);
    assert_eq!(
        code(wrong_key.authenticate(&sent.received(), false).await),
        ErrorCode::SignatureInvalid
    );

    // C knows every public key; its own pair key with B does not pass for A's.
    let trust = b_with_key(handle.clone(), 2);
    let c_pair = pair_keys(3)
        .sending_to(&key(2).verifying_key())
        .expect("C-B key");
    let forged = signed_with(
        &a_signer(),
        Some(&c_pair),
        &format!("{ME}{PATH}"),
        NOW,
        "p5",
    );
    assert_eq!(
        code(trust.authenticate(&forged.received(), false).await),
        ErrorCode::SignatureInvalid
    );
    // Nor does the key of the other direction (B to A), e.g. a request reflected back.
    let b_to_a = pair_keys(2)
        .sending_to(&key(1).verifying_key())
        .expect("B-A key");
    let reflected = signed_with(
        &a_signer(),
        Some(&b_to_a),
        &format!("{ME}{PATH}"),
        NOW,
        "p6",
    );
    assert_eq!(
        code(trust.authenticate(&reflected.received(), false).await),
        ErrorCode::SignatureInvalid
    );

    // Tampering is caught as with Ed25519.
    let mut body = a_pair_read(&handle, "p7");
    body.body.push(b' ');
    assert_eq!(
        code(trust.authenticate(&body.received(), false).await),
        ErrorCode::DigestMismatch
    );
    let mut bytes = a_pair_read(&handle, "p8");
    bytes.signature = bytes.signature.as_deref().map(flip_first_byte);
    assert_eq!(
        code(trust.authenticate(&bytes.received(), false).await),
        ErrorCode::SignatureInvalid
    );
    let mut path = a_pair_read(&handle, "p9");
    path.path = "/api/v1/network/item/count_local".into();
    assert_eq!(
        code(trust.authenticate(&path.received(), false).await),
        ErrorCode::SignatureInvalid
    );
}

#[tokio::test]
async fn a_pair_key_signature_of_an_unknown_kid_is_an_unknown_key() {
    let handle = catalog("required", vec![listed("a-1", 1)]);
    let trust = b_with_key(handle.clone(), 2);
    let stranger = PeerSigner::new(key(9), "nobody");
    let mac = pair_keys(9)
        .sending_to(&key(2).verifying_key())
        .expect("key");
    let sent = signed_with(&stranger, Some(&mac), &format!("{ME}{PATH}"), NOW, "p10");
    assert_eq!(
        code(trust.authenticate(&sent.received(), false).await),
        ErrorCode::UnknownSigningKey
    );
}

#[test]
fn the_signer_uses_a_pair_key_only_where_it_can_work() {
    let handle = catalog("required", vec![listed("a-1", 1)]);
    // Without pair reads: never.
    assert!(a_signer().pair_key_for(ME, NOW).is_none());

    let signer = a_pair_signer(&handle);
    let expected = pair_keys(1).sending_to(&key(2).verifying_key());
    assert_eq!(signer.pair_key_for(ME, NOW), expected);
    assert_eq!(
        signer.pair_key_for("HTTPS://B.example.org/", NOW),
        expected,
        "the peer URL is normalized"
    );
    // An instance of another network with one key, and one that is not listed at all.
    assert!(signer.pair_key_for("https://c.example.org", NOW).is_some());
    assert!(signer.pair_key_for("https://z.example.org", NOW).is_none());

    // A refusal switches the peer to Ed25519 for an hour, then the pair key is tried again.
    signer.pair_key_refused(ME, NOW);
    assert!(signer.pair_key_for(ME, NOW + 3599).is_none());
    assert_eq!(signer.pair_key_for(ME, NOW + 3600), expected);
}

#[test]
fn a_peer_listing_two_keys_gets_ed25519_reads() {
    // A rotates: it lists two keys, and B cannot know which one A holds.
    let handle = catalog("required", vec![listed("a-1", 1), listed("a-2", 4)]);
    let b_signer = PeerSigner::new(key(2), "b-1").with_pair_reads(handle.clone());
    assert!(b_signer.pair_key_for(A, NOW).is_none());
}

#[test]
fn pair_keys_are_derived_once_per_peer_key() {
    let keys = pair_keys(1);
    let first = keys.sending_to(&key(2).verifying_key());
    assert_eq!(keys.sending.read().expect("lock").len(), 1);
    assert_eq!(keys.sending_to(&key(2).verifying_key()), first);
    assert_eq!(keys.sending.read().expect("lock").len(), 1);
    assert_eq!(keys.public_key(), key(1).verifying_key());
}
