//! Test helper for the cross-process refresh race (`tests/pg_family.rs`): one process of
//! the fleet. Reads its orders from the environment, runs `STORES_RACE_THREADS` threads
//! that each present the same refresh token once at the same wall-clock instant, and
//! prints one line per thread: `issued <rotation|grace> <token id> <token>`, `refused <reason>` or
//! `error <message>`. Not part of the library's API.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use handoff_core::{HmacSecret, UnixTime};
use handoff_refresh::{FamilyStore, Outcome, Policy, RefreshFamilies, rotate};
use handoff_stores::PoolConfig;
use handoff_stores::pg::PgStore;

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

fn run() -> Result<(), String> {
    let url = var("STORES_PG_URL")?;
    let schema = var("STORES_RACE_SCHEMA")?;
    let master = HmacSecret::new(hex(&var("STORES_RACE_MASTER")?)?).map_err(|e| e.to_string())?;
    let token = Arc::new(var("STORES_RACE_TOKEN")?);
    let now = UnixTime::from_secs(var("STORES_RACE_NOW")?.parse().map_err(|_| "bad now")?);
    let start_ms: u128 = var("STORES_RACE_START_MS")?
        .parse()
        .map_err(|_| "bad start")?;
    let threads: usize = var("STORES_RACE_THREADS")?
        .parse()
        .map_err(|_| "bad threads")?;
    let pg = PgStore::connect(
        &url,
        &schema,
        PoolConfig::with_max_size(threads.clamp(1, 64)),
    )
    .map_err(|e| e.to_string())?;
    let store = Arc::new(pg.family_store());
    let engine = Arc::new(RefreshFamilies::new(&master, policy()?));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (store, engine, token) =
                (Arc::clone(&store), Arc::clone(&engine), Arc::clone(&token));
            std::thread::spawn(move || {
                // Warm a connection up, then wait for the common start instant.
                let parsed = handoff_refresh::RefreshToken::parse(&token);
                if let Ok(p) = &parsed {
                    let _ = store.load_family(p.claimed_family());
                }
                let now_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or(0);
                if start_ms > now_ms {
                    let wait = u64::try_from(start_ms - now_ms).unwrap_or(0);
                    std::thread::sleep(Duration::from_millis(wait));
                }
                let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
                match rotate(&*store, &engine, &token, now, &mut rng) {
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
            })
        })
        .collect();
    for h in handles {
        let line = h.join().map_err(|_| "a worker thread panicked")?;
        println!("{line}");
    }
    Ok(())
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
