//! Shared helpers for the integration tests: a system RNG, fixed keys, a fake clock.
#![allow(dead_code, unreachable_pub)]

use handoff_core::jws::{self, SignHeader};
use handoff_core::keys::parse_jwk;
use handoff_core::{Algorithm, SigningKey, UnixTime, Validation};
use serde_json::{Value, json};

pub const NOW: u64 = 1_700_000_000;
pub const ISS: &str = "https://issuer.example";
pub const AUD: &str = "https://api.example";
pub const TYP: &str = "at+jwt";

pub fn now() -> UnixTime {
    UnixTime::from_secs(NOW)
}

pub fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

pub fn vectors() -> Value {
    serde_json::from_str(include_str!("../data/rfc-jose.json")).unwrap()
}

/// The RFC 7515 A.2 RSA-2048 private JWK (RSA generation is slow in debug builds).
pub fn rsa_jwk_json() -> Value {
    vectors()["jws"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "rfc7515-a2-rs256")
        .unwrap()["key"]
        .clone()
}

/// A key for `alg`: generated, except RSA, which uses the RFC 7515 A.2 key.
pub fn key(alg: Algorithm) -> SigningKey {
    match alg {
        Algorithm::RS256 | Algorithm::PS256 => {
            let mut j = rsa_jwk_json();
            j["alg"] = json!(alg.as_str());
            SigningKey::from_jwk(&parse_jwk(j.to_string().as_bytes()).unwrap()).unwrap()
        }
        other => SigningKey::generate(other, &mut rng()).unwrap(),
    }
}

pub fn claims() -> Value {
    json!({
        "iss": ISS,
        "aud": AUD,
        "sub": "user-1",
        "iat": NOW - 10,
        "exp": NOW + 300,
        "jti": "jti-1",
        "scope": "read",
    })
}

pub fn sign_json(key: &SigningKey, typ: Option<&str>, payload: &Value) -> String {
    sign_bytes(key, typ, payload.to_string().as_bytes())
}

pub fn sign_bytes(key: &SigningKey, typ: Option<&str>, payload: &[u8]) -> String {
    jws::sign(
        key,
        &SignHeader {
            typ,
            ..SignHeader::default()
        },
        payload,
        &mut rng(),
    )
    .unwrap()
}

/// Builds a token from a raw header JSON text, a payload and an HMAC secret, so tests can
/// forge headers a signer would never write.
pub fn hs256_raw(header: &str, payload: &[u8], secret: &[u8]) -> String {
    use handoff_core::b64;
    use handoff_core::keys::HmacSecret;
    let input = format!(
        "{}.{}",
        b64::encode(header.as_bytes()),
        b64::encode(payload)
    );
    let tag = HmacSecret::new(secret.to_vec())
        .unwrap()
        .mac(input.as_bytes());
    format!("{input}.{}", b64::encode(&tag))
}

/// Signs an arbitrary header (as JSON text) and payload with `key`, bypassing the
/// library's header writer.
pub fn sign_raw(key: &SigningKey, header: &str, payload: &[u8]) -> String {
    use handoff_core::b64;
    let input = format!(
        "{}.{}",
        b64::encode(header.as_bytes()),
        b64::encode(payload)
    );
    let sig = key.sign(input.as_bytes(), &mut rng()).unwrap();
    format!("{input}.{}", b64::encode(&sig))
}

pub fn policy() -> Validation {
    Validation::builder()
        .issuer(ISS)
        .audience(AUD)
        .typ(TYP)
        .build()
        .unwrap()
}
