//! Regenerates the checked-in seed corpus `fuzz/corpus/<target>/`:
//! `cargo run --manifest-path fuzz/Cargo.toml -p fuzz-entries --example write_seeds`.
//!
//! Seeds are valid inputs (tokens signed by the fuzz keys, key sets, proofs, handshake
//! messages, refresh tokens) plus a few near-misses, so that mutations start deep inside
//! each parser. The RFC 9449 proofs are copied from identity-core's test data.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use handoff_core::jws::{self, SignHeader};
use handoff_core::{Jwks, b64};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let mut rng = rand_free::Counter(1);
    let keys = fuzz_entries::signing_keys();
    let now = 1_562_262_618u64;

    // JWS: one valid token per algorithm, with and without kid/crit/typ variations.
    for k in &keys {
        let alg = k.algorithm();
        let claims = format!(
            r#"{{"iss":"https://issuer.example","sub":"user-1","aud":"api","exp":{},"iat":{now},"jti":"j-{alg}"}}"#,
            now + 3600
        );
        let t = jws::sign(
            k,
            &SignHeader {
                typ: Some("JWT"),
                kid: None,
                jwk: None,
            },
            claims.as_bytes(),
            &mut rng,
        )
        .unwrap();
        write("jws_decode_verify", &format!("valid-{alg}"), t.as_bytes());
        let t = jws::sign(
            k,
            &SignHeader {
                typ: Some("at+jwt"),
                kid: Some("k-1"),
                jwk: None,
            },
            b"{}",
            &mut rng,
        )
        .unwrap();
        write("jws_decode_verify", &format!("kid-{alg}"), t.as_bytes());
    }
    let h = |json: &str| b64::encode(json.as_bytes());
    let p = b64::encode(br#"{"sub":"x"}"#);
    for (name, header) in [
        ("none", r#"{"alg":"none"}"#),
        ("crit", r#"{"alg":"EdDSA","crit":["exp"],"exp":1}"#),
        ("dup-alg", r#"{"alg":"EdDSA","alg":"HS256"}"#),
        (
            "jku",
            r#"{"alg":"ES256","jku":"https://attacker.example/jwks"}"#,
        ),
    ] {
        write(
            "jws_decode_verify",
            name,
            format!("{}.{p}.c2ln", h(header)).as_bytes(),
        );
    }

    // JWKS: the public keys, a set with skipped members, and near-misses.
    let public = Jwks::from_keys(
        keys.iter()
            .filter(|k| k.algorithm().is_asymmetric())
            .enumerate()
            .map(|(i, k)| k.verifying_key().with_kid(format!("k-{i}")).unwrap()),
    )
    .unwrap();
    write("jwks_parse", "public", public.to_json().as_bytes());
    let private: Vec<_> = keys
        .iter()
        .filter(|k| k.algorithm().is_asymmetric())
        .map(|k| serde_json::to_value(k.to_private_jwk()).unwrap())
        .collect();
    write(
        "jwks_parse",
        "private-and-oct",
        serde_json::to_string(&serde_json::json!({"keys": [
            private[0],
            {"kty": "oct", "k": "AAAA", "kid": "sym"},
            {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "use": "enc"}
        ]}))
        .unwrap()
        .as_bytes(),
    );
    write("jwks_parse", "empty", br#"{"keys":[]}"#);
    write(
        "jwks_parse",
        "not-a-set",
        br#"{"kty":"OKP","crv":"Ed25519","x":"AA"}"#,
    );

    // DPoP: the RFC 9449 examples, plus proofs for the request fuzz_verify builds.
    let rfc: serde_json::Value = serde_json::from_str(include_str!(
        "../../../identity-core/tests/data/rfc9449-dpop.json"
    ))
    .unwrap();
    for proof in rfc["proofs"].as_array().unwrap() {
        write(
            "dpop_verify",
            proof["name"].as_str().unwrap(),
            proof["proof"].as_str().unwrap().as_bytes(),
        );
    }
    for k in keys.iter().filter(|k| k.algorithm().is_asymmetric()) {
        let jwk = k.verifying_key().to_public_jwk().unwrap();
        let claims = format!(
            r#"{{"jti":"p-{alg}","htm":"GET","htu":"https://rs.example/resource","iat":{now},"ath":"{ath}"}}"#,
            alg = k.algorithm(),
            ath = handoff_dpop::ath("token")
        );
        let t = jws::sign(
            k,
            &SignHeader {
                typ: Some("dpop+jwt"),
                kid: None,
                jwk: Some(&jwk),
            },
            claims.as_bytes(),
            &mut rng,
        )
        .unwrap();
        write(
            "dpop_verify",
            &format!("resource-{}", k.algorithm()),
            t.as_bytes(),
        );
        write(
            "dpop_verify",
            &format!("method-uri-{}", k.algorithm()),
            b"GET https://rs.example/resource?x=1#f",
        );
    }

    // Device handshake: dvh1.<device>.<key>.<ts>.<nonce>.<body hash>.<mac>.
    let nonce = b64::encode(&[7u8; 16]);
    let body = b64::encode(&[9u8; 32]);
    let mac = b64::encode(&[3u8; 32]);
    write(
        "device_handshake_parse",
        "valid-shape",
        format!("dvh1.device-1.key-1.{now}.{nonce}.{body}.{mac}").as_bytes(),
    );
    write(
        "device_handshake_parse",
        "long-ids",
        format!("dvh1.{}.k:2_x.0.{nonce}.{body}.{mac}", "d".repeat(64)).as_bytes(),
    );
    write(
        "device_handshake_parse",
        "session-token-like",
        b"dvs1.AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBB",
    );

    // Refresh tokens: rf1.<base64url of 80 bytes>.
    let payload: Vec<u8> = (0u8..80).collect();
    write(
        "refresh_token_parse",
        "valid-shape",
        format!("rf1.{}", b64::encode(&payload)).as_bytes(),
    );
    write(
        "refresh_token_parse",
        "zeros",
        format!("rf1.{}", b64::encode(&[0u8; 80])).as_bytes(),
    );
    write("refresh_token_parse", "short", b"rf1.AAAA");
    println!("seed corpus written");
}

/// A deterministic stand-in RNG: RS256 signing blinds with it, nothing else reads it.
mod rand_free {
    pub(crate) struct Counter(pub(crate) u64);
    impl rand_core::TryRng for Counter {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            Ok((self.0 >> 32) as u32)
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            Ok((u64::from(self.try_next_u32()?) << 32) | u64::from(self.try_next_u32()?))
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            for b in dst {
                *b = self.try_next_u32()? as u8;
            }
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for Counter {}
}
