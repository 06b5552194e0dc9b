//! Key sets: per-key skipping on parse (RFC 7517 section 5), lookup by `kid` and
//! algorithm, kidless tokens, publication of public members only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use handoff_core::jwks::{JwksLimits, KidlessTokens};
use handoff_core::{Algorithm, Error, Jwks, KeySource, SigningKey, b64, verify};
use serde_json::{Value, json};

fn public(k: &SigningKey) -> Value {
    serde_json::to_value(k.verifying_key().to_public_jwk().unwrap()).unwrap()
}

#[test]
fn parse_skips_bad_keys_one_by_one_and_reports_them() {
    let ed = key(Algorithm::EdDSA).with_kid("ed").unwrap();
    let es = key(Algorithm::ES256).with_kid("es").unwrap();
    let es_private = serde_json::to_value(es.to_private_jwk()).unwrap();
    let mut p384 = public(&es);
    p384["crv"] = json!("P-384");
    p384["kid"] = json!("p384");
    let mut enc = public(&ed);
    enc["use"] = json!("enc");
    enc["kid"] = json!("enc");
    let mut bad_x = public(&ed);
    bad_x["x"] = json!("not base64!");
    bad_x["kid"] = json!("bad-x");
    let mut long_kid = public(&ed);
    long_kid["kid"] = json!("k".repeat(300));
    let mut rsa_p_only = serde_json::to_value(
        key(Algorithm::RS256)
            .verifying_key()
            .to_public_jwk()
            .unwrap(),
    )
    .unwrap();
    rsa_p_only["p"] = json!(b64::encode(&[0xAB; 128]));
    rsa_p_only["kid"] = json!("rsa-p");
    let doc = json!({"keys": [
        public(&ed),                                            // 0 ok
        es_private,                                             // 1 private member d
        {"kty": "oct", "k": b64::encode(&[1u8; 32]), "kid": "hmac"}, // 2 symmetric
        {"kty": "XYZ", "kid": "unknown"},                       // 3 unknown kty
        p384,                                                   // 4 unknown curve
        enc,                                                    // 5 use enc
        bad_x,                                                  // 6 malformed
        long_kid,                                               // 7 kid too long
        "not an object",                                        // 8
        rsa_p_only,                                             // 9 private prime without d
        public(&es),                                            // 10 ok
    ], "extra": "ignored"});
    let parsed = Jwks::parse(doc.to_string().as_bytes(), &JwksLimits::default()).unwrap();
    assert_eq!(parsed.jwks.len(), 2);
    let skipped: Vec<usize> = parsed.skipped.iter().map(|s| s.index).collect();
    assert_eq!(skipped, vec![1, 2, 3, 4, 5, 6, 7, 8, 9]);
    let reason = |i: usize| &parsed.skipped.iter().find(|s| s.index == i).unwrap().reason;
    assert!(reason(1).contains("private member \"d\""), "{}", reason(1));
    assert!(reason(2).contains("private member \"k\""), "{}", reason(2));
    assert!(reason(9).contains("private member \"p\""), "{}", reason(9));
    assert!(reason(5).contains("use"), "{}", reason(5));
    assert!(reason(7).contains("kid"), "{}", reason(7));
    assert_eq!(parsed.skipped[0].kid.as_deref(), Some("es"));
    // the good keys are usable
    for k in [&ed, &es] {
        let token = sign_json(k, Some(TYP), &claims());
        verify::<Value, _>(&token, &parsed.jwks, &policy(), now()).unwrap();
    }
}

#[test]
fn document_level_problems_fail_the_whole_set() {
    let lim = JwksLimits::default();
    for doc in [
        &b"[]"[..],
        b"{}",
        br#"{"keys":{}}"#,
        b"{\"keys\":[]} x",
        b"not json",
    ] {
        assert!(
            matches!(
                Jwks::parse(doc, &lim),
                Err(Error::Json { part: "jwks", .. })
            ),
            "{}",
            String::from_utf8_lossy(doc)
        );
    }
    assert!(matches!(
        Jwks::parse(br#"{"keys":[],"keys":[]}"#, &lim),
        Err(Error::DuplicateMember { part: "jwks", .. })
    ));
    // a key with two x members means different keys to different parsers
    let k = key(Algorithm::EdDSA);
    let x = public(&k)["x"].clone();
    let doc = format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":{x},"x":{x}}}]}}"#);
    assert!(matches!(
        Jwks::parse(doc.as_bytes(), &lim),
        Err(Error::DuplicateMember { .. })
    ));
    let small = JwksLimits {
        max_bytes: 100,
        max_keys: 1,
    };
    let big = format!(r#"{{"keys":[],"pad":"{}"}}"#, "x".repeat(200));
    assert!(matches!(
        Jwks::parse(big.as_bytes(), &small),
        Err(Error::TokenTooLarge { max: 100, .. })
    ));
    assert!(matches!(
        Jwks::parse(br#"{"keys":[{},{}]}"#, &small),
        Err(Error::Policy(_))
    ));
}

#[test]
fn lookup_requires_kid_and_algorithm_to_match() {
    let rs = key(Algorithm::RS256).with_kid("shared").unwrap();
    let ed = key(Algorithm::EdDSA).with_kid("ed").unwrap();
    let set = Jwks::from_keys([rs.verifying_key(), ed.verifying_key()]).unwrap();
    assert_eq!(
        set.select(Some("shared"), Algorithm::RS256).unwrap(),
        &rs.verifying_key()
    );
    // same kid, other algorithm: the key is made for RS256 only, and the refusal says so
    for alg in [Algorithm::PS256, Algorithm::HS256, Algorithm::EdDSA] {
        assert_eq!(
            set.select(Some("shared"), alg).unwrap_err(),
            Error::AlgorithmMismatch {
                header: alg,
                key: Algorithm::RS256
            }
        );
    }
    assert!(matches!(
        set.select(Some("nope"), Algorithm::EdDSA),
        Err(Error::KeyNotFound { kid: Some(k), .. }) if k == "nope"
    ));
    // kids are exact: no case folding, no prefix match
    assert!(set.select(Some("ED"), Algorithm::EdDSA).is_err());
    assert!(set.select(Some("e"), Algorithm::EdDSA).is_err());
    // a key without kid is never found by a token that names one
    let anon = Jwks::from_keys([key(Algorithm::EdDSA).verifying_key()]).unwrap();
    assert!(anon.select(Some("ed"), Algorithm::EdDSA).is_err());
}

#[test]
fn duplicate_kid_for_one_algorithm_is_ambiguous() {
    let a = key(Algorithm::EdDSA).with_kid("dup").unwrap();
    let b = key(Algorithm::EdDSA).with_kid("dup").unwrap();
    let set = Jwks::from_keys([a.verifying_key(), b.verifying_key()]).unwrap();
    assert!(matches!(
        set.select(Some("dup"), Algorithm::EdDSA),
        Err(Error::AmbiguousKey(_))
    ));
    let token = sign_json(&a, Some(TYP), &claims());
    assert!(matches!(
        verify::<Value, _>(&token, &set, &policy(), now()),
        Err(Error::AmbiguousKey(_))
    ));
}

#[test]
fn kidless_tokens_are_refused_against_several_keys_unless_opted_in() {
    let ed = key(Algorithm::EdDSA);
    let es = key(Algorithm::ES256);
    let token = sign_json(&ed, Some(TYP), &claims());
    assert!(jws_kid(&token).is_none());

    // one key: no ambiguity
    let single = Jwks::from_keys([ed.verifying_key()]).unwrap();
    verify::<Value, _>(&token, &single, &policy(), now()).unwrap();
    let never = single.clone().with_kidless_tokens(KidlessTokens::Refuse);
    assert!(matches!(
        verify::<Value, _>(&token, &never, &policy(), now()),
        Err(Error::AmbiguousKey(_))
    ));

    // two keys, even of different algorithms: refused by default
    let two = Jwks::from_keys([ed.verifying_key(), es.verifying_key()]).unwrap();
    assert_eq!(two.kidless_tokens(), KidlessTokens::RefuseIfAmbiguous);
    assert!(matches!(
        verify::<Value, _>(&token, &two, &policy(), now()),
        Err(Error::AmbiguousKey(_))
    ));
    // opted in: the one EdDSA key is used
    let opted = two
        .clone()
        .with_kidless_tokens(KidlessTokens::AcceptIfUniqueForAlgorithm);
    verify::<Value, _>(&token, &opted, &policy(), now()).unwrap();
    // opted in, but two keys of the token's algorithm: still ambiguous
    let other_ed = key(Algorithm::EdDSA);
    let crowded = Jwks::from_keys([ed.verifying_key(), other_ed.verifying_key()])
        .unwrap()
        .with_kidless_tokens(KidlessTokens::AcceptIfUniqueForAlgorithm);
    assert!(matches!(
        verify::<Value, _>(&token, &crowded, &policy(), now()),
        Err(Error::AmbiguousKey(_))
    ));
}

fn jws_kid(token: &str) -> Option<String> {
    handoff_core::jws::decode(token, &Default::default())
        .unwrap()
        .header()
        .kid()
        .map(str::to_owned)
}

#[test]
fn symmetric_keys_never_enter_a_set_and_publication_is_public_only() {
    let hs = key(Algorithm::HS256);
    assert!(Jwks::from_keys([hs.verifying_key()]).is_err());
    let keys: Vec<SigningKey> = [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256]
        .into_iter()
        .map(|a| key(a).with_kid(a.as_str()).unwrap())
        .collect();
    let set = Jwks::from_keys(keys.iter().map(SigningKey::verifying_key)).unwrap();
    let doc: Value = serde_json::from_str(&set.to_json()).unwrap();
    for k in doc["keys"].as_array().unwrap() {
        for m in handoff_core::jws::PRIVATE_JWK_MEMBERS {
            assert!(k.get(m).is_none(), "published {m}");
        }
        assert_eq!(k["use"], "sig");
        assert!(k["alg"].is_string() && k["kid"].is_string());
    }
    let parsed = Jwks::parse(set.to_json().as_bytes(), &JwksLimits::default()).unwrap();
    assert!(parsed.skipped.is_empty());
    assert_eq!(parsed.jwks.keys(), set.keys());
}
