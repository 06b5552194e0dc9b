//! `verify/<ALG>` and `sign/<ALG>`, function `jsonwebtoken-aws-lc`: jsonwebtoken on its
//! aws-lc-rs backend. A separate process from `jwt` because jsonwebtoken selects its
//! backend once per process.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::hint::black_box;

use benches::fixtures::{
    ED25519_PEM, ED25519_PUB_PEM, Fixture, HS256_SECRET, P256_PEM, P256_PUB_PEM, RSA_PEM,
    RSA_PUB_PEM,
};
use benches::report::RAW_AWS_LC;
use criterion::{Criterion, criterion_group, criterion_main};
use handoff_core::Algorithm;

/// DER from PEM text.
fn der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>()
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    handoff_core::b64::decode(&body).unwrap()
}

/// `raw-aws-lc`: the aws-lc-rs primitive alone, for the accelerated backend's ratios and
/// to decide which algorithms it serves (Ed25519 signing moved to aws-lc; Ed25519
/// verification and HS256 stay on RustCrypto).
fn raw_aws_lc(c: &mut Criterion, f: &Fixture) {
    use aws_lc_rs::signature::{self, KeyPair, ParsedPublicKey};
    let msg = f.signing_input().as_bytes().to_vec();
    let sig = f.signature();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut v = c.benchmark_group(format!("verify/{}", f.alg));
    if f.alg == Algorithm::HS256 {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, HS256_SECRET);
        v.bench_function(RAW_AWS_LC, |b| {
            b.iter(|| aws_lc_rs::hmac::verify(&key, black_box(&msg), black_box(&sig)).unwrap())
        });
        drop(v);
        c.benchmark_group("sign/HS256")
            .bench_function(RAW_AWS_LC, |b| {
                b.iter(|| aws_lc_rs::hmac::sign(&key, black_box(&msg)))
            });
        return;
    }
    let (a, pem): (&'static dyn signature::VerificationAlgorithm, _) = match f.alg {
        Algorithm::EdDSA => (&signature::ED25519, ED25519_PUB_PEM),
        Algorithm::ES256 => (&signature::ECDSA_P256_SHA256_FIXED, P256_PUB_PEM),
        _ => (&signature::RSA_PKCS1_2048_8192_SHA256, RSA_PUB_PEM),
    };
    let pk = ParsedPublicKey::new(a, der(pem)).unwrap();
    pk.verify_sig(&msg, &sig)
        .expect("raw aws-lc accepts the token");
    v.bench_function(RAW_AWS_LC, |b| {
        b.iter(|| pk.verify_sig(black_box(&msg), black_box(&sig)).unwrap())
    });
    drop(v);
    let mut s = c.benchmark_group(format!("sign/{}", f.alg));
    match f.alg {
        Algorithm::EdDSA => {
            let k =
                signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der(ED25519_PEM)).unwrap();
            s.bench_function(RAW_AWS_LC, |b| b.iter(|| k.sign(black_box(&msg))));
        }
        Algorithm::ES256 => {
            let k = signature::EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &der(P256_PEM),
            )
            .unwrap();
            let _ = k.public_key();
            s.bench_function(RAW_AWS_LC, |b| {
                b.iter(|| k.sign(&rng, black_box(&msg)).unwrap())
            });
        }
        _ => {
            let k = signature::RsaKeyPair::from_pkcs8(&der(RSA_PEM)).unwrap();
            let mut out = vec![0; k.public_modulus_len()];
            s.sample_size(20);
            s.bench_function(RAW_AWS_LC, |b| {
                b.iter(|| {
                    k.sign(
                        &signature::RSA_PKCS1_SHA256,
                        &rng,
                        black_box(&msg),
                        &mut out,
                    )
                    .unwrap()
                })
            });
        }
    }
}

fn peers_aws_lc(c: &mut Criterion) {
    jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER
        .install_default()
        .expect("first provider of this process");
    let fixtures = common::fixtures();
    common::bench_jsonwebtoken(c, &fixtures, benches::report::JSONWEBTOKEN_AWS_LC);
    for f in &fixtures {
        raw_aws_lc(c, f);
    }
}

criterion_group!(benches, peers_aws_lc);
criterion_main!(benches);
