//! The fuzzed entry points: one function per target, each a call into a
//! `#[doc(hidden)] fuzz_*` entry point of the crate it exercises.
//!
//! Shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) and the stable smoke run
//! (`fuzz/smoke`), so that both exercise exactly the same code.

use std::sync::LazyLock;

use handoff_core::{Algorithm, SigningKey, VerifyingKey};

/// The HS256 secret of the JWS target (fixed, fuzzing only).
pub const HS256_SECRET: [u8; 32] = *b"fuzz-only-hs256-secret-32-bytes!";

/// Fixed fuzzing-only private keys, PKCS#8 PEM: Ed25519, P-256, RSA-2048.
pub const PRIVATE_PEMS: [(Algorithm, &str); 3] = [
    (Algorithm::EdDSA, include_str!("../keys/ed25519.pem")),
    (Algorithm::ES256, include_str!("../keys/p256.pem")),
    (Algorithm::RS256, include_str!("../keys/rsa2048.pem")),
];

/// The signing keys matching [`JWS_KEYS`] (used to write seed tokens).
#[must_use]
pub fn signing_keys() -> Vec<SigningKey> {
    let mut keys: Vec<SigningKey> = PRIVATE_PEMS
        .iter()
        .filter_map(|(alg, pem)| SigningKey::from_pem(pem, *alg).ok())
        .collect();
    keys.extend(SigningKey::hs256(HS256_SECRET.to_vec()).ok());
    keys
}

/// One verifying key per algorithm: the JWS target tries each, so a token of any
/// algorithm reaches the signature check with a key made for it.
pub static JWS_KEYS: LazyLock<Vec<VerifyingKey>> = LazyLock::new(|| {
    signing_keys()
        .iter()
        .map(SigningKey::verifying_key)
        .collect()
});

/// Compact JWS decoding and signature verification.
pub fn jws_decode_verify(data: &[u8]) {
    handoff_core::jws::fuzz_decode(data);
    jws_decode_oracle(data);
    for key in JWS_KEYS.iter() {
        handoff_core::jws::fuzz_decode_and_verify(data, key);
    }
}

/// Holds what `jws::decode` returns to the segments as `str::split` and the constant-time
/// `base64ct` see them. Tokens decode one after another on this thread, so a pooled payload
/// buffer that kept bytes from an earlier token would fail here (the oracle lives in the
/// harness: the library's entry points never panic).
fn jws_decode_oracle(data: &[u8]) {
    use handoff_core::{Error, b64, jws};
    let Ok(s) = core::str::from_utf8(data) else {
        return;
    };
    let reference: Vec<&str> = s.split('.').collect();
    match jws::decode(s, &jws::DecodeOptions::default()) {
        Ok(c) => {
            let [h, p, sig] = reference.as_slice() else {
                panic!("decoded a token of {} segments", reference.len());
            };
            assert_eq!(c.signing_input(), &s[..h.len() + 1 + p.len()]);
            assert_eq!(b64::decode(p).ok().as_deref(), Some(c.payload()));
            assert_eq!(b64::decode(sig).ok().as_deref(), Some(c.signature()));
        }
        Err(Error::Malformed(m)) if m.contains("exactly three") => {
            assert_ne!(reference.len(), 3, "three segments refused as {m}");
        }
        Err(_) => {}
    }
}

/// JWKS document parsing.
pub fn jwks_parse(data: &[u8]) {
    handoff_core::jwks::fuzz_parse(data);
}

/// DPoP proof verification.
pub fn dpop_verify(data: &[u8]) {
    handoff_dpop::fuzz_verify(data);
}

/// Device handshake message (and device session token) parsing.
pub fn device_handshake_parse(data: &[u8]) {
    handoff_device::fuzz_parse_handshake(data);
}

/// Refresh token parsing.
pub fn refresh_token_parse(data: &[u8]) {
    handoff_refresh::fuzz_parse(data);
}

/// The sealing key of the pending-login target (fixed, fuzzing only).
pub static SEALING_KEY: LazyLock<handoff_login::SealingKey> =
    LazyLock::new(|| handoff_login::SealingKey::from_bytes(*b"fuzz-only-login-sealing-key-32b!"));

/// OpenID Connect discovery / RFC 8414 metadata parsing.
pub fn login_metadata_parse(data: &[u8]) {
    handoff_login::metadata::fuzz_parse(data);
}

/// Token endpoint response parsing (first byte: the HTTP status).
pub fn login_token_response_parse(data: &[u8]) {
    handoff_login::flow::fuzz_token_response(data);
}

/// Authorization callback parameters (query or URL), checked against a pending login.
pub fn login_callback_parse(data: &[u8]) {
    handoff_login::flow::fuzz_callback(data);
}

/// The redirect allow-list check and the redirects built from an accepted target.
pub fn login_redirect_check(data: &[u8]) {
    handoff_login::redirect::fuzz_check(data);
}

/// The pending-login record: sealed cookie (first byte even) or stored JSON (odd).
pub fn login_pending_open(data: &[u8]) {
    handoff_login::flow::fuzz_pending_login(data, &SEALING_KEY);
}

/// Encrypted PKCS#8 reading (first byte even: PEM; odd: decrypted DER, encrypted here).
pub fn encrypted_key_read(data: &[u8]) {
    handoff_core::encrypted::fuzz_decrypt(data);
}

/// Device audit-log file reading.
pub fn audit_log_read(data: &[u8]) {
    handoff_device::audit_log::fuzz_read(data);
}

/// Stored rows read back (refresh families, refresh tokens, devices with their keys):
/// first byte the table, the rest its columns.
pub fn stores_row_decode(data: &[u8]) {
    handoff_stores::fuzz_decode_rows(data);
}

/// The edge's verification state for the `edge_auth_headers` target: host, access and
/// service tokens signed by the Ed25519 fuzz key.
pub static EDGE_AUTH: LazyLock<Option<handoff_edge::fuzz::FuzzAuth>> = LazyLock::new(|| {
    let key = SigningKey::from_pem(PRIVATE_PEMS[0].1, Algorithm::EdDSA).ok()?;
    handoff_edge::fuzz::FuzzAuth::new(&key.verifying_key())
});

/// The edge's request headers: `Authorization` and `DPoP`, through its verifiers, then
/// the refusal's rendering.
pub fn edge_auth_headers(data: &[u8]) {
    if let Some(state) = EDGE_AUTH.as_ref() {
        let _ = handoff_edge::fuzz::fuzz_auth_headers(data, state);
    }
}

/// The edge's token endpoint request: `Content-Type`, form body and `DPoP` headers.
pub fn edge_token_form(data: &[u8]) {
    let _ = handoff_edge::fuzz::fuzz_token_request(data);
}

/// A key-set HTTP response (status line, headers, body) read by the edge's JWKS driver
/// and reported to its cache.
pub fn edge_jwks_response(data: &[u8]) {
    let _ = handoff_edge::fuzz::fuzz_jwks_response(data);
}

/// A fuzz entry point: takes any bytes, must never panic.
pub type Entry = fn(&[u8]);

/// Every target: its name (also its corpus directory) and entry point.
pub const TARGETS: [(&str, Entry); 16] = [
    ("jws_decode_verify", jws_decode_verify),
    ("jwks_parse", jwks_parse),
    ("dpop_verify", dpop_verify),
    ("device_handshake_parse", device_handshake_parse),
    ("refresh_token_parse", refresh_token_parse),
    ("login_metadata_parse", login_metadata_parse),
    ("login_token_response_parse", login_token_response_parse),
    ("login_callback_parse", login_callback_parse),
    ("login_redirect_check", login_redirect_check),
    ("login_pending_open", login_pending_open),
    ("encrypted_key_read", encrypted_key_read),
    ("audit_log_read", audit_log_read),
    ("stores_row_decode", stores_row_decode),
    ("edge_auth_headers", edge_auth_headers),
    ("edge_token_form", edge_token_form),
    ("edge_jwks_response", edge_jwks_response),
];
