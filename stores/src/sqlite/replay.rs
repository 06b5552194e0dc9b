//! [`ReplayLog`] in the SQLite file: one `BEGIN IMMEDIATE` transaction per check.

use core::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use handoff_core::UnixTime;
use handoff_core::replay::{ReplayKey, ReplayLog, ReplayStoreError, ReplayVerdict};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{Shared, describe, to_i64};
use crate::StoresError;

/// Default most entries held (1 000 000).
pub const DEFAULT_CAPACITY: u64 = 1_000_000;
/// Default horizon: an entry whose `until` lies further ahead is refused as `AtCapacity`.
pub const DEFAULT_HORIZON_SECS: u64 = 86_400;
/// Expired entries deleted per automatic GC batch.
pub const GC_BATCH: u64 = 1_024;
/// An automatic GC batch runs every this many fresh entries (of this process).
const GC_EVERY: u64 = 256;

/// A [`ReplayLog`] in the SQLite file, shared by every thread and process using it.
///
/// A check is one `BEGIN IMMEDIATE` transaction: read the entry; a live one (`until >=
/// now`) is `Replayed`; an expired one is overwritten (`Fresh`); a new one is inserted
/// (`Fresh`) unless the log holds `capacity` entries even after a GC batch
/// (`AtCapacity`, never eviction of a live entry). A busy file past the busy timeout, or
/// any other failure, is an `Err` (fail closed).
pub struct SqliteReplayLog {
    shared: Arc<Shared>,
    capacity: u64,
    horizon_secs: u64,
    fresh: AtomicU64,
}

impl fmt::Debug for SqliteReplayLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteReplayLog")
            .field("path", &self.shared.path)
            .field("capacity", &self.capacity)
            .field("horizon_secs", &self.horizon_secs)
            .finish_non_exhaustive()
    }
}

impl SqliteReplayLog {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            capacity: DEFAULT_CAPACITY,
            horizon_secs: DEFAULT_HORIZON_SECS,
            fresh: AtomicU64::new(0),
        }
    }

    /// Sets the most entries held (1 to 2^40).
    ///
    /// # Errors
    /// [`StoresError::Config`] out of bounds.
    pub fn with_capacity(mut self, capacity: u64) -> Result<Self, StoresError> {
        if !(1..=1 << 40).contains(&capacity) {
            return Err(StoresError::Config(
                "replay capacity must lie between 1 and 2^40",
            ));
        }
        self.capacity = capacity;
        Ok(self)
    }

    /// Sets the horizon (1 s to 30 days).
    ///
    /// # Errors
    /// [`StoresError::Config`] out of bounds.
    pub fn with_horizon_secs(mut self, secs: u64) -> Result<Self, StoresError> {
        if !(1..=30 * 86_400).contains(&secs) {
            return Err(StoresError::Config(
                "horizon must lie between 1 second and 30 days",
            ));
        }
        self.horizon_secs = secs;
        Ok(self)
    }

    /// Deletes up to `max_batch` entries expired at `now` (`until < now`); returns how
    /// many. Runs automatically in small batches as entries are added.
    ///
    /// # Errors
    /// [`StoresError::Backend`] when the file cannot be written.
    pub fn gc(&self, now: UnixTime, max_batch: u64) -> Result<u64, StoresError> {
        let now = to_i64(now.as_secs()).unwrap_or(i64::MAX);
        let max = to_i64(max_batch).unwrap_or(i64::MAX);
        let n = self
            .shared
            .with_conn(|c| gc_in(c, now, max))?
            .map_err(|e| StoresError::Backend(describe(&e)))?;
        Ok(n)
    }

    /// Entries held (live or expired but not yet collected).
    ///
    /// # Errors
    /// [`StoresError::Backend`].
    pub fn entries(&self) -> Result<u64, StoresError> {
        let n: i64 = self
            .shared
            .with_conn(|c| c.query_row("SELECT entries FROM replay_meta", [], |r| r.get(0)))?
            .map_err(|e| StoresError::Backend(describe(&e)))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn check(
        &self,
        key: &ReplayKey,
        until: i64,
        now: i64,
        gc_now: bool,
    ) -> Result<ReplayVerdict, String> {
        let res = self.shared.with_conn(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let k = key.as_bytes().as_slice();
            let existing: Option<i64> = tx
                .prepare_cached("SELECT until FROM replay_log WHERE key = ?1")?
                .query_row(params![k], |r| r.get(0))
                .optional()?;
            let verdict = match existing {
                Some(u) if u >= now => ReplayVerdict::Replayed,
                Some(_) => {
                    let n = tx
                        .prepare_cached(
                            "UPDATE replay_log SET until = ?2 WHERE key = ?1 AND until < ?3",
                        )?
                        .execute(params![k, until, now])?;
                    if n == 1 {
                        ReplayVerdict::Fresh
                    } else {
                        ReplayVerdict::Replayed
                    }
                }
                None => {
                    let cap = i64::try_from(self.capacity).unwrap_or(i64::MAX);
                    let mut entries: i64 =
                        tx.query_row("SELECT entries FROM replay_meta", [], |r| r.get(0))?;
                    if gc_now || entries >= cap {
                        gc_in(&tx, now, i64::try_from(GC_BATCH).unwrap_or(1024))?;
                        entries =
                            tx.query_row("SELECT entries FROM replay_meta", [], |r| r.get(0))?;
                    }
                    if entries >= cap {
                        ReplayVerdict::AtCapacity
                    } else {
                        let n = tx
                            .prepare_cached("INSERT INTO replay_log (key, until) VALUES (?1, ?2)")?
                            .execute(params![k, until])?;
                        if n == 1 {
                            ReplayVerdict::Fresh
                        } else {
                            ReplayVerdict::Replayed
                        }
                    }
                }
            };
            tx.commit()?;
            Ok(verdict)
        });
        match res {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(describe(&e)),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn gc_in(c: &rusqlite::Connection, now: i64, max: i64) -> Result<u64, rusqlite::Error> {
    let n = c
        .prepare_cached(
            "DELETE FROM replay_log WHERE key IN \
             (SELECT key FROM replay_log WHERE until < ?1 ORDER BY until LIMIT ?2)",
        )?
        .execute(params![now, max])?;
    Ok(u64::try_from(n).unwrap_or(0))
}

impl ReplayLog for SqliteReplayLog {
    fn check_and_insert(
        &self,
        key: &ReplayKey,
        until: UnixTime,
        now: UnixTime,
    ) -> Result<ReplayVerdict, ReplayStoreError> {
        if until < now {
            return Ok(ReplayVerdict::Replayed);
        }
        if until.secs_since(now) > self.horizon_secs {
            return Ok(ReplayVerdict::AtCapacity);
        }
        let (Some(u), Some(n)) = (to_i64(until.as_secs()), to_i64(now.as_secs())) else {
            return Ok(ReplayVerdict::AtCapacity);
        };
        let gc_now = self.fresh.load(Ordering::Relaxed).is_multiple_of(GC_EVERY);
        match self.check(key, u, n, gc_now) {
            Ok(v) => {
                if v == ReplayVerdict::Fresh {
                    self.fresh.fetch_add(1, Ordering::Relaxed);
                }
                Ok(v)
            }
            Err(e) => Err(ReplayStoreError(format!("{e}; the check failed closed"))),
        }
    }
}
