//! `handoff-login`: `login/id_token` (ours: the ID-token profile, RS256, decode + key +
//! signature + claims + nonce; raw: the RSA PKCS#1 v1.5 SHA-256 verification of the same
//! signing input), `login/ratelimit` (ours: `RateLimiter::check`, sliding window, 10 000
//! keys tracked; raw: a `HashMap` lookup and counter increment), `login/redirect` (ours:
//! `RedirectAllowList::check`; raw: `url::Url::parse` of the same text).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::hint::black_box;

use benches::fixtures::RSA_PEM;
use benches::report::{OURS, RAW};
use criterion::{Criterion, criterion_group, criterion_main};
use handoff_core::jws::{self, SignHeader};
use handoff_core::{Algorithm, Jwks, SigningKey, UnixTime};
use handoff_login::{IdTokenVerifier, RateLimiter, RatePolicy, RedirectAllowList};
use handoff_verify::NoCustomClaims;

const NOW: u64 = 1_800_000_000;

fn id_token(c: &mut Criterion) {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let key = SigningKey::from_pem(RSA_PEM, Algorithm::RS256)
        .unwrap()
        .with_kid("k")
        .unwrap();
    let claims = serde_json::json!({"iss": "https://idp.example", "sub": "u1", "aud": "app",
        "iat": NOW, "exp": NOW + 300, "nonce": "n-0123456789", "email": "a@example.com", "email_verified": true});
    let header = SignHeader {
        typ: Some("JWT"),
        ..SignHeader::default()
    };
    let token = jws::sign(&key, &header, claims.to_string().as_bytes(), &mut rng).unwrap();
    let keys = Jwks::from_keys([key.verifying_key()]).unwrap();
    let v = IdTokenVerifier::builder("app")
        .issuer("https://idp.example")
        .build()
        .unwrap();
    let now = UnixTime::from_secs(NOW);
    v.verify::<NoCustomClaims, _>(&token, &keys, "n-0123456789", now)
        .unwrap();
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig = handoff_core::b64::decode(sig).unwrap();
    let vk = key.verifying_key();
    let mut g = c.benchmark_group("login/id_token");
    g.bench_function(OURS, |b| {
        b.iter(|| {
            v.verify::<NoCustomClaims, _>(black_box(&token), &keys, "n-0123456789", now)
                .unwrap()
        })
    });
    g.bench_function(RAW, |b| {
        b.iter(|| vk.verify(black_box(input.as_bytes()), &sig).unwrap())
    });
    g.finish();
}

fn ratelimit(c: &mut Criterion) {
    let mut l = RateLimiter::new(
        RatePolicy::SlidingWindow {
            limit: 500,
            window_secs: 30,
        },
        20_000,
    )
    .unwrap();
    let mut raw: HashMap<u64, u32> = HashMap::new();
    for k in 0..10_000u64 {
        let _ = l.check(&k, UnixTime::from_secs(NOW));
        raw.insert(k, 0);
    }
    let mut g = c.benchmark_group("login/ratelimit");
    let mut i = 0u64;
    g.bench_function(OURS, |b| {
        b.iter(|| {
            i = (i + 7919) % 10_000;
            // Time advances so that windows slide and the deque is pruned.
            black_box(l.check(&i, UnixTime::from_secs(NOW + i % 64)))
        })
    });
    g.bench_function(RAW, |b| {
        b.iter(|| {
            i = (i + 7919) % 10_000;
            if let Some(c) = raw.get_mut(&i) {
                *c = c.wrapping_add(1);
            }
            black_box(&raw);
        })
    });
    g.finish();
}

fn redirect(c: &mut Criterion) {
    let list = RedirectAllowList::new()
        .allow("https://app.example.com")
        .unwrap();
    let target = "https://app.example.com/after/login?tab=home";
    let mut g = c.benchmark_group("login/redirect");
    g.bench_function(OURS, |b| b.iter(|| list.check(black_box(target)).unwrap()));
    g.bench_function(RAW, |b| {
        b.iter(|| url::Url::parse(black_box(target)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, id_token, ratelimit, redirect);
criterion_main!(benches);
