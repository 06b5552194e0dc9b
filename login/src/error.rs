//! The one public error type of `handoff-login`.

use handoff_core::UnixTime;

/// Everything that can refuse a login step. Messages say what was wrong and what to do;
/// cryptographic failures (signatures, sealed records) stay opaque.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// A configuration value is missing or out of bounds.
    #[error("invalid login configuration: {0}")]
    Config(&'static str),
    /// The provider metadata document is malformed or unsafe.
    #[error("provider metadata refused: {0}; check the issuer's discovery document")]
    Metadata(String),
    /// A URL could not be parsed or breaks a rule.
    #[error("invalid url ({what}): {reason}")]
    Url {
        /// Which URL.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The callback request is malformed (missing, repeated or oversize parameters).
    #[error("malformed callback: {0}; restart the login")]
    Callback(&'static str),
    /// The provider answered the authorization request with an error (RFC 6749 4.1.2.1).
    #[error("the provider refused the login: {error}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    ProviderError {
        /// The `error` code.
        error: String,
        /// `error_description`, if any (clipped, printable ASCII only).
        description: Option<String>,
    },
    /// The `state` of the callback is not the one of this pending login.
    #[error("state mismatch: the callback does not belong to this login; restart the login")]
    StateMismatch,
    /// The pending login was started in another browser session.
    #[error(
        "the login was started in another browser session; restart the login from this browser"
    )]
    BrowserSessionMismatch,
    /// The pending login expired.
    #[error("the login expired at {expired_at}; restart the login")]
    Expired {
        /// When it expired.
        expired_at: UnixTime,
    },
    /// The `state` was already used: a replayed callback.
    #[error("replayed callback: this login state was already used; restart the login")]
    Replayed,
    /// The replay log or the pending-login store refused or failed (fail closed).
    #[error("login state could not be recorded: {0}; retry later")]
    ReplayStore(String),
    /// RFC 9207: the `iss` of the authorization response is not the issuer the login
    /// started with (mix-up attack), or is missing although the provider promised it.
    #[error("authorization response issuer mismatch: {0}")]
    IssuerMismatch(&'static str),
    /// The sealed pending-login record does not open (tampered, wrong key). Opaque.
    #[error("sealed login record does not open")]
    Sealed,
    /// The token endpoint answered with an OAuth error (RFC 6749 5.2).
    #[error("the token endpoint refused the code: {error}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    TokenEndpoint {
        /// The `error` code.
        error: String,
        /// `error_description`, if any.
        description: Option<String>,
    },
    /// The token response is malformed.
    #[error("malformed token response: {0}")]
    TokenResponse(String),
    /// The ID token failed verification (signature, issuer, audience, times, typ).
    #[error("id token refused: {0}")]
    IdToken(#[from] handoff_verify::VerifyError),
    /// An ID-token claim breaks the OpenID Connect rules or the configured policy.
    #[error("id token claim `{claim}` refused: {reason}")]
    IdTokenClaim {
        /// The claim.
        claim: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The redirect target is not on the allow-list or is malformed.
    #[error("redirect refused: {0}; use one of the allow-listed app origins")]
    Redirect(&'static str),
    /// The requested role is not granted to this account.
    #[error("role `{0}` is not granted to this account")]
    RoleDenied(&'static str),
    /// Minting a session token failed (claims break the rules).
    #[error("session token: {0}")]
    Session(String),
    /// A presented session token was refused (signature, `typ`, claims, binding).
    #[error("session token refused: {0}")]
    SessionRefused(handoff_verify::VerifyError),
}

impl From<handoff_core::Error> for LoginError {
    fn from(e: handoff_core::Error) -> Self {
        Self::IdToken(handoff_verify::VerifyError::from(e))
    }
}

/// Clips untrusted text for an error message: printable ASCII, at most 128 characters.
pub(crate) fn clip(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(128)
        .collect()
}
