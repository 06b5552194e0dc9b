#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Interop with an independent implementation: panva's `jose` (npm) verifies EdDSA, ES256
//! and RS256 host tokens minted by the library and by the CLI, against the JWKS printed by
//! `host-issuer jwks` and served over HTTP by `host-issuer serve`, across a rotation.

mod common;

use common::{Served, node_available, node_verify, ok, scratch};
use handoff_issuer::server::{DevTokenConfig, ServerConfig, spawn, system_now};
use handoff_issuer::{Algorithm, HostClaims, Keyring};
use rand_core::UnwrapErr;
use serde_json::{Value, json};

const ISS: &str = "https://host.example";
const AUD: &str = "https://svc.example";

fn case(token: &str, expect: &str) -> Value {
    json!({ "token": token, "iss": ISS, "aud": AUD, "expect": expect })
}

fn check(input: Value, n: usize) -> Vec<Value> {
    let lines = node_verify(&input);
    assert_eq!(lines.len(), n, "{lines:?}");
    lines
}

#[test]
fn jose_verifies_library_and_cli_tokens_for_every_algorithm() {
    if !node_available() {
        return;
    }
    for alg in ["EdDSA", "ES256", "RS256"] {
        let dir = scratch(&format!("interop-{alg}"));
        let keys = dir.join("k.json");
        let k = keys.to_str().unwrap();
        ok(&["generate-keys", "--alg", alg, "--out", k, "--kid", "one"]);

        // The library mints from the same key file.
        let ring = Keyring::from_key_file(&std::fs::read_to_string(&keys).unwrap()).unwrap();
        let claims = HostClaims::new(ISS, AUD, "lib-user").tenant("t1");
        let lib = ring
            .mint(
                &claims,
                system_now().unwrap(),
                &mut UnwrapErr(getrandom::SysRng),
            )
            .unwrap();
        let mint = [
            "mint", "--keys", k, "--iss", ISS, "--aud", AUD, "--sub", "cli-user",
        ];
        let cli_token = ok(&mint);
        let wrong_aud = ok(&[
            "mint",
            "--keys",
            k,
            "--iss",
            ISS,
            "--aud",
            "elsewhere",
            "--sub",
            "x",
        ]);

        // Against the JWKS printed by `jwks`.
        let printed: Value = serde_json::from_str(&ok(&["jwks", "--keys", k])).unwrap();
        let lines = check(
            json!({ "jwks": printed, "cases": [
                case(lib.token(), "ok"), case(&cli_token, "ok"), case(&wrong_aud, "fail")
            ]}),
            3,
        );
        assert_eq!(lines[0]["alg"], alg);
        assert_eq!(lines[1]["sub"], "cli-user");

        // Against the JWKS served over HTTP, then across a rotation.
        let served = Served::start(&keys, &[]);
        let url = served.url("/.well-known/jwks.json");
        check(
            json!({ "jwks_url": url, "cases": [case(lib.token(), "ok"), case(&cli_token, "ok")]}),
            2,
        );
        let new_kid = ok(&["rotate", "--keys", k, "--kid", "two"]);
        assert_eq!(new_kid, "two");
        common::wait_for_active_kid(served.addr, "two");
        let after = ok(&mint);
        let lines = check(
            json!({ "jwks_url": served.url("/certs"), "cases": [
                case(lib.token(), "ok"), case(&cli_token, "ok"), case(&after, "ok")
            ]}),
            3,
        );
        assert_eq!(lines[0]["kid"], "one");
        assert_eq!(lines[2]["kid"], "two");
        // A token from a key that was never published fails with jose too.
        let stranger = dir.join("other.json");
        ok(&[
            "generate-keys",
            "--alg",
            alg,
            "--out",
            stranger.to_str().unwrap(),
            "--kid",
            "two",
        ]);
        let forged = ok(&[
            "mint",
            "--keys",
            stranger.to_str().unwrap(),
            "--iss",
            ISS,
            "--aud",
            AUD,
            "--sub",
            "x",
        ]);
        check(
            json!({ "jwks_url": url, "cases": [case(&forged, "fail")]}),
            1,
        );
        drop(served);
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn jose_verifies_dev_endpoint_tokens_from_the_library_server() {
    if !node_available() {
        return;
    }
    let mut rng = UnwrapErr(getrandom::SysRng);
    let config = ServerConfig::with_generated_keys(
        Algorithm::RS256,
        "127.0.0.1:0".parse().unwrap(),
        &mut rng,
    )
    .unwrap()
    .dev_token_endpoint(DevTokenConfig {
        default_iss: Some(ISS.into()),
        default_aud: AUD.into(),
        ..DevTokenConfig::default()
    });
    let server = spawn(config).unwrap();
    let (status, _, body) = common::http(
        server.addr(),
        "POST",
        "/token",
        Some("application/json"),
        br#"{"sub":"dev-user"}"#,
    );
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let token = v["token"].as_str().unwrap();
    let lines = check(
        json!({ "jwks_url": format!("{}/.well-known/jwks.json", server.base_url()),
                "cases": [case(token, "ok")] }),
        1,
    );
    assert_eq!(lines[0]["alg"], "RS256");
    assert_eq!(lines[0]["sub"], "dev-user");
    let addr = server.addr();
    server.shutdown();
    assert!(common::port_closes(addr), "server stopped");
}

/// panva's jose `createRemoteJWKSet` against `host-issuer serve` across a two-phase
/// rotation (`rotate --publish-next`, wait the served max-age, `rotate --activate`): no
/// token is refused, the first token of the new key verifies from the verifier's cache
/// (no refetch), the old key's tokens keep verifying; and, for contrast, a one-step
/// `rotate` right after a default jose fetched the set gets the new kid refused.
#[test]
fn jose_remote_jwks_across_a_two_phase_rotation() {
    if !node_available() {
        return;
    }
    let dir = scratch("two-phase-jose");
    let out = std::process::Command::new("node")
        .arg("issuer_rotation.mjs")
        .current_dir(common::interop_dir())
        .env("HOST_ISSUER_BIN", common::BIN)
        .env("WORK_DIR", &dir)
        .output()
        .expect("node is on PATH");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "jose disagreed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let step = |name: &str| -> &Value {
        lines
            .iter()
            .find(|l| l["step"] == name)
            .unwrap_or_else(|| panic!("no step {name:?} in {stdout}"))
    };
    assert_eq!(lines.len(), 17, "{stdout}");
    for l in &lines {
        assert_eq!(l["expect"], l["got"], "{l}");
    }
    assert_eq!(step("token of kid two right after activation")["got"], "ok");
    assert_eq!(
        step("one-step rotation: default jose refuses the new kid (cooldown)")["code"],
        "ERR_JWKS_NO_MATCHING_KEY"
    );
    let _ = std::fs::remove_dir_all(dir);
}
