//! Two gateway instances sharing Redis and PostgreSQL catch a DPoP proof replayed across
//! instances and a refresh token reused across instances.
//!
//! Needs the servers: `source .ci/services.sh` (exports `STORES_REDIS_URL` and
//! `STORES_PG_URL`), then `cargo run --example fleet --features fleet`. Without them it
//! prints a SKIPPED line saying what to run and exits 0 (with `CI` set, it fails instead).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use handoff_core::{Algorithm, HmacSecret, UnixTime};
use handoff_dpop::{DpopKey, DpopRequest, DpopVerifier};
use handoff_refresh::{Outcome, Policy, RefreshError, RefreshFamilies, rotate, start};
use handoff_stores::PoolConfig;
use handoff_stores::pg::{PgFamilyStore, PgStore};
use handoff_stores::redis::RedisReplayLog;

type Failure = Box<dyn std::error::Error>;

/// One gateway process: its own connection pools to the shared servers, the same
/// configuration (verifier, refresh master key) as every other instance.
struct Gateway {
    name: &'static str,
    replay: RedisReplayLog,
    families: PgFamilyStore,
    verifier: DpopVerifier,
    refresh: RefreshFamilies,
}

impl Gateway {
    fn new(
        name: &'static str,
        redis_url: &str,
        pg_url: &str,
        master: &HmacSecret,
    ) -> Result<Self, Failure> {
        let replay = RedisReplayLog::builder(redis_url, "fleet-example:dpop:").build()?;
        let pg = PgStore::connect(pg_url, "fleet_example", PoolConfig::default())?;
        pg.migrate()?;
        let policy = Policy::builder().grace_window(10).build()?;
        Ok(Self {
            name,
            replay,
            families: pg.family_store(),
            verifier: DpopVerifier::default(),
            refresh: RefreshFamilies::new(master, policy),
        })
    }

    /// A resource request carrying a DPoP proof: verify, then record the jti last.
    fn resource(&self, proof: &str, jkt: &str, token: &str, now: UnixTime) -> Result<(), Failure> {
        let headers = [proof];
        let request = DpopRequest::new(&headers, "GET", "https://api.example.com/items")
            .with_access_token(token)
            .bound_to(jkt);
        let unconfirmed = self.verifier.verify(&request, now)?;
        self.verifier.confirm(unconfirmed, &self.replay, now)?;
        Ok(())
    }
}

fn wall_clock() -> UnixTime {
    UnixTime::from_secs(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

fn run(redis_url: &str, pg_url: &str) -> Result<(), Failure> {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    // Shared configuration: every instance holds the same refresh master key.
    let master = HmacSecret::generate(&mut rng);
    let a = Gateway::new("gateway-a", redis_url, pg_url, &master)?;
    let b = Gateway::new("gateway-b", redis_url, pg_url, &master)?;
    a.replay.check_server()?;
    println!("two gateway instances share redis ({redis_url}) and postgresql");

    // 1. DPoP proof replayed across instances.
    let now = wall_clock();
    let key = DpopKey::generate(Algorithm::ES256, &mut rng)?;
    let access_token = "fleet-access-token";
    let proof = key.proof(
        "GET",
        "https://api.example.com/items",
        now,
        &mut rng,
        None,
        Some(access_token),
    )?;
    let jkt = key.jkt();
    a.resource(&proof, &jkt, access_token, now)?;
    println!("[{}] accepted a DPoP proof and recorded its jti", a.name);
    match b.resource(&proof, &jkt, access_token, now) {
        Err(e) if is_replay(&*e) => {
            println!("[{}] refused the same proof: replayed ({e})", b.name);
        }
        other => return Err(format!("gateway-b must refuse the replay, got {other:?}").into()),
    }

    // 2. Refresh token reused across instances.
    let t0 = now;
    let login = start(&a.families, &a.refresh, "alice", "web-app", t0, &mut rng)?;
    println!("[{}] login: family {}", a.name, login.family.to_base64url());
    let t1 = t0.saturating_add(60);
    let Outcome::Issued(second) = rotate(
        &b.families,
        &b.refresh,
        login.token.expose_secret(),
        t1,
        &mut rng,
    )?
    else {
        return Err("the head must rotate".into());
    };
    println!("[{}] rotated the refresh token", b.name);
    let t2 = t1.saturating_add(30); // after the 10 s grace window
    match rotate(
        &a.families,
        &a.refresh,
        login.token.expose_secret(),
        t2,
        &mut rng,
    )? {
        Outcome::Refused(r) if r.error == RefreshError::ReuseDetected => println!(
            "[{}] the old token came back after grace: reuse detected, family revoked; revoke the access tokens of {:?}",
            a.name,
            r.revoke_access_tokens
                .iter()
                .map(|f| f.to_base64url())
                .collect::<Vec<_>>()
        ),
        other => return Err(format!("gateway-a must detect reuse, got {other:?}").into()),
    }
    match rotate(
        &b.families,
        &b.refresh,
        second.token.expose_secret(),
        t2,
        &mut rng,
    )? {
        Outcome::Refused(r) if r.error.reason() == "family_revoked" => println!(
            "[{}] the legitimate successor is refused too: {}",
            b.name, r.error
        ),
        other => return Err(format!("gateway-b must see the revocation, got {other:?}").into()),
    }
    println!("fleet: both attacks caught across instances");
    Ok(())
}

fn is_replay(e: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        e.downcast_ref::<handoff_dpop::Error>(),
        Some(handoff_dpop::Error::Replayed)
    )
}

/// The servers' URLs, or a loud skip (a failure when `CI` is set).
fn servers() -> Option<(String, String)> {
    const GROUP: &str = "examples: fleet (Redis and PostgreSQL shared by two gateways)";
    let redis = handoff_test_support::need_env(GROUP, "STORES_REDIS_URL", "Redis");
    let pg = handoff_test_support::need_env(GROUP, "STORES_PG_URL", "PostgreSQL");
    Some((redis?, pg?))
}

fn main() -> ExitCode {
    // Without the servers: one SKIPPED line on stderr and exit 0; with `CI` set, a failure.
    let Some((redis_url, pg_url)) = servers() else {
        return ExitCode::SUCCESS;
    };
    match run(&redis_url, &pg_url) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleet failed: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn both_attacks_are_caught_across_instances() {
        let Some((redis_url, pg_url)) = servers() else {
            return;
        };
        if let Err(e) = run(&redis_url, &pg_url) {
            panic!("fleet failed: {e}");
        }
    }
}
