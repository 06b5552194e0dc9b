//! The one public error type of `refresh-family`.

use handoff_core::UnixTime;

use crate::records::RevocationReason;

/// Everything that can go wrong with a refresh token, a family or a store.
///
/// Token problems map to the OAuth 2.0 error `invalid_grant` (RFC 6749 section 5.2);
/// [`RefreshError::reason`] gives a stable snake-case reason for the logs (never send it
/// to the client beyond `invalid_grant`). A token whose integrity check fails is
/// deliberately opaque ([`RefreshError::InvalidToken`]).
///
/// [`RefreshError::Retry`] and [`RefreshError::StoreUnavailable`] are retryable: nothing
/// was written by the failed call, so presenting the same token again is a fresh attempt
/// (see [`crate::rotate`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// The token is not of the `rf1.` shape (length, prefix, alphabet).
    #[error("malformed refresh token: {0}; the client must log in again")]
    Malformed(&'static str),
    /// The token's integrity check (MAC over its ids, or its secret) failed. Deliberately
    /// opaque.
    #[error("invalid refresh token")]
    InvalidToken,
    /// The token names a family this store does not hold (never stored, or deleted by
    /// garbage collection after its tombstone).
    #[error("unknown refresh-token family; the client must log in again")]
    UnknownFamily,
    /// The family was revoked; nothing of it is accepted again.
    #[error("refresh-token family revoked ({reason}); the client must log in again")]
    FamilyRevoked {
        /// Why it was revoked.
        reason: RevocationReason,
    },
    /// The family's absolute lifetime is over (rotation never extends it).
    #[error(
        "refresh-token family expired at {expired_at} (absolute lifetime); the client must log in again"
    )]
    FamilyExpired {
        /// When the absolute lifetime ended.
        expired_at: UnixTime,
    },
    /// The token was not used within its idle lifetime.
    #[error("refresh token expired at {expired_at} (idle lifetime); the client must log in again")]
    TokenExpired {
        /// When the idle lifetime ended.
        expired_at: UnixTime,
    },
    /// A token that was already used (or superseded) was presented again outside grace:
    /// the whole family is revoked and its access tokens must be revoked too.
    #[error("refresh token reuse detected; the family is revoked and the client must log in again")]
    ReuseDetected,
    /// The family is bound to a DPoP key (RFC 9449 section 5) but the request carried no
    /// DPoP proof. Nothing was written; the family stays live.
    #[error(
        "refresh token is bound to a DPoP key; send the request with a DPoP proof signed by that key"
    )]
    DpopProofRequired,
    /// The family is bound to a DPoP key and the request's proof was made with another key
    /// (a stolen token presented by someone without the client's private key, or a client
    /// that lost its key). Nothing was written; the family stays live.
    #[error(
        "refresh token is bound to another DPoP key; sign the DPoP proof with the key that obtained the token"
    )]
    DpopKeyMismatch,
    /// In-grace replay of the predecessor, but the head is not the successor this engine
    /// derives (the grace mode changed since the rotation). Nothing was written.
    #[error(
        "grace replay cannot return the same successor (grace mode changed); use the successor already issued or log in again"
    )]
    GraceSuccessorUnavailable,
    /// The store returned records that contradict each other or the presented token.
    #[error("inconsistent store records: {0}; check the store adapter")]
    Inconsistent(&'static str),
    /// Every attempt met a concurrent write (compare-and-set conflict). Nothing was written
    /// by this call: retry the same request.
    #[error(
        "concurrent update of the refresh-token family after {attempts} attempts; nothing was written, retry the request"
    )]
    Retry {
        /// Attempts made.
        attempts: u32,
    },
    /// The in-memory store is at capacity; it fails closed and never evicts live rows.
    #[error("refresh-token store full ({capacity} rows); run gc or raise the capacity")]
    StoreFull {
        /// The capacity in force.
        capacity: usize,
    },
    /// The store backend failed (connection, timeout). Nothing is known to be written.
    #[error("refresh-token store unavailable: {0}; retry later")]
    StoreUnavailable(String),
    /// A policy or argument is out of bounds.
    #[error("invalid refresh-family policy or argument: {0}")]
    Policy(&'static str),
}

impl RefreshError {
    /// The OAuth 2.0 `error` code to return: `invalid_grant` for every token problem
    /// (RFC 6749 section 5.2), `temporarily_unavailable` when a retry may succeed,
    /// `server_error` for configuration and store-adapter bugs.
    #[must_use]
    pub const fn oauth_error(&self) -> &'static str {
        match self {
            Self::Malformed(_)
            | Self::InvalidToken
            | Self::UnknownFamily
            | Self::FamilyRevoked { .. }
            | Self::FamilyExpired { .. }
            | Self::TokenExpired { .. }
            | Self::ReuseDetected
            | Self::DpopProofRequired
            | Self::DpopKeyMismatch
            | Self::GraceSuccessorUnavailable => "invalid_grant",
            Self::Retry { .. } | Self::StoreUnavailable(_) | Self::StoreFull { .. } => {
                "temporarily_unavailable"
            }
            Self::Inconsistent(_) | Self::Policy(_) => "server_error",
        }
    }

    /// Whether the same request may succeed if sent again (nothing was written).
    #[must_use]
    pub const fn is_retryable(&self) -> bool {
        matches!(self, Self::Retry { .. } | Self::StoreUnavailable(_))
    }

    /// A stable snake-case reason for logs and metrics.
    #[must_use]
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::InvalidToken => "invalid_token",
            Self::UnknownFamily => "unknown_family",
            Self::FamilyRevoked { .. } => "family_revoked",
            Self::FamilyExpired { .. } => "family_expired",
            Self::TokenExpired { .. } => "token_expired",
            Self::ReuseDetected => "reuse_detected",
            Self::DpopProofRequired => "dpop_proof_required",
            Self::DpopKeyMismatch => "dpop_key_mismatch",
            Self::GraceSuccessorUnavailable => "grace_successor_unavailable",
            Self::Inconsistent(_) => "inconsistent_store",
            Self::Retry { .. } => "retry",
            Self::StoreFull { .. } => "store_full",
            Self::StoreUnavailable(_) => "store_unavailable",
            Self::Policy(_) => "policy",
        }
    }
}
