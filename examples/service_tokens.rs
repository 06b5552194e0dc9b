//! Internal service tokens (`cargo run --example service_tokens`).
//!
//! A gateway signs a short-lived internal token (`typ: service+jwt`, EdDSA) carrying the
//! scopes it grants; the backend verifies it holding only the gateway's public key (so a
//! compromised backend cannot mint), and accepts only the scopes of its endpoint. A token
//! with another scope, a forged or expired token, a token of another kind and an HS256
//! profile are refused; a one-time endpoint refuses the same token twice.
//!
//! Time is a simulated clock read once from the system and advanced by hand.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::io::Write;
use std::process::ExitCode;

use examples::{During, ExampleError, Narrator, SimClock, expect, expect_refused, system_rng};
use handoff_core::keys::parse_jwk;
use handoff_core::replay::{InMemoryReplayLog, ReplayRefused};
use handoff_core::{Algorithm, Error as CoreError, SigningKey, VerifyingKey};
use handoff_verify::{
    AccessClaims, ServiceClaims, ServiceTokenVerifier, TokenKind, Verifier, VerifyError,
    mint_access_token, mint_service_token,
};

const GATEWAY: &str = "https://gateway.internal";
const ORDERS: &str = "https://orders.internal";

fn main() -> ExitCode {
    let result = SimClock::from_system().and_then(|clock| run(std::io::stdout().lock(), clock));
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("service_tokens FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn profile(replay: bool) -> Result<Verifier, ExampleError> {
    Verifier::builder(TokenKind::Service)
        .issuer(GATEWAY)
        .audience(ORDERS)
        .algorithm(Algorithm::EdDSA)
        .enforce_replay(replay)
        .build()
        .during("configure the service-token profile")
}

#[allow(clippy::too_many_lines)] // one story, told in order
fn run<W: Write>(out: W, mut clock: SimClock) -> Result<W, ExampleError> {
    let mut rng = system_rng();
    let mut out = Narrator::new(
        out,
        "service_tokens: gateway-signed internal tokens with scopes",
    );
    out.info("(simulated clock: read once from the system, then advanced by hand)");

    let mut step = "generate an Ed25519 key and hand the backend its public JWK";
    out.step("gateway", step);
    let gateway_key = SigningKey::generate(Algorithm::EdDSA, &mut rng)
        .and_then(|k| k.with_kid("gw-2026-01"))
        .during(step)?;
    let public_jwk = gateway_key.verifying_key().to_public_jwk().during(step)?;
    let public_json = serde_json::to_string(&public_jwk).map_err(std::io::Error::other)?;
    expect(
        !public_json.contains("\"d\""),
        step,
        "no private member in the public JWK",
    )?;
    out.info(format!("public JWK: {public_json}"));
    out.ok("the backend's configuration holds this public key only");

    // The backend: the public key read from its configuration, the scopes of its endpoint.
    let backend_key = parse_jwk(public_json.as_bytes())
        .and_then(|jwk| VerifyingKey::from_jwk(&jwk))
        .during("configure the backend")?;
    let orders_read =
        ServiceTokenVerifier::new(profile(false)?, backend_key.clone(), ["orders:read"])
            .during("configure the backend")?;

    step = "sign a token for the checkout service with scope orders:read";
    out.step("gateway", format!("{step} ({})", clock.label()));
    let token = mint_service_token(
        &ServiceClaims::new(GATEWAY, "checkout", ORDERS, ["orders:read"]).with_ttl(60),
        &gateway_key,
        clock.now(),
        &mut rng,
    )
    .during(step)?;
    out.ok(format!(
        "service+jwt, jti {}, expires at {} (60 s)",
        token.jti(),
        token.expires_at()
    ));

    clock.advance(2);
    step = "verify with the public key; GET /orders needs orders:read";
    out.step("backend", format!("{step} ({})", clock.label()));
    let verified = orders_read
        .verify(token.as_str(), clock.now())
        .during(step)?;
    expect(verified.subject() == "checkout", step, "sub checkout")?;
    expect(verified.has_scope("orders:read"), step, "scope orders:read")?;
    let scopes: Vec<&str> = verified.scopes().collect();
    out.ok(format!(
        "sub {}, scopes {scopes:?}: 200 OK",
        verified.subject()
    ));

    step = "a token with another scope";
    out.step("backend", step);
    let refund = mint_service_token(
        &ServiceClaims::new(GATEWAY, "checkout", ORDERS, ["payments:refund"]),
        &gateway_key,
        clock.now(),
        &mut rng,
    )
    .during(step)?;
    let e = expect_refused(orders_read.verify(refund.as_str(), clock.now()), step)?;
    expect(e == VerifyError::ScopeNotAllowed, step, "scope not allowed")?;
    out.refused(
        "scope payments:refund at an endpoint that accepts orders:read (403)",
        &e,
    );

    step = "forgeries and misuse";
    out.step("attacker", step);
    let rogue = SigningKey::generate(Algorithm::EdDSA, &mut rng)
        .and_then(|k| k.with_kid("gw-2026-01"))
        .during(step)?;
    let forged = mint_service_token(
        &ServiceClaims::new(GATEWAY, "checkout", ORDERS, ["orders:read"]),
        &rogue,
        clock.now(),
        &mut rng,
    )
    .during(step)?;
    let e = expect_refused(orders_read.verify(forged.as_str(), clock.now()), step)?;
    expect(
        e == VerifyError::Token(CoreError::InvalidSignature),
        step,
        "an invalid signature",
    )?;
    out.refused("signed by another key under the gateway's kid", &e);
    let access = mint_access_token(
        &AccessClaims::new(GATEWAY, "checkout", ORDERS, "checkout").with_scope("orders:read"),
        &gateway_key,
        clock.now(),
        &mut rng,
    )
    .during(step)?;
    let e = expect_refused(orders_read.verify(access.as_str(), clock.now()), step)?;
    expect(
        matches!(e, VerifyError::Token(CoreError::WrongType { .. })),
        step,
        "a wrong typ",
    )?;
    out.refused(
        "an access token (at+jwt) by the same key, with the same scope",
        &e,
    );
    let e = expect_refused(
        Verifier::builder(TokenKind::Service)
            .issuer(GATEWAY)
            .audience(ORDERS)
            .algorithm(Algorithm::HS256)
            .build(),
        step,
    )?;
    expect(matches!(e, VerifyError::Policy(_)), step, "a policy error")?;
    out.refused(
        "a service profile allowing HS256 (every backend could mint)",
        &e,
    );

    step = "a one-time endpoint (POST /orders/export) refuses the same token twice";
    out.step("backend", step);
    let once =
        ServiceTokenVerifier::new(profile(true)?, backend_key, ["orders:read"]).during(step)?;
    let log = InMemoryReplayLog::new(10_000);
    let first = once.verify_once(token.as_str(), clock.now()).during(step)?;
    let until = first.until();
    let _accepted = first.confirm(&log, clock.now()).during(step)?;
    out.info(format!("jti recorded until {until} (exp + leeway)"));
    let second = once.verify_once(token.as_str(), clock.now()).during(step)?;
    let e = expect_refused(second.confirm(&log, clock.now()), step)?;
    expect(e == ReplayRefused::Replayed, step, "a replay")?;
    out.refused("the same token again", &e);

    clock.advance(120);
    step = "the first token after its 60 s lifetime";
    out.step("backend", format!("{step} ({})", clock.label()));
    let e = expect_refused(orders_read.verify(token.as_str(), clock.now()), step)?;
    expect(
        matches!(e, VerifyError::Token(CoreError::Expired { .. })),
        step,
        "expired",
    )?;
    out.refused("expired (60 s lifetime + 60 s leeway passed)", &e);

    out.finish("every outcome as expected")
}

#[cfg(test)]
mod tests {
    use super::*;
    use handoff_core::UnixTime;

    #[test]
    fn the_service_token_story_runs() {
        let clock = SimClock::starting_at(UnixTime::from_secs(1_800_000_000));
        let out = String::from_utf8(run(Vec::new(), clock).unwrap()).unwrap();
        assert!(out.contains("scopes [\"orders:read\"]: 200 OK"), "{out}");
        assert!(
            out.contains("refused, as expected: scope payments:refund"),
            "{out}"
        );
        assert!(out.contains("== done: 7 steps"), "{out}");
    }
}
