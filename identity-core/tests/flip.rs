//! Property: changing any single byte of a valid token makes it refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::OnceLock;

use common::*;
use handoff_core::{Algorithm, VerifyingKey, verify};
use proptest::prelude::*;

fn tokens() -> &'static Vec<(String, VerifyingKey)> {
    static T: OnceLock<Vec<(String, VerifyingKey)>> = OnceLock::new();
    T.get_or_init(|| {
        Algorithm::ALL
            .into_iter()
            .map(|alg| {
                let k = key(alg).with_kid("flip").unwrap();
                (sign_json(&k, Some(TYP), &claims()), k.verifying_key())
            })
            .collect()
    })
}

fn accepted(bytes: &[u8], key: &VerifyingKey) -> bool {
    match core::str::from_utf8(bytes) {
        Ok(s) => verify::<serde_json::Value, _>(s, key, &policy(), now()).is_ok(),
        Err(_) => false,
    }
}

#[test]
fn the_unmodified_tokens_verify() {
    for (token, key) in tokens() {
        assert!(accepted(token.as_bytes(), key), "{token}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn flipping_any_byte_is_refused(which in 0usize..5, pos in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let (token, key) = &tokens()[which];
        let mut bytes = token.clone().into_bytes();
        let i = pos.index(bytes.len());
        bytes[i] ^= mask;
        prop_assert!(!accepted(&bytes, key), "alg {} byte {} ^ {:#x}", key.algorithm(), i, mask);
    }

    #[test]
    fn truncating_or_extending_is_refused(which in 0usize..5, cut in any::<prop::sample::Index>(), extra in "[A-Za-z0-9_.=-]{1,4}") {
        let (token, key) = &tokens()[which];
        let n = cut.index(token.len());
        prop_assert!(!accepted(&token.as_bytes()[..n], key));
        let longer = format!("{}{}", token, extra);
        prop_assert!(!accepted(longer.as_bytes(), key));
    }
}

/// Exhaustively, for the cheapest algorithm: every position, every single-bit flip.
#[test]
fn every_single_bit_flip_is_refused_for_hs256() {
    for (token, key) in tokens()
        .iter()
        .filter(|(_, k)| k.algorithm() == Algorithm::HS256)
    {
        for i in 0..token.len() {
            for bit in 0..8 {
                let mut bytes = token.clone().into_bytes();
                bytes[i] ^= 1 << bit;
                assert!(
                    !accepted(&bytes, key),
                    "{} byte {i} bit {bit}",
                    key.algorithm()
                );
            }
        }
    }
}
