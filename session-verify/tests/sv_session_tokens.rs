//! Session access tokens (DPoP-bound, HS256 per-kind secrets) and service tokens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sv_common;

use handoff_core::replay::{InMemoryReplayLog, ReplayRefused};
use handoff_core::{Algorithm, Error as CoreError, HmacSecret, SigningKey};
use handoff_verify::{
    AccessClaims, AccessTokenVerifier, Presented, ServiceClaims, ServiceTokenVerifier, TokenKind,
    Verifier, VerifyError, derive_hs256_signing_key, derive_hs256_verifying_key, mint_access_token,
    mint_service_token,
};
use serde_json::json;
use sv_common::*;

fn access_verifier(algs: &[Algorithm]) -> AccessTokenVerifier {
    AccessTokenVerifier::new(profile(TokenKind::Access, algs)).unwrap()
}

fn claims() -> AccessClaims {
    AccessClaims::new(ISS, "user-42", AUD, "web-app").with_scope("read write")
}

#[test]
fn bound_token_verifies_only_with_the_matching_proof_key() {
    let issuer = key(Algorithm::EdDSA, "s1");
    let client = SigningKey::generate(Algorithm::ES256, &mut rng()).unwrap();
    let thumb = client.verifying_key().thumbprint();
    let minted = mint_access_token(&claims().bound_to(thumb), &issuer, t(NOW), &mut rng()).unwrap();
    assert_eq!(minted.expires_at(), t(NOW + 300));
    let v = access_verifier(&[Algorithm::EdDSA]);
    let pk = issuer.verifying_key();
    let ok = v
        .verify(
            minted.as_str(),
            &pk,
            &Presented::Dpop {
                proof_thumbprint: thumb,
            },
            t(NOW),
        )
        .unwrap();
    assert_eq!(ok.subject(), "user-42");
    assert_eq!(ok.client_id(), "web-app");
    assert_eq!(ok.jti(), minted.jti());
    assert_eq!(ok.scopes().collect::<Vec<_>>(), ["read", "write"]);
    assert_eq!(ok.jkt(), Some(thumb.to_base64url().as_str()));
    // Downgrade to Bearer (RFC 9449 section 7.2).
    assert_eq!(
        v.verify(minted.as_str(), &pk, &Presented::Bearer, t(NOW))
            .unwrap_err(),
        VerifyError::BoundTokenAsBearer
    );
    // A proof made with another key.
    let other = SigningKey::generate(Algorithm::ES256, &mut rng()).unwrap();
    let wrong = Presented::Dpop {
        proof_thumbprint: other.verifying_key().thumbprint(),
    };
    assert_eq!(
        v.verify(minted.as_str(), &pk, &wrong, t(NOW)).unwrap_err(),
        VerifyError::KeyBindingMismatch
    );
}

#[test]
fn unbound_token_is_bearer_only() {
    let issuer = key(Algorithm::EdDSA, "s1");
    let minted = mint_access_token(&claims(), &issuer, t(NOW), &mut rng()).unwrap();
    let v = access_verifier(&[Algorithm::EdDSA]);
    let pk = issuer.verifying_key();
    assert!(
        v.verify(minted.as_str(), &pk, &Presented::Bearer, t(NOW))
            .is_ok()
    );
    let thumb = key(Algorithm::EdDSA, "c").verifying_key().thumbprint();
    assert_eq!(
        v.verify(
            minted.as_str(),
            &pk,
            &Presented::Dpop {
                proof_thumbprint: thumb
            },
            t(NOW)
        )
        .unwrap_err(),
        VerifyError::NotDpopBound
    );
}

#[test]
fn a_forged_cnf_that_is_not_a_thumbprint_never_matches() {
    let issuer = key(Algorithm::EdDSA, "s1");
    let thumb = key(Algorithm::EdDSA, "c").verifying_key().thumbprint();
    let v = access_verifier(&[Algorithm::EdDSA]);
    for jkt in ["", "not base64!", &"A".repeat(64)] {
        let c = with(access_claims(NOW), json!({"cnf": {"jkt": jkt}}));
        let tok = token(&issuer, "at+jwt", &c);
        let r = v.verify(
            &tok,
            &issuer.verifying_key(),
            &Presented::Dpop {
                proof_thumbprint: thumb,
            },
            t(NOW),
        );
        assert!(r.is_err(), "{jkt:?}");
    }
}

#[test]
fn hs256_secrets_are_separate_per_token_kind() {
    let master = HmacSecret::generate(&mut rng());
    let access_key = derive_hs256_signing_key(&master, TokenKind::Access).unwrap();
    let service_key = derive_hs256_signing_key(&master, TokenKind::Service).unwrap();
    let host_key = derive_hs256_signing_key(&master, TokenKind::Host).unwrap();
    let access_pub = derive_hs256_verifying_key(&master, TokenKind::Access).unwrap();
    assert_ne!(access_pub, service_key.verifying_key());
    assert_ne!(access_pub, host_key.verifying_key());
    assert_eq!(access_pub, access_key.verifying_key());
    let v = access_verifier(&[Algorithm::HS256]);
    let good = mint_access_token(&claims(), &access_key, t(NOW), &mut rng()).unwrap();
    assert!(
        v.verify(good.as_str(), &access_pub, &Presented::Bearer, t(NOW))
            .is_ok()
    );
    // Someone holding another kind's secret (or the master itself) cannot mint access tokens.
    for wrong in [
        service_key,
        host_key,
        SigningKey::hs256(master.expose_secret().to_vec()).unwrap(),
    ] {
        let forged = mint_access_token(&claims(), &wrong, t(NOW), &mut rng()).unwrap();
        assert_eq!(
            v.verify(forged.as_str(), &access_pub, &Presented::Bearer, t(NOW))
                .unwrap_err(),
            VerifyError::Token(CoreError::InvalidSignature)
        );
    }
    // The derivation is stable, so both sides agree.
    let again = derive_hs256_verifying_key(&master, TokenKind::Access).unwrap();
    assert_eq!(again, access_pub);
}

#[test]
fn minting_refuses_bad_claims() {
    let k = key(Algorithm::EdDSA, "s1");
    let mut r = rng();
    let policy = |c: AccessClaims| match mint_access_token(&c, &k, t(NOW), &mut rng()) {
        Err(VerifyError::Policy(m)) => m,
        other => panic!("expected a policy error, got {other:?}"),
    };
    assert!(policy(claims().with_ttl(0)).contains("lifetime"));
    assert!(policy(claims().with_ttl(3601)).contains("lifetime"));
    assert!(policy(AccessClaims::new(ISS, "", AUD, "c")).contains("sub"));
    let mut no_aud = claims();
    no_aud.aud.clear();
    assert!(policy(no_aud).contains("audience"));
    let minted = mint_access_token(&claims(), &k, t(NOW), &mut r).unwrap();
    let dbg = format!("{minted:?}");
    assert!(
        !dbg.contains(minted.as_str()),
        "Debug must not print the token"
    );
    assert!(dbg.ends_with(".. }"), "{dbg}");
}

#[test]
fn access_verifier_requires_an_access_profile() {
    assert!(AccessTokenVerifier::new(profile(TokenKind::Service, &[Algorithm::EdDSA])).is_err());
    assert!(
        ServiceTokenVerifier::new(
            profile(TokenKind::Access, &[Algorithm::EdDSA]),
            key(Algorithm::EdDSA, "g").verifying_key(),
            ["orders:read"],
        )
        .is_err()
    );
}

fn service_setup() -> (SigningKey, ServiceTokenVerifier) {
    let gateway = key(Algorithm::EdDSA, "gw-1");
    let v = ServiceTokenVerifier::new(
        profile(TokenKind::Service, &[Algorithm::EdDSA]),
        gateway.verifying_key(),
        ["orders:read", "orders:write"],
    )
    .unwrap();
    (gateway, v)
}

#[test]
fn service_tokens_carry_scopes_and_live_briefly() {
    let (gw, v) = service_setup();
    let minted = mint_service_token(
        &ServiceClaims::new(ISS, "checkout", AUD, ["orders:read", "audit"]),
        &gw,
        t(NOW),
        &mut rng(),
    )
    .unwrap();
    assert_eq!(minted.expires_at(), t(NOW + 60));
    let tok = v.verify(minted.as_str(), t(NOW + 30)).unwrap();
    assert_eq!(tok.subject(), "checkout");
    assert!(tok.has_scope("orders:read"));
    assert!(tok.has_scope("audit"));
    assert!(!tok.has_scope("orders:write"));
    // Expired after 60 s + leeway.
    assert!(matches!(
        v.verify(minted.as_str(), t(NOW + 121)),
        Err(VerifyError::Token(CoreError::Expired { .. }))
    ));
}

#[test]
fn service_token_without_an_accepted_scope_is_refused() {
    let (gw, v) = service_setup();
    let minted = mint_service_token(
        &ServiceClaims::new(ISS, "checkout", AUD, ["billing:read"]),
        &gw,
        t(NOW),
        &mut rng(),
    )
    .unwrap();
    assert_eq!(
        v.verify(minted.as_str(), t(NOW)).unwrap_err(),
        VerifyError::ScopeNotAllowed
    );
    // A scope that merely contains an accepted one as a substring does not count.
    let c = with(
        service_claims(NOW),
        json!({"scope": "orders:readx xorders:read"}),
    );
    let tok = token(&gw, "service+jwt", &c);
    assert_eq!(
        v.verify(&tok, t(NOW)).unwrap_err(),
        VerifyError::ScopeNotAllowed
    );
}

#[test]
fn service_tokens_cannot_be_minted_with_anything_but_eddsa_or_verified_with_a_secret() {
    let es = key(Algorithm::ES256, "es");
    let c = ServiceClaims::new(ISS, "checkout", AUD, ["orders:read"]);
    assert!(matches!(
        mint_service_token(&c, &es, t(NOW), &mut rng()),
        Err(VerifyError::Policy(_))
    ));
    assert!(matches!(
        mint_service_token(
            &c.clone().with_ttl(301),
            &key(Algorithm::EdDSA, "g"),
            t(NOW),
            &mut rng()
        ),
        Err(VerifyError::Policy(_))
    ));
    let bad_scope = ServiceClaims::new(ISS, "checkout", AUD, ["has space"]);
    assert!(matches!(
        mint_service_token(&bad_scope, &key(Algorithm::EdDSA, "g"), t(NOW), &mut rng()),
        Err(VerifyError::Policy(_))
    ));
    // The backend holds a public key only: a shared secret is refused outright.
    let secret = handoff_core::VerifyingKey::hs256(vec![7u8; 32]).unwrap();
    assert!(
        ServiceTokenVerifier::new(
            profile(TokenKind::Service, &[Algorithm::EdDSA]),
            secret,
            ["orders:read"]
        )
        .is_err()
    );
    // A long-lived service token signed by the gateway key is refused.
    let (gw, v) = service_setup();
    let long = with(
        service_claims(NOW),
        json!({"scope": "orders:read", "exp": NOW + 3600}),
    );
    assert!(matches!(
        v.verify(&token(&gw, "service+jwt", &long), t(NOW)),
        Err(VerifyError::Token(CoreError::InvalidClaim {
            claim: "exp",
            ..
        }))
    ));
    // An access token from the same key is not a service token.
    let at = mint_access_token(&claims(), &gw, t(NOW), &mut rng()).unwrap();
    assert!(matches!(
        v.verify(at.as_str(), t(NOW)),
        Err(VerifyError::Token(CoreError::WrongType { .. }))
    ));
}

#[test]
fn service_tokens_can_be_made_one_time() {
    let gw = key(Algorithm::EdDSA, "gw-1");
    let p = Verifier::builder(TokenKind::Service)
        .issuer(ISS)
        .audience(AUD)
        .algorithm(Algorithm::EdDSA)
        .enforce_replay(true)
        .build()
        .unwrap();
    let v = ServiceTokenVerifier::new(p, gw.verifying_key(), ["orders:read"]).unwrap();
    let minted = mint_service_token(
        &ServiceClaims::new(ISS, "checkout", AUD, ["orders:read"]),
        &gw,
        t(NOW),
        &mut rng(),
    )
    .unwrap();
    let log = InMemoryReplayLog::new(10);
    let first = v.verify_once(minted.as_str(), t(NOW)).unwrap();
    assert!(first.confirm(&log, t(NOW)).is_ok());
    let second = v.verify_once(minted.as_str(), t(NOW + 1)).unwrap();
    assert_eq!(
        second.confirm(&log, t(NOW + 1)).unwrap_err(),
        ReplayRefused::Replayed
    );
    assert!(matches!(
        v.verify(minted.as_str(), t(NOW)),
        Err(VerifyError::Token(CoreError::Policy(_)))
    ));
}

#[test]
fn a_proof_verified_by_the_dpop_crate_binds_the_token() {
    let issuer = key(Algorithm::EdDSA, "s1");
    let client = handoff_dpop::DpopKey::generate(Algorithm::ES256, &mut rng()).unwrap();
    let at = mint_access_token(
        &claims().bound_to(client.thumbprint()),
        &issuer,
        t(NOW),
        &mut rng(),
    )
    .unwrap();
    let uri = "https://api.example/orders";
    let proof = client
        .proof("GET", uri, t(NOW), &mut rng(), None, Some(at.as_str()))
        .unwrap();
    let dv = handoff_dpop::DpopVerifier::builder()
        .algorithms(&[Algorithm::ES256, Algorithm::EdDSA])
        .build()
        .unwrap();
    let log = InMemoryReplayLog::new(10);
    let headers = [proof.as_str()];
    let jkt = client.jkt();
    let req = handoff_dpop::DpopRequest::new(&headers, "GET", uri)
        .with_access_token(at.as_str())
        .bound_to(&jkt);
    let verified_proof = dv.verify_and_confirm(&req, t(NOW), &log).unwrap();
    let v = access_verifier(&[Algorithm::EdDSA]);
    let pk = issuer.verifying_key();
    assert!(
        v.verify(at.as_str(), &pk, &Presented::from(&verified_proof), t(NOW))
            .is_ok()
    );
    // A proof by another client key does not bind.
    let other = handoff_dpop::DpopKey::generate(Algorithm::ES256, &mut rng()).unwrap();
    let p2 = other
        .proof("GET", uri, t(NOW), &mut rng(), None, Some(at.as_str()))
        .unwrap();
    let h2 = [p2.as_str()];
    let other_proof = dv
        .verify_and_confirm(
            &handoff_dpop::DpopRequest::new(&h2, "GET", uri).with_access_token(at.as_str()),
            t(NOW),
            &log,
        )
        .unwrap();
    assert_eq!(
        v.verify(at.as_str(), &pk, &Presented::dpop(&other_proof), t(NOW))
            .unwrap_err(),
        VerifyError::KeyBindingMismatch
    );
}
