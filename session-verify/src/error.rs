//! The error type of the token verifiers, the JWKS cache and the token minters.

use handoff_core::UnixTime;
use handoff_core::replay::ReplayRefused;

use crate::verifier::TokenKind;

/// Everything that can go wrong while verifying or minting the tokens of this crate
/// (the device handshake, in `handoff-device`, has its own `DeviceError`).
///
/// Format and policy problems say exactly what was wrong and what to do; a failed
/// signature stays the opaque [`handoff_core::Error::InvalidSignature`], and a DPoP key
/// mismatch says nothing about which key was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token failed a check of `identity-core` (format, signature, claims, policy).
    #[error(transparent)]
    Token(#[from] handoff_core::Error),
    /// The token carries a claim that belongs to another token kind.
    #[error(
        "claim {claim:?} belongs to another token kind: a {kind} token never carries it (RFC 8725 section 3.12)"
    )]
    ForeignClaim {
        /// The profile that refused the token.
        kind: TokenKind,
        /// The claim that must not be there.
        claim: &'static str,
    },
    /// A DPoP-bound token (one with `cnf.jkt`) was presented as a bearer token.
    #[error(
        "the token is DPoP-bound (cnf.jkt) but was presented as a bearer token: present it with the Authorization DPoP scheme and a proof (RFC 9449 section 7.2)"
    )]
    BoundTokenAsBearer,
    /// A token that is not DPoP-bound was presented with a DPoP proof.
    #[error(
        "the token is not DPoP-bound (no cnf.jkt) but was presented with a DPoP proof: present it as a bearer token or mint a bound token"
    )]
    NotDpopBound,
    /// The DPoP proof's key is not the key the token is bound to. Deliberately terse.
    #[error("invalid_token: the DPoP proof key does not match the token binding")]
    KeyBindingMismatch,
    /// The token carries none of the scopes the verifier accepts.
    #[error("the token carries none of the scopes this endpoint accepts")]
    ScopeNotAllowed,
    /// The token's `kid` is unknown and the key set was fetched too recently to look again.
    #[error(
        "unknown key id: not in the issuer's key set, which was fetched too recently to fetch again (retry after {retry_after})"
    )]
    UnknownKidRateLimited {
        /// When an unknown `kid` may trigger a fetch again.
        retry_after: UnixTime,
    },
    /// The issuer's key set could not be obtained and no usable copy is held.
    #[error(
        "the issuer's key set is unavailable (fetch failed or expired beyond stale-if-error); retry later"
    )]
    KeySetUnavailable {
        /// When the cache will try to fetch again, if known.
        retry_after: Option<UnixTime>,
    },
    /// The policy or configuration is incomplete or out of bounds.
    #[error("invalid policy: {0}")]
    Policy(&'static str),
    /// A one-time token (`jti`) could not be confirmed against the replay log.
    #[error(transparent)]
    Replay(#[from] ReplayRefused),
}
