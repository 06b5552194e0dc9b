//! The one public error type of `stores`.

/// Everything that can go wrong when setting up or running a store adapter.
///
/// The trait implementations map these onto the errors of the trait they implement
/// ([`handoff_core::replay::ReplayStoreError`], `handoff_refresh::RefreshError`,
/// `handoff_device::DeviceError`), always failing closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoresError {
    /// A configuration value is out of bounds.
    #[error("invalid store configuration: {0}")]
    Config(&'static str),
    /// The server could not be reached or refused the connection.
    #[error("cannot connect to the store: {0}; check the url and that the server is up")]
    Connect(String),
    /// Every pooled connection stayed busy for the whole wait.
    #[error(
        "all {max} store connections stayed busy for {waited_ms} ms; raise the pool size or shed load"
    )]
    PoolExhausted {
        /// The pool size.
        max: usize,
        /// How long the caller waited.
        waited_ms: u64,
    },
    /// The server answered with an error or the connection broke mid-command.
    #[error("store command failed: {0}; retry later")]
    Backend(String),
    /// The server is configured in a way that would break the adapter's guarantees.
    #[error("unsafe store setting: {0}")]
    UnsafeSetting(String),
    /// The schema could not be applied or is of an unknown version.
    #[error("schema migration failed: {0}")]
    Migration(String),
    /// A stored row does not decode (corrupt or written by something else).
    #[error("stored row does not decode: {0}; check what else writes to these tables")]
    Corrupt(&'static str),
    /// A sealed secret could not be sealed or opened. Deliberately opaque.
    #[error("secret sealing failed")]
    Seal,
}
