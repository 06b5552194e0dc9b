//! Helpers shared by the integration tests: a system RNG, hand-made tokens, a fake clock.
#![allow(dead_code, unreachable_pub)]

use handoff_core::{SigningKey, UnixTime, b64};
use serde_json::{Value, json};

pub type Rng = rand_core::UnwrapErr<getrandom::SysRng>;

pub fn rng() -> Rng {
    rand_core::UnwrapErr(getrandom::SysRng)
}

pub const NOW: u64 = 1_700_000_000;

pub fn t(secs: u64) -> UnixTime {
    UnixTime::from_secs(secs)
}

pub fn public_jwk(key: &SigningKey) -> Value {
    serde_json::to_value(key.verifying_key().to_public_jwk().unwrap()).unwrap()
}

/// Signs `header` and `claims` (any JSON, as given) with `key`, bypassing every check of
/// the signing API, so that tests can build proofs the library would never make.
pub fn raw_token(header: &Value, claims: &Value, key: &SigningKey) -> String {
    raw_token_bytes(
        &serde_json::to_vec(header).unwrap(),
        &serde_json::to_vec(claims).unwrap(),
        key,
    )
}

pub fn raw_token_bytes(header: &[u8], claims: &[u8], key: &SigningKey) -> String {
    let mut input = b64::encode(header);
    input.push('.');
    input.push_str(&b64::encode(claims));
    let sig = key.sign(input.as_bytes(), &mut rng()).unwrap();
    input.push('.');
    input.push_str(&b64::encode(&sig));
    input
}

pub fn header_for(key: &SigningKey) -> Value {
    json!({"typ": "dpop+jwt", "alg": key.algorithm().as_str(), "jwk": public_jwk(key)})
}

pub fn claims(jti: &str, htm: &str, htu: &str, iat: u64) -> Value {
    json!({"jti": jti, "htm": htm, "htu": htu, "iat": iat})
}
