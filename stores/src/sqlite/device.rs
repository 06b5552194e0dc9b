//! [`DeviceRegistry`] in the SQLite file (tables `devices` and `device_keys`).

use core::fmt;
use std::sync::Arc;

use handoff_device::{DeviceError, DeviceId, DeviceRecord, DeviceRegistry};
use rusqlite::types::ToSql;
use rusqlite::{Connection, TransactionBehavior, params, params_from_iter};

use super::{Shared, cells, describe, is_conflict, to_i64};
use crate::rows::cols::*;
use crate::rows::{
    DeviceColumns, DeviceRowError, DeviceWrite, KeyColumns, RowError, decode_device,
};
use crate::seal::SecretSealer;

const LOAD: &str = "SELECT d.device_id, d.state, d.state_by, d.state_at, d.expires_at, \
     d.version, k.key_id, k.position, k.status, k.retiring_until, k.sealed_secret \
     FROM devices d LEFT JOIN device_keys k ON k.device_id = d.device_id \
     WHERE d.device_id = ?1 ORDER BY k.position LIMIT 5";
const INSERT_DEVICE: &str = "INSERT INTO devices \
     (device_id, state, state_by, state_at, expires_at, version) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (device_id) DO NOTHING";
const INSERT_KEY: &str = "INSERT INTO device_keys \
     (device_id, key_id, position, status, retiring_until, sealed_secret) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const CAS_DEVICE: &str = "UPDATE devices \
     SET state = ?2, state_by = ?3, state_at = ?4, expires_at = ?5, version = ?6 \
     WHERE device_id = ?1 AND version = ?7";
const DELETE_KEYS: &str = "DELETE FROM device_keys WHERE device_id = ?1";

/// A [`DeviceRegistry`] in the SQLite file. Key secrets are stored only as sealed by the
/// [`SecretSealer`]. `insert` and `compare_and_set` are one `BEGIN IMMEDIATE` transaction
/// each, row-count checked ([`DeviceError::AlreadyRegistered`],
/// [`DeviceError::VersionConflict`]); store failures are
/// [`DeviceError::RegistryUnavailable`], never an empty answer.
pub struct SqliteDeviceRegistry<S> {
    shared: Arc<Shared>,
    sealer: S,
}

impl<S> fmt::Debug for SqliteDeviceRegistry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteDeviceRegistry")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl fmt::Display) -> DeviceError {
    DeviceError::RegistryUnavailable(e.to_string())
}

impl<S: SecretSealer> SqliteDeviceRegistry<S> {
    pub(crate) fn new(shared: Arc<Shared>, sealer: S) -> Self {
        Self { shared, sealer }
    }

    /// Runs one write transaction: an insert (`expected` none) or a compare-and-set.
    fn write(
        &self,
        record: &DeviceRecord,
        expected: Option<i64>,
        conflict: DeviceError,
    ) -> Result<(), DeviceError> {
        // Encoded and sealed before the transaction starts (no crypto under the lock).
        let encoded = DeviceWrite::new(record, &self.sealer)?;
        let d = encoded.device()?;
        let keys = encoded.keys()?;
        let res = self.shared.with_conn(|c: &mut Connection| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut row: Vec<&dyn ToSql> = vec![
                &d.device_id,
                &d.state,
                &d.state_by,
                &d.state_at,
                &d.expires_at,
                &d.version,
            ];
            let sql = match &expected {
                None => INSERT_DEVICE,
                Some(exp) => {
                    row.push(exp);
                    CAS_DEVICE
                }
            };
            let n = tx.prepare_cached(sql)?.execute(params_from_iter(row))?;
            if n != 1 {
                tx.rollback()?;
                return Ok(false);
            }
            if expected.is_some() {
                tx.prepare_cached(DELETE_KEYS)?
                    .execute(params![d.device_id])?;
            }
            for k in &keys {
                tx.prepare_cached(INSERT_KEY)?.execute(params![
                    d.device_id,
                    k.key_id,
                    k.position,
                    k.status,
                    k.retiring_until,
                    k.sealed_secret
                ])?;
            }
            tx.commit()?;
            Ok(true)
        });
        match res.map_err(unavailable)? {
            Ok(true) => Ok(()),
            Ok(false) => Err(conflict),
            Err(e) if is_conflict(&e) => Err(conflict),
            Err(e) => Err(unavailable(describe(&e))),
        }
    }
}

impl<S: SecretSealer> DeviceRegistry for SqliteDeviceRegistry<S> {
    fn load(&self, device_id: &DeviceId) -> Result<Option<DeviceRecord>, DeviceError> {
        // Copy the rows out (one statement, one snapshot, at most 5 rows), decode outside.
        let res = self.shared.with_conn(|c| {
            let mut st = c.prepare_cached(LOAD)?;
            let mut rows = st.query(params![device_id.as_str()])?;
            let mut head: Option<DeviceColumns> = None;
            let mut keys = Vec::new();
            while let Some(row) = rows.next()? {
                match copy_row(row, head.is_none()) {
                    Ok((d, k)) => {
                        head = head.or(d);
                        keys.extend(k);
                    }
                    Err(e) => return Ok(Err(e)),
                }
            }
            Ok(Ok((head, keys)))
        });
        let (head, keys) = res
            .map_err(unavailable)?
            .map_err(|e| unavailable(describe(&e)))?
            .map_err(|e| DeviceError::from(DeviceRowError::Row(e)))?;
        let Some(head) = head else {
            return Ok(None);
        };
        Ok(Some(decode_device(&head, &keys, &self.sealer)?))
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

/// The columns of one row of the load query: the device's (when `with_device`) and its
/// key's (none when the device has no key rows).
fn copy_row(
    row: &rusqlite::Row<'_>,
    with_device: bool,
) -> Result<(Option<DeviceColumns>, Option<KeyColumns>), RowError> {
    let device = if with_device {
        Some(DeviceColumns {
            device_id: cells::text(row, 0, &D_DEVICE_ID)?,
            state: cells::text(row, 1, &D_STATE)?,
            state_by: cells::opt_text(row, 2, &D_STATE_BY)?,
            state_at: cells::opt_int(row, 3, &D_STATE_AT)?,
            expires_at: cells::opt_int(row, 4, &D_EXPIRES_AT)?,
            version: cells::int(row, 5, &D_VERSION)?,
        })
    } else {
        None
    };
    let key = match cells::opt_text(row, 6, &K_KEY_ID)? {
        None => None, // the left join found no key row
        Some(key_id) => Some(KeyColumns {
            key_id,
            position: cells::int(row, 7, &K_POSITION)?,
            status: cells::text(row, 8, &K_STATUS)?,
            retiring_until: cells::opt_int(row, 9, &K_RETIRING_UNTIL)?,
            sealed_secret: cells::blob(row, 10, &K_SEALED_SECRET)?,
        }),
    };
    Ok((device, key))
}
