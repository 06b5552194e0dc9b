//! [`DeviceRegistry`] on PostgreSQL (tables `devices` and `device_keys`).

use core::fmt;
use std::sync::Arc;

use handoff_core::UnixTime;
use handoff_device::{DeviceError, DeviceId, DeviceRecord, DeviceRegistry, DeviceState, KeyStatus};
use postgres::Row;

use super::{Failure, Shared, cells, classify, to_i64};
use crate::rows::cols::*;
use crate::rows::{DeviceColumns, DeviceRowError, KeyColumns, RowError, decode_device};
use crate::seal::SecretSealer;

/// The registry's statements for one schema (shared by the sync and async adapters).
pub(crate) struct Sql {
    pub(crate) load: String,
    pub(crate) insert_device: String,
    pub(crate) insert_key: String,
    pub(crate) cas_device: String,
    pub(crate) delete_keys: String,
}

impl Sql {
    pub(crate) fn new(schema: &super::SchemaName) -> Self {
        let s = |q: &str| schema.sql(q);
        Self {
            load: s(
                "SELECT d.device_id, d.state, d.state_by, d.state_at, d.expires_at, d.version, \
                 k.key_id, k.position, k.status, k.retiring_until, k.sealed_secret \
                 FROM {s}.devices d LEFT JOIN {s}.device_keys k ON k.device_id = d.device_id \
                 WHERE d.device_id = $1 ORDER BY k.position LIMIT 5",
            ),
            insert_device: s("INSERT INTO {s}.devices \
                 (device_id, state, state_by, state_at, expires_at, version) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (device_id) DO NOTHING"),
            insert_key: s("INSERT INTO {s}.device_keys \
                 (device_id, key_id, position, status, retiring_until, sealed_secret) \
                 VALUES ($1, $2, $3, $4, $5, $6)"),
            cas_device: s("UPDATE {s}.devices \
                 SET state = $2, state_by = $3, state_at = $4, expires_at = $5, version = $6 \
                 WHERE device_id = $1 AND version = $7"),
            delete_keys: s("DELETE FROM {s}.device_keys WHERE device_id = $1"),
        }
    }
}

/// A [`DeviceRegistry`] on PostgreSQL. Key secrets are stored only as sealed by the
/// [`SecretSealer`] (an [`super::AeadSealer`] under a key-encryption key the database
/// does not hold, or [`super::DerivedSecrets`], which stores none).
///
/// `insert` is `INSERT ... ON CONFLICT DO NOTHING` (one row, else
/// [`DeviceError::AlreadyRegistered`]); `compare_and_set` is `UPDATE devices ... WHERE
/// device_id = $1 AND version = $expected` (one row, else [`DeviceError::VersionConflict`])
/// followed by replacing the key rows, in one transaction. Store failures are
/// [`DeviceError::RegistryUnavailable`], never an empty answer.
pub struct PgDeviceRegistry<S> {
    shared: Arc<Shared>,
    sql: Sql,
    sealer: S,
}

impl<S> fmt::Debug for PgDeviceRegistry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgDeviceRegistry")
            .field("schema", &self.shared.schema.as_str())
            .finish_non_exhaustive()
    }
}

pub(crate) fn unavailable(e: impl fmt::Display) -> DeviceError {
    DeviceError::RegistryUnavailable(e.to_string())
}

pub(crate) fn big(t: UnixTime) -> Result<i64, DeviceError> {
    to_i64(t.as_secs()).ok_or_else(|| unavailable("a time beyond the bigint range"))
}

/// The columns of a state: (state, by, at, expires_at).
pub(crate) type StateCols<'a> = (&'static str, Option<&'a str>, Option<i64>, Option<i64>);

pub(crate) fn state_cols(s: &DeviceState) -> Result<StateCols<'_>, DeviceError> {
    Ok(match s {
        DeviceState::Pending {
            requested_at,
            expires_at,
        } => (
            "pending",
            None,
            Some(big(*requested_at)?),
            Some(big(*expires_at)?),
        ),
        DeviceState::Approved { by, at } => ("approved", Some(by.as_str()), Some(big(*at)?), None),
        DeviceState::Suspended { by, at } => {
            ("suspended", Some(by.as_str()), Some(big(*at)?), None)
        }
        DeviceState::Revoked { by, at } => ("revoked", Some(by.as_str()), Some(big(*at)?), None),
        DeviceState::Denied { by, at } => ("denied", Some(by.as_str()), Some(big(*at)?), None),
        DeviceState::Expired { at } => ("expired", None, Some(big(*at)?), None),
        _ => {
            return Err(unavailable(
                "a device state this adapter does not know; upgrade the stores crate",
            ));
        }
    })
}

enum Abort {
    Sql(postgres::Error),
    Device(DeviceError),
}

impl From<postgres::Error> for Abort {
    fn from(e: postgres::Error) -> Self {
        Self::Sql(e)
    }
}

impl From<DeviceError> for Abort {
    fn from(e: DeviceError) -> Self {
        Self::Device(e)
    }
}

impl<S: SecretSealer> PgDeviceRegistry<S> {
    pub(crate) fn new(shared: Arc<Shared>, sealer: S) -> Self {
        let sql = Sql::new(&shared.schema);
        Self {
            shared,
            sql,
            sealer,
        }
    }

    fn sealed_keys(&self, record: &DeviceRecord) -> Result<Vec<(i16, SealedKey)>, DeviceError> {
        sealed_keys(&self.sealer, record)
    }

    fn insert_keys(
        &self,
        tx: &mut postgres::Transaction<'_>,
        device: &str,
        keys: &[(i16, SealedKey)],
    ) -> Result<(), postgres::Error> {
        for (pos, k) in keys {
            tx.execute(
                self.sql.insert_key.as_str(),
                &[&device, &k.key_id, pos, &k.status, &k.until, &k.sealed],
            )?;
        }
        Ok(())
    }

    fn finish(
        &self,
        res: Result<Result<Result<(), DeviceError>, postgres::Error>, crate::StoresError>,
        conflict: DeviceError,
    ) -> Result<(), DeviceError> {
        match res.map_err(unavailable)? {
            Ok(inner) => inner,
            Err(e) => match classify(&e) {
                Failure::Conflict => Err(conflict),
                Failure::Error(msg) => Err(unavailable(msg)),
            },
        }
    }

    fn insert_in(
        &self,
        c: &mut postgres::Client,
        record: &DeviceRecord,
        keys: &[(i16, SealedKey)],
    ) -> Result<(), Abort> {
        let (state, by, at, expires) = state_cols(record.state())?;
        let version = to_i64(record.version()).ok_or_else(|| unavailable("version too large"))?;
        let device = record.device_id().as_str();
        let mut tx = c.transaction()?;
        let n = tx.execute(
            self.sql.insert_device.as_str(),
            &[&device, &state, &by, &at, &expires, &version],
        )?;
        if n != 1 {
            tx.rollback()?;
            return Err(Abort::Device(DeviceError::AlreadyRegistered));
        }
        self.insert_keys(&mut tx, device, keys)?;
        tx.commit()?;
        Ok(())
    }

    fn cas_in(
        &self,
        c: &mut postgres::Client,
        expected: i64,
        record: &DeviceRecord,
        keys: &[(i16, SealedKey)],
    ) -> Result<(), Abort> {
        let (state, by, at, expires) = state_cols(record.state())?;
        let version = to_i64(record.version()).ok_or_else(|| unavailable("version too large"))?;
        let device = record.device_id().as_str();
        let mut tx = c.transaction()?;
        let n = tx.execute(
            self.sql.cas_device.as_str(),
            &[&device, &state, &by, &at, &expires, &version, &expected],
        )?;
        if n != 1 {
            tx.rollback()?;
            return Err(Abort::Device(DeviceError::VersionConflict));
        }
        tx.execute(self.sql.delete_keys.as_str(), &[&device])?;
        self.insert_keys(&mut tx, device, keys)?;
        tx.commit()?;
        Ok(())
    }
}

/// A key row to write: the secret already sealed.
pub(crate) struct SealedKey {
    pub(crate) key_id: String,
    pub(crate) status: &'static str,
    pub(crate) until: Option<i64>,
    pub(crate) sealed: Vec<u8>,
}

/// Seals every key before the transaction starts (no crypto while holding locks).
pub(crate) fn sealed_keys<S: SecretSealer>(
    sealer: &S,
    record: &DeviceRecord,
) -> Result<Vec<(i16, SealedKey)>, DeviceError> {
    let mut out = Vec::with_capacity(record.keys().len());
    for (pos, k) in (0i16..).zip(record.keys()) {
        let sealed = sealer
            .seal(record.device_id(), k.key_id(), k.secret())
            .map_err(|e| match e {
                crate::StoresError::Config(msg) => DeviceError::InvalidRecord(msg),
                other => unavailable(other),
            })?;
        let (status, until) = match k.status() {
            KeyStatus::Active => ("active", None),
            KeyStatus::Retiring { until } => ("retiring", Some(big(until)?)),
            _ => return Err(unavailable("a key status this adapter does not know")),
        };
        out.push((
            pos,
            SealedKey {
                key_id: k.key_id().as_str().to_owned(),
                status,
                until,
                sealed,
            },
        ));
    }
    Ok(out)
}

impl<S: SecretSealer> DeviceRegistry for PgDeviceRegistry<S> {
    fn load(&self, device_id: &DeviceId) -> Result<Option<DeviceRecord>, DeviceError> {
        let rows = self
            .shared
            .with_client(|c| c.query(self.sql.load.as_str(), &[&device_id.as_str()]))
            .map_err(unavailable)?
            .map_err(unavailable)?;
        decode_rows(&rows, &self.sealer)
    }

    fn insert(&self, record: &DeviceRecord) -> Result<(), DeviceError> {
        let keys = self.sealed_keys(record)?;
        let res = self
            .shared
            .with_client(|c| lift(self.insert_in(c, record, &keys)));
        self.finish(res, DeviceError::AlreadyRegistered)
    }

    fn compare_and_set(
        &self,
        expected_version: u64,
        record: &DeviceRecord,
    ) -> Result<(), DeviceError> {
        let keys = self.sealed_keys(record)?;
        let Some(expected) = to_i64(expected_version) else {
            return Err(DeviceError::VersionConflict);
        };
        let res = self
            .shared
            .with_client(|c| lift(self.cas_in(c, expected, record, &keys)));
        self.finish(res, DeviceError::VersionConflict)
    }
}

/// Statement errors go out (so a broken connection is discarded), decisions stay inside.
fn lift(r: Result<(), Abort>) -> Result<Result<(), DeviceError>, postgres::Error> {
    match r {
        Ok(()) => Ok(Ok(())),
        Err(Abort::Sql(e)) => Err(e),
        Err(Abort::Device(d)) => Ok(Err(d)),
    }
}

/// The record the rows of the load query hold (none when there are no rows), decoded and
/// unsealed by the shared decoder.
pub(crate) fn decode_rows<S: SecretSealer>(
    rows: &[Row],
    sealer: &S,
) -> Result<Option<DeviceRecord>, DeviceError> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let copied = device_columns(first).and_then(|head| {
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            keys.extend(key_columns(row)?);
        }
        Ok((head, keys))
    });
    let (head, keys) = copied.map_err(|e| DeviceError::from(DeviceRowError::Row(e)))?;
    Ok(Some(decode_device(&head, &keys, sealer)?))
}

/// The device's columns of a row of the load query.
fn device_columns(row: &Row) -> Result<DeviceColumns, RowError> {
    Ok(DeviceColumns {
        device_id: cells::text(row, 0, &D_DEVICE_ID)?,
        state: cells::text(row, 1, &D_STATE)?,
        state_by: cells::opt_text(row, 2, &D_STATE_BY)?,
        state_at: cells::opt_int(row, 3, &D_STATE_AT)?,
        expires_at: cells::opt_int(row, 4, &D_EXPIRES_AT)?,
        version: cells::int(row, 5, &D_VERSION)?,
    })
}

/// The key's columns of a row of the load query; none when the device has no key rows.
fn key_columns(row: &Row) -> Result<Option<KeyColumns>, RowError> {
    let Some(key_id) = cells::opt_text(row, 6, &K_KEY_ID)? else {
        return Ok(None);
    };
    Ok(Some(KeyColumns {
        key_id,
        position: cells::int2(row, 7, &K_POSITION)?,
        status: cells::text(row, 8, &K_STATUS)?,
        retiring_until: cells::opt_int(row, 9, &K_RETIRING_UNTIL)?,
        sealed_secret: cells::blob(row, 10, &K_SEALED_SECRET)?,
    }))
}
