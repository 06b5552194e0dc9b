//! The one public error type of `host-issuer`.

/// Everything that can go wrong in `host-issuer`.
///
/// Every variant says what was wrong and what to do, except signature failures coming
/// from `identity-core`, which stay opaque.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key, JWS or claims operation of `identity-core` failed.
    #[error(transparent)]
    Core(#[from] handoff_core::Error),
    /// The algorithm cannot sign host tokens.
    #[error(
        "{0} cannot sign host tokens: use EdDSA (the default), ES256 or RS256 (asymmetric keys only, so verifiers need no secret)"
    )]
    UnsupportedAlgorithm(handoff_core::Algorithm),
    /// An input (claim, ttl, kid, option) is out of bounds.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// Which input.
        field: &'static str,
        /// What is wrong with it and what to do.
        reason: String,
    },
    /// A key file (keyring JSON, single-key JSON or PEM) could not be read.
    #[error("key file: {0}")]
    KeyFile(String),
    /// The keyring refused an operation (nothing staged, too many keys, ...).
    #[error("keyring: {0}")]
    Keyring(String),
    /// The JWKS / dev token server could not start or was misconfigured (feature `cli`).
    #[error("server: {0}")]
    Server(String),
}

impl Error {
    pub(crate) fn input(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            reason: reason.into(),
        }
    }
}

/// Truncates untrusted text kept in an error, so errors stay small.
pub(crate) fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}
