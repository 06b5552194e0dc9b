//! The device registry against a real PostgreSQL (`STORES_PG_URL`).
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use handoff_core::{HmacSecret, UnixTime};
use handoff_device::{
    DeviceError, DeviceId, DeviceRecord, DeviceRegistry, DeviceState, KeyId, OperatorId,
};
use handoff_stores::PoolConfig;
use handoff_stores::pg::{AeadSealer, DerivedSecrets, PgStore};

fn setup(test: &str) -> Option<(String, PgStore)> {
    let url = common::server_url("STORES_PG_URL", "postgres", test)?;
    let pg = PgStore::connect(
        &url,
        &common::unique("stores_device"),
        PoolConfig::default(),
    )
    .unwrap();
    pg.migrate().unwrap();
    Some((url, pg))
}

fn drop_schema(url: &str, pg: &PgStore) {
    let mut c = url
        .parse::<postgres::Config>()
        .unwrap()
        .connect(postgres::NoTls)
        .unwrap();
    c.batch_execute(&format!("DROP SCHEMA {} CASCADE", pg.schema().as_str()))
        .unwrap();
}

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

#[test]
fn lifecycle_with_sealed_secrets_and_compare_and_set() {
    let Some((url, pg)) = setup("lifecycle_with_sealed_secrets") else {
        return;
    };
    let mut kek = [0u8; 32];
    rand_core::Rng::fill_bytes(&mut rng(), &mut kek);
    let registry = pg.device_registry(AeadSealer::new(kek));
    let t0 = UnixTime::from_secs(1_700_000_000);
    let id = DeviceId::new("sensor-1").unwrap();
    let secret = HmacSecret::generate(&mut rng());
    let req = DeviceRecord::request_pairing(
        id.clone(),
        KeyId::new("k1").unwrap(),
        secret.clone(),
        t0,
        600,
    );
    registry.insert(&req.record).unwrap();
    assert_eq!(
        registry.insert(&req.record),
        Err(DeviceError::AlreadyRegistered)
    );
    assert_eq!(registry.load(&id).unwrap().unwrap(), req.record);
    assert_eq!(
        registry.load(&DeviceId::new("nobody").unwrap()).unwrap(),
        None
    );

    // The secret is stored sealed: its bytes never appear in the table.
    let mut c = url
        .parse::<postgres::Config>()
        .unwrap()
        .connect(postgres::NoTls)
        .unwrap();
    let sealed: Vec<u8> = c
        .query_one(
            format!(
                "SELECT sealed_secret FROM {}.device_keys",
                pg.schema().as_str()
            )
            .as_str(),
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!sealed.windows(32).any(|w| w == secret.expose_secret()));

    let alice = OperatorId::new("alice").unwrap();
    let approve = req.record.approve(&alice, t0.saturating_add(10)).unwrap();
    let stale = req.record.deny(&alice, t0.saturating_add(11)).unwrap();
    let _ = approve.commit(&registry).unwrap();
    // A decision taken on the old version loses: compare-and-set refuses it.
    assert_eq!(stale.commit(&registry), Err(DeviceError::VersionConflict));
    let approved = registry.load(&id).unwrap().unwrap();
    assert!(approved.state().is_approved());
    assert_eq!(approved.version(), 1);

    // Key rotation: both keys come back, with their statuses and secrets.
    let rotated = approved
        .rotate_key(
            KeyId::new("k2").unwrap(),
            HmacSecret::generate(&mut rng()),
            300,
            t0.saturating_add(20),
        )
        .unwrap();
    let want = rotated.record.clone();
    let _ = rotated.commit(&registry).unwrap();
    assert_eq!(registry.load(&id).unwrap().unwrap(), want);
    let revoked = want.revoke(&alice, t0.saturating_add(30)).unwrap();
    let _ = revoked.commit(&registry).unwrap();
    assert!(matches!(
        registry.load(&id).unwrap().unwrap().state(),
        DeviceState::Revoked { .. }
    ));

    // Another key-encryption key cannot open the secrets: an error, never a record.
    let wrong = pg.device_registry(AeadSealer::new([0; 32]));
    assert!(matches!(
        wrong.load(&id),
        Err(DeviceError::RegistryUnavailable(_))
    ));
    drop_schema(&url, &pg);
}

#[test]
fn derived_secrets_store_no_secret() {
    let Some((url, pg)) = setup("derived_secrets_store_no_secret") else {
        return;
    };
    let sealer = DerivedSecrets::new(HmacSecret::generate(&mut rng()));
    let id = DeviceId::new("pump-7").unwrap();
    let key = KeyId::new("k1").unwrap();
    let secret = sealer.secret_for(&id, &key).unwrap();
    let registry = pg.device_registry(sealer);
    let t0 = UnixTime::from_secs(1_700_000_000);
    let foreign = DeviceRecord::request_pairing(
        DeviceId::new("other").unwrap(),
        key.clone(),
        HmacSecret::generate(&mut rng()),
        t0,
        600,
    );
    assert!(matches!(
        registry.insert(&foreign.record),
        Err(DeviceError::InvalidRecord(_))
    ));
    let req = DeviceRecord::request_pairing(id.clone(), key, secret, t0, 600);
    registry.insert(&req.record).unwrap();
    assert_eq!(registry.load(&id).unwrap().unwrap(), req.record);
    drop_schema(&url, &pg);
}

#[test]
fn unreachable_registry_is_an_error_never_unknown() {
    let pg = PgStore::connect(
        "postgres://x@127.0.0.1:1/none",
        "identity",
        PoolConfig::default(),
    )
    .unwrap();
    let registry = pg.device_registry(AeadSealer::new([1; 32]));
    assert!(matches!(
        registry.load(&DeviceId::new("d").unwrap()),
        Err(DeviceError::RegistryUnavailable(_))
    ));
}

/// Device rows altered behind the adapter's back are refused with the column named (the
/// shared decoder of `stores::rows` behind the PostgreSQL adapter).
#[test]
fn tampered_device_rows_are_refused_naming_the_column() {
    let Some((url, pg)) = setup("tampered_device_rows_are_refused_naming_the_column") else {
        return;
    };
    let registry = pg.device_registry(AeadSealer::new([5; 32]));
    let t0 = UnixTime::from_secs(1_700_000_000);
    let id = DeviceId::new("sensor-7").unwrap();
    let req = DeviceRecord::request_pairing(
        id.clone(),
        KeyId::new("k1").unwrap(),
        HmacSecret::generate(&mut rng()),
        t0,
        600,
    );
    registry.insert(&req.record).unwrap();
    assert_eq!(registry.load(&id).unwrap().unwrap(), req.record);
    let mut raw = url
        .parse::<postgres::Config>()
        .unwrap()
        .connect(postgres::NoTls)
        .unwrap();
    let s = pg.schema().as_str().to_owned();
    for (sql, want) in [
        (
            "UPDATE {s}.devices SET state_at = -1",
            "devices.state_at is negative",
        ),
        (
            "UPDATE {s}.devices SET state_at = 1700000000, state_by = 'ops-1'",
            "devices.state_by is set where the record's state has no value",
        ),
        (
            "UPDATE {s}.devices SET state_by = NULL; \
             UPDATE {s}.device_keys SET status = 'retiring', retiring_until = -3",
            "device_keys.retiring_until is negative",
        ),
    ] {
        raw.batch_execute(&sql.replace("{s}", &s)).unwrap();
        let Err(DeviceError::RegistryUnavailable(msg)) = registry.load(&id) else {
            panic!("{sql}: not refused")
        };
        assert!(msg.contains(want), "{sql}: {msg}");
    }
    raw.batch_execute(&format!(
        "UPDATE {s}.device_keys SET status = 'active', retiring_until = NULL"
    ))
    .unwrap();
    assert_eq!(registry.load(&id).unwrap().unwrap(), req.record);
    drop_schema(&url, &pg);
}

/// The async registry (tokio-postgres): the same contract as the sync one, on the same
/// schema, each reading what the other wrote.
#[cfg(feature = "postgres-async")]
mod async_registry {
    use super::*;
    use handoff_device::{AsyncDeviceRegistry, Transition};
    use handoff_stores::pg_async::AsyncPgStore;

    use crate::common::{kek, runtime};

    #[test]
    fn async_lifecycle_reads_and_writes_what_the_sync_registry_does() {
        let Some((url, pg)) = setup("async_lifecycle") else {
            return;
        };
        let kek = kek();
        let sync_registry = pg.device_registry(AeadSealer::new(kek));
        let rt = runtime();
        let store = rt.block_on(async {
            AsyncPgStore::connect(&url, pg.schema().as_str(), PoolConfig::default()).unwrap()
        });
        let registry = store.device_registry(AeadSealer::new(kek));
        let t0 = UnixTime::from_secs(1_700_000_000);
        let alice = OperatorId::new("alice").unwrap();

        // Written async, read sync.
        let id = DeviceId::new("async-1").unwrap();
        let req = DeviceRecord::request_pairing(
            id.clone(),
            KeyId::new("k1").unwrap(),
            HmacSecret::generate(&mut rng()),
            t0,
            600,
        );
        rt.block_on(async {
            registry.insert(&req.record).await.unwrap();
            assert_eq!(
                registry.insert(&req.record).await,
                Err(DeviceError::AlreadyRegistered)
            );
            assert_eq!(registry.load(&id).await.unwrap().unwrap(), req.record);
            assert_eq!(
                registry
                    .load(&DeviceId::new("nobody").unwrap())
                    .await
                    .unwrap(),
                None
            );
        });
        assert_eq!(sync_registry.load(&id).unwrap().unwrap(), req.record);

        // A transition committed async; a stale one loses.
        let approve = req.record.approve(&alice, t0.saturating_add(10)).unwrap();
        let stale = req.record.deny(&alice, t0.saturating_add(11)).unwrap();
        rt.block_on(async {
            let _ = approve.commit_async(&registry).await.unwrap();
            assert_eq!(
                stale.commit_async(&registry).await,
                Err(DeviceError::VersionConflict)
            );
        });
        let approved = sync_registry.load(&id).unwrap().unwrap();
        assert!(approved.state().is_approved());
        assert_eq!(approved.version(), 1);

        // Rotated sync, read async: both keys, statuses and secrets.
        let rotated = approved
            .rotate_key(
                KeyId::new("k2").unwrap(),
                HmacSecret::generate(&mut rng()),
                300,
                t0.saturating_add(20),
            )
            .unwrap();
        let want = rotated.record.clone();
        let _ = rotated.commit(&sync_registry).unwrap();
        rt.block_on(async {
            assert_eq!(registry.load(&id).await.unwrap().unwrap(), want);
            // Another key-encryption key cannot open the secrets: an error, never a record.
            let wrong = store.device_registry(AeadSealer::new([0; 32]));
            assert!(matches!(
                wrong.load(&id).await,
                Err(DeviceError::RegistryUnavailable(_))
            ));
        });
        drop(rt);
        drop_schema(&url, &pg);
    }

    #[test]
    fn concurrent_async_decisions_on_one_version_exactly_one_wins() {
        let Some((url, pg)) = setup("async_concurrent_decisions") else {
            return;
        };
        let rt = runtime();
        let kek = kek();
        let store = rt.block_on(async {
            AsyncPgStore::connect(&url, pg.schema().as_str(), PoolConfig::default()).unwrap()
        });
        let registry = store.device_registry(AeadSealer::new(kek));
        let t0 = UnixTime::from_secs(1_700_000_000);
        let id = DeviceId::new("contested").unwrap();
        let req = DeviceRecord::request_pairing(
            id.clone(),
            KeyId::new("k1").unwrap(),
            HmacSecret::generate(&mut rng()),
            t0,
            600,
        );
        let outcomes = rt.block_on(async {
            registry.insert(&req.record).await.unwrap();
            // Eight operators decide on version 0 at once, each on its own connection.
            let tasks: Vec<_> = (0..8u64)
                .map(|i| {
                    let registry = registry.clone();
                    let op = OperatorId::new(format!("op-{i}")).unwrap();
                    let at = t0.saturating_add(10 + i);
                    let decision: Transition = if i % 2 == 0 {
                        req.record.approve(&op, at).unwrap()
                    } else {
                        req.record.deny(&op, at).unwrap()
                    };
                    tokio::spawn(async move {
                        let want = decision.record.clone();
                        (decision.commit_async(&registry).await.map(|_| ()), want)
                    })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        let winners: Vec<_> = outcomes.iter().filter(|(r, _)| r.is_ok()).collect();
        assert_eq!(winners.len(), 1, "{outcomes:?}");
        for (r, _) in &outcomes {
            if r.is_err() {
                assert_eq!(r, &Err(DeviceError::VersionConflict));
            }
        }
        let stored = pg
            .device_registry(AeadSealer::new(kek))
            .load(&id)
            .unwrap()
            .unwrap();
        assert_eq!(stored, winners[0].1);
        assert_eq!(stored.version(), 1);
        drop(rt);
        drop_schema(&url, &pg);
    }

    /// The whole async handshake on the real stores: the device registry on PostgreSQL
    /// (tokio-postgres), the nonce log on Redis; a replay is refused by Redis, a device
    /// revoked through the async registry is refused at once.
    #[cfg(feature = "redis-async")]
    #[test]
    fn async_handshake_on_postgres_and_redis() {
        use handoff_device::{DeviceCredentials, Gateway, GatewayId, body_hash};
        use handoff_stores::redis::RedisReplayLog;

        let Some((url, pg)) = setup("async_handshake_on_postgres_and_redis") else {
            return;
        };
        let Some(redis_url) = common::server_url(
            "STORES_REDIS_URL",
            "redis",
            "async_handshake_on_postgres_and_redis",
        ) else {
            return;
        };
        let rt = runtime();
        let kek = kek();
        let mut rng = rng();
        // Redis keeps nonces until an absolute instant: the test runs on the wall clock.
        let now = UnixTime::from_secs(common::wall_secs());
        let boot = UnixTime::from_secs(now.as_secs() - 60);
        let id = DeviceId::new("async-gw-1").unwrap();
        let key = KeyId::new("k1").unwrap();
        let secret = HmacSecret::generate(&mut rng);
        let creds = DeviceCredentials::new(id.clone(), key.clone(), secret.clone());
        let gateway = Gateway::builder(
            GatewayId::new("gw-async").unwrap(),
            boot,
            HmacSecret::generate(&mut rng),
        )
        .build()
        .unwrap();
        let alice = OperatorId::new("alice").unwrap();
        rt.block_on(async {
            let store =
                AsyncPgStore::connect(&url, pg.schema().as_str(), PoolConfig::default()).unwrap();
            let registry = store.device_registry(AeadSealer::new(kek));
            let nonces = RedisReplayLog::builder(redis_url.as_str(), common::unique("gw-async:"))
                .build_async()
                .unwrap();
            let req = DeviceRecord::request_pairing(id.clone(), key, secret, boot, 600);
            registry.insert(&req.record).await.unwrap();
            let approved = req.record.approve(&alice, boot.saturating_add(1)).unwrap();
            let _ = approved.clone().commit_async(&registry).await.unwrap();

            let wire = creds
                .handshake(gateway.gateway_id(), now, body_hash(b"hello"), &mut rng)
                .to_wire();
            let issued = gateway
                .handshake_async(wire.as_bytes(), b"hello", &registry, &nonces, now, &mut rng)
                .await
                .unwrap();
            assert_eq!(issued.session.device_id, id);
            // The same message again: Redis holds its nonce.
            let again = gateway
                .handshake_async(wire.as_bytes(), b"hello", &registry, &nonces, now, &mut rng)
                .await
                .unwrap_err();
            assert_eq!(again.error, DeviceError::Replayed);

            // Revoked through the async registry: the next handshake is refused.
            let revoked = approved.record.revoke(&alice, now).unwrap();
            let _ = revoked.commit_async(&registry).await.unwrap();
            let wire = creds
                .handshake(gateway.gateway_id(), now, body_hash(b"hello"), &mut rng)
                .to_wire();
            let refused = gateway
                .handshake_async(wire.as_bytes(), b"hello", &registry, &nonces, now, &mut rng)
                .await
                .unwrap_err();
            assert_eq!(refused.error, DeviceError::Unauthorized);
        });
        drop(rt);
        drop_schema(&url, &pg);
    }

    #[test]
    fn unreachable_async_registry_is_an_error_never_unknown() {
        let rt = runtime();
        rt.block_on(async {
            let store = AsyncPgStore::connect(
                "postgres://x@127.0.0.1:1/none",
                "identity",
                PoolConfig::default(),
            )
            .unwrap();
            let registry = store.device_registry(AeadSealer::new([1; 32]));
            assert!(matches!(
                registry.load(&DeviceId::new("d").unwrap()).await,
                Err(DeviceError::RegistryUnavailable(_))
            ));
            let req = DeviceRecord::request_pairing(
                DeviceId::new("d").unwrap(),
                KeyId::new("k1").unwrap(),
                HmacSecret::generate(&mut rng()),
                UnixTime::from_secs(1_700_000_000),
                600,
            );
            assert!(matches!(
                registry.insert(&req.record).await,
                Err(DeviceError::RegistryUnavailable(_))
            ));
        });
    }
}
