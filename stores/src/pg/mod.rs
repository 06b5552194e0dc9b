//! PostgreSQL adapters: refresh families ([`PgFamilyStore`]), the device registry
//! ([`PgDeviceRegistry`]) and device heartbeat sessions ([`PgDeviceSessionStore`]), with
//! the schema shipped in this crate ([`SCHEMA_SQL`]) and applied by [`PgStore::migrate`].
//!
//! Every statement takes the application's clock as a parameter; the database clock is
//! never read (mixing the two clocks causes false reuse). The adapters are synchronous,
//! like the traits they implement; an async counterpart would mirror them statement for
//! statement on `tokio-postgres`.
//!
//! Connections are plain TCP (`NoTls`): run the database on loopback or a private network,
//! or put a TLS tunnel in front of it.

pub(crate) mod device;
pub(crate) mod family;
pub(crate) mod session;

use std::sync::Arc;

use postgres::error::SqlState;

use r2d2_postgres::PostgresConnectionManager;

use crate::StoresError;
use crate::pool::{PoolConfig, checkout_error};

pub use crate::seal::{AeadSealer, DerivedSecrets, MAX_SEALED_BYTES, SecretSealer};
pub use device::PgDeviceRegistry;
pub use family::PgFamilyStore;
pub use session::PgDeviceSessionStore;

/// The schema, version [`SCHEMA_VERSION`], with `{schema}` standing for the schema name.
pub const SCHEMA_SQL: &str = include_str!("schema.sql");

/// The schema version this crate writes and reads (3: device sessions).
pub const SCHEMA_VERSION: i32 = 3;

/// Longest schema name accepted, in bytes (PostgreSQL's identifier limit).
pub const MAX_SCHEMA_BYTES: usize = 63;

/// A validated schema name: `[a-z_][a-z0-9_]{0,62}`, so it can be spliced into SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaName(String);

impl SchemaName {
    /// Validates a schema name.
    ///
    /// # Errors
    /// [`StoresError::Config`] unless it is 1 to 63 bytes of lower-case ASCII letters,
    /// digits and `_`, not starting with a digit, and not a `pg_` system name.
    pub fn new(name: &str) -> Result<Self, StoresError> {
        let ok_chars = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let first_ok = name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
        if name.len() > MAX_SCHEMA_BYTES || !ok_chars || !first_ok {
            return Err(StoresError::Config(
                "schema name must be 1 to 63 bytes of a-z 0-9 _ not starting with a digit",
            ));
        }
        if name.starts_with("pg_") || name == "information_schema" {
            return Err(StoresError::Config("schema name is reserved by postgresql"));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The schema SQL for this name: what [`PgStore::migrate`] runs.
    #[must_use]
    pub fn schema_sql(&self) -> String {
        SCHEMA_SQL.replace("{schema}", &self.0)
    }

    /// `sql` with every `{s}` replaced by the schema name.
    pub(crate) fn sql(&self, sql: &str) -> String {
        sql.replace("{s}", &self.0)
    }
}

type Manager = PostgresConnectionManager<postgres::NoTls>;

pub(crate) struct Shared {
    pool: r2d2::Pool<Manager>,
    config: PoolConfig,
    pub(crate) schema: SchemaName,
}

/// Sets the per-session timeouts on every new connection.
#[derive(Debug)]
struct SessionSetup(String);

impl r2d2::CustomizeConnection<postgres::Client, postgres::Error> for SessionSetup {
    fn on_acquire(&self, conn: &mut postgres::Client) -> Result<(), postgres::Error> {
        conn.batch_execute(&self.0)
    }
}

/// A connection pool to one database and one schema, from which the adapters are made.
///
/// ```no_run
/// use handoff_stores::PoolConfig;
/// use handoff_stores::pg::PgStore;
///
/// let pg = PgStore::connect("postgres://gw@127.0.0.1/identity", "identity", PoolConfig::default())?;
/// pg.migrate()?; // idempotent; safe to call from every instance at start-up
/// let families = pg.family_store();
/// let sessions = pg.device_session_store(); // handoff_device::DeviceSessionStore
/// # Ok::<(), handoff_stores::StoresError>(())
/// ```
#[derive(Clone)]
pub struct PgStore {
    shared: Arc<Shared>,
}

impl core::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.shared.schema.as_str())
            .field("open_connections", &self.shared.pool.state().connections)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// A pool for `url` (a `postgres://` url or a `key=value` string) using `schema`.
    /// Connections are opened lazily; each gets `statement_timeout` and `lock_timeout`
    /// set to the pool timeout.
    ///
    /// # Errors
    /// [`StoresError::Config`] for a url that does not parse, a bad schema name or pool
    /// bound.
    pub fn connect(url: &str, schema: &str, pool: PoolConfig) -> Result<Self, StoresError> {
        let schema = SchemaName::new(schema)?;
        let mut config: postgres::Config = url
            .parse()
            .map_err(|_| StoresError::Config("postgres url does not parse"))?;
        config.connect_timeout(pool.timeout);
        let ms = pool.timeout.as_millis();
        let setup = format!("SET statement_timeout = {ms}; SET lock_timeout = {ms};");
        let manager = PostgresConnectionManager::new(config, postgres::NoTls);
        let r2d2 = pool.r2d2(manager, Some(Box::new(SessionSetup(setup))))?;
        Ok(Self {
            shared: Arc::new(Shared {
                pool: r2d2,
                config: pool,
                schema,
            }),
        })
    }

    /// The schema name.
    #[must_use]
    pub fn schema(&self) -> &SchemaName {
        &self.shared.schema
    }

    /// Creates the schema and its tables if missing (idempotent, serialized between
    /// concurrent callers by an advisory lock) and returns the schema version.
    ///
    /// # Errors
    /// [`StoresError::Migration`] when the statements fail or the database holds a newer
    /// schema version than this crate knows.
    pub fn migrate(&self) -> Result<i32, StoresError> {
        let sql = self.shared.schema.schema_sql();
        let lock_key = format!("stores/migrate/{}", self.shared.schema.as_str());
        let version_sql = self
            .shared
            .schema
            .sql("SELECT max(version) FROM {s}.schema_version");
        let res = self.shared.with_client(|c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&lock_key])?;
            tx.batch_execute(&sql)?;
            let v: Option<i32> = tx.query_one(version_sql.as_str(), &[])?.get(0);
            tx.commit()?;
            Ok(v)
        })?;
        match res {
            Ok(Some(v)) if v == SCHEMA_VERSION => Ok(v),
            Ok(v) => Err(StoresError::Migration(format!(
                "the database holds schema version {v:?}; this crate knows only {SCHEMA_VERSION}"
            ))),
            Err(e) => Err(StoresError::Migration(e.to_string())),
        }
    }

    /// The refresh-family store on this pool.
    #[must_use]
    pub fn family_store(&self) -> PgFamilyStore {
        PgFamilyStore::new(Arc::clone(&self.shared))
    }

    /// The device registry on this pool; key secrets go through `sealer` (never stored
    /// in plain text).
    #[must_use]
    pub fn device_registry<S: SecretSealer>(&self, sealer: S) -> PgDeviceRegistry<S> {
        PgDeviceRegistry::new(Arc::clone(&self.shared), sealer)
    }

    /// The device session store on this pool (heartbeat sessions of
    /// `handoff_device::Gateway::heartbeat_stored`; token hashes only, nothing to seal).
    #[must_use]
    pub fn device_session_store(&self) -> PgDeviceSessionStore {
        PgDeviceSessionStore::new(Arc::clone(&self.shared))
    }
}

/// How a failed statement is to be read.
pub(crate) enum Failure {
    /// A concurrent write won (unique or foreign-key violation, serialization failure,
    /// deadlock): roll back and report a conflict.
    Conflict,
    /// Anything else: an error.
    Error(String),
}

pub(crate) fn classify(e: &postgres::Error) -> Failure {
    match e.code() {
        Some(c)
            if *c == SqlState::UNIQUE_VIOLATION
                || *c == SqlState::FOREIGN_KEY_VIOLATION
                || *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            Failure::Conflict
        }
        _ => Failure::Error(e.to_string()),
    }
}

impl Shared {
    /// Runs `f` on a pooled connection. The outer error is the pool's (no connection);
    /// the inner one the statement's. A connection that broke is closed, never reused.
    pub(crate) fn with_client<T>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error>,
    ) -> Result<Result<T, postgres::Error>, StoresError> {
        let mut client = self
            .pool
            .get()
            .map_err(|e| checkout_error(&self.config, &e))?;
        // A connection that broke is closed by the pool on return (`is_closed`), never
        // reused.
        Ok(f(&mut client))
    }
}

/// Copying columns out of a PostgreSQL row into [`crate::rows`]' column structs: the
/// type must be the schema's, NULL only where the schema allows it.
pub(crate) mod cells {
    use postgres::Row;
    use postgres::types::FromSql;

    use crate::rows::{Col, Problem, RowError};

    fn opt<'a, T: FromSql<'a>>(row: &'a Row, i: usize, c: &Col) -> Result<Option<T>, RowError> {
        row.try_get(i).map_err(|_| c.err(Problem::Type))
    }

    pub(crate) fn opt_blob(row: &Row, i: usize, c: &Col) -> Result<Option<Vec<u8>>, RowError> {
        opt(row, i, c)
    }

    pub(crate) fn blob(row: &Row, i: usize, c: &Col) -> Result<Vec<u8>, RowError> {
        opt_blob(row, i, c)?.ok_or(c.err(Problem::Null))
    }

    pub(crate) fn opt_text(row: &Row, i: usize, c: &Col) -> Result<Option<Vec<u8>>, RowError> {
        Ok(opt::<String>(row, i, c)?.map(String::into_bytes))
    }

    pub(crate) fn text(row: &Row, i: usize, c: &Col) -> Result<Vec<u8>, RowError> {
        opt_text(row, i, c)?.ok_or(c.err(Problem::Null))
    }

    /// A `bigint` column.
    pub(crate) fn opt_int(row: &Row, i: usize, c: &Col) -> Result<Option<i64>, RowError> {
        opt(row, i, c)
    }

    /// A `bigint` column.
    pub(crate) fn int(row: &Row, i: usize, c: &Col) -> Result<i64, RowError> {
        opt_int(row, i, c)?.ok_or(c.err(Problem::Null))
    }

    /// An `integer` column, widened.
    pub(crate) fn int4(row: &Row, i: usize, c: &Col) -> Result<i64, RowError> {
        opt::<i32>(row, i, c)?
            .map(i64::from)
            .ok_or(c.err(Problem::Null))
    }

    /// A `smallint` column, widened.
    pub(crate) fn int2(row: &Row, i: usize, c: &Col) -> Result<i64, RowError> {
        opt::<i16>(row, i, c)?
            .map(i64::from)
            .ok_or(c.err(Problem::Null))
    }

    crate::rows::impl_cells!(Row);
}

/// `u64` to `bigint`, refusing values beyond its range.
pub(crate) fn to_i64(v: u64) -> Option<i64> {
    i64::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_validated_before_splicing() {
        for bad in [
            "",
            "Upper",
            "1abc",
            "a-b",
            "a;drop table x",
            "pg_catalog",
            "information_schema",
            &"a".repeat(64),
        ] {
            assert!(SchemaName::new(bad).is_err(), "{bad:?} must be refused");
        }
        let s = SchemaName::new("identity_test_1").unwrap();
        let sql = s.schema_sql();
        assert!(sql.contains("CREATE TABLE IF NOT EXISTS identity_test_1.refresh_families"));
        assert!(!sql.contains("{schema}"));
    }

    #[test]
    fn bad_urls_are_config_errors() {
        assert!(matches!(
            PgStore::connect("postgres://[::1", "identity", PoolConfig::default()),
            Err(StoresError::Config(_))
        ));
    }
}
