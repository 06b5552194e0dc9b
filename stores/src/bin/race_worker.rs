//! Test helper for the cross-process tests (`tests/race.rs`, `tests/faults.rs`): one
//! process of a fleet. Not part of the library's API.
//!
//! `STORES_RACE_MODE`:
//! * `race` (default): runs `STORES_RACE_THREADS` threads (or tasks) that each present the
//!   same refresh token once at the same wall-clock instant, and prints one line per
//!   thread: `issued <rotation|grace> <token id> <token>`, `refused <reason>` or
//!   `error <message>`.
//! * `chain`: (SQLite) starts `STORES_RACE_THREADS` families and rotates each in a loop
//!   forever, printing `ack <family hex> <generation> <head id hex>` after every rotation
//!   that returned success (the parent kills the process with SIGKILL).
//! * `probe`: (SQLite) writes to the file in a loop for `STORES_PROBE_MS` and prints
//!   `probe <ops> <errors> <max latency ms>`.
//!
//! `STORES_RACE_ENGINE`: `pg` (sync, `STORES_PG_URL` + `STORES_RACE_SCHEMA`), `pg-async`
//! (same, on tokio-postgres), or `sqlite` (`STORES_SQLITE_PATH`).
#![allow(clippy::print_stdout)]

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use handoff_core::replay::{ReplayKey, ReplayLog};
use handoff_core::{HmacSecret, UnixTime};
use handoff_refresh::{
    FamilyStore, Outcome, Policy, RefreshFamilies, RefreshToken, rotate, rotate_async, start,
};
use handoff_stores::PoolConfig;
use handoff_stores::pg::PgStore;
use handoff_stores::pg_async::AsyncPgStore;
use handoff_stores::sqlite::{SqliteConfig, SqliteStore};

fn var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

fn hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err("odd hex length".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2).unwrap_or("zz"), 16).map_err(|e| e.to_string()))
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The policy the race runs under: 30 s grace returning the same successor, up to 100
/// in-grace replays, 10 store attempts.
fn policy() -> Result<Policy, String> {
    Policy::builder()
        .grace_window(30)
        .grace_max_uses(100)
        .attempts(10)
        .build()
        .map_err(|e| e.to_string())
}

fn line(res: Result<Outcome, handoff_refresh::RefreshError>) -> String {
    match res {
        Ok(Outcome::Issued(i)) => format!(
            "issued {} {} {}",
            if i.grace { "grace" } else { "rotation" },
            i.token.id().to_base64url(),
            i.token.expose_secret()
        ),
        Ok(Outcome::Refused(r)) => format!("refused {}", r.error.reason()),
        Ok(_) => "error unknown outcome".to_owned(),
        Err(e) => format!("error {}", e.reason()),
    }
}

fn wait_until(start_ms: u128) {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    if start_ms > now_ms {
        std::thread::sleep(Duration::from_millis(
            u64::try_from(start_ms - now_ms).unwrap_or(0),
        ));
    }
}

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn sqlite(threads: usize) -> Result<SqliteStore, String> {
    let busy: u64 = std::env::var("STORES_SQLITE_BUSY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    SqliteStore::open(
        var("STORES_SQLITE_PATH")?,
        SqliteConfig::default()
            .busy_timeout(Duration::from_millis(busy))
            .pool(PoolConfig::with_max_size(threads.clamp(1, 64))),
    )
    .map_err(|e| e.to_string())
}

/// Sync race on any `FamilyStore`.
fn race_sync<S: FamilyStore + 'static>(
    store: Arc<S>,
    engine: Arc<RefreshFamilies>,
    token: Arc<String>,
    now: UnixTime,
    start_ms: u128,
    threads: usize,
) -> Result<(), String> {
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (store, engine, token) =
                (Arc::clone(&store), Arc::clone(&engine), Arc::clone(&token));
            std::thread::spawn(move || {
                // Warm a connection up, then wait for the common start instant.
                if let Ok(p) = RefreshToken::parse(&token) {
                    let _ = store.load_family(p.claimed_family());
                }
                wait_until(start_ms);
                line(rotate(&*store, &engine, &token, now, &mut rng()))
            })
        })
        .collect();
    for h in handles {
        let l = h.join().map_err(|_| "a worker thread panicked")?;
        println!("{l}");
    }
    Ok(())
}

fn race_async(
    engine: Arc<RefreshFamilies>,
    token: Arc<String>,
    now: UnixTime,
    start_ms: u128,
    threads: usize,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.clamp(1, 64))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let pg = AsyncPgStore::connect(
            &var("STORES_PG_URL")?,
            &var("STORES_RACE_SCHEMA")?,
            PoolConfig::with_max_size(threads.clamp(1, 64)),
        )
        .map_err(|e| e.to_string())?;
        let store = Arc::new(pg.family_store());
        let tasks: Vec<_> = (0..threads)
            .map(|_| {
                let (store, engine, token) =
                    (Arc::clone(&store), Arc::clone(&engine), Arc::clone(&token));
                tokio::spawn(async move {
                    if let Ok(p) = RefreshToken::parse(&token) {
                        let _ = handoff_refresh::AsyncFamilyStore::load_family(
                            &*store,
                            p.claimed_family(),
                        )
                        .await;
                    }
                    let now_ms = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_millis())
                        .unwrap_or(0);
                    if start_ms > now_ms {
                        tokio::time::sleep(Duration::from_millis(
                            u64::try_from(start_ms - now_ms).unwrap_or(0),
                        ))
                        .await;
                    }
                    let mut r = rng();
                    line(rotate_async(&*store, &engine, &token, now, &mut r).await)
                })
            })
            .collect();
        for t in tasks {
            let l = t.await.map_err(|_| "a worker task panicked")?;
            println!("{l}");
        }
        Ok::<(), String>(())
    })
}

/// Rotates `threads` families forever, printing every acknowledged rotation.
fn chain(engine: Arc<RefreshFamilies>, threads: usize) -> Result<(), String> {
    let db = sqlite(threads)?;
    let store = Arc::new(db.family_store());
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (store, engine) = (Arc::clone(&store), Arc::clone(&engine));
            std::thread::spawn(move || -> Result<(), String> {
                let mut now = UnixTime::from_secs(1_700_000_000);
                // A file busy past the timeout wrote nothing: try again (bounded).
                let mut tries = 0;
                let login = loop {
                    match start(
                        &*store,
                        &engine,
                        &format!("chain-{i}"),
                        "c",
                        now,
                        &mut rng(),
                    ) {
                        Ok(l) => break l,
                        Err(_) if tries < 100 => tries += 1,
                        Err(e) => return Err(e.to_string()),
                    }
                };
                let fam = to_hex(login.family.as_bytes());
                let mut token = login.token.expose_secret().to_owned();
                let mut generation = 0u64;
                println!("ack {fam} 0 {}", to_hex(login.token.id().as_bytes()));
                loop {
                    now = now.saturating_add(1);
                    match rotate(&*store, &engine, &token, now, &mut rng()) {
                        Ok(Outcome::Issued(next)) => {
                            generation += 1;
                            token = next.token.expose_secret().to_owned();
                            let out = format!(
                                "ack {fam} {generation} {}\n",
                                to_hex(next.token.id().as_bytes())
                            );
                            let mut so = std::io::stdout().lock();
                            let _ = so.write_all(out.as_bytes());
                            let _ = so.flush();
                        }
                        Ok(_) => return Err("a chain rotation was refused".into()),
                        Err(_) => {} // busy past the timeout: nothing written, try again
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "a chain thread panicked")??;
    }
    Ok(())
}

/// Writes replay entries for `STORES_PROBE_MS`, reporting the longest wait.
fn probe() -> Result<(), String> {
    let ms: u64 = var("STORES_PROBE_MS")?.parse().map_err(|_| "bad ms")?;
    let db = sqlite(1)?;
    let log = db.replay_log();
    let end = Instant::now() + Duration::from_millis(ms);
    let (mut ops, mut errors, mut max) = (0u64, 0u64, Duration::ZERO);
    let now = UnixTime::from_secs(1_700_000_000);
    while Instant::now() < end {
        let key = ReplayKey::derive(
            "probe",
            &[&ops.to_be_bytes(), &std::process::id().to_be_bytes()],
        );
        let t = Instant::now();
        if log
            .check_and_insert(&key, now.saturating_add(60), now)
            .is_err()
        {
            errors += 1;
        }
        max = max.max(t.elapsed());
        ops += 1;
    }
    println!("probe {ops} {errors} {}", max.as_millis());
    Ok(())
}

fn run() -> Result<(), String> {
    let mode = std::env::var("STORES_RACE_MODE").unwrap_or_else(|_| "race".into());
    if mode == "probe" {
        return probe();
    }
    let master = HmacSecret::new(hex(&var("STORES_RACE_MASTER")?)?).map_err(|e| e.to_string())?;
    let engine = Arc::new(RefreshFamilies::new(&master, policy()?));
    let threads: usize = var("STORES_RACE_THREADS")?
        .parse()
        .map_err(|_| "bad threads")?;
    if mode == "chain" {
        return chain(engine, threads);
    }
    let token = Arc::new(var("STORES_RACE_TOKEN")?);
    let now = UnixTime::from_secs(var("STORES_RACE_NOW")?.parse().map_err(|_| "bad now")?);
    let start_ms: u128 = var("STORES_RACE_START_MS")?
        .parse()
        .map_err(|_| "bad start")?;
    match std::env::var("STORES_RACE_ENGINE")
        .as_deref()
        .unwrap_or("pg")
    {
        "pg" => {
            let pg = PgStore::connect(
                &var("STORES_PG_URL")?,
                &var("STORES_RACE_SCHEMA")?,
                PoolConfig::with_max_size(threads.clamp(1, 64)),
            )
            .map_err(|e| e.to_string())?;
            race_sync(
                Arc::new(pg.family_store()),
                engine,
                token,
                now,
                start_ms,
                threads,
            )
        }
        "pg-async" => race_async(engine, token, now, start_ms, threads),
        "sqlite" => {
            let db = sqlite(threads)?;
            race_sync(
                Arc::new(db.family_store()),
                engine,
                token,
                now,
                start_ms,
                threads,
            )
        }
        other => Err(format!("unknown engine {other}")),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stores-race-worker: {e}");
            ExitCode::FAILURE
        }
    }
}
