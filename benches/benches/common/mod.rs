//! Pieces shared by the bench targets: the clock, and the jsonwebtoken benchmarks (run
//! once per backend, in two processes, because jsonwebtoken picks its backend per
//! process).

#![allow(dead_code)]

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use benches::fixtures::{
    AUDIENCE, BenchClaims, Fixture, HS256_SECRET, ISSUER, LEEWAY_SECS, private_pem, public_pem,
};
use criterion::Criterion;
use handoff_core::{Algorithm, UnixTime};

/// Wall-clock now: the peers read the system clock themselves, so the tokens must be
/// valid at the real time.
pub(crate) fn now() -> UnixTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    UnixTime::from_secs(secs)
}

pub(crate) fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

pub(crate) fn fixtures() -> Vec<Fixture> {
    let now = now();
    benches::fixtures::ALGORITHMS
        .iter()
        .map(|&alg| Fixture::new(alg, now, &mut rng()).expect("fixture"))
        .collect()
}

pub(crate) fn jwt_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    match alg {
        Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::PS256 => jsonwebtoken::Algorithm::PS256,
        Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
        other => panic!("no peer benchmark for {other}"),
    }
}

pub(crate) fn jwt_keys(alg: Algorithm) -> (jsonwebtoken::EncodingKey, jsonwebtoken::DecodingKey) {
    use jsonwebtoken::{DecodingKey, EncodingKey};
    let (Some(private), Some(public)) = (private_pem(alg), public_pem(alg)) else {
        return (
            EncodingKey::from_secret(HS256_SECRET),
            DecodingKey::from_secret(HS256_SECRET),
        );
    };
    let (p, q) = (private.as_bytes(), public.as_bytes());
    match alg {
        Algorithm::EdDSA => (
            EncodingKey::from_ed_pem(p).expect("ed pem"),
            DecodingKey::from_ed_pem(q).expect("ed pub pem"),
        ),
        Algorithm::ES256 => (
            EncodingKey::from_ec_pem(p).expect("ec pem"),
            DecodingKey::from_ec_pem(q).expect("ec pub pem"),
        ),
        _ => (
            EncodingKey::from_rsa_pem(p).expect("rsa pem"),
            DecodingKey::from_rsa_pem(q).expect("rsa pub pem"),
        ),
    }
}

/// The same checks as `ours`: signature with the one algorithm, `exp` (60 s leeway),
/// `iss`, `aud`.
pub(crate) fn jwt_validation(alg: Algorithm) -> jsonwebtoken::Validation {
    let mut v = jsonwebtoken::Validation::new(jwt_alg(alg));
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[AUDIENCE]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.leeway = LEEWAY_SECS;
    v
}

/// `verify/<ALG>` and `sign/<ALG>` for jsonwebtoken, under the function name `name`
/// (the caller has installed the backend).
pub(crate) fn bench_jsonwebtoken(c: &mut Criterion, fixtures: &[Fixture], name: &str) {
    for f in fixtures {
        let (enc, dec) = jwt_keys(f.alg);
        let validation = jwt_validation(f.alg);
        // Sanity: the peer accepts our token and its claims before it is timed.
        let data = jsonwebtoken::decode::<BenchClaims>(&f.token, &dec, &validation)
            .expect("jsonwebtoken accepts the fixture token");
        assert_eq!(data.claims, f.claims);
        c.benchmark_group(format!("verify/{}", f.alg))
            .bench_function(name, |b| {
                b.iter(|| {
                    jsonwebtoken::decode::<BenchClaims>(black_box(&f.token), &dec, &validation)
                        .expect("valid")
                })
            });
        let header = jsonwebtoken::Header::new(jwt_alg(f.alg));
        let mut g = c.benchmark_group(format!("sign/{}", f.alg));
        if f.alg == Algorithm::RS256 {
            g.sample_size(20);
        }
        g.bench_function(name, |b| {
            b.iter(|| jsonwebtoken::encode(&header, black_box(&f.claims), &enc).expect("sign"))
        });
    }
}
