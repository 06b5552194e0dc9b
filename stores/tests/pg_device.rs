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
