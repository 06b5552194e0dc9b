//! One negative test (at least) per check of RFC 9449 section 4.3, plus the positive
//! boundaries that show each check is not over-eager.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use handoff_core::replay::InMemoryReplayLog;
use handoff_core::{Algorithm, HmacSecret, SigningKey};
use handoff_dpop::{
    DpopKey, DpopRequest, DpopVerifier, Endpoint, Error, ErrorCode, NonceIssuer, NoncePolicy, ath,
};
use serde_json::json;

const URI: &str = "https://api.example.com/items";

fn es256() -> SigningKey {
    SigningKey::generate(Algorithm::ES256, &mut rng()).unwrap()
}

fn verify_one(
    token: &str,
    method: &str,
    uri: &str,
    now: u64,
) -> Result<handoff_dpop::DpopProof, Error> {
    let headers = [token];
    let r = DpopRequest::new(&headers, method, uri);
    DpopVerifier::default()
        .verify(&r, t(now))
        .and_then(|u| DpopVerifier::default().confirm(u, &InMemoryReplayLog::new(10), t(now)))
}

fn good(key: &SigningKey) -> String {
    raw_token(
        &header_for(key),
        &claims("jti-0123456789abcdef", "GET", URI, NOW),
        key,
    )
}

#[test]
fn a_good_hand_made_proof_verifies() {
    let key = es256();
    let proof = verify_one(&good(&key), "GET", URI, NOW).unwrap();
    assert_eq!(proof.thumbprint(), key.verifying_key().thumbprint());
    assert_eq!(proof.htu(), URI);
    assert_eq!(proof.jti(), "jti-0123456789abcdef");
}

#[test]
fn missing_and_duplicate_dpop_headers_are_refused() {
    let key = es256();
    let p = good(&key);
    let v = DpopVerifier::default();
    let none: [&str; 0] = [];
    assert_eq!(
        v.verify(&DpopRequest::new(&none, "GET", URI), t(NOW))
            .unwrap_err(),
        Error::MissingProof
    );
    let two = [p.as_str(), p.as_str()];
    assert_eq!(
        v.verify(&DpopRequest::new(&two, "GET", URI), t(NOW))
            .unwrap_err(),
        Error::MultipleProofs(2)
    );
}

#[test]
fn oversize_proof_is_refused_before_parsing() {
    let big = "a".repeat(8 * 1024 + 1);
    assert!(matches!(
        verify_one(&big, "GET", URI, NOW),
        Err(Error::ProofTooLarge {
            len: 8193,
            max: 8192
        })
    ));
}

#[test]
fn typ_must_be_dpop_jwt() {
    let key = es256();
    for typ in [Some("JWT"), Some("DPOP+JWT"), Some("at+jwt"), None] {
        let mut h = header_for(&key);
        match typ {
            Some(t) => h["typ"] = json!(t),
            None => {
                h.as_object_mut().unwrap().remove("typ");
            }
        }
        let tok = raw_token(&h, &claims("jti-0123456789abcdef", "GET", URI, NOW), &key);
        assert_eq!(
            verify_one(&tok, "GET", URI, NOW).unwrap_err(),
            Error::WrongType(typ.map(str::to_owned)),
            "{typ:?}"
        );
    }
}

#[test]
fn alg_none_hs256_and_unlisted_algorithms_are_refused() {
    let key = es256();
    let c = claims("jti-0123456789abcdef", "GET", URI, NOW);
    // alg none: unsigned-looking token with a junk signature segment.
    let mut h = header_for(&key);
    h["alg"] = json!("none");
    let tok = raw_token(&h, &c, &key);
    assert!(matches!(
        verify_one(&tok, "GET", URI, NOW),
        Err(Error::AlgorithmNotAllowed { alg, .. }) if alg == "none"
    ));
    // HS256, keyed with the embedded public key bytes or anything else.
    let hs = SigningKey::hs256(vec![7u8; 32]).unwrap();
    let mut h = header_for(&key);
    h["alg"] = json!("HS256");
    let tok = raw_token(&h, &c, &hs);
    assert!(matches!(
        verify_one(&tok, "GET", URI, NOW),
        Err(Error::AlgorithmNotAllowed { alg, .. }) if alg == "HS256"
    ));
    // Case-sensitive names.
    let mut h = header_for(&key);
    h["alg"] = json!("es256");
    let tok = raw_token(&h, &c, &key);
    assert!(matches!(
        verify_one(&tok, "GET", URI, NOW),
        Err(Error::AlgorithmNotAllowed { .. })
    ));
    // RS256 is in the default list (every asymmetric algorithm) but refused once the
    // builder narrows the list.
    let rsa = SigningKey::generate(Algorithm::RS256, &mut rng()).unwrap();
    let tok = raw_token(&header_for(&rsa), &c, &rsa);
    verify_one(&tok, "GET", URI, NOW).unwrap();
    let narrow = DpopVerifier::builder()
        .algorithms(&[Algorithm::ES256, Algorithm::EdDSA])
        .build()
        .unwrap();
    let headers = [tok.as_str()];
    let err = narrow
        .verify(&DpopRequest::new(&headers, "GET", URI), t(NOW))
        .unwrap_err();
    assert!(
        matches!(&err, Error::AlgorithmNotAllowed { alg, allowed } if alg == "RS256" && allowed == "ES256 EdDSA")
    );
    // ... and accepted by a list naming it alone.
    let v = DpopVerifier::builder()
        .algorithms(&[Algorithm::RS256])
        .build()
        .unwrap();
    let headers = [tok.as_str()];
    v.verify(&DpopRequest::new(&headers, "GET", URI), t(NOW))
        .unwrap()
        .confirm(&InMemoryReplayLog::new(4), t(NOW))
        .unwrap();
}

#[test]
fn a_private_jwk_is_refused() {
    let key = es256();
    let mut h = header_for(&key);
    let private = serde_json::to_value(key.to_private_jwk()).unwrap();
    h["jwk"] = private;
    let tok = raw_token(&h, &claims("jti-0123456789abcdef", "GET", URI, NOW), &key);
    let err = verify_one(&tok, "GET", URI, NOW).unwrap_err();
    assert!(matches!(err, Error::Malformed(_)), "{err:?}");
    assert!(err.to_string().contains("private member"), "{err}");
    // An oct key with k is refused too.
    let mut h = header_for(&key);
    h["jwk"] = json!({"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"});
    let tok = raw_token(&h, &claims("jti-0123456789abcdef", "GET", URI, NOW), &key);
    assert!(matches!(
        verify_one(&tok, "GET", URI, NOW),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn missing_or_inconsistent_jwk_is_refused() {
    let key = es256();
    let c = claims("jti-0123456789abcdef", "GET", URI, NOW);
    let mut h = header_for(&key);
    h.as_object_mut().unwrap().remove("jwk");
    assert_eq!(
        verify_one(&raw_token(&h, &c, &key), "GET", URI, NOW).unwrap_err(),
        Error::MissingJwk
    );
    // An Ed25519 key under alg ES256: key type and alg disagree.
    let ed = SigningKey::generate(Algorithm::EdDSA, &mut rng()).unwrap();
    let mut h = header_for(&key);
    h["jwk"] = public_jwk(&ed);
    assert!(matches!(
        verify_one(&raw_token(&h, &c, &key), "GET", URI, NOW),
        Err(Error::InvalidJwk(_))
    ));
}

#[test]
fn a_signature_by_another_key_than_the_embedded_one_is_refused() {
    let key = es256();
    let other = es256();
    let tok = raw_token(
        &header_for(&key),
        &claims("jti-0123456789abcdef", "GET", URI, NOW),
        &other,
    );
    let err = verify_one(&tok, "GET", URI, NOW).unwrap_err();
    assert_eq!(err, Error::InvalidSignature);
    assert_eq!(err.to_string(), "invalid signature");
    // A tampered payload, too.
    let good = good(&key);
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged = handoff_core::b64::encode(
        &serde_json::to_vec(&claims("jti-0123456789abcdeX", "GET", URI, NOW)).unwrap(),
    );
    parts[1] = &forged;
    assert_eq!(
        verify_one(&parts.join("."), "GET", URI, NOW).unwrap_err(),
        Error::InvalidSignature
    );
}

#[test]
fn crit_is_refused() {
    let key = es256();
    let mut h = header_for(&key);
    h["crit"] = json!(["exp"]);
    h["exp"] = json!(1);
    let tok = raw_token(&h, &claims("jti-0123456789abcdef", "GET", URI, NOW), &key);
    assert!(matches!(
        verify_one(&tok, "GET", URI, NOW),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn claims_have_strict_types_and_are_required() {
    let key = es256();
    let h = header_for(&key);
    let base = claims("jti-0123456789abcdef", "GET", URI, NOW);
    for (name, missing) in [
        ("jti", "jti"),
        ("htm", "htm"),
        ("htu", "htu"),
        ("iat", "iat"),
    ] {
        let mut c = base.clone();
        c.as_object_mut().unwrap().remove(name);
        assert_eq!(
            verify_one(&raw_token(&h, &c, &key), "GET", URI, NOW).unwrap_err(),
            Error::MissingClaim(missing)
        );
    }
    let mut c = base.clone();
    c["jti"] = json!("");
    assert_eq!(
        verify_one(&raw_token(&h, &c, &key), "GET", URI, NOW).unwrap_err(),
        Error::MissingClaim("jti")
    );
    for (name, bad) in [
        ("iat", json!(NOW.to_string())),
        ("iat", json!(-5)),
        ("jti", json!(12345)),
        ("htm", json!(["GET"])),
        ("htu", json!(null)),
    ] {
        let mut c = base.clone();
        c[name] = bad.clone();
        let err = verify_one(&raw_token(&h, &c, &key), "GET", URI, NOW).unwrap_err();
        assert!(
            matches!(err, Error::InvalidClaims(_) | Error::MissingClaim(_)),
            "{name}={bad}: {err:?}"
        );
    }
    // A string iat is a type error, not a missing claim.
    let mut c = base.clone();
    c["iat"] = json!(NOW.to_string());
    assert!(matches!(
        verify_one(&raw_token(&h, &c, &key), "GET", URI, NOW),
        Err(Error::InvalidClaims(_))
    ));
    // Duplicate members are refused.
    let dup = format!(
        r#"{{"jti":"jti-0123456789abcdef","jti":"other-0123456789abcdef","htm":"GET","htu":"{URI}","iat":{NOW}}}"#
    );
    let tok = raw_token_bytes(&serde_json::to_vec(&h).unwrap(), dup.as_bytes(), &key);
    assert!(matches!(
        verify_one(&tok, "GET", URI, NOW),
        Err(Error::InvalidClaims(_))
    ));
    // A fractional iat is a valid NumericDate.
    let mut c = base.clone();
    c["iat"] = json!(NOW as f64 + 0.5);
    verify_one(&raw_token(&h, &c, &key), "GET", URI, NOW).unwrap();
}

#[test]
fn oversize_jti_is_refused() {
    let key = es256();
    let ok = "j".repeat(256);
    verify_one(
        &raw_token(&header_for(&key), &claims(&ok, "GET", URI, NOW), &key),
        "GET",
        URI,
        NOW,
    )
    .unwrap();
    let long = "j".repeat(257);
    assert_eq!(
        verify_one(
            &raw_token(&header_for(&key), &claims(&long, "GET", URI, NOW), &key),
            "GET",
            URI,
            NOW
        )
        .unwrap_err(),
        Error::JtiTooLong { len: 257, max: 256 }
    );
}

#[test]
fn htm_must_match_case_sensitively() {
    let key = es256();
    let p = good(&key);
    assert!(matches!(
        verify_one(&p, "POST", URI, NOW),
        Err(Error::MethodMismatch { .. })
    ));
    assert!(matches!(
        verify_one(&p, "get", URI, NOW),
        Err(Error::MethodMismatch { .. })
    ));
}

#[test]
fn wrong_host_and_wrong_path_are_refused() {
    let key = es256();
    let p = good(&key);
    for uri in [
        "https://evil.example.com/items",
        "https://api.example.com:8443/items",
        "http://api.example.com/items",
        "https://api.example.com/other",
        "https://api.example.com/items/",
        "https://api.example.com/",
    ] {
        assert!(
            matches!(
                verify_one(&p, "GET", uri, NOW),
                Err(Error::UriMismatch { .. })
            ),
            "{uri}"
        );
    }
    assert!(matches!(
        verify_one(&p, "GET", "/items", NOW),
        Err(Error::InvalidRequestUri(_))
    ));
    let bad_htu = raw_token(
        &header_for(&key),
        &claims("jti-0123456789abcdef", "GET", "api.example.com/items", NOW),
        &key,
    );
    assert!(matches!(
        verify_one(&bad_htu, "GET", URI, NOW),
        Err(Error::InvalidHtu(_))
    ));
}

#[test]
fn htu_is_compared_after_rfc3986_normalisation() {
    let key = es256();
    let htu = "HTTPS://API.Example.COM:443/a/./b/../%7ec%2f?q=1#frag";
    let tok = raw_token(
        &header_for(&key),
        &claims("jti-0123456789abcdef", "GET", htu, NOW),
        &key,
    );
    let proof = verify_one(&tok, "GET", "https://api.example.com/a/~c%2F?other=2", NOW).unwrap();
    assert_eq!(proof.htu(), "https://api.example.com/a/~c%2F");
    // A percent-encoded reserved character is not the character itself.
    assert!(matches!(
        verify_one(&tok, "GET", "https://api.example.com/a/~c/", NOW),
        Err(Error::UriMismatch { .. })
    ));
}

#[test]
fn iat_window_is_enforced_at_its_boundaries() {
    let key = es256();
    let tok = |iat: u64| {
        raw_token(
            &header_for(&key),
            &claims("jti-0123456789abcdef", "GET", URI, iat),
            &key,
        )
    };
    verify_one(&tok(NOW - 60), "GET", URI, NOW).unwrap();
    verify_one(&tok(NOW + 5), "GET", URI, NOW).unwrap();
    assert_eq!(
        verify_one(&tok(NOW - 61), "GET", URI, NOW).unwrap_err(),
        Error::IssuedTooLongAgo {
            iat: NOW - 61,
            now: NOW,
            window: 60
        }
    );
    assert_eq!(
        verify_one(&tok(NOW + 6), "GET", URI, NOW).unwrap_err(),
        Error::IssuedInFuture {
            iat: NOW + 6,
            now: NOW,
            skew: 5
        }
    );
    // A proof from the future is kept in the replay log until iat + window.
    let headers = [tok(NOW + 5)];
    let headers = [headers[0].as_str()];
    let u = DpopVerifier::default()
        .verify(&DpopRequest::new(&headers, "GET", URI), t(NOW))
        .unwrap();
    assert_eq!(u.until(), t(NOW + 65));
}

#[test]
fn ath_is_required_with_a_token_and_must_match() {
    let key = DpopKey::generate(Algorithm::ES256, &mut rng()).unwrap();
    let v = DpopVerifier::default();
    let no_ath = key
        .proof("GET", URI, t(NOW), &mut rng(), None, None)
        .unwrap();
    let h = [no_ath.as_str()];
    assert_eq!(
        v.verify(
            &DpopRequest::new(&h, "GET", URI).with_access_token("tok"),
            t(NOW)
        )
        .unwrap_err(),
        Error::MissingAth
    );
    let other = key
        .proof("GET", URI, t(NOW), &mut rng(), None, Some("other"))
        .unwrap();
    let h = [other.as_str()];
    assert_eq!(
        v.verify(
            &DpopRequest::new(&h, "GET", URI).with_access_token("tok"),
            t(NOW)
        )
        .unwrap_err(),
        Error::AthMismatch
    );
    let right = key
        .proof("GET", URI, t(NOW), &mut rng(), None, Some("tok"))
        .unwrap();
    let h = [right.as_str()];
    v.verify(
        &DpopRequest::new(&h, "GET", URI).with_access_token("tok"),
        t(NOW),
    )
    .unwrap()
    .confirm(&InMemoryReplayLog::new(4), t(NOW))
    .unwrap();
    assert!(handoff_dpop::ath_matches("tok", &ath("tok")));
    assert!(!handoff_dpop::ath_matches("tok", &ath("tok2")));
}

#[test]
fn jkt_mismatch_is_invalid_token() {
    let key = DpopKey::generate(Algorithm::EdDSA, &mut rng()).unwrap();
    let other = DpopKey::generate(Algorithm::EdDSA, &mut rng()).unwrap();
    let v = DpopVerifier::default();
    let p = key
        .proof("GET", URI, t(NOW), &mut rng(), None, Some("tok"))
        .unwrap();
    let h = [p.as_str()];
    let other_jkt = other.jkt();
    let req = DpopRequest::new(&h, "GET", URI)
        .with_access_token("tok")
        .bound_to(&other_jkt);
    let err = v.verify(&req, t(NOW)).unwrap_err();
    assert_eq!(err, Error::JktMismatch);
    assert_eq!(err.code(), ErrorCode::InvalidToken);
    let wire = v.wire_error(&err, Endpoint::Resource);
    assert_eq!(wire.status, 401);
    assert!(
        wire.www_authenticate
            .unwrap()
            .starts_with("DPoP error=\"invalid_token\"")
    );
    // Garbage jkt never matches.
    let req = DpopRequest::new(&h, "GET", URI)
        .with_access_token("tok")
        .bound_to("!!");
    assert_eq!(v.verify(&req, t(NOW)).unwrap_err(), Error::JktMismatch);
    let jkt = key.jkt();
    let req = DpopRequest::new(&h, "GET", URI)
        .with_access_token("tok")
        .bound_to(&jkt);
    let proof = v
        .verify_and_confirm(&req, t(NOW), &InMemoryReplayLog::new(4))
        .unwrap();
    assert!(proof.cnf().matches(&key.thumbprint()));
}

fn nonce_verifier(required: bool, issuer: NonceIssuer) -> DpopVerifier {
    let policy = if required {
        NoncePolicy::Required(issuer)
    } else {
        NoncePolicy::Optional(issuer)
    };
    DpopVerifier::builder().nonce(policy).build().unwrap()
}

#[test]
fn nonce_missing_stale_and_wrong_are_use_dpop_nonce() {
    let issuer = NonceIssuer::new(HmacSecret::generate(&mut rng()), "as.example.com");
    let v = nonce_verifier(true, issuer.clone());
    let key = DpopKey::generate(Algorithm::ES256, &mut rng()).unwrap();
    let check = |nonce: Option<&str>, now: u64| {
        let p = key
            .proof("POST", URI, t(now), &mut rng(), nonce, None)
            .unwrap();
        let h = [p.as_str()];
        v.verify(&DpopRequest::new(&h, "POST", URI), t(now))
    };
    // Missing.
    let err = check(None, NOW).unwrap_err();
    assert!(matches!(err, Error::NonceMissing { .. }));
    assert_eq!(err.code(), ErrorCode::UseDpopNonce);
    let fresh = err.dpop_nonce().unwrap().to_owned();
    let wire = v.wire_error(&err, Endpoint::Token);
    assert_eq!(wire.status, 400);
    assert_eq!(wire.dpop_nonce.as_deref(), Some(fresh.as_str()));
    assert!(wire.json_body.contains("\"error\":\"use_dpop_nonce\""));
    let wire = v.wire_error(&err, Endpoint::Resource);
    assert_eq!(wire.status, 401);
    assert!(
        wire.www_authenticate
            .unwrap()
            .contains("error=\"use_dpop_nonce\"")
    );
    // The nonce handed out works.
    let u = check(Some(&fresh), NOW).unwrap();
    // Kept at least until the nonce's own validity end (3 steps of 60 s).
    assert!(u.until() >= t(NOW + 60));
    // Stale: the same nonce ten minutes later (with a fresh iat).
    let err = check(Some(&fresh), NOW + 600).unwrap_err();
    assert!(matches!(err, Error::NonceStale { .. }), "{err:?}");
    assert_eq!(err.code(), ErrorCode::UseDpopNonce);
    // Wrong: issued under another secret, or not a nonce at all.
    let foreign =
        NonceIssuer::new(HmacSecret::generate(&mut rng()), "as.example.com").issue(t(NOW));
    assert!(matches!(
        check(Some(&foreign), NOW),
        Err(Error::NonceInvalid { .. })
    ));
    assert!(matches!(
        check(Some("made-up"), NOW),
        Err(Error::NonceInvalid { .. })
    ));
    // Another server id under the same secret is wrong too.
    let mut raw = fresh.clone().into_bytes();
    raw[53] = if raw[53] == b'A' { b'Q' } else { b'A' };
    let tampered = String::from_utf8(raw).unwrap();
    assert!(matches!(
        check(Some(&tampered), NOW),
        Err(Error::NonceInvalid { .. })
    ));
}

#[test]
fn optional_nonces_accept_proofs_without_one_and_hand_out_the_next() {
    let issuer = NonceIssuer::new(HmacSecret::generate(&mut rng()), "rs");
    let v = nonce_verifier(false, issuer);
    let key = DpopKey::generate(Algorithm::ES256, &mut rng()).unwrap();
    let p = key
        .proof("GET", URI, t(NOW), &mut rng(), None, None)
        .unwrap();
    let h = [p.as_str()];
    let proof = v
        .verify_and_confirm(
            &DpopRequest::new(&h, "GET", URI),
            t(NOW),
            &InMemoryReplayLog::new(4),
        )
        .unwrap();
    let next = proof.next_nonce().unwrap().to_owned();
    assert_eq!(Some(next.clone()), v.current_nonce(t(NOW)));
    let p = key
        .proof("GET", URI, t(NOW), &mut rng(), Some(&next), None)
        .unwrap();
    let h = [p.as_str()];
    let proof = v
        .verify_and_confirm(
            &DpopRequest::new(&h, "GET", URI),
            t(NOW),
            &InMemoryReplayLog::new(4),
        )
        .unwrap();
    assert_eq!(proof.nonce(), Some(next.as_str()));
    assert_eq!(proof.next_nonce(), None);
}

#[test]
fn replay_is_refused_within_the_window_and_accepted_after_it() {
    let key = es256();
    let v = DpopVerifier::default();
    // One-second buckets, so that expiry is exact (the default 10 s buckets keep entries
    // up to 10 s past `until`, which is allowed: never less, sometimes more).
    let log = InMemoryReplayLog::with_buckets(100, 1, 86_400);
    let at = |iat: u64, now: u64, jti: &str, k: &SigningKey| {
        let tok = raw_token(&header_for(k), &claims(jti, "GET", URI, iat), k);
        let h = [tok.as_str()];
        let u = v.verify(&DpopRequest::new(&h, "GET", URI), t(now)).unwrap();
        v.confirm(u, &log, t(now))
    };
    at(NOW, NOW, "same-jti-0123456789", &key).unwrap();
    // The same jti re-signed 30 s later, inside the first proof's window: refused.
    assert_eq!(
        at(NOW + 30, NOW + 30, "same-jti-0123456789", &key),
        Err(Error::Replayed)
    );
    // Another key's jti does not collide (scoped by thumbprint).
    at(NOW + 30, NOW + 30, "same-jti-0123456789", &es256()).unwrap();
    // Still refused at the last instant of the first window (iat + 60)...
    assert_eq!(
        at(NOW + 60, NOW + 60, "same-jti-0123456789", &key),
        Err(Error::Replayed)
    );
    // ... and accepted once it has passed.
    at(NOW + 61, NOW + 61, "same-jti-0123456789", &key).unwrap();
    // A refused proof (wrong method) never burns its jti.
    let tok = raw_token(
        &header_for(&key),
        &claims("unburnt-0123456789", "GET", URI, NOW),
        &key,
    );
    let h = [tok.as_str()];
    assert!(
        v.verify(&DpopRequest::new(&h, "POST", URI), t(NOW))
            .is_err()
    );
    v.confirm(
        v.verify(&DpopRequest::new(&h, "GET", URI), t(NOW)).unwrap(),
        &log,
        t(NOW),
    )
    .unwrap();
}

#[test]
fn policy_bounds_are_checked() {
    assert!(matches!(
        DpopVerifier::builder()
            .algorithms(&[Algorithm::HS256])
            .build(),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        DpopVerifier::builder()
            .algorithms(&[Algorithm::ES256, Algorithm::HS256])
            .build(),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        DpopVerifier::builder().algorithms(&[]).build(),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        DpopVerifier::builder().iat_window(7200, 5).build(),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        DpopVerifier::builder().max_proof_bytes(10).build(),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        DpopVerifier::builder().max_jti_bytes(0).build(),
        Err(Error::Config(_))
    ));
    let v = DpopVerifier::builder()
        .algorithms(&[Algorithm::PS256, Algorithm::EdDSA])
        .iat_window(300, 30)
        .max_proof_bytes(4096)
        .max_jti_bytes(64)
        .build()
        .unwrap();
    assert_eq!(v.algorithms(), &[Algorithm::PS256, Algorithm::EdDSA]);
    let key = es256();
    let long = raw_token(
        &header_for(&key),
        &claims(&"j".repeat(65), "GET", URI, NOW),
        &key,
    );
    let h = [long.as_str()];
    assert!(matches!(
        v.verify(&DpopRequest::new(&h, "GET", URI), t(NOW)),
        Err(Error::AlgorithmNotAllowed { .. })
    ));
    let ed = SigningKey::generate(Algorithm::EdDSA, &mut rng()).unwrap();
    let long = raw_token(
        &header_for(&ed),
        &claims(&"j".repeat(65), "GET", URI, NOW - 299),
        &ed,
    );
    let h = [long.as_str()];
    assert_eq!(
        v.verify(&DpopRequest::new(&h, "GET", URI), t(NOW))
            .unwrap_err(),
        Error::JtiTooLong { len: 65, max: 64 }
    );
}

#[test]
fn wire_forms_follow_rfc9449() {
    let v = DpopVerifier::default();
    let err = Error::InvalidSignature;
    let w = v.wire_error(&err, Endpoint::Resource);
    assert_eq!(w.code, ErrorCode::InvalidDpopProof);
    assert_eq!(w.status, 401);
    assert_eq!(
        w.www_authenticate.as_deref(),
        Some(
            "DPoP error=\"invalid_dpop_proof\", error_description=\"invalid signature\", algs=\"ES256 EdDSA RS256 PS256\""
        )
    );
    assert_eq!(w.dpop_nonce, None);
    let w = v.wire_error(&err, Endpoint::Token);
    assert_eq!(w.status, 400);
    assert_eq!(w.www_authenticate, None);
    let body: serde_json::Value = serde_json::from_str(&w.json_body).unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof");
    let w = v.wire_error(&Error::ReplayAtCapacity, Endpoint::Resource);
    assert_eq!(w.status, 503);
    // Messages: lower-case start, no trailing period.
    for e in [
        Error::MissingProof,
        Error::MultipleProofs(2),
        Error::MissingJwk,
        Error::MissingAth,
        Error::AthMismatch,
        Error::JktMismatch,
        Error::Replayed,
        Error::WrongType(None),
        Error::NonceMissing { fresh: "n".into() },
    ] {
        let m = e.to_string();
        assert!(m.starts_with(|c: char| c.is_ascii_lowercase()), "{m}");
        assert!(!m.ends_with('.'), "{m}");
    }
}

#[test]
fn ps256_and_eddsa_proofs_verify_when_allowed() {
    let v = DpopVerifier::builder()
        .algorithms(&[Algorithm::PS256, Algorithm::EdDSA, Algorithm::ES256])
        .build()
        .unwrap();
    for alg in [Algorithm::PS256, Algorithm::EdDSA, Algorithm::ES256] {
        let key = DpopKey::generate(alg, &mut rng()).unwrap();
        let p = key
            .proof("DELETE", URI, t(NOW), &mut rng(), None, None)
            .unwrap();
        let h = [p.as_str()];
        let proof = v
            .verify_and_confirm(
                &DpopRequest::new(&h, "DELETE", URI),
                t(NOW),
                &InMemoryReplayLog::new(4),
            )
            .unwrap();
        assert_eq!(proof.algorithm(), alg);
        assert_eq!(proof.jkt(), key.jkt());
    }
}

#[test]
fn fuzz_entry_point_survives_garbage() {
    let key = es256();
    let good = good(&key);
    handoff_dpop::fuzz_verify(good.as_bytes());
    handoff_dpop::fuzz_verify(b"");
    handoff_dpop::fuzz_verify(&[0xff, 0xfe]);
    handoff_dpop::fuzz_verify(b"GET https://x/%");
    handoff_dpop::fuzz_verify(b"a.b.c");
    handoff_dpop::fuzz_verify("eyJ.eyJ.".as_bytes());
}
