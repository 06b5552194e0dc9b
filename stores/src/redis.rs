//! [`ReplayLog`] on Redis / Valkey: one atomic `SET key 1 NX PXAT until` per check.
//!
//! The same type serves as the replay log of host tokens and DPoP proofs and as the
//! device handshake's nonce store (which is a [`ReplayLog`]): give each its own prefix.
//!
//! `AsyncRedisReplayLog` (`crate::redis_async`, feature `redis-async`) sends the same
//! single command on the redis crate's tokio connection manager.

use core::fmt;

use handoff_core::UnixTime;
use handoff_core::replay::{ReplayKey, ReplayLog, ReplayStoreError, ReplayVerdict};

use crate::StoresError;
use crate::pool::{PoolConfig, checkout_error};

/// A connection of the pool, marked broken after any error whose effect is unknown, so
/// the pool drops it instead of reusing it.
pub(crate) struct Conn {
    pub(crate) conn: redis::Connection,
    pub(crate) broken: bool,
}

/// The `r2d2` manager: connects with a timeout, sets read and write timeouts, `PING`s on
/// checkout, drops connections marked broken.
pub(crate) struct Manager {
    client: redis::Client,
    timeout: std::time::Duration,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = redis::RedisError;

    fn connect(&self) -> Result<Conn, redis::RedisError> {
        let conn = self.client.get_connection_with_timeout(self.timeout)?;
        conn.set_read_timeout(Some(self.timeout))?;
        conn.set_write_timeout(Some(self.timeout))?;
        Ok(Conn {
            conn,
            broken: false,
        })
    }

    fn is_valid(&self, c: &mut Conn) -> Result<(), redis::RedisError> {
        let pong: String = redis::cmd("PING").query(&mut c.conn)?;
        if pong == "PONG" {
            Ok(())
        } else {
            c.broken = true;
            Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "unexpected PING reply",
            )))
        }
    }

    fn has_broken(&self, c: &mut Conn) -> bool {
        c.broken || !redis::ConnectionLike::is_open(&c.conn)
    }
}

/// Longest prefix accepted, in bytes.
pub const MAX_PREFIX_BYTES: usize = 64;

/// Default horizon: an entry whose `until` lies further ahead is refused as
/// [`ReplayVerdict::AtCapacity`] (same rule as the in-memory log).
pub const DEFAULT_HORIZON_SECS: u64 = 86_400;

/// How an entry's expiry is given to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Expiry {
    /// `PXAT (until + 1) * 1000`: the entry expires at an absolute instant, the same for
    /// every instance. Requires the Redis clock not to run ahead of the gateways' clocks
    /// (NTP on every host); a Redis clock ahead by `d` seconds shortens every entry by `d`.
    #[default]
    Absolute,
    /// `PX (until + 1 - now) * 1000`: the entry lives for its remaining window measured on
    /// the caller's clock, whatever the Redis clock says. Use it when the server's clock
    /// cannot be trusted.
    Relative,
}

/// A [`ReplayLog`] shared by every gateway instance through Redis or Valkey.
///
/// `check_and_insert` sends exactly one `SET <prefix><key hex> 1 NX PXAT <ms>`: `OK` is
/// [`ReplayVerdict::Fresh`], nil is [`ReplayVerdict::Replayed`]. A connection or protocol
/// error is an `Err` (fail closed), a server out of memory (`OOM`) is
/// [`ReplayVerdict::AtCapacity`], never `Fresh`. The entry lives through `until` (it
/// expires at the start of the next second), never shorter.
///
/// The server must not evict live keys: run it with `maxmemory-policy noeviction` (check
/// with [`RedisReplayLog::check_server`]).
pub struct RedisReplayLog {
    pool: RedisPool,
    prefix: String,
    horizon_secs: u64,
    expiry: Expiry,
}

impl fmt::Debug for RedisReplayLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayLog")
            .field("prefix", &self.prefix)
            .field("horizon_secs", &self.horizon_secs)
            .field("expiry", &self.expiry)
            .field("open_connections", &self.pool.open_connections())
            .finish_non_exhaustive()
    }
}

/// Builder for [`RedisReplayLog`]: the url and the key prefix are required.
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisReplayLogBuilder {
    pub(crate) url: String,
    pub(crate) prefix: String,
    pub(crate) horizon_secs: u64,
    pub(crate) expiry: Expiry,
    pub(crate) pool: PoolConfig,
}

impl RedisReplayLogBuilder {
    /// Refuse entries whose `until` lies more than `secs` ahead (default one day, 1 s to
    /// 30 days).
    pub const fn horizon_secs(mut self, secs: u64) -> Self {
        self.horizon_secs = secs;
        self
    }

    /// How the expiry is sent (default [`Expiry::Absolute`]).
    pub const fn expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = expiry;
        self
    }

    /// Connection pool bounds.
    pub const fn pool(mut self, pool: PoolConfig) -> Self {
        self.pool = pool;
        self
    }

    /// Checks the settings. Connections are opened lazily, on first use.
    ///
    /// # Errors
    /// [`StoresError::Config`] for a bad url, prefix, horizon or pool bound.
    pub fn build(self) -> Result<RedisReplayLog, StoresError> {
        check_prefix(&self.prefix)?;
        if !(1..=30 * 86_400).contains(&self.horizon_secs) {
            return Err(StoresError::Config(
                "horizon must lie between 1 second and 30 days",
            ));
        }
        Ok(RedisReplayLog {
            pool: RedisPool::open(&self.url, self.pool)?,
            prefix: self.prefix,
            horizon_secs: self.horizon_secs,
            expiry: self.expiry,
        })
    }
}

/// The client of `url` (nothing connects yet).
pub(crate) fn client(url: &str) -> Result<redis::Client, StoresError> {
    redis::Client::open(url)
        .map_err(|_| StoresError::Config("redis url does not parse; use redis://host:port/db"))
}

/// The `r2d2` pool of one server with the bounds it was built with, opening connections
/// lazily (shared by the replay log and the device session store).
pub(crate) struct RedisPool {
    pool: r2d2::Pool<Manager>,
    config: PoolConfig,
}

impl RedisPool {
    /// Checks `url` and the bounds; connects nothing yet.
    pub(crate) fn open(url: &str, config: PoolConfig) -> Result<Self, StoresError> {
        let manager = Manager {
            client: client(url)?,
            timeout: config.timeout,
        };
        Ok(Self {
            pool: config.r2d2(manager, None)?,
            config,
        })
    }

    /// A healthy connection, or the checkout's error (connect failure, pool exhausted).
    pub(crate) fn get(&self) -> Result<r2d2::PooledConnection<Manager>, StoresError> {
        self.pool
            .get()
            .map_err(|e| checkout_error(&self.config, &e))
    }

    /// Connections open now.
    pub(crate) fn open_connections(&self) -> u32 {
        self.pool.state().connections
    }
}

/// A prefix is 1 to 64 bytes of ASCII letters, digits and `:_-./`.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), StoresError> {
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_BYTES {
        return Err(StoresError::Config("key prefix must be 1 to 64 bytes"));
    }
    if !prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b":_-./".contains(&b))
    {
        return Err(StoresError::Config(
            "key prefix may hold only ASCII letters, digits and :_-./",
        ));
    }
    Ok(())
}

/// What one check sends: the key and the expiry argument.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct SetCommand {
    /// The Redis key: prefix plus the 64 hex digits of the replay key.
    pub key: String,
    /// `"PXAT"` or `"PX"`.
    pub expiry_option: &'static str,
    /// Milliseconds (an instant for `PXAT`, a duration for `PX`).
    pub expiry_ms: u64,
}

impl fmt::Display for SetCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SET {} 1 NX {} {}",
            self.key, self.expiry_option, self.expiry_ms
        )
    }
}

/// What the log decides before talking to the server.
pub(crate) enum Plan {
    Verdict(ReplayVerdict),
    Send(SetCommand),
}

impl RedisReplayLog {
    /// Starts a builder. `prefix` scopes every key (for example `"gw:replay:"` and
    /// `"gw:nonce:"`); 1 to 64 bytes of ASCII letters, digits and `:_-./`.
    pub fn builder(url: impl Into<String>, prefix: impl Into<String>) -> RedisReplayLogBuilder {
        RedisReplayLogBuilder {
            url: url.into(),
            prefix: prefix.into(),
            horizon_secs: DEFAULT_HORIZON_SECS,
            expiry: Expiry::Absolute,
            pool: PoolConfig::default(),
        }
    }

    /// The key prefix.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The command one check sends, or `None` when the verdict needs no server: `until`
    /// already passed (`Replayed`) or beyond the horizon (`AtCapacity`).
    #[must_use]
    pub fn command(&self, key: &ReplayKey, until: UnixTime, now: UnixTime) -> Option<SetCommand> {
        match self.plan(key, until, now) {
            Plan::Send(cmd) => Some(cmd),
            Plan::Verdict(_) => None,
        }
    }

    fn plan(&self, key: &ReplayKey, until: UnixTime, now: UnixTime) -> Plan {
        plan(
            &self.prefix,
            self.horizon_secs,
            self.expiry,
            key,
            until,
            now,
        )
    }

    /// Checks that the server will not evict live keys (`maxmemory-policy` must be
    /// `noeviction`, or `maxmemory` 0 = unlimited) and answers `PING`.
    ///
    /// # Errors
    /// [`StoresError::UnsafeSetting`] naming the policy, or a connection error. A server
    /// that forbids `CONFIG GET` (some managed offerings) answers
    /// [`StoresError::Backend`]: check the setting with the provider instead.
    pub fn check_server(&self) -> Result<(), StoresError> {
        let mut pooled = self.pool.get()?;
        let conn = &mut pooled.conn;
        let res: redis::RedisResult<(Vec<String>, Vec<String>)> = redis::pipe()
            .cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory")
            .query(conn);
        let (policy, maxmemory) = match res {
            Ok(v) => v,
            Err(e) => {
                pooled.broken = is_connection_error(&e);
                return Err(StoresError::Backend(e.to_string()));
            }
        };
        let policy = policy.get(1).map_or("", String::as_str);
        let unlimited = maxmemory.get(1).is_some_and(|m| m == "0");
        if policy == "noeviction" || unlimited {
            Ok(())
        } else {
            Err(StoresError::UnsafeSetting(format!(
                "maxmemory-policy is {policy} with a memory limit: live replay entries could be evicted; set maxmemory-policy noeviction"
            )))
        }
    }

    fn send(&self, cmd: &SetCommand) -> Result<ReplayVerdict, ReplayStoreError> {
        let mut pooled = self
            .pool
            .get()
            .map_err(|e| ReplayStoreError(e.to_string()))?;
        let conn = &mut pooled.conn;
        let res: redis::RedisResult<Option<String>> = redis::cmd("SET")
            .arg(&cmd.key)
            .arg("1")
            .arg("NX")
            .arg(cmd.expiry_option)
            .arg(cmd.expiry_ms)
            .query(conn);
        let (verdict, broken) = read_reply(res);
        pooled.broken = broken;
        verdict
    }
}

/// The one decision path of the sync and async logs: a verdict without a round trip, or
/// the command to send.
pub(crate) fn plan(
    prefix: &str,
    horizon_secs: u64,
    expiry: Expiry,
    key: &ReplayKey,
    until: UnixTime,
    now: UnixTime,
) -> Plan {
    if until < now {
        // Past its acceptance window: the caller should have refused it already.
        return Plan::Verdict(ReplayVerdict::Replayed);
    }
    if until.secs_since(now) > horizon_secs {
        return Plan::Verdict(ReplayVerdict::AtCapacity);
    }
    // The entry lives through the whole second `until`: it expires at until + 1.
    let (expiry_option, secs) = match expiry {
        Expiry::Absolute => ("PXAT", until.as_secs().saturating_add(1)),
        Expiry::Relative => ("PX", until.secs_since(now).saturating_add(1)),
    };
    let mut k = String::with_capacity(prefix.len() + 64);
    k.push_str(prefix);
    k.push_str(&key.to_hex());
    Plan::Send(SetCommand {
        key: k,
        expiry_option,
        expiry_ms: secs.saturating_mul(1_000),
    })
}

/// Reads the reply to `SET NX`: the verdict, and whether the connection must be dropped.
pub(crate) fn read_reply(
    res: redis::RedisResult<Option<String>>,
) -> (Result<ReplayVerdict, ReplayStoreError>, bool) {
    match res {
        Ok(Some(ok)) if ok == "OK" => (Ok(ReplayVerdict::Fresh), false),
        Ok(Some(_)) => (
            Err(ReplayStoreError("unexpected reply to SET NX".into())),
            true,
        ),
        Ok(None) => (Ok(ReplayVerdict::Replayed), false),
        Err(e) if e.code() == Some("OOM") => (Ok(ReplayVerdict::AtCapacity), false),
        // Whatever happened, the connection's state is unknown: never reuse it.
        Err(e) => (
            Err(ReplayStoreError(format!(
                "redis: {e}; the check failed closed, retry when the server is back"
            ))),
            true,
        ),
    }
}

pub(crate) fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout()
}

impl ReplayLog for RedisReplayLog {
    fn check_and_insert(
        &self,
        key: &ReplayKey,
        until: UnixTime,
        now: UnixTime,
    ) -> Result<ReplayVerdict, ReplayStoreError> {
        match self.plan(key, until, now) {
            Plan::Verdict(v) => Ok(v),
            Plan::Send(cmd) => self.send(&cmd),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(expiry: Expiry) -> RedisReplayLog {
        RedisReplayLog::builder("redis://127.0.0.1:1/", "t:replay:")
            .expiry(expiry)
            .horizon_secs(600)
            .build()
            .unwrap()
    }

    #[test]
    fn command_is_one_set_nx_with_expiry_after_until() {
        let l = log(Expiry::Absolute);
        let key = ReplayKey::from_bytes([0xab; 32]);
        let cmd = l
            .command(&key, UnixTime::from_secs(1_000), UnixTime::from_secs(900))
            .unwrap();
        assert_eq!(cmd.key, format!("t:replay:{}", "ab".repeat(32)));
        assert_eq!(
            cmd.to_string(),
            format!("SET {} 1 NX PXAT 1001000", cmd.key)
        );
        let rel = log(Expiry::Relative)
            .command(&key, UnixTime::from_secs(1_000), UnixTime::from_secs(900))
            .unwrap();
        assert_eq!((rel.expiry_option, rel.expiry_ms), ("PX", 101_000));
    }

    #[test]
    fn past_and_far_entries_never_reach_the_server() {
        // Port 1 refuses connections: a verdict here proves no command was sent.
        let l = log(Expiry::Absolute);
        let key = ReplayKey::from_bytes([1; 32]);
        let now = UnixTime::from_secs(1_000);
        assert_eq!(
            l.check_and_insert(&key, UnixTime::from_secs(999), now),
            Ok(ReplayVerdict::Replayed)
        );
        assert_eq!(
            l.check_and_insert(&key, UnixTime::from_secs(1_601), now),
            Ok(ReplayVerdict::AtCapacity)
        );
    }

    #[test]
    fn unreachable_server_is_an_error_never_fresh() {
        let l = log(Expiry::Absolute);
        let key = ReplayKey::from_bytes([2; 32]);
        let now = UnixTime::from_secs(1_000);
        let res = l.check_and_insert(&key, UnixTime::from_secs(1_100), now);
        assert!(res.is_err(), "got {res:?}");
    }

    #[test]
    fn prefixes_are_validated() {
        for bad in ["", "has space", "new\nline", &"x".repeat(65)] {
            assert!(matches!(
                RedisReplayLog::builder("redis://127.0.0.1/", bad).build(),
                Err(StoresError::Config(_))
            ));
        }
        assert!(matches!(
            RedisReplayLog::builder("not a url", "p:").build(),
            Err(StoresError::Config(_))
        ));
        assert!(matches!(
            RedisReplayLog::builder("redis://127.0.0.1/", "p:")
                .horizon_secs(0)
                .build(),
            Err(StoresError::Config(_))
        ));
    }
}
