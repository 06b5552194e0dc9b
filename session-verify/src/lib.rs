#![doc = include_str!("../README.md")]
//!
//! `handoff-verify`: verifier policy, JWKS cache, session and service tokens. The HMAC device
//! handshake lives in `handoff-device`.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod error;
mod host;
pub mod jwks_cache;
mod service;
mod session;
mod verifier;

pub use error::VerifyError;
pub use host::{
    DEFAULT_HOST_ALGORITHM, HOST_ALGORITHMS, HostToken, HostTokenVerifier, HostVerifierBuilder,
};
pub use jwks_cache::{
    CacheSnapshot, FetchId, FetchOutcome, FetchReport, FetchRequest, FetchResponse, JwksCache,
    JwksCacheConfig, KeyRef, Lookup, Rejection,
};
pub use service::{
    DEFAULT_SERVICE_TTL_SECS, MAX_SCOPES, MAX_SERVICE_TTL_SECS, ServiceClaims, ServiceToken,
    ServiceTokenVerifier, mint_service_token,
};
pub use session::{
    AccessClaims, AccessToken, AccessTokenVerifier, DEFAULT_ACCESS_TTL_SECS, JTI_BYTES,
    MAX_ACCESS_TTL_SECS, MintedToken, Presented, derive_hs256_signing_key,
    derive_hs256_verifying_key, mint_access_token,
};
pub use verifier::{
    ACCESS_TOKEN_TYP, Confirmation, DPOP_PROOF_TYP, HOST_TOKEN_TYP, NoCustomClaims, Outcome,
    SERVICE_TOKEN_TYP, TokenKind, VerifiedToken, Verifier, VerifierBuilder,
};
