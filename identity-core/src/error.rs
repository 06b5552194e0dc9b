//! The one public error type of `identity-core`.

use crate::Algorithm;
use crate::replay::ReplayRefused;

/// Everything that can go wrong in `identity-core`.
///
/// Format and policy errors say exactly what was wrong and what to do. A failed signature
/// check is deliberately opaque ([`Error::InvalidSignature`]): the detailed cause stays
/// private so that it cannot serve as an oracle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token is longer than the size cap; nothing was decoded.
    #[error(
        "token is {len} bytes, over the {max}-byte cap; refuse it (raise the cap only if your tokens are legitimately larger)"
    )]
    TokenTooLarge {
        /// Length of the input.
        len: usize,
        /// The cap in force.
        max: usize,
    },
    /// The compact serialization is malformed (segments, characters).
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// A segment is not unpadded base64url.
    #[error(
        "the {0} segment is not unpadded base64url (RFC 7515 section 2): padding, '+', '/' and whitespace are refused"
    )]
    Base64(&'static str),
    /// A segment is not the JSON expected.
    #[error("the {part} is not valid JSON of the expected shape: {detail}")]
    Json {
        /// Which part: "header", "claims", "jwk", "jwks".
        part: &'static str,
        /// serde_json's message (line, column, what was expected).
        detail: String,
    },
    /// A JSON object member appears twice.
    #[error("the {part} has the member {name:?} twice; duplicate members are refused")]
    DuplicateMember {
        /// Which part.
        part: &'static str,
        /// The member name (truncated to 64 characters).
        name: String,
    },
    /// The header names an algorithm this library does not implement (including `none`).
    #[error(
        "unsupported algorithm {0:?} in the header: only EdDSA, ES256, RS256, PS256 and HS256 are implemented, and never none"
    )]
    UnsupportedAlgorithm(String),
    /// The header algorithm is not in the caller's allow-list.
    #[error("algorithm {0} is not allowed by this policy")]
    AlgorithmNotAllowed(Algorithm),
    /// The header algorithm differs from the algorithm the key was made for.
    #[error(
        "the header asks for {header} but the key is an {key} key; the algorithm comes from the key, never from the token"
    )]
    AlgorithmMismatch {
        /// The header `alg`.
        header: Algorithm,
        /// The key's algorithm.
        key: Algorithm,
    },
    /// `crit` names a parameter this verifier does not understand, or is malformed.
    #[error(
        "critical header parameter problem: {0}; the token cannot be processed (RFC 7515 section 4.1.11)"
    )]
    Critical(String),
    /// The signature did not verify. Deliberately opaque.
    #[error("invalid signature")]
    InvalidSignature,
    /// A key was refused on import or generation.
    #[error("key rejected: {0}")]
    KeyRejected(String),
    /// No key in the set matches the token's `kid` and algorithm.
    #[error(
        "no key for kid {kid:?} and algorithm {alg}: the key set may be stale (refetch it) or the token is not from this issuer"
    )]
    KeyNotFound {
        /// The `kid` of the token (truncated), if any.
        kid: Option<String>,
        /// The token's algorithm.
        alg: Algorithm,
    },
    /// Several keys match; refusing rather than guessing.
    #[error("ambiguous key: {0}")]
    AmbiguousKey(&'static str),
    /// A required claim is absent.
    #[error("required claim {0:?} is missing")]
    MissingClaim(&'static str),
    /// A claim has the wrong type or an unacceptable value.
    #[error("claim {claim:?} is invalid: {reason}")]
    InvalidClaim {
        /// The claim name.
        claim: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `exp` has passed (beyond leeway): refused when `now >= exp + leeway` (RFC 7519
    /// section 4.1.4, the current time must be before `exp`).
    #[error("token expired at {exp} (now {now}, leeway {leeway} s); get a new token")]
    Expired {
        /// The token's `exp`.
        exp: u64,
        /// The verifier's clock.
        now: u64,
        /// The leeway in force.
        leeway: u64,
    },
    /// `nbf` lies in the future (beyond leeway).
    #[error("token not valid before {nbf} (now {now}); check the issuer's clock")]
    NotYetValid {
        /// The token's `nbf`.
        nbf: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// `iat` lies in the future (beyond leeway).
    #[error("token issued in the future at {iat} (now {now}); check the issuer's clock")]
    IssuedInFuture {
        /// The token's `iat`.
        iat: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// The issuer is not one the policy accepts.
    #[error("issuer {0:?} is not accepted by this policy")]
    WrongIssuer(String),
    /// No audience of the token is accepted by the policy.
    #[error("the token's audience does not include any audience accepted by this policy")]
    WrongAudience,
    /// The header `typ` is absent or names another token kind.
    #[error(
        "token type {found:?} where {expected:?} is required: this token is of another kind (RFC 8725 section 3.11)"
    )]
    WrongType {
        /// The required type.
        expected: String,
        /// What the header carries (truncated), if anything.
        found: Option<String>,
    },
    /// The policy itself is incomplete or out of bounds.
    #[error("invalid policy: {0}")]
    Policy(&'static str),
    /// A one-time value could not be confirmed.
    #[error(transparent)]
    Replay(#[from] ReplayRefused),
}

/// Truncates untrusted text kept in an error, so errors stay small.
pub(crate) fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}
