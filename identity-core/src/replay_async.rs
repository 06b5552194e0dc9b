//! The async replay seam: [`AsyncReplayLog`] has the contract of
//! [`ReplayLog`](crate::replay::ReplayLog) for stores whose clients are async (the redis
//! crate's multiplexed connection, ...). Runtime-agnostic: the trait only names a future.

use core::future::Future;

use crate::UnixTime;
use crate::replay::{ReplayKey, ReplayStoreError, ReplayVerdict};

/// An async [`ReplayLog`](crate::replay::ReplayLog): same contract, same verdicts; an
/// `Err` means the caller must refuse the value (fail closed).
pub trait AsyncReplayLog: Send + Sync {
    /// Records `key` until `until` unless a live entry exists, atomically.
    fn check_and_insert(
        &self,
        key: &ReplayKey,
        until: UnixTime,
        now: UnixTime,
    ) -> impl Future<Output = Result<ReplayVerdict, ReplayStoreError>> + Send;
}
