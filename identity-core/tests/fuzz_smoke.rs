//! Stable-toolchain smoke run of the `#[doc(hidden)]` fuzz entry points: structured seeds
//! and random mutations of them must never panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::OnceLock;

use common::*;
use handoff_core::{Algorithm, Jwks, VerifyingKey, claims, jwks, jws, keys};
use proptest::prelude::*;

struct Seeds {
    key: VerifyingKey,
    token: String,
    claims: Vec<u8>,
    jwks: Vec<u8>,
    jwk: Vec<u8>,
    pem: Vec<u8>,
}

fn seeds() -> &'static Seeds {
    static S: OnceLock<Seeds> = OnceLock::new();
    S.get_or_init(|| {
        let k = key(Algorithm::ES256).with_kid("fz").unwrap();
        let set = Jwks::from_keys([k.verifying_key()]).unwrap();
        Seeds {
            key: k.verifying_key(),
            token: sign_json(&k, Some(TYP), &claims()),
            claims: claims().to_string().into_bytes(),
            jwks: set.to_json().into_bytes(),
            jwk: serde_json::to_vec(&k.to_private_jwk()).unwrap(),
            pem: k.to_pkcs8_pem().unwrap().as_bytes().to_vec(),
        }
    })
}

fn mutate(seed: &[u8], edits: &[(usize, u8)]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for &(i, b) in edits {
        if v.is_empty() {
            break;
        }
        let i = i % v.len();
        match b % 4 {
            0 => v[i] = b,
            1 => {
                v.remove(i);
            }
            2 => v.insert(i, b),
            _ => v.truncate(i),
        }
    }
    v
}

#[test]
fn seeds_run_through_every_entry_point() {
    let s = seeds();
    jws::fuzz_decode_and_verify(s.token.as_bytes(), &s.key);
    claims::fuzz_parse_claims(&s.claims);
    jwks::fuzz_parse(&s.jwks);
    keys::fuzz_import_key(&s.jwk);
    keys::fuzz_import_key(&s.pem);
    for junk in [&b""[..], b"{", b"\xff\xfe", b"[[[[[[[[", b"{\"keys\":null}"] {
        jws::fuzz_decode_and_verify(junk, &s.key);
        claims::fuzz_parse_claims(junk);
        jwks::fuzz_parse(junk);
        keys::fuzz_import_key(junk);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mutated_inputs_never_panic(edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let s = seeds();
        jws::fuzz_decode_and_verify(&mutate(s.token.as_bytes(), &edits), &s.key);
        claims::fuzz_parse_claims(&mutate(&s.claims, &edits));
        jwks::fuzz_parse(&mutate(&s.jwks, &edits));
        keys::fuzz_import_key(&mutate(&s.jwk, &edits));
        keys::fuzz_import_key(&mutate(&s.pem, &edits));
    }

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let s = seeds();
        jws::fuzz_decode_and_verify(&data, &s.key);
        claims::fuzz_parse_claims(&data);
        jwks::fuzz_parse(&data);
        keys::fuzz_import_key(&data);
    }
}
