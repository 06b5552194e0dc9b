//! Pool bounds shared by the adapters. The pools themselves are maintained crates:
//! `r2d2` for the synchronous adapters (PostgreSQL through `r2d2_postgres`, Redis through
//! a small connection manager of this crate, SQLite through `r2d2_sqlite`) and
//! `deadpool-postgres` for the async PostgreSQL adapter.

use std::time::Duration;

use crate::StoresError;

/// Connection pool bounds, shared by every adapter of this crate.
///
/// Every checkout is health-checked (a `PING`, an empty query, or `SELECT 1`) before it
/// is handed out, connections that broke are dropped instead of returned, and idle and
/// old connections are closed (`idle_timeout`, `max_lifetime`), so a pool recovers by
/// itself after a server restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Most connections open at once (1 to 1024; default 16).
    pub max_size: usize,
    /// How long a caller waits for a healthy connection before failing closed (1 ms to
    /// 300 s; default 5 s).
    pub wait: Duration,
    /// Connect timeout and per-command timeout (1 ms to 300 s; default 5 s).
    pub timeout: Duration,
    /// An idle connection is closed after this long (default 10 min; `None`: never).
    pub idle_timeout: Option<Duration>,
    /// A connection is closed after this age (default 30 min; `None`: never).
    pub max_lifetime: Option<Duration>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_size: 16,
            wait: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1_800)),
        }
    }
}

impl PoolConfig {
    /// The default bounds with `max_size` connections.
    #[must_use]
    pub fn with_max_size(max_size: usize) -> Self {
        Self {
            max_size,
            ..Self::default()
        }
    }

    /// Sets the wait for a connection.
    #[must_use]
    pub const fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Sets the connect and per-command timeout.
    #[must_use]
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the idle timeout.
    #[must_use]
    pub const fn idle_timeout(mut self, idle: Option<Duration>) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// Sets the maximum connection age.
    #[must_use]
    pub const fn max_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.max_lifetime = lifetime;
        self
    }

    #[cfg_attr(
        not(any(feature = "redis", feature = "postgres", feature = "sqlite")),
        allow(dead_code)
    )]
    pub(crate) fn check(&self) -> Result<(), StoresError> {
        if !(1..=1024).contains(&self.max_size) {
            return Err(StoresError::Config(
                "pool max_size must lie between 1 and 1024",
            ));
        }
        let bounded = |d: Duration| !d.is_zero() && d <= Duration::from_secs(300);
        if !bounded(self.timeout) {
            return Err(StoresError::Config(
                "pool timeout must lie between 1 ms and 300 s",
            ));
        }
        if !bounded(self.wait) {
            return Err(StoresError::Config(
                "pool wait must lie between 1 ms and 300 s",
            ));
        }
        if self.idle_timeout.is_some_and(|d| d.is_zero())
            || self.max_lifetime.is_some_and(|d| d.is_zero())
        {
            return Err(StoresError::Config(
                "pool idle_timeout and max_lifetime must be positive (or None)",
            ));
        }
        Ok(())
    }

    /// An `r2d2` pool with these bounds, opening connections lazily (none at build time),
    /// testing each one on checkout.
    #[cfg(any(feature = "redis", feature = "postgres", feature = "sqlite"))]
    pub(crate) fn r2d2<M: r2d2::ManageConnection>(
        &self,
        manager: M,
        customizer: Option<Box<dyn r2d2::CustomizeConnection<M::Connection, M::Error>>>,
    ) -> Result<r2d2::Pool<M>, StoresError> {
        self.check()?;
        let max = u32::try_from(self.max_size)
            .map_err(|_| StoresError::Config("pool max_size out of range"))?;
        let mut b = r2d2::Pool::builder()
            .max_size(max)
            .min_idle(Some(0))
            .test_on_check_out(true)
            .connection_timeout(self.wait)
            .idle_timeout(self.idle_timeout)
            .max_lifetime(self.max_lifetime)
            .error_handler(Box::new(r2d2::NopErrorHandler));
        if let Some(c) = customizer {
            b = b.connection_customizer(c);
        }
        Ok(b.build_unchecked(manager))
    }
}

/// Maps a failed `r2d2` checkout: the last connection error when there was one, else the
/// pool stayed busy.
#[cfg(any(feature = "redis", feature = "postgres", feature = "sqlite"))]
pub(crate) fn checkout_error(config: &PoolConfig, e: &r2d2::Error) -> StoresError {
    let msg = e.to_string();
    if msg == "timed out waiting for connection" {
        // No connection error was recorded: every connection stayed busy.
        return StoresError::PoolExhausted {
            max: config.max_size,
            waited_ms: u64::try_from(config.wait.as_millis()).unwrap_or(u64::MAX),
        };
    }
    StoresError::Connect(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_bounds_are_checked() {
        for bad in [
            PoolConfig::with_max_size(0),
            PoolConfig::with_max_size(1025),
            PoolConfig::default().timeout(Duration::ZERO),
            PoolConfig::default().wait(Duration::ZERO),
            PoolConfig::default().wait(Duration::from_secs(301)),
            PoolConfig::default().idle_timeout(Some(Duration::ZERO)),
            PoolConfig::default().max_lifetime(Some(Duration::ZERO)),
        ] {
            assert!(
                matches!(bad.check(), Err(StoresError::Config(_))),
                "{bad:?}"
            );
        }
        assert!(PoolConfig::default().check().is_ok());
        assert!(
            PoolConfig::default()
                .idle_timeout(None)
                .max_lifetime(None)
                .check()
                .is_ok()
        );
    }
}
