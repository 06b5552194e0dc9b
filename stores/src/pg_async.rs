//! Async PostgreSQL: [`AsyncPgFamilyStore`] implements
//! [`handoff_refresh::AsyncFamilyStore`], [`AsyncPgDeviceRegistry`] implements
//! [`handoff_device::AsyncDeviceRegistry`] and [`AsyncPgDeviceSessionStore`] implements
//! [`handoff_device::AsyncDeviceSessionStore`], on tokio-postgres, pooled by
//! deadpool-postgres.
//!
//! The statements are the sync adapters', made by the same code
//! ([`crate::pg::PgFamilyStore`], [`crate::pg::PgDeviceRegistry`],
//! [`crate::pg::PgDeviceSessionStore`]): one transaction per
//! plan or record, guards in lock order with `FOR UPDATE`, every guard and write
//! row-count checked, conflicts (unique, foreign key, serialization, deadlock) answered as
//! `Conflict` (`VersionConflict` / `AlreadyRegistered` for devices), everything else
//! `StoreUnavailable` (`RegistryUnavailable`); device rows go through the same decoder and
//! sealer as the sync registry, so either reads what the other wrote; device sessions are
//! one statement per operation, row-count checked, decoded as the sync store does.
//! Needs a tokio runtime (the pool spawns each connection's task on it).
//!
//! Pool: deadpool-postgres with `RecyclingMethod::Verified` (a test query before every
//! reuse, so a connection broken by a server restart is replaced, never handed out),
//! bounded waits, and `idle_timeout` / `max_lifetime` enforced on checkout.

use core::fmt;
use std::sync::Arc;

use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime,
};
use handoff_core::UnixTime;
use handoff_refresh::{
    ApplyOutcome, AsyncFamilyStore, FamilyId, FamilyRecord, GcReport, Loaded, RefreshError,
    TokenId, WritePlan,
};

use crate::StoresError;
use crate::pg::device::{self as pg_device, PgDeviceWrite};
use crate::pg::family::{
    FAMILY_NCOLS, Sql, family_at, get, ordered_guards, refs, time, token_at, unavailable,
};
use crate::pg::session as pg_session;
use crate::pg::{Failure, SchemaName, classify};
use crate::pool::PoolConfig;
use crate::rows::{DeviceWrite, SessionWrite, session_from_row};
use crate::seal::SecretSealer;
use handoff_device::{
    AsyncDeviceRegistry, AsyncDeviceSessionStore, DeviceError, DeviceId, DeviceRecord,
    DeviceSession, SessionId,
};

/// An async pool to one database and one schema (same schema as [`crate::pg::PgStore`];
/// migrate it with [`crate::pg::PgStore::migrate`] or [`AsyncPgStore::migrate`]).
#[derive(Clone)]
pub struct AsyncPgStore {
    pool: Pool,
    config: PoolConfig,
    schema: Arc<SchemaName>,
}

impl fmt::Debug for AsyncPgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncPgStore")
            .field("schema", &self.schema.as_str())
            .field("open_connections", &self.pool.status().size)
            .finish_non_exhaustive()
    }
}

fn pool_error(config: &PoolConfig, e: PoolError) -> StoresError {
    match e {
        PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => StoresError::PoolExhausted {
            max: config.max_size,
            waited_ms: u64::try_from(config.wait.as_millis()).unwrap_or(u64::MAX),
        },
        other => StoresError::Connect(other.to_string()),
    }
}

impl AsyncPgStore {
    /// A pool for `url` using `schema`. Connections are opened lazily; each gets
    /// `statement_timeout` and `lock_timeout` set to the pool timeout.
    ///
    /// # Errors
    /// [`StoresError::Config`] for a url that does not parse, a bad schema name or pool
    /// bound.
    pub fn connect(url: &str, schema: &str, pool: PoolConfig) -> Result<Self, StoresError> {
        pool.check()?;
        let schema = SchemaName::new(schema)?;
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|_| StoresError::Config("postgres url does not parse"))?;
        let ms = pool.timeout.as_millis();
        config.connect_timeout(pool.timeout);
        config.options(format!("-c statement_timeout={ms} -c lock_timeout={ms}"));
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let (idle, lifetime) = (pool.idle_timeout, pool.max_lifetime);
        let built = Pool::builder(manager)
            .max_size(pool.max_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(pool.wait))
            .create_timeout(Some(pool.timeout))
            .recycle_timeout(Some(pool.timeout))
            .pre_recycle(Hook::sync_fn(move |_, metrics| {
                if lifetime.is_some_and(|max| metrics.age() > max) {
                    return Err(HookError::message("connection past max_lifetime"));
                }
                if idle.is_some_and(|max| metrics.last_used() > max) {
                    return Err(HookError::message("connection idle past idle_timeout"));
                }
                Ok(())
            }))
            .build()
            .map_err(|_| StoresError::Config("the async pool could not be built"))?;
        Ok(Self {
            pool: built,
            config: pool,
            schema: Arc::new(schema),
        })
    }

    /// The schema name.
    #[must_use]
    pub fn schema(&self) -> &SchemaName {
        &self.schema
    }

    /// Applies the schema (same statements and advisory lock as
    /// [`crate::pg::PgStore::migrate`]) and returns the version.
    ///
    /// # Errors
    /// [`StoresError::Migration`], or a pool error.
    pub async fn migrate(&self) -> Result<i32, StoresError> {
        let sql = self.schema.schema_sql();
        let lock_key = format!("stores/migrate/{}", self.schema.as_str());
        let version_sql = self
            .schema
            .sql("SELECT max(version) FROM {s}.schema_version");
        let mut client = self.client().await?;
        let run = async {
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&lock_key])
                .await?;
            tx.batch_execute(&sql).await?;
            let v: Option<i32> = tx.query_one(version_sql.as_str(), &[]).await?.get(0);
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(v)
        };
        match run.await {
            Ok(Some(v)) if v == crate::pg::SCHEMA_VERSION => Ok(v),
            Ok(v) => Err(StoresError::Migration(format!(
                "the database holds schema version {v:?}; this crate knows only {}",
                crate::pg::SCHEMA_VERSION
            ))),
            Err(e) => Err(StoresError::Migration(e.to_string())),
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoresError> {
        self.pool
            .get()
            .await
            .map_err(|e| pool_error(&self.config, e))
    }

    /// The async device registry on this pool; key secrets sealed by `sealer` (as
    /// [`crate::pg::PgStore::device_registry`]).
    #[must_use]
    pub fn device_registry<S: SecretSealer>(&self, sealer: S) -> AsyncPgDeviceRegistry<S> {
        AsyncPgDeviceRegistry {
            store: self.clone(),
            sql: Arc::new(pg_device::Sql::new(&self.schema)),
            sealer: Arc::new(sealer),
        }
    }

    /// The async device session store on this pool (as
    /// [`crate::pg::PgStore::device_session_store`]).
    #[must_use]
    pub fn device_session_store(&self) -> AsyncPgDeviceSessionStore {
        AsyncPgDeviceSessionStore {
            store: self.clone(),
            sql: Arc::new(pg_session::Sql::new(&self.schema)),
        }
    }

    /// The async refresh-family store on this pool.
    #[must_use]
    pub fn family_store(&self) -> AsyncPgFamilyStore {
        AsyncPgFamilyStore {
            store: self.clone(),
            sql: Arc::new(Sql::new(&self.schema)),
        }
    }
}

/// An [`AsyncFamilyStore`] on PostgreSQL (tokio-postgres + deadpool-postgres).
#[derive(Clone)]
pub struct AsyncPgFamilyStore {
    store: AsyncPgStore,
    sql: Arc<Sql>,
}

impl fmt::Debug for AsyncPgFamilyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncPgFamilyStore")
            .field("schema", &self.store.schema.as_str())
            .finish_non_exhaustive()
    }
}

enum Abort {
    Refuse(RefreshError),
    Sql(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for Abort {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Sql(e)
    }
}

impl From<RefreshError> for Abort {
    fn from(e: RefreshError) -> Self {
        Self::Refuse(e)
    }
}

impl AsyncPgFamilyStore {
    async fn client(&self) -> Result<deadpool_postgres::Client, RefreshError> {
        self.store.client().await.map_err(unavailable)
    }

    async fn apply_in(
        &self,
        client: &mut deadpool_postgres::Client,
        plan: &WritePlan,
    ) -> Result<ApplyOutcome, Abort> {
        let tx = client.transaction().await?;
        for g in ordered_guards(plan) {
            let st = self.sql.guard(g)?;
            let rows = tx.query(st.sql, &refs(&st.params)).await?;
            let holds = if st.holds_when_absent {
                rows.is_empty()
            } else {
                rows.len() == 1
            };
            if !holds {
                tx.rollback().await?;
                return Ok(ApplyOutcome::Conflict);
            }
        }
        for w in &plan.writes {
            let st = self.sql.write(w)?;
            let n = tx.execute(st.sql, &refs(&st.params)).await?;
            if !st.any_count && n != 1 {
                tx.rollback().await?;
                return Ok(ApplyOutcome::Conflict);
            }
        }
        tx.commit().await?;
        Ok(ApplyOutcome::Applied)
    }
}

impl AsyncFamilyStore for AsyncPgFamilyStore {
    async fn load(&self, family: FamilyId, token: TokenId) -> Result<Loaded, RefreshError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                self.sql.load.as_str(),
                &[&family.as_bytes().as_slice(), &token.as_bytes().as_slice()],
            )
            .await
            .map_err(unavailable)?;
        Ok(Loaded {
            family: family_at(&row, 0)?,
            token: token_at(&row, FAMILY_NCOLS)?,
        })
    }

    async fn load_family(&self, family: FamilyId) -> Result<Option<FamilyRecord>, RefreshError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                self.sql.load_family.as_str(),
                &[&family.as_bytes().as_slice()],
            )
            .await
            .map_err(unavailable)?;
        row.map(|r| family_at(&r, 0))
            .transpose()
            .map(Option::flatten)
    }

    async fn live_families_of_subject(
        &self,
        subject: &str,
        now: UnixTime,
        max: usize,
    ) -> Result<Vec<FamilyRecord>, RefreshError> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let now = time(now)?;
        let client = self.client().await?;
        let rows = client
            .query(self.sql.live_of_subject.as_str(), &[&subject, &now, &max])
            .await
            .map_err(unavailable)?;
        rows.iter()
            .filter_map(|r| family_at(r, 0).transpose())
            .collect()
    }

    async fn apply(&self, plan: &WritePlan) -> Result<ApplyOutcome, RefreshError> {
        if plan.guards.is_empty() && plan.writes.is_empty() {
            return Ok(ApplyOutcome::Applied);
        }
        let mut client = self.client().await?;
        match self.apply_in(&mut client, plan).await {
            Ok(o) => Ok(o),
            Err(Abort::Refuse(e)) => Err(e),
            Err(Abort::Sql(e)) => match classify(&e) {
                Failure::Conflict => Ok(ApplyOutcome::Conflict),
                Failure::Error(msg) => Err(RefreshError::StoreUnavailable(msg)),
            },
        }
    }

    async fn gc(&self, now: UnixTime, max_batch: usize) -> Result<GcReport, RefreshError> {
        if max_batch == 0 {
            return Ok(GcReport::default());
        }
        let max = i64::try_from(max_batch).unwrap_or(i64::MAX);
        let now = time(now)?;
        let client = self.client().await?;
        let row = client
            .query_one(self.sql.gc.as_str(), &[&now, &max])
            .await
            .map_err(unavailable)?;
        let count = |i: usize| -> Result<usize, RefreshError> {
            usize::try_from(get::<i64>(&row, i)?)
                .map_err(|_| RefreshError::Inconsistent("negative count"))
        };
        Ok(GcReport {
            families: count(0)?,
            tokens: count(1)?,
        })
    }
}

/// An [`AsyncDeviceRegistry`] on PostgreSQL (tokio-postgres + deadpool-postgres): the
/// contract, statements, row decoder and sealing of [`crate::pg::PgDeviceRegistry`], so
/// the two share a schema and read each other's records. Keys are sealed before the
/// transaction starts (no crypto while holding row locks).
pub struct AsyncPgDeviceRegistry<S> {
    store: AsyncPgStore,
    sql: Arc<pg_device::Sql>,
    sealer: Arc<S>,
}

impl<S> Clone for AsyncPgDeviceRegistry<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            sql: Arc::clone(&self.sql),
            sealer: Arc::clone(&self.sealer),
        }
    }
}

impl<S> fmt::Debug for AsyncPgDeviceRegistry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncPgDeviceRegistry")
            .field("schema", &self.store.schema.as_str())
            .finish_non_exhaustive()
    }
}

impl<S: SecretSealer> AsyncPgDeviceRegistry<S> {
    async fn client(&self) -> Result<deadpool_postgres::Client, DeviceError> {
        self.store.client().await.map_err(pg_device::unavailable)
    }

    /// One transaction: the device row (insert or compare-and-set), then its key rows (the
    /// statements and parameters of the sync registry). `Ok(false)` when the device
    /// statement touched no row.
    async fn write_in(
        &self,
        client: &mut deadpool_postgres::Client,
        expected: Option<i64>,
        w: &PgDeviceWrite<'_>,
    ) -> Result<bool, tokio_postgres::Error> {
        let tx = client.transaction().await?;
        let (sql, params) = w.device_statement(&self.sql, &expected);
        if tx.execute(sql, &params).await? != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        if expected.is_some() {
            tx.execute(self.sql.delete_keys.as_str(), &[&w.device.device_id])
                .await?;
        }
        for row in w.key_rows() {
            tx.execute(self.sql.insert_key.as_str(), &row).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn write(
        &self,
        expected: Option<i64>,
        record: &DeviceRecord,
        conflict: DeviceError,
    ) -> Result<(), DeviceError> {
        let encoded = DeviceWrite::new(record, &*self.sealer)?;
        let w = PgDeviceWrite::new(&encoded)?;
        let mut client = self.client().await?;
        let res = self.write_in(&mut client, expected, &w).await;
        pg_device::written(res, conflict)
    }
}

impl<S: SecretSealer> AsyncDeviceRegistry for AsyncPgDeviceRegistry<S> {
    async fn load(&self, device_id: &DeviceId) -> Result<Option<DeviceRecord>, DeviceError> {
        let client = self.client().await?;
        let rows = client
            .query(self.sql.load.as_str(), &[&device_id.as_str()])
            .await
            .map_err(pg_device::unavailable)?;
        pg_device::decode_rows(&rows, &*self.sealer)
    }

    async fn insert(&self, record: &DeviceRecord) -> Result<(), DeviceError> {
        self.write(None, record, DeviceError::AlreadyRegistered)
            .await
    }

    async fn compare_and_set(
        &self,
        expected_version: u64,
        record: &DeviceRecord,
    ) -> Result<(), DeviceError> {
        let Some(expected) = crate::pg::to_i64(expected_version) else {
            return Err(DeviceError::VersionConflict);
        };
        self.write(Some(expected), record, DeviceError::VersionConflict)
            .await
    }
}

/// An [`AsyncDeviceSessionStore`] on PostgreSQL (tokio-postgres + deadpool-postgres): the
/// contract, statements and row decoder of [`crate::pg::PgDeviceSessionStore`], so the two
/// share a schema and read each other's records.
#[derive(Clone)]
pub struct AsyncPgDeviceSessionStore {
    store: AsyncPgStore,
    sql: Arc<pg_session::Sql>,
}

impl fmt::Debug for AsyncPgDeviceSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncPgDeviceSessionStore")
            .field("schema", &self.store.schema.as_str())
            .finish_non_exhaustive()
    }
}

impl AsyncPgDeviceSessionStore {
    async fn client(&self) -> Result<deadpool_postgres::Client, DeviceError> {
        self.store.client().await.map_err(pg_session::unavailable)
    }

    async fn write(
        &self,
        session: &DeviceSession,
        expected: Option<i64>,
        conflict: DeviceError,
    ) -> Result<(), DeviceError> {
        let encoded = SessionWrite::new(session)?;
        let p = encoded.params()?;
        let (sql, params) = self.sql.write(&p, &expected);
        let client = self.client().await?;
        pg_session::written(client.execute(sql, &params).await, conflict)
    }
}

impl AsyncDeviceSessionStore for AsyncPgDeviceSessionStore {
    async fn load(&self, session_id: &SessionId) -> Result<Option<DeviceSession>, DeviceError> {
        let client = self.client().await?;
        let row = client
            .query_opt(self.sql.load.as_str(), &[&session_id.as_bytes().as_slice()])
            .await
            .map_err(pg_session::unavailable)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn insert(&self, session: &DeviceSession) -> Result<(), DeviceError> {
        self.write(session, None, DeviceError::SessionExists).await
    }

    async fn compare_and_set(
        &self,
        expected_version: u64,
        session: &DeviceSession,
    ) -> Result<(), DeviceError> {
        let Some(expected) = crate::pg::to_i64(expected_version) else {
            return Err(DeviceError::VersionConflict);
        };
        self.write(session, Some(expected), DeviceError::VersionConflict)
            .await
    }

    async fn purge_expired(&self, now: UnixTime, limit: usize) -> Result<usize, DeviceError> {
        let Some((now, limit)) = crate::rows::purge_params(now, limit) else {
            return Ok(0);
        };
        let client = self.client().await?;
        pg_session::purged(
            client
                .execute(self.sql.purge.as_str(), &[&now, &limit])
                .await,
        )
    }
}
