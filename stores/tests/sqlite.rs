//! The embedded SQLite stores: replay log, refresh families, device registry, schema.
//! No server needed: every test makes its own file in a temporary directory.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use handoff_core::replay::{ReplayKey, ReplayLog, ReplayVerdict};
use handoff_core::{HmacSecret, UnixTime};
use handoff_device::{
    DeviceError, DeviceId, DeviceRecord, DeviceRegistry, DeviceState, KeyId, OperatorId,
};
use handoff_refresh::{
    ApplyOutcome, FamilyStatus, FamilyStore, Guard, Outcome, Policy, RefreshError, RefreshFamilies,
    RevocationReason, WritePlan, rotate, start,
};
use handoff_stores::sqlite::{SqliteConfig, SqliteStore};
use handoff_stores::{AeadSealer, StoresError};

use common::{TempDir, raw_sqlite as raw};

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn engine(master: &HmacSecret, grace: u64) -> RefreshFamilies {
    let mut b = Policy::builder().attempts(10);
    if grace > 0 {
        b = b.grace_window(grace).grace_max_uses(100);
    }
    RefreshFamilies::new(master, b.build().unwrap())
}

#[test]
fn opens_in_wal_with_schema_version_and_refuses_a_newer_file() {
    let dir = TempDir::new("sqlite_schema");
    let db = SqliteStore::open(dir.db(), SqliteConfig::default()).unwrap();
    assert_eq!(db.schema_version().unwrap(), 3);
    db.integrity_check().unwrap();
    let c = raw(&dir.db());
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // Opening again (another process would) migrates nothing and keeps the data.
    drop(db);
    let again = SqliteStore::open(dir.db(), SqliteConfig::default()).unwrap();
    assert_eq!(again.schema_version().unwrap(), 3);
    // A file written by a newer crate is refused, never half-used.
    c.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(again);
    match SqliteStore::open(dir.db(), SqliteConfig::default()) {
        Err(StoresError::Migration(msg)) => assert!(msg.contains("99"), "{msg}"),
        other => panic!("a newer schema must be refused, got {other:?}"),
    }
}

#[test]
fn bad_settings_are_config_errors() {
    let dir = TempDir::new("sqlite_cfg");
    assert!(matches!(
        SqliteStore::open(
            dir.db(),
            SqliteConfig::default().busy_timeout(Duration::ZERO)
        ),
        Err(StoresError::Config(_))
    ));
    // A directory that does not exist: a connection error, not a panic.
    let res = SqliteStore::open(
        dir.0.join("missing/dir/x.db"),
        SqliteConfig::default().busy_timeout(Duration::from_millis(50)),
    );
    assert!(matches!(res, Err(StoresError::Connect(_))), "{res:?}");
}

#[test]
fn replay_log_fresh_replayed_expiry_capacity_horizon() {
    let dir = TempDir::new("sqlite_replay");
    let db = SqliteStore::open(dir.db(), SqliteConfig::default()).unwrap();
    let log = db.replay_log().with_capacity(3).unwrap();
    let now = UnixTime::from_secs(1_700_000_000);
    let k = |i: u8| ReplayKey::from_bytes([i; 32]);
    assert_eq!(
        log.check_and_insert(&k(1), now.saturating_add(10), now),
        Ok(ReplayVerdict::Fresh)
    );
    assert_eq!(
        log.check_and_insert(&k(1), now.saturating_add(10), now),
        Ok(ReplayVerdict::Replayed)
    );
    // Still replayed during the whole second `until`.
    assert_eq!(
        log.check_and_insert(&k(1), now.saturating_add(20), now.saturating_add(10)),
        Ok(ReplayVerdict::Replayed)
    );
    // After `until`, the same key is fresh again (the expired entry is overwritten).
    assert_eq!(
        log.check_and_insert(&k(1), now.saturating_add(30), now.saturating_add(11)),
        Ok(ReplayVerdict::Fresh)
    );
    // Another log on the same file (another process would do the same) sees the entry.
    let other = SqliteStore::open(dir.db(), SqliteConfig::default())
        .unwrap()
        .replay_log();
    assert_eq!(
        other.check_and_insert(&k(1), now.saturating_add(30), now.saturating_add(12)),
        Ok(ReplayVerdict::Replayed)
    );
    // Capacity: full of live entries answers AtCapacity, never evicts.
    let t = now.saturating_add(12);
    assert_eq!(
        log.check_and_insert(&k(2), t.saturating_add(100), t),
        Ok(ReplayVerdict::Fresh)
    );
    assert_eq!(
        log.check_and_insert(&k(3), t.saturating_add(100), t),
        Ok(ReplayVerdict::Fresh)
    );
    assert_eq!(log.entries().unwrap(), 3);
    assert_eq!(
        log.check_and_insert(&k(4), t.saturating_add(100), t),
        Ok(ReplayVerdict::AtCapacity)
    );
    assert_eq!(
        log.check_and_insert(&k(2), t.saturating_add(100), t),
        Ok(ReplayVerdict::Replayed),
        "a full log still remembers its live entries"
    );
    // Once entries expire, a GC batch makes room.
    let later = t.saturating_add(200);
    assert_eq!(
        log.check_and_insert(&k(4), later.saturating_add(10), later),
        Ok(ReplayVerdict::Fresh)
    );
    assert!(log.entries().unwrap() <= 3);
    // Past and far entries never touch the file.
    assert_eq!(
        log.check_and_insert(&k(9), now, now.saturating_add(1)),
        Ok(ReplayVerdict::Replayed)
    );
    assert_eq!(
        log.check_and_insert(&k(9), now.saturating_add(86_401), now),
        Ok(ReplayVerdict::AtCapacity)
    );
}

#[test]
fn replay_gc_is_bounded() {
    let dir = TempDir::new("sqlite_replay_gc");
    let db = SqliteStore::open(dir.db(), SqliteConfig::default()).unwrap();
    let log = db.replay_log();
    let now = UnixTime::from_secs(1_700_000_000);
    for i in 0..50u8 {
        let _ = log
            .check_and_insert(&ReplayKey::from_bytes([i; 32]), now, now)
            .unwrap();
    }
    let later = now.saturating_add(1);
    assert_eq!(log.gc(later, 20).unwrap(), 20);
    assert_eq!(log.gc(later, 100).unwrap(), 30);
    assert_eq!(log.gc(later, 100).unwrap(), 0);
    assert_eq!(log.entries().unwrap(), 0);
}

#[test]
fn a_writer_held_past_the_busy_timeout_fails_closed() {
    let dir = TempDir::new("sqlite_busy");
    let db = SqliteStore::open(
        dir.db(),
        SqliteConfig::default().busy_timeout(Duration::from_millis(100)),
    )
    .unwrap();
    let log = db.replay_log();
    let now = UnixTime::from_secs(1_700_000_000);
    // Another connection holds the write lock.
    let mut c = raw(&dir.db());
    let tx = c
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    let started = std::time::Instant::now();
    let res = log.check_and_insert(&ReplayKey::from_bytes([7; 32]), now, now);
    let err = res.expect_err("a locked file must be an error, never Fresh");
    assert!(err.0.contains("busy timeout"), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(100));
    tx.rollback().unwrap();
    assert_eq!(
        log.check_and_insert(&ReplayKey::from_bytes([7; 32]), now, now),
        Ok(ReplayVerdict::Fresh)
    );
}

/// The crate's main path on SQLite: login, rotation, in-grace replay, reuse after grace
/// revokes the family.
#[test]
fn rotation_grace_and_reuse_on_sqlite() {
    let dir = TempDir::new("sqlite_family");
    let db = SqliteStore::open(dir.db(), SqliteConfig::default()).unwrap();
    let store = db.family_store();
    let master = HmacSecret::generate(&mut rng());
    let engine = engine(&master, 10);
    let t0 = UnixTime::from_secs(1_700_000_000);
    let login = start(&store, &engine, "user-42", "web-app", t0, &mut rng()).unwrap();
    let t1 = t0.saturating_add(3_600);
    let Outcome::Issued(second) =
        rotate(&store, &engine, login.token.expose_secret(), t1, &mut rng()).unwrap()
    else {
        panic!("the head rotates")
    };
    assert!(!second.grace);
    let Outcome::Issued(again) = rotate(
        &store,
        &engine,
        login.token.expose_secret(),
        t1.saturating_add(2),
        &mut rng(),
    )
    .unwrap() else {
        panic!("in grace")
    };
    assert!(again.grace);
    assert_eq!(again.token.expose_secret(), second.token.expose_secret());
    let t2 = t1.saturating_add(60);
    let Outcome::Refused(refused) =
        rotate(&store, &engine, login.token.expose_secret(), t2, &mut rng()).unwrap()
    else {
        panic!("reuse is refused")
    };
    assert_eq!(refused.error, RefreshError::ReuseDetected);
    let Outcome::Refused(after) = rotate(
        &store,
        &engine,
        second.token.expose_secret(),
        t2,
        &mut rng(),
    )
    .unwrap() else {
        panic!("the family is revoked")
    };
    assert_eq!(after.error.reason(), "family_revoked");
    // Reopened (a restart): everything is still there.
    drop(store);
    drop(db);
    let db = SqliteStore::open(dir.db(), SqliteConfig::default()).unwrap();
    let fam = db
        .family_store()
        .load_family(login.family)
        .unwrap()
        .unwrap();
    assert!(matches!(
        fam.status,
        FamilyStatus::Revoked {
            reason: RevocationReason::ReuseDetected,
            ..
        }
    ));
    assert!(
        db.family_store()
            .live_families_of_subject("user-42", t2, 10)
            .unwrap()
            .is_empty()
    );
}

/// A plan whose guard fails writes nothing, even when its first writes would succeed.
#[test]
fn failed_guard_writes_nothing_on_sqlite() {
    let dir = TempDir::new("sqlite_guard");
    let db = SqliteStore::open(dir.db(), SqliteConfig::default()).unwrap();
    let store = db.family_store();
    let master = HmacSecret::generate(&mut rng());
    let engine = engine(&master, 0);
    let t0 = UnixTime::from_secs(1_700_000_000);
    let login = start(&store, &engine, "u", "c", t0, &mut rng()).unwrap();
    let other = engine.start_family("u2", "c", t0, &mut rng()).unwrap();
    let mut plan: WritePlan = other.plan.clone();
    plan.guards.push(Guard::FamilyVersion {
        family: login.family,
        version: 7,
    });
    assert_eq!(store.apply(&plan).unwrap(), ApplyOutcome::Conflict);
    assert!(store.load_family(other.family.id).unwrap().is_none());
    let count = |sql: &str| -> i64 { raw(&dir.db()).query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM refresh_families"), 1);
    assert_eq!(store.apply(&other.plan).unwrap(), ApplyOutcome::Applied);
    assert_eq!(
        store.apply(&other.plan).unwrap(),
        ApplyOutcome::Conflict,
        "applying a plan twice conflicts (guard and insert row counts)"
    );
    assert_eq!(count("SELECT count(*) FROM refresh_tokens"), 2);
}

#[test]
fn gc_is_a_bounded_batch_delete_of_dead_families_only_on_sqlite() {
    let dir = TempDir::new("sqlite_gc");
    let db = SqliteStore::open(dir.db(), SqliteConfig::default()).unwrap();
    let store = db.family_store();
    let master = HmacSecret::generate(&mut rng());
    let engine = RefreshFamilies::new(
        &master,
        Policy::builder()
            .idle_lifetime(600)
            .absolute_lifetime(3_600)
            .build()
            .unwrap(),
    );
    let t0 = UnixTime::from_secs(1_700_000_000);
    for i in 0..5 {
        let _ = start(&store, &engine, &format!("old-{i}"), "c", t0, &mut rng()).unwrap();
    }
    let late = t0.saturating_add(3_000);
    let live = start(&store, &engine, "live", "c", late, &mut rng()).unwrap();
    let gc_at = t0.saturating_add(3_600);
    let first = store.gc(gc_at, 2).unwrap();
    assert_eq!((first.families, first.tokens), (2, 2));
    let rest = store.gc(gc_at, 100).unwrap();
    assert_eq!((rest.families, rest.tokens), (3, 3));
    let none = store.gc(gc_at, 100).unwrap();
    assert_eq!((none.families, none.tokens), (0, 0));
    assert!(store.load_family(live.family).unwrap().is_some());
}

#[test]
fn device_registry_lifecycle_on_sqlite() {
    let dir = TempDir::new("sqlite_device");
    let db = SqliteStore::open(dir.db(), SqliteConfig::default()).unwrap();
    let mut kek = [0u8; 32];
    rand_core::Rng::fill_bytes(&mut rng(), &mut kek);
    let registry = db.device_registry(AeadSealer::new(kek));
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
    let sealed: Vec<u8> = raw(&dir.db())
        .query_row("SELECT sealed_secret FROM device_keys", [], |r| r.get(0))
        .unwrap();
    assert!(!sealed.windows(32).any(|w| w == secret.expose_secret()));
    let alice = OperatorId::new("alice").unwrap();
    let approve = req.record.approve(&alice, t0.saturating_add(10)).unwrap();
    let stale = req.record.deny(&alice, t0.saturating_add(11)).unwrap();
    let _ = approve.commit(&registry).unwrap();
    assert_eq!(stale.commit(&registry), Err(DeviceError::VersionConflict));
    let approved = registry.load(&id).unwrap().unwrap();
    assert!(approved.state().is_approved());
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
    let wrong = db.device_registry(AeadSealer::new([0; 32]));
    assert!(matches!(
        wrong.load(&id),
        Err(DeviceError::RegistryUnavailable(_))
    ));
}

/// A file of schema version 1 (before the DPoP binding) with a family is migrated to the
/// current version (3: then device sessions) on open: the old family loads unbound, new bound families persist their key, and 2 000
/// rotations keep the token rows bounded.
#[test]
fn version_one_file_migrates_and_rows_stay_bounded() {
    let dir = TempDir::new("sqlite_migrate");
    {
        let c = raw(&dir.db());
        c.execute_batch(include_str!("../src/sqlite/schema_v1.sql"))
            .unwrap();
        c.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO refresh_families (id, subject, client_id, created_at,
               absolute_expires_at, head, head_parent, head_generation, version, status)
             VALUES (zeroblob(16), 'old', 'c', 1, 2000000000, zeroblob(16), NULL, 0, 0, 'active');",
        )
        .unwrap();
    }
    let db = SqliteStore::open(
        dir.db(),
        SqliteConfig::default().durability(handoff_stores::sqlite::Durability::Normal),
    )
    .unwrap();
    assert_eq!(db.schema_version().unwrap(), 3);
    let store = db.family_store();
    let old = store
        .load_family(handoff_refresh::FamilyId::from_bytes([0; 16]))
        .unwrap()
        .unwrap();
    assert_eq!((old.subject.as_str(), old.dpop_jkt), ("old", None));

    let master = HmacSecret::generate(&mut rng());
    let engine = engine(&master, 0);
    let mut now = UnixTime::from_secs(1_700_000_000);
    let jkt = handoff_core::Thumbprint::from_bytes([5; 32]);
    let login =
        handoff_refresh::start_bound(&store, &engine, "m", "spa", Some(jkt), now, &mut rng())
            .unwrap();
    assert_eq!(
        store.load_family(login.family).unwrap().unwrap().dpop_jkt,
        Some(jkt)
    );
    let mut head = login.token.expose_secret().to_owned();
    let mut early = None;
    for i in 0..2_000 {
        now = now.saturating_add(1);
        let Outcome::Issued(next) =
            handoff_refresh::rotate_bound(&store, &engine, &head, Some(jkt), now, &mut rng())
                .unwrap()
        else {
            panic!("rotation {i} refused")
        };
        head = next.token.expose_secret().to_owned();
        if i == 10 {
            early = Some(head.clone());
        }
    }
    let rows: i64 = raw(&dir.db())
        .query_row(
            "SELECT count(*) FROM refresh_tokens WHERE family_id = ?1",
            [login.family.as_bytes().as_slice()],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        rows <= handoff_refresh::MAX_TOKEN_ROWS_PER_FAMILY as i64,
        "{rows} token rows after 2 000 rotations"
    );
    let Outcome::Refused(r) = handoff_refresh::rotate_bound(
        &store,
        &engine,
        &head,
        Some(handoff_core::Thumbprint::from_bytes([6; 32])),
        now,
        &mut rng(),
    )
    .unwrap() else {
        panic!("another key is refused")
    };
    assert_eq!(r.error, RefreshError::DpopKeyMismatch);
    let Outcome::Refused(r) =
        handoff_refresh::rotate_bound(&store, &engine, &early.unwrap(), Some(jkt), now, &mut rng())
            .unwrap()
    else {
        panic!("reuse is refused")
    };
    assert_eq!(r.error, RefreshError::ReuseDetected);
    db.integrity_check().unwrap();
}

/// Rows altered behind the adapter's back (another program writing the file, a corrupted
/// or tampered file, CHECK constraints switched off) are refused with the column named:
/// the shared decoder of `stores::rows` behind the SQLite adapter.
#[test]
fn tampered_rows_are_refused_naming_the_column_on_sqlite() {
    let dir = TempDir::new("sqlite_tampered");
    let db = SqliteStore::open(dir.db(), SqliteConfig::default()).unwrap();
    let store = db.family_store();
    let master = HmacSecret::generate(&mut rng());
    let t0 = UnixTime::from_secs(1_700_000_000);
    let _login = start(&store, &engine(&master, 0), "user-7", "web", t0, &mut rng()).unwrap();
    let raw = raw(&dir.db());
    raw.execute_batch("PRAGMA ignore_check_constraints = ON")
        .unwrap();
    let id: Vec<u8> = raw
        .query_row("SELECT id FROM refresh_families", [], |r| r.get(0))
        .unwrap();
    let family = handoff_refresh::FamilyId::from_bytes(id.try_into().unwrap());
    let refused = |sql: &str, want: &'static str| {
        raw.execute_batch(sql).unwrap();
        assert_eq!(
            store.load_family(family),
            Err(RefreshError::Inconsistent(want)),
            "{sql}"
        );
    };
    refused(
        "UPDATE refresh_families SET subject = CAST(X'75FF' AS TEXT)",
        "refresh_families.subject is not valid UTF-8",
    );
    refused(
        "UPDATE refresh_families SET subject = 'user-7', created_at = 'soon'",
        "refresh_families.created_at has an unexpected type",
    );
    refused(
        "UPDATE refresh_families SET created_at = 1700000000, status = 'frozen'",
        "refresh_families.status holds an unknown code",
    );
    refused(
        "UPDATE refresh_families SET status = 'active', revoked_at = 5",
        "refresh_families.revoked_at is set where the record's state has no value",
    );
    raw.execute_batch("UPDATE refresh_families SET revoked_at = NULL")
        .unwrap();
    assert!(store.load_family(family).unwrap().is_some());

    let registry = db.device_registry(AeadSealer::new([3; 32]));
    let id = DeviceId::new("sensor-9").unwrap();
    let req = DeviceRecord::request_pairing(
        id.clone(),
        KeyId::new("k1").unwrap(),
        HmacSecret::generate(&mut rng()),
        t0,
        600,
    );
    registry.insert(&req.record).unwrap();
    assert_eq!(registry.load(&id).unwrap().unwrap(), req.record);
    let device_refused = |sql: &str, column: &str| {
        raw.execute_batch(sql).unwrap();
        let Err(DeviceError::RegistryUnavailable(msg)) = registry.load(&id) else {
            panic!("{sql}: not refused")
        };
        assert!(msg.contains(column), "{sql}: {msg}");
    };
    device_refused(
        "UPDATE devices SET state = 'approve'",
        "devices.state holds an unknown code",
    );
    device_refused(
        "UPDATE devices SET state = 'pending', expires_at = NULL",
        "devices.expires_at is NULL",
    );
    device_refused(
        "UPDATE devices SET expires_at = 1700000600; UPDATE device_keys SET position = 7",
        "device_keys.position is out of range",
    );
    raw.execute_batch("UPDATE device_keys SET position = 0")
        .unwrap();
    assert_eq!(registry.load(&id).unwrap().unwrap(), req.record);
}
