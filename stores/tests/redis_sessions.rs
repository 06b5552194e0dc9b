//! The Redis device session stores against a real Redis / Valkey (`STORES_REDIS_URL`):
//! the shared contract, expiry by `PXAT` (checked with `PEXPIRETIME`, and a key really
//! gone once its `expires_at` passes on the real clock), a real gateway's heartbeats,
//! eight concurrent heartbeats, corrupted values, the async store with
//! `heartbeat_stored_async` sharing sessions with the sync one, and a server that is not
//! there. Every test writes under a key prefix of its own and deletes its keys when done.
//!
//! The contract's purge part does not hold as written: this store leaves deletion to the
//! server's key expiry, so `purge_expired` deletes nothing itself (see
//! `handoff_stores::redis_sessions`). It is replaced here by checks of each key's expiry.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/device_sessions.rs"]
mod device_sessions;

use std::time::Duration;

use handoff_core::UnixTime;
use handoff_device::{
    DeviceError, DeviceId, DeviceSession, DeviceSessionStore, InMemoryDeviceRegistry, SessionId,
    StoredHeartbeat,
};
use handoff_stores::PoolConfig;
use handoff_stores::redis_sessions::{MAX_VALUE_BYTES, RedisDeviceSessionStore};

use device_sessions::t;

fn url(test: &str) -> Option<String> {
    common::server_url("STORES_REDIS_URL", "redis", test)
}

fn raw(url: &str) -> redis::Connection {
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

/// A key prefix of the test's own; its keys are deleted when it is dropped (a failed
/// test included).
struct Prefix {
    url: String,
    prefix: String,
}

impl core::ops::Deref for Prefix {
    type Target = str;
    fn deref(&self) -> &str {
        &self.prefix
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        if let Ok(mut conn) = redis::Client::open(self.url.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        {
            for k in keys(&mut conn, &self.prefix) {
                let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(k).query(&mut conn);
            }
        }
    }
}

/// The server's url, a store under a key prefix of its own and the prefix, or `None`
/// after a loud skip.
fn setup(test: &str) -> Option<(String, RedisDeviceSessionStore, Prefix)> {
    let url = url(test)?;
    let prefix = format!("{}:", common::unique("stores-sessions"));
    let store = RedisDeviceSessionStore::builder(&url, &prefix)
        .pool(PoolConfig::with_max_size(16))
        .build()
        .unwrap();
    let prefix = Prefix {
        url: url.clone(),
        prefix,
    };
    Some((url, store, prefix))
}

/// The documented key of a session.
fn key(prefix: &str, id: &SessionId) -> String {
    format!("{prefix}{}", id.to_base64url())
}

/// The key's absolute expiry in ms (`PEXPIRETIME`: -1 none, -2 no key).
fn pexpiretime(conn: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("PEXPIRETIME").arg(key).query(conn).unwrap()
}

/// The `PXAT` every write sets: the record's `expires_at` in ms, capped at `i64::MAX`.
fn pxat(s: &DeviceSession) -> i64 {
    i64::try_from(s.expires_at().as_secs())
        .unwrap()
        .checked_mul(1_000)
        .unwrap_or(i64::MAX)
}

/// Every key under `prefix`.
fn keys(conn: &mut redis::Connection, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1_000)
            .query(conn)
            .unwrap();
        out.extend(batch);
        if next == 0 {
            return out;
        }
        cursor = next;
    }
}

/// Waits (bounded) until `key` is gone.
fn gone(conn: &mut redis::Connection, key: &str, within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        let exists: i64 = redis::cmd("EXISTS").arg(key).query(conn).unwrap();
        if exists == 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn session_store_contract_on_redis() {
    let Some((url, store, prefix)) = setup("session_store_contract_on_redis") else {
        return;
    };
    device_sessions::round_trip_and_compare_and_set(&store);
    // One key per stored record, under the documented name, one line of the documented
    // format, expiring at the record's `expires_at`.
    let mut conn = raw(&url);
    let stored = keys(&mut conn, &prefix);
    assert_eq!(stored.len(), 3, "{stored:?}");
    for k in stored {
        let id = handoff_core::b64::decode(k.strip_prefix(&*prefix).unwrap()).unwrap();
        let s = store
            .load(&SessionId::from_bytes(id.try_into().unwrap()))
            .unwrap()
            .unwrap();
        assert_eq!(k, key(&prefix, &s.session_id));
        let value: Vec<u8> = redis::cmd("GET").arg(&k).query(&mut conn).unwrap();
        assert!(value.starts_with(format!("hds1 {} ", s.version).as_bytes()));
        assert!(value.len() < MAX_VALUE_BYTES);
        assert_eq!(pexpiretime(&mut conn, &k), pxat(&s), "{k}");
    }
    // The purge: the server deletes ended keys by itself, so there is nothing to delete,
    // whatever `now` and `limit`; every record carries its expiry instead.
    let ends = 280;
    let ended: Vec<DeviceSession> = (0..5)
        .map(|i| device_sessions::ending_at(0x40 + i, ends))
        .collect();
    for s in &ended {
        store.insert(s).unwrap();
        assert_eq!(s.expires_at(), t(ends));
        assert_eq!(
            pexpiretime(&mut conn, &key(&prefix, &s.session_id)),
            i64::try_from(t(ends).as_secs() * 1_000).unwrap()
        );
    }
    assert_eq!(store.purge_expired(t(ends), 0).unwrap(), 0);
    assert_eq!(store.purge_expired(t(ends), 2).unwrap(), 0);
    assert_eq!(
        store
            .purge_expired(UnixTime::from_secs(u64::MAX), 100)
            .unwrap(),
        0
    );
    // Still there until the server's clock reaches their expiry: `load` returns them as
    // stored, and the gateway refuses them as expired.
    for s in &ended {
        assert_eq!(store.load(&s.session_id).unwrap().as_ref(), Some(s));
    }
}

/// Every write (insert and compare-and-set) sets the key's expiry to the record's
/// `expires_at`, and the server deletes the key once that instant passes on its clock.
#[test]
fn ended_sessions_are_deleted_by_the_server_at_their_expiry() {
    let Some((url, store, prefix)) =
        setup("ended_sessions_are_deleted_by_the_server_at_their_expiry")
    else {
        return;
    };
    let mut conn = raw(&url);
    let now = common::wall_secs();
    // Idle-bound: ends a minute from now.
    let s = DeviceSession {
        session_id: SessionId::from_bytes([0x61; 16]),
        device_id: DeviceId::new("dev-expiry").unwrap(),
        created_at: UnixTime::from_secs(now),
        last_seen: UnixTime::from_secs(now),
        idle_timeout: 60,
        max_lifetime: 3_600,
        rotated_at: UnixTime::from_secs(now),
        current_hash: [1; 32],
        previous_hash: None,
        overlap_until: UnixTime::from_secs(now),
        generation: 0,
        revoked_at: None,
        version: 0,
    };
    let k = key(&prefix, &s.session_id);
    store.insert(&s).unwrap();
    assert_eq!(pexpiretime(&mut conn, &k), pxat(&s));
    assert_eq!(s.expires_at().as_secs(), now + 60);
    // Revoked, with the absolute lifetime shortened to end 2 s from now: the write moves
    // the key's expiry with it.
    let mut ending = s.clone();
    ending.max_lifetime = 2;
    ending.revoked_at = Some(UnixTime::from_secs(now));
    ending.version = 1;
    store.compare_and_set(0, &ending).unwrap();
    assert_eq!(ending.expires_at().as_secs(), now + 2);
    assert_eq!(pexpiretime(&mut conn, &k), pxat(&ending));
    assert_eq!(store.load(&s.session_id).unwrap().as_ref(), Some(&ending));
    assert!(
        gone(&mut conn, &k, Duration::from_secs(6)),
        "the key outlived its PXAT"
    );
    assert_eq!(store.load(&s.session_id).unwrap(), None);
    // Gone is gone: a compare-and-set against it conflicts, the id is free again.
    assert_eq!(
        store.compare_and_set(1, &ending),
        Err(DeviceError::VersionConflict)
    );
    store.insert(&s).unwrap();
    assert_eq!(store.load(&s.session_id).unwrap().as_ref(), Some(&s));
    // A record already ended on the server's clock is acknowledged and deleted at once.
    let past = DeviceSession {
        session_id: SessionId::from_bytes([0x62; 16]),
        created_at: UnixTime::from_secs(1_000),
        last_seen: UnixTime::from_secs(1_000),
        rotated_at: UnixTime::from_secs(1_000),
        overlap_until: UnixTime::from_secs(1_000),
        ..s
    };
    store.insert(&past).unwrap();
    assert_eq!(store.load(&past.session_id).unwrap(), None);
}

#[test]
fn gateway_heartbeats_through_redis() {
    let Some((url, store, prefix)) = setup("gateway_heartbeats_through_redis") else {
        return;
    };
    let registry = InMemoryDeviceRegistry::new(10);
    let revoked = device_sessions::heartbeats_to_revocation(&store, &registry);
    // The revoked record's key ends at its expiry; until then its token reads "revoked"
    // and the purge has nothing to do.
    let record = &revoked.record;
    let mut conn = raw(&url);
    assert_eq!(
        pexpiretime(&mut conn, &key(&prefix, &record.session_id)),
        pxat(record)
    );
    assert_eq!(store.purge_expired(record.expires_at(), 10).unwrap(), 0);
    assert_eq!(
        store.load(&record.session_id).unwrap().as_ref(),
        Some(record)
    );
    assert!(matches!(
        revoked.fixture.gateway.heartbeat_stored(
            revoked.successor.expose(),
            &store,
            &registry,
            t(400)
        ),
        StoredHeartbeat::Refused {
            error: DeviceError::SessionRevoked,
            ..
        }
    ));
}

#[test]
fn concurrent_heartbeats_rotate_once_on_redis() {
    let Some((_url, store, _prefix)) = setup("concurrent_heartbeats_rotate_once_on_redis") else {
        return;
    };
    let registry = InMemoryDeviceRegistry::new(10);
    device_sessions::concurrent_rotation(&store, &registry, 8);
}

/// Values written behind the store's back are refused naming what was wrong, by `load`
/// and by a heartbeat (never a panic, never an empty answer), and by the compare-and-set
/// script when it cannot find the version.
#[test]
fn corrupted_values_are_refused_naming_what_is_wrong_on_redis() {
    let Some((url, store, prefix)) = setup("corrupted_values_are_refused_on_redis") else {
        return;
    };
    let registry = InMemoryDeviceRegistry::new(10);
    let f = device_sessions::stored_session(&store, &registry, "dev-corrupt");
    let good = store.load(&f.session_id).unwrap().unwrap();
    let k = key(&prefix, &f.session_id);
    let mut conn = raw(&url);
    let value: String = redis::cmd("GET").arg(&k).query(&mut conn).unwrap();
    let field = |i: usize, v: &str| {
        let mut fields: Vec<&str> = value.split(' ').collect();
        fields[i] = v;
        fields.join(" ")
    };
    let oversized = format!("{value}{}", " ".repeat(MAX_VALUE_BYTES));
    // What the compare-and-set script, which reads only the version field, makes of it.
    #[derive(Debug, PartialEq)]
    enum Cas {
        /// No version after the tag: fails closed.
        Unreadable,
        /// Another version (`00` is not `0`): conflicts.
        Conflicts,
        /// The expected version: writes (the next `load` reads the new record).
        Writes,
    }
    for (bad, want, cas) in [
        ("garbage".to_owned(), "fewer fields", Cas::Unreadable),
        (
            oversized,
            "the value is longer than 1024 bytes",
            Cas::Writes,
        ),
        (
            field(0, "hds9"),
            "does not start with the format tag hds1",
            Cas::Unreadable,
        ),
        (
            field(1, "-1"),
            "device_sessions.version is negative",
            Cas::Unreadable,
        ),
        (
            field(1, "x"),
            "device_sessions.version has an unexpected type",
            Cas::Unreadable,
        ),
        (
            field(1, "00"),
            "not spelled the way this store writes",
            Cas::Conflicts,
        ),
        (
            field(9, "AAAA"),
            "device_sessions.current_hash has a length the schema does not allow",
            Cas::Writes,
        ),
        (
            field(2, &SessionId::from_bytes([0x5a; 16]).to_base64url()),
            "another session id than its key",
            Cas::Writes,
        ),
        (
            field(14, &(good.expires_at().as_secs() + 1).to_string()),
            "device_sessions.expires_at does not match the record's other columns",
            Cas::Writes,
        ),
    ] {
        let _: () = redis::cmd("SET")
            .arg(&k)
            .arg(&bad)
            .query(&mut conn)
            .unwrap();
        let what = bad.chars().take(60).collect::<String>();
        device_sessions::refused(&store, &registry, &f, &what, want);
        let mut next = good.clone();
        next.version += 1;
        let got = match store.compare_and_set(good.version, &next) {
            Err(DeviceError::SessionStoreUnavailable(msg)) => {
                assert!(msg.contains("no version field"), "{what}: {msg}");
                Cas::Unreadable
            }
            Err(DeviceError::VersionConflict) => Cas::Conflicts,
            Ok(()) => {
                assert_eq!(store.load(&f.session_id).unwrap().as_ref(), Some(&next));
                Cas::Writes
            }
            Err(other) => panic!("{what}: compare-and-set gave {other:?}"),
        };
        assert_eq!(got, cas, "{what}");
        let _: i64 = redis::cmd("DEL").arg(&k).query(&mut conn).unwrap();
        store.insert(&good).unwrap();
        assert_eq!(store.load(&f.session_id).unwrap().as_ref(), Some(&good));
    }
    // A key of another type: the server's error, failing closed.
    let _: i64 = redis::cmd("DEL").arg(&k).query(&mut conn).unwrap();
    let _: i64 = redis::cmd("HSET")
        .arg(&k)
        .arg("v")
        .arg("0")
        .query(&mut conn)
        .unwrap();
    device_sessions::refused(&store, &registry, &f, "a hash", "WRONGTYPE");
    assert!(matches!(
        store.compare_and_set(good.version, &good),
        Err(DeviceError::SessionStoreUnavailable(_))
    ));
    assert!(matches!(
        store.insert(&good),
        Err(DeviceError::SessionExists)
    ));
}

/// A port with nothing listening: every operation is an error, never `Ok(None)`.
#[test]
fn unreachable_server_is_an_error_never_none() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("redis://127.0.0.1:{port}/");
    let store = RedisDeviceSessionStore::builder(&url, "t:sessions:")
        .pool(
            PoolConfig::with_max_size(2)
                .wait(Duration::from_millis(300))
                .timeout(Duration::from_millis(300)),
        )
        .build()
        .unwrap();
    let s = device_sessions::ending_at(1, 280);
    for (what, res) in [
        ("load", store.load(&s.session_id).map(|_| ())),
        ("insert", store.insert(&s)),
        ("compare_and_set", store.compare_and_set(0, &s)),
        ("purge_expired", store.purge_expired(t(200), 10).map(|_| ())),
    ] {
        assert!(
            matches!(res, Err(DeviceError::SessionStoreUnavailable(_))),
            "{what}: {res:?}"
        );
    }
    #[cfg(feature = "redis-async")]
    async_store::unreachable(&url);
}

/// The async store: `IssuedSession::store_async` and `Gateway::heartbeat_stored_async`,
/// concurrent heartbeats included, on the keys the sync store reads and writes.
#[cfg(feature = "redis-async")]
mod async_store {
    use super::*;
    use handoff_device::{AsyncDeviceRegistry, AsyncDeviceSessionStore, DeviceRecord};

    use crate::common::runtime;

    /// The in-memory registry behind the async trait.
    struct Registry<'a>(&'a InMemoryDeviceRegistry);

    impl AsyncDeviceRegistry for Registry<'_> {
        async fn load(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, DeviceError> {
            handoff_device::DeviceRegistry::load(self.0, id)
        }

        async fn insert(&self, record: &DeviceRecord) -> Result<(), DeviceError> {
            handoff_device::DeviceRegistry::insert(self.0, record)
        }

        async fn compare_and_set(
            &self,
            expected_version: u64,
            record: &DeviceRecord,
        ) -> Result<(), DeviceError> {
            handoff_device::DeviceRegistry::compare_and_set(self.0, expected_version, record)
        }
    }

    #[test]
    fn async_heartbeats_through_redis_shared_with_the_sync_store() {
        let Some((url, sync_sessions, prefix)) = setup("async_heartbeats_through_redis") else {
            return;
        };
        let registry = InMemoryDeviceRegistry::new(10);
        let (gateway, issued) = device_sessions::handshake(&registry, "dev-async");
        let want = issued.session.clone();
        let rt = runtime();
        let (sessions, stored) = rt.block_on(async {
            let sessions = RedisDeviceSessionStore::builder(&url, &*prefix)
                .build_async()
                .unwrap();
            assert_eq!(sessions.prefix(), &*prefix);
            let stored = device_sessions::stored_async(issued, &sessions).await;
            (sessions, stored)
        });
        // Written async, read and refused sync.
        assert_eq!(
            sync_sessions.load(&stored.session_id).unwrap(),
            Some(want.clone())
        );
        assert_eq!(sync_sessions.insert(&want), Err(DeviceError::SessionExists));
        let revoked = rt.block_on(async {
            let first = stored.token.expose();
            device_sessions::async_heartbeats(
                &gateway,
                &sessions,
                &Registry(&registry),
                first,
                &want,
            )
            .await
        });
        // The async writes, read sync; the key ends at the revoked record's expiry.
        assert_eq!(
            sync_sessions.load(&stored.session_id).unwrap().as_ref(),
            Some(&revoked)
        );
        let mut conn = raw(&url);
        let k = key(&prefix, &stored.session_id);
        assert_eq!(pexpiretime(&mut conn, &k), pxat(&revoked));
        // A sync write, read async; the async purge has nothing to do either.
        let mut next = revoked.clone();
        next.version += 1;
        sync_sessions
            .compare_and_set(revoked.version, &next)
            .unwrap();
        rt.block_on(async {
            assert_eq!(
                sessions.load(&stored.session_id).await.unwrap().as_ref(),
                Some(&next)
            );
            assert_eq!(
                sessions.compare_and_set(revoked.version, &revoked).await,
                Err(DeviceError::VersionConflict)
            );
            let ends = next.expires_at();
            assert_eq!(sessions.purge_expired(ends, 0).await.unwrap(), 0);
            assert_eq!(sessions.purge_expired(ends, 10).await.unwrap(), 0);
        });
        drop(rt);
    }

    /// Sixteen heartbeats of one token at rotation time from tasks spawned on the
    /// runtime's two workers (clones of one store): one successor, the others only lost
    /// the race, the record at generation 1.
    #[test]
    fn async_concurrent_heartbeats_rotate_once_on_redis() {
        let Some((url, sync_sessions, prefix)) =
            setup("async_concurrent_heartbeats_rotate_once_on_redis")
        else {
            return;
        };
        let registry = std::sync::Arc::new(InMemoryDeviceRegistry::new(10));
        let f = device_sessions::stored_session(&sync_sessions, &*registry, "dev-async-race");
        let token = f.token.expose().to_owned();
        assert!(matches!(
            f.gateway
                .heartbeat_stored(&token, &sync_sessions, &*registry, t(150)),
            StoredHeartbeat::Extended { .. }
        ));
        let gateway = std::sync::Arc::new(f.gateway);
        let rt = runtime();
        let outcomes = rt.block_on(async {
            let sessions = RedisDeviceSessionStore::builder(&url, &*prefix)
                .build_async()
                .unwrap();
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    let (sessions, registry, gateway, token) = (
                        sessions.clone(),
                        std::sync::Arc::clone(&registry),
                        std::sync::Arc::clone(&gateway),
                        token.clone(),
                    );
                    tokio::spawn(async move {
                        gateway
                            .heartbeat_stored_async(&token, &sessions, &Registry(&registry), t(310))
                            .await
                    })
                })
                .collect();
            let mut outcomes = Vec::new();
            for h in handles {
                outcomes.push(h.await.unwrap());
            }
            outcomes
        });
        let next = device_sessions::one_successor(&outcomes);
        let stored = sync_sessions.load(&f.session_id).unwrap().unwrap();
        assert_eq!(stored.generation, 1, "{stored:?}");
        assert_eq!(stored.revoked_at, None);
        assert_eq!(stored.rotated_at, t(310));
        assert!(matches!(
            gateway.heartbeat_stored(&next, &sync_sessions, &*registry, t(320)),
            StoredHeartbeat::Extended { .. }
        ));
        drop(rt);
    }

    /// The async store on a port with nothing listening: errors, never `Ok(None)`.
    pub(super) fn unreachable(url: &str) {
        runtime().block_on(async {
            let store = RedisDeviceSessionStore::builder(url, "t:sessions:")
                .pool(PoolConfig::default().timeout(Duration::from_millis(300)))
                .build_async()
                .unwrap();
            let s = device_sessions::ending_at(1, 280);
            assert!(matches!(
                store.load(&s.session_id).await,
                Err(DeviceError::SessionStoreUnavailable(_))
            ));
            assert!(matches!(
                store.insert(&s).await,
                Err(DeviceError::SessionStoreUnavailable(_))
            ));
            assert!(matches!(
                store.compare_and_set(0, &s).await,
                Err(DeviceError::SessionStoreUnavailable(_))
            ));
            assert!(matches!(
                store.purge_expired(t(200), 10).await,
                Err(DeviceError::SessionStoreUnavailable(_))
            ));
        });
    }
}
