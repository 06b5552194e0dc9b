//! [`DeviceSessionStore`] on PostgreSQL (table `device_sessions`).

use core::fmt;
use std::sync::Arc;

use handoff_core::UnixTime;
use handoff_device::{DeviceError, DeviceSession, DeviceSessionStore, SessionId};

use super::device::Params;
use super::{Failure, Shared, classify, to_i64};
use crate::rows::{
    SessionParams, SessionWrite, session_column_list, session_from_row, session_params,
};

/// The session store's statements for one schema (shared by the sync and async stores).
pub(crate) struct Sql {
    pub(crate) load: String,
    pub(crate) insert: String,
    pub(crate) cas: String,
    pub(crate) purge: String,
}

impl Sql {
    pub(crate) fn new(schema: &super::SchemaName) -> Self {
        let s = |q: &str| schema.sql(q);
        Self {
            load: s(concat!(
                "SELECT ",
                session_column_list!(),
                " FROM {s}.device_sessions WHERE session_id = $1"
            )),
            insert: s(concat!(
                "INSERT INTO {s}.device_sessions (",
                session_column_list!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                 ON CONFLICT (session_id) DO NOTHING"
            )),
            cas: s("UPDATE {s}.device_sessions \
                 SET device_id = $2, created_at = $3, last_seen = $4, idle_timeout = $5, \
                 max_lifetime = $6, rotated_at = $7, current_hash = $8, previous_hash = $9, \
                 overlap_until = $10, generation = $11, revoked_at = $12, version = $13, \
                 expires_at = $14 WHERE session_id = $1 AND version = $15"),
            purge: s("DELETE FROM {s}.device_sessions WHERE session_id IN \
                 (SELECT session_id FROM {s}.device_sessions WHERE expires_at <= $1 \
                 ORDER BY expires_at LIMIT $2)"),
        }
    }

    /// The write statement and its parameters: an insert (`expected` none) or a
    /// compare-and-set against version `expected`; either must touch exactly one row.
    pub(crate) fn write<'s>(
        &'s self,
        p: &'s SessionParams<'s>,
        expected: &'s Option<i64>,
    ) -> (&'s str, Params<'s>) {
        match expected {
            None => (self.insert.as_str(), session_params!(p)),
            Some(v) => (self.cas.as_str(), session_params!(p, v)),
        }
    }
}

/// A [`DeviceSessionStore`] on PostgreSQL. Each operation is one statement: `insert` is
/// `INSERT ... ON CONFLICT DO NOTHING` (one row, else [`DeviceError::SessionExists`]),
/// `compare_and_set` is `UPDATE device_sessions ... WHERE session_id = $1 AND version =
/// $expected` (one row, else [`DeviceError::VersionConflict`]), `purge_expired` deletes at
/// most `limit` rows by the indexed `expires_at` column. Store failures and rows that do
/// not decode are [`DeviceError::SessionStoreUnavailable`], never an empty answer. Not
/// bounded by a capacity: purge ended sessions regularly.
pub struct PgDeviceSessionStore {
    shared: Arc<Shared>,
    sql: Sql,
}

impl fmt::Debug for PgDeviceSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgDeviceSessionStore")
            .field("schema", &self.shared.schema.as_str())
            .finish_non_exhaustive()
    }
}

pub(crate) fn unavailable(e: impl fmt::Display) -> DeviceError {
    DeviceError::SessionStoreUnavailable(e.to_string())
}

/// A write's outcome: no row touched is `conflict`, and so is a conflicting concurrent
/// write.
pub(crate) fn written(
    res: Result<u64, postgres::Error>,
    conflict: DeviceError,
) -> Result<(), DeviceError> {
    match res {
        Ok(1) => Ok(()),
        Ok(_) => Err(conflict),
        Err(e) => match classify(&e) {
            Failure::Conflict => Err(conflict),
            Failure::Error(msg) => Err(unavailable(msg)),
        },
    }
}

/// The purge's outcome: how many rows it deleted.
pub(crate) fn purged(res: Result<u64, postgres::Error>) -> Result<usize, DeviceError> {
    let n = res.map_err(unavailable)?;
    usize::try_from(n).map_err(unavailable)
}

impl PgDeviceSessionStore {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let sql = Sql::new(&shared.schema);
        Self { shared, sql }
    }

    fn write(
        &self,
        session: &DeviceSession,
        expected: Option<i64>,
        conflict: DeviceError,
    ) -> Result<(), DeviceError> {
        let encoded = SessionWrite::new(session)?;
        let p = encoded.params()?;
        let (sql, params) = self.sql.write(&p, &expected);
        let res = self.shared.with_client(|c| c.execute(sql, &params));
        written(res.map_err(unavailable)?, conflict)
    }
}

impl DeviceSessionStore for PgDeviceSessionStore {
    fn load(&self, session_id: &SessionId) -> Result<Option<DeviceSession>, DeviceError> {
        let row = self
            .shared
            .with_client(|c| {
                c.query_opt(self.sql.load.as_str(), &[&session_id.as_bytes().as_slice()])
            })
            .map_err(unavailable)?
            .map_err(unavailable)?;
        row.as_ref().map(session_from_row).transpose()
    }

    fn insert(&self, session: &DeviceSession) -> Result<(), DeviceError> {
        self.write(session, None, DeviceError::SessionExists)
    }

    fn compare_and_set(
        &self,
        expected_version: u64,
        session: &DeviceSession,
    ) -> Result<(), DeviceError> {
        let Some(expected) = to_i64(expected_version) else {
            return Err(DeviceError::VersionConflict);
        };
        self.write(session, Some(expected), DeviceError::VersionConflict)
    }

    fn purge_expired(&self, now: UnixTime, limit: usize) -> Result<usize, DeviceError> {
        let Some((now, limit)) = crate::rows::purge_params(now, limit) else {
            return Ok(0);
        };
        let res = self
            .shared
            .with_client(|c| c.execute(self.sql.purge.as_str(), &[&now, &limit]))
            .map_err(unavailable)?;
        purged(res)
    }
}
