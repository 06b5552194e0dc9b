#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod client;
mod cnf;
mod error;
mod nonce;
mod server;
mod uri;

pub use client::{
    Attempt, DpopKey, JTI_BYTES, MAX_NONCE_CHARS, NonceMemory, RetryDecision,
    error_from_www_authenticate,
};
pub use cnf::{Cnf, ath, ath_matches, jkt_matches};
pub use error::{Endpoint, Error, ErrorCode, WireError};
pub use nonce::{NONCE_CHARS, NonceCheck, NonceIssuer};
pub use server::{
    DEFAULT_ALGORITHMS, DEFAULT_IAT_FUTURE_SECS, DEFAULT_IAT_PAST_SECS, DEFAULT_MAX_JTI_BYTES,
    DEFAULT_MAX_PROOF_BYTES, DPOP_TYP, DpopProof, DpopRequest, DpopVerifier, DpopVerifierBuilder,
    NoncePolicy, REPLAY_PURPOSE, fuzz_verify,
};
pub use uri::MAX_URI_BYTES;

/// Normalises a URI the way `htu` is compared (RFC 3986 sections 6.2.2 and 6.2.3): query
/// and fragment dropped, scheme and host lower-cased, default port dropped,
/// percent-encoding normalised, dot segments removed, empty path as `/`.
///
/// # Errors
/// [`Error::InvalidRequestUri`] when `uri` is not an absolute `scheme://host` URI.
pub fn normalize_htu(uri: &str) -> Result<String, Error> {
    uri::normalize_htu(uri).map_err(|e| Error::InvalidRequestUri(e.0))
}
