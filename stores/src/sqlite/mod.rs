//! The embedded default for one machine: the replay log ([`SqliteReplayLog`]), refresh
//! families ([`SqliteFamilyStore`]), the device registry ([`SqliteDeviceRegistry`]) and
//! device heartbeat sessions ([`SqliteDeviceSessionStore`]) in one SQLite file (rusqlite
//! with its bundled SQLite: no system library needed).
//!
//! * WAL journal, `synchronous = FULL` (default), a busy timeout on every connection:
//!   several threads and several processes on one machine may share one file; a writer
//!   waits at most the busy timeout for another, then fails closed with a clear error.
//! * Every write plan runs in one `BEGIN IMMEDIATE` transaction (the write lock is taken
//!   before the first guard is read, so no two plans interleave); every guard and every
//!   write is row-count checked; anything unexpected rolls back and answers `Conflict`.
//! * A schema version (`PRAGMA user_version`) with forward migrations, applied by
//!   [`SqliteStore::open`] under the write lock (concurrent openers serialize).
//! * Device sessions are written one statement at a time (`INSERT ... ON CONFLICT DO
//!   NOTHING`, `UPDATE ... WHERE session_id = ? AND version = ?`), row-count checked.
//! * Garbage collection in bounded batches ([`SqliteReplayLog::gc`],
//!   `FamilyStore::gc`, `DeviceSessionStore::purge_expired`).
//!
//! Do not put the file on a network file system (SQLite's locking needs a local one).

mod device;
mod family;
mod replay;
mod session;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::StoresError;
use crate::pool::{PoolConfig, checkout_error};

pub use device::SqliteDeviceRegistry;
pub use family::SqliteFamilyStore;
pub use replay::{DEFAULT_CAPACITY, DEFAULT_HORIZON_SECS, GC_BATCH, SqliteReplayLog};
pub use session::SqliteDeviceSessionStore;

/// The schema migrations: entry `i` takes the file from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("schema_v1.sql"),
    include_str!("schema_v2.sql"),
    include_str!("schema_v3.sql"),
];

/// The schema version this crate writes and reads (3: device sessions).
pub const SCHEMA_VERSION: i64 = 3;

/// Default busy timeout: how long a writer waits for another before failing closed.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How durable a commit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous = FULL`: a commit that returned survives a process kill and a power
    /// loss.
    #[default]
    Full,
    /// `synchronous = NORMAL`: a commit that returned survives a process kill, but the last
    /// commits may be lost on a power loss or an OS crash (faster).
    Normal,
}

/// Settings of [`SqliteStore::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteConfig {
    /// Connections of this process (default 8; SQLite has one writer at a time anyway).
    pub pool: PoolConfig,
    /// How long a statement waits for another writer (default 5 s, 1 ms to 60 s).
    pub busy_timeout: Duration,
    /// Commit durability (default [`Durability::Full`]).
    pub durability: Durability,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            pool: PoolConfig::with_max_size(8),
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            durability: Durability::Full,
        }
    }
}

impl SqliteConfig {
    /// Sets the busy timeout.
    #[must_use]
    pub const fn busy_timeout(mut self, d: Duration) -> Self {
        self.busy_timeout = d;
        self
    }

    /// Sets the pool bounds.
    #[must_use]
    pub const fn pool(mut self, pool: PoolConfig) -> Self {
        self.pool = pool;
        self
    }

    /// Sets the durability.
    #[must_use]
    pub const fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }
}

pub(crate) struct Shared {
    pool: r2d2::Pool<SqliteConnectionManager>,
    config: SqliteConfig,
    path: PathBuf,
}

/// One SQLite file, from which the stores are made.
///
/// ```
/// use handoff_stores::sqlite::{SqliteConfig, SqliteStore};
///
/// let dir = std::env::temp_dir().join(format!("handoff-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let db = SqliteStore::open(dir.join("identity.db"), SqliteConfig::default())?;
/// assert_eq!(db.schema_version()?, handoff_stores::sqlite::SCHEMA_VERSION);
/// let replay = db.replay_log();        // handoff_core::replay::ReplayLog
/// let families = db.family_store();    // handoff_refresh::FamilyStore
/// let sessions = db.device_session_store(); // handoff_device::DeviceSessionStore
/// # drop((replay, families, sessions, db));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
}

impl core::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.shared.path)
            .field("open_connections", &self.shared.pool.state().connections)
            .finish_non_exhaustive()
    }
}

fn setup(conn: &mut Connection, config: &SqliteConfig) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(config.busy_timeout)?;
    let sync = match config.durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    // journal_mode returns a row; the rest are plain settings.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "journal_mode stayed {mode}; WAL is required"
        )));
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON; PRAGMA trusted_schema = OFF;"
    ))
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `path`, sets WAL, the busy timeout and
    /// durability on every connection, and migrates the schema to [`SCHEMA_VERSION`].
    ///
    /// # Errors
    /// [`StoresError::Config`] for bad settings, [`StoresError::Connect`] when the file
    /// cannot be opened, [`StoresError::Migration`] when the file holds a newer schema
    /// or a migration fails.
    pub fn open(path: impl AsRef<Path>, config: SqliteConfig) -> Result<Self, StoresError> {
        if config.busy_timeout.is_zero() || config.busy_timeout > Duration::from_secs(60) {
            return Err(StoresError::Config(
                "busy_timeout must lie between 1 ms and 60 s",
            ));
        }
        let path = path.as_ref().to_path_buf();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let cfg = config;
        let manager = SqliteConnectionManager::file(&path)
            .with_flags(flags)
            .with_init(move |c| setup(c, &cfg));
        let pool = config.pool.r2d2(manager, None)?;
        let store = Self {
            shared: Arc::new(Shared { pool, config, path }),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The schema version the file holds.
    ///
    /// # Errors
    /// [`StoresError::Connect`] or [`StoresError::Backend`].
    pub fn schema_version(&self) -> Result<i64, StoresError> {
        self.shared
            .with_conn(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))?
            .map_err(backend)
    }

    fn migrate(&self) -> Result<i64, StoresError> {
        let res = self.shared.with_conn(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let v: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            let Ok(from) = usize::try_from(v) else {
                return Ok(Err(v));
            };
            if from > MIGRATIONS.len() {
                return Ok(Err(v));
            }
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(from) {
                tx.execute_batch(sql)?;
                tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
            }
            let v: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            tx.commit()?;
            Ok(Ok(v))
        })?;
        match res {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(v)) => Err(StoresError::Migration(format!(
                "the file holds schema version {v}; this crate knows only up to {SCHEMA_VERSION}: upgrade the stores crate"
            ))),
            Err(e) => Err(StoresError::Migration(e.to_string())),
        }
    }

    /// `PRAGMA integrity_check`: `Ok(())` when SQLite reports `ok`.
    ///
    /// # Errors
    /// [`StoresError::Corrupt`] naming nothing secret, or a connection error.
    pub fn integrity_check(&self) -> Result<(), StoresError> {
        let rows = self
            .shared
            .with_conn(|c| {
                let mut st = c.prepare("PRAGMA integrity_check")?;
                st.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()
            })?
            .map_err(backend)?;
        if rows.len() == 1 && rows[0] == "ok" {
            Ok(())
        } else {
            Err(StoresError::Corrupt(
                "PRAGMA integrity_check did not answer ok",
            ))
        }
    }

    /// The replay log (and device nonce store) in this file, with the default capacity
    /// and horizon.
    #[must_use]
    pub fn replay_log(&self) -> SqliteReplayLog {
        SqliteReplayLog::new(Arc::clone(&self.shared))
    }

    /// The refresh-family store in this file.
    #[must_use]
    pub fn family_store(&self) -> SqliteFamilyStore {
        SqliteFamilyStore::new(Arc::clone(&self.shared))
    }

    /// The device registry in this file; key secrets go through `sealer` (never stored in
    /// plain text).
    #[must_use]
    pub fn device_registry<S: crate::SecretSealer>(&self, sealer: S) -> SqliteDeviceRegistry<S> {
        SqliteDeviceRegistry::new(Arc::clone(&self.shared), sealer)
    }

    /// The device session store in this file (heartbeat sessions of
    /// `handoff_device::Gateway::heartbeat_stored`; token hashes only, nothing to seal).
    #[must_use]
    pub fn device_session_store(&self) -> SqliteDeviceSessionStore {
        SqliteDeviceSessionStore::new(Arc::clone(&self.shared))
    }
}

fn backend(e: rusqlite::Error) -> StoresError {
    StoresError::Backend(describe(&e))
}

/// An error message that says what to do about the common cases.
pub(crate) fn describe(e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => format!(
            "sqlite: {e}: another writer held the file longer than the busy timeout; retry, or raise busy_timeout"
        ),
        Some(ErrorCode::DiskFull) => format!("sqlite: {e}: the disk is full"),
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            format!("sqlite: {e}: check the file's path and permissions")
        }
        _ => format!("sqlite: {e}"),
    }
}

/// Whether a failed statement lost a race (a constraint: a concurrent insert won).
pub(crate) fn is_conflict(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation)
}

impl Shared {
    /// Runs `f` on a pooled connection: the outer error is the pool's, the inner one the
    /// statement's.
    pub(crate) fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<Result<T, rusqlite::Error>, StoresError> {
        let mut conn = self
            .pool
            .get()
            .map_err(|e| checkout_error(&self.config.pool, &e))?;
        Ok(f(&mut conn))
    }
}

/// Copying columns out of a SQLite row into [`crate::rows`]' column structs: the storage
/// class must be the schema's (text stays raw bytes; [`crate::rows`] checks its UTF-8),
/// NULL only where the schema allows it.
pub(crate) mod cells {
    use rusqlite::Row;
    use rusqlite::types::ValueRef;

    use crate::rows::{Col, Problem, RowError};

    fn cell<'r>(row: &'r Row<'_>, i: usize, c: &Col) -> Result<ValueRef<'r>, RowError> {
        row.get_ref(i).map_err(|_| c.err(Problem::Type))
    }

    pub(crate) fn opt_blob(row: &Row<'_>, i: usize, c: &Col) -> Result<Option<Vec<u8>>, RowError> {
        match cell(row, i, c)? {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(b) => Ok(Some(b.to_vec())),
            _ => Err(c.err(Problem::Type)),
        }
    }

    pub(crate) fn blob(row: &Row<'_>, i: usize, c: &Col) -> Result<Vec<u8>, RowError> {
        opt_blob(row, i, c)?.ok_or(c.err(Problem::Null))
    }

    pub(crate) fn opt_text(row: &Row<'_>, i: usize, c: &Col) -> Result<Option<Vec<u8>>, RowError> {
        match cell(row, i, c)? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(b) => Ok(Some(b.to_vec())),
            _ => Err(c.err(Problem::Type)),
        }
    }

    pub(crate) fn text(row: &Row<'_>, i: usize, c: &Col) -> Result<Vec<u8>, RowError> {
        opt_text(row, i, c)?.ok_or(c.err(Problem::Null))
    }

    pub(crate) fn opt_int(row: &Row<'_>, i: usize, c: &Col) -> Result<Option<i64>, RowError> {
        match cell(row, i, c)? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(v) => Ok(Some(v)),
            _ => Err(c.err(Problem::Type)),
        }
    }

    pub(crate) fn int(row: &Row<'_>, i: usize, c: &Col) -> Result<i64, RowError> {
        opt_int(row, i, c)?.ok_or(c.err(Problem::Null))
    }

    crate::rows::impl_cells!(Row<'_>);
}

/// `u64` to `INTEGER`, refusing values beyond its range.
pub(crate) fn to_i64(v: u64) -> Option<i64> {
    i64::try_from(v).ok()
}
