//! [`DeviceRegistry`] in the SQLite file (tables `devices` and `device_keys`).

use core::fmt;
use std::sync::Arc;

use handoff_core::UnixTime;
use handoff_device::{DeviceError, DeviceId, DeviceRecord, DeviceRegistry, DeviceState, KeyStatus};
use rusqlite::types::Value;
use rusqlite::{Connection, TransactionBehavior, params};

use super::{Shared, cells, describe, is_conflict, to_i64};
use crate::rows::cols::*;
use crate::rows::{DeviceColumns, DeviceRowError, KeyColumns, RowError, decode_device};
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

fn big(t: UnixTime) -> Result<i64, DeviceError> {
    to_i64(t.as_secs()).ok_or_else(|| unavailable("a time beyond the INTEGER range"))
}

fn state_cols(s: &DeviceState) -> Result<[Value; 4], DeviceError> {
    let text = |s: &str| Value::Text(s.to_owned());
    let int = |t: UnixTime| big(t).map(Value::Integer);
    Ok(match s {
        DeviceState::Pending {
            requested_at,
            expires_at,
        } => [
            text("pending"),
            Value::Null,
            int(*requested_at)?,
            int(*expires_at)?,
        ],
        DeviceState::Approved { by, at } => {
            [text("approved"), text(by.as_str()), int(*at)?, Value::Null]
        }
        DeviceState::Suspended { by, at } => {
            [text("suspended"), text(by.as_str()), int(*at)?, Value::Null]
        }
        DeviceState::Revoked { by, at } => {
            [text("revoked"), text(by.as_str()), int(*at)?, Value::Null]
        }
        DeviceState::Denied { by, at } => {
            [text("denied"), text(by.as_str()), int(*at)?, Value::Null]
        }
        DeviceState::Expired { at } => [text("expired"), Value::Null, int(*at)?, Value::Null],
        _ => {
            return Err(unavailable(
                "a device state this adapter does not know; upgrade the stores crate",
            ));
        }
    })
}

struct SealedKey {
    key_id: String,
    status: &'static str,
    until: Option<i64>,
    sealed: Vec<u8>,
}

impl<S: SecretSealer> SqliteDeviceRegistry<S> {
    pub(crate) fn new(shared: Arc<Shared>, sealer: S) -> Self {
        Self { shared, sealer }
    }

    fn sealed_keys(&self, record: &DeviceRecord) -> Result<Vec<(i64, SealedKey)>, DeviceError> {
        let mut out = Vec::with_capacity(record.keys().len());
        for (pos, k) in (0i64..).zip(record.keys()) {
            let sealed = self
                .sealer
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

    /// Runs one write transaction: an insert (`expected` none) or a compare-and-set.
    fn write(
        &self,
        record: &DeviceRecord,
        expected: Option<i64>,
        conflict: DeviceError,
    ) -> Result<(), DeviceError> {
        let keys = self.sealed_keys(record)?;
        let [state, by, at, expires] = state_cols(record.state())?;
        let version = to_i64(record.version()).ok_or_else(|| unavailable("version too large"))?;
        let device = record.device_id().as_str();
        let res = self.shared.with_conn(|c: &mut Connection| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = match expected {
                None => tx
                    .prepare_cached(INSERT_DEVICE)?
                    .execute(params![device, state, by, at, expires, version])?,
                Some(exp) => tx
                    .prepare_cached(CAS_DEVICE)?
                    .execute(params![device, state, by, at, expires, version, exp])?,
            };
            if n != 1 {
                tx.rollback()?;
                return Ok(false);
            }
            if expected.is_some() {
                tx.prepare_cached(DELETE_KEYS)?.execute(params![device])?;
            }
            for (pos, k) in &keys {
                tx.prepare_cached(INSERT_KEY)?
                    .execute(params![device, k.key_id, pos, k.status, k.until, k.sealed])?;
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
