//! Sign / verify round trips for every algorithm, and key export / import round trips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use handoff_core::jws::{self, DecodeOptions, SignHeader};
use handoff_core::keys::parse_jwk;
use handoff_core::replay::{InMemoryReplayLog, ReplayRefused};
use handoff_core::{
    Algorithm, Error, Jwks, SigningKey, Validation, VerifyingKey, verify, verify_once,
};
use serde::Deserialize;

#[derive(Debug, Deserialize, PartialEq)]
struct MyClaims {
    sub: String,
    scope: String,
}

#[test]
fn every_algorithm_signs_and_verifies_a_jwt() {
    for alg in Algorithm::ALL {
        let key = key(alg).with_kid(format!("kid-{alg}")).unwrap();
        let token = sign_json(&key, Some(TYP), &claims());
        let c = jws::decode(&token, &DecodeOptions::default()).unwrap();
        assert_eq!(c.header().alg(), alg);
        assert_eq!(c.header().kid(), Some(format!("kid-{alg}").as_str()));
        let v = verify::<MyClaims, _>(&token, &key.verifying_key(), &policy(), now()).unwrap();
        assert_eq!(
            v.custom(),
            &MyClaims {
                sub: "user-1".into(),
                scope: "read".into()
            }
        );
        assert_eq!(v.registered().iss.as_deref(), Some(ISS));
        assert_eq!(v.header().typ(), Some(TYP));
        // A second signature over the same input verifies too (ECDSA, PSS, RSA blinding).
        let again = sign_json(&key, Some(TYP), &claims());
        verify::<MyClaims, _>(&again, &key.verifying_key(), &policy(), now()).unwrap();
    }
}

#[test]
fn asymmetric_keys_verify_through_a_jwks_document() {
    let keys: Vec<SigningKey> = [Algorithm::EdDSA, Algorithm::ES256, Algorithm::PS256]
        .into_iter()
        .map(|a| key(a).with_kid(format!("k-{a}")).unwrap())
        .collect();
    let set = Jwks::from_keys(keys.iter().map(SigningKey::verifying_key)).unwrap();
    let parsed = Jwks::parse(set.to_json().as_bytes(), &Default::default()).unwrap();
    assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
    assert_eq!(parsed.jwks.len(), 3);
    for k in &keys {
        let token = sign_json(k, Some(TYP), &claims());
        verify::<serde_json::Value, _>(&token, &parsed.jwks, &policy(), now()).unwrap();
    }
}

#[test]
fn private_jwk_round_trips_for_every_algorithm() {
    for alg in Algorithm::ALL {
        let key = key(alg).with_kid("k1").unwrap();
        let json = serde_json::to_string(&key.to_private_jwk()).unwrap();
        let back = SigningKey::from_jwk(&parse_jwk(json.as_bytes()).unwrap()).unwrap();
        assert_eq!(back.algorithm(), alg);
        assert_eq!(back.kid(), Some("k1"));
        assert_eq!(back.verifying_key(), key.verifying_key());
        let token = sign_json(&back, None, &claims());
        jws::decode(&token, &DecodeOptions::default())
            .unwrap()
            .verify(&key.verifying_key())
            .unwrap();
    }
}

#[test]
fn public_jwk_round_trips_and_never_carries_private_members() {
    for alg in Algorithm::ALL.into_iter().filter(|a| a.is_asymmetric()) {
        let key = key(alg).with_kid("pub").unwrap();
        let public = key.verifying_key().to_public_jwk().unwrap();
        let json: serde_json::Value = serde_json::to_value(&public).unwrap();
        for m in handoff_core::jws::PRIVATE_JWK_MEMBERS {
            assert!(json.get(m).is_none(), "{alg}: public JWK carries {m}");
        }
        assert_eq!(json["alg"], alg.as_str());
        assert_eq!(json["kid"], "pub");
        assert_eq!(json["use"], "sig");
        let back = VerifyingKey::from_jwk(&public).unwrap();
        assert_eq!(back, key.verifying_key());
        assert_eq!(back.thumbprint(), key.verifying_key().thumbprint());
    }
    // HS256 secrets have no public form.
    assert!(matches!(
        key(Algorithm::HS256).verifying_key().to_public_jwk(),
        Err(Error::KeyRejected(_))
    ));
}

#[test]
fn pem_round_trips_for_every_asymmetric_algorithm() {
    for alg in Algorithm::ALL.into_iter().filter(|a| a.is_asymmetric()) {
        let key = key(alg);
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let back = SigningKey::from_pem(&pem, alg).unwrap();
        assert_eq!(back.verifying_key(), key.verifying_key());
        let public_pem = key.verifying_key().to_public_key_pem().unwrap();
        assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let public = VerifyingKey::from_pem(&public_pem, alg).unwrap();
        assert_eq!(public, key.verifying_key());
        let token = sign_json(&back, Some(TYP), &claims());
        verify::<serde_json::Value, _>(&token, &public, &policy(), now()).unwrap();
    }
    assert!(key(Algorithm::HS256).to_pkcs8_pem().is_err());
}

#[test]
fn generated_keys_are_distinct_and_bound_to_their_algorithm() {
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::HS256] {
        let a = SigningKey::generate(alg, &mut rng()).unwrap();
        let b = SigningKey::generate(alg, &mut rng()).unwrap();
        assert_eq!(a.algorithm(), alg);
        assert_ne!(a.verifying_key(), b.verifying_key());
        let token = sign_json(&a, Some(TYP), &claims());
        assert_eq!(
            verify::<serde_json::Value, _>(&token, &b.verifying_key(), &policy(), now())
                .unwrap_err(),
            Error::InvalidSignature
        );
    }
}

#[test]
fn verify_once_releases_claims_only_after_the_replay_log_confirms() {
    let key = key(Algorithm::EdDSA);
    let v = Validation::builder()
        .issuer(ISS)
        .audience(AUD)
        .typ(TYP)
        .replay("test/jwt")
        .build()
        .unwrap();
    let token = sign_json(&key, Some(TYP), &claims());
    let log = InMemoryReplayLog::new(1_000);

    // verify refuses a replay policy: the claims cannot be read without the log.
    assert!(matches!(
        verify::<MyClaims, _>(&token, &key.verifying_key(), &v, now()),
        Err(Error::Policy(_))
    ));
    let first = verify_once::<MyClaims, _>(&token, &key.verifying_key(), &v, now()).unwrap();
    // the entry lives until exp + leeway, from the acceptance rule
    assert_eq!(first.until().as_secs(), NOW + 300 + v.leeway());
    let claims_ok = first.confirm(&log, now()).unwrap();
    assert_eq!(claims_ok.custom().sub, "user-1");

    let second = verify_once::<MyClaims, _>(&token, &key.verifying_key(), &v, now()).unwrap();
    assert_eq!(
        second.confirm(&log, now().saturating_add(200)).unwrap_err(),
        ReplayRefused::Replayed
    );
    // and an error converts into the crate error
    let third = verify_once::<MyClaims, _>(&token, &key.verifying_key(), &v, now()).unwrap();
    let e: Error = third.confirm(&log, now()).unwrap_err().into();
    assert!(matches!(e, Error::Replay(ReplayRefused::Replayed)));
}

#[test]
fn sign_header_kid_and_embedded_public_jwk() {
    let key = key(Algorithm::ES256).with_kid("own").unwrap();
    let public = key.verifying_key().to_public_jwk().unwrap();
    let token = jws::sign(
        &key,
        &SignHeader {
            typ: Some("dpop+jwt"),
            kid: Some("other"),
            jwk: Some(&public),
        },
        b"{}",
        &mut rng(),
    )
    .unwrap();
    let c = jws::decode(&token, &DecodeOptions::default()).unwrap();
    assert_eq!(c.header().kid(), Some("other"));
    assert_eq!(
        VerifyingKey::from_jwk(c.header().jwk().unwrap()).unwrap(),
        key.verifying_key()
    );
    // a private JWK is never embedded
    let private = key.to_private_jwk();
    assert!(matches!(
        jws::sign(
            &key,
            &SignHeader {
                jwk: Some(&private),
                ..SignHeader::default()
            },
            b"{}",
            &mut rng()
        ),
        Err(Error::KeyRejected(_))
    ));
}
