//! The PostgreSQL device session stores against a real server (`STORES_PG_URL`): the
//! shared contract, a real gateway's heartbeats against the PostgreSQL registry, eight
//! concurrent heartbeats, corrupted rows, and the async store with
//! `heartbeat_stored_async`. Each test makes (and drops) its own schema.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/device_sessions.rs"]
mod device_sessions;

use handoff_core::UnixTime;
use handoff_device::{DeviceError, DeviceSessionStore, SessionId};
use handoff_stores::PoolConfig;
use handoff_stores::pg::{AeadSealer, PgStore, SCHEMA_VERSION};

use common::kek;

fn setup(test: &str) -> Option<(String, PgStore)> {
    let url = common::server_url("STORES_PG_URL", "postgres", test)?;
    let pg = PgStore::connect(
        &url,
        &common::unique("stores_sessions"),
        PoolConfig::default(),
    )
    .unwrap();
    assert_eq!(pg.migrate().unwrap(), 3);
    Some((url, pg))
}

fn raw(url: &str) -> postgres::Client {
    url.parse::<postgres::Config>()
        .unwrap()
        .connect(postgres::NoTls)
        .unwrap()
}

fn drop_schema(url: &str, pg: &PgStore) {
    raw(url)
        .batch_execute(&format!("DROP SCHEMA {} CASCADE", pg.schema().as_str()))
        .unwrap();
}

#[test]
fn session_store_contract_on_postgres() {
    let Some((url, pg)) = setup("session_store_contract_on_postgres") else {
        return;
    };
    assert_eq!(SCHEMA_VERSION, 3);
    let store = pg.device_session_store();
    device_sessions::round_trip_and_compare_and_set(&store);
    // The stored expiry is the record's, for every row written.
    let rows = raw(&url)
        .query(
            &format!(
                "SELECT session_id, expires_at FROM {}.device_sessions",
                pg.schema().as_str()
            ),
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        let id: Vec<u8> = row.get(0);
        let expires_at: i64 = row.get(1);
        let s = store
            .load(&SessionId::from_bytes(id.try_into().unwrap()))
            .unwrap()
            .unwrap();
        assert_eq!(u64::try_from(expires_at).unwrap(), s.expires_at().as_secs());
    }
    device_sessions::purge_is_bounded_and_exact(&store);
    assert_eq!(device_sessions::purge_all(&store), 3);
    // Migrating again changes nothing (idempotent schema file).
    assert_eq!(pg.migrate().unwrap(), 3);
    drop_schema(&url, &pg);
}

#[test]
fn gateway_heartbeats_through_postgres() {
    let Some((url, pg)) = setup("gateway_heartbeats_through_postgres") else {
        return;
    };
    let registry = pg.device_registry(AeadSealer::new(kek()));
    device_sessions::heartbeats_end_to_end(&pg.device_session_store(), &registry);
    drop_schema(&url, &pg);
}

#[test]
fn concurrent_heartbeats_rotate_once_on_postgres() {
    let Some((url, pg)) = setup("concurrent_heartbeats_rotate_once_on_postgres") else {
        return;
    };
    let registry = pg.device_registry(AeadSealer::new(kek()));
    device_sessions::concurrent_rotation(&pg.device_session_store(), &registry, 8);
    drop_schema(&url, &pg);
}

#[test]
fn unreachable_session_store_is_an_error_never_unknown() {
    let pg = PgStore::connect(
        "postgres://x@127.0.0.1:1/none",
        "identity",
        PoolConfig::default(),
    )
    .unwrap();
    let store = pg.device_session_store();
    assert!(matches!(
        store.load(&SessionId::from_bytes([1; 16])),
        Err(DeviceError::SessionStoreUnavailable(_))
    ));
    assert!(matches!(
        store.purge_expired(UnixTime::from_secs(1), 10),
        Err(DeviceError::SessionStoreUnavailable(_))
    ));
}

/// Rows altered behind the store's back are refused naming the column, by `load` and by
/// a heartbeat, never a panic or an empty answer. The length CHECK of `current_hash` is
/// dropped in this test's own schema to write a 31-byte hash; negative times and a wrong
/// stored expiry pass the schema's CHECKs as they are.
#[test]
fn corrupted_session_rows_are_refused_naming_the_column_on_postgres() {
    let Some((url, pg)) = setup("corrupted_session_rows_on_postgres") else {
        return;
    };
    let registry = pg.device_registry(AeadSealer::new(kek()));
    let store = pg.device_session_store();
    let f = device_sessions::stored_session(&store, &registry, "dev-corrupt");
    let good = store.load(&f.session_id).unwrap().unwrap();
    let s = pg.schema().as_str().to_owned();
    let mut raw = raw(&url);
    raw.batch_execute(&format!(
        "ALTER TABLE {s}.device_sessions DROP CONSTRAINT device_sessions_current_hash_check"
    ))
    .unwrap();
    let expires = good.expires_at().as_secs();
    for (sql, want) in [
        (
            "UPDATE {s}.device_sessions SET current_hash = substring(current_hash from 2)"
                .to_owned(),
            "device_sessions.current_hash has a length the schema does not allow",
        ),
        (
            "UPDATE {s}.device_sessions SET last_seen = -1".to_owned(),
            "device_sessions.last_seen is negative",
        ),
        (
            format!(
                "UPDATE {{s}}.device_sessions SET expires_at = {}",
                expires + 1
            ),
            "device_sessions.expires_at does not match the record's other columns",
        ),
        (
            "UPDATE {s}.device_sessions SET revoked_at = -5".to_owned(),
            "device_sessions.revoked_at is negative",
        ),
    ] {
        raw.batch_execute(&sql.replace("{s}", &s)).unwrap();
        device_sessions::refused_then_restored(&store, &registry, &f, &good, &sql, want);
    }
    drop_schema(&url, &pg);
}

/// The async store (tokio-postgres): `IssuedSession::store_async` and
/// `Gateway::heartbeat_stored_async` against it and the async registry, on the schema the
/// sync store reads.
#[cfg(feature = "postgres-async")]
mod async_store {
    use super::*;
    use handoff_device::AsyncDeviceSessionStore;
    use handoff_stores::pg_async::AsyncPgStore;

    use crate::common::runtime;

    #[test]
    fn async_heartbeats_through_postgres() {
        let Some((url, pg)) = setup("async_heartbeats_through_postgres") else {
            return;
        };
        let kek = kek();
        let sync_registry = pg.device_registry(AeadSealer::new(kek));
        let sync_sessions = pg.device_session_store();
        let (gateway, issued) = device_sessions::handshake(&sync_registry, "dev-async");
        let want = issued.session.clone();
        let rt = runtime();
        let (store, stored) = rt.block_on(async {
            let store =
                AsyncPgStore::connect(&url, pg.schema().as_str(), PoolConfig::default()).unwrap();
            let stored = device_sessions::stored_async(issued, &store.device_session_store()).await;
            (store, stored)
        });
        // Written async, read sync (outside the runtime: the sync client blocks).
        assert_eq!(
            sync_sessions.load(&stored.session_id).unwrap(),
            Some(want.clone())
        );
        rt.block_on(async {
            let sessions = store.device_session_store();
            let registry = store.device_registry(AeadSealer::new(kek));
            let first = stored.token.expose();
            let revoked =
                device_sessions::async_heartbeats(&gateway, &sessions, &registry, first, &want)
                    .await;
            // The purge is bounded and exact.
            let ends = revoked.expires_at();
            assert_eq!(
                sessions
                    .purge_expired(UnixTime::from_secs(ends.as_secs() - 1), 10)
                    .await
                    .unwrap(),
                0
            );
            assert_eq!(sessions.purge_expired(ends, 0).await.unwrap(), 0);
            assert_eq!(sessions.purge_expired(ends, 10).await.unwrap(), 1);
            assert_eq!(sessions.load(&stored.session_id).await.unwrap(), None);
        });
        drop(rt);
        drop_schema(&url, &pg);
    }

    #[test]
    fn unreachable_async_session_store_is_an_error_never_unknown() {
        runtime().block_on(async {
            let store = AsyncPgStore::connect(
                "postgres://x@127.0.0.1:1/none",
                "identity",
                PoolConfig::default(),
            )
            .unwrap();
            let sessions = store.device_session_store();
            assert!(matches!(
                sessions.load(&SessionId::from_bytes([1; 16])).await,
                Err(DeviceError::SessionStoreUnavailable(_))
            ));
            assert!(matches!(
                sessions.purge_expired(UnixTime::from_secs(1), 10).await,
                Err(DeviceError::SessionStoreUnavailable(_))
            ));
        });
    }
}
