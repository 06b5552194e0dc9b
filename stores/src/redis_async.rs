//! [`AsyncReplayLog`] on Redis / Valkey: the same single `SET key 1 NX PXAT ms` per check
//! as [`crate::redis::RedisReplayLog`] (same decision code, same key layout, so sync and
//! async instances share one log), sent on the redis crate's tokio
//! `ConnectionManager`: one multiplexed connection that
//! reconnects by itself in the background after a failure. A check that meets a broken
//! connection, a timeout or a server that is down is an `Err` (fail closed), never
//! `Fresh`; once the server answers again, checks succeed without a process restart.

use core::fmt;
use std::time::Duration;

use handoff_core::UnixTime;
use handoff_core::replay::{ReplayKey, ReplayStoreError, ReplayVerdict};
use handoff_core::replay_async::AsyncReplayLog;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::redis::{Expiry, Plan, RedisReplayLogBuilder, check_prefix, client, plan, read_reply};
use crate::{PoolConfig, StoresError};

/// A [`AsyncReplayLog`] shared by every gateway instance through Redis or Valkey. Cheap
/// to clone (clones share the connection).
#[derive(Clone)]
pub struct AsyncRedisReplayLog {
    conn: ConnectionManager,
    prefix: String,
    horizon_secs: u64,
    expiry: Expiry,
}

impl fmt::Debug for AsyncRedisReplayLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncRedisReplayLog")
            .field("prefix", &self.prefix)
            .field("horizon_secs", &self.horizon_secs)
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

impl RedisReplayLogBuilder {
    /// Builds the async log (connecting lazily, on the first check). Must be called
    /// inside a tokio runtime. The pool's `timeout` bounds connecting and every reply.
    ///
    /// # Errors
    /// [`StoresError::Config`] for a bad url, prefix or horizon, or when no tokio runtime
    /// is running.
    pub fn build_async(self) -> Result<AsyncRedisReplayLog, StoresError> {
        check_prefix(&self.prefix)?;
        if !(1..=30 * 86_400).contains(&self.horizon_secs) {
            return Err(StoresError::Config(
                "horizon must lie between 1 second and 30 days",
            ));
        }
        Ok(AsyncRedisReplayLog {
            conn: connection_manager(&self.url, &self.pool)?,
            prefix: self.prefix,
            horizon_secs: self.horizon_secs,
            expiry: self.expiry,
        })
    }
}

/// The tokio connection manager of `url` (shared by the async replay log and the async
/// device session store): connects lazily, `pool.timeout` bounds connecting and every
/// reply, one retry, then reconnects in the background.
///
/// # Errors
/// [`StoresError::Config`] for a bad url or pool bound, or when no tokio runtime is
/// running.
pub(crate) fn connection_manager(
    url: &str,
    pool: &PoolConfig,
) -> Result<ConnectionManager, StoresError> {
    pool.check()?;
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(StoresError::Config(
            "build_async must be called inside a tokio runtime",
        ));
    }
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(pool.timeout))
        .set_response_timeout(Some(pool.timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(10))
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client(url)?, config)
        .map_err(|e| StoresError::Connect(e.to_string()))
}

impl AsyncRedisReplayLog {
    /// The key prefix.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl AsyncReplayLog for AsyncRedisReplayLog {
    async fn check_and_insert(
        &self,
        key: &ReplayKey,
        until: UnixTime,
        now: UnixTime,
    ) -> Result<ReplayVerdict, ReplayStoreError> {
        let cmd = match plan(
            &self.prefix,
            self.horizon_secs,
            self.expiry,
            key,
            until,
            now,
        ) {
            Plan::Verdict(v) => return Ok(v),
            Plan::Send(cmd) => cmd,
        };
        let mut conn = self.conn.clone();
        let res: redis::RedisResult<Option<String>> = redis::cmd("SET")
            .arg(&cmd.key)
            .arg("1")
            .arg("NX")
            .arg(cmd.expiry_option)
            .arg(cmd.expiry_ms)
            .query_async(&mut conn)
            .await;
        // The manager drops a broken connection and reconnects by itself.
        read_reply(res).0
    }
}
