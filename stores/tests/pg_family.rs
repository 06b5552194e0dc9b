//! Refresh families against a real PostgreSQL (`STORES_PG_URL`).
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use handoff_core::{HmacSecret, UnixTime};
use handoff_refresh::{
    ApplyOutcome, FamilyStatus, FamilyStore, Guard, Outcome, Policy, RefreshError, RefreshFamilies,
    RevocationReason, WritePlan, rotate, start,
};
use handoff_stores::PoolConfig;
use handoff_stores::pg::PgStore;

struct Db {
    url: String,
    pg: PgStore,
}

impl Db {
    fn new(test: &str) -> Option<Self> {
        let url = common::server_url("STORES_PG_URL", "postgres", test)?;
        let schema = common::unique("stores_family");
        let pg = PgStore::connect(&url, &schema, PoolConfig::default()).unwrap();
        assert_eq!(pg.migrate().unwrap(), handoff_stores::pg::SCHEMA_VERSION);
        assert_eq!(
            pg.migrate().unwrap(),
            handoff_stores::pg::SCHEMA_VERSION,
            "migration is idempotent"
        );
        Some(Self { url, pg })
    }

    fn raw(&self) -> postgres::Client {
        self.url
            .parse::<postgres::Config>()
            .unwrap()
            .connect(postgres::NoTls)
            .unwrap()
    }

    fn count(&self, sql: &str) -> i64 {
        let sql = sql.replace("{s}", self.pg.schema().as_str());
        self.raw().query_one(sql.as_str(), &[]).unwrap().get(0)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Ok(mut c) = self
            .url
            .parse::<postgres::Config>()
            .unwrap()
            .connect(postgres::NoTls)
        {
            let _ = c.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                self.pg.schema().as_str()
            ));
        }
    }
}

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

/// The crate's main path against PostgreSQL: login, rotation, in-grace replay, reuse
/// after grace revokes the family, then nothing of it is accepted.
#[test]
fn rotation_grace_and_reuse_on_postgres() {
    let Some(db) = Db::new("rotation_grace_and_reuse_on_postgres") else {
        return;
    };
    let store = db.pg.family_store();
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
    assert_eq!(refused.revoke_access_tokens, vec![login.family]);
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
    let fam = store.load_family(login.family).unwrap().unwrap();
    assert!(matches!(
        fam.status,
        FamilyStatus::Revoked {
            reason: RevocationReason::ReuseDetected,
            ..
        }
    ));
    // Revoked families are not live; the tombstone stays until the absolute expiry.
    assert!(
        store
            .live_families_of_subject("user-42", t2, 10)
            .unwrap()
            .is_empty()
    );
}

/// A plan whose guard fails writes nothing, even when its first writes would succeed.
#[test]
fn failed_guard_writes_nothing() {
    let Some(db) = Db::new("failed_guard_writes_nothing") else {
        return;
    };
    let store = db.pg.family_store();
    let master = HmacSecret::generate(&mut rng());
    let engine = engine(&master, 0);
    let t0 = UnixTime::from_secs(1_700_000_000);
    let login = start(&store, &engine, "u", "c", t0, &mut rng()).unwrap();
    // A second family whose plan also claims a stale version of the first: nothing of
    // it may be written.
    let other = engine.start_family("u2", "c", t0, &mut rng()).unwrap();
    let mut plan: WritePlan = other.plan.clone();
    plan.guards.push(Guard::FamilyVersion {
        family: login.family,
        version: 7,
    });
    assert_eq!(store.apply(&plan).unwrap(), ApplyOutcome::Conflict);
    assert!(store.load_family(other.family.id).unwrap().is_none());
    assert_eq!(db.count("SELECT count(*) FROM {s}.refresh_families"), 1);
    // The same plan without the stale guard applies; applying it twice conflicts.
    assert_eq!(store.apply(&other.plan).unwrap(), ApplyOutcome::Applied);
    assert_eq!(store.apply(&other.plan).unwrap(), ApplyOutcome::Conflict);
    assert_eq!(db.count("SELECT count(*) FROM {s}.refresh_tokens"), 2);
}

/// GC deletes only families past their absolute expiry, in bounded batches, with their
/// tokens; live families keep every row.
#[test]
fn gc_is_a_bounded_batch_delete_of_dead_families_only() {
    let Some(db) = Db::new("gc_is_a_bounded_batch_delete") else {
        return;
    };
    let store = db.pg.family_store();
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
    let Outcome::Issued(_) = rotate(
        &store,
        &engine,
        live.token.expose_secret(),
        late.saturating_add(10),
        &mut rng(),
    )
    .unwrap() else {
        panic!("rotates")
    };
    let gc_at = t0.saturating_add(3_600);
    let first = store.gc(gc_at, 2).unwrap();
    assert_eq!((first.families, first.tokens), (2, 2));
    let rest = store.gc(gc_at, 100).unwrap();
    assert_eq!((rest.families, rest.tokens), (3, 3));
    let none = store.gc(gc_at, 100).unwrap();
    assert_eq!((none.families, none.tokens), (0, 0));
    assert_eq!(db.count("SELECT count(*) FROM {s}.refresh_families"), 1);
    assert_eq!(db.count("SELECT count(*) FROM {s}.refresh_tokens"), 2);
    assert!(store.load_family(live.family).unwrap().is_some());
}

/// A store that cannot be reached is an error, never an empty answer.
#[test]
fn unreachable_database_is_an_error() {
    let pg = PgStore::connect(
        "postgres://nobody@127.0.0.1:1/none",
        "identity",
        PoolConfig::default(),
    )
    .unwrap();
    let store = pg.family_store();
    let id = handoff_refresh::FamilyId::from_bytes([1; 16]);
    assert!(matches!(
        store.load_family(id),
        Err(RefreshError::StoreUnavailable(_))
    ));
    assert!(matches!(
        store.apply(&WritePlan {
            guards: vec![Guard::FamilyAbsent { family: id }],
            ..WritePlan::default()
        }),
        Err(RefreshError::StoreUnavailable(_))
    ));
}

/// Issue 18 finding 2 on PostgreSQL: 10 000 rotations of one family leave at most
/// `MAX_TOKEN_ROWS_PER_FAMILY` token rows; reuse of a superseded token whose row is gone
/// is still detected and revokes the family. Also the DPoP binding column round-trips.
#[test]
fn ten_thousand_rotations_keep_rows_bounded_on_postgres() {
    let Some(db) = Db::new("ten_thousand_rotations_keep_rows_bounded_on_postgres") else {
        return;
    };
    let store = db.pg.family_store();
    let master = HmacSecret::generate(&mut rng());
    let engine = engine(&master, 0);
    let mut now = UnixTime::from_secs(1_700_000_000);
    let jkt = handoff_core::Thumbprint::from_bytes([5; 32]);
    let login = handoff_refresh::start_bound(
        &store,
        &engine,
        "mallory",
        "spa",
        Some(jkt),
        now,
        &mut rng(),
    )
    .unwrap();
    assert_eq!(
        store.load_family(login.family).unwrap().unwrap().dpop_jkt,
        Some(jkt)
    );
    let first = login.token;
    let mut head = first.expose_secret().to_owned();
    let mut early = None;
    for i in 0..10_000 {
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
    let rows = db.count("SELECT count(*) FROM {s}.refresh_tokens");
    assert!(
        rows <= handoff_refresh::MAX_TOKEN_ROWS_PER_FAMILY as i64,
        "{rows} token rows after 10 000 rotations"
    );
    // A mismatching key is refused without revoking.
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
    // Another user still logs in.
    let _ = start(&store, &engine, "bob", "web", now, &mut rng()).unwrap();
    // Reuse of a superseded token whose row is gone revokes the family.
    let Outcome::Refused(r) =
        handoff_refresh::rotate_bound(&store, &engine, &early.unwrap(), Some(jkt), now, &mut rng())
            .unwrap()
    else {
        panic!("reuse is refused")
    };
    assert_eq!(r.error, RefreshError::ReuseDetected);
    let Outcome::Refused(after) =
        handoff_refresh::rotate_bound(&store, &engine, &head, Some(jkt), now, &mut rng()).unwrap()
    else {
        panic!("the family is revoked")
    };
    assert_eq!(after.error.reason(), "family_revoked");
    let _ = first;
}

/// A schema of version 1 (as deployed before the DPoP binding) with a live family is
/// migrated to the current version (3: the binding, then device sessions): the family
/// keeps rotating, unbound, and bound families persist
/// their key.
#[test]
fn version_one_schema_migrates_to_two() {
    let Some(url) = common::server_url(
        "STORES_PG_URL",
        "postgres",
        "version_one_schema_migrates_to_two",
    ) else {
        return;
    };
    let schema = common::unique("stores_migrate");
    let mut raw = url
        .parse::<postgres::Config>()
        .unwrap()
        .connect(postgres::NoTls)
        .unwrap();
    raw.batch_execute(&include_str!("data/pg_schema_v1.sql").replace("{schema}", &schema))
        .unwrap();
    let db = Db {
        url: url.clone(),
        pg: PgStore::connect(&url, &schema, PoolConfig::default()).unwrap(),
    };
    // A family written by a version-1 adapter (no dpop_jkt column).
    raw.batch_execute(&format!(
        "INSERT INTO {schema}.refresh_families (id, subject, client_id, created_at, \
         absolute_expires_at, head, head_parent, head_generation, version, status) \
         VALUES ('\\x01010101010101010101010101010101'::bytea, 'old', 'c', 1, 2000000000, \
         '\\x02020202020202020202020202020202'::bytea, NULL, 0, 0, 'active')"
    ))
    .unwrap();
    assert_eq!(db.pg.migrate().unwrap(), 3);
    let store = db.pg.family_store();
    let old = store
        .load_family(handoff_refresh::FamilyId::from_bytes([1; 16]))
        .unwrap()
        .unwrap();
    assert_eq!((old.subject.as_str(), old.dpop_jkt), ("old", None));
    let master = HmacSecret::generate(&mut rng());
    let engine = engine(&master, 0);
    let jkt = handoff_core::Thumbprint::from_bytes([9; 32]);
    let bound = handoff_refresh::start_bound(
        &store,
        &engine,
        "new",
        "c",
        Some(jkt),
        UnixTime::from_secs(1_700_000_000),
        &mut rng(),
    )
    .unwrap();
    assert_eq!(
        store.load_family(bound.family).unwrap().unwrap().dpop_jkt,
        Some(jkt)
    );
}

/// Rows altered behind the adapter's back (a database shared with other software) are
/// refused with the column named: the shared decoder of `stores::rows` behind the
/// PostgreSQL adapter.
#[test]
fn tampered_rows_are_refused_naming_the_column_on_postgres() {
    let Some(db) = Db::new("tampered_rows_are_refused_naming_the_column_on_postgres") else {
        return;
    };
    let store = db.pg.family_store();
    let master = HmacSecret::generate(&mut rng());
    let engine = engine(&master, 0);
    let t0 = UnixTime::from_secs(1_700_000_000);
    let login = start(&store, &engine, "user-7", "web-app", t0, &mut rng()).unwrap();
    let s = db.pg.schema().as_str().to_owned();
    let id: Vec<u8> = db
        .raw()
        .query_one(&format!("SELECT id FROM {s}.refresh_families"), &[])
        .unwrap()
        .get(0);
    let family = handoff_refresh::FamilyId::from_bytes(id.try_into().unwrap());
    assert!(store.load_family(family).unwrap().is_some());
    let tamper = |sql: &str| {
        db.raw().batch_execute(&sql.replace("{s}", &s)).unwrap();
    };
    tamper("UPDATE {s}.refresh_families SET created_at = -5");
    assert_eq!(
        store.load_family(family),
        Err(RefreshError::Inconsistent(
            "refresh_families.created_at is negative"
        ))
    );
    tamper(
        "ALTER TABLE {s}.refresh_families DROP CONSTRAINT refresh_families_head_check; \
         UPDATE {s}.refresh_families SET created_at = 1700000000, head = '\\x0102'",
    );
    assert_eq!(
        store.load_family(family),
        Err(RefreshError::Inconsistent(
            "refresh_families.head has a length the schema does not allow"
        ))
    );
    // The token row, read by the rotation's load.
    tamper(
        "UPDATE {s}.refresh_families SET head = (SELECT id FROM {s}.refresh_tokens LIMIT 1); \
         UPDATE {s}.refresh_tokens SET issued_at = -1",
    );
    assert!(store.load_family(family).unwrap().is_some());
    assert_eq!(
        rotate(
            &store,
            &engine,
            login.token.expose_secret(),
            t0.saturating_add(60),
            &mut rng()
        )
        .err(),
        Some(RefreshError::Inconsistent(
            "refresh_tokens.issued_at is negative"
        ))
    );
}
