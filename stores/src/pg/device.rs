//! [`DeviceRegistry`] on PostgreSQL (tables `devices` and `device_keys`).

use core::fmt;
use std::sync::Arc;

use handoff_device::{DeviceError, DeviceId, DeviceRecord, DeviceRegistry};
use postgres::Row;
use postgres::types::ToSql;

use super::{Failure, Shared, cells, classify, to_i64};
use crate::rows::cols::*;
use crate::rows::{
    DeviceColumns, DeviceParams, DeviceRowError, DeviceWrite, KeyColumns, KeyParams, RowError,
    decode_device,
};
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

/// A [`DeviceWrite`] bound for PostgreSQL (shared by the sync and async registries): the
/// statements' parameters, key positions as `smallint`.
pub(crate) struct PgDeviceWrite<'a> {
    pub(crate) device: DeviceParams<'a>,
    keys: Vec<(i16, KeyParams<'a>)>,
}

/// A statement's parameters.
pub(crate) type Params<'a> = Vec<&'a (dyn ToSql + Sync)>;

impl<'a> PgDeviceWrite<'a> {
    pub(crate) fn new(w: &'a DeviceWrite) -> Result<Self, DeviceError> {
        let keys = w
            .keys()?
            .into_iter()
            .map(|k| {
                i16::try_from(k.position)
                    .map(|p| (p, k))
                    .map_err(|_| unavailable("a key position beyond smallint"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            device: w.device()?,
            keys,
        })
    }

    /// The `devices` statement: an insert (`expected` none) or a compare-and-set against
    /// version `expected`; either must touch exactly one row.
    pub(crate) fn device_statement<'s>(
        &'s self,
        sql: &'s Sql,
        expected: &'s Option<i64>,
    ) -> (&'s str, Params<'s>) {
        let d = &self.device;
        let mut params: Params<'s> = vec![
            &d.device_id,
            &d.state,
            &d.state_by,
            &d.state_at,
            &d.expires_at,
            &d.version,
        ];
        match expected {
            None => (sql.insert_device.as_str(), params),
            Some(v) => {
                params.push(v);
                (sql.cas_device.as_str(), params)
            }
        }
    }

    /// The parameters of each `device_keys` insert.
    pub(crate) fn key_rows(&self) -> impl Iterator<Item = Params<'_>> {
        self.keys.iter().map(|(pos, k)| -> Params<'_> {
            vec![
                &self.device.device_id,
                &k.key_id,
                pos,
                &k.status,
                &k.retiring_until,
                &k.sealed_secret,
            ]
        })
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

    /// One transaction: the device row (insert or compare-and-set), then its key rows.
    /// `Ok(false)` when the device statement touched no row.
    fn write_in(
        &self,
        c: &mut postgres::Client,
        expected: Option<i64>,
        w: &PgDeviceWrite<'_>,
    ) -> Result<bool, postgres::Error> {
        let mut tx = c.transaction()?;
        let (sql, params) = w.device_statement(&self.sql, &expected);
        if tx.execute(sql, &params)? != 1 {
            tx.rollback()?;
            return Ok(false);
        }
        if expected.is_some() {
            tx.execute(self.sql.delete_keys.as_str(), &[&w.device.device_id])?;
        }
        for row in w.key_rows() {
            tx.execute(self.sql.insert_key.as_str(), &row)?;
        }
        tx.commit()?;
        Ok(true)
    }

    fn write(
        &self,
        record: &DeviceRecord,
        expected: Option<i64>,
        conflict: DeviceError,
    ) -> Result<(), DeviceError> {
        let encoded = DeviceWrite::new(record, &self.sealer)?;
        let w = PgDeviceWrite::new(&encoded)?;
        let res = self.shared.with_client(|c| self.write_in(c, expected, &w));
        written(res.map_err(unavailable)?, conflict)
    }
}

/// A write's outcome: no row touched, or a conflicting concurrent write, is `conflict`.
pub(crate) fn written(
    res: Result<bool, postgres::Error>,
    conflict: DeviceError,
) -> Result<(), DeviceError> {
    match res {
        Ok(true) => Ok(()),
        Ok(false) => Err(conflict),
        Err(e) => match classify(&e) {
            Failure::Conflict => Err(conflict),
            Failure::Error(msg) => Err(unavailable(msg)),
        },
    }
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
        self.write(record, None, DeviceError::AlreadyRegistered)
    }

    fn compare_and_set(
        &self,
        expected_version: u64,
        record: &DeviceRecord,
    ) -> Result<(), DeviceError> {
        let Some(expected) = to_i64(expected_version) else {
            return Err(DeviceError::VersionConflict);
        };
        self.write(record, Some(expected), DeviceError::VersionConflict)
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
