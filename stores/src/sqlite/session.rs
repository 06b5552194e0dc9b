//! [`DeviceSessionStore`] in the SQLite file (table `device_sessions`).

use core::fmt;
use std::sync::Arc;

use handoff_core::UnixTime;
use handoff_device::{DeviceError, DeviceSession, DeviceSessionStore, SessionId};
use rusqlite::params;
use rusqlite::types::ToSql;

use super::{Shared, describe, to_i64};
use crate::rows::{
    SessionWrite, purge_params, session_column_list, session_from_row, session_params,
};

const LOAD: &str = concat!(
    "SELECT ",
    session_column_list!(),
    " FROM device_sessions WHERE session_id = ?1"
);
const INSERT: &str = concat!(
    "INSERT INTO device_sessions (",
    session_column_list!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
     ON CONFLICT (session_id) DO NOTHING"
);
const CAS: &str = "UPDATE device_sessions \
     SET device_id = ?2, created_at = ?3, last_seen = ?4, idle_timeout = ?5, \
     max_lifetime = ?6, rotated_at = ?7, current_hash = ?8, previous_hash = ?9, \
     overlap_until = ?10, generation = ?11, revoked_at = ?12, version = ?13, \
     expires_at = ?14 WHERE session_id = ?1 AND version = ?15";
const PURGE: &str = "DELETE FROM device_sessions WHERE rowid IN \
     (SELECT rowid FROM device_sessions WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)";

/// A [`DeviceSessionStore`] in the SQLite file. Each operation is one statement:
/// `insert` is `INSERT ... ON CONFLICT DO NOTHING` (one row, else
/// [`DeviceError::SessionExists`]), `compare_and_set` is `UPDATE ... WHERE session_id = ?
/// AND version = ?` (one row, else [`DeviceError::VersionConflict`]), `purge_expired`
/// deletes at most `limit` rows by the indexed `expires_at` column. Store failures and
/// rows that do not decode are [`DeviceError::SessionStoreUnavailable`], never an empty
/// answer. Not bounded by a capacity: purge ended sessions regularly.
#[derive(Clone)]
pub struct SqliteDeviceSessionStore {
    shared: Arc<Shared>,
}

impl fmt::Debug for SqliteDeviceSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteDeviceSessionStore")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl fmt::Display) -> DeviceError {
    DeviceError::SessionStoreUnavailable(e.to_string())
}

impl SqliteDeviceSessionStore {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// One statement, `sql` with the session's columns (and `expected`, for a
    /// compare-and-set); it must touch exactly one row, else `conflict`.
    fn write(
        &self,
        sql: &str,
        session: &DeviceSession,
        expected: Option<i64>,
        conflict: DeviceError,
    ) -> Result<(), DeviceError> {
        let encoded = SessionWrite::new(session)?;
        let p = encoded.params()?;
        let row: Vec<&dyn ToSql> = match &expected {
            None => session_params!(p),
            Some(exp) => session_params!(p, exp),
        };
        let res = self
            .shared
            .with_conn(|c| c.prepare_cached(sql)?.execute(row.as_slice()))
            .map_err(unavailable)?;
        match res {
            Ok(1) => Ok(()),
            Ok(_) => Err(conflict),
            // The key conflict is the DO NOTHING above: a constraint failing here is a
            // record the schema refuses, not a lost race.
            Err(e) => Err(unavailable(describe(&e))),
        }
    }
}

impl DeviceSessionStore for SqliteDeviceSessionStore {
    fn load(&self, session_id: &SessionId) -> Result<Option<DeviceSession>, DeviceError> {
        let res = self.shared.with_conn(|c| {
            let mut st = c.prepare_cached(LOAD)?;
            let mut rows = st.query(params![session_id.as_bytes().as_slice()])?;
            Ok(rows.next()?.map(session_from_row))
        });
        res.map_err(unavailable)?
            .map_err(|e| unavailable(describe(&e)))?
            .transpose()
    }

    fn insert(&self, session: &DeviceSession) -> Result<(), DeviceError> {
        self.write(INSERT, session, None, DeviceError::SessionExists)
    }

    fn compare_and_set(
        &self,
        expected_version: u64,
        session: &DeviceSession,
    ) -> Result<(), DeviceError> {
        let Some(expected) = to_i64(expected_version) else {
            return Err(DeviceError::VersionConflict);
        };
        self.write(CAS, session, Some(expected), DeviceError::VersionConflict)
    }

    fn purge_expired(&self, now: UnixTime, limit: usize) -> Result<usize, DeviceError> {
        let Some((now, limit)) = purge_params(now, limit) else {
            return Ok(0);
        };
        self.shared
            .with_conn(|c| c.prepare_cached(PURGE)?.execute(params![now, limit]))
            .map_err(unavailable)?
            .map_err(|e| unavailable(describe(&e)))
    }
}
