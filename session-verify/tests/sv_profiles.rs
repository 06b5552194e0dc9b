//! Verifier profiles: every attack of the issue refused by its own test, and the kinds
//! mutually exclusive (RFC 8725 sections 3.11 and 3.12).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sv_common;

use handoff_core::replay::{InMemoryReplayLog, ReplayRefused};
use handoff_core::{Algorithm, Error as CoreError, Jwks, SigningKey, b64};
use handoff_verify::{NoCustomClaims, TokenKind, Verifier, VerifyError};
use serde_json::json;
use sv_common::*;

struct Issuer {
    ed: SigningKey,
    es: SigningKey,
    rs: SigningKey,
    jwks: Jwks,
}

fn issuer() -> &'static Issuer {
    static ISSUER: std::sync::OnceLock<Issuer> = std::sync::OnceLock::new();
    ISSUER.get_or_init(new_issuer)
}

fn new_issuer() -> Issuer {
    let ed = key(Algorithm::EdDSA, "ed-1");
    let es = key(Algorithm::ES256, "es-1");
    let rs = key(Algorithm::RS256, "rs-1");
    let jwks = jwks_of(&[&ed, &es, &rs]);
    Issuer { ed, es, rs, jwks }
}

fn access() -> Verifier {
    profile(
        TokenKind::Access,
        &[Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256],
    )
}

fn verify_access<K: handoff_core::KeySource + ?Sized>(
    v: &Verifier,
    token: &str,
    keys: &K,
) -> Result<(), VerifyError> {
    v.verify::<NoCustomClaims, _>(token, keys, t(NOW))
        .map(|_| ())
}

fn core_err(r: Result<(), VerifyError>) -> CoreError {
    match r {
        Err(VerifyError::Token(e)) => e,
        other => panic!("expected an identity-core error, got {other:?}"),
    }
}

#[test]
fn valid_tokens_of_each_algorithm_pass() {
    let i = issuer();
    for k in [&i.ed, &i.es, &i.rs] {
        let tok = token(k, "at+jwt", &access_claims(NOW));
        let v = access()
            .verify::<NoCustomClaims, _>(&tok, &i.jwks, t(NOW))
            .unwrap();
        assert_eq!(v.client_id(), Some("web-app"));
        assert_eq!(v.kind(), TokenKind::Access);
        assert_eq!(v.header().kid(), k.kid());
    }
}

#[test]
fn hs256_keyed_with_the_public_key_is_refused() {
    let i = issuer();
    // The attacker uses the published RSA key (PEM and JWK text) as an HMAC secret.
    let pem = i.rs.verifying_key().to_public_key_pem().unwrap();
    let jwk_text = i.jwks.to_json();
    for secret in [pem.into_bytes(), jwk_text.into_bytes()] {
        let hs = SigningKey::hs256(secret).unwrap();
        let header = json!({"alg": "HS256", "kid": "rs-1", "typ": "at+jwt"});
        let tok = forge(&hs, &header, &access_claims(NOW));
        assert_eq!(
            core_err(verify_access(&access(), &tok, &i.jwks)),
            CoreError::AlgorithmNotAllowed(Algorithm::HS256)
        );
        // Even a profile that allows HS256 never uses a public key as a secret.
        let lax = profile(TokenKind::Access, &[Algorithm::RS256, Algorithm::HS256]);
        assert_eq!(
            core_err(verify_access(&lax, &tok, &i.jwks)),
            CoreError::AlgorithmMismatch {
                header: Algorithm::HS256,
                key: Algorithm::RS256
            }
        );
        assert!(matches!(
            core_err(
                lax.verify::<NoCustomClaims, _>(&tok, &i.rs.verifying_key(), t(NOW))
                    .map(|_| ())
            ),
            CoreError::AlgorithmMismatch {
                header: Algorithm::HS256,
                key: Algorithm::RS256
            }
        ));
    }
}

#[test]
fn alg_none_is_refused() {
    let i = issuer();
    let h = b64::encode(br#"{"alg":"none","typ":"at+jwt","kid":"ed-1"}"#);
    let p = b64::encode(access_claims(NOW).to_string().as_bytes());
    let unsigned = format!("{h}.{p}.");
    assert!(matches!(
        core_err(verify_access(&access(), &unsigned, &i.jwks)),
        CoreError::Malformed(_)
    ));
    let with_sig = format!("{h}.{p}.AAAA");
    assert!(matches!(
        core_err(verify_access(&access(), &with_sig, &i.jwks)),
        CoreError::UnsupportedAlgorithm(_)
    ));
}

#[test]
fn unknown_crit_is_refused() {
    let i = issuer();
    let header =
        json!({"alg": "EdDSA", "kid": "ed-1", "typ": "at+jwt", "crit": ["exp-x"], "exp-x": 1});
    let tok = forge(&i.ed, &header, &access_claims(NOW));
    assert!(matches!(
        core_err(verify_access(&access(), &tok, &i.jwks)),
        CoreError::Critical(_)
    ));
}

#[test]
fn embedded_jwk_of_an_attacker_is_ignored() {
    let i = issuer();
    let attacker = key(Algorithm::EdDSA, "ed-1");
    let jwk = serde_json::to_value(attacker.verifying_key().to_public_jwk().unwrap()).unwrap();
    for header in [
        json!({"alg": "EdDSA", "kid": "ed-1", "typ": "at+jwt", "jwk": jwk}),
        json!({"alg": "EdDSA", "typ": "at+jwt", "jwk": jwk}),
    ] {
        let tok = forge(&attacker, &header, &access_claims(NOW));
        // With a kid the issuer's key is used (bad signature); without one the set is
        // ambiguous. The embedded key is never used.
        assert!(matches!(
            core_err(verify_access(&access(), &tok, &i.jwks)),
            CoreError::InvalidSignature | CoreError::AmbiguousKey(_)
        ));
        let only_ed = jwks_of(&[&i.ed]);
        assert!(matches!(
            core_err(verify_access(&access(), &tok, &only_ed)),
            CoreError::InvalidSignature | CoreError::AmbiguousKey(_)
        ));
        assert_eq!(
            core_err(verify_access(&access(), &tok, &i.ed.verifying_key())),
            CoreError::InvalidSignature
        );
    }
}

#[test]
fn jku_pointing_at_an_attacker_key_is_never_followed() {
    let i = issuer();
    let attacker = key(Algorithm::EdDSA, "evil-1");
    let header = json!({"alg": "EdDSA", "kid": "evil-1", "typ": "at+jwt", "jku": "https://evil.example/jwks"});
    let tok = forge(&attacker, &header, &access_claims(NOW));
    assert!(matches!(
        core_err(verify_access(&access(), &tok, &i.jwks)),
        CoreError::KeyNotFound { .. }
    ));
    let header =
        json!({"alg": "EdDSA", "kid": "ed-1", "typ": "at+jwt", "jku": "https://evil.example/jwks"});
    let tok = forge(&attacker, &header, &access_claims(NOW));
    assert_eq!(
        core_err(verify_access(&access(), &tok, &i.jwks)),
        CoreError::InvalidSignature
    );
}

#[test]
fn kid_absent_from_the_set_is_refused() {
    let i = issuer();
    let other = key(Algorithm::EdDSA, "ed-9");
    let tok = token(&other, "at+jwt", &access_claims(NOW));
    assert!(matches!(
        core_err(verify_access(&access(), &tok, &i.jwks)),
        CoreError::KeyNotFound { kid: Some(k), .. } if k == "ed-9"
    ));
}

#[test]
fn foreign_key_under_a_known_kid_is_refused() {
    let i = issuer();
    for alg in [Algorithm::EdDSA, Algorithm::ES256] {
        let kid = if alg == Algorithm::EdDSA {
            "ed-1"
        } else {
            "es-1"
        };
        let foreign = key(alg, kid);
        let tok = token(&foreign, "at+jwt", &access_claims(NOW));
        assert_eq!(
            core_err(verify_access(&access(), &tok, &i.jwks)),
            CoreError::InvalidSignature
        );
    }
}

#[test]
fn kid_naming_a_key_of_another_algorithm_is_refused() {
    let i = issuer();
    // ES256 header pointing at the Ed25519 key's kid.
    let attacker = key(Algorithm::ES256, "ed-1");
    let tok = token(&attacker, "at+jwt", &access_claims(NOW));
    assert_eq!(
        core_err(verify_access(&access(), &tok, &i.jwks)),
        CoreError::AlgorithmMismatch {
            header: Algorithm::ES256,
            key: Algorithm::EdDSA
        }
    );
    // Through the cache the same mismatch is named, and no fetch is triggered.
    let mut c = cache();
    let req = c.handle_timeout(t(NOW)).unwrap();
    serve(&mut c, t(NOW), &req, &i.jwks.to_json());
    let r = access().verify_with_cache::<NoCustomClaims>(&tok, &mut c, t(NOW));
    assert!(matches!(
        r,
        Err(VerifyError::Token(CoreError::AlgorithmMismatch {
            header: Algorithm::ES256,
            key: Algorithm::EdDSA
        }))
    ));
    assert_eq!(c.fetch_in_flight(), None);
}

#[test]
fn expired_token_is_refused() {
    let i = issuer();
    let claims = with(
        access_claims(NOW),
        json!({"iat": NOW - 400, "exp": NOW - 61}),
    );
    let tok = token(&i.ed, "at+jwt", &claims);
    assert!(matches!(
        core_err(verify_access(&access(), &tok, &i.jwks)),
        CoreError::Expired { .. }
    ));
    // Within the 60 s leeway it still passes.
    let claims = with(
        access_claims(NOW),
        json!({"iat": NOW - 400, "exp": NOW - 59}),
    );
    assert!(verify_access(&access(), &token(&i.ed, "at+jwt", &claims), &i.jwks).is_ok());
}

#[test]
fn nbf_in_the_future_is_refused() {
    let i = issuer();
    let claims = with(access_claims(NOW), json!({"nbf": NOW + 61}));
    let tok = token(&i.ed, "at+jwt", &claims);
    assert!(matches!(
        core_err(verify_access(&access(), &tok, &i.jwks)),
        CoreError::NotYetValid { .. }
    ));
}

#[test]
fn iat_in_the_future_is_refused() {
    let i = issuer();
    let claims = with(
        access_claims(NOW),
        json!({"iat": NOW + 61, "exp": NOW + 200}),
    );
    let tok = token(&i.ed, "at+jwt", &claims);
    assert!(matches!(
        core_err(verify_access(&access(), &tok, &i.jwks)),
        CoreError::IssuedInFuture { .. }
    ));
}

#[test]
fn wrong_audience_is_refused() {
    let i = issuer();
    let claims = with(
        access_claims(NOW),
        json!({"aud": ["https://other.example"]}),
    );
    let tok = token(&i.ed, "at+jwt", &claims);
    assert_eq!(
        core_err(verify_access(&access(), &tok, &i.jwks)),
        CoreError::WrongAudience
    );
}

#[test]
fn wrong_issuer_is_refused_and_several_spellings_are_accepted() {
    let i = issuer();
    let claims = with(access_claims(NOW), json!({"iss": "https://evil.example"}));
    let tok = token(&i.ed, "at+jwt", &claims);
    assert!(matches!(
        core_err(verify_access(&access(), &tok, &i.jwks)),
        CoreError::WrongIssuer(_)
    ));
    let google = Verifier::builder(TokenKind::Access)
        .issuer("accounts.google.com")
        .issuer("https://accounts.google.com")
        .audience(AUD)
        .algorithm(Algorithm::EdDSA)
        .build()
        .unwrap();
    for (iss, accepted) in [
        ("accounts.google.com", true),
        ("https://accounts.google.com", true),
        ("http://accounts.google.com", false),
        ("https://accounts.google.com/", false),
    ] {
        let tok = token(
            &i.ed,
            "at+jwt",
            &with(access_claims(NOW), json!({"iss": iss})),
        );
        assert_eq!(
            verify_access(&google, &tok, &i.jwks).is_ok(),
            accepted,
            "{iss}"
        );
    }
}

#[test]
fn oversize_token_is_refused_before_decoding() {
    let i = issuer();
    let claims = with(access_claims(NOW), json!({"pad": "x".repeat(20_000)}));
    let tok = token(&i.ed, "at+jwt", &claims);
    assert!(matches!(
        core_err(verify_access(&access(), &tok, &i.jwks)),
        CoreError::TokenTooLarge { max: 16384, .. }
    ));
    let small = Verifier::builder(TokenKind::Access)
        .issuer(ISS)
        .audience(AUD)
        .algorithm(Algorithm::EdDSA)
        .max_token_bytes(200)
        .build()
        .unwrap();
    let normal = token(&i.ed, "at+jwt", &access_claims(NOW));
    assert!(normal.len() > 200);
    assert!(matches!(
        core_err(verify_access(&small, &normal, &i.jwks)),
        CoreError::TokenTooLarge { max: 200, .. }
    ));
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let i = issuer();
    // 5000 nested arrays fit under the 16 KiB cap; serde_json stops at depth 128.
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let claims_text = format!(
        r#"{{"iss":"{ISS}","sub":"u","aud":"{AUD}","iat":{NOW},"exp":{},"jti":"j","client_id":"c","x":{deep}}}"#,
        NOW + 60
    );
    let h = b64::encode(br#"{"alg":"EdDSA","kid":"ed-1","typ":"at+jwt"}"#);
    let mut tok = format!("{h}.{}", b64::encode(claims_text.as_bytes()));
    let sig = i.ed.sign(tok.as_bytes(), &mut rng()).unwrap();
    tok = format!("{tok}.{}", b64::encode(&sig));
    assert!(tok.len() < 16_384);
    assert!(matches!(
        core_err(verify_access(&access(), &tok, &i.jwks)),
        CoreError::Json { part: "claims", .. }
    ));
    // The same nesting in an unknown header member is skipped iteratively (serde_json
    // ignores values without recursing), so it costs no stack; the token still fails.
    let header = format!(r#"{{"alg":"EdDSA","kid":"ed-1","typ":"at+jwt","x":{deep}}}"#);
    let tok = format!(
        "{}.{}.AAAA",
        b64::encode(header.as_bytes()),
        b64::encode(b"{}")
    );
    let e = core_err(verify_access(&access(), &tok, &i.jwks));
    assert_eq!(e, CoreError::InvalidSignature);
    // Nested where a value is read (the typ) it is a precise JSON error.
    let header = format!(r#"{{"alg":"EdDSA","kid":"ed-1","typ":{deep}}}"#);
    let tok = format!(
        "{}.{}.AAAA",
        b64::encode(header.as_bytes()),
        b64::encode(b"{}")
    );
    let e = core_err(verify_access(&access(), &tok, &i.jwks));
    assert!(matches!(e, CoreError::Json { part: "header", .. }), "{e:?}");
}

/// Every kind's valid token passes its own profile only.
#[test]
fn kinds_are_mutually_exclusive() {
    let i = issuer();
    let ed = [Algorithm::EdDSA];
    let access = profile(TokenKind::Access, &ed);
    let host = profile(TokenKind::Host, &ed);
    let service = profile(TokenKind::Service, &ed);
    let dpop_header = json!({
        "alg": "EdDSA", "typ": "dpop+jwt", "kid": "ed-1",
        "jwk": serde_json::to_value(i.ed.verifying_key().to_public_jwk().unwrap()).unwrap(),
    });
    let dpop_claims = with(
        base_claims(NOW),
        json!({"htm": "POST", "htu": "https://api.example/token"}),
    );
    let tokens = [
        ("access", token(&i.ed, "at+jwt", &access_claims(NOW))),
        ("host", token(&i.ed, "host+jwt", &host_claims(NOW))),
        ("service", token(&i.ed, "service+jwt", &service_claims(NOW))),
        ("dpop", forge(&i.ed, &dpop_header, &dpop_claims)),
    ];
    let log = InMemoryReplayLog::new(100);
    for (name, tok) in &tokens {
        let a = access
            .verify::<NoCustomClaims, _>(tok, &i.jwks, t(NOW))
            .is_ok();
        let h = host.verify_once::<NoCustomClaims, _>(tok, &i.jwks, t(NOW));
        let h = h.map(|u| u.confirm(&log, t(NOW)).is_ok()).unwrap_or(false);
        let s = service
            .verify::<NoCustomClaims, _>(tok, &i.jwks, t(NOW))
            .is_ok();
        let expected = match *name {
            "access" => (true, false, false),
            "host" => (false, true, false),
            "service" => (false, false, true),
            _ => (false, false, false),
        };
        assert_eq!((a, h, s), expected, "{name}");
        // Refused for the type, before any key is used.
        if *name != "access" {
            assert!(matches!(
                access.verify::<NoCustomClaims, _>(tok, &i.jwks, t(NOW)),
                Err(VerifyError::Token(CoreError::WrongType { .. }))
            ));
        }
    }
}

/// Even with the right `typ`, a token shaped like another kind is refused.
#[test]
fn claim_shapes_are_mutually_exclusive_beyond_typ() {
    let i = issuer();
    let ed = [Algorithm::EdDSA];
    let access = profile(TokenKind::Access, &ed);
    let host = profile(TokenKind::Host, &ed);
    let service = profile(TokenKind::Service, &ed);
    let foreign = |r: Result<(), VerifyError>, claim: &str| match r {
        Err(VerifyError::ForeignClaim { claim: c, .. }) => assert_eq!(c, claim),
        other => panic!("expected foreign claim {claim}, got {other:?}"),
    };
    let acc = |c| {
        access
            .verify::<NoCustomClaims, _>(&token(&i.ed, "at+jwt", &c), &i.jwks, t(NOW))
            .map(|_| ())
    };
    foreign(
        acc(with(access_claims(NOW), json!({"host_tenant_id": "t"}))),
        "host_tenant_id",
    );
    foreign(acc(with(access_claims(NOW), json!({"htm": "GET"}))), "htm");
    foreign(acc(with(access_claims(NOW), json!({"ath": null}))), "ath");
    foreign(acc(host_claims(NOW)), "host_tenant_id");
    assert!(matches!(
        acc(base_claims(NOW)),
        Err(VerifyError::Token(CoreError::MissingClaim("client_id")))
    ));
    assert!(matches!(
        acc(with(access_claims(NOW), json!({"client_id": ""}))),
        Err(VerifyError::Token(CoreError::InvalidClaim {
            claim: "client_id",
            ..
        }))
    ));
    assert!(matches!(
        acc(with(
            access_claims(NOW),
            json!({"cnf": {"x5t#S256": "abc"}})
        )),
        Err(VerifyError::Token(CoreError::MissingClaim("cnf.jkt")))
    ));
    let hst = |c| {
        host.verify_once::<NoCustomClaims, _>(&token(&i.ed, "host+jwt", &c), &i.jwks, t(NOW))
            .map(|_| ())
    };
    foreign(
        hst(with(host_claims(NOW), json!({"client_id": "web"}))),
        "client_id",
    );
    foreign(
        hst(with(host_claims(NOW), json!({"cnf": {"jkt": "x"}}))),
        "cnf",
    );
    assert!(matches!(
        hst(access_claims(NOW)),
        Err(VerifyError::ForeignClaim {
            claim: "client_id",
            ..
        })
    ));
    assert!(matches!(
        hst(base_claims(NOW)),
        Err(VerifyError::Token(CoreError::MissingClaim(
            "host_tenant_id"
        )))
    ));
    let svc = |c| {
        service
            .verify::<NoCustomClaims, _>(&token(&i.ed, "service+jwt", &c), &i.jwks, t(NOW))
            .map(|_| ())
    };
    foreign(svc(access_claims(NOW)), "client_id");
    foreign(
        svc(with(service_claims(NOW), json!({"host_tenant_id": "t"}))),
        "host_tenant_id",
    );
    foreign(
        svc(with(service_claims(NOW), json!({"cnf": {"jkt": "x"}}))),
        "cnf",
    );
    assert!(matches!(
        svc(base_claims(NOW)),
        Err(VerifyError::Token(CoreError::MissingClaim("scope")))
    ));
}

#[test]
fn opaque_refresh_and_device_tokens_never_parse_as_jwts() {
    let i = issuer();
    // The shapes minted by refresh-family (`rf1.` + 107 base64url characters) and by the
    // device module (`dvs1.` + 22 + `.` + 43 characters).
    let refresh = format!("rf1.{}", b64::encode(&[7u8; 80]));
    let device = format!(
        "dvs1.{}.{}",
        b64::encode(&[1u8; 16]),
        b64::encode(&[2u8; 32])
    );
    assert_eq!(refresh.len(), 111);
    assert_eq!(device.len(), 71);
    let ed = [Algorithm::EdDSA];
    for opaque in [&refresh, &device] {
        for kind in [TokenKind::Access, TokenKind::Service] {
            let r = profile(kind, &ed).verify::<NoCustomClaims, _>(opaque, &i.jwks, t(NOW));
            assert!(
                matches!(
                    r,
                    Err(VerifyError::Token(
                        CoreError::Malformed(_) | CoreError::Base64(_) | CoreError::Json { .. }
                    ))
                ),
                "{kind}: {r:?}"
            );
        }
        let r =
            profile(TokenKind::Host, &ed).verify_once::<NoCustomClaims, _>(opaque, &i.jwks, t(NOW));
        assert!(r.is_err());
    }
}

#[test]
fn host_tokens_are_one_time_for_their_lifetime() {
    let i = issuer();
    let host = profile(TokenKind::Host, &[Algorithm::EdDSA]);
    assert!(host.enforces_replay());
    let tok = token(&i.ed, "host+jwt", &host_claims(NOW));
    let log = InMemoryReplayLog::new(100);
    let first = host
        .verify_once::<NoCustomClaims, _>(&tok, &i.jwks, t(NOW))
        .unwrap();
    assert_eq!(first.until(), t(NOW + 120 + 60));
    let v = first.confirm(&log, t(NOW)).unwrap();
    assert_eq!(v.host_tenant_id(), Some("tenant-7"));
    let again = host
        .verify_once::<NoCustomClaims, _>(&tok, &i.jwks, t(NOW + 100))
        .unwrap();
    assert_eq!(
        again.confirm(&log, t(NOW + 100)).unwrap_err(),
        ReplayRefused::Replayed
    );
    // A replay-enforcing profile refuses the non-replay entry point.
    assert!(matches!(
        host.verify::<NoCustomClaims, _>(&tok, &i.jwks, t(NOW)),
        Err(VerifyError::Token(CoreError::Policy(_)))
    ));
    // Host tokens are EdDSA-pinned: an ES256 host token is refused.
    let es_tok = token(&i.es, "host+jwt", &host_claims(NOW));
    assert!(matches!(
        host.verify_once::<NoCustomClaims, _>(&es_tok, &i.jwks, t(NOW)),
        Err(VerifyError::Token(CoreError::AlgorithmNotAllowed(
            Algorithm::ES256
        )))
    ));
}

#[test]
fn custom_claims_come_through() {
    #[derive(serde::Deserialize)]
    struct Extra {
        roles: Vec<String>,
    }
    let i = issuer();
    let tok = token(
        &i.ed,
        "at+jwt",
        &with(access_claims(NOW), json!({"roles": ["admin"]})),
    );
    let v = access().verify::<Extra, _>(&tok, &i.jwks, t(NOW)).unwrap();
    assert_eq!(v.custom().roles, ["admin"]);
    assert_eq!(v.scope(), Some("read"));
}

#[test]
fn incomplete_or_contradictory_policies_are_refused() {
    let policy = |b: handoff_verify::VerifierBuilder| match b.build() {
        Err(VerifyError::Policy(m)) => m,
        Err(VerifyError::Token(CoreError::Policy(m))) => m,
        other => panic!("expected a policy error, got {other:?}"),
    };
    let base = |k| Verifier::builder(k).issuer(ISS).audience(AUD);
    assert!(policy(base(TokenKind::Access)).contains("algorithm"));
    assert!(
        policy(
            Verifier::builder(TokenKind::Access)
                .audience(AUD)
                .algorithm(Algorithm::EdDSA)
        )
        .contains("issuer")
    );
    assert!(
        policy(
            Verifier::builder(TokenKind::Access)
                .issuer(ISS)
                .algorithm(Algorithm::EdDSA)
        )
        .contains("audience")
    );
    // Host profiles take the host algorithms only (EdDSA default, ES256, RS256).
    for alg in [Algorithm::HS256, Algorithm::PS256] {
        assert!(policy(base(TokenKind::Host).algorithm(alg)).contains("EdDSA"));
        assert!(
            policy(
                base(TokenKind::Host)
                    .algorithm(Algorithm::EdDSA)
                    .algorithm(alg)
            )
            .contains("ES256 or RS256")
        );
    }
    for alg in [Algorithm::ES256, Algorithm::RS256] {
        assert!(base(TokenKind::Host).algorithm(alg).build().is_ok());
    }
    assert!(
        policy(
            base(TokenKind::Host)
                .algorithm(Algorithm::EdDSA)
                .enforce_replay(false)
        )
        .contains("replay")
    );
    assert!(
        policy(
            base(TokenKind::Access)
                .algorithm(Algorithm::EdDSA)
                .enforce_replay(true)
        )
        .contains("replay")
    );
    assert!(policy(base(TokenKind::Service).algorithm(Algorithm::HS256)).contains("public key"));
    assert!(
        policy(
            base(TokenKind::Access)
                .algorithm(Algorithm::EdDSA)
                .leeway(301)
        )
        .contains("leeway")
    );
    assert!(
        policy(
            base(TokenKind::Access)
                .algorithm(Algorithm::EdDSA)
                .max_token_bytes(0)
        )
        .contains("cap")
    );
}
