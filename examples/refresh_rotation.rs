//! Refresh-token families (`cargo run --example refresh_rotation`).
//!
//! Login starts a family; every refresh rotates its head; two tabs refreshing with the
//! same token at the same instant (two real threads racing on the store's
//! compare-and-set) both get the very same successor inside the 10 s grace window; the
//! old token presented after grace is reuse and revokes the whole family, even its
//! legitimate head; a second login ends with logout.
//!
//! The store is `handoff_refresh::InMemoryFamilyStore` (the PostgreSQL shape is in the
//! crate README); time is a simulated clock read once from the system and advanced by
//! hand.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::io::Write;
use std::process::ExitCode;

use examples::{During, ExampleError, Narrator, SimClock, expect, system_rng};
use handoff_core::HmacSecret;
use handoff_refresh::{
    FamilyId, FamilyStatus, InMemoryFamilyStore, Issued, Outcome, Policy, RefreshError,
    RefreshFamilies, Refused, RevocationReason, logout, rotate, start,
};

const CLIENT_ID: &str = "web-app";

fn main() -> ExitCode {
    let result = SimClock::from_system().and_then(|clock| run(std::io::stdout().lock(), clock));
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("refresh_rotation FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A token by its id (public), never by its text (a bearer secret).
fn short(token: &handoff_refresh::RefreshToken) -> String {
    format!("token {}", token.id().to_base64url())
}

fn issued(outcome: Outcome, step: &str) -> Result<Issued, ExampleError> {
    match outcome {
        Outcome::Issued(i) => Ok(i),
        other => Err(ExampleError::Unexpected {
            step: step.into(),
            expected: "a token issued".into(),
            got: format!("{other:?}"),
        }),
    }
}

fn refused(outcome: Outcome, step: &str) -> Result<Refused, ExampleError> {
    match outcome {
        Outcome::Refused(r) => Ok(r),
        other => Err(ExampleError::Unexpected {
            step: step.into(),
            expected: "a refusal".into(),
            got: format!("{other:?}"),
        }),
    }
}

fn family_status(
    store: &InMemoryFamilyStore,
    family: FamilyId,
    step: &str,
) -> Result<FamilyStatus, ExampleError> {
    store
        .snapshot(family)
        .map(|(f, _)| f.status)
        .ok_or_else(|| ExampleError::Unexpected {
            step: step.into(),
            expected: "the family in the store".into(),
            got: "no such family".into(),
        })
}

#[allow(clippy::too_many_lines)] // one story, told in order
fn run<W: Write>(out: W, mut clock: SimClock) -> Result<W, ExampleError> {
    let mut rng = system_rng();
    let mut out = Narrator::new(
        out,
        "refresh_rotation: rotation, grace, reuse detection, logout",
    );
    out.info("(simulated clock: read once from the system, then advanced by hand)");

    // One master key for every server instance; grace on: 10 s, same successor.
    let policy = Policy::builder()
        .idle_lifetime(7 * 86_400)
        .absolute_lifetime(30 * 86_400)
        .grace_window(10)
        .build()
        .during("configure the policy")?;
    let engine = RefreshFamilies::new(&HmacSecret::generate(&mut rng), policy);
    let store = InMemoryFamilyStore::new(10_000);
    out.info("policy: idle 7 days, absolute 30 days (never extended), grace 10 s with the same successor");

    let mut step = "login starts a family";
    out.step("service", format!("{step} ({})", clock.label()));
    let login = start(&store, &engine, "user-42", CLIENT_ID, clock.now(), &mut rng).during(step)?;
    let family = login.family;
    let t1 = login.token;
    out.info(format!("events: {:?}", login.events));
    out.ok(format!(
        "family {} for user-42/{CLIENT_ID}, first token {} (the store keeps only its SHA-256)",
        family.to_base64url(),
        short(&t1)
    ));

    clock.advance(3_600);
    step = "refresh an hour later";
    out.step("client", format!("{step} ({})", clock.label()));
    let second = issued(
        rotate(&store, &engine, t1.expose_secret(), clock.now(), &mut rng).during(step)?,
        step,
    )?;
    expect(
        !second.grace && second.token != t1,
        step,
        "a real rotation to a new token",
    )?;
    let t2 = second.token;
    out.info(format!("events: {:?}", second.events));
    out.ok(format!("head rotated: {} -> {}", short(&t1), short(&t2)));

    clock.advance(3_600);
    step = "two tabs refresh with the same token at the same instant";
    out.step("client", format!("{step} ({})", clock.label()));
    let now = clock.now();
    let (a, b) = std::thread::scope(|s| {
        let tab = || {
            let (store, engine, token) = (&store, &engine, t2.expose_secret());
            move || rotate(store, engine, token, now, &mut system_rng())
        };
        let a = s.spawn(tab());
        let b = s.spawn(tab());
        (a.join(), b.join())
    });
    let (a, b) = match (a, b) {
        (Ok(a), Ok(b)) => (a.during(step)?, b.during(step)?),
        _ => {
            return Err(ExampleError::Unexpected {
                step: step.into(),
                expected: "both tabs answered".into(),
                got: "a thread panicked".into(),
            });
        }
    };
    let (a, b) = (issued(a, step)?, issued(b, step)?);
    expect(
        a.token == b.token,
        step,
        "the very same successor for both tabs",
    )?;
    expect(
        a.grace != b.grace,
        step,
        "one rotation and one in-grace replay",
    )?;
    let (winner, loser) = if a.grace { (b, a) } else { (a, b) };
    let t3 = winner.token;
    out.info(format!(
        "tab that won the compare-and-set: {:?}",
        winner.events
    ));
    out.info(format!(
        "tab that lost it, decided again on fresh rows: {:?}",
        loser.events
    ));
    out.ok(format!(
        "both tabs hold {}; no false reuse, the family lives on",
        short(&t3)
    ));

    clock.advance(60);
    step = "the token of two refreshes ago is presented after grace";
    out.step("attacker", format!("{step} ({})", clock.label()));
    let reuse = refused(
        rotate(&store, &engine, t2.expose_secret(), clock.now(), &mut rng).during(step)?,
        step,
    )?;
    expect(
        reuse.error == RefreshError::ReuseDetected,
        step,
        "reuse detected",
    )?;
    expect(
        reuse.revoke_access_tokens == [family],
        step,
        "the family's access tokens to revoke",
    )?;
    expect(
        matches!(
            family_status(&store, family, step)?,
            FamilyStatus::Revoked {
                reason: RevocationReason::ReuseDetected,
                ..
            }
        ),
        step,
        "the family revoked in the store",
    )?;
    out.refused(
        format!("400 {} (reuse)", reuse.error.oauth_error()),
        &reuse.error,
    );
    out.info(format!("events: {:?}", reuse.events));
    out.info(format!(
        "the service must now revoke the access tokens of family {}",
        family.to_base64url()
    ));

    step = "the legitimate head is refused too";
    out.step("client", step);
    let dead = refused(
        rotate(&store, &engine, t3.expose_secret(), clock.now(), &mut rng).during(step)?,
        step,
    )?;
    expect(
        dead.error.reason() == "family_revoked",
        step,
        "family_revoked",
    )?;
    expect(
        dead.revoke_access_tokens.is_empty(),
        step,
        "no new revocation",
    )?;
    out.refused(
        "every token of a revoked family; the user must log in again",
        &dead.error,
    );

    clock.advance(300);
    step = "log in again, refresh once, log out";
    out.step("client", format!("{step} ({})", clock.label()));
    let again = start(&store, &engine, "user-42", CLIENT_ID, clock.now(), &mut rng).during(step)?;
    expect(again.family != family, step, "a new family")?;
    clock.advance(600);
    let next = issued(
        rotate(
            &store,
            &engine,
            again.token.expose_secret(),
            clock.now(),
            &mut rng,
        )
        .during(step)?,
        step,
    )?;
    let revoked = logout(&store, &engine, next.token.expose_secret(), clock.now()).during(step)?;
    expect(
        revoked.families == [again.family],
        step,
        "the new family revoked",
    )?;
    expect(
        matches!(
            family_status(&store, again.family, step)?,
            FamilyStatus::Revoked {
                reason: RevocationReason::Logout,
                ..
            }
        ),
        step,
        "revoked for logout",
    )?;
    out.info(format!("events: {:?}", revoked.events));
    out.ok(format!(
        "family {} revoked at logout ({})",
        again.family.to_base64url(),
        clock.label()
    ));

    step = "the logged-out token is refused";
    out.step("client", step);
    let after = refused(
        rotate(
            &store,
            &engine,
            next.token.expose_secret(),
            clock.now(),
            &mut rng,
        )
        .during(step)?,
        step,
    )?;
    expect(
        after.error.reason() == "family_revoked",
        step,
        "family_revoked",
    )?;
    out.refused("refresh after logout", &after.error);
    let bogus = refused(
        rotate(&store, &engine, "rf1.not-a-token", clock.now(), &mut rng).during(step)?,
        step,
    )?;
    expect(
        matches!(bogus.error, RefreshError::Malformed(_)),
        step,
        "a malformed token",
    )?;
    out.refused("a malformed token (no store access)", &bogus.error);

    out.finish("every outcome as expected")
}

#[cfg(test)]
mod tests {
    use super::*;
    use handoff_core::UnixTime;

    #[test]
    fn the_family_story_runs() {
        let clock = SimClock::starting_at(UnixTime::from_secs(1_800_000_000));
        let out = String::from_utf8(run(Vec::new(), clock).unwrap()).unwrap();
        assert!(out.contains("no false reuse, the family lives on"), "{out}");
        assert!(
            out.contains("refused, as expected: 400 invalid_grant (reuse)"),
            "{out}"
        );
        assert!(out.contains("== done: 7 steps"), "{out}");
    }

    #[test]
    fn the_race_is_benign_every_time() {
        // The interleaving differs from run to run; the outcome must not.
        for i in 0..20 {
            let clock = SimClock::starting_at(UnixTime::from_secs(1_800_000_000 + i));
            assert!(run(Vec::new(), clock).is_ok());
        }
    }
}
