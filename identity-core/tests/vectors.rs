//! Published test vectors: RFC 7515 appendix A, RFC 8037 appendix A, RFC 7638.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use handoff_core::jws::{self, DecodeOptions, SignHeader};
use handoff_core::keys::{jwk_thumbprint, parse_jwk};
use handoff_core::{Algorithm, Error, SigningKey, VerifyingKey};
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("data/rfc-jose.json")).unwrap()
}

fn jws_case(name: &str) -> Value {
    vectors()["jws"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap()
}

fn private_key(case: &Value) -> SigningKey {
    let jwk = parse_jwk(case["key"].to_string().as_bytes()).unwrap();
    SigningKey::from_jwk(&jwk).unwrap()
}

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

#[test]
fn rfc7515_a1_hs256_verifies_and_signs_identically() {
    let case = jws_case("rfc7515-a1-hs256");
    let key = private_key(&case);
    assert_eq!(key.algorithm(), Algorithm::HS256);
    let token = case["compact"].as_str().unwrap();
    let c = jws::decode(token, &DecodeOptions::default()).unwrap();
    c.verify(&key.verifying_key()).unwrap();
    assert_eq!(
        c.payload(),
        case["payload_json"].as_str().unwrap().as_bytes()
    );
    // HMAC is deterministic: recompute the published signature over the published input.
    let sig = key.sign(c.signing_input().as_bytes(), &mut rng()).unwrap();
    assert_eq!(sig, c.signature());
}

#[test]
fn rfc7515_a2_rs256_verifies_and_signs_identically() {
    let case = jws_case("rfc7515-a2-rs256");
    let key = private_key(&case);
    assert_eq!(key.algorithm(), Algorithm::RS256);
    let token = case["compact"].as_str().unwrap();
    let c = jws::decode(token, &DecodeOptions::default()).unwrap();
    c.verify(&key.verifying_key()).unwrap();
    let sig = key.sign(c.signing_input().as_bytes(), &mut rng()).unwrap();
    assert_eq!(sig, c.signature(), "PKCS#1 v1.5 is deterministic");
}

#[test]
fn rfc7515_a3_es256_verifies() {
    let case = jws_case("rfc7515-a3-es256");
    let key = private_key(&case);
    let token = case["compact"].as_str().unwrap();
    let c = jws::decode(token, &DecodeOptions::default()).unwrap();
    c.verify(&key.verifying_key()).unwrap();
    // and the public projection alone verifies too
    let public = VerifyingKey::from_jwk(&key.verifying_key().to_public_jwk().unwrap()).unwrap();
    c.verify(&public).unwrap();
}

#[test]
fn rfc7515_a5_unsecured_is_refused() {
    let case = jws_case("rfc7515-a5-unsecured");
    let token = case["compact"].as_str().unwrap();
    let err = jws::decode(token, &DecodeOptions::default()).unwrap_err();
    assert!(
        matches!(err, Error::Malformed(_) | Error::UnsupportedAlgorithm(_)),
        "{err:?}"
    );
    // even with a signature segment appended, "none" is not an algorithm
    let forged = format!("{token}AAAA");
    assert_eq!(
        jws::decode(&forged, &DecodeOptions::default()).unwrap_err(),
        Error::UnsupportedAlgorithm("none".into())
    );
}

#[test]
fn rfc8037_a4_ed25519_signs_to_published_bytes() {
    let case = jws_case("rfc8037-a4-ed25519");
    let key = private_key(&case);
    assert_eq!(key.algorithm(), Algorithm::EdDSA);
    let token = jws::sign(
        &key,
        &SignHeader::default(),
        case["payload_text"].as_str().unwrap().as_bytes(),
        &mut rng(),
    )
    .unwrap();
    assert_eq!(token, case["compact"].as_str().unwrap());
    let c = jws::decode(&token, &DecodeOptions::default()).unwrap();
    c.verify(&key.verifying_key()).unwrap();
}

#[test]
fn thumbprints_match_published_values() {
    for case in vectors()["thumbprints"].as_array().unwrap() {
        let mut jwk_json = case["jwk"].clone();
        // RFC 7517 A.1's EC key is an encryption key; the thumbprint ignores "use".
        jwk_json.as_object_mut().unwrap().remove("use");
        let jwk = parse_jwk(jwk_json.to_string().as_bytes()).unwrap();
        let t = jwk_thumbprint(&jwk).unwrap_or_else(|e| panic!("{}: {e}", case["name"]));
        assert_eq!(
            t.to_base64url(),
            case["sha256"].as_str().unwrap(),
            "{}",
            case["name"]
        );
    }
}
