//! The one public error type of `dpop`, and its RFC 9449 wire forms.

use core::fmt;

use handoff_core::Algorithm;
use handoff_core::replay::ReplayRefused;

/// The OAuth error code an [`Error`] maps to on the wire (RFC 9449 sections 7.1, 8, 12.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `invalid_dpop_proof`: the proof is missing, malformed, stale, replayed or does not
    /// match the request.
    InvalidDpopProof,
    /// `use_dpop_nonce`: the server requires a (fresh) nonce; send the `DPoP-Nonce` value.
    UseDpopNonce,
    /// `invalid_token`: the access token is not bound to the proof's key.
    InvalidToken,
    /// `temporarily_unavailable`: the replay store could not answer; the request was
    /// refused to stay safe and may be retried.
    TemporarilyUnavailable,
    /// `server_error`: the server's own configuration or request URI is wrong.
    ServerError,
}

impl ErrorCode {
    /// The code as it appears in `error="..."` or a JSON `error` member.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::InvalidToken => "invalid_token",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which kind of endpoint answers: the status code differs (RFC 9449 sections 5 and 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Endpoint {
    /// The authorization server's token endpoint: errors are `400` with a JSON body.
    Token,
    /// A resource server: errors are `401` with a `WWW-Authenticate: DPoP ...` challenge.
    Resource,
}

/// Why a proof was refused, or why a key or proof could not be made.
///
/// Format and policy problems say exactly what was wrong; a failed signature is opaque
/// ([`Error::InvalidSignature`]). Every variant maps to an [`ErrorCode`]; use
/// [`crate::DpopVerifier::wire_error`] for the ready HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request carries no `DPoP` header.
    #[error("the request has no DPoP header; send exactly one DPoP proof")]
    MissingProof,
    /// The request carries several `DPoP` header values.
    #[error("the request has {0} DPoP header values; send exactly one (RFC 9449 section 4.3)")]
    MultipleProofs(usize),
    /// The proof is larger than the policy's cap; nothing was parsed.
    #[error("the DPoP proof is {len} bytes, over the {max}-byte cap")]
    ProofTooLarge {
        /// Length of the header value.
        len: usize,
        /// The cap in force.
        max: usize,
    },
    /// The proof is not a well-formed compact JWS, or its header is malformed
    /// (including an embedded `jwk` with private members or an unsupported `crit`).
    #[error("malformed DPoP proof: {0}")]
    Malformed(handoff_core::Error),
    /// The header `typ` is not `dpop+jwt`.
    #[error("the proof's typ is {0:?}; a DPoP proof must have typ \"dpop+jwt\"")]
    WrongType(Option<String>),
    /// The header `alg` is not in the verifier's allow-list (or is `none` or symmetric).
    #[error("algorithm {alg:?} is not accepted for DPoP proofs; use one of: {allowed}")]
    AlgorithmNotAllowed {
        /// The header `alg` (truncated).
        alg: String,
        /// The accepted algorithms, space-separated.
        allowed: String,
    },
    /// The header has no `jwk`.
    #[error("the proof header has no jwk; embed the public key that signed the proof")]
    MissingJwk,
    /// The embedded `jwk` is not an acceptable public key for the header's `alg`.
    #[error("the embedded jwk is refused: {0}")]
    InvalidJwk(handoff_core::Error),
    /// The claims are not a JSON object of the expected types.
    #[error("the proof claims are invalid: {0}")]
    InvalidClaims(String),
    /// A required claim is absent.
    #[error("the proof has no {0:?} claim")]
    MissingClaim(&'static str),
    /// The `jti` is longer than the policy allows.
    #[error("the proof's jti is {len} bytes, over the {max}-byte cap")]
    JtiTooLong {
        /// Length of the `jti`.
        len: usize,
        /// The cap in force.
        max: usize,
    },
    /// `htm` differs from the request method (compared case-sensitively).
    #[error("the proof's htm {found:?} is not the request method {expected:?}")]
    MethodMismatch {
        /// The request method.
        expected: String,
        /// The proof's `htm` (truncated).
        found: String,
    },
    /// `htu` is not a URI that can be normalised.
    #[error("the proof's htu is not an absolute http(s) URI: {0}")]
    InvalidHtu(&'static str),
    /// `htu` differs from the request URI after normalisation.
    #[error(
        "the proof's htu {found:?} is not the request URI {expected:?} (compared without query and fragment, after RFC 3986 normalisation)"
    )]
    UriMismatch {
        /// The normalised request URI.
        expected: String,
        /// The normalised `htu` (truncated).
        found: String,
    },
    /// `iat` is older than the acceptance window.
    #[error(
        "the proof was issued at {iat}, more than {window} s before now ({now}); make a fresh proof"
    )]
    IssuedTooLongAgo {
        /// The proof's `iat`.
        iat: u64,
        /// The verifier's clock.
        now: u64,
        /// The past window in force.
        window: u64,
    },
    /// `iat` lies too far in the future.
    #[error(
        "the proof was issued at {iat}, more than {skew} s after now ({now}); check the client's clock"
    )]
    IssuedInFuture {
        /// The proof's `iat`.
        iat: u64,
        /// The verifier's clock.
        now: u64,
        /// The future skew in force.
        skew: u64,
    },
    /// The signature does not verify with the embedded key. Deliberately opaque.
    #[error("invalid signature")]
    InvalidSignature,
    /// An access token was presented but the proof has no `ath`.
    #[error(
        "an access token was presented but the proof has no ath claim; add ath = base64url(sha256(token))"
    )]
    MissingAth,
    /// `ath` is not the hash of the presented access token.
    #[error("the proof's ath is not the hash of the presented access token")]
    AthMismatch,
    /// The server requires a nonce and the proof has none.
    #[error("the server requires a DPoP nonce; retry with the DPoP-Nonce value sent")]
    NonceMissing {
        /// The nonce to send in `DPoP-Nonce`.
        fresh: String,
    },
    /// The proof's nonce was issued by this server but has expired.
    #[error("the DPoP nonce has expired; retry with the DPoP-Nonce value sent")]
    NonceStale {
        /// The nonce to send in `DPoP-Nonce`.
        fresh: String,
    },
    /// The proof's nonce was not issued by this server.
    #[error("the DPoP nonce was not issued by this server; retry with the DPoP-Nonce value sent")]
    NonceInvalid {
        /// The nonce to send in `DPoP-Nonce`.
        fresh: String,
    },
    /// The proof's key is not the one the access token is bound to (`cnf.jkt`).
    #[error("the access token is bound to another key than the one that signed the DPoP proof")]
    JktMismatch,
    /// The proof's `jti` was already used within its acceptance window.
    #[error("the DPoP proof was already used; make a fresh proof for every request")]
    Replayed,
    /// The replay log is full; the proof was refused to stay safe.
    #[error("the replay log is at capacity; the proof was refused to stay safe, retry later")]
    ReplayAtCapacity,
    /// The replay store could not answer; the proof was refused to stay safe.
    #[error("the replay store is unavailable ({0}); the proof was refused to stay safe")]
    ReplayStore(String),
    /// The request URI the server built is not an absolute URI (a server bug).
    #[error(
        "the request URI given to the verifier is invalid: {0}; build it from the configured external origin and the path"
    )]
    InvalidRequestUri(&'static str),
    /// The verifier's policy or the client's settings are out of bounds.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// A key could not be generated, imported or used for signing.
    #[error("key error: {0}")]
    Key(handoff_core::Error),
}

impl From<ReplayRefused> for Error {
    fn from(e: ReplayRefused) -> Self {
        match e {
            ReplayRefused::Replayed => Self::Replayed,
            ReplayRefused::AtCapacity => Self::ReplayAtCapacity,
            ReplayRefused::Store(s) => Self::ReplayStore(s.0.chars().take(64).collect()),
            _ => Self::ReplayStore("unknown replay refusal".into()),
        }
    }
}

impl Error {
    /// The OAuth error code to send.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NonceMissing { .. } | Self::NonceStale { .. } | Self::NonceInvalid { .. } => {
                ErrorCode::UseDpopNonce
            }
            Self::JktMismatch => ErrorCode::InvalidToken,
            Self::ReplayAtCapacity | Self::ReplayStore(_) => ErrorCode::TemporarilyUnavailable,
            Self::InvalidRequestUri(_) | Self::Config(_) | Self::Key(_) => ErrorCode::ServerError,
            _ => ErrorCode::InvalidDpopProof,
        }
    }

    /// The HTTP status for this error at the given kind of endpoint.
    #[must_use]
    pub fn status(&self, endpoint: Endpoint) -> u16 {
        match (self.code(), endpoint) {
            (ErrorCode::TemporarilyUnavailable, _) => 503,
            (ErrorCode::ServerError, _) => 500,
            (_, Endpoint::Token) => 400,
            (_, Endpoint::Resource) => 401,
        }
    }

    /// The value to send in a `DPoP-Nonce` response header, when one must be sent.
    #[must_use]
    pub fn dpop_nonce(&self) -> Option<&str> {
        match self {
            Self::NonceMissing { fresh }
            | Self::NonceStale { fresh }
            | Self::NonceInvalid { fresh } => Some(fresh),
            _ => None,
        }
    }

    /// A `WWW-Authenticate` value for a resource server:
    /// `DPoP error="...", error_description="...", algs="ES256 EdDSA"`.
    #[must_use]
    pub fn www_authenticate(&self, algs: &[Algorithm]) -> String {
        let algs: Vec<&str> = algs.iter().map(|a| a.as_str()).collect();
        // The description is our own text, but quote-escape it anyway (RFC 9110 quoted-string).
        let desc: String = self
            .to_string()
            .chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control())
            .flat_map(|c| match c {
                '"' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        format!(
            "DPoP error=\"{}\", error_description=\"{}\", algs=\"{}\"",
            self.code(),
            desc,
            algs.join(" ")
        )
    }
}

/// A ready HTTP answer for a refused DPoP request.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// The OAuth error code.
    pub code: ErrorCode,
    /// The HTTP status.
    pub status: u16,
    /// The `WWW-Authenticate` value (always present at a resource server; at a token
    /// endpoint only for `invalid_token`, otherwise `None`).
    pub www_authenticate: Option<String>,
    /// The `DPoP-Nonce` value to send, if any. Responses carrying it should also be
    /// `Cache-Control: no-store`.
    pub dpop_nonce: Option<String>,
    /// The JSON body for a token endpoint: `{"error":"...","error_description":"..."}`.
    pub json_body: String,
}

impl WireError {
    pub(crate) fn new(err: &Error, endpoint: Endpoint, algs: &[Algorithm]) -> Self {
        let code = err.code();
        let www_authenticate = match (endpoint, code) {
            (Endpoint::Resource, _) | (Endpoint::Token, ErrorCode::InvalidToken) => {
                Some(err.www_authenticate(algs))
            }
            _ => None,
        };
        let json_body = serde_json::json!({
            "error": code.as_str(),
            "error_description": err.to_string(),
        })
        .to_string();
        Self {
            code,
            status: err.status(endpoint),
            www_authenticate,
            dpop_nonce: err.dpop_nonce().map(str::to_owned),
            json_body,
        }
    }
}
