//! The dev token-issuer simulator (`cargo run --example token_issuer`).
//!
//! It starts the very server behind `host-issuer serve --dev-token-endpoint`
//! (`handoff_issuer::server`, no code repeated here): RS256 keys made at start,
//! `POST /token`, `GET /.well-known/jwks.json`, `GET /certs` and `GET /healthz`, bound to
//! loopback only. By default it then checks itself over loopback with a bounded HTTP
//! client (mint a token, fetch the JWKS from both paths, verify the token with
//! `identity-core` against the fetched set, and a few refusals) and exits 0.
//!
//! Options (after `--`): `--port N` (default 0: any free port), `--serve` (after the
//! self-check, keep serving until Ctrl-C), `--help`.
//!
//! DEVELOPMENT ONLY: `POST /token` mints tokens for any subject without authentication.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use examples::http;
use examples::{During, ExampleError, Narrator, expect, expect_refused, system_rng};
use handoff_core::{Algorithm, Error as CoreError, Jwks, JwksLimits, Validation, verify};
use handoff_issuer::server::{
    self, CERTS_PATH, DevTokenConfig, HEALTH_PATH, JWKS_PATH, ServerConfig, ServerHandle,
    TOKEN_PATH,
};
use serde_json::{Value, json};

const USAGE: &str = "\
usage: cargo run --example token_issuer [-- [--port N] [--serve]]

  --port N   listen on 127.0.0.1:N (default 0: any free port)
  --serve    after the self-check, keep serving until Ctrl-C
  --help     this text";

const AUDIENCE: &str = "https://service.example";

fn main() -> ExitCode {
    let args = match examples::ServeArgs::parse(std::env::args().skip(1)) {
        Ok(a) if a.help => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(a) => a,
        Err(e) => {
            eprintln!("token_issuer: {e}");
            return ExitCode::from(2);
        }
    };
    let started = start(args.port)
        .and_then(|server| self_check(std::io::stdout().lock(), &server).map(|_| server));
    match started {
        Ok(server) if args.serve => {
            let base = server.base_url();
            println!("\nserving until Ctrl-C:");
            println!("  curl -s {base}{JWKS_PATH}");
            println!(
                "  curl -s -X POST {base}{TOKEN_PATH} -H 'Content-Type: application/json' -d '{{\"sub\":\"user-42\"}}'"
            );
            server.join();
            ExitCode::SUCCESS
        }
        Ok(server) => {
            server.shutdown();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("token_issuer FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Starts the shared server with fresh RS256 keys on loopback.
fn start(port: u16) -> Result<ServerHandle, ExampleError> {
    let step = "start the dev token endpoint";
    let bind = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let config = ServerConfig::with_generated_keys(Algorithm::RS256, bind, &mut system_rng())
        .during(step)?
        .dev_token_endpoint(DevTokenConfig {
            default_aud: AUDIENCE.into(),
            ..DevTokenConfig::default()
        });
    server::spawn(config).during(step)
}

fn json_body(response: &http::Response, step: &str) -> Result<Value, ExampleError> {
    serde_json::from_slice(&response.body).map_err(|e| ExampleError::Unexpected {
        step: step.into(),
        expected: "a JSON body".into(),
        got: e.to_string(),
    })
}

fn expect_status(response: &http::Response, status: u16, step: &str) -> Result<(), ExampleError> {
    if response.status == status {
        return Ok(());
    }
    Err(ExampleError::Unexpected {
        step: step.into(),
        expected: format!("HTTP {status}"),
        got: format!(
            "HTTP {} {}",
            response.status,
            String::from_utf8_lossy(&response.body)
                .chars()
                .take(200)
                .collect::<String>()
        ),
    })
}

/// Checks the running server over loopback, as a client would.
fn self_check<W: Write>(out: W, server: &ServerHandle) -> Result<W, ExampleError> {
    let addr = server.addr();
    let base = server.base_url();
    let mut out = Narrator::new(
        out,
        "token_issuer: the dev token-issuer simulator, checked over loopback",
    );
    out.info("(DEVELOPMENT ONLY: POST /token authenticates nobody; see the banner on stderr)");

    let mut step = "the server is up with fresh RS256 keys";
    out.step("server", format!("{step} at {base}"));
    let health = http::get(addr, HEALTH_PATH)?;
    expect_status(&health, 200, step)?;
    let health = json_body(&health, step)?;
    expect(health["alg"] == "RS256", step, "an RS256 key")?;
    let kid = health["active_kid"].as_str().unwrap_or_default().to_owned();
    out.ok(format!("GET {HEALTH_PATH}: {health}"));

    step = "mint a host token with POST /token (JSON body)";
    out.step("client", step);
    let request = json!({ "sub": "user-42", "tenant": "tenant-7", "ttl": 120 }).to_string();
    let minted = http::post(addr, TOKEN_PATH, "application/json", request.as_bytes())?;
    expect_status(&minted, 200, step)?;
    expect(
        minted.header("cache-control") == Some("no-store"),
        step,
        "Cache-Control: no-store",
    )?;
    let minted = json_body(&minted, step)?;
    let token = minted["token"].as_str().unwrap_or_default().to_owned();
    expect(
        minted["token_type"] == "host+jwt",
        step,
        "token_type host+jwt",
    )?;
    expect(
        minted["kid"] == kid.as_str(),
        step,
        "signed by the active key",
    )?;
    expect(
        minted["iss"] == base.as_str(),
        step,
        "iss = the server's base URL",
    )?;
    out.info(format!("request: {request}"));
    out.ok(format!(
        "token_type {}, kid {}, iss {}, aud {}, expires_in {}",
        minted["token_type"], minted["kid"], minted["iss"], minted["aud"], minted["expires_in"]
    ));

    step = "mint with the sub in the query string; a form-encoded body is refused";
    out.step("client", step);
    let form = http::post(
        addr,
        TOKEN_PATH,
        "application/x-www-form-urlencoded",
        b"sub=user%2043",
    )?;
    // A form post needs no CORS preflight, so any web page could send one: refused.
    expect_status(&form, 415, step)?;
    let query = http::request(addr, "POST", "/token?sub=user%2043&ttl=60", None)?;
    expect_status(&query, 200, step)?;
    let form_token = json_body(&query, step)?["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    out.ok("POST /token?sub=user%2043&ttl=60 accepted; the form body got 415");

    step = "fetch the JWKS from /.well-known/jwks.json and /certs";
    out.step("client", step);
    let jwks = http::get(addr, JWKS_PATH)?;
    expect_status(&jwks, 200, step)?;
    let certs = http::get(addr, CERTS_PATH)?;
    expect_status(&certs, 200, step)?;
    expect(
        jwks.body == certs.body,
        step,
        "the same document on both paths",
    )?;
    let parsed = Jwks::parse(&jwks.body, &JwksLimits::default()).during(step)?;
    expect(
        parsed.skipped.is_empty() && parsed.jwks.len() == 1,
        step,
        "one usable key",
    )?;
    let text = jwks.text()?;
    expect(
        !text.contains("\"d\"") && !text.contains("\"p\""),
        step,
        "public members only",
    )?;
    out.info(format!(
        "Content-Type {}, Cache-Control {}",
        jwks.header("content-type").unwrap_or("-"),
        jwks.header("cache-control").unwrap_or("-")
    ));
    out.ok(format!(
        "{} key(s): kid {kid}, RS256, no private members; /certs is identical",
        parsed.jwks.len()
    ));

    step = "verify the minted tokens against the fetched JWKS";
    out.step("verifier", step);
    let policy = Validation::builder()
        .issuer(base.as_str())
        .audience(AUDIENCE)
        .typ(handoff_issuer::HOST_TOKEN_TYP)
        .algorithm(Algorithm::RS256)
        .build()
        .during(step)?;
    let now = server::system_now().during(step)?;
    let verified = verify::<Value, _>(&token, &parsed.jwks, &policy, now).during(step)?;
    expect(
        verified.registered().sub.as_deref() == Some("user-42"),
        step,
        "sub user-42",
    )?;
    expect(
        verified.custom()["host_tenant_id"] == "tenant-7",
        step,
        "host_tenant_id tenant-7",
    )?;
    let exp = verified.registered().exp.map_or(0, |e| e.0);
    let iat = verified.registered().iat.map_or(0, |e| e.0);
    expect(exp.saturating_sub(iat) == 120, step, "a 120 s lifetime")?;
    let form_verified = verify::<Value, _>(&form_token, &parsed.jwks, &policy, now).during(step)?;
    expect(
        form_verified.registered().sub.as_deref() == Some("user 43"),
        step,
        "sub \"user 43\"",
    )?;
    out.ok(format!(
        "RS256 signature, iss, aud, typ host+jwt, exp ok: sub user-42, host_tenant_id tenant-7, jti {}",
        verified.registered().jti.as_deref().unwrap_or("-")
    ));

    step = "refusals";
    out.step("verifier", step);
    let (head, rest) = token.split_once('.').unwrap_or_default();
    let (_, signature) = rest.split_once('.').unwrap_or_default();
    let forged_claims = handoff_core::b64::encode(
        json!({"iss": base, "aud": AUDIENCE, "sub": "admin", "iat": now.as_secs(), "exp": now.as_secs() + 60, "jti": "x"})
            .to_string()
            .as_bytes(),
    );
    let forged = format!("{head}.{forged_claims}.{signature}");
    let e = expect_refused(
        verify::<Value, _>(&forged, &parsed.jwks, &policy, now),
        step,
    )?;
    expect(
        e == CoreError::InvalidSignature,
        step,
        "an opaque invalid signature",
    )?;
    out.refused(
        "claims swapped under the original signature (sub admin)",
        &e,
    );
    let other_aud = Validation::builder()
        .issuer(base.as_str())
        .audience("https://other.example")
        .typ(handoff_issuer::HOST_TOKEN_TYP)
        .build()
        .during(step)?;
    let e = expect_refused(
        verify::<Value, _>(&token, &parsed.jwks, &other_aud, now),
        step,
    )?;
    out.refused("a verifier for another audience", &e);

    let no_sub = http::post(addr, TOKEN_PATH, "application/json", br#"{"aud":"x"}"#)?;
    expect_status(&no_sub, 400, step)?;
    let why = json_body(&no_sub, step)?;
    out.refused(
        "POST /token without sub",
        format!("400 {}", why["error_description"].as_str().unwrap_or("-")),
    );
    let get_token = http::get(addr, TOKEN_PATH)?;
    expect_status(&get_token, 405, step)?;
    out.refused(
        "GET /token",
        format!("405, Allow: {}", get_token.header("allow").unwrap_or("-")),
    );
    let wide = SocketAddr::from((Ipv4Addr::UNSPECIFIED, addr.port()));
    let e = expect_refused(
        server::check_dev_bind(wide, &DevTokenConfig::default()),
        step,
    )?;
    out.refused(format!("binding the dev endpoint to {wide}"), &e);

    out.finish("the dev token endpoint works and stays on loopback")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_self_check_passes_against_the_shared_server() {
        let server = start(0).unwrap();
        assert!(server.addr().ip().is_loopback());
        let out = String::from_utf8(self_check(Vec::new(), &server).unwrap()).unwrap();
        server.shutdown();
        assert!(
            out.contains("RS256 signature, iss, aud, typ host+jwt, exp ok"),
            "{out}"
        );
        assert!(
            out.contains("refused, as expected: binding the dev endpoint to 0.0.0.0"),
            "{out}"
        );
        assert!(out.contains("== done: 6 steps"), "{out}");
    }
}
