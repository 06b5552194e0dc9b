//! Instruction counts under callgrind, next to criterion's times: the figures that hold
//! on a noisy shared machine.
//!
//! `cargo bench -p benches --bench icount` (and again with `--features aws-lc` for the
//! accelerated backend) runs every operation in its own process under
//! `valgrind --tool=callgrind`, counting only the instructions executed inside
//! `icount_measured` (the timed loop; setup and one warm-up call are outside), divides by
//! the iterations and merges the result into `<criterion dir>/icount.json`, which
//! `cargo run -p benches --bin report` quotes next to the criterion means.
//!
//! `ICOUNT_FILTER=verify/HS256` limits the run to operations whose id contains it.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::hint::black_box;
use std::path::Path;
use std::process::{Command, ExitCode};

use benches::fixtures::{
    BenchClaims, ED25519_PEM, ED25519_PUB_PEM, Fixture, HS256_SECRET, LargeClaims, LargeCustom,
    P256_PEM, P256_PUB_PEM, RSA_PEM, RSA_PUB_PEM, large_policy, policy, sign_claims, sign_large,
    verify_large, verify_large_borrowed, verify_ours,
};
use benches::report::{
    ICOUNT_FILE, IcountEntry, JSONWEBTOKEN, JSONWEBTOKEN_AWS_LC, OURS, OURS_AWS_LC, OURS_BORROWED,
    RAW, RAW_AWS_LC, RAW_PREPARED,
};
use handoff_core::Algorithm;

/// `serde_json::from_slice` of the decoded payload into the caller's type alone, without
/// any strictness: what any verifier pays to hand the claims over.
const CLAIMS_JSON_ONLY: &str = "claims-json-only";

/// The measured loop: callgrind counts what runs inside this function only.
#[inline(never)]
fn icount_measured(f: &mut dyn FnMut(), iters: u64) {
    for _ in 0..iters {
        f();
    }
}

/// `ours` under the backend this build has.
const fn ours() -> &'static str {
    if cfg!(feature = "aws-lc") {
        OURS_AWS_LC
    } else {
        OURS
    }
}

fn alg_of(group: &str) -> Algorithm {
    let name = group.rsplit('/').next().unwrap();
    Algorithm::from_name(name).unwrap()
}

/// Every operation this build measures: (group, function, iterations).
fn ops() -> Vec<(String, &'static str, u64)> {
    let mut out = Vec::new();
    let iters = |alg: Algorithm, op: &str| match (alg, op) {
        (Algorithm::HS256, _) => 2000,
        (Algorithm::RS256 | Algorithm::PS256, "sign") => 3,
        _ => 20,
    };
    for alg in ["EdDSA", "ES256", "RS256", "PS256", "HS256"] {
        for op in ["verify", "sign"] {
            let g = format!("{op}/{alg}");
            let n = iters(alg_of(&g), op);
            out.push((g.clone(), ours(), n));
            if cfg!(feature = "aws-lc") {
                continue;
            }
            if alg != "PS256" {
                out.push((g.clone(), RAW, n));
                out.push((g.clone(), JSONWEBTOKEN, n));
                out.push((g.clone(), JSONWEBTOKEN_AWS_LC, n));
                out.push((g.clone(), RAW_AWS_LC, n));
            }
            if alg == "HS256" && op == "verify" {
                out.push((g.clone(), RAW_PREPARED, n));
            }
        }
    }
    for alg in ["EdDSA", "HS256"] {
        let g = format!("verify-large/{alg}");
        let n = if alg == "HS256" { 200 } else { 20 };
        out.push((g.clone(), ours(), n));
        if !cfg!(feature = "aws-lc") {
            out.push((g.clone(), OURS_BORROWED, n));
            out.push((g.clone(), RAW, n));
            out.push((g.clone(), JSONWEBTOKEN, n));
            out.push((g, CLAIMS_JSON_ONLY, n));
        }
    }
    out
}

fn install_jsonwebtoken(function: &str) {
    let r = if function == JSONWEBTOKEN_AWS_LC {
        jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default()
    } else {
        jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default()
    };
    r.expect("first provider of this process");
}

/// Builds the operation (setup is not counted).
fn build(group: &str, function: &str) -> Box<dyn FnMut()> {
    let alg = alg_of(group);
    let now = common::now();
    let mut rng = common::rng();
    let large = group.starts_with("verify-large/");
    let f = Fixture::new(alg, now, &mut rng).unwrap();
    let (token, msg) = if large {
        let t = sign_large(&f.signing, &LargeClaims::issued_at(now), &mut rng).unwrap();
        let m = t.rsplit_once('.').unwrap().0.as_bytes().to_vec();
        (t, m)
    } else {
        (f.token.clone(), f.signing_input().as_bytes().to_vec())
    };
    let sig = handoff_core::b64::decode(token.rsplit_once('.').unwrap().1).unwrap();
    let verify = group.starts_with("verify");
    match function {
        OURS | OURS_AWS_LC if large => {
            let p = large_policy(alg).unwrap();
            Box::new(move || {
                verify_large(black_box(&token), &f.verifying, &p, now).unwrap();
            })
        }
        OURS_BORROWED => {
            let p = large_policy(alg).unwrap();
            Box::new(move || {
                black_box(
                    verify_large_borrowed(black_box(&token), &f.verifying, &p, now, |g| g.len())
                        .unwrap(),
                );
            })
        }
        OURS | OURS_AWS_LC if verify => {
            let p = policy(alg).unwrap();
            Box::new(move || {
                verify_ours(black_box(&token), &f.verifying, &p, now).unwrap();
            })
        }
        OURS | OURS_AWS_LC => Box::new(move || {
            black_box(sign_claims(&f.signing, black_box(&f.claims), &mut rng).unwrap());
        }),
        JSONWEBTOKEN | JSONWEBTOKEN_AWS_LC => {
            install_jsonwebtoken(function);
            let (enc, dec) = common::jwt_keys(alg);
            let v = common::jwt_validation(alg);
            if large {
                Box::new(move || {
                    jsonwebtoken::decode::<LargeCustom>(black_box(&token), &dec, &v).unwrap();
                })
            } else if verify {
                Box::new(move || {
                    jsonwebtoken::decode::<BenchClaims>(black_box(&token), &dec, &v).unwrap();
                })
            } else {
                let header = jsonwebtoken::Header::new(common::jwt_alg(alg));
                let claims = f.claims.clone();
                Box::new(move || {
                    black_box(jsonwebtoken::encode(&header, black_box(&claims), &enc).unwrap());
                })
            }
        }
        CLAIMS_JSON_ONLY => {
            let (_, payload, _) = {
                let mut it = token.split('.');
                (it.next(), it.next().unwrap(), it.next())
            };
            let payload = handoff_core::b64::decode(payload).unwrap();
            Box::new(move || {
                black_box(serde_json::from_slice::<LargeCustom>(black_box(&payload)).unwrap());
            })
        }
        RAW_PREPARED => {
            use hmac::{KeyInit, Mac};
            let prepared = hmac::Hmac::<sha2::Sha256>::new_from_slice(HS256_SECRET).unwrap();
            Box::new(move || {
                let mut m = prepared.clone();
                m.update(black_box(&msg));
                m.verify_slice(black_box(&sig)).unwrap();
            })
        }
        RAW => raw(alg, verify, msg, sig),
        RAW_AWS_LC => raw_aws_lc(alg, verify, msg, sig),
        other => panic!("unknown function {other}"),
    }
}

fn raw(alg: Algorithm, verify: bool, msg: Vec<u8>, sig: Vec<u8>) -> Box<dyn FnMut()> {
    use rsa::signature::{RandomizedSigner, Signer, Verifier};
    match (alg, verify) {
        (Algorithm::EdDSA, true) => {
            use ed25519_dalek::pkcs8::DecodePublicKey;
            let vk = ed25519_dalek::VerifyingKey::from_public_key_pem(ED25519_PUB_PEM).unwrap();
            let s = ed25519_dalek::Signature::from_slice(&sig).unwrap();
            Box::new(move || vk.verify_strict(black_box(&msg), black_box(&s)).unwrap())
        }
        (Algorithm::EdDSA, false) => {
            use ed25519_dalek::pkcs8::DecodePrivateKey;
            let sk = ed25519_dalek::SigningKey::from_pkcs8_pem(ED25519_PEM).unwrap();
            Box::new(move || {
                black_box(sk.sign(black_box(&msg)));
            })
        }
        (Algorithm::ES256, true) => {
            use p256::pkcs8::DecodePublicKey;
            let vk = p256::ecdsa::VerifyingKey::from_public_key_pem(P256_PUB_PEM).unwrap();
            let s = p256::ecdsa::Signature::from_slice(&sig).unwrap();
            Box::new(move || vk.verify(black_box(&msg), black_box(&s)).unwrap())
        }
        (Algorithm::ES256, false) => {
            use p256::pkcs8::DecodePrivateKey;
            let sk = p256::ecdsa::SigningKey::from_pkcs8_pem(P256_PEM).unwrap();
            Box::new(move || {
                let s: p256::ecdsa::Signature = sk.sign(black_box(&msg));
                black_box(s);
            })
        }
        (Algorithm::RS256, true) => {
            use rsa::pkcs8::DecodePublicKey;
            let pk = rsa::RsaPublicKey::from_public_key_pem(RSA_PUB_PEM).unwrap();
            let vk = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(pk);
            let s = rsa::pkcs1v15::Signature::try_from(sig.as_slice()).unwrap();
            Box::new(move || vk.verify(black_box(&msg), black_box(&s)).unwrap())
        }
        (Algorithm::RS256, false) => {
            use rsa::pkcs8::DecodePrivateKey;
            let k = rsa::RsaPrivateKey::from_pkcs8_pem(RSA_PEM).unwrap();
            let sk = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(k);
            let mut rng = common::rng();
            Box::new(move || {
                black_box(sk.try_sign_with_rng(&mut rng, black_box(&msg)).unwrap());
            })
        }
        (Algorithm::HS256, verify) => {
            use hmac::{KeyInit, Mac};
            Box::new(move || {
                let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(HS256_SECRET).unwrap();
                m.update(black_box(&msg));
                if verify {
                    m.verify_slice(black_box(&sig)).unwrap();
                } else {
                    black_box(m.finalize().into_bytes());
                }
            })
        }
        other => panic!("no raw operation for {other:?}"),
    }
}

fn raw_aws_lc(alg: Algorithm, verify: bool, msg: Vec<u8>, sig: Vec<u8>) -> Box<dyn FnMut()> {
    use aws_lc_rs::signature::{self, KeyPair, ParsedPublicKey};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let der = |pem: &str| -> Vec<u8> {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64_std(&body)
    };
    match (alg, verify) {
        (Algorithm::HS256, verify) => {
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, HS256_SECRET);
            Box::new(move || {
                if verify {
                    aws_lc_rs::hmac::verify(&key, black_box(&msg), black_box(&sig)).unwrap();
                } else {
                    black_box(aws_lc_rs::hmac::sign(&key, black_box(&msg)));
                }
            })
        }
        (_, true) => {
            let (a, pem): (&'static dyn signature::VerificationAlgorithm, _) = match alg {
                Algorithm::EdDSA => (&signature::ED25519, ED25519_PUB_PEM),
                Algorithm::ES256 => (&signature::ECDSA_P256_SHA256_FIXED, P256_PUB_PEM),
                _ => (&signature::RSA_PKCS1_2048_8192_SHA256, RSA_PUB_PEM),
            };
            let pk = ParsedPublicKey::new(a, der(pem)).unwrap();
            Box::new(move || pk.verify_sig(black_box(&msg), black_box(&sig)).unwrap())
        }
        (Algorithm::EdDSA, false) => {
            let k =
                signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der(ED25519_PEM)).unwrap();
            Box::new(move || {
                black_box(k.sign(black_box(&msg)));
            })
        }
        (Algorithm::ES256, false) => {
            let k = signature::EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &der(P256_PEM),
            )
            .unwrap();
            let _ = k.public_key();
            Box::new(move || {
                black_box(k.sign(&rng, black_box(&msg)).unwrap());
            })
        }
        (_, false) => {
            let k = signature::RsaKeyPair::from_pkcs8(&der(RSA_PEM)).unwrap();
            let mut out = vec![0; k.public_modulus_len()];
            Box::new(move || {
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    black_box(&msg),
                    &mut out,
                )
                .unwrap();
                black_box(&out);
            })
        }
    }
}

/// Standard base64 with padding (PEM bodies).
fn base64_std(s: &str) -> Vec<u8> {
    let url: String = s
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    handoff_core::b64::decode(&url).unwrap()
}

/// Runs one operation (the child process, under valgrind).
fn child(id: &str, iters: u64) {
    let (group, function) = id.rsplit_once('/').unwrap();
    let mut op = build(group, function);
    // Warm-up outside the measured loop (lazy initialisation, first-touch pages).
    op();
    icount_measured(&mut *op, iters);
}

/// The `summary:` or `totals:` line of a callgrind output file.
fn total_instructions(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn main() -> ExitCode {
    if let Ok(id) = std::env::var("ICOUNT_OP") {
        let iters = std::env::var("ICOUNT_ITERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        child(&id, iters);
        return ExitCode::SUCCESS;
    }
    if std::env::args().any(|a| a == "--list") {
        for (g, f, _) in ops() {
            println!("{g}/{f}: benchmark");
        }
        return ExitCode::SUCCESS;
    }
    // `cargo test --benches` runs bench targets with `--test`-like arguments: nothing to do.
    if !std::env::args().any(|a| a == "--bench") {
        println!("icount: run with `cargo bench -p benches --bench icount`");
        return ExitCode::SUCCESS;
    }
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!(
            "icount: valgrind is not installed (apt-get install valgrind); no instruction counts measured"
        );
        return ExitCode::FAILURE;
    }
    let exe = std::env::current_exe().unwrap();
    let filter = std::env::var("ICOUNT_FILTER").unwrap_or_default();
    let dir = benches::report::criterion_dir(None);
    std::fs::create_dir_all(&dir).unwrap();
    let out_file = dir.join(format!("callgrind.icount.{}", std::process::id()));
    let mut results = Vec::new();
    for (group, function, iters) in ops() {
        let id = format!("{group}/{function}");
        if !id.contains(&filter) {
            continue;
        }
        let status = Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", out_file.display()))
            .arg("--toggle-collect=*icount_measured*")
            .arg(&exe)
            .env("ICOUNT_OP", &id)
            .env("ICOUNT_ITERS", iters.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        let total = total_instructions(&out_file);
        let _ = std::fs::remove_file(&out_file);
        match (status.success(), total) {
            (true, Some(t)) if t > 0 => {
                let per = t as f64 / iters as f64;
                println!("{id:<40} {per:>14.0} instructions/iter");
                results.push(IcountEntry {
                    group,
                    function: function.to_owned(),
                    instructions: per,
                });
            }
            _ => {
                eprintln!("icount: {id} failed under valgrind ({status})");
                return ExitCode::FAILURE;
            }
        }
    }
    let path = dir.join(ICOUNT_FILE);
    match benches::report::merge_icount(&path, results) {
        Ok(n) => {
            println!("icount: {n} results in {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("icount: {e}");
            ExitCode::FAILURE
        }
    }
}
