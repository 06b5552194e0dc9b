//! The cross-process refresh race on every engine: 4 processes x 8 threads present one
//! refresh token at the same instant, on SQLite (one file), PostgreSQL (sync) and
//! PostgreSQL (async, tokio-postgres). Exactly one rotation; every other presenter gets
//! the same successor in grace, or a retry that wrote nothing; rows consistent. Then a
//! reuse after grace revokes the family and every process sees it revoked.
#![cfg(all(feature = "postgres-async", feature = "sqlite"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use handoff_core::{HmacSecret, UnixTime};
use handoff_refresh::{
    FamilyStatus, FamilyStore, Policy, RefreshFamilies, RevocationReason, TokenState, start,
};
use handoff_stores::PoolConfig;
use handoff_stores::pg::PgStore;
use handoff_stores::sqlite::{SqliteConfig, SqliteStore};

const PROCESSES: usize = 4;
const THREADS: usize = 8;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// Where the fleet's processes meet.
#[derive(Clone)]
enum Target {
    Pg { url: String, schema: String },
    PgAsync { url: String, schema: String },
    Sqlite { path: String },
}

impl Target {
    fn apply(&self, cmd: &mut Command) {
        match self {
            Self::Pg { url, schema } | Self::PgAsync { url, schema } => {
                cmd.env("STORES_PG_URL", url)
                    .env("STORES_RACE_SCHEMA", schema)
                    .env(
                        "STORES_RACE_ENGINE",
                        if matches!(self, Self::Pg { .. }) {
                            "pg"
                        } else {
                            "pg-async"
                        },
                    );
            }
            Self::Sqlite { path } => {
                cmd.env("STORES_SQLITE_PATH", path)
                    .env("STORES_RACE_ENGINE", "sqlite");
            }
        }
    }
}

/// Runs `processes` race workers presenting `token` at `now`; returns every output line.
fn fleet(
    target: &Target,
    master: &HmacSecret,
    token: &str,
    now: UnixTime,
    processes: usize,
) -> Vec<String> {
    let start_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 2_000;
    let children: Vec<_> = (0..processes)
        .map(|_| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_stores-race-worker"));
            target.apply(&mut cmd);
            cmd.env("STORES_RACE_MASTER", hex(master.expose_secret()))
                .env("STORES_RACE_TOKEN", token)
                .env("STORES_RACE_NOW", now.as_secs().to_string())
                .env("STORES_RACE_START_MS", start_ms.to_string())
                .env("STORES_RACE_THREADS", THREADS.to_string())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut lines = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a worker process failed");
        lines.extend(
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(str::to_owned),
        );
    }
    assert_eq!(lines.len(), processes * THREADS);
    lines
}

/// The race and its checks, on any engine (`store` reads the same rows as the fleet).
fn race(target: &Target, store: &dyn FamilyStore, count_tokens: &dyn Fn() -> i64) {
    let master = HmacSecret::generate(&mut rng());
    // The workers' policy.
    let engine = RefreshFamilies::new(
        &master,
        Policy::builder()
            .grace_window(30)
            .grace_max_uses(100)
            .attempts(10)
            .build()
            .unwrap(),
    );
    let t0 = UnixTime::from_secs(1_700_000_000);
    let login = start(store, &engine, "racer", "app", t0, &mut rng()).unwrap();
    let first_id = login.token.id();
    let now = t0.saturating_add(60);

    let lines = fleet(target, &master, login.token.expose_secret(), now, PROCESSES);
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut issued_ids = Vec::new();
    let mut successor = String::new();
    for l in &lines {
        let mut parts = l.split_whitespace();
        let kind = format!(
            "{} {}",
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("")
        );
        if kind.starts_with("issued") {
            issued_ids.push(parts.next().unwrap().to_owned());
            successor = parts.next().unwrap().to_owned();
        }
        *kinds.entry(kind).or_default() += 1;
    }
    eprintln!("race outcomes: {kinds:?}");
    assert_eq!(
        kinds.get("issued rotation"),
        Some(&1),
        "exactly one rotation: {kinds:?}"
    );
    let grace = kinds.get("issued grace").copied().unwrap_or(0);
    let retry = kinds.get("error retry").copied().unwrap_or(0);
    assert_eq!(
        1 + grace + retry,
        PROCESSES * THREADS,
        "only rotation, grace or retry: {kinds:?}"
    );
    assert!(
        issued_ids.windows(2).all(|w| w[0] == w[1]),
        "one successor for everyone"
    );

    let fam = store.load_family(login.family).unwrap().unwrap();
    assert_eq!(fam.status, FamilyStatus::Active);
    assert_eq!((fam.version, fam.head_generation), (1, 1));
    assert_eq!(fam.head_parent, Some(first_id));
    assert_eq!(fam.head.to_base64url(), issued_ids[0]);
    match store
        .load(login.family, first_id)
        .unwrap()
        .token
        .unwrap()
        .state
    {
        TokenState::Rotated {
            successor,
            grace_uses,
            ..
        } => {
            assert_eq!(successor, fam.head);
            assert_eq!(
                grace_uses as usize, grace,
                "every grace answer was counted once"
            );
        }
        other => panic!("the presented token must be rotated, is {other:?}"),
    }
    let head_row = store.load(login.family, fam.head).unwrap().token.unwrap();
    assert_eq!(head_row.state, TokenState::Active);
    assert_eq!((head_row.parent, head_row.generation), (Some(first_id), 1));
    assert_eq!(count_tokens(), 2);

    // Reuse after grace, from one process: the family is revoked.
    let after_grace = now.saturating_add(120);
    let reuse = fleet(target, &master, login.token.expose_secret(), after_grace, 1);
    assert!(
        reuse
            .iter()
            .all(|l| l == "refused reuse_detected" || l == "refused family_revoked"),
        "{reuse:?}"
    );
    assert!(reuse.iter().any(|l| l == "refused reuse_detected"));
    let fam = store.load_family(login.family).unwrap().unwrap();
    assert!(matches!(
        fam.status,
        FamilyStatus::Revoked {
            reason: RevocationReason::ReuseDetected,
            ..
        }
    ));
    let revoked = fleet(
        target,
        &master,
        &successor,
        after_grace.saturating_add(1),
        PROCESSES,
    );
    assert!(
        revoked.iter().all(|l| l == "refused family_revoked"),
        "{revoked:?}"
    );
    assert_eq!(count_tokens(), 2, "no write after revocation");
}

struct PgSchema {
    url: String,
    pg: PgStore,
}

impl PgSchema {
    fn new(test: &str) -> Option<Self> {
        let url = common::server_url("STORES_PG_URL", "postgres", test)?;
        let pg =
            PgStore::connect(&url, &common::unique("stores_race"), PoolConfig::default()).unwrap();
        pg.migrate().unwrap();
        Some(Self { url, pg })
    }

    fn count_tokens(&self) -> i64 {
        let mut c = self
            .url
            .parse::<postgres::Config>()
            .unwrap()
            .connect(postgres::NoTls)
            .unwrap();
        c.query_one(
            format!(
                "SELECT count(*) FROM {}.refresh_tokens",
                self.pg.schema().as_str()
            )
            .as_str(),
            &[],
        )
        .unwrap()
        .get(0)
    }
}

impl Drop for PgSchema {
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

#[test]
fn four_processes_eight_threads_one_rotation_on_postgres() {
    let Some(db) = PgSchema::new("four_processes_eight_threads_one_rotation_on_postgres") else {
        return;
    };
    let target = Target::Pg {
        url: db.url.clone(),
        schema: db.pg.schema().as_str().to_owned(),
    };
    race(&target, &db.pg.family_store(), &|| db.count_tokens());
}

#[test]
fn four_processes_eight_tasks_one_rotation_on_async_postgres() {
    let Some(db) = PgSchema::new("four_processes_eight_tasks_one_rotation_on_async_postgres")
    else {
        return;
    };
    let target = Target::PgAsync {
        url: db.url.clone(),
        schema: db.pg.schema().as_str().to_owned(),
    };
    race(&target, &db.pg.family_store(), &|| db.count_tokens());
}

#[test]
fn four_processes_eight_threads_one_rotation_on_one_sqlite_file() {
    let dir = std::env::temp_dir().join(common::unique("stores_race_sqlite"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("race.db");
    let db = SqliteStore::open(&path, SqliteConfig::default()).unwrap();
    let target = Target::Sqlite {
        path: path.to_string_lossy().into_owned(),
    };
    let count = || -> i64 {
        rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("SELECT count(*) FROM refresh_tokens", [], |r| r.get(0))
            .unwrap()
    };
    race(&target, &db.family_store(), &count);
    db.integrity_check().unwrap();
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
