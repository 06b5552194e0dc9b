//! `verify/<ALG>` and `sign/<ALG>` for EdDSA, ES256, RS256 and HS256, functions `raw`
//! (the primitive alone on the token's signing input), `ours` (identity-core's public
//! API), `jsonwebtoken` (RustCrypto backend) and `jwt-simple` (pure Rust). The aws-lc-rs
//! backend of jsonwebtoken runs in the `jwt_aws_lc` target.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::hint::black_box;

use benches::fixtures::{
    AUDIENCE, ED25519_PEM, ED25519_PUB_PEM, Fixture, HS256_SECRET, ISSUER, JTI, LEEWAY_SECS,
    P256_PEM, P256_PUB_PEM, RSA_PEM, RSA_PUB_PEM, SUBJECT, policy, sign_claims, verify_ours,
};
use benches::fixtures::{
    LargeClaims, LargeCustom, large_policy, sign_large, verify_large, verify_large_borrowed,
};
use benches::report::{
    JSONWEBTOKEN, JWT_SIMPLE, OURS, OURS_AWS_LC, OURS_BORROWED, RAW, RAW_PREPARED,
};
use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use handoff_core::Algorithm;

fn group<'a>(c: &'a mut Criterion, op: &str, alg: Algorithm) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(format!("{op}/{alg}"));
    if op == "sign" && alg == Algorithm::RS256 {
        // RSA signing takes milliseconds; 20 samples keep the run short.
        g.sample_size(20);
    }
    g
}

// ---------------------------------------------------------------- raw primitives

fn raw_verify(c: &mut Criterion, f: &Fixture) {
    let msg = f.signing_input().as_bytes().to_vec();
    let sig = f.signature();
    let mut g = group(c, "verify", f.alg);
    match f.alg {
        Algorithm::EdDSA => {
            use ed25519_dalek::pkcs8::DecodePublicKey;
            let vk = ed25519_dalek::VerifyingKey::from_public_key_pem(ED25519_PUB_PEM).unwrap();
            let s = ed25519_dalek::Signature::from_slice(&sig).unwrap();
            vk.verify_strict(&msg, &s)
                .expect("raw EdDSA accepts the token");
            g.bench_function(RAW, |b| {
                b.iter(|| vk.verify_strict(black_box(&msg), black_box(&s)).unwrap())
            });
        }
        Algorithm::ES256 => {
            use p256::ecdsa::signature::Verifier;
            use p256::pkcs8::DecodePublicKey;
            let vk = p256::ecdsa::VerifyingKey::from_public_key_pem(P256_PUB_PEM).unwrap();
            let s = p256::ecdsa::Signature::from_slice(&sig).unwrap();
            vk.verify(&msg, &s).expect("raw ES256 accepts the token");
            g.bench_function(RAW, |b| {
                b.iter(|| vk.verify(black_box(&msg), black_box(&s)).unwrap())
            });
        }
        Algorithm::RS256 => {
            use rsa::pkcs8::DecodePublicKey;
            use rsa::signature::Verifier;
            let pk = rsa::RsaPublicKey::from_public_key_pem(RSA_PUB_PEM).unwrap();
            let vk = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(pk);
            let s = rsa::pkcs1v15::Signature::try_from(sig.as_slice()).unwrap();
            vk.verify(&msg, &s).expect("raw RS256 accepts the token");
            g.bench_function(RAW, |b| {
                b.iter(|| vk.verify(black_box(&msg), black_box(&s)).unwrap())
            });
        }
        Algorithm::HS256 => {
            use hmac::{KeyInit, Mac};
            let mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HS256_SECRET).unwrap();
            let mut m = mac.clone();
            m.update(&msg);
            m.verify_slice(&sig).expect("raw HS256 accepts the token");
            g.bench_function(RAW, |b| {
                b.iter(|| {
                    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(HS256_SECRET).unwrap();
                    m.update(black_box(&msg));
                    m.verify_slice(black_box(&sig)).unwrap()
                })
            });
            // The keyed state prepared once and cloned per MAC, as identity-core does.
            g.bench_function(RAW_PREPARED, |b| {
                b.iter(|| {
                    let mut m = mac.clone();
                    m.update(black_box(&msg));
                    m.verify_slice(black_box(&sig)).unwrap()
                })
            });
        }
        other => panic!("no raw benchmark for {other}"),
    }
}

/// `ours` under the backend of this build (`--features aws-lc`: `ours-aws-lc`).
const fn ours_name() -> &'static str {
    if cfg!(feature = "aws-lc") {
        OURS_AWS_LC
    } else {
        OURS
    }
}

/// `verify-large/<ALG>`: a token with 16 KB of custom claims, read into [`LargeClaims`]
/// by `ours` and `jsonwebtoken`; `raw` is the primitive over the large signing input.
fn large(c: &mut Criterion, f: &Fixture) {
    let now = common::now();
    let mut rng = common::rng();
    let claims = LargeClaims::issued_at(now);
    let token = sign_large(&f.signing, &claims, &mut rng).unwrap();
    let (input, sig) = token.rsplit_once('.').unwrap();
    let msg = input.as_bytes().to_vec();
    let sig = handoff_core::b64::decode(sig).unwrap();
    let mut g = c.benchmark_group(format!("verify-large/{}", f.alg));
    match f.alg {
        Algorithm::EdDSA => {
            use ed25519_dalek::pkcs8::DecodePublicKey;
            let vk = ed25519_dalek::VerifyingKey::from_public_key_pem(ED25519_PUB_PEM).unwrap();
            let s = ed25519_dalek::Signature::from_slice(&sig).unwrap();
            g.bench_function(RAW, |b| {
                b.iter(|| vk.verify_strict(black_box(&msg), black_box(&s)).unwrap())
            });
        }
        _ => {
            use hmac::{KeyInit, Mac};
            let mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HS256_SECRET).unwrap();
            g.bench_function(RAW, |b| {
                b.iter(|| {
                    let mut m = mac.clone();
                    m.update(black_box(&msg));
                    m.verify_slice(black_box(&sig)).unwrap()
                })
            });
        }
    }
    let p = large_policy(f.alg).unwrap();
    let got = verify_large(&token, &f.verifying, &p, now).expect("ours accepts the large token");
    assert_eq!(got.custom().grants, claims.grants);
    g.bench_function(ours_name(), |b| {
        b.iter(|| verify_large(black_box(&token), &f.verifying, &p, now).unwrap())
    });
    let same = verify_large_borrowed(&token, &f.verifying, &p, now, |g| {
        g.len() == claims.grants.len() && g.iter().zip(&claims.grants).all(|(a, b)| a.same_as(b))
    });
    assert!(
        same.expect("ours accepts the large token"),
        "borrowed grants differ"
    );
    g.bench_function(OURS_BORROWED, |b| {
        b.iter(|| {
            verify_large_borrowed(black_box(&token), &f.verifying, &p, now, |g| g.len()).unwrap()
        })
    });
    let (_, dec) = common::jwt_keys(f.alg);
    let v = common::jwt_validation(f.alg);
    let data = jsonwebtoken::decode::<LargeCustom>(&token, &dec, &v).expect("peer accepts it");
    assert_eq!(data.claims.grants, claims.grants);
    g.bench_function(JSONWEBTOKEN, |b| {
        b.iter(|| jsonwebtoken::decode::<LargeCustom>(black_box(&token), &dec, &v).unwrap())
    });
}

fn raw_sign(c: &mut Criterion, f: &Fixture) {
    let msg = f.signing_input().as_bytes().to_vec();
    let mut g = group(c, "sign", f.alg);
    match f.alg {
        Algorithm::EdDSA => {
            use ed25519_dalek::Signer;
            use ed25519_dalek::pkcs8::DecodePrivateKey;
            let sk = ed25519_dalek::SigningKey::from_pkcs8_pem(ED25519_PEM).unwrap();
            assert_eq!(
                sk.sign(&msg).to_bytes().as_slice(),
                f.signature().as_slice()
            );
            g.bench_function(RAW, |b| b.iter(|| sk.sign(black_box(&msg))));
        }
        Algorithm::ES256 => {
            use p256::ecdsa::signature::Signer;
            use p256::pkcs8::DecodePrivateKey;
            let sk = p256::ecdsa::SigningKey::from_pkcs8_pem(P256_PEM).unwrap();
            g.bench_function(RAW, |b| {
                b.iter(|| -> p256::ecdsa::Signature { sk.sign(black_box(&msg)) })
            });
        }
        Algorithm::RS256 => {
            use rsa::pkcs8::DecodePrivateKey;
            use rsa::signature::RandomizedSigner;
            let k = rsa::RsaPrivateKey::from_pkcs8_pem(RSA_PEM).unwrap();
            let sk = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(k);
            let mut rng = common::rng();
            // Blinded, like identity-core's RSA signing.
            g.bench_function(RAW, |b| {
                b.iter(|| sk.try_sign_with_rng(&mut rng, black_box(&msg)).unwrap())
            });
        }
        Algorithm::HS256 => {
            use hmac::{KeyInit, Mac};
            g.bench_function(RAW, |b| {
                b.iter(|| {
                    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(HS256_SECRET).unwrap();
                    m.update(black_box(&msg));
                    m.finalize().into_bytes()
                })
            });
        }
        other => panic!("no raw benchmark for {other}"),
    }
}

// ---------------------------------------------------------------- ours

fn ours(c: &mut Criterion, f: &Fixture) {
    let now = common::now();
    let policy = policy(f.alg).unwrap();
    verify_ours(&f.token, &f.verifying, &policy, now).expect("ours accepts the token");
    group(c, "verify", f.alg).bench_function(ours_name(), |b| {
        b.iter(|| verify_ours(black_box(&f.token), &f.verifying, &policy, now).unwrap())
    });
    let mut rng = common::rng();
    group(c, "sign", f.alg).bench_function(ours_name(), |b| {
        b.iter(|| sign_claims(&f.signing, black_box(&f.claims), &mut rng).unwrap())
    });
}

/// Where `ours` spends its time on HS256, where the primitive is cheapest: strict
/// decoding alone, decoding plus the MAC, and the claims parse on top.
fn breakdown(c: &mut Criterion, f: &Fixture) {
    use handoff_core::jws::{DecodeOptions, decode};
    let opts = DecodeOptions::default();
    let mut g = c.benchmark_group(format!("verify-breakdown/{}", f.alg));
    g.bench_function("decode", |b| {
        b.iter(|| decode(black_box(&f.token), &opts).unwrap())
    });
    g.bench_function("decode+signature", |b| {
        b.iter(|| {
            let t = decode(black_box(&f.token), &opts).unwrap();
            t.verify(&f.verifying).unwrap();
            t
        })
    });
    if f.alg == Algorithm::RS256 {
        // The same primitive as `raw`, with the public key taken from the private key
        // (as identity-core's `SigningKey::verifying_key` does) instead of the SPKI PEM.
        use rsa::pkcs8::DecodePrivateKey;
        use rsa::signature::Verifier;
        let k = rsa::RsaPrivateKey::from_pkcs8_pem(RSA_PEM).unwrap();
        let vk = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(k.to_public_key());
        let s = rsa::pkcs1v15::Signature::try_from(f.signature().as_slice()).unwrap();
        let msg = f.signing_input().as_bytes().to_vec();
        g.bench_function("raw-key-from-private", |b| {
            b.iter(|| vk.verify(black_box(&msg), black_box(&s)).unwrap())
        });
        return;
    }
    let payload = decode(&f.token, &opts).unwrap().payload().to_vec();
    g.bench_function("claims-json-only", |b| {
        b.iter(|| {
            serde_json::from_slice::<benches::fixtures::BenchClaims>(black_box(&payload)).unwrap()
        })
    });
    // The least any verifier built on serde_json can do with these claims: read the six
    // of them borrowed (no copy, no check), or only validate the JSON.
    g.bench_function("claims-json-borrowed", |b| {
        b.iter(|| {
            serde_json::from_slice::<benches::fixtures::BenchClaimsRef<'_>>(black_box(&payload))
                .unwrap()
        })
    });
    g.bench_function("claims-json-validate", |b| {
        b.iter(|| serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&payload)).unwrap())
    });
    // `Validation::decode` as `verify` runs it: the header segment found in the policy's
    // cache (filled by one verification), so no header parse.
    let policy = policy(f.alg).unwrap();
    verify_ours(&f.token, &f.verifying, &policy, common::now()).expect("ours accepts it");
    g.bench_function("decode-cached", |b| {
        b.iter(|| policy.decode(black_box(&f.token)).unwrap())
    });
}

// ---------------------------------------------------------------- jwt-simple

fn jwt_simple_options() -> jwt_simple::prelude::VerificationOptions {
    jwt_simple::prelude::VerificationOptions {
        allowed_issuers: Some(HashSet::from([ISSUER.to_owned()])),
        allowed_audiences: Some(HashSet::from([AUDIENCE.to_owned()])),
        time_tolerance: Some(jwt_simple::prelude::Duration::from_secs(LEEWAY_SECS)),
        ..Default::default()
    }
}

fn jwt_simple_claims(
    f: &Fixture,
) -> jwt_simple::prelude::JWTClaims<jwt_simple::prelude::NoCustomClaims> {
    use jwt_simple::prelude::*;
    // The same six claims as the others (no `nbf`, which `Claims::create` would add).
    let mut claims = Claims::create(Duration::from_secs(1));
    claims.issued_at = Some(UnixTimeStamp::from_secs(f.claims.iat));
    claims.expires_at = Some(UnixTimeStamp::from_secs(f.claims.exp));
    claims.invalid_before = None;
    claims.issuer = Some(ISSUER.to_owned());
    claims.subject = Some(SUBJECT.to_owned());
    claims.audiences = Some(Audiences::AsString(AUDIENCE.to_owned()));
    claims.jwt_id = Some(JTI.to_owned());
    claims
}

macro_rules! jwt_simple_pair {
    ($c:expr, $f:expr, $pk:expr, $kp:expr, $sign:ident) => {{
        let (c, f, pk, kp) = ($c, $f, $pk, $kp);
        let options = jwt_simple_options();
        let got = pk
            .verify_token::<NoCustomClaims>(&f.token, Some(options.clone()))
            .expect("jwt-simple accepts the fixture token");
        assert_eq!(got.subject.as_deref(), Some(SUBJECT));
        // `verify_token` takes its options by value: cloning them is part of its cost.
        group(c, "verify", f.alg).bench_function(JWT_SIMPLE, |b| {
            b.iter(|| {
                pk.verify_token::<NoCustomClaims>(black_box(&f.token), Some(options.clone()))
                    .unwrap()
            })
        });
        let claims = jwt_simple_claims(f);
        group(c, "sign", f.alg).bench_function(JWT_SIMPLE, |b| {
            b.iter(|| kp.$sign(black_box(claims.clone())).unwrap())
        });
    }};
}

fn jwt_simple(c: &mut Criterion, f: &Fixture) {
    use jwt_simple::prelude::*;
    match f.alg {
        Algorithm::EdDSA => jwt_simple_pair!(
            c,
            f,
            Ed25519PublicKey::from_pem(ED25519_PUB_PEM).unwrap(),
            Ed25519KeyPair::from_pem(ED25519_PEM).unwrap(),
            sign
        ),
        Algorithm::ES256 => jwt_simple_pair!(
            c,
            f,
            ES256PublicKey::from_pem(P256_PUB_PEM).unwrap(),
            ES256KeyPair::from_pem(P256_PEM).unwrap(),
            sign
        ),
        Algorithm::RS256 => jwt_simple_pair!(
            c,
            f,
            RS256PublicKey::from_pem(RSA_PUB_PEM).unwrap(),
            RS256KeyPair::from_pem(RSA_PEM).unwrap(),
            sign
        ),
        Algorithm::HS256 => {
            let key = HS256Key::from_bytes(HS256_SECRET);
            jwt_simple_pair!(c, f, &key, &key, authenticate)
        }
        other => panic!("no jwt-simple benchmark for {other}"),
    }
}

fn jwt(c: &mut Criterion) {
    jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER
        .install_default()
        .expect("first provider of this process");
    let fixtures = common::fixtures();
    if cfg!(feature = "aws-lc") {
        // The accelerated build measures `ours-aws-lc` only (the rest is the default run's).
        for f in &fixtures {
            ours(c, f);
        }
        let ps = Fixture::new(Algorithm::PS256, common::now(), &mut common::rng()).unwrap();
        ours(c, &ps);
        return;
    }
    for f in &fixtures {
        if matches!(f.alg, Algorithm::EdDSA | Algorithm::HS256) {
            large(c, f);
        }
        raw_verify(c, f);
        raw_sign(c, f);
        ours(c, f);
        jwt_simple(c, f);
        if matches!(f.alg, Algorithm::HS256 | Algorithm::RS256) {
            breakdown(c, f);
        }
    }
    common::bench_jsonwebtoken(c, &fixtures, JSONWEBTOKEN);
}

criterion_group!(benches, jwt);
criterion_main!(benches);
