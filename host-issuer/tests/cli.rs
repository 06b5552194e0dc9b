#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The `host-issuer` binary: key file mode and overwrite refusal, validation messages,
//! `--help`, the server's routes, hot reload and the dev endpoint's loopback guard.

mod common;

use common::{Served, cli, fails, http, ok, scratch};
use common::{wait_for_active_kid, wait_for_health_status};
use handoff_core::{Jwks, JwksLimits, Validation, b64, verify};
use handoff_issuer::{HOST_TOKEN_TYP, Keyring, UnixTime};
use serde_json::Value;

fn now() -> UnixTime {
    handoff_issuer::server::system_now().unwrap()
}

fn claims_of(token: &str) -> Value {
    serde_json::from_slice(&b64::decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

#[test]
fn help_on_every_command() {
    for cmd in [
        vec!["--help"],
        vec!["generate-keys", "--help"],
        vec!["jwks", "--help"],
        vec!["mint", "--help"],
        vec!["rotate", "--help"],
        vec!["serve", "--help"],
        vec!["inspect", "--help"],
    ] {
        let out = ok(&cmd);
        assert!(out.contains("Usage: host-issuer"), "{cmd:?}: {out}");
    }
}

#[test]
fn generate_keys_writes_0600_and_refuses_to_overwrite() {
    let dir = scratch("gen");
    let path = dir.join("nested/keys.json");
    let p = path.to_str().unwrap();
    let kid = ok(&[
        "generate-keys",
        "--alg",
        "ES256",
        "--kid",
        "host-1",
        "--out",
        p,
    ]);
    assert_eq!(kid, "host-1");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
    }
    let before = std::fs::read(&path).unwrap();
    let err = fails(&["generate-keys", "--out", p]);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before, "file untouched");
    // --force replaces it, still 0600, and no temporary file is left behind.
    #[cfg(unix)]
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let kid2 = ok(&["generate-keys", "--out", p, "--force"]);
    assert_ne!(kid2, "host-1");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "key file mode after --force {mode:o}");
    }
    let ring = Keyring::from_key_file(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(ring.active().kid(), kid2);
    let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
    assert_eq!(leftovers, 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn mint_validates_inputs_and_prints_a_verifiable_token() {
    let dir = scratch("mint");
    let keys = dir.join("k.json");
    let k = keys.to_str().unwrap();
    ok(&["generate-keys", "--out", k]);
    let base = ["mint", "--keys", k, "--iss", "https://h", "--aud", "svc"];
    fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [base, extra].concat()
    }

    assert!(fails(&with(&base, &["--sub", ""])).contains("invalid sub: must not be empty"));
    assert!(fails(&with(&base, &["--sub", "u", "--ttl", "0"])).contains("invalid ttl"));
    assert!(fails(&with(&base, &["--sub", "u", "--ttl", "3601"])).contains("1 to 3600"));
    assert!(fails(&with(&base, &["--sub", "u", "--claim", "iss=x"])).contains("registered claim"));
    assert!(fails(&with(&base, &["--sub", "u", "--claim", "noequals"])).contains("NAME=VALUE"));
    assert!(
        fails(&with(
            &base,
            &["--sub", "u", "--claim", "a=1", "--claim", "a=2"]
        ))
        .contains("twice")
    );
    assert!(
        fails(&["generate-keys", "--alg", "HS256", "--out", "x"]).contains("EdDSA, ES256 or RS256")
    );
    let missing = fails(&[
        "mint",
        "--keys",
        "/nonexistent/k.json",
        "--iss",
        "i",
        "--aud",
        "a",
        "--sub",
        "s",
    ]);
    assert!(missing.contains("generate-keys"), "{missing}");

    let token = ok(&with(
        &base,
        &["--sub", "u", "--claim", "n=5", "--claim", "role=admin"],
    ));
    let c = claims_of(&token);
    assert_eq!(
        c["host_tenant_id"], "https://h",
        "--tenant defaults to --iss"
    );
    assert_eq!(c["n"], 5);
    assert_eq!(c["role"], "admin");
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 300);
    let t2 = ok(&with(
        &base,
        &["--sub", "u", "--tenant", "t9", "--ttl", "60"],
    ));
    assert_eq!(claims_of(&t2)["host_tenant_id"], "t9");

    let jwks = ok(&["jwks", "--keys", k]);
    let jwks = Jwks::parse(jwks.as_bytes(), &JwksLimits::default())
        .unwrap()
        .jwks;
    let policy = Validation::builder()
        .issuer("https://h")
        .audience("svc")
        .typ(HOST_TOKEN_TYP)
        .build()
        .unwrap();
    verify::<Value, _>(&token, &jwks, &policy, now()).unwrap();

    let shown = ok(&["inspect", &token]);
    assert!(shown.starts_with("UNVERIFIED"), "{shown}");
    assert!(shown.contains("\"sub\": \"u\"") && shown.contains("host+jwt"));
    assert!(fails(&["inspect", "a.b"]).contains("three base64url segments"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn rotate_keeps_the_previous_key_published() {
    let dir = scratch("rotate");
    let keys = dir.join("k.json");
    let k = keys.to_str().unwrap();
    let old = ok(&["generate-keys", "--out", k, "--kid", "old"]);
    let old_token = ok(&[
        "mint", "--keys", k, "--iss", "i", "--aud", "a", "--sub", "s",
    ]);
    let err = fails(&["rotate", "--keys", k, "--retire-after", "10"]);
    assert!(err.contains("at least 3660"), "{err}");
    let new = ok(&["rotate", "--keys", k, "--kid", "new", "--alg", "RS256"]);
    assert_eq!((old.as_str(), new.as_str()), ("old", "new"));
    let new_token = ok(&[
        "mint", "--keys", k, "--iss", "i", "--aud", "a", "--sub", "s",
    ]);
    let header: Value =
        serde_json::from_slice(&b64::decode(new_token.split('.').next().unwrap()).unwrap())
            .unwrap();
    assert_eq!(header["kid"], "new");
    assert_eq!(header["alg"], "RS256");
    let jwks = ok(&["jwks", "--keys", k]);
    let jwks = Jwks::parse(jwks.as_bytes(), &JwksLimits::default())
        .unwrap()
        .jwks;
    assert_eq!(jwks.len(), 2);
    let policy = Validation::builder()
        .issuer("i")
        .audience("a")
        .build()
        .unwrap();
    verify::<Value, _>(&old_token, &jwks, &policy, now()).unwrap();
    verify::<Value, _>(&new_token, &jwks, &policy, now()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keys).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn serve_routes_reload_and_dev_endpoint() {
    let dir = scratch("serve");
    let keys = dir.join("k.json");
    let k = keys.to_str().unwrap();
    ok(&["generate-keys", "--out", k, "--kid", "first"]);
    let s = Served::start(&keys, &["--dev-token-endpoint", "--dev-aud", "svc"]);

    for path in ["/.well-known/jwks.json", "/certs"] {
        let (status, head, body) = http(s.addr, "GET", path, None, b"");
        assert_eq!(status, 200);
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(
            head.contains("cache-control: public, max-age=300"),
            "{head}"
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["keys"][0]["kid"], "first");
    }
    let (status, _, body) = http(s.addr, "GET", "/healthz", None, b"");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["status"],
        "ok"
    );
    assert_eq!(http(s.addr, "GET", "/nope", None, b"").0, 404);
    let (status, head, _) = http(s.addr, "POST", "/certs", None, b"");
    assert_eq!(status, 405);
    assert!(head.contains("allow: get,head"), "{head}");

    // Dev endpoint: query string and JSON bodies, validation, content types.
    let (status, _, body) = http(s.addr, "POST", "/token?sub=user%2042&ttl=60", None, b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    let c = claims_of(v["token"].as_str().unwrap());
    assert_eq!(c["sub"], "user 42");
    assert_eq!(c["aud"], "svc");
    assert_eq!(c["iss"], format!("http://{}", s.addr));
    assert_eq!(v["expires_in"], 60);
    let (status, _, body) = http(
        s.addr,
        "POST",
        "/token",
        Some("application/json"),
        br#"{"sub":"u","aud":"other","iss":"https://h","ttl":30}"#,
    );
    assert_eq!(status, 200);
    let c = claims_of(
        serde_json::from_slice::<Value>(&body).unwrap()["token"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        (c["aud"].as_str(), c["iss"].as_str()),
        (Some("other"), Some("https://h"))
    );
    let (status, _, body) = http(s.addr, "POST", "/token", Some("application/json"), b"{}");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("sub is required"));
    let (status, _, body) = http(
        s.addr,
        "POST",
        "/token",
        Some("application/json"),
        br#"{"sub":"u","ttl":0}"#,
    );
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("invalid ttl"));
    assert_eq!(
        http(s.addr, "POST", "/token", Some("text/plain"), b"sub=u").0,
        415
    );
    // A form post (no CORS preflight) is refused.
    assert_eq!(
        http(
            s.addr,
            "POST",
            "/token",
            Some("application/x-www-form-urlencoded"),
            b"sub=u"
        )
        .0,
        415
    );
    let big = vec![b'a'; 9000];
    assert_eq!(
        http(s.addr, "POST", "/token", Some("application/json"), &big).0,
        413
    );

    // Rotation is picked up without a restart.
    ok(&["rotate", "--keys", k, "--kid", "second"]);
    wait_for_active_kid(s.addr, "second");
    let (_, head, body) = http(s.addr, "GET", "/.well-known/jwks.json", None, b"");
    let v: Value = serde_json::from_slice(&body).unwrap();
    let kids: Vec<&str> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["second", "first"]);
    assert!(head.contains("max-age=300"));
    // A broken key file keeps the last good keys and reports it on /healthz.
    std::fs::write(&keys, b"{ broken").unwrap();
    let (status, body) = wait_for_health_status(s.addr, 503);
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("degraded"));
    let (status, _, body) = http(s.addr, "GET", "/certs", None, b"");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["keys"][0]["kid"],
        "second"
    );
    drop(s);

    // Without --dev-token-endpoint there is no /token.
    ok(&["generate-keys", "--out", k, "--force"]);
    let plain = Served::start(&keys, &[]);
    assert_eq!(
        http(
            plain.addr,
            "POST",
            "/token",
            Some("application/json"),
            br#"{"sub":"u"}"#
        )
        .0,
        404
    );
    drop(plain);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn dev_endpoint_refuses_non_loopback_bind() {
    let dir = scratch("guard");
    let keys = dir.join("k.json");
    let k = keys.to_str().unwrap();
    ok(&["generate-keys", "--out", k]);
    let out = cli(&[
        "serve",
        "--keys",
        k,
        "--port",
        "0",
        "--bind",
        "0.0.0.0",
        "--dev-token-endpoint",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing") && err.contains("--allow-non-loopback-dev"),
        "{err}"
    );
    // The flag only makes sense with the dev endpoint.
    let err = fails(&["serve", "--keys", k, "--allow-non-loopback-dev"]);
    assert!(err.contains("--dev-token-endpoint"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
