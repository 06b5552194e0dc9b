//! The benchmarks compare like with like only if every implementation accepts the
//! benchmark token and refuses the same bad ones: signature, `exp`, `iss` and `aud`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{SystemTime, UNIX_EPOCH};

use benches::fixtures::{
    AUDIENCE, BenchClaims, ED25519_PUB_PEM, Fixture, HS256_SECRET, ISSUER, LEEWAY_SECS, policy,
    sign_claims, signing_key, verify_ours,
};
use handoff_core::{Algorithm, UnixTime};

fn now() -> UnixTime {
    UnixTime::from_secs(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
}

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn install_rust_crypto() {
    // One process runs every test of this file: the first call installs, later ones find
    // the same provider already there.
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
}

fn jsonwebtoken_accepts(alg: Algorithm, token: &str) -> bool {
    install_rust_crypto();
    let (key, a) = match alg {
        Algorithm::EdDSA => (
            jsonwebtoken::DecodingKey::from_ed_pem(ED25519_PUB_PEM.as_bytes()).unwrap(),
            jsonwebtoken::Algorithm::EdDSA,
        ),
        Algorithm::HS256 => (
            jsonwebtoken::DecodingKey::from_secret(HS256_SECRET),
            jsonwebtoken::Algorithm::HS256,
        ),
        other => panic!("not covered here: {other}"),
    };
    let mut v = jsonwebtoken::Validation::new(a);
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[AUDIENCE]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.leeway = LEEWAY_SECS;
    jsonwebtoken::decode::<BenchClaims>(token, &key, &v).is_ok()
}

fn jwt_simple_accepts(alg: Algorithm, token: &str) -> bool {
    use jwt_simple::prelude::*;
    let options = VerificationOptions {
        allowed_issuers: Some(HashSet::from([ISSUER.to_owned()])),
        allowed_audiences: Some(HashSet::from([AUDIENCE.to_owned()])),
        time_tolerance: Some(Duration::from_secs(LEEWAY_SECS)),
        ..Default::default()
    };
    match alg {
        Algorithm::EdDSA => Ed25519PublicKey::from_pem(ED25519_PUB_PEM)
            .unwrap()
            .verify_token::<NoCustomClaims>(token, Some(options))
            .is_ok(),
        Algorithm::HS256 => HS256Key::from_bytes(HS256_SECRET)
            .verify_token::<NoCustomClaims>(token, Some(options))
            .is_ok(),
        other => panic!("not covered here: {other}"),
    }
}

fn ours_accepts(alg: Algorithm, token: &str, now: UnixTime) -> bool {
    let key = signing_key(alg).unwrap().verifying_key();
    verify_ours(token, &key, &policy(alg).unwrap(), now).is_ok()
}

fn all_agree(alg: Algorithm, token: &str, now: UnixTime) -> [bool; 3] {
    [
        ours_accepts(alg, token, now),
        jsonwebtoken_accepts(alg, token),
        jwt_simple_accepts(alg, token),
    ]
}

#[test]
fn every_implementation_accepts_the_benchmark_token() {
    let now = now();
    for alg in [Algorithm::EdDSA, Algorithm::HS256] {
        let f = Fixture::new(alg, now, &mut rng()).unwrap();
        assert_eq!(all_agree(alg, &f.token, now), [true; 3], "{alg}");
    }
}

#[test]
fn every_implementation_refuses_the_same_bad_tokens() {
    let now = now();
    for alg in [Algorithm::EdDSA, Algorithm::HS256] {
        let key = signing_key(alg).unwrap();
        let good = BenchClaims::issued_at(now);
        let cases = [
            (
                "wrong aud",
                BenchClaims {
                    aud: "https://other.example".into(),
                    ..good.clone()
                },
            ),
            (
                "wrong iss",
                BenchClaims {
                    iss: "https://evil.example".into(),
                    ..good.clone()
                },
            ),
            (
                "expired beyond the leeway",
                BenchClaims {
                    exp: now.as_secs() - LEEWAY_SECS - 120,
                    iat: now.as_secs() - 7200,
                    ..good.clone()
                },
            ),
        ];
        for (what, claims) in cases {
            let token = sign_claims(&key, &claims, &mut rng()).unwrap();
            assert_eq!(all_agree(alg, &token, now), [false; 3], "{alg}: {what}");
        }
        // A flipped signature bit.
        let f = Fixture::new(alg, now, &mut rng()).unwrap();
        let mut sig = f.signature();
        sig[0] ^= 1;
        let tampered = format!("{}.{}", f.signing_input(), handoff_core::b64::encode(&sig));
        assert_eq!(
            all_agree(alg, &tampered, now),
            [false; 3],
            "{alg}: bad signature"
        );
    }
}

#[test]
fn fixture_parts_reassemble_the_token() {
    let f = Fixture::new(Algorithm::EdDSA, now(), &mut rng()).unwrap();
    let rebuilt = format!(
        "{}.{}",
        f.signing_input(),
        handoff_core::b64::encode(&f.signature())
    );
    assert_eq!(rebuilt, f.token);
    assert_eq!(f.signature().len(), 64);
}

#[test]
fn jwks_fixture_finds_every_kid_and_refuses_unknown_ones() {
    use handoff_core::jwks::KidlessTokens;
    let set = benches::fixtures::jwks_of(16, &mut rng()).unwrap();
    assert_eq!(set.len(), 16);
    for i in 0..16 {
        let kid = benches::fixtures::kid(i);
        let k = set
            .find(
                Some(&kid),
                Algorithm::EdDSA,
                KidlessTokens::RefuseIfAmbiguous,
            )
            .unwrap();
        assert_eq!(k.kid(), Some(kid.as_str()));
    }
    assert!(
        set.find(
            Some("nope"),
            Algorithm::EdDSA,
            KidlessTokens::RefuseIfAmbiguous
        )
        .is_err()
    );
    assert!(
        set.find(None, Algorithm::EdDSA, KidlessTokens::RefuseIfAmbiguous)
            .is_err()
    );
}

#[test]
fn prefill_inserts_live_entries_only_once() {
    use handoff_core::replay::InMemoryReplayLog;
    let now = UnixTime::from_secs(1_700_000_000);
    let log = InMemoryReplayLog::new(10_000);
    let first = now.saturating_add(60);
    assert_eq!(
        benches::fixtures::prefill(&log, 5_000, first, now).unwrap(),
        5_000
    );
    assert_eq!(log.len(), 5_000);
    // The same keys again are replays, not new entries.
    assert_eq!(
        benches::fixtures::prefill(&log, 5_000, first, now).unwrap(),
        0
    );
    assert_eq!(log.len(), 5_000);
}
