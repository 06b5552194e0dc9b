//! Client side: proof contents, key generation, the nonce memory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use handoff_core::jws::{DecodeOptions, decode};
use handoff_core::{Algorithm, SigningKey, b64};
use handoff_dpop::{DpopKey, Error, NonceMemory, RetryDecision, ath, error_from_www_authenticate};
use serde_json::Value;

fn parts(proof: &str) -> (Value, Value) {
    let mut it = proof.split('.');
    let h = b64::decode(it.next().unwrap()).unwrap();
    let c = b64::decode(it.next().unwrap()).unwrap();
    (
        serde_json::from_slice(&h).unwrap(),
        serde_json::from_slice(&c).unwrap(),
    )
}

#[test]
fn proofs_carry_exactly_the_rfc_members() {
    let key = DpopKey::generate(DpopKey::DEFAULT_ALGORITHM, &mut rng()).unwrap();
    assert_eq!(key.algorithm(), Algorithm::ES256);
    let p = key
        .proof(
            "POST",
            "https://as.example.com/token?x=1#frag",
            t(NOW),
            &mut rng(),
            Some("n-1"),
            Some("at"),
        )
        .unwrap();
    let (h, c) = parts(&p);
    assert_eq!(h["typ"], "dpop+jwt");
    assert_eq!(h["alg"], "ES256");
    let jwk = h["jwk"].as_object().unwrap();
    let mut members: Vec<&str> = jwk.keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(members, ["crv", "kty", "x", "y"]);
    assert_eq!(c["htm"], "POST");
    assert_eq!(c["htu"], "https://as.example.com/token");
    assert_eq!(c["iat"], NOW);
    assert_eq!(c["nonce"], "n-1");
    assert_eq!(c["ath"], ath("at"));
    let jti = b64::decode(c["jti"].as_str().unwrap()).unwrap();
    assert!(jti.len() * 8 >= 96);
    // Without nonce and token, neither claim appears.
    let p = key
        .proof(
            "GET",
            "https://rs.example.com/",
            t(NOW),
            &mut rng(),
            None,
            None,
        )
        .unwrap();
    let (_, c) = parts(&p);
    assert!(c.get("nonce").is_none() && c.get("ath").is_none());
    // The signature verifies with the embedded key (through identity-core's strict decoder).
    let compact = decode(&p, &DecodeOptions::default()).unwrap();
    let vk = handoff_core::VerifyingKey::from_jwk(compact.header().jwk().unwrap()).unwrap();
    compact.verify(&vk).unwrap();
    assert_eq!(vk.thumbprint(), key.thumbprint());
}

#[test]
fn every_proof_has_a_fresh_jti() {
    let key = DpopKey::generate(Algorithm::EdDSA, &mut rng()).unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let p = key
            .proof(
                "GET",
                "https://rs.example.com/",
                t(NOW),
                &mut rng(),
                None,
                None,
            )
            .unwrap();
        let (_, c) = parts(&p);
        assert!(seen.insert(c["jti"].as_str().unwrap().to_owned()));
    }
}

#[test]
fn key_generation_covers_the_algorithms_and_refuses_hmac() {
    for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
        let key = DpopKey::generate(alg, &mut rng()).unwrap();
        assert_eq!(key.algorithm(), alg);
        let p = key
            .proof(
                "GET",
                "https://rs.example.com/",
                t(NOW),
                &mut rng(),
                None,
                None,
            )
            .unwrap();
        assert_eq!(parts(&p).0["alg"], alg.as_str());
        assert!(format!("{key:?}").contains("thumbprint"));
    }
    assert!(matches!(
        DpopKey::generate(Algorithm::HS256, &mut rng()),
        Err(Error::Config(_))
    ));
    let hs = SigningKey::hs256(vec![1u8; 32]).unwrap();
    assert!(matches!(
        DpopKey::from_signing_key(hs),
        Err(Error::Config(_))
    ));
}

#[test]
fn bad_inputs_to_proof_are_refused() {
    let key = DpopKey::generate(Algorithm::ES256, &mut rng()).unwrap();
    let mut r = rng();
    assert!(matches!(
        key.proof("GET", "/relative", t(NOW), &mut r, None, None),
        Err(Error::InvalidRequestUri(_))
    ));
    assert!(matches!(
        key.proof("", "https://x.example/", t(NOW), &mut r, None, None),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        key.proof(
            "GET",
            "https://x.example/",
            t(NOW),
            &mut r,
            Some("bad\"nonce"),
            None
        ),
        Err(Error::Config(_))
    ));
}

#[test]
fn nonce_memory_retries_exactly_once_on_use_dpop_nonce() {
    let mut mem = NonceMemory::new(4);
    let uri = "https://as.example.com/token";
    let mut a = mem.begin(uri).unwrap();
    assert_eq!(a.nonce(), None);
    // First answer: use_dpop_nonce with a nonce -> retry with it.
    assert_eq!(
        mem.on_response(&mut a, Some("n1"), Some("use_dpop_nonce")),
        RetryDecision::RetryWithNonce("n1".into())
    );
    assert_eq!(a.nonce(), Some("n1"));
    assert!(a.is_retry());
    // The retry is refused again, even with yet another nonce: no second retry.
    assert_eq!(
        mem.on_response(&mut a, Some("n2"), Some("use_dpop_nonce")),
        RetryDecision::Done
    );
    // But the nonce was learned for the next request.
    assert_eq!(mem.nonce_for(uri), Some("n2"));
    let mut b = mem.begin("HTTPS://AS.example.com:443/other?q").unwrap();
    assert_eq!(b.nonce(), Some("n2"));
    // The same nonce that was just sent comes back: never retry.
    assert_eq!(
        mem.on_response(&mut b, Some("n2"), Some("use_dpop_nonce")),
        RetryDecision::Done
    );
    // use_dpop_nonce without a DPoP-Nonce header: nothing to retry with.
    let mut c = mem.begin("https://rs.example.com/").unwrap();
    assert_eq!(
        mem.on_response(&mut c, None, Some("use_dpop_nonce")),
        RetryDecision::Done
    );
    // Other errors never retry, but still teach the nonce.
    let mut d = mem.begin("https://rs.example.com/").unwrap();
    assert_eq!(
        mem.on_response(&mut d, Some("r1"), Some("invalid_dpop_proof")),
        RetryDecision::Done
    );
    assert_eq!(mem.nonce_for("https://rs.example.com/x"), Some("r1"));
    // Successful responses teach too.
    let mut e = mem.begin("https://rs.example.com/").unwrap();
    assert_eq!(e.nonce(), Some("r1"));
    assert_eq!(
        mem.on_response(&mut e, Some("r2"), None),
        RetryDecision::Done
    );
    assert_eq!(mem.nonce_for("https://rs.example.com/"), Some("r2"));
}

#[test]
fn nonce_memory_is_per_origin_bounded_and_ignores_bad_values() {
    let mut mem = NonceMemory::new(2);
    for (i, origin) in [
        "https://a.example",
        "https://b.example",
        "https://c.example",
    ]
    .iter()
    .enumerate()
    {
        let mut a = mem.begin(origin).unwrap();
        let _ = mem.on_response(&mut a, Some(&format!("n{i}")), None);
    }
    assert_eq!(mem.len(), 2);
    assert_eq!(
        mem.nonce_for("https://a.example/"),
        None,
        "oldest origin evicted"
    );
    assert_eq!(mem.nonce_for("https://c.example/"), Some("n2"));
    assert_eq!(
        mem.nonce_for("https://c.example:8443/"),
        None,
        "the port is part of the origin"
    );
    let mut a = mem.begin("https://c.example").unwrap();
    for bad in ["", "has space", "quote\"", &"x".repeat(513)] {
        assert_eq!(
            mem.on_response(&mut a, Some(bad), Some("use_dpop_nonce")),
            RetryDecision::Done
        );
    }
    assert_eq!(mem.nonce_for("https://c.example/"), Some("n2"));
    assert!(mem.begin("not a uri").is_err());
}

#[test]
fn www_authenticate_error_is_parsed() {
    assert_eq!(
        error_from_www_authenticate(
            r#"DPoP error="use_dpop_nonce", error_description="x, y \"z\"", algs="ES256""#
        ),
        Some("use_dpop_nonce")
    );
    assert_eq!(
        error_from_www_authenticate(r#"dpop algs="ES256", error=invalid_token"#),
        Some("invalid_token")
    );
    assert_eq!(
        error_from_www_authenticate(r#"Bearer error="invalid_token""#),
        None
    );
    assert_eq!(error_from_www_authenticate(r#"DPoP algs="ES256""#), None);
    assert_eq!(
        error_from_www_authenticate(r#"DPoP error="unterminated"#),
        None
    );
    assert_eq!(error_from_www_authenticate(""), None);
}
