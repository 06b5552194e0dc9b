//! [`DeviceSessionStore`] on Redis / Valkey ([`RedisDeviceSessionStore`], pooled by r2d2)
//! and [`AsyncDeviceSessionStore`](handoff_device::AsyncDeviceSessionStore) on the redis
//! crate's tokio connection manager (`AsyncRedisDeviceSessionStore`, feature
//! `redis-async`). Both build the same commands with the same code and read the replies
//! with the same code, so sync and async instances with one prefix share one set of
//! sessions.
//!
//! # Key layout and value
//!
//! One string key per session: `{prefix}{base64url(session_id)}` (22 characters of
//! unpadded base64url after the prefix). Its value is the record's columns, encoded by
//! the same column encoder the SQL stores use (`device_sessions` columns, so the same
//! bounds: numbers up to `i64::MAX`, refused by name beyond), written as one line of 15
//! fields separated by single spaces:
//!
//! ```text
//! hds1 <version> <session_id> <device_id> <created_at> <last_seen> <idle_timeout>
//!      <max_lifetime> <rotated_at> <current_hash> <previous_hash> <overlap_until>
//!      <generation> <revoked_at> <expires_at>
//! ```
//!
//! `hds1` is the format tag (the version of this layout); numbers are decimal; ids and
//! hashes unpadded base64url; the device id as is (its characters are letters, digits and
//! `-_:`); an absent value (`previous_hash`, `revoked_at`) is `-`. The record's version
//! comes right after the tag, where the compare-and-set script reads it with one pattern
//! match, without parsing the rest. A value is at most a few hundred bytes.
//!
//! A value read back is untrusted (the server may be shared, a key overwritten): a value
//! longer than [`MAX_VALUE_BYTES`] is refused before parsing, then the fields are split
//! and converted (a field that is not a decimal number or not base64url "has an
//! unexpected type", naming its `device_sessions.<column>`), and the columns go through
//! the decoder of the SQL rows, which checks every length, sign, identifier and the
//! stored `expires_at` against the record. Then the record must encode back to exactly
//! the stored bytes (no leading zeros, no `+`, one spelling per value), so that the
//! script's version comparison and the decoder never disagree, and its session id must be
//! the one its key names (a value copied from another key is refused). Whatever is refused is
//! [`DeviceError::SessionStoreUnavailable`] naming what was wrong, never a panic, never
//! an empty answer.
//!
//! # Commands
//!
//! * `load`: `GET key`.
//! * `insert`: `SET key value NX PXAT <expires_at * 1000>`; nil (the key exists) is
//!   [`DeviceError::SessionExists`].
//! * `compare_and_set`: one Lua script ([`redis::Script`]: `EVALSHA`, and the script
//!   itself once more when the server answers `NOSCRIPT`), atomic on the server: it reads
//!   the stored value, compares its version field with the expected version as decimal
//!   text (exact for every `u64`, where a Lua number would round beyond 2^53), and only
//!   when they are equal writes the new value with its `PXAT`. A missing key or another
//!   version is [`DeviceError::VersionConflict`]; a stored value without a readable
//!   version is [`DeviceError::SessionStoreUnavailable`].
//! * `purge_expired`: nothing to delete, see below; it `PING`s the server (an unreachable
//!   store is an error, never "0 purged") and returns 0.
//!
//! # Expiry
//!
//! Every write sets the key's expiry to the record's [`DeviceSession::expires_at`] in
//! milliseconds (`PXAT`, capped at `i64::MAX` ms), so Redis deletes an ended session by
//! itself, a revoked one included (its token reads "revoked" until then, "not found"
//! after, as with the SQL stores after a purge). The expiry is an instant on the **Redis
//! server's clock**, while `expires_at` is on the **application's clock**: keep both on
//! NTP. A server clock behind by `d` keeps an ended record `d` longer (harmless: `load`
//! may return a record whose `expires_at <= now`, and the gateway refuses it as expired);
//! a server clock ahead by `d` deletes a session `d` early (its token then reads "not
//! found" and the device handshakes again). A record written with an `expires_at`
//! already past on the server's clock is acknowledged and deleted at once.
//!
//! Run the server with `maxmemory-policy noeviction` (a `volatile-*` policy evicts exactly
//! these keys, which all carry an expiry) and with the persistence the deployment needs:
//! a write acknowledged but lost in a crash brings back the previous record.

use core::fmt;
use std::sync::LazyLock;

use handoff_core::{UnixTime, b64};
use handoff_device::{DeviceError, DeviceSession, DeviceSessionStore, SessionId};
use redis::Script;

use crate::redis::{RedisPool, check_prefix};
use crate::rows::cols::{
    S_CREATED_AT, S_CURRENT_HASH, S_EXPIRES_AT, S_GENERATION, S_IDLE_TIMEOUT, S_LAST_SEEN,
    S_MAX_LIFETIME, S_OVERLAP_UNTIL, S_PREVIOUS_HASH, S_REVOKED_AT, S_ROTATED_AT, S_SESSION_ID,
    S_VERSION,
};
use crate::rows::{
    Col, Problem, RowError, SessionColumns, decode_session, encode_session, session_to_write,
};
use crate::{PoolConfig, StoresError};

/// Longest stored value read back, in bytes: a longer one is refused before it is
/// parsed. What this store writes is at most about 380 bytes.
pub const MAX_VALUE_BYTES: usize = 1_024;

/// The format tag every value starts with (the version of the value layout).
pub const VALUE_TAG: &str = "hds1";

/// Fields of a value: the tag, then the 14 `device_sessions` columns.
const FIELDS: usize = 15;

/// Compare-and-set: `KEYS[1]` the session's key, `ARGV[1]` the expected version (decimal),
/// `ARGV[2]` the new value, `ARGV[3]` its `PXAT`. Returns 1 written, 0 conflict (no key,
/// or another version), -1 a stored value without a readable version.
const COMPARE_AND_SET: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur then
  return 0
end
local v = string.match(cur, '^hds1 (%d+) ')
if not v then
  return -1
end
if v ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
return 1
";

/// The script, hashed once.
static COMPARE_AND_SET_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(COMPARE_AND_SET));

/// What a stored value breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueError {
    /// Longer than [`MAX_VALUE_BYTES`].
    TooLong,
    /// Not the layout this store writes.
    Layout(&'static str),
    /// A column its decoder refuses.
    Column(RowError),
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong => write!(
                f,
                "the value is longer than {MAX_VALUE_BYTES} bytes, far more than this store writes"
            ),
            Self::Layout(what) => f.write_str(what),
            Self::Column(e) => e.fmt(f),
        }
    }
}

impl From<RowError> for ValueError {
    fn from(e: RowError) -> Self {
        Self::Column(e)
    }
}

/// The value of a session's columns (see the module documentation).
fn encode_value(c: &SessionColumns) -> Vec<u8> {
    let int = |v: i64| v.to_string().into_bytes();
    let opt = |v: Option<Vec<u8>>| v.unwrap_or_else(|| b"-".to_vec());
    let fields: [Vec<u8>; FIELDS] = [
        VALUE_TAG.as_bytes().to_vec(),
        int(c.version),
        b64::encode(&c.session_id).into_bytes(),
        c.device_id.clone(),
        int(c.created_at),
        int(c.last_seen),
        int(c.idle_timeout),
        int(c.max_lifetime),
        int(c.rotated_at),
        b64::encode(&c.current_hash).into_bytes(),
        opt(c
            .previous_hash
            .as_deref()
            .map(|h| b64::encode(h).into_bytes())),
        int(c.overlap_until),
        int(c.generation),
        opt(c.revoked_at.map(int)),
        int(c.expires_at),
    ];
    fields.join(&b' ')
}

/// A decimal `i64` field.
fn int(v: &[u8], c: &Col) -> Result<i64, RowError> {
    use core::num::IntErrorKind;
    let text = core::str::from_utf8(v).map_err(|_| c.err(Problem::Type))?;
    text.parse::<i64>().map_err(|e| match e.kind() {
        IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => c.err(Problem::OutOfRange),
        _ => c.err(Problem::Type),
    })
}

/// A base64url bytes field.
fn bytes(v: &[u8], c: &Col) -> Result<Vec<u8>, RowError> {
    core::str::from_utf8(v)
        .ok()
        .and_then(|t| b64::decode(t).ok())
        .ok_or(c.err(Problem::Type))
}

/// `-` or the field.
fn opt<T>(
    v: &[u8],
    c: &Col,
    f: fn(&[u8], &Col) -> Result<T, RowError>,
) -> Result<Option<T>, RowError> {
    if v == b"-" {
        Ok(None)
    } else {
        f(v, c).map(Some)
    }
}

/// The columns a stored value holds: size first, then the layout and each field.
fn parse_value(v: &[u8]) -> Result<SessionColumns, ValueError> {
    if v.len() > MAX_VALUE_BYTES {
        return Err(ValueError::TooLong);
    }
    let mut parts = v.split(|&b| b == b' ');
    let mut f = [&[][..]; FIELDS];
    for slot in &mut f {
        *slot = parts.next().ok_or(ValueError::Layout(
            "the value has fewer fields than the 15 this store writes",
        ))?;
    }
    if parts.next().is_some() {
        return Err(ValueError::Layout(
            "the value has more fields than the 15 this store writes",
        ));
    }
    if f[0] != VALUE_TAG.as_bytes() {
        return Err(ValueError::Layout(
            "the value does not start with the format tag hds1 (another format, or not written by this store)",
        ));
    }
    Ok(SessionColumns {
        version: int(f[1], &S_VERSION)?,
        session_id: bytes(f[2], &S_SESSION_ID)?,
        device_id: f[3].to_vec(),
        created_at: int(f[4], &S_CREATED_AT)?,
        last_seen: int(f[5], &S_LAST_SEEN)?,
        idle_timeout: int(f[6], &S_IDLE_TIMEOUT)?,
        max_lifetime: int(f[7], &S_MAX_LIFETIME)?,
        rotated_at: int(f[8], &S_ROTATED_AT)?,
        current_hash: bytes(f[9], &S_CURRENT_HASH)?,
        previous_hash: opt(f[10], &S_PREVIOUS_HASH, bytes)?,
        overlap_until: int(f[11], &S_OVERLAP_UNTIL)?,
        generation: int(f[12], &S_GENERATION)?,
        revoked_at: opt(f[13], &S_REVOKED_AT, int)?,
        expires_at: int(f[14], &S_EXPIRES_AT)?,
    })
}

/// The session a stored value holds: [`parse_value`], the rows' [`decode_session`], and
/// the record must encode back to exactly `v`.
fn decode_value(v: &[u8]) -> Result<DeviceSession, ValueError> {
    let session = decode_session(&parse_value(v)?)?;
    match encode_session(&session) {
        Ok(c) if encode_value(&c) == v => Ok(session),
        _ => Err(ValueError::Layout(
            "the value is not spelled the way this store writes it (a number with a sign or leading zeros?)",
        )),
    }
}

/// The key and the commands of every operation, and how their replies read: one code
/// path for the sync and the async store.
#[derive(Debug, Clone)]
struct Commands {
    prefix: String,
}

/// A write: the key, the value and its `PXAT` in milliseconds.
struct Write {
    key: String,
    value: Vec<u8>,
    pxat_ms: i64,
}

impl Commands {
    fn key(&self, session_id: &SessionId) -> String {
        format!("{}{}", self.prefix, session_id.to_base64url())
    }

    fn write(&self, session: &DeviceSession) -> Result<Write, DeviceError> {
        let c = session_to_write(session)?;
        Ok(Write {
            key: self.key(&session.session_id),
            value: encode_value(&c),
            // PXAT must be positive; an `expires_at` of 0 has long passed either way.
            pxat_ms: c.expires_at.saturating_mul(1_000).max(1),
        })
    }

    /// `GET key`.
    fn load(&self, session_id: &SessionId) -> redis::Cmd {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(session_id));
        cmd
    }

    /// `SET key value NX PXAT ms`.
    fn insert(&self, session: &DeviceSession) -> Result<redis::Cmd, DeviceError> {
        let w = self.write(session)?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(w.key)
            .arg(w.value)
            .arg("NX")
            .arg("PXAT")
            .arg(w.pxat_ms);
        Ok(cmd)
    }

    /// The compare-and-set script's call.
    fn compare_and_set(
        &self,
        expected_version: u64,
        session: &DeviceSession,
    ) -> Result<redis::ScriptInvocation<'static>, DeviceError> {
        let w = self.write(session)?;
        let mut call = COMPARE_AND_SET_SCRIPT.prepare_invoke();
        call.key(w.key)
            .arg(expected_version.to_string())
            .arg(w.value)
            .arg(w.pxat_ms);
        Ok(call)
    }

    /// `PING`.
    fn ping() -> redis::Cmd {
        redis::cmd("PING")
    }

    /// The reply to `GET` of `session_id`'s key: the session, which must be the one the
    /// key names (a value copied from another key is refused).
    fn loaded(
        &self,
        session_id: &SessionId,
        reply: redis::RedisResult<Option<Vec<u8>>>,
    ) -> Result<Option<DeviceSession>, DeviceError> {
        let Some(v) = reply.map_err(failed)? else {
            return Ok(None);
        };
        match decode_value(&v) {
            Ok(s) if s.session_id == *session_id => Ok(Some(s)),
            Ok(_) => Err(self.corrupt(&ValueError::Layout(
                "the value holds another session id than its key (copied from another key?)",
            ))),
            Err(e) => Err(self.corrupt(&e)),
        }
    }

    fn inserted(reply: redis::RedisResult<Option<String>>) -> Result<(), DeviceError> {
        match reply.map_err(failed)?.as_deref() {
            Some("OK") => Ok(()),
            None => Err(DeviceError::SessionExists),
            Some(_) => Err(unavailable("unexpected reply to SET NX")),
        }
    }

    fn swapped(&self, reply: redis::RedisResult<i64>) -> Result<(), DeviceError> {
        match reply.map_err(failed)? {
            1 => Ok(()),
            0 => Err(DeviceError::VersionConflict),
            -1 => Err(self.corrupt(&ValueError::Layout(
                "the stored value has no version field after the format tag hds1",
            ))),
            _ => Err(unavailable(
                "unexpected reply from the compare-and-set script",
            )),
        }
    }

    fn pinged(reply: redis::RedisResult<String>) -> Result<usize, DeviceError> {
        match reply.map_err(failed)?.as_str() {
            "PONG" => Ok(0),
            _ => Err(unavailable("unexpected reply to PING")),
        }
    }

    /// A stored value that does not decode; the key is not named (a session id is part
    /// of a bearer token's lookup path).
    fn corrupt(&self, e: &ValueError) -> DeviceError {
        unavailable(format!(
            "stored device session value does not decode: {e}; check what else writes keys under the prefix {}",
            self.prefix
        ))
    }
}

fn unavailable(msg: impl fmt::Display) -> DeviceError {
    DeviceError::SessionStoreUnavailable(msg.to_string())
}

fn failed(e: redis::RedisError) -> DeviceError {
    unavailable(format!(
        "redis: {e}; the device session store failed closed, retry when the server is back"
    ))
}

/// Builder of [`RedisDeviceSessionStore`] (and, feature `redis-async`, of
/// `AsyncRedisDeviceSessionStore`): the url and the key prefix are required.
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisDeviceSessionStoreBuilder {
    url: String,
    prefix: String,
    pool: PoolConfig,
}

impl RedisDeviceSessionStoreBuilder {
    /// Connection pool bounds: `timeout` bounds connecting and every command (the async
    /// store uses only `timeout`).
    pub const fn pool(mut self, pool: PoolConfig) -> Self {
        self.pool = pool;
        self
    }

    fn commands(&self) -> Result<Commands, StoresError> {
        check_prefix(&self.prefix)?;
        Ok(Commands {
            prefix: self.prefix.clone(),
        })
    }

    /// Checks the settings. Connections are opened lazily, on first use.
    ///
    /// # Errors
    /// [`StoresError::Config`] for a bad url, prefix or pool bound.
    pub fn build(self) -> Result<RedisDeviceSessionStore, StoresError> {
        Ok(RedisDeviceSessionStore {
            commands: self.commands()?,
            pool: RedisPool::open(&self.url, self.pool)?,
        })
    }

    /// Builds the async store (connecting lazily, on first use). Must be called inside a
    /// tokio runtime. The pool's `timeout` bounds connecting and every reply.
    ///
    /// # Errors
    /// [`StoresError::Config`] for a bad url, prefix or timeout, or when no tokio runtime
    /// is running.
    #[cfg(feature = "redis-async")]
    pub fn build_async(self) -> Result<AsyncRedisDeviceSessionStore, StoresError> {
        Ok(AsyncRedisDeviceSessionStore {
            commands: self.commands()?,
            conn: crate::redis_async::connection_manager(&self.url, &self.pool)?,
        })
    }
}

/// A [`DeviceSessionStore`] shared by every gateway instance through Redis or Valkey,
/// pooled by r2d2 (see the [module documentation](self) for the keys, the value, the
/// script and the expiry). Every failure is [`DeviceError::SessionStoreUnavailable`]
/// (fail closed), and the connection it happened on is dropped, never reused.
pub struct RedisDeviceSessionStore {
    commands: Commands,
    pool: RedisPool,
}

impl fmt::Debug for RedisDeviceSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisDeviceSessionStore")
            .field("prefix", &self.commands.prefix)
            .field("open_connections", &self.pool.open_connections())
            .finish_non_exhaustive()
    }
}

impl RedisDeviceSessionStore {
    /// Starts a builder. `prefix` scopes every key (for example `"gw:session:"`); 1 to 64
    /// bytes of ASCII letters, digits and `:_-./`. Give the sessions a prefix of their
    /// own, not one of a replay log.
    pub fn builder(
        url: impl Into<String>,
        prefix: impl Into<String>,
    ) -> RedisDeviceSessionStoreBuilder {
        RedisDeviceSessionStoreBuilder {
            url: url.into(),
            prefix: prefix.into(),
            pool: PoolConfig::default(),
        }
    }

    /// The key prefix.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.commands.prefix
    }

    /// Runs `f` on a pooled connection; the connection is dropped after any error (its
    /// state is unknown).
    fn run<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<redis::RedisResult<T>, DeviceError> {
        let mut pooled = self.pool.get().map_err(unavailable)?;
        let reply = f(&mut pooled.conn);
        pooled.broken = reply.is_err();
        Ok(reply)
    }
}

impl DeviceSessionStore for RedisDeviceSessionStore {
    fn load(&self, session_id: &SessionId) -> Result<Option<DeviceSession>, DeviceError> {
        let cmd = self.commands.load(session_id);
        self.commands
            .loaded(session_id, self.run(|c| cmd.query(c))?)
    }

    fn insert(&self, session: &DeviceSession) -> Result<(), DeviceError> {
        let cmd = self.commands.insert(session)?;
        Commands::inserted(self.run(|c| cmd.query(c))?)
    }

    fn compare_and_set(
        &self,
        expected_version: u64,
        session: &DeviceSession,
    ) -> Result<(), DeviceError> {
        let call = self.commands.compare_and_set(expected_version, session)?;
        self.commands.swapped(self.run(|c| call.invoke(c))?)
    }

    fn purge_expired(&self, _now: UnixTime, limit: usize) -> Result<usize, DeviceError> {
        if limit == 0 {
            return Ok(0);
        }
        Commands::pinged(self.run(|c| Commands::ping().query(c))?)
    }
}

/// An [`AsyncDeviceSessionStore`](handoff_device::AsyncDeviceSessionStore) shared by every
/// gateway instance through Redis or Valkey, on the redis crate's tokio
/// `ConnectionManager` (one multiplexed connection that reconnects by itself in the
/// background). The keys, commands, script and decoder of [`RedisDeviceSessionStore`], so
/// either reads what the other wrote. Cheap to clone (clones share the connection).
#[cfg(feature = "redis-async")]
#[derive(Clone)]
pub struct AsyncRedisDeviceSessionStore {
    commands: Commands,
    conn: redis::aio::ConnectionManager,
}

#[cfg(feature = "redis-async")]
impl fmt::Debug for AsyncRedisDeviceSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncRedisDeviceSessionStore")
            .field("prefix", &self.commands.prefix)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "redis-async")]
impl AsyncRedisDeviceSessionStore {
    /// The key prefix.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.commands.prefix
    }
}

#[cfg(feature = "redis-async")]
impl handoff_device::AsyncDeviceSessionStore for AsyncRedisDeviceSessionStore {
    async fn load(&self, session_id: &SessionId) -> Result<Option<DeviceSession>, DeviceError> {
        let mut conn = self.conn.clone();
        let reply = self.commands.load(session_id).query_async(&mut conn).await;
        self.commands.loaded(session_id, reply)
    }

    async fn insert(&self, session: &DeviceSession) -> Result<(), DeviceError> {
        let cmd = self.commands.insert(session)?;
        let mut conn = self.conn.clone();
        Commands::inserted(cmd.query_async(&mut conn).await)
    }

    async fn compare_and_set(
        &self,
        expected_version: u64,
        session: &DeviceSession,
    ) -> Result<(), DeviceError> {
        let call = self.commands.compare_and_set(expected_version, session)?;
        let mut conn = self.conn.clone();
        self.commands.swapped(call.invoke_async(&mut conn).await)
    }

    async fn purge_expired(&self, _now: UnixTime, limit: usize) -> Result<usize, DeviceError> {
        if limit == 0 {
            return Ok(0);
        }
        let mut conn = self.conn.clone();
        Commands::pinged(Commands::ping().query_async(&mut conn).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use handoff_device::DeviceId;

    fn session() -> DeviceSession {
        DeviceSession {
            session_id: SessionId::from_bytes([7; 16]),
            device_id: DeviceId::new("dev-1:a_b").unwrap(),
            created_at: UnixTime::from_secs(1_000),
            last_seen: UnixTime::from_secs(1_100),
            idle_timeout: 180,
            max_lifetime: 86_400,
            rotated_at: UnixTime::from_secs(1_050),
            current_hash: [2; 32],
            previous_hash: Some([3; 32]),
            overlap_until: UnixTime::from_secs(1_080),
            generation: 1,
            revoked_at: Some(UnixTime::from_secs(1_200)),
            version: 4,
        }
    }

    fn value(s: &DeviceSession) -> Vec<u8> {
        encode_value(&encode_session(s).unwrap())
    }

    fn refused(v: &[u8]) -> String {
        match decode_value(v) {
            Err(e) => e.to_string(),
            Ok(s) => panic!("{} decoded to {s:?}", String::from_utf8_lossy(v)),
        }
    }

    #[test]
    fn values_are_one_line_and_decode_back() {
        let s = session();
        let v = value(&s);
        let id = b64::encode(&[7; 16]);
        let (h2, h3) = (b64::encode(&[2; 32]), b64::encode(&[3; 32]));
        assert_eq!(
            String::from_utf8(v.clone()).unwrap(),
            format!("hds1 4 {id} dev-1:a_b 1000 1100 180 86400 1050 {h2} {h3} 1080 1 1200 1280")
        );
        assert_eq!(decode_value(&v).unwrap(), s);
        let plain = DeviceSession {
            previous_hash: None,
            revoked_at: None,
            ..session()
        };
        let v = value(&plain);
        assert!(String::from_utf8_lossy(&v).contains(" 1080 1 - 1280"));
        assert_eq!(decode_value(&v).unwrap(), plain);
        // The largest record (every number i64::MAX, a 64-byte device id) is far below
        // the cap.
        let m = i64::MAX;
        let dev = "d".repeat(64);
        let big = format!("hds1 {m} {id} {dev} 0 {m} {m} {m} {m} {h2} {h3} {m} {m} {m} {m}");
        assert!(big.len() < 400, "{}", big.len());
        let s = decode_value(big.as_bytes()).unwrap();
        assert_eq!(s.expires_at().as_secs(), s.version);
        assert_eq!(value(&s), big.as_bytes());
    }

    #[test]
    fn bad_values_are_refused_naming_what_is_wrong() {
        let good = String::from_utf8(value(&session())).unwrap();
        let with = |i: usize, f: &str| {
            let mut fields: Vec<&str> = good.split(' ').collect();
            fields[i] = f;
            fields.join(" ")
        };
        for (v, want) in [
            ("garbage".to_owned(), "fewer fields"),
            (String::new(), "fewer fields"),
            (format!("{good} 1"), "more fields"),
            (good.replace(' ', "  "), "more fields"),
            (with(0, "hds2"), "format tag hds1"),
            (with(1, "-1"), "device_sessions.version is negative"),
            (
                with(1, "v4"),
                "device_sessions.version has an unexpected type",
            ),
            (
                with(1, "99999999999999999999"),
                "device_sessions.version is out of range",
            ),
            (with(1, "+4"), "not spelled the way this store writes it"),
            (with(1, "04"), "not spelled the way this store writes it"),
            (
                with(2, "AAAA"),
                "device_sessions.session_id has a length the schema does not allow",
            ),
            (
                with(2, "!!"),
                "device_sessions.session_id has an unexpected type",
            ),
            (with(3, "dev.1"), "device_sessions.device_id is not a valid"),
            (with(5, "-1"), "device_sessions.last_seen is negative"),
            (
                with(9, "AAAA"),
                "device_sessions.current_hash has a length the schema does not allow",
            ),
            (
                with(10, ""),
                "device_sessions.previous_hash has a length the schema does not allow",
            ),
            (
                with(13, "x"),
                "device_sessions.revoked_at has an unexpected type",
            ),
            (
                with(14, "1281"),
                "device_sessions.expires_at does not match the record's other columns",
            ),
        ] {
            let msg = refused(v.as_bytes());
            assert!(msg.contains(want), "{v}: {msg}");
        }
        // Size first: an oversized value is refused before it is parsed.
        let long = format!("{good}{}", " ".repeat(MAX_VALUE_BYTES));
        assert!(refused(long.as_bytes()).contains("longer than 1024 bytes"));
        assert!(refused(&[0xff; 40]).contains("fewer fields"));
    }

    #[test]
    fn every_truncation_and_byte_flip_is_refused_or_decodes_to_what_encodes_to_it() {
        let v = value(&session());
        for n in 0..v.len() {
            let _ = decode_value(&v[..n]).unwrap_err();
        }
        for i in 0..v.len() {
            for b in [0u8, b' ', b'-', b'0', b'A', 0xff] {
                let mut bad = v.clone();
                bad[i] = b;
                if let Ok(s) = decode_value(&bad) {
                    assert_eq!(value(&s), bad);
                }
            }
        }
    }

    #[test]
    fn a_value_under_another_sessions_key_is_refused() {
        let c = Commands {
            prefix: "gw:s:".into(),
        };
        let s = session();
        assert_eq!(
            c.loaded(&s.session_id, Ok(Some(value(&s)))),
            Ok(Some(s.clone()))
        );
        assert_eq!(c.loaded(&s.session_id, Ok(None)), Ok(None));
        match c.loaded(&SessionId::from_bytes([8; 16]), Ok(Some(value(&s)))) {
            Err(DeviceError::SessionStoreUnavailable(m)) => {
                assert!(m.contains("another session id than its key"), "{m}");
                assert!(m.contains("under the prefix gw:s:"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn commands_name_the_key_and_the_expiry() {
        let c = Commands {
            prefix: "gw:s:".into(),
        };
        let s = session();
        let key = format!("gw:s:{}", b64::encode(&[7; 16]));
        // The script reads the version right after the same tag the values start with.
        assert!(COMPARE_AND_SET.contains(&format!("'^{VALUE_TAG} (%d+) '")));
        assert_eq!(c.key(&s.session_id), key);
        let w = c.write(&s).unwrap();
        assert_eq!((w.key, w.pxat_ms), (key, 1_280_000));
        // The end of time is capped at i64::MAX ms; an expiry of 0 is sent as 1 ms.
        let max = u64::try_from(i64::MAX).unwrap();
        let far = DeviceSession {
            created_at: UnixTime::from_secs(0),
            last_seen: UnixTime::from_secs(max),
            max_lifetime: max,
            ..session()
        };
        assert_eq!(c.write(&far).unwrap().pxat_ms, i64::MAX);
        let zero = DeviceSession {
            created_at: UnixTime::from_secs(0),
            max_lifetime: 0,
            ..session()
        };
        assert_eq!(c.write(&zero).unwrap().pxat_ms, 1);
        // A record the columns cannot hold is refused by name before anything is sent.
        let bad = DeviceSession {
            version: max + 1,
            ..session()
        };
        match c.insert(&bad) {
            Err(DeviceError::SessionStoreUnavailable(m)) => {
                assert!(m.contains("device_sessions.version is out of range"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unreachable_server_is_an_error_never_an_answer() {
        // Port 1 refuses connections; the pool gives up after its (short) wait.
        let store = RedisDeviceSessionStore::builder("redis://127.0.0.1:1/", "t:s:")
            .pool(PoolConfig::default().wait(std::time::Duration::from_millis(200)))
            .build()
            .unwrap();
        let s = session();
        for res in [
            store.load(&s.session_id).map(|_| ()),
            store.insert(&s),
            store.compare_and_set(4, &s),
            store.purge_expired(UnixTime::from_secs(1), 10).map(|_| ()),
        ] {
            assert!(
                matches!(res, Err(DeviceError::SessionStoreUnavailable(_))),
                "{res:?}"
            );
        }
    }
}
