//! The SQLite device session store (`SqliteStore::device_session_store`): the shared
//! contract, a real gateway's heartbeats against the SQLite registry, eight concurrent
//! heartbeats, corrupted rows, and the migration of a version-2 file.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/device_sessions.rs"]
mod device_sessions;

use handoff_device::DeviceSessionStore;
use handoff_stores::AeadSealer;
use handoff_stores::sqlite::{SCHEMA_VERSION, SqliteConfig, SqliteStore};

use common::{TempDir, kek, raw_sqlite as raw};

#[test]
fn session_store_contract_on_sqlite() {
    let dir = TempDir::new("sqlite_sessions_contract");
    let db = SqliteStore::open(dir.db(), SqliteConfig::default()).unwrap();
    assert_eq!(db.schema_version().unwrap(), 3);
    assert_eq!(SCHEMA_VERSION, 3);
    let store = db.device_session_store();
    device_sessions::round_trip_and_compare_and_set(&store);
    // The stored expiry is the record's, for every row written.
    let c = raw(&dir.db());
    let mut st = c
        .prepare("SELECT session_id, expires_at FROM device_sessions")
        .unwrap();
    let rows: Vec<(Vec<u8>, i64)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 3);
    for (id, expires_at) in rows {
        let id = handoff_device::SessionId::from_bytes(id.try_into().unwrap());
        let s = store.load(&id).unwrap().unwrap();
        assert_eq!(u64::try_from(expires_at).unwrap(), s.expires_at().as_secs());
    }
    device_sessions::purge_is_bounded_and_exact(&store);
    assert_eq!(device_sessions::purge_all(&store), 3);
    db.integrity_check().unwrap();
}

#[test]
fn gateway_heartbeats_through_sqlite() {
    let dir = TempDir::new("sqlite_sessions_e2e");
    let db = SqliteStore::open(dir.db(), SqliteConfig::default()).unwrap();
    let registry = db.device_registry(AeadSealer::new(kek()));
    device_sessions::heartbeats_end_to_end(&db.device_session_store(), &registry);
}

#[test]
fn concurrent_heartbeats_rotate_once_on_sqlite() {
    let dir = TempDir::new("sqlite_sessions_race");
    let db = SqliteStore::open(dir.db(), SqliteConfig::default()).unwrap();
    let registry = db.device_registry(AeadSealer::new(kek()));
    device_sessions::concurrent_rotation(&db.device_session_store(), &registry, 8);
}

/// Rows altered behind the store's back (CHECK constraints switched off on a raw
/// connection) are refused naming the column, by `load` and by a heartbeat, never a
/// panic or an empty answer.
#[test]
fn corrupted_session_rows_are_refused_naming_the_column_on_sqlite() {
    let dir = TempDir::new("sqlite_sessions_corrupt");
    let db = SqliteStore::open(dir.db(), SqliteConfig::default()).unwrap();
    let registry = db.device_registry(AeadSealer::new(kek()));
    let store = db.device_session_store();
    let f = device_sessions::stored_session(&store, &registry, "dev-corrupt");
    let good = store.load(&f.session_id).unwrap().unwrap();
    let raw = raw(&dir.db());
    raw.execute_batch("PRAGMA ignore_check_constraints = ON")
        .unwrap();
    let expires = good.expires_at().as_secs();
    for (sql, want) in [
        (
            "UPDATE device_sessions SET current_hash = zeroblob(31)".to_owned(),
            "device_sessions.current_hash has a length the schema does not allow",
        ),
        (
            "UPDATE device_sessions SET previous_hash = zeroblob(33)".to_owned(),
            "device_sessions.previous_hash has a length the schema does not allow",
        ),
        (
            "UPDATE device_sessions SET last_seen = -1".to_owned(),
            "device_sessions.last_seen is negative",
        ),
        (
            format!("UPDATE device_sessions SET expires_at = {}", expires + 1),
            "device_sessions.expires_at does not match the record's other columns",
        ),
        (
            "UPDATE device_sessions SET device_id = CAST('dev-corrupt' AS BLOB)".to_owned(),
            "device_sessions.device_id has an unexpected type",
        ),
        (
            "UPDATE device_sessions SET generation = 'first'".to_owned(),
            "device_sessions.generation has an unexpected type",
        ),
    ] {
        raw.execute_batch(&sql).unwrap();
        device_sessions::refused_then_restored(&store, &registry, &f, &good, &sql, want);
    }
}

/// A file of schema version 2 (before device sessions) is migrated to 3 on open, its
/// data kept, and the new table works.
#[test]
fn version_two_file_migrates_to_three() {
    let dir = TempDir::new("sqlite_sessions_migrate");
    {
        let c = raw(&dir.db());
        c.execute_batch(include_str!("../src/sqlite/schema_v1.sql"))
            .unwrap();
        c.execute_batch(include_str!("../src/sqlite/schema_v2.sql"))
            .unwrap();
        c.execute_batch(
            "PRAGMA user_version = 2;
             INSERT INTO devices (device_id, state, state_by, state_at, expires_at, version)
             VALUES ('old-dev', 'expired', NULL, 5, NULL, 0);",
        )
        .unwrap();
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'device_sessions'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0);
    }
    let db = SqliteStore::open(dir.db(), SqliteConfig::default()).unwrap();
    assert_eq!(db.schema_version().unwrap(), 3);
    let kept: String = raw(&dir.db())
        .query_row("SELECT device_id FROM devices", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, "old-dev");
    device_sessions::purge_is_bounded_and_exact(&db.device_session_store());
    db.integrity_check().unwrap();
}
