//! The one public error type of `handoff-edge`.

use handoff_verify::VerifyError;

use crate::jwks::FetchFailure;

/// What went wrong in the edge (configuration, key-set fetches, verification).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EdgeError {
    /// A setting is out of bounds.
    #[error("invalid edge configuration: {0}")]
    Config(&'static str),
    /// A key-set or metadata fetch failed.
    #[error("fetch failed: {0}")]
    Fetch(FetchFailure),
    /// A discovery document was unusable.
    #[error("unusable authorization-server metadata: {0}")]
    Metadata(String),
    /// A token, key-set or policy check failed.
    #[error(transparent)]
    Verify(VerifyError),
    /// A server refused a client's request (for example a device gateway refusing a
    /// handshake or heartbeat): its status, error code and description, as sent.
    #[error("refused with {status} {error}: {description}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The error code (`unauthorized`, `slow_down`, ...).
        error: String,
        /// The server's description (at most 512 characters kept).
        description: String,
        /// `Retry-After`, in seconds, when sent.
        retry_after: Option<u64>,
        /// The server's clock, when it sent it (a clock-skew refusal).
        server_time: Option<handoff_core::UnixTime>,
    },
}
