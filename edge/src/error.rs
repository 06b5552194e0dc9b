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
}
