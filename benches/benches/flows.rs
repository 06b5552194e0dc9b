//! `dpop/verify` (ours: full proof verification through `handoff_dpop::DpopVerifier`, without
//! the replay confirmation that `replay/check_and_insert` measures; raw: the ES256
//! primitive on the proof's signing input) and `refresh/rotate` (ours: verify, load,
//! decide and apply on the in-memory store; raw: the 3 HMAC-SHA256 and 2 SHA-256 it
//! computes).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::hint::black_box;

use benches::fixtures::P256_PEM;
use benches::report::{OURS, RAW};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use handoff_core::{Algorithm, HmacSecret, SigningKey, UnixTime};

const URI: &str = "https://rs.example/resource";
const ACCESS_TOKEN: &str = "bench-access-token";

fn dpop_verify(c: &mut Criterion) {
    let now = UnixTime::from_secs(1_700_000_000);
    let key = handoff_dpop::DpopKey::from_signing_key(
        SigningKey::from_pem(P256_PEM, Algorithm::ES256).unwrap(),
    )
    .unwrap();
    let jkt = key.jkt();
    let proof = key
        .proof(
            "GET",
            URI,
            now,
            &mut common::rng(),
            None,
            Some(ACCESS_TOKEN),
        )
        .unwrap();
    let verifier = handoff_dpop::DpopVerifier::default();
    let headers = [proof.as_str()];
    let request = handoff_dpop::DpopRequest::new(&headers, "GET", URI)
        .with_access_token(ACCESS_TOKEN)
        .bound_to(&jkt);
    let checked = verifier.verify(&request, now).expect("the proof verifies");
    drop(checked);

    let (input, sig) = proof.rsplit_once('.').unwrap();
    let sig = handoff_core::b64::decode(sig).unwrap();
    let vk = {
        use p256::pkcs8::DecodePrivateKey;
        *p256::ecdsa::SigningKey::from_pkcs8_pem(P256_PEM)
            .unwrap()
            .verifying_key()
    };
    let sig = p256::ecdsa::Signature::from_slice(&sig).unwrap();

    let mut g = c.benchmark_group("dpop/verify");
    g.bench_function(OURS, |b| {
        b.iter(|| verifier.verify(black_box(&request), now).unwrap())
    });
    g.bench_function(RAW, |b| {
        use p256::ecdsa::signature::Verifier;
        b.iter(|| {
            vk.verify(black_box(input.as_bytes()), black_box(&sig))
                .unwrap()
        })
    });
}

fn refresh_rotate(c: &mut Criterion) {
    use handoff_refresh::{InMemoryFamilyStore, Outcome, Policy, RefreshFamilies, rotate, start};
    let t0 = UnixTime::from_secs(1_700_000_000);
    let now = t0.saturating_add(60);
    let master = HmacSecret::new(vec![0x42; 32]).unwrap();
    let engine = RefreshFamilies::new(&master, Policy::default());
    let mut rng = common::rng();
    let setup = || {
        let store = InMemoryFamilyStore::new(16);
        let first = start(&store, &engine, "alice", "web", t0, &mut common::rng())
            .unwrap()
            .token;
        (store, first)
    };
    let mut g = c.benchmark_group("refresh/rotate");
    g.bench_function(OURS, |b| {
        b.iter_batched(
            setup,
            |(store, first)| {
                let out = rotate(&store, &engine, first.expose_secret(), now, &mut rng).unwrap();
                assert!(matches!(out, Outcome::Issued(_)));
                (store, out)
            },
            BatchSize::SmallInput,
        );
    });
    g.bench_function(RAW, |b| {
        use sha2::{Digest, Sha256};
        let secret = [7u8; 32];
        b.iter(|| {
            let a = master.mac(black_box(b"refresh-family/v1/id-tag"));
            let m = master.mac(black_box(&a));
            let s = master.mac(black_box(&m));
            (
                Sha256::digest(black_box(secret)),
                Sha256::digest(black_box(s)),
            )
        });
    });
}

criterion_group!(benches, dpop_verify, refresh_rotate);
criterion_main!(benches);
